// `npm run bench:scheduler`: how long one scheduling decision takes in the operator's process,
// from the ComputeNode objects of a cache to the chosen host, at 100 and 500 hosts. A CPU-only
// figure, steady where the whole-system bench (main.ts) is noisy, for changes to the scheduler.
import { performance } from 'node:perf_hooks';
import { API_VERSION, ZONE_LABEL, type ComputeNode } from '../common/api/types.js';
import type { WatchedCache } from '../common/kube/api.js';
import { HeartbeatClock } from '../operator/nodehealth/heartbeat-clock.js';
import { Placement } from '../operator/scheduler/placement.js';
import { DEFAULT_SCHEDULER_CONFIG, Scheduler } from '../operator/scheduler/scheduler.js';
import { aRequest } from '../operator/scheduler/testing.js';

const DECISIONS = 5_000;
/** Placements the agents have not claimed yet, as in a burst of boots. */
const IN_FLIGHT = 50;

/** A host as an agent reports it mid-run: ten claims, Ready, a fresh heartbeat. */
function hostNode(i: number, now: number): ComputeNode {
  const name = `host-${String(i).padStart(4, '0')}`;
  const claims = Array.from({ length: 10 }, (_, k) => ({
    consumer: `${name}-instance-${k}`,
    kind: 'instance' as const,
    vcpus: 1,
    memoryMiB: 512,
    diskGiB: 1,
  }));
  const time = new Date(now).toISOString();
  return {
    apiVersion: API_VERSION,
    kind: 'ComputeNode',
    metadata: { name, labels: { [ZONE_LABEL]: 'az1' } },
    spec: {},
    status: {
      capacity: { vcpus: 64, memoryMiB: 262144, diskGiB: 2000 },
      allocatable: { vcpus: 256, memoryMiB: 261632, diskGiB: 2000 },
      allocated: { vcpus: 10, memoryMiB: 5120, diskGiB: 10 },
      claims,
      heartbeatTime: time,
      conditions: [{ type: 'Ready', status: 'True', reason: 'AgentReady', lastTransitionTime: time }],
    },
  };
}

function cacheOf(nodes: ComputeNode[]): WatchedCache<'ComputeNode'> {
  const byName = new Map(nodes.map((n) => [n.metadata.name, n]));
  return { on: () => undefined, list: () => nodes, get: (name: string) => byName.get(name) };
}

function microsPerDecision(hosts: number): number {
  const now = Date.now();
  const nodes = Array.from({ length: hosts }, (_, i) => hostNode(i, now));
  const placement = new Placement(new Scheduler(DEFAULT_SCHEDULER_CONFIG), cacheOf(nodes), new HeartbeatClock(60_000));
  const started = performance.now();
  for (let i = 0; i < DECISIONS; i++) {
    placement.select(aRequest(), `consumer-${i}`);
    if (i >= IN_FLIGHT) placement.forget(`consumer-${i - IN_FLIGHT}`);
  }
  return ((performance.now() - started) * 1000) / DECISIONS;
}

for (const hosts of [100, 500]) {
  microsPerDecision(hosts); // warm-up: the JIT's first pass is not the figure
  const runs = [1, 2, 3].map(() => microsPerDecision(hosts)).sort((a, b) => a - b);
  process.stdout.write(
    `${hosts} hosts: ${runs[1]!.toFixed(1)} µs per decision (median of 3; ${runs.map((r) => r.toFixed(1)).join(', ')})\n`,
  );
}
