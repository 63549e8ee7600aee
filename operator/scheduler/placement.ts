// The scheduler as the conductor uses it: host state from the watch-fed ComputeNode cache
// plus the placements this operator made that no ComputeNode shows yet. Deciding never
// calls the API server.
import { performance } from 'node:perf_hooks';
import type { ComputeNode } from '../../common/api/types.js';
import type { WatchedCache } from '../../common/kube/api.js';
import type { SchedulingResult } from '../../common/runtime/domain-metrics.js';
import type { HeartbeatClock } from '../nodehealth/heartbeat-clock.js';
import { hostStateFrom } from './host-state.js';
import { InFlightPlacements } from './in-flight.js';
import type { RequestSpec } from './request.js';
import { NoValidHost, Scheduler, type Selection } from './scheduler.js';

export class Placement {
  readonly inFlight = new InFlightPlacements();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly nodes: WatchedCache<'ComputeNode'>,
    private readonly heartbeats: HeartbeatClock,
    /** Told how each decision went and how long it took (kubenova_scheduling_duration_seconds). */
    private readonly onDecision?: (result: SchedulingResult, seconds: number) => void,
  ) {
    const onNode = (node: ComputeNode) => this.inFlight.reconcileWithNode(node);
    nodes.on('add', onNode);
    nodes.on('update', onNode);
  }

  /** Chooses a host and counts the request against it until its claim shows up. */
  select(request: RequestSpec, consumer: string): Selection {
    const started = performance.now();
    let selection: Selection;
    try {
      const pending = this.inFlight.byHost();
      const hosts = this.nodes.list().map((n) => hostStateFrom(n, this.heartbeats, pending.get(n.metadata.name)));
      selection = this.scheduler.selectDestination(hosts, request);
    } catch (err) {
      if (err instanceof NoValidHost) this.onDecision?.('no_valid_host', (performance.now() - started) / 1000);
      throw err;
    }
    this.onDecision?.('success', (performance.now() - started) / 1000);
    this.inFlight.add(selection.host, consumer, request.resources);
    return selection;
  }

  /** The placement is settled (claim failed, instance gone): stop counting it. */
  forget(consumer: string): void {
    this.inFlight.remove(consumer);
  }

  hostIsUsable(host: string): boolean {
    const node = this.nodes.get(host);
    if (!node) return false;
    const state = hostStateFrom(node, this.heartbeats);
    return state.ready && !state.forcedDown;
  }

  /** Why a host named by the user cannot take work, or undefined when it can. */
  hostProblem(host: string): string | undefined {
    const node = this.nodes.get(host);
    if (!node) return 'does not exist (kubectl get cn lists hosts)';
    if (node.spec.forcedDown) return 'is forced down (ComputeNode spec.forcedDown): it takes no work';
    if (node.spec.disabled) return `is disabled${node.spec.disabledReason ? ` (${node.spec.disabledReason})` : ''}`;
    if (!hostStateFrom(node, this.heartbeats).ready) return 'is not Ready: its node agent is not responding';
    return undefined;
  }

  /** Whether an admin has declared the host dead and fenced (Nova's forced_down). */
  isForcedDown(host: string | undefined): boolean {
    return host !== undefined && this.nodes.get(host)?.spec.forcedDown === true;
  }

  claimedAnywhere(consumers: string[]): ComputeNode[] {
    return this.nodes.list().filter((n) => (n.status?.claims ?? []).some((c) => consumers.includes(c.consumer)));
  }
}
