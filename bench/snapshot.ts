// A phase of the benchmark is measured between two snapshots: the API server's counters, the
// agents' watch-event counters, each process's CPU and the machine's. What a phase cost per boot
// (or per pod) is the difference, divided by what it completed; boots and pods are counted
// the same way.
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import type { ControlPlane } from '../devenv/controlplane/controlplane.js';
import type { InvariantWatcher } from '../devenv/invariants.js';
import { WATCH_EVENTS_METRIC } from '../node-agent/host-watches.js';
import {
  isLeaseWrite,
  MUTATING,
  addCounts,
  cpuSeconds,
  diffCounts,
  loadAverage,
  machineBusySeconds,
  parseConflicts,
  parseCounterBy,
  parseRequestTotals,
  parseWatchEvents,
  sumCounts,
  type Summary,
} from './measure.js';

export interface Proc {
  name: string;
  pid: number;
}

export interface Snapshot {
  at: number;
  machineBusy: number;
  load: number;
  requests: Map<string, number>;
  /** Requests the API server answered 409 Conflict. */
  conflicts: Map<string, number>;
  watchEvents: Map<string, number>;
  /** Watch events the agent processes counted as delivered to their hosts, by kind. */
  agentWatchEvents: Map<string, number>;
  cpu: Record<string, number>;
  invariantSamples: number;
}

/** Takes snapshots of `procs` (and, per call, `extra` processes such as the pods referee's). */
export function snapshotter(
  cp: ControlPlane,
  procs: readonly Proc[],
  agentLogs: readonly string[],
  invariants: InvariantWatcher,
): (extra?: readonly Proc[]) => Promise<Snapshot> {
  return async (extra = []) => {
    const metrics = await cp.get('/metrics');
    return {
      at: performance.now(),
      machineBusy: machineBusySeconds(),
      load: loadAverage()[0] ?? NaN,
      requests: parseRequestTotals(metrics),
      conflicts: parseConflicts(metrics),
      watchEvents: parseWatchEvents(metrics),
      agentWatchEvents: await scrapeAgentWatchEvents(agentLogs),
      cpu: Object.fromEntries([...procs, ...extra].map((p) => [p.name, cpuSeconds(p.pid) ?? NaN])),
      invariantSamples: invariants.report.samples,
    };
  };
}

export const round = (v: number, digits: number): number => (Number.isFinite(v) ? Number(v.toFixed(digits)) : v);

/** A latency summary to the millisecond, as the result shows it. */
export function roundSummary(s: Summary): Summary {
  return {
    n: s.n,
    p50: round(s.p50, 3),
    p95: round(s.p95, 3),
    p99: round(s.p99, 3),
    max: round(s.max, 3),
    mean: round(s.mean, 3),
  };
}

export const cpuDelta = (a: Snapshot, b: Snapshot): Record<string, number> =>
  Object.fromEntries(Object.keys(b.cpu).map((k) => [k, round((b.cpu[k] ?? NaN) - (a.cpu[k] ?? NaN), 2)]));

export const sumCpu = (c: Record<string, number> | undefined): number =>
  Object.values(c ?? {}).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);

/** CPU the machine spent outside the measured processes between two snapshots. */
export const otherCpu = (a: Snapshot, b: Snapshot): number =>
  round(b.machineBusy - a.machineBusy - sumCpu(cpuDelta(a, b)), 2);

export function sortedObject(m: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...m].sort((a, b) => b[1] - a[1]));
}

/** What a phase that completed `done` items cost per item, counted the same way for boots and pods. */
export function perItem(a: Snapshot, b: Snapshot, done: number) {
  const n = Math.max(1, done);
  const requests = diffCounts(b.requests, a.requests);
  const conflicts = diffCounts(b.conflicts, a.conflicts);
  const cpu = cpuDelta(a, b);
  // CPU by component: the agent processes together, then each other process.
  const cpuMs: Record<string, number> = {};
  for (const [name, seconds] of Object.entries(cpu)) {
    const component = name.startsWith('agent') ? 'agents' : name;
    cpuMs[component] = (cpuMs[component] ?? 0) + seconds;
  }
  for (const k of Object.keys(cpuMs)) cpuMs[k] = round((1000 * (cpuMs[k] ?? NaN)) / n, 2);
  return {
    seconds: (b.at - a.at) / 1000,
    requests,
    conflicts,
    /** Every write the API server counted, the bench's creates included. */
    writes: sumCounts(requests, (k) => MUTATING.test(k)) / n,
    /** Of `writes`, the Lease writes (isLeaseWrite). */
    leaseWrites: sumCounts(requests, isLeaseWrite) / n,
    conflictsPer: sumCounts(conflicts) / n,
    watchEventsPer: sumCounts(diffCounts(b.watchEvents, a.watchEvents)) / n,
    agentWatchEvents: diffCounts(b.agentWatchEvents, a.agentWatchEvents),
    agentWatchEventsPer: sumCounts(diffCounts(b.agentWatchEvents, a.agentWatchEvents)) / n,
    cpu,
    cpuMsByComponent: cpuMs,
    cpuMsAll: (1000 * sumCpu(cpu)) / n,
    otherCpuSeconds: otherCpu(a, b),
    loadAverage: [round(a.load, 2), round(b.load, 2)],
  };
}

/**
 * The watch events every agent process counted as delivered to its hosts (WATCH_EVENTS_METRIC),
 * summed by kind, from the metrics address each logged. A process not yet answering counts 0.
 */
async function scrapeAgentWatchEvents(logFiles: readonly string[]): Promise<Map<string, number>> {
  let total = new Map<string, number>();
  for (const file of logFiles) {
    try {
      const m = /"metrics":"([^"]+)"/.exec(readFileSync(file, 'utf8'));
      if (!m) continue;
      const text = await (await fetch(`http://${m[1]}/metrics`)).text();
      total = addCounts(total, parseCounterBy(text, WATCH_EVENTS_METRIC, 'kind'));
    } catch {
      // not answering (yet): nothing counted from it
    }
  }
  return total;
}
