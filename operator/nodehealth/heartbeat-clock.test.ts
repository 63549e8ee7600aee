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
});
