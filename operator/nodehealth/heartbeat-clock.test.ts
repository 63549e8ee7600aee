import { describe, expect, it } from 'vitest';
import type { ComputeNode } from '../../common/api/types.js';
import { HeartbeatClock } from './heartbeat-clock.js';

const T0 = Date.parse('2026-01-01T12:00:00Z');
const TIMEOUT = 8_000;

function nodeBeatingAt(ms: number | undefined): ComputeNode {
  return {
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'ComputeNode',
    metadata: { name: 'node-a' },
    spec: {},
    status: ms === undefined ? {} : { heartbeatTime: new Date(ms).toISOString() },
  };
}

function clockAt(start: number) {
  const t = { now: start };
  return { t, heartbeats: new HeartbeatClock(TIMEOUT, () => t.now) };
}

describe('HeartbeatClock', () => {
  it('calls a host silent once its last heartbeat is older than the timeout, and never one without a heartbeat fresh', () => {
    const { heartbeats } = clockAt(T0);
    expect(heartbeats.isSilent(nodeBeatingAt(T0 - TIMEOUT))).toBe(false);
    expect(heartbeats.isSilent(nodeBeatingAt(T0 - TIMEOUT - 1))).toBe(true);
    expect(heartbeats.isSilent(nodeBeatingAt(undefined))).toBe(true);
  });

  it('judges no host while the operator cannot see the API server: old heartbeats then say nothing about the agents', () => {
    const { heartbeats } = clockAt(T0);
    heartbeats.viewLost();
    expect(heartbeats.isSilent(nodeBeatingAt(T0 - 10 * TIMEOUT))).toBe(false);
  });

  it('gives every host a full timeout from the moment the view comes back, then judges as before', () => {
    const { t, heartbeats } = clockAt(T0);
    const lastBeat = nodeBeatingAt(T0 - 2_000);
    heartbeats.viewLost();
    t.now = T0 + 20_000; // an API server restart that took 20 s
    heartbeats.viewRestored();
    expect(heartbeats.isSilent(lastBeat)).toBe(false);
    t.now = T0 + 20_000 + TIMEOUT - 1;
    expect(heartbeats.isSilent(lastBeat)).toBe(false);
    t.now = T0 + 20_000 + TIMEOUT + 1;
    expect(heartbeats.isSilent(lastBeat)).toBe(true);
    expect(heartbeats.isSilent(nodeBeatingAt(t.now - 1_000))).toBe(false);
  });

  it('gives no grace when a watch reconnects without having failed (a routine watch timeout)', () => {
    const { heartbeats } = clockAt(T0);
    heartbeats.viewRestored();
    expect(heartbeats.isSilent(nodeBeatingAt(T0 - TIMEOUT - 1))).toBe(true);
  });

  it("counts a node Lease's renewal as a heartbeat: a host whose status was written long ago but whose Lease is fresh is alive", () => {
    const { t, heartbeats } = clockAt(T0);
    const renewed = new Map([['node-a', T0 - 1_000]]);
    heartbeats.useLeases({ renewMs: (host) => renewed.get(host) ?? NaN });
    const reportedLongAgo = nodeBeatingAt(T0 - 10 * TIMEOUT);
    expect(heartbeats.isSilent(reportedLongAgo)).toBe(false);
    t.now = T0 + TIMEOUT;
    expect(heartbeats.isSilent(reportedLongAgo)).toBe(true);
    // An agent without a Lease (an older one) is judged by its status alone.
    expect(heartbeats.isSilent({ ...nodeBeatingAt(t.now - 1_000), metadata: { name: 'node-b' } })).toBe(false);
  });

  it('judges no host while the Leases are unread or unreadable, and gives a full timeout only after losing sight of them', () => {
    const { t, heartbeats } = clockAt(T0);
    const old = nodeBeatingAt(T0 - 10 * TIMEOUT);
    heartbeats.viewLost('leases');
    expect(heartbeats.isSilent(old)).toBe(false);
    // The first read ends a blindness of not having looked yet: no grace.
    heartbeats.viewRestored('leases', false);
    expect(heartbeats.isSilent(old)).toBe(true);
    // A read that failed blinds the clock even while the ComputeNode watch is fine...
    heartbeats.viewLost('leases');
    expect(heartbeats.isSilent(old)).toBe(false);
    // ...and the ComputeNode watch coming back does not end that blindness.
    heartbeats.viewLost('nodes');
    heartbeats.viewRestored('nodes');
    t.now = T0 + 2 * TIMEOUT;
    expect(heartbeats.isSilent(old)).toBe(false);
    heartbeats.viewRestored('leases');
    expect(heartbeats.isSilent(old)).toBe(false);
    t.now = T0 + 3 * TIMEOUT + 1;
    expect(heartbeats.isSilent(old)).toBe(true);
  });
});
