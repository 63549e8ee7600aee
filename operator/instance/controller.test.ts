import { describe, expect, it } from 'vitest';
import { FINALIZER, type QuotaAllocation } from '../../common/api/types.js';
import { aClaim, aMigration, anInstance, LARGE, running, SMALL, snapshot, World } from '../testing.js';

const INSTANCE_UID = 'uid-web-1';
const small = snapshot('m1.small', SMALL);

/** web-1 running m1.small on node-a (which holds its claim); m1.large exists too. */
function withRunningInstance(status = running('node-a', small)) {
  const world = new World();
  world.seedFlavor('m1.small');
  world.seedFlavor('m1.large', LARGE);
  world.seedNode('node-a', { claims: [aClaim(INSTANCE_UID, 'instance', SMALL)] });
  world.seedNode('node-b');
  const inst = anInstance('web-1', {}, status);
  inst.metadata.uid = INSTANCE_UID;
  world.seedInstance(inst);
  return world;
}

const ref = { namespace: 'default', name: 'web-1' };
const bootAllocation = (state: QuotaAllocation['state']): QuotaAllocation => ({
  consumer: INSTANCE_UID,
  instance: 'web-1',
  state,
  instances: 1,
  vcpus: 1,
  memoryMiB: 2048,
  diskGiB: 20,
});

describe('InstanceController: a new instance', () => {
  it('a new instance gets the cleanup finalizer, then in the same pass its placement: two writes in all', async () => {
    const world = new World();
    world.seedFlavor('m1.small');
    world.seedNode('node-a');
    const inst = anInstance('web-1');
    inst.metadata.finalizers = [];
    world.seedInstance(inst);
    const writes = world.cluster.writes.length;

    await world.reconcileInstance('web-1');

    // The status write starts from the version the finalizer patch returned: no conflict.
    expect(world.writesSince(writes)).toEqual(['patch Instance/web-1', 'patchStatus Instance/web-1']);
    expect(world.instance('web-1').metadata.finalizers).toEqual([FINALIZER]);
    expect(world.instance('web-1').status).toMatchObject({
      vmState: 'building',
      taskState: 'scheduling',
      scheduling: { selectedHost: 'node-a' },
    });
  });

  it("a boot's quota reservation becomes usage once the instance runs", async () => {
    const world = withRunningInstance();
    world.seedQuota({ instances: 5 }, [bootAllocation('reserved')]);

    await world.reconcileInstance('web-1');

    expect(world.allocations()).toEqual([bootAllocation('used')]);
  });

  it("a failed boot's quota reservation is given back", async () => {
    const world = withRunningInstance({ vmState: 'error', taskState: '', observedGeneration: 1 });
    world.seedQuota({ instances: 5 }, [bootAllocation('reserved')]);

    await world.reconcileInstance('web-1');

    expect(world.allocations()).toEqual([]);
  });
});

describe("InstanceController: an instance its host's agent cannot see", () => {
  // Placed by a version that wrote status.host alone: moved to node-b, it still names node-a,
  // where it booted, in the one field the agents watch.
  const movedBefore = () => running('node-b', small, { scheduling: { attempts: 1, selectedHost: 'node-a' } });

  it('is routed to the host it runs on with one write, before anything else', async () => {
    const world = withRunningInstance(movedBefore());
    const writes = world.cluster.writes.length;

    await world.reconcileInstance('web-1');

    expect(world.writesSince(writes)).toEqual(['patchStatus Instance/web-1']);
    expect(world.instance('web-1').status).toMatchObject({
      host: 'node-b',
      scheduling: { attempts: 1, selectedHost: 'node-b' },
    });
  });

  it('is routed even while being deleted: its deletion needs the agent of the host it runs on', async () => {
    const world = withRunningInstance(movedBefore());
    await world.kube.instances.delete(ref);

    await world.reconcileInstance('web-1');

    expect(world.instance('web-1').status).toMatchObject({
      taskState: 'deleting',
      scheduling: { selectedHost: 'node-b' },
    });
  });

  it('an instance its host already watches, or that runs nowhere yet, is not written', async () => {
    const world = withRunningInstance();
    const writes = world.cluster.writes.length;

    await world.reconcileInstance('web-1');

    expect(world.writesSince(writes)).toEqual([]);
  });
});

describe('InstanceController + DeletionConductor: delete', () => {
  /** web-1 with a finished resize Migration whose destination claim is on node-b; both in quota. */
  async function deleting() {
    const world = withRunningInstance();
    const mig = aMigration('web-1-resize-2', { instance: 'web-1', flavor: 'm1.large' }, { status: 'finished' });
    mig.metadata.uid = 'uid-mig';
    world.seedMigration(mig);
    await world.setClaims('node-b', [aClaim('uid-mig', 'migration', LARGE)]);
    const resizeAllocation = { consumer: 'uid-mig', instance: 'web-1', state: 'used' as const, vcpus: 1 };
    const otherInstance = { consumer: 'uid-db', instance: 'db-1', state: 'used' as const, instances: 1 };
    world.seedQuota({ instances: 5 }, [bootAllocation('used'), resizeAllocation, otherInstance]);
    await world.kube.instances.delete(ref);
    return { world, otherInstance };
  }

  it('deletion first marks the instance taskState deleting and keeps the finalizer', async () => {
    const { world } = await deleting();

    await world.reconcileInstance('web-1');

    const inst = world.instance('web-1');
    expect(inst.status?.taskState).toBe('deleting');
    expect(inst.metadata.finalizers).toEqual([FINALIZER]);
  });

  it('deletion waits while a ComputeNode still records a claim of the instance', async () => {
    const { world } = await deleting();
    await world.reconcileInstance('web-1');
    await world.setClaims('node-b', []);
    const writes = world.cluster.writes.length;

    expect(await world.reconcileInstance('web-1')).toEqual({ requeueAfterMs: 1_000 });

    expect(world.writesSince(writes)).toEqual([]);
    expect(world.instance('web-1').metadata.finalizers).toEqual([FINALIZER]);
  });

  it('deletion waits while a ComputeNode still records a claim of one of its migrations', async () => {
    const { world } = await deleting();
    await world.reconcileInstance('web-1');
    await world.setClaims('node-a', []);
    const writes = world.cluster.writes.length;

    expect(await world.reconcileInstance('web-1')).toEqual({ requeueAfterMs: 1_000 });

    expect(world.writesSince(writes)).toEqual([]);
    expect(world.instance('web-1').metadata.finalizers).toEqual([FINALIZER]);
  });

  it('once no host records a claim, the finalizer goes (the Instance is gone) and its quota is released', async () => {
    const { world, otherInstance } = await deleting();
    await world.reconcileInstance('web-1');
    await world.setClaims('node-a', []);
    await world.setClaims('node-b', []);

    expect(await world.reconcileInstance('web-1')).toEqual({});

    expect(world.cluster.get('Instance', 'web-1', 'default')).toBeUndefined();
    // The boot's allocation and the resize's increase go; another instance's stays.
    expect(world.allocations()).toEqual([otherInstance]);
    expect(await world.reconcileInstance('web-1')).toEqual({});
  });

  it('a Migration change brings back an instance being deleted, and only such an instance', async () => {
    const world = withRunningInstance();
    const keys: string[] = [];
    world.instances.watch((key) => keys.push(key));
    world.seedMigration(aMigration('web-1-move', { instance: 'web-1' }));
    expect(keys).toEqual([]);

    await world.kube.instances.delete(ref);
    keys.length = 0;
    await world.kube.migrations.patchStatus(world.migration('web-1-move'), { status: 'error' });

    expect(keys).toEqual(['default/web-1']);
  });
});

describe('InstanceController + ResizeRequests: spec.flavor changes', () => {
  it('a flavor change creates Migration <name>-resize-<generation>, owned by the instance, observed', async () => {
    const world = withRunningInstance();
    await world.kube.instances.patch(ref, { spec: { flavor: 'm1.large' } });
    const writes = world.cluster.writes.length;

    expect(await world.reconcileInstance('web-1')).toEqual({});

    const mig = world.migration('web-1-resize-2');
    expect(mig.spec).toEqual({ instance: 'web-1', flavor: 'm1.large' });
    expect(mig.metadata.labels).toEqual({ 'compute.kubenova.io/instance': 'web-1' });
    expect(mig.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'Instance', name: 'web-1', uid: INSTANCE_UID, controller: true }),
    ]);
    // The instance itself is left for the migration controller: no write here that could race its.
    expect(world.writesSince(writes)).toEqual(['create Migration/web-1-resize-2']);

    await world.reconcileMigration('web-1-resize-2');

    // Its first write marks the instance resize_prep and records the generation as acted on.
    const s = world.instance('web-1').status;
    expect(s?.taskState).toBe('resize_prep');
    expect(s?.migration).toBe('web-1-resize-2');
    expect(s?.observedGeneration).toBe(2);
    expect(s?.fault).toBeUndefined();
  });

  it('a flavor change whose Migration was refused is recorded as acted on once the refusal is seen', async () => {
    const world = withRunningInstance();
    await world.kube.instances.patch(ref, { spec: { flavor: 'm1.large' } });
    await world.reconcileInstance('web-1');
    // Refused as the migration controller would (e.g. its quota reservation lost a race).
    await world.kube.migrations.patchStatus(world.migration('web-1-resize-2'), { type: 'resize', status: 'error' });
    const writes = world.cluster.writes.length;

    await world.reconcileInstance('web-1');

    expect(world.writesSince(writes)).toEqual(['patchStatus Instance/web-1']);
    expect(world.instance('web-1').status?.observedGeneration).toBe(2);
    expect(world.cluster.list('Migration')).toHaveLength(1);
  });

  it('a spec change that keeps the flavor only records observedGeneration', async () => {
    const world = withRunningInstance();
    await world.kube.instances.patch(ref, { spec: { powerState: 'Stopped' } });
    const writes = world.cluster.writes.length;

    await world.reconcileInstance('web-1');

    expect(world.writesSince(writes)).toEqual(['patchStatus Instance/web-1']);
    expect(world.instance('web-1').status?.observedGeneration).toBe(2);
    expect(world.cluster.list('Migration')).toEqual([]);
  });

  it('a flavor change while a task runs waits for it (no Migration, no fault), then is acted on', async () => {
    // The API server refuses such a change (CEL rule); this is one that arrived as the task began.
    const world = withRunningInstance(running('node-a', small, { taskState: 'powering_off' }));
    await world.kube.instances.patch(ref, { spec: { flavor: 'm1.large' } });
    const writes = world.cluster.writes.length;

    await world.reconcileInstance('web-1');

    expect(world.writesSince(writes)).toEqual([]);
    expect(world.instance('web-1').status?.observedGeneration).toBe(1);

    await world.kube.instances.patchStatus(world.instance('web-1'), { taskState: '', vmState: 'stopped' });
    await world.reconcileInstance('web-1');
    expect(world.migration('web-1-resize-2').spec.flavor).toBe('m1.large');
  });

  it('a resize of an errored instance is refused with ResizeRefused and an Event naming why', async () => {
    const world = withRunningInstance(running('node-a', small, { vmState: 'error' }));
    await world.kube.instances.patch(ref, { spec: { flavor: 'm1.large' } });

    await world.reconcileInstance('web-1');

    const s = world.instance('web-1').status;
    const why = 'instance web-1 is error; only active or stopped instances can be resized';
    expect(s?.fault).toEqual({ reason: 'ResizeRefused', message: why, time: world.now.toISOString() });
    expect(s?.observedGeneration).toBe(2);
    expect(world.messages('web-1', 'ResizeRefused')).toEqual([`resize to m1.large refused: ${why}`]);
    expect(world.cluster.list('Migration')).toEqual([]);
  });

  it.each([
    ['that does not exist', 'm9.huge', undefined, 'flavor m9.huge does not exist'],
    ['that is disabled', 'm1.old', { disabled: true, rootDiskGiB: 40 }, 'flavor m1.old is disabled'],
    ['with a smaller root disk', 'm1.tiny', { rootDiskGiB: 10 }, 'root disks cannot shrink'],
  ])('a resize to a flavor %s is refused with ResizeRefused', async (_what, flavor, spec, why) => {
    const world = withRunningInstance();
    if (spec) world.seedFlavor(flavor, spec);
    await world.kube.instances.patch(ref, { spec: { flavor } });

    await world.reconcileInstance('web-1');

    const s = world.instance('web-1').status;
    expect(s?.fault?.reason).toBe('ResizeRefused');
    expect(s?.fault?.message).toContain(why);
    expect(s?.observedGeneration).toBe(2);
    expect(s?.flavor).toEqual(small);
    expect(world.cluster.eventsFor('web-1')).toEqual(['ResizeRefused']);
    expect(world.cluster.list('Migration')).toEqual([]);
  });

  it('a resize over quota is refused with QuotaExceeded before any Migration exists', async () => {
    const world = withRunningInstance();
    world.seedQuota({ vcpus: 1 }, [bootAllocation('used')]);
    await world.kube.instances.patch(ref, { spec: { flavor: 'm1.large' } });

    await world.reconcileInstance('web-1');

    const s = world.instance('web-1').status;
    const message = 'quota exceeded: vcpus: used 1 + requested 1 > limit 1';
    expect(s?.fault).toMatchObject({ reason: 'QuotaExceeded', message });
    expect(world.cluster.eventsFor('web-1')).toEqual(['QuotaExceeded']);
    expect(world.cluster.list('Migration')).toEqual([]);
    expect(world.allocations()).toEqual([bootAllocation('used')]);
  });

  it('a refused generation is not retried; the next spec change is judged afresh', async () => {
    const world = withRunningInstance();
    await world.kube.instances.patch(ref, { spec: { flavor: 'm9.huge' } });
    await world.reconcileInstance('web-1');
    const writes = world.cluster.writes.length;

    await world.reconcileInstance('web-1');
    await world.reconcileInstance('web-1');

    expect(world.writesSince(writes)).toEqual([]);
    expect(world.cluster.eventsFor('web-1')).toEqual(['ResizeRefused']);

    await world.kube.instances.patch(ref, { spec: { flavor: 'm1.large' } });
    await world.reconcileInstance('web-1');
    expect(world.migration('web-1-resize-3').spec.flavor).toBe('m1.large');
  });
});
