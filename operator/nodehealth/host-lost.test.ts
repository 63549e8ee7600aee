import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { getCondition } from '../../common/api/conditions.js';
import type { Instance } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { aNode, anInstance, running, SMALL, snapshot, T0 } from '../testing.js';
import { HostLostReporter, lostSince } from './host-lost.js';
import { NodeMonitor } from './node-monitor.js';
import { HeartbeatClock } from './heartbeat-clock.js';

const GRACE_MS = 60_000;
const HEARTBEAT_TIMEOUT_MS = 40_000;
const small = snapshot('m1.small', SMALL);
const log = pino({ level: 'silent' });

/**
 * node-a and node-b with live agents at T0, web-1 (and db-1) running on node-a; the node
 * monitor with the host-lost pass, on a clock the test moves.
 */
function world() {
  const cluster = new FakeCluster();
  const kube = cluster.client();
  const clock = { now: T0 };
  const now = () => clock.now;
  const events = cluster.recorder(log, 'operator');
  cluster.seed(aNode('node-a', T0));
  cluster.seed(aNode('node-b', T0));
  for (const name of ['web-1', 'db-1']) cluster.seed(anInstance(name, {}, running('node-a', small)));
  const nodes = cluster.cache('ComputeNode');
  const reporter = new HostLostReporter(
    kube,
    nodes,
    cluster.cache('Instance'),
    events,
    { graceMs: GRACE_MS },
    log,
    now,
  );
  const monitor = new NodeMonitor(
    kube,
    nodes,
    events,
    new HeartbeatClock(HEARTBEAT_TIMEOUT_MS, () => clock.now.getTime()),
    { periodMs: 1_000 },
    log,
    now,
  );
  monitor.addPass(reporter);
  const at = (ms: number) => (clock.now = new Date(T0.getTime() + ms));
  const instance = (name: string) => cluster.get('Instance', name, 'default') as Instance;
  const hostLost = (name: string) => getCondition(instance(name).status?.conditions, 'HostLost');
  /** node-a's agent posts a heartbeat now, as it does when it comes back. */
  const heartbeat = async (node: string) => {
    const cn = cluster.get('ComputeNode', node)!;
    const ready = { type: 'Ready', status: 'True' as const, reason: 'NodeAgentReady', message: '' };
    const fresh = aNode(node, clock.now).status!;
    const wasReady = cn.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    const lastTransitionTime = wasReady ? cn.status!.conditions![0]!.lastTransitionTime : clock.now.toISOString();
    await kube.computeNodes.patchStatus(cn, {
      heartbeatTime: fresh.heartbeatTime,
      conditions: [{ ...ready, lastTransitionTime }],
    });
  };
  /** node-a went silent at T0 and is marked not Ready by the node monitor at T0 + timeout; node-b lives on. */
  const loseNodeA = async () => {
    at(HEARTBEAT_TIMEOUT_MS + 1);
    await heartbeat('node-b');
    await monitor.check();
  };
  return { cluster, kube, monitor, at, instance, hostLost, heartbeat, loseNodeA };
}

describe('lostSince', () => {
  it('is when the host stopped being Ready, once that is longer ago than the grace period', () => {
    const node = aNode('node-a', T0, { ready: 'Unknown' });
    expect(lostSince(node, new Date(T0.getTime() + GRACE_MS), GRACE_MS)).toBeUndefined();
    expect(lostSince(node, new Date(T0.getTime() + GRACE_MS + 1), GRACE_MS)).toEqual(T0);
  });

  it('is never for a Ready host, however old its condition', () => {
    expect(lostSince(aNode('node-a', T0), new Date(T0.getTime() + 10 * GRACE_MS), GRACE_MS)).toBeUndefined();
  });
});

describe('HostLostReporter', () => {
  it('leaves instances alone while their host has been not Ready for less than the grace period', async () => {
    const w = world();
    await w.loseNodeA();
    w.at(HEARTBEAT_TIMEOUT_MS + GRACE_MS);

    await w.monitor.check();

    expect(w.hostLost('web-1')).toBeUndefined();
    expect(w.cluster.eventsFor('web-1')).toEqual([]);
  });

  it('past the grace period, every instance on the host gets HostLost=True saying since when and what to do', async () => {
    const w = world();
    await w.loseNodeA();
    w.at(HEARTBEAT_TIMEOUT_MS + 1 + GRACE_MS + 1);

    await w.monitor.check();

    for (const name of ['web-1', 'db-1']) {
      const cond = w.hostLost(name);
      expect(cond).toMatchObject({ status: 'True', reason: 'HostLost' });
      expect(cond?.message).toContain(
        `not been Ready since ${new Date(T0.getTime() + HEARTBEAT_TIMEOUT_MS + 1).toISOString()}`,
      );
      expect(cond?.message).toContain('spec.forcedDown');
      expect(cond?.message).toMatch(/evacuat/);
    }
  });

  it("keeps the instance's vmState, powerState and task as last reported", async () => {
    const w = world();
    const before = w.instance('web-1').status!;
    await w.loseNodeA();
    w.at(HEARTBEAT_TIMEOUT_MS + 2 * GRACE_MS);

    await w.monitor.check();

    const after = w.instance('web-1').status!;
    expect({
      vmState: after.vmState,
      powerState: after.powerState,
      taskState: after.taskState,
      host: after.host,
    }).toEqual({
      vmState: before.vmState,
      powerState: before.powerState,
      taskState: before.taskState,
      host: before.host,
    });
  });

  it('records one Warning HostLost Event per instance, however many passes follow', async () => {
    const w = world();
    await w.loseNodeA();
    w.at(HEARTBEAT_TIMEOUT_MS + 2 * GRACE_MS);
    const writes = w.cluster.writes.length;

    await w.monitor.check();
    await w.monitor.check();
    w.at(HEARTBEAT_TIMEOUT_MS + 5 * GRACE_MS);
    await w.monitor.check();

    expect(w.cluster.eventsFor('web-1')).toEqual(['HostLost']);
    expect(w.cluster.events.find((e) => e.reason === 'HostLost')?.type).toBe('Warning');
    const instanceWrites = w.cluster.writes.slice(writes).filter((x) => x.kind === 'Instance');
    expect(instanceWrites.map((x) => `${x.verb} ${x.kind}/${x.name}`)).toEqual([
      'patchStatus Instance/web-1',
      'patchStatus Instance/db-1',
    ]);
  });

  it('does not touch instances on a healthy host, or instances being deleted', async () => {
    const w = world();
    w.cluster.seed(anInstance('elsewhere', {}, running('node-b', small)));
    await w.kube.instances.delete({ namespace: 'default', name: 'db-1' });
    await w.loseNodeA();
    w.at(HEARTBEAT_TIMEOUT_MS + 2 * GRACE_MS);
    await w.heartbeat('node-b');

    await w.monitor.check();

    expect(w.hostLost('elsewhere')).toBeUndefined();
    expect(w.hostLost('db-1')).toBeUndefined();
    expect(w.hostLost('web-1')?.status).toBe('True');
  });

  it('when the host is Ready again, HostLost goes False with reason HostBack and one Normal Event', async () => {
    const w = world();
    await w.loseNodeA();
    w.at(HEARTBEAT_TIMEOUT_MS + 2 * GRACE_MS);
    await w.monitor.check();
    w.at(HEARTBEAT_TIMEOUT_MS + 3 * GRACE_MS);
    await w.heartbeat('node-a');

    await w.monitor.check();
    await w.monitor.check();

    expect(w.hostLost('web-1')).toMatchObject({ status: 'False', reason: 'HostBack' });
    expect(w.cluster.eventsFor('web-1')).toEqual(['HostLost', 'HostBack']);
    expect(w.cluster.events.find((e) => e.reason === 'HostBack')?.type).toBe('Normal');
  });

  it('an instance that moved to a healthy host (evacuated) has HostLost cleared, without a HostBack Event', async () => {
    const w = world();
    await w.loseNodeA();
    w.at(HEARTBEAT_TIMEOUT_MS + 2 * GRACE_MS);
    await w.heartbeat('node-b');
    await w.monitor.check();
    await w.kube.instances.patchStatus(w.instance('web-1'), { host: 'node-b' });
    w.at(HEARTBEAT_TIMEOUT_MS + 3 * GRACE_MS);
    await w.heartbeat('node-b');

    await w.monitor.check();

    expect(w.hostLost('web-1')).toMatchObject({ status: 'False', reason: 'Evacuated' });
    expect(w.hostLost('web-1')?.message).toContain('node-b');
    expect(w.cluster.eventsFor('web-1')).toEqual(['HostLost']);
    // db-1 stays on the lost host, still lost.
    expect(w.hostLost('db-1')?.status).toBe('True');
  });

  it('a conflicting write (the agent wrote first) is left for the next pass, with no Event', async () => {
    const w = world();
    await w.loseNodeA();
    w.at(HEARTBEAT_TIMEOUT_MS + 2 * GRACE_MS);
    w.cluster.failNext('Instance', 'patchStatus', undefined, 'web-1');

    await w.monitor.check();
    expect(w.hostLost('web-1')).toBeUndefined();
    expect(w.cluster.eventsFor('web-1')).toEqual([]);

    await w.monitor.check();
    expect(w.hostLost('web-1')?.status).toBe('True');
    expect(w.cluster.eventsFor('web-1')).toEqual(['HostLost']);
  });
});

describe('NodeMonitor passes', () => {
  it('run after every check, even one whose heartbeat write failed, and a failing pass does not stop the next', async () => {
    const w = world();
    const ran: string[] = [];
    w.monitor.addPass({
      name: 'broken',
      check: async () => {
        ran.push('broken');
        throw new Error('boom');
      },
    });
    w.monitor.addPass({ name: 'after', check: async () => void ran.push('after') });
    w.at(HEARTBEAT_TIMEOUT_MS + 1);
    w.cluster.failNext('ComputeNode', 'patchStatus', new Error('API server down'));

    await expect(w.monitor.check()).rejects.toThrow('API server down');

    expect(ran).toEqual(['broken', 'after']);
  });

  it('do not run on a replica that may not act', async () => {
    const cluster = new FakeCluster();
    const kube = cluster.client();
    const ran: string[] = [];
    const monitor = new NodeMonitor(
      kube,
      cluster.cache('ComputeNode'),
      cluster.recorder(log),
      new HeartbeatClock(1),
      { periodMs: 1 },
      log,
      undefined,
      () => false,
    ).addPass({ name: 'p', check: async () => void ran.push('p') });

    await monitor.check();

    expect(ran).toEqual([]);
  });
});
