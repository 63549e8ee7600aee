import { describe, expect, it } from 'vitest';
import { NODE_LEASE_LABEL } from '../../common/api/node-lease.js';
import { createLogger } from '../../common/log.js';
import { HeartbeatClock } from './heartbeat-clock.js';
import { NodeLeases, type LeaseListApi } from './node-leases.js';

const T0 = Date.parse('2026-01-01T12:00:00Z');
const TIMEOUT = 8_000;
const log = createLogger({ component: 'test', level: 'silent' });

const lease = (name: string, renewMs?: number) => ({
  metadata: { name, namespace: 'kubenova-system', labels: { [NODE_LEASE_LABEL]: 'true' } },
  spec: renewMs === undefined ? {} : { holderIdentity: name, renewTime: new Date(renewMs).toISOString() },
});

function leasesAnswering(answer: () => ReturnType<typeof lease>[]) {
  const asked: object[] = [];
  const api = {
    listNamespacedCustomObject: (req: object) => {
      asked.push(req);
      return Promise.resolve({ items: answer() });
    },
  } as unknown as LeaseListApi;
  return { api, asked };
}

describe('NodeLeases', () => {
  it("reads the release namespace's node Leases from the watch cache and hands their renewals to the clock", async () => {
    const t = { now: T0 };
    const clock = new HeartbeatClock(TIMEOUT, () => t.now);
    const { api, asked } = leasesAnswering(() => [lease('node-a', T0 - 1_000), lease('node-b')]);
    const leases = new NodeLeases(api, 'kubenova-system', clock, log);
    expect(clock.lastBeatMs('node-a', NaN)).toBeNaN();

    await leases.refresh();
    expect(asked).toEqual([
      {
        group: 'coordination.k8s.io',
        version: 'v1',
        plural: 'leases',
        namespace: 'kubenova-system',
        labelSelector: NODE_LEASE_LABEL,
        resourceVersion: '0',
      },
    ]);
    expect(clock.lastBeatMs('node-a', T0 - 5_000)).toBe(T0 - 1_000);
    // A Lease never renewed says nothing; the status heartbeat still counts.
    expect(clock.lastBeatMs('node-b', T0 - 5_000)).toBe(T0 - 5_000);
  });

  it('keeps the clock from judging any host until the Leases have been read, and again while they cannot be', async () => {
    const t = { now: T0 };
    const clock = new HeartbeatClock(TIMEOUT, () => t.now);
    let failing = true;
    const { api } = leasesAnswering(() => {
      if (failing) throw new Error('leases is forbidden');
      return [];
    });
    const silentForLong = {
      apiVersion: 'compute.kubenova.io/v1alpha1' as const,
      kind: 'ComputeNode' as const,
      metadata: { name: 'node-a' },
      spec: {},
      status: { heartbeatTime: new Date(T0 - 10 * TIMEOUT).toISOString() },
    };
    const leases = new NodeLeases(api, 'kubenova-system', clock, log);
    expect(clock.isSilent(silentForLong)).toBe(false);
    await leases.refresh();
    expect(clock.isSilent(silentForLong)).toBe(false);
    failing = false;
    await leases.refresh();
    expect(clock.isSilent(silentForLong)).toBe(true);
  });
});
