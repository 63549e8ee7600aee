import { describe, expect, it } from 'vitest';
import { getCondition } from '../../common/api/conditions.js';
import type { Condition, Migration, MigrationStatus } from '../../common/api/types.js';
import { aClaim, aMigration, anInstance, LARGE, running, SMALL, snapshot, World } from '../testing.js';

const small = snapshot('m1.small', SMALL);
const large = snapshot('m1.large', LARGE);
const RESIZE = 'web-1-resize-2';

/** web-1 on node-a (or as `instance` says) and a resize of it that has ended as `status` says. */
function ended(status: MigrationStatus, instance = running('node-a', small)): World {
  const world = new World();
  world.seedFlavor('m1.small');
  world.seedFlavor('m1.large', LARGE);
  world.seedNode('node-a', { claims: [aClaim('uid-web-1', 'instance', SMALL)] });
  world.seedNode('node-b');
  const inst = anInstance('web-1', { flavor: status.status === 'confirmed' ? 'm1.large' : 'm1.small' }, instance);
  inst.metadata.uid = 'uid-web-1';
  world.seedInstance(inst);
  const mig = aMigration(RESIZE, { instance: 'web-1', flavor: 'm1.large' }, status);
  mig.metadata.uid = 'uid-mig';
  world.seedMigration(mig);
  return world;
}

const resize = (extra: MigrationStatus): MigrationStatus => ({
  type: 'resize',
  sourceHost: 'node-a',
  destHost: 'node-b',
  scheduling: { selectedHost: 'node-b' },
  oldFlavor: small,
  newFlavor: large,
  ...extra,
});

const conditionsOf = (mig: Migration): Record<string, Condition> =>
  Object.fromEntries((mig.status?.conditions ?? []).map((c) => [c.type, c]));

describe('MigrationSettlement: the terminal condition kubectl wait reads', () => {
  it('a confirmed resize gets Complete=True with Settled, in the one status write of its settlement', async () => {
    const world = ended(resize({ status: 'confirmed' }), running('node-b', large));
    const writes = world.cluster.writes.length;

    await world.reconcileMigration(RESIZE);

    const mig = world.migration(RESIZE);
    const generation = mig.metadata.generation;
    expect(conditionsOf(mig)).toEqual({
      Complete: {
        type: 'Complete',
        status: 'True',
        reason: 'Confirmed',
        message: 'resize confirmed: runs on node-b with flavor m1.large',
        lastTransitionTime: world.now.toISOString(),
        observedGeneration: generation,
      },
      Settled: expect.objectContaining({ status: 'True', reason: 'Settled', observedGeneration: generation }),
    });
    expect(getCondition(mig.status?.conditions, 'Failed')).toBeUndefined();
    expect(world.writesSince(writes).filter((w) => w.includes('Migration/'))).toEqual([
      `patchStatus Migration/${RESIZE}`,
    ]);
  });

  it('a reverted resize is Complete too, with reason Reverted, naming the source and the old flavor', async () => {
    const world = ended(resize({ status: 'reverted' }));

    await world.reconcileMigration(RESIZE);

    expect(conditionsOf(world.migration(RESIZE)).Complete).toMatchObject({
      status: 'True',
      reason: 'Reverted',
      message: 'resize reverted: runs on node-a with flavor m1.small',
    });
  });

  it("a Migration that ended in error gets Failed=True carrying its fault's reason and message, and no Complete", async () => {
    const fault = { reason: 'MigrationRefused', message: 'instance web-1 is busy with task powering_off' };
    const world = ended({ type: 'migration', status: 'error', fault: { ...fault, time: '2025-01-01T12:00:00Z' } });
    const writes = world.cluster.writes.length;

    await world.reconcileMigration(RESIZE);

    const mig = world.migration(RESIZE);
    expect(conditionsOf(mig).Failed).toEqual({
      type: 'Failed',
      status: 'True',
      ...fault,
      lastTransitionTime: world.now.toISOString(),
      observedGeneration: mig.metadata.generation,
    });
    expect(getCondition(mig.status?.conditions, 'Complete')).toBeUndefined();
    expect(getCondition(mig.status?.conditions, 'Settled')?.status).toBe('True');
    expect(world.writesSince(writes).filter((w) => w.includes('Migration/'))).toEqual([
      `patchStatus Migration/${RESIZE}`,
    ]);
  });

  it('a fault message longer than a condition may hold is cut to fit', async () => {
    const long = 'x'.repeat(6000);
    const world = ended(resize({ status: 'error', fault: { reason: 'TransferFailed', message: long } }));

    await world.reconcileMigration(RESIZE);

    const failed = conditionsOf(world.migration(RESIZE)).Failed;
    expect(failed?.reason).toBe('TransferFailed');
    expect(failed?.message).toHaveLength(4096);
    expect(failed?.message).toBe(`${'x'.repeat(4095)}…`);
  });

  it('a settled Migration is written no more: a later pass changes nothing', async () => {
    const world = ended(resize({ status: 'confirmed' }), running('node-b', large));
    await world.reconcileMigration(RESIZE);
    const writes = world.cluster.writes.length;

    await world.reconcileMigration(RESIZE);

    expect(world.writesSince(writes)).toEqual([]);
  });

  it('a Migration settled before Complete and Failed existed gets its terminal condition once, and is not settled again', async () => {
    const settled: Condition = {
      type: 'Settled',
      status: 'True',
      reason: 'Settled',
      message: 'quota, token and flavor settled',
      lastTransitionTime: '2024-12-31T00:00:00Z',
    };
    const world = ended(resize({ status: 'reverted', conditions: [settled] }));
    const writes = world.cluster.writes.length;

    await world.reconcileMigration(RESIZE);
    await world.reconcileMigration(RESIZE);

    expect(world.writesSince(writes)).toEqual([`patchStatus Migration/${RESIZE}`]);
    const conditions = conditionsOf(world.migration(RESIZE));
    expect(conditions.Settled).toEqual(settled);
    expect(conditions.Complete).toMatchObject({ status: 'True', reason: 'Reverted' });
    // Not settled twice: spec.flavor was not touched, no FlavorReset.
    expect(world.cluster.eventsFor('web-1')).toEqual([]);
  });
});
