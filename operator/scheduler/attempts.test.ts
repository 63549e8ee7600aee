import { describe, expect, it } from 'vitest';
import type { Fault } from '../../common/api/faults.js';
import type { Instance } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { ServerGroups } from '../servergroups/membership.js';
import { aNode, anInstance } from '../testing.js';
import {
  describeAttempts,
  exhaustedReason,
  PlacementAttempts,
  placementStep,
  type PlacementFailure,
  type PlacementTarget,
} from './attempts.js';
import { Placement } from './placement.js';
import { DEFAULT_SCHEDULER_CONFIG, Scheduler } from './scheduler.js';
import { aRequest } from './testing.js';
import { HeartbeatClock } from '../nodehealth/heartbeat-clock.js';

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
    ).toEqual({ next: 'retry', failure: { host: 'a', attempt: 1, message: 'free vcpus 0 < requested 2' } }));
  it('retries after a failed spawn of the current attempt, keeping that it was the spawn that failed', () =>
    expect(
      placementStep(
        {
          attempts: 2,
          selectedHost: 'b',
          claimFailure: { host: 'b', attempt: 2, reason: 'SpawnFailed', message: 'spawn failed: boom' },
        },
        up,
        'instance',
      ),
    ).toEqual({
      next: 'retry',
      failure: { host: 'b', attempt: 2, reason: 'SpawnFailed', message: 'spawn failed: boom' },
    }));
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
      failure: { host: 'a', attempt: 1, message: 'host a stopped responding before it claimed the migration' },
    }));
});

describe('the fault that ends a placement after failed attempts', () => {
  const claim = (host: string, attempt: number) => ({ host, attempt, message: `claim on ${host} failed: no room` });
  const spawn = (host: string, attempt: number) => ({
    host,
    attempt,
    reason: 'SpawnFailed' as const,
    message: 'spawn failed: boom',
  });

  it('is SpawnFailed when the last attempt failed in spawn, NoValidHost when it failed to claim or was lost', () => {
    expect(exhaustedReason(spawn('b', 2))).toBe('SpawnFailed');
    expect(exhaustedReason(claim('b', 2))).toBe('NoValidHost');
    expect(exhaustedReason({ host: 'b', attempt: 2, message: 'host b stopped responding' })).toBe('NoValidHost');
  });

  it("names every attempt's host and why, in order", () =>
    expect(describeAttempts([claim('a', 1), spawn('b', 2), spawn('c', 3)], 3)).toBe(
      'no host could take the instance after 3 attempts: a: claim on a failed: no room; ' +
        'b: spawn failed: boom; c: spawn failed: boom',
    ));

  it('says nothing when not every attempt was recorded (a placement that does not keep them)', () =>
    expect(describeAttempts([spawn('c', 3)], 3)).toBeUndefined());

  it('shortens a very long failure so the fault stays within its limit', () => {
    const long = { host: 'a', attempt: 1, message: 'x'.repeat(5000) };
    const text = describeAttempts([long], 1) ?? '';
    expect(text.length).toBeLessThan(1100);
    expect(text.endsWith('…')).toBe(true);
  });
});

describe('PlacementAttempts', () => {
  const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

  function setup() {
    const cluster = new FakeCluster();
    const now = new Date('2025-01-01T12:00:00Z');
    cluster.seed(aNode('node-a', now));
    cluster.seed(aNode('node-b', now));
    const scheduler = new Scheduler(DEFAULT_SCHEDULER_CONFIG);
    const placement = new Placement(
      scheduler,
      cluster.cache('ComputeNode'),
      new HeartbeatClock(40_000, () => now.getTime()),
    );
    const groups = new ServerGroups(cluster.cache('ServerGroup'), cluster.cache('Instance'));
    const attempts = new PlacementAttempts(placement, groups, { maxAttempts: 3, claimTimeoutMs: 20_000 });
    const order: string[] = [];
    const failed: Fault[] = [];
    const recorded: PlacementFailure[][] = [];
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
      recordAttempt: async (s, failures) => {
        await tick();
        order.push(`record ${name} on ${s.selectedHost}`);
        recorded.push(failures);
      },
      fail: async (fault) => {
        failed.push(fault);
        return {};
      },
      announce: () => undefined,
    });
    return { attempts, placement, order, failed, recorded, target };
  }

  /** web-1 after `failures`, the last one of the current attempt, with node-a and node-b tried. */
  const failedOn = (base: PlacementTarget, failures: PlacementFailure[]): PlacementTarget => {
    const last = failures.at(-1)!;
    return {
      ...base,
      scheduling: {
        attempts: last.attempt,
        triedHosts: failures.map((f) => f.host),
        selectedHost: last.host,
        claimFailure: last,
        failures: failures.slice(0, -1),
      },
    };
  };
  const spawnFailed = (host: string, attempt: number): PlacementFailure => ({
    host,
    attempt,
    reason: 'SpawnFailed',
    message: `spawn failed: boom on ${host}`,
  });

  it('a retry records the earlier failures with the new attempt, the one just failed last', async () => {
    const { attempts, recorded, target } = setup();
    const first = { host: 'node-a', attempt: 1, message: 'claim on node-a failed: no room' };

    await attempts.step(failedOn(target('web-1'), [first]));

    expect(recorded).toEqual([[first]]);
  });

  it("when the attempts run out after spawn failures the fault is SpawnFailed and names every attempt's host", async () => {
    const { attempts, failed, order, target } = setup();

    await attempts.step(
      failedOn(target('web-1'), [spawnFailed('node-a', 1), spawnFailed('node-b', 2), spawnFailed('node-c', 3)]),
    );

    expect(order).toEqual([]);
    expect(failed.map((f) => [f.reason, f.message])).toEqual([
      [
        'SpawnFailed',
        'no host could take the instance after 3 attempts: node-a: spawn failed: boom on node-a; ' +
          'node-b: spawn failed: boom on node-b; node-c: spawn failed: boom on node-c',
      ],
    ]);
  });

  it('when the attempts run out on a refused claim after a spawn failure the fault stays NoValidHost', async () => {
    const { attempts, failed, target } = setup();
    const refused = { host: 'node-c', attempt: 3, message: 'claim on node-c failed: no room' };

    await attempts.step(failedOn(target('web-1'), [spawnFailed('node-a', 1), spawnFailed('node-b', 2), refused]));

    expect(failed[0]?.reason).toBe('NoValidHost');
    expect(failed[0]?.message).toContain('node-a: spawn failed: boom on node-a; ');
  });

  it('when no untried host is left after spawn failures, the fault names them and what the scheduler said', async () => {
    const { attempts, failed, target } = setup();

    // Both hosts of this world tried; a third attempt is allowed but nothing is left to try.
    const web1 = { ...target('web-1'), request: (tried: string[]) => aRequest({ ignoreHosts: tried }) };
    await attempts.step(failedOn(web1, [spawnFailed('node-a', 1), spawnFailed('node-b', 2)]));

    expect(failed[0]?.reason).toBe('SpawnFailed');
    expect(failed[0]?.message).toMatch(
      /^no host could take the instance after 2 attempts: node-a: spawn failed: boom on node-a; node-b: spawn failed: boom on node-b; no other host is left\. No valid host was found\./,
    );
  });

  it('a forced host whose spawn failed ends SpawnFailed without a retry', async () => {
    const { attempts, failed, order, target } = setup();

    const forced = { ...target('web-1', { host: 'node-a' }), forcedHost: 'node-a' };
    await attempts.step(failedOn(forced, [spawnFailed('node-a', 1)]));

    expect(order).toEqual([]);
    expect(failed.map((f) => [f.reason, f.message])).toEqual([
      ['SpawnFailed', 'forced host node-a could not take the instance: spawn failed: boom on node-a'],
    ]);
  });

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
