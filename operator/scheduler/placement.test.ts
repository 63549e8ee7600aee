import { describe, expect, it } from 'vitest';
import { API_VERSION, type ComputeNode } from '../../common/api/types.js';
import type { Informer } from '../../common/kube/informer.js';
import type { SchedulingResult } from '../../common/runtime/domain-metrics.js';
import { Placement } from './placement.js';
import { Scheduler, DEFAULT_SCHEDULER_CONFIG, NoValidHost } from './scheduler.js';
import { aRequest } from './testing.js';
import { HeartbeatClock } from '../nodehealth/heartbeat-clock.js';

const now = new Date('2025-01-01T12:00:00Z');

function readyNode(name: string): ComputeNode {
  return {
    apiVersion: API_VERSION,
    kind: 'ComputeNode',
    metadata: { name },
    spec: {},
    status: {
      allocatable: { vcpus: 8, memoryMiB: 8192, diskGiB: 100 },
      allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
      heartbeatTime: now.toISOString(),
      conditions: [{ type: 'Ready', status: 'True', reason: 'AgentReady', lastTransitionTime: now.toISOString() }],
    },
  };
}

function cache(nodes: ComputeNode[]): Informer<'ComputeNode'> {
  return {
    on: () => undefined,
    list: () => nodes,
    get: (name: string) => nodes.find((n) => n.metadata.name === name),
  } as unknown as Informer<'ComputeNode'>;
}

describe('placement', () => {
  it('reports every scheduler decision once, with its result and how long it took', () => {
    const decisions: [SchedulingResult, number][] = [];
    const placement = new Placement(
      new Scheduler(DEFAULT_SCHEDULER_CONFIG),
      cache([readyNode('node-a')]),
      new HeartbeatClock(60_000, () => now.getTime()),
      (result, seconds) => decisions.push([result, seconds]),
    );
    expect(placement.select(aRequest(), 'uid-1').host).toBe('node-a');
    expect(() => placement.select(aRequest({ availabilityZone: 'az9' }), 'uid-2')).toThrow(NoValidHost);
    expect(decisions.map(([r]) => r)).toEqual(['success', 'no_valid_host']);
    for (const [, seconds] of decisions) expect(seconds).toBeGreaterThanOrEqual(0);
  });

  it('a forced-down host is neither usable nor accepted as a named host, and says why', () => {
    const down = readyNode('node-a');
    down.spec.forcedDown = true;
    const placement = new Placement(
      new Scheduler(DEFAULT_SCHEDULER_CONFIG),
      cache([down]),
      new HeartbeatClock(60_000, () => now.getTime()),
    );
    expect(placement.hostIsUsable('node-a')).toBe(false);
    expect(placement.hostProblem('node-a')).toBe('is forced down (ComputeNode spec.forcedDown): it takes no work');
    expect(() => placement.select(aRequest(), 'uid-1')).toThrow(NoValidHost);
  });
});
