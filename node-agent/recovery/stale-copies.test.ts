import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resourcesOf } from '../../common/api/flavor.js';
import { API_VERSION, FINALIZER, type Instance, type MigrationStatus } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import type { FakeCluster } from '../../common/kube/fake.js';
import { SMALL, bootOn, claimsOn, oneHost, silentLog, type TestHost, type TestHosts } from '../testing.js';
import { StaleCopies } from './stale-copies.js';

let cluster: FakeCluster;
let hosts: TestHosts;
let a: TestHost;

beforeEach(async () => {
  ({ cluster, hosts, host: a } = await oneHost('host-a'));
});
afterEach(() => hosts.cleanup());

/** Counts the live reads the pass makes. */
function counting(kube: KubeClient) {
  const reads = { instances: 0, migrations: 0 };
  const counted: KubeClient = {
    ...kube,
    instances: { ...kube.instances, get: (ref) => (reads.instances++, kube.instances.get(ref)) },
    migrations: { ...kube.migrations, get: (ref) => (reads.migrations++, kube.migrations.get(ref)) },
  };
  return { counted, reads };
}

function staleCopies(opts: { instances?: ObjectCache<'Instance'>; kube?: KubeClient } = {}) {
  return new StaleCopies(
    a.name,
    opts.kube ?? a.kube,
    a.tracker,
    a.driver,
    opts.instances ?? cluster.cache('Instance'),
    cluster.cache('Migration'),
    a.events,
    silentLog,
  );
}

/** An Instance cache that has not caught up: it answers with `view` for web-1. */
const cacheShowing = (view: Instance | undefined): ObjectCache<'Instance'> => ({
  get: () => view,
  list: () => (view ? [view] : []),
});

function seedMigration(name: string, instance: string, status: MigrationStatus) {
  return cluster.seed<'Migration'>({
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name, namespace: 'default' },
    spec: { instance },
    status: { type: 'migration', oldFlavor: SMALL, newFlavor: SMALL, ...status },
  });
}

/** web-1 booted on host-a, then rebuilt on host-b while host-a was down (its evacuation confirmed). */
async function evacuatedToB(): Promise<Instance> {
  const inst = await bootOn(a, cluster, 'web-1');
  seedMigration('web-1-evacuate-1', 'web-1', { status: 'confirmed', sourceHost: 'host-a', destHost: 'host-b' });
  return a.kube.instances.patchStatus(inst, { host: 'host-b' });
}

/** web-1 booted on host-a, then deleted while host-a was down (its Instance is gone). */
async function deletedMeanwhile(): Promise<Instance> {
  const inst = await bootOn(a, cluster, 'web-1');
  await a.kube.instances.delete({ namespace: 'default', name: 'web-1' });
  expect(cluster.get('Instance', 'web-1')).toBeUndefined();
  return inst;
}

describe('StaleCopies', () => {
  it('destroys the copy of an instance deleted while the host was down and drops its claim', async () => {
    const inst = await deletedMeanwhile();
    const uid = inst.metadata.uid!;

    const result = await staleCopies().run();

    expect(result).toEqual({ destroyed: [uid], droppedClaims: [uid] });
    expect(await a.driver.get(uid)).toBeUndefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
    expect(cluster.get('ComputeNode', 'host-a')?.status?.allocated).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
  });

  it('records a StaleCopyDestroyed Event on the deleted instance saying why', async () => {
    await deletedMeanwhile();

    await staleCopies().run();

    const event = cluster.events.find((e) => e.reason === 'StaleCopyDestroyed');
    expect(event?.involvedObject).toMatchObject({ kind: 'Instance', name: 'web-1', namespace: 'default' });
    expect(event?.message).toMatch(/host-a.*default\/web-1 and dropped its claim: the instance was deleted/);
  });

  it('destroys the copy of an instance that now runs on another host, with an Event naming that host', async () => {
    const inst = await evacuatedToB();
    const uid = inst.metadata.uid!;

    const result = await staleCopies().run();

    expect(result).toEqual({ destroyed: [uid], droppedClaims: [uid] });
    expect(await a.driver.get(uid)).toBeUndefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
    expect(cluster.eventsFor('web-1')).toContain('StaleCopyDestroyed');
    expect(cluster.events.find((e) => e.reason === 'StaleCopyDestroyed')?.message).toContain('now runs on host-b');
  });

  it('destroys the copy of a boot the conductor gave up on while this host could not report it', async () => {
    // host-a claimed and spawned web-1, then lost the API server before its active write; the
    // conductor meanwhile found no host and ended the boot in error.
    const inst = await bootOn(a, cluster, 'web-1');
    const uid = inst.metadata.uid!;
    await a.kube.instances.patchStatus(inst, { host: null, vmState: 'error', taskState: '' });

    const result = await staleCopies().run();

    expect(result).toEqual({ destroyed: [uid], droppedClaims: [uid] });
    expect(await a.driver.get(uid)).toBeUndefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
    expect(cluster.events.find((e) => e.reason === 'StaleCopyDestroyed')?.message).toContain(
      'its boot here was given up',
    );
  });

  it('keeps the copy of a boot still placed on this host (claimed and spawned, its active write not made yet)', async () => {
    const inst = await bootOn(a, cluster, 'web-1');
    await a.kube.instances.patchStatus(inst, {
      host: null,
      vmState: 'building',
      taskState: 'scheduling',
      scheduling: { attempts: 1, selectedHost: 'host-a' },
    });

    const result = await staleCopies().run();

    expect(result).toEqual({ destroyed: [], droppedClaims: [] });
    expect(await a.driver.get(inst.metadata.uid!)).toBeDefined();
  });

  it('destroys a <uid>_resize backup along with the domain', async () => {
    const inst = await bootOn(a, cluster, 'web-1');
    const uid = inst.metadata.uid!;
    await a.driver.migrateOut(uid);
    expect(await a.driver.hasBackup(uid)).toBe(true);
    await a.kube.instances.patchStatus(inst, { host: 'host-b' });

    await staleCopies().run();

    expect(await a.driver.hasBackup(uid)).toBe(false);
    expect(await a.driver.get(uid)).toBeUndefined();
  });

  it('destroys the copy of an instance deleted and created again under the same name (a new uid)', async () => {
    const old = await deletedMeanwhile();
    await bootOn(await hosts.add('host-b'), cluster, 'web-1');

    const result = await staleCopies().run();

    expect(result.destroyed).toEqual([old.metadata.uid]);
  });

  it('keeps the copy while a live Migration names this host as its source (a migration awaiting confirm)', async () => {
    const inst = await bootOn(a, cluster, 'web-1');
    seedMigration('web-1-move', 'web-1', { status: 'finished', sourceHost: 'host-a', destHost: 'host-b' });
    await a.kube.instances.patchStatus(inst, { host: 'host-b', migration: 'web-1-move' });

    const result = await staleCopies().run();

    expect(result).toEqual({ destroyed: [], droppedClaims: [] });
    expect(await a.driver.get(inst.metadata.uid!)).toBeDefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${inst.metadata.uid}`]);
  });

  it('keeps the files of an instance a failed revert left in error, as its fault promises, until it is deleted', async () => {
    const inst = await bootOn(a, cluster, 'web-1');
    seedMigration('web-1-resize-2', 'web-1', { status: 'error', sourceHost: 'host-a', destHost: 'host-b' });
    const stranded = await a.kube.instances.patchStatus(inst, { host: 'host-b', vmState: 'error', migration: null });

    expect((await staleCopies().run()).destroyed).toEqual([]);
    expect(await a.driver.get(inst.metadata.uid!)).toBeDefined();

    await a.kube.instances.patchStatus(stranded, { vmState: 'active' });
    expect((await staleCopies().run()).destroyed).toEqual([inst.metadata.uid]);
  });

  it('gives the kept files of a stranded instance back once it is being deleted: its finalizer waits for this claim', async () => {
    const inst = await bootOn(a, cluster, 'web-1');
    seedMigration('web-1-resize-2', 'web-1', { status: 'error', sourceHost: 'host-a', destHost: 'host-b' });
    await a.kube.instances.patchStatus(inst, { host: 'host-b', vmState: 'error', migration: null });
    await a.kube.instances.patch({ namespace: 'default', name: 'web-1' }, { metadata: { finalizers: [FINALIZER] } });
    await a.kube.instances.delete({ namespace: 'default', name: 'web-1' });

    expect(await staleCopies().run()).toEqual({ destroyed: [inst.metadata.uid], droppedClaims: [inst.metadata.uid] });
    expect(await a.driver.get(inst.metadata.uid!)).toBeUndefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
  });

  it('keeps the copy while an evacuation from this host is still running', async () => {
    const inst = await bootOn(a, cluster, 'web-1');
    seedMigration('web-1-evacuate-1', 'web-1', { status: 'post-migrating', sourceHost: 'host-a', destHost: 'host-b' });
    await a.kube.instances.patchStatus(inst, { host: 'host-b', migration: 'web-1-evacuate-1' });

    expect((await staleCopies().run()).destroyed).toEqual([]);
  });

  it('keeps what a migration to this host has claimed since (its destination owns it)', async () => {
    const inst = await evacuatedToB();
    await a.tracker.claim({
      consumer: 'uid-mig',
      kind: 'migration',
      instance: 'default/web-1',
      ...resourcesOf(SMALL),
    });

    expect((await staleCopies().run()).destroyed).toEqual([]);
    expect(await a.driver.get(inst.metadata.uid!)).toBeDefined();
  });

  it('trusts the live API over a cache that says the instance is gone: a copy of an instance on this host stays', async () => {
    const inst = await bootOn(a, cluster, 'web-1');

    const result = await staleCopies({ instances: cacheShowing(undefined) }).run();

    expect(result).toEqual({ destroyed: [], droppedClaims: [] });
    expect(await a.driver.get(inst.metadata.uid!)).toBeDefined();
  });

  it('trusts the live API over a cache that says the instance moved away', async () => {
    const inst = await bootOn(a, cluster, 'web-1');
    const stale = { ...inst, status: { ...inst.status, host: 'host-b' } };

    expect((await staleCopies({ instances: cacheShowing(stale) }).run()).destroyed).toEqual([]);
  });

  it('makes no API read on a host with nothing stale', async () => {
    await bootOn(a, cluster, 'web-1');
    const { counted, reads } = counting(a.kube);

    await staleCopies({ kube: counted }).run();

    expect(reads).toEqual({ instances: 0, migrations: 0 });
  });

  it('is idempotent: a second pass finds nothing and records no second Event', async () => {
    await deletedMeanwhile();
    await staleCopies().run();

    expect(await staleCopies().run()).toEqual({ destroyed: [], droppedClaims: [] });
    expect(cluster.events.filter((e) => e.reason === 'StaleCopyDestroyed')).toHaveLength(1);
  });

  it('leaves claims of kind migration to the audit, even when their Migration is gone', async () => {
    await a.tracker.claim({
      consumer: 'uid-gone-mig',
      kind: 'migration',
      instance: 'default/web-9',
      ...resourcesOf(SMALL),
    });

    expect(await staleCopies().run()).toEqual({ destroyed: [], droppedClaims: [] });
    expect(claimsOn(cluster, 'host-a')).toEqual(['migration/uid-gone-mig']);
  });

  it('leaves other instances on this host alone', async () => {
    await deletedMeanwhile();
    const other = await bootOn(a, cluster, 'db-1');

    await staleCopies().run();

    expect(await a.driver.get(other.metadata.uid!)).toBeDefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${other.metadata.uid}`]);
  });
});
