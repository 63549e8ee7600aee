import { describe, expect, it } from 'vitest';
import { FINALIZER, type QuotaAllocation } from '../../common/api/types.js';
import { aClaim, aMigration, anInstance, LARGE, running, SMALL, snapshot, World } from '../testing.js';

// Nova's local delete: a host declared dead (ComputeNode spec.forcedDown) cannot clean up, so
// its claims no longer hold a delete; claims on any other host still do.

const INSTANCE_UID = 'uid-web-1';
const ref = { namespace: 'default', name: 'web-1' };
const bootAllocation: QuotaAllocation = {
  consumer: INSTANCE_UID,
  instance: 'web-1',
  state: 'used',
  instances: 1,
  vcpus: 1,
  memoryMiB: 2048,
  diskGiB: 20,
};

/** web-1 running on node-a (which records its claim), in quota, deleted by the user. */
async function deletingOnNodeA() {
  const world = new World();
  world.seedFlavor('m1.small');
  world.seedNode('node-a', { claims: [aClaim(INSTANCE_UID, 'instance', SMALL)] });
  world.seedNode('node-b');
  const inst = anInstance('web-1', {}, running('node-a', snapshot('m1.small', SMALL)));
  inst.metadata.uid = INSTANCE_UID;
  world.seedInstance(inst);
  world.seedQuota({ instances: 5 }, [bootAllocation]);
  await world.kube.instances.delete(ref);
  await world.reconcileInstance('web-1'); // taskState deleting
  return world;
}

const forceDown = (world: World, node: string) =>
  world.kube.computeNodes.patch({ name: node }, { spec: { forcedDown: true } });

describe('DeletionConductor: local delete', () => {
  it('a claim on a forced-down host does not hold the delete: the Instance goes and its quota is released', async () => {
    const world = await deletingOnNodeA();
    await forceDown(world, 'node-a');

    expect(await world.reconcileInstance('web-1')).toEqual({});

    expect(world.cluster.get('Instance', 'web-1', 'default')).toBeUndefined();
    expect(world.allocations()).toEqual([]);
  });

  it("records one LocalDelete Event naming the host whose agent will clean the instance's copy", async () => {
    const world = await deletingOnNodeA();
    await forceDown(world, 'node-a');

    await world.reconcileInstance('web-1');
    await world.reconcileInstance('web-1');

    const messages = world.messages('web-1', 'LocalDelete');
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('node-a');
    expect(messages[0]).toMatch(/when it comes back/);
  });

  it("leaves the forced-down host's claim recorded: only its own agent writes its ComputeNode", async () => {
    const world = await deletingOnNodeA();
    await forceDown(world, 'node-a');

    await world.reconcileInstance('web-1');

    expect(world.cluster.get('ComputeNode', 'node-a')?.status?.claims?.map((c) => c.consumer)).toEqual([INSTANCE_UID]);
  });

  it('a claim on a host that is not forced down still holds the delete, even when another host is forced down', async () => {
    const world = await deletingOnNodeA();
    const mig = aMigration('web-1-resize-2', { instance: 'web-1', flavor: 'm1.large' }, { status: 'finished' });
    mig.metadata.uid = 'uid-mig';
    world.seedMigration(mig);
    await world.setClaims('node-b', [aClaim('uid-mig', 'migration', LARGE)]);
    await forceDown(world, 'node-a');

    expect(await world.reconcileInstance('web-1')).toEqual({ requeueAfterMs: 1_000 });

    expect(world.instance('web-1').metadata.finalizers).toEqual([FINALIZER]);
    expect(world.messages('web-1', 'LocalDelete')).toEqual([]);
  });

  it('a host that is only not Ready (not forced down) still holds the delete', async () => {
    const world = await deletingOnNodeA();
    await world.silence('node-a');

    expect(await world.reconcileInstance('web-1')).toEqual({ requeueAfterMs: 1_000 });

    expect(world.instance('web-1').metadata.finalizers).toEqual([FINALIZER]);
  });

  it('an ordinary delete (every host cleaned up) records no LocalDelete Event', async () => {
    const world = await deletingOnNodeA();
    await world.setClaims('node-a', []);

    await world.reconcileInstance('web-1');

    expect(world.cluster.get('Instance', 'web-1', 'default')).toBeUndefined();
    expect(world.messages('web-1', 'LocalDelete')).toEqual([]);
  });
});
