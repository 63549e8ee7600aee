import { describe, expect, it } from 'vitest';
import type { MigrationStatus, QuotaAllocation } from '../../common/api/types.js';
import { aMigration, anInstance, LARGE, running, SMALL, snapshot, World } from '../testing.js';

const INSTANCE_UID = 'uid-web-1';
const MIGRATION_UID = 'uid-mig';
const RESIZE = 'web-1-resize-2';
const small = snapshot('m1.small', SMALL);
const large = snapshot('m1.large', LARGE);
/** Fewer vCPUs and less memory than m1.large, the same root disk (root disks cannot shrink). */
const LEAN = { ...LARGE, vcpus: 1, memoryMiB: 2048 };

const holding = (amounts: { vcpus: number; memoryMiB: number; rootDiskGiB: number }): QuotaAllocation => ({
  consumer: INSTANCE_UID,
  instance: 'web-1',
  state: 'used',
  instances: 1,
  vcpus: amounts.vcpus,
  memoryMiB: amounts.memoryMiB,
  diskGiB: amounts.rootDiskGiB,
});

/** web-1 runs m1.large on node-a, its usage committed; a Migration asks to downsize it to m1.lean. */
async function downsizeStarted(): Promise<World> {
  const world = new World();
  world.seedFlavor('m1.small');
  world.seedFlavor('m1.large', LARGE);
  world.seedFlavor('m1.lean', LEAN);
  world.seedNode('node-a');
  world.seedNode('node-b');
  const inst = anInstance('web-1', { flavor: 'm1.lean' }, running('node-a', large));
  inst.metadata.uid = INSTANCE_UID;
  world.seedInstance(inst);
  world.seedQuota({ vcpus: 8 }, [holding(LARGE)]);
  const mig = aMigration(RESIZE, { instance: 'web-1', flavor: 'm1.lean' });
  mig.metadata.uid = MIGRATION_UID;
  world.seedMigration(mig);
  await world.reconcileMigrationRetryingConflicts(RESIZE);
  expect(world.migration(RESIZE).status?.status).toBe('pre-migrating');
  return world;
}

/** The agents' part, as they would leave it: the destination finished; then the phase `end`. */
async function endAs(world: World, end: MigrationStatus['status']): Promise<void> {
  const finished = { status: 'finished' as const, destHost: 'node-b' };
  await world.kube.migrations.patchStatus(world.migration(RESIZE), finished);
  await world.reconcileMigration(RESIZE);
  await world.kube.migrations.patchStatus(world.migration(RESIZE), { status: end });
  await world.reconcileMigration(RESIZE);
}

const used = (world: World) => world.cluster.get('ComputeQuota', 'compute', 'default')?.status?.used;

describe('MigrationQuota: a downsize', () => {
  it('reserves nothing at start and keeps used as it is until the decision', async () => {
    const world = await downsizeStarted();
    expect(used(world)).toEqual({ instances: 1, vcpus: 2, memoryMiB: 4096, diskGiB: 40, ports: 0 });
    await world.kube.migrations.patchStatus(world.migration(RESIZE), { status: 'finished', destHost: 'node-b' });
    await world.reconcileMigration(RESIZE);
    expect(used(world)).toEqual({ instances: 1, vcpus: 2, memoryMiB: 4096, diskGiB: 40, ports: 0 });
  });

  it('a downsize confirmed lowers quota used to the new flavor, in the instance allocation alone', async () => {
    const world = await downsizeStarted();
    await endAs(world, 'confirmed');
    expect(world.allocations()).toEqual([holding(LEAN)]);
    expect(used(world)).toEqual({ instances: 1, vcpus: 1, memoryMiB: 2048, diskGiB: 40, ports: 0 });
    // Settling again changes nothing.
    const writes = world.cluster.writes.length;
    await world.reconcileMigration(RESIZE);
    expect(world.writesSince(writes).filter((w) => w.includes('ComputeQuota'))).toEqual([]);
  });

  it('a downsize reverted leaves quota used as it was', async () => {
    const world = await downsizeStarted();
    await endAs(world, 'reverted');
    expect(world.allocations()).toEqual([holding(LARGE)]);
    expect(used(world)).toEqual({ instances: 1, vcpus: 2, memoryMiB: 4096, diskGiB: 40, ports: 0 });
  });

  it('a downsize that failed leaves quota used as it was', async () => {
    const world = await downsizeStarted();
    await world.kube.migrations.patchStatus(world.migration(RESIZE), { status: 'error' });
    await world.reconcileMigration(RESIZE);
    expect(world.allocations()).toEqual([holding(LARGE)]);
  });
});

describe('MigrationQuota: an upsize', () => {
  it('confirmed leaves the instance holding exactly the new flavor', async () => {
    const world = new World();
    world.seedFlavor('m1.small');
    world.seedFlavor('m1.large', LARGE);
    world.seedNode('node-a');
    world.seedNode('node-b');
    const inst = anInstance('web-1', { flavor: 'm1.large' }, running('node-a', small));
    inst.metadata.uid = INSTANCE_UID;
    world.seedInstance(inst);
    world.seedQuota({ vcpus: 8 }, [holding(SMALL)]);
    const mig = aMigration(RESIZE, { instance: 'web-1', flavor: 'm1.large' });
    mig.metadata.uid = MIGRATION_UID;
    world.seedMigration(mig);
    await world.reconcileMigrationRetryingConflicts(RESIZE);
    expect(world.cluster.get('ComputeQuota', 'compute', 'default')?.status?.reserved?.vcpus).toBe(1);
    await endAs(world, 'confirmed');
    expect(world.allocations()).toEqual([holding(LARGE)]);
  });
});
