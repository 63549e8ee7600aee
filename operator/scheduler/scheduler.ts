// Nova's FilterScheduler, pure: given host snapshots and a request, pick one host or say why none.
// The claim on the chosen host (by its agent) is the authority; this only has to choose well.
import { DEFAULT_FILTERS } from './filters/index.js';
import type { HostFilter } from './filters/filter.js';
import type { HostState } from './host-state.js';
import { NoValidHost } from './no-valid-host.js';
import type { FilterCount } from './no-valid-host.js';
import type { RequestSpec } from './request.js';
import { DEFAULT_WEIGHERS } from './weighers/index.js';
import { weighHosts } from './weighers/weigh.js';
import type { HostWeigher } from './weighers/weigher.js';

export { NoValidHost } from './no-valid-host.js';
export type { FilterCount } from './no-valid-host.js';

export interface SchedulerConfig {
  ramWeightMultiplier: number;
  cpuWeightMultiplier: number;
  diskWeightMultiplier: number;
  /** Server groups' soft-affinity and soft-anti-affinity preference (Nova's soft_(anti_)affinity_weight_multiplier). */
  softAffinityWeightMultiplier: number;
  /** Nova's host_subset_size: choose randomly among this many best hosts, so that concurrent
   *  schedulers working from the same snapshot do not all pick the same host. */
  hostSubsetSize: number;
}

export const DEFAULT_SCHEDULER_CONFIG: SchedulerConfig = Object.freeze({
  ramWeightMultiplier: 1.0,
  cpuWeightMultiplier: 1.0,
  diskWeightMultiplier: 1.0,
  softAffinityWeightMultiplier: 1.0,
  hostSubsetSize: 1,
});

export interface Selection {
  host: string;
  weight: number;
}

export class Scheduler {
  private readonly filters: readonly HostFilter[];
  private readonly weighers: readonly HostWeigher[];

  constructor(
    private readonly config: SchedulerConfig,
    filters?: readonly HostFilter[],
    weighers?: readonly HostWeigher[],
    private readonly random: () => number = Math.random,
  ) {
    this.filters = filters ?? DEFAULT_FILTERS;
    this.weighers = weighers ?? DEFAULT_WEIGHERS;
  }

  /** Throws NoValidHost. */
  selectDestination(hosts: readonly HostState[], request: RequestSpec): Selection {
    if (request.forcedHost !== undefined && request.forcedHost !== '') return this.forced(hosts, request.forcedHost);

    const survivors = this.filter(hosts, request);
    const ranked = weighHosts(survivors, request, this.weighers, this.config);
    const subset = ranked.slice(0, this.subsetSize(ranked.length));
    // min() guards against a random source that returns exactly 1.
    const pick = subset[Math.min(Math.floor(this.random() * subset.length), subset.length - 1)];
    if (pick === undefined) throw new NoValidHost([], {}, hosts.length); // unreachable: filter() threw
    return { host: pick.host.name, weight: pick.weight };
  }

  // Nova's force_hosts: the admin's choice skips every filter (even a disabled or tried host),
  // but the host must exist and not be forced down (declared dead); its agent's claim still
  // decides whether it fits.
  private forced(hosts: readonly HostState[], name: string): Selection {
    const host = hosts.find((h) => h.name === name);
    if (host?.forcedDown) throw new NoValidHost([], { [name]: `Forced host ${name} is forced down.` }, hosts.length);
    if (host) return { host: name, weight: 0 };
    throw new NoValidHost([], { [name]: `Forced host ${name} does not exist.` }, hosts.length);
  }

  private filter(hosts: readonly HostState[], request: RequestSpec): HostState[] {
    if (hosts.length === 0) throw new NoValidHost([], {}, 0);
    let remaining = [...hosts];
    const counts: FilterCount[] = [];
    const reasons: Record<string, string> = {};
    for (const filter of this.filters) {
      const kept: HostState[] = [];
      for (const host of remaining) {
        const result = filter.passes(host, request);
        if (result.pass) kept.push(host);
        else reasons[host.name] = `${filter.name}: ${result.reason}`;
      }
      counts.push({ filter: filter.name, removed: remaining.length - kept.length, remaining: kept.length });
      remaining = kept;
      // Like Nova, stop at zero: later filters have nothing to say and would only add noise.
      if (remaining.length === 0) throw new NoValidHost(counts, reasons, hosts.length);
    }
    return remaining;
  }

  private subsetSize(survivors: number): number {
    const wanted = Number.isFinite(this.config.hostSubsetSize) ? Math.floor(this.config.hostSubsetSize) : 1;
    return Math.max(1, Math.min(wanted, survivors));
  }
}
