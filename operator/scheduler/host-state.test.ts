import { describe, expect, it } from 'vitest';
import { API_VERSION, ZONE_LABEL } from '../../common/api/types.js';
import type { ComputeNode, ComputeNodeStatus } from '../../common/api/types.js';
import { HeartbeatClock } from '../nodehealth/heartbeat-clock.js';
import { free, hostStateFrom } from './host-state.js';

const now = new Date('2025-01-01T12:00:00Z');
const TIMEOUT = 60_000;
const heartbeats = new HeartbeatClock(TIMEOUT, () => now.getTime());

function node(status: ComputeNodeStatus | undefined, disabled = false): ComputeNode {
  return {
    apiVersion: API_VERSION,
    kind: 'ComputeNode',
    metadata: { name: 'cn-1', labels: { [ZONE_LABEL]: 'zone-a' } },
    spec: { disabled },
    ...(status ? { status } : {}),
  };
}

function readyStatus(
  heartbeatTime: string | undefined,
  ready: 'True' | 'False' | 'Unknown' = 'True',
): ComputeNodeStatus {
  return {
    allocatable: { vcpus: 32, memoryMiB: 65536, diskGiB: 900 },
    allocated: { vcpus: 4, memoryMiB: 8192, diskGiB: 100 },
    ...(heartbeatTime ? { heartbeatTime } : {}),
    conditions: [{ type: 'Ready', status: ready, reason: 'AgentReady', lastTransitionTime: '2025-01-01T00:00:00Z' }],
  };
}

describe('hostStateFrom', () => {
  it('reads a node object once, and each new object of the node anew, the passing of time included', () => {
    let clock = now.getTime();
    const ticking = new HeartbeatClock(TIMEOUT, () => clock);
    const first = node(readyStatus('2025-01-01T11:59:30Z'));
    expect(hostStateFrom(first, ticking)).toMatchObject({ ready: true, allocated: { vcpus: 4 } });

    // The same object later: its heartbeat has aged past the timeout.
    clock += TIMEOUT;
    expect(hostStateFrom(first, ticking).ready).toBe(false);

    // The cache's next object for the node: a new heartbeat and a claim more.
    const next = node({
      ...readyStatus('2025-01-01T12:01:00Z'),
      allocated: { vcpus: 5, memoryMiB: 9216, diskGiB: 110 },
    });
    expect(hostStateFrom(next, ticking)).toMatchObject({ ready: true, allocated: { vcpus: 5 } });
  });

  it('hands out what it read frozen, so no filter can change what the next decision sees', () => {
    const state = hostStateFrom(node(readyStatus('2025-01-01T11:59:30Z')), heartbeats);
    expect(Object.isFrozen(state.labels)).toBe(true);
    expect(Object.isFrozen(state.allocatable)).toBe(true);
    expect(Object.isFrozen(state.allocated)).toBe(true);
  });

  it('is ready when the Ready condition is True and the heartbeat is within the timeout', () => {
    expect(hostStateFrom(node(readyStatus('2025-01-01T11:59:30Z')), heartbeats).ready).toBe(true);
  });

  it('is not ready when the heartbeat is stale, even though the Ready condition still says True', () => {
    expect(hostStateFrom(node(readyStatus('2025-01-01T11:58:59Z')), heartbeats).ready).toBe(false);
  });

  it('is ready while its node Lease is renewed, however old its status report, and not once the Lease goes silent too', () => {
    let renewed = now.getTime() - 5_000;
    const withLeases = new HeartbeatClock(TIMEOUT, () => now.getTime());
    withLeases.useLeases({ renewMs: (host) => (host === 'cn-1' ? renewed : NaN) });
    const reportedLongAgo = readyStatus('2025-01-01T11:00:00Z');
    expect(hostStateFrom(node(reportedLongAgo), withLeases).ready).toBe(true);
    renewed = now.getTime() - TIMEOUT - 1;
    expect(hostStateFrom(node(reportedLongAgo), withLeases).ready).toBe(false);
    expect(hostStateFrom(node(readyStatus('2025-01-01T11:00:00Z', 'Unknown')), withLeases).ready).toBe(false);
  });

  it('is not ready when the Ready condition is not True', () => {
    expect(hostStateFrom(node(readyStatus('2025-01-01T11:59:59Z', 'False')), heartbeats).ready).toBe(false);
    expect(hostStateFrom(node(readyStatus('2025-01-01T11:59:59Z', 'Unknown')), heartbeats).ready).toBe(false);
  });

  it('is not ready with no heartbeat, no Ready condition, or no status at all', () => {
    expect(hostStateFrom(node(readyStatus(undefined)), heartbeats).ready).toBe(false);
    expect(hostStateFrom(node({ heartbeatTime: '2025-01-01T11:59:59Z' }), heartbeats).ready).toBe(false);
    expect(hostStateFrom(node(undefined), heartbeats).ready).toBe(false);
  });

  it('copies name, labels, disabled and allocatable from the node', () => {
    const host = hostStateFrom(node(readyStatus('2025-01-01T11:59:59Z'), true), heartbeats);
    expect(host).toMatchObject({
      name: 'cn-1',
      labels: { [ZONE_LABEL]: 'zone-a' },
      disabled: true,
      allocatable: { vcpus: 32, memoryMiB: 65536, diskGiB: 900 },
    });
  });

  it('copies spec.forcedDown from the node, false when unset', () => {
    const down = node(readyStatus('2025-01-01T11:59:59Z'));
    down.spec.forcedDown = true;
    expect(hostStateFrom(down, heartbeats).forcedDown).toBe(true);
    expect(hostStateFrom(node(readyStatus('2025-01-01T11:59:59Z')), heartbeats).forcedDown).toBe(false);
  });

  it("adds the scheduler's in-flight placements to status.allocated", () => {
    const host = hostStateFrom(node(readyStatus('2025-01-01T11:59:59Z')), heartbeats, {
      vcpus: 2,
      memoryMiB: 4096,
      diskGiB: 40,
    });
    expect(host.allocated).toEqual({ vcpus: 6, memoryMiB: 12288, diskGiB: 140 });
    expect(free(host)).toEqual({ vcpus: 26, memoryMiB: 53248, diskGiB: 760 });
  });

  it('offers nothing for resources a node has not reported yet', () => {
    const host = hostStateFrom(node(undefined), heartbeats);
    expect(host.allocatable).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
    expect(free(host)).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
  });
});
