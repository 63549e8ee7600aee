import { describe, expect, it } from 'vitest';
import type { Fault } from '../../common/api/faults.js';
import type { Instance } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { ServerGroups } from '../servergroups/membership.js';
import { aNode, anInstance } from '../testing.js';
import { PlacementAttempts, placementStep, type PlacementTarget } from './attempts.js';
import { Placement } from './placement.js';
import { DEFAULT_SCHEDULER_CONFIG, Scheduler } from './scheduler.js';
import { aRequest } from './testing.js';

const up = () => true;
const down = () => false;

describe('placement step', () => {
  it('schedules when nothing was chosen yet', () =>
    expect(placementStep(undefined, up, 'instance')).toEqual({ next: 'schedule' }));
  it("waits for the chosen host's agent while the host is alive", () =>
    expect(placementStep({ attempts: 1, selectedHost: 'a' }, up, 'instance')).toEqual({ next: 'wait' }));
  it("retries after a failed claim of the current attempt, with the agent's reason", () =>
    expect(
      placementStep(
        {
          attempts: 1,
          selectedHost: 'a',
          claimFailure: { host: 'a', attempt: 1, message: 'free vcpus 0 < requested 2' },
        },
        up,
        'instance',
      ),
    ).toEqual({ next: 'retry', host: 'a', reason: 'free vcpus 0 < requested 2' }));
  it('ignores the failure of an earlier attempt', () =>
    expect(
      placementStep(
        { attempts: 2, selectedHost: 'b', claimFailure: { host: 'a', attempt: 1, message: 'x' } },
        up,
        'instance',
      ),
    ).toEqual({ next: 'wait' }));
  it('retries when the chosen host went silent before claiming', () =>
    expect(placementStep({ attempts: 1, selectedHost: 'a' }, down, 'migration')).toEqual({
      next: 'retry',
      host: 'a',
      reason: 'host a stopped responding before it claimed the migration',
    }));
});

describe('PlacementAttempts', () => {
  const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

  function setup() {
    const cluster = new FakeCluster();
    const now = new Date('2025-01-01T12:00:00Z');
    cluster.seed(aNode('node-a', now));
    cluster.seed(aNode('node-b', now));
    const scheduler = new Scheduler(DEFAULT_SCHEDULER_CONFIG);
    const placement = new Placement(scheduler, cluster.cache('ComputeNode'), 40_000, () => now);
    const groups = new ServerGroups(cluster.cache('ServerGroup'), cluster.cache('Instance'));
    const attempts = new PlacementAttempts(placement, groups, { maxAttempts: 3, claimTimeoutMs: 20_000 });
    const order: string[] = [];
    const failed: Fault[] = [];
    const target = (name: string, spec: Partial<Instance['spec']> = {}): PlacementTarget => ({
      what: 'instance',
      consumer: `uid-${name}`,
      instance: anInstance(name, spec),
      scheduling: undefined,
      request: () => {
        order.push(`request ${name}`);
        return aRequest({ instance: `default/${name}` });
      },
      beforeSelect: tick,
      recordAttempt: async (s) => {
        await tick();
        order.push(`record ${name} on ${s.selectedHost}`);
      },
      fail: async (fault) => {
        failed.push(fault);
        return {};
      },
      announce: () => undefined,
    });
    return { attempts, placement, order, failed, target };
  }

  it('places the members of one server group one at a time, so each sees where the last one went', async () => {
    const { attempts, order, target } = setup();

    await Promise.all([
      attempts.step(target('web-1', { serverGroup: 'together' })),
      attempts.step(target('web-2', { serverGroup: 'together' })),
    ]);

    expect(order).toEqual(['request web-1', 'record web-1 on node-a', 'request web-2', 'record web-2 on node-b']);
  });

  it('does not make placements outside a server group wait for each other', async () => {
    const { attempts, order, target } = setup();

    await Promise.all([attempts.step(target('web-1')), attempts.step(target('web-2'))]);

    expect(order.slice(0, 2)).toEqual(['request web-1', 'request web-2']);
  });

  it('throws an unexpected error before the decision for a retry, without a fault and without placing', async () => {
    const { attempts, placement, failed, order, target } = setup();
    const broken = { ...target('web-1'), beforeSelect: () => Promise.reject(new Error('quota service unreachable')) };

    await expect(attempts.step(broken)).rejects.toThrow('quota service unreachable');

    expect(failed).toEqual([]);
    expect(order).toEqual(['request web-1']);
    expect(placement.inFlight.size()).toBe(0);
  });
});
