// The invariant from DESIGN.md, checked continuously while a scenario or the benchmark runs,
// not just at the end: on every node, allocated <= allocatable for each resource, allocated
// is the sum of the claims, and every domain on disk is covered by a claim on its host. And
// for networking: no address of a network and no MAC is held by two Ports at once.
//
// A watcher that could not look proves nothing: stop() reports a run that took no sample, or
// whose samples failed, as a broken promise beside the invariant's own violations, so a test
// that checks `violations` is empty fails on either. A scenario that takes the API server down
// on purpose says so with pause() and resume(): nothing is sampled in between.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ComputeNode, Port } from '../common/api/types.js';
import type { Kube } from '../common/kube/client.js';

export interface InvariantReport {
  /** Samples that read every node and host directory and checked them. */
  samples: number;
  /**
   * Every broken promise: the invariant violated at a sample, and (once stopped) the
   * watcher's own, when it took no sample or some samples failed.
   */
  violations: string[];
  /** Why samples failed: the invariant went unchecked at those moments. */
  errors: string[];
}

const RESOURCES = ['vcpus', 'memoryMiB', 'diskGiB'] as const;
const INVARIANT = 'the claim invariant (allocated <= allocatable, allocated = sum of claims, every domain claimed)';

export function checkNode(node: ComputeNode): string[] {
  const out: string[] = [];
  const s = node.status;
  if (!s?.allocatable || !s.allocated) return out;
  for (const r of RESOURCES) {
    const allocated = s.allocated[r] ?? 0;
    const allocatable = s.allocatable[r] ?? 0;
    if (allocated > allocatable)
      out.push(`${node.metadata.name}: allocated ${r} ${allocated} > allocatable ${allocatable}`);
    const sum = (s.claims ?? []).reduce((acc, c) => acc + c[r], 0);
    if (sum !== allocated) out.push(`${node.metadata.name}: allocated ${r} ${allocated} != sum of claims ${sum}`);
  }
  return out;
}

/** Two Ports sharing an address of one network, or a MAC: what IPAM must never allow. */
export function checkPorts(ports: readonly Port[]): string[] {
  const out: string[] = [];
  const byIp = new Map<string, string>();
  const byMac = new Map<string, string>();
  for (const p of ports) {
    const who = `${p.metadata.namespace}/${p.metadata.name}`;
    const ip = `${p.spec.network}/${p.spec.fixedIP}`;
    const other = byIp.get(ip);
    if (other) out.push(`ports ${other} and ${who} both hold ${p.spec.fixedIP} on network ${p.spec.network}`);
    else byIp.set(ip, who);
    const sameMac = byMac.get(p.spec.macAddress);
    if (sameMac) out.push(`ports ${sameMac} and ${who} both have MAC ${p.spec.macAddress}`);
    else byMac.set(p.spec.macAddress, who);
  }
  return out;
}

/** The watcher's own broken promises in a report: no sample taken, or samples that failed. */
export function watcherProblems(report: Pick<InvariantReport, 'samples' | 'errors'>): string[] {
  const out: string[] = [];
  if (report.samples === 0) out.push(`invariant watcher took no samples: ${INVARIANT} was never checked`);
  if (report.errors.length > 0) {
    const distinct = [...new Set(report.errors)];
    out.push(
      `invariant watcher: ${report.errors.length} sample(s) failed, so ${INVARIANT} went unchecked at those moments: ` +
        distinct.slice(0, 3).join('; ') +
        (distinct.length > 3 ? `; and ${distinct.length - 3} other error(s)` : ''),
    );
  }
  return out;
}

/** uid -> namespace/name of every complete domain directory on a host. */
function domainsOnDisk(stateDir: string, host: string): Map<string, string> {
  const dir = join(stateDir, host, 'instances');
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const uid of readdirSync(dir)) {
    try {
      out.set(uid, (JSON.parse(readFileSync(join(dir, uid, 'domain.json'), 'utf8')) as { name: string }).name);
    } catch {
      // not a complete domain (a backup, or one being written or removed)
    }
  }
  return out;
}

export class InvariantWatcher {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private paused = false;
  private stopped = false;
  readonly report: InvariantReport = { samples: 0, violations: [], errors: [] };

  constructor(
    private readonly kube: Kube,
    private readonly stateDir: string,
    private readonly intervalMs = 100,
  ) {}

  start(): this {
    const tick = () => {
      if (this.stopped) return;
      this.running = (this.paused ? Promise.resolve() : this.sample())
        .catch((err: unknown) => {
          this.report.errors.push(err instanceof Error ? err.message : String(err));
        })
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    tick();
    return this;
  }

  /**
   * Stops sampling until resume(), for a scenario that makes the API server unreachable on
   * purpose. Resolves once a sample in progress has ended.
   */
  async pause(): Promise<void> {
    this.paused = true;
    await this.running;
  }

  /** Samples again, at once; resolves after that sample (a failure is recorded as usual). */
  async resume(): Promise<void> {
    this.paused = false;
    await this.sample().catch((err: unknown) => {
      this.report.errors.push(err instanceof Error ? err.message : String(err));
    });
  }

  async sample(): Promise<void> {
    const hosts = existsSync(this.stateDir) ? readdirSync(this.stateDir) : [];
    const before = new Map(hosts.map((h) => [h, domainsOnDisk(this.stateDir, h)]));
    const [nodes, ports] = await Promise.all([
      this.kube.computeNodes.list().then((l) => l.items),
      this.kube.ports.list().then((l) => l.items),
    ]);
    this.report.violations.push(...checkPorts(ports));
    for (const node of nodes) {
      this.report.violations.push(...checkNode(node));
      const host = node.metadata.name;
      // A domain is covered by its instance's claim, or on a destination by its migration's.
      const claimed = new Set((node.status?.claims ?? []).flatMap((c) => [c.consumer, c.instance ?? '']));
      const after = domainsOnDisk(this.stateDir, host);
      // A domain present before and after the read existed throughout it, so its claim must show.
      for (const [uid, name] of before.get(host) ?? []) {
        if (after.has(uid) && !claimed.has(uid) && !claimed.has(name))
          this.report.violations.push(`${host}: domain ${uid} (${name}) on disk without a claim`);
      }
    }
    this.report.samples++;
  }

  /**
   * Ends sampling once the sample in progress has ended, and returns the report with the
   * watcher's own problems (no sample, failed samples) added to its violations. Repeatable.
   */
  async stop(): Promise<InvariantReport> {
    if (this.stopped) return this.report;
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    this.report.violations.push(...watcherProblems(this.report));
    return this.report;
  }
}
