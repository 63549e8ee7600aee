// The invariant from DESIGN.md, checked continuously while a scenario or the benchmark runs,
// not just at the end: on every node, allocated <= allocatable for each resource, allocated
// is the sum of the claims, and every domain on disk is covered by a claim on its host.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ComputeNode } from '../common/api/types.js';
import type { Kube } from '../common/kube/client.js';

export interface InvariantReport {
  samples: number;
  violations: string[];
}

const RESOURCES = ['vcpus', 'memoryMiB', 'diskGiB'] as const;

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
  readonly report: InvariantReport = { samples: 0, violations: [] };

  constructor(
    private readonly kube: Kube,
    private readonly stateDir: string,
    private readonly intervalMs = 100,
  ) {}

  start(): this {
    const tick = () => {
      this.running = this.sample()
        .catch(() => undefined)
        .finally(() => {
          this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    tick();
    return this;
  }

  async sample(): Promise<void> {
    const hosts = existsSync(this.stateDir) ? readdirSync(this.stateDir) : [];
    const before = new Map(hosts.map((h) => [h, domainsOnDisk(this.stateDir, h)]));
    const nodes = (await this.kube.computeNodes.list()).items;
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

  async stop(): Promise<InvariantReport> {
    clearTimeout(this.timer);
    await this.running;
    return this.report;
  }
}
