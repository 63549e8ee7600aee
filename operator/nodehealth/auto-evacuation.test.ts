import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { API_VERSION, type InstanceSpec, type MigrationStatus } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { aMigration, aNode, anInstance, running, SMALL, snapshot, T0 } from '../testing.js';
import { AutoEvacuation } from './auto-evacuation.js';

const small = snapshot('m1.small', SMALL);
const log = pino({ level: 'silent' });
const RETRY_AFTER_MS = 60_000;

/** node-a (forced down unless said) and node-b; web-1 on node-a with the given spec. */
function world(spec: Partial<InstanceSpec> = { evacuationPolicy: 'Automatic' }, forcedDown = true) {
  const cluster = new FakeCluster();
  const kube = cluster.client();
  const clock = { now: T0 };
  const nodeA = aNode('node-a', T0, { ready: 'Unknown' });
  nodeA.spec.forcedDown = forcedDown;
  cluster.seed(nodeA);
  cluster.seed(aNode('node-b', T0));
  const inst = cluster.seed(anInstance('web-1', spec, running('node-a', small)));
  const auto = new AutoEvacuation(
    kube,
    cluster.cache('ComputeNode'),
    cluster.cache('Instance'),
    cluster.cache('Migration'),
    cluster.recorder(log, 'operator'),
    log,
    { maxAttempts: 3, retryAfterMs: RETRY_AFTER_MS },
    () => clock.now,
  );
  const migrations = () => cluster.list('Migration', 'default').map((m) => m.metadata.name);
  const seedEvacuation = (name: string, status: MigrationStatus) =>
    cluster.seed(aMigration(name, { instance: 'web-1', type: 'Evacuation' }, status));
  return { cluster, kube, clock, inst, auto, migrations, seedEvacuation };
}

const failedAt = (t: Date): MigrationStatus => ({
  status: 'error',
  sourceHost: 'node-a',
  finishedAt: t.toISOString(),
});

describe('AutoEvacuation', () => {
  it('creates web-1-evacuate-1 (type Evacuation, owned by the Instance) for an Automatic instance on a forced-down host', async () => {
    const w = world();

    await w.auto.check();

    const mig = w.cluster.get('Migration', 'web-1-evacuate-1', 'default');
    expect(mig?.spec).toMatchObject({ instance: 'web-1', type: 'Evacuation' });
    expect(mig?.metadata.labels).toEqual({ 'compute.kubenova.io/instance': 'web-1' });
    expect(mig?.metadata.ownerReferences).toEqual([
      {
        apiVersion: API_VERSION,
        kind: 'Instance',
        name: 'web-1',
        uid: w.inst.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
  });

  it('records one EvacuationStarted Event naming the host and the Migration', async () => {
    const w = world();

    await w.auto.check();
    await w.auto.check();

    const events = w.cluster.events.filter((e) => e.reason === 'EvacuationStarted');
    expect(events).toHaveLength(1);
    expect(events[0]?.involvedObject.name).toBe('web-1');
    expect(events[0]?.message).toContain('node-a');
    expect(events[0]?.message).toContain('web-1-evacuate-1');
  });

  it('is idempotent: while its evacuation is live, repeated passes create nothing more', async () => {
    const w = world();
    await w.auto.check();
    await w.auto.check();
    await w.kube.migrations.patchStatus(w.cluster.get('Migration', 'web-1-evacuate-1', 'default')!, {
      status: 'pre-migrating',
      sourceHost: 'node-a',
    });
    await w.auto.check();

    expect(w.migrations()).toEqual(['web-1-evacuate-1']);
  });

  it('a pass on a cache that has not seen its own Migration yet meets AlreadyExists and writes no second Event', async () => {
    const w = world();
    await w.auto.check();
    const stale = new AutoEvacuation(
      w.kube,
      w.cluster.cache('ComputeNode'),
      w.cluster.cache('Instance'),
      { get: () => undefined, list: () => [] },
      w.cluster.recorder(log, 'operator'),
      log,
    );

    await stale.check();

    expect(w.migrations()).toEqual(['web-1-evacuate-1']);
    expect(w.cluster.eventsFor('web-1')).toEqual(['EvacuationStarted']);
  });

  it('leaves Manual instances (the default) to the admin', async () => {
    const w = world({});

    await w.auto.check();

    expect(w.migrations()).toEqual([]);
  });

  it('does nothing while the host is only not Ready, not forced down', async () => {
    const w = world({ evacuationPolicy: 'Automatic' }, false);

    await w.auto.check();

    expect(w.migrations()).toEqual([]);
  });

  it('does not evacuate an instance being deleted, or one on a healthy host', async () => {
    const w = world();
    w.cluster.seed(anInstance('db-1', { evacuationPolicy: 'Automatic' }, running('node-b', small)));
    await w.kube.instances.delete({ namespace: 'default', name: 'web-1' });

    await w.auto.check();

    expect(w.migrations()).toEqual([]);
  });

  it('after a failed evacuation, waits retryAfter and then creates the next number', async () => {
    const w = world();
    w.seedEvacuation('web-1-evacuate-1', failedAt(T0));

    w.clock.now = new Date(T0.getTime() + RETRY_AFTER_MS - 1);
    await w.auto.check();
    expect(w.migrations()).toEqual(['web-1-evacuate-1']);

    w.clock.now = new Date(T0.getTime() + RETRY_AFTER_MS);
    await w.auto.check();
    expect(w.migrations()).toEqual(['web-1-evacuate-1', 'web-1-evacuate-2']);
  });

  it('numbers after the highest existing name, so a deleted earlier one is never reused', async () => {
    const w = world();
    w.seedEvacuation('web-1-evacuate-4', { ...failedAt(T0), sourceHost: 'node-c' });
    w.clock.now = new Date(T0.getTime() + 10 * RETRY_AFTER_MS);

    await w.auto.check();

    expect(w.migrations()).toContain('web-1-evacuate-5');
  });

  it('stops trying by itself after maxAttempts failed evacuations from this host', async () => {
    const w = world();
    for (const n of [1, 2, 3]) w.seedEvacuation(`web-1-evacuate-${n}`, failedAt(T0));
    w.clock.now = new Date(T0.getTime() + 10 * RETRY_AFTER_MS);

    await w.auto.check();

    expect(w.migrations()).toHaveLength(3);
  });

  it('a freshly confirmed evacuation from this host whose instance has not moved yet starts no other', async () => {
    const w = world();
    w.seedEvacuation('web-1-evacuate-1', { status: 'confirmed', sourceHost: 'node-a', finishedAt: T0.toISOString() });

    await w.auto.check();

    expect(w.migrations()).toEqual(['web-1-evacuate-1']);
  });

  it('an unrelated live Migration of another type does not stand in for an evacuation', async () => {
    const w = world();
    w.cluster.seed(aMigration('web-1-resize-2', { instance: 'web-1', flavor: 'm1.large' }, { status: 'migrating' }));

    await w.auto.check();

    expect(w.migrations()).toContain('web-1-evacuate-1');
  });
});
