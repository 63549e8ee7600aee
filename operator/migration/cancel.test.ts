import { describe, expect, it } from 'vitest';
import { hasDeadline, type LivePhase } from '../../common/api/lifecycle.js';
import { credentialSecret, transferCredentialName } from '../../common/api/transfer-credential.js';
import {
  MIGRATION_FINALIZER,
  type InstanceStatus,
  type MigrationPhase,
  type MigrationStatus,
  type QuotaAllocation,
  type TaskState,
} from '../../common/api/types.js';
import {
  aClaim,
  aMigration,
  anInstance,
  LARGE,
  running,
  SMALL,
  snapshot,
  STEP_TIMEOUT_MS,
  T0,
  World,
} from '../testing.js';

const INSTANCE_UID = 'uid-web-1';
const MIGRATION_UID = 'uid-mig';
const RESIZE = 'web-1-resize-2';
const small = snapshot('m1.small', SMALL);
const large = snapshot('m1.large', LARGE);

const bootUsed: QuotaAllocation = {
  consumer: INSTANCE_UID,
  instance: 'web-1',
  state: 'used',
  instances: 1,
  vcpus: 1,
  memoryMiB: 2048,
  diskGiB: 20,
};
const increase: QuotaAllocation = {
  consumer: MIGRATION_UID,
  instance: 'web-1',
  state: 'reserved',
  instances: 0,
  vcpus: 1,
  memoryMiB: 2048,
  diskGiB: 20,
};

const TASK: Record<LivePhase, TaskState | ''> = {
  'pre-migrating': 'resize_prep',
  migrating: 'resize_migrating',
  'post-migrating': 'resize_migrated',
  finished: '',
  confirming: 'resize_confirming',
  reverting: 'resize_reverting',
};

/** Where the instance is in each phase; undefined: the migration has not started. */
function instanceIn(phase: MigrationPhase | undefined): InstanceStatus {
  if (phase === undefined) return running('node-a', small);
  if (phase === 'error' || phase === 'reverted') return running('node-a', small);
  if (phase === 'confirmed') return running('node-b', large);
  const task = { taskState: TASK[phase], migration: RESIZE };
  if (['pre-migrating', 'migrating', 'post-migrating'].includes(phase)) return running('node-a', small, task);
  return running('node-b', large, { ...task, vmState: 'resized', oldFlavor: small });
}

/**
 * web-1 (the user asked for m1.large through spec.flavor) and its resize Migration, held by
 * the cancel finalizer, from node-a to node-b (which holds its claim), in `phase`.
 */
async function resizeIn(phase: MigrationPhase | undefined, status: MigrationStatus = {}): Promise<World> {
  const world = new World();
  world.seedFlavor('m1.small');
  world.seedFlavor('m1.large', LARGE);
  world.seedNode('node-a', { claims: [aClaim(INSTANCE_UID, 'instance', SMALL)] });
  world.seedNode('node-b', { claims: [aClaim(MIGRATION_UID, 'migration', LARGE)] });
  world.seedQuota({ vcpus: 8 }, phase === undefined ? [bootUsed] : [bootUsed, increase]);
  const inst = anInstance('web-1', { flavor: 'm1.large' }, instanceIn(phase));
  inst.metadata.uid = INSTANCE_UID;
  world.seedInstance(inst);
  const mig = aMigration(
    RESIZE,
    { instance: 'web-1', flavor: 'm1.large' },
    phase === undefined
      ? undefined
      : {
          type: 'resize',
          status: phase,
          sourceHost: 'node-a',
          destHost: 'node-b',
          oldFlavor: small,
          newFlavor: large,
          oldVmState: 'active',
          startedAt: T0.toISOString(),
          ...(hasDeadline(phase) ? { stepDeadline: new Date(T0.getTime() + STEP_TIMEOUT_MS).toISOString() } : {}),
          scheduling: { attempts: 1, triedHosts: ['node-b'], selectedHost: 'node-b' },
          ...status,
        },
  );
  mig.metadata.uid = MIGRATION_UID;
  mig.metadata.finalizers = [MIGRATION_FINALIZER];
  world.seedMigration(mig);
  return world;
}

const deleteMigration = (world: World) => world.kube.migrations.delete({ namespace: 'default', name: RESIZE });
const gone = (world: World) => world.cluster.get('Migration', RESIZE) === undefined;

describe('MigrationCancel: a Migration deleted before it started', () => {
  it('has nothing to undo: the finalizer goes, and with it the Migration; the instance is not written', async () => {
    const world = await resizeIn(undefined);
    await deleteMigration(world);
    expect(world.migration(RESIZE).metadata.deletionTimestamp).toBeDefined();
    const before = world.instance('web-1');

    expect(await world.reconcileMigration(RESIZE)).toEqual({});

    expect(gone(world)).toBe(true);
    expect(world.instance('web-1')).toEqual(before);
    expect(world.allocations()).toEqual([bootUsed]);
  });

  it('undoes what a start cut short by a crash did: the instance task and the quota reservation', async () => {
    const world = await resizeIn(undefined);
    await world.kube.instances.patchStatus(world.instance('web-1'), { taskState: 'resize_prep', migration: RESIZE });
    await world.quota.reserve('default', MIGRATION_UID, 'web-1', {
      instances: 0,
      vcpus: 1,
      memoryMiB: 2048,
      diskGiB: 20,
      ports: 0,
    });
    await deleteMigration(world);

    await world.reconcileMigration(RESIZE);

    expect(gone(world)).toBe(true);
    const s = world.instance('web-1').status!;
    expect(s).toMatchObject({ vmState: 'active', taskState: '', host: 'node-a' });
    expect(s.migration).toBeUndefined();
    expect(world.allocations()).toEqual([bootUsed]);
  });

  it('leaves alone an instance that another migration holds', async () => {
    const world = await resizeIn(undefined);
    await world.kube.instances.patchStatus(world.instance('web-1'), {
      taskState: 'resize_migrating',
      migration: 'web-1-other',
    });
    await deleteMigration(world);

    await world.reconcileMigration(RESIZE);

    expect(gone(world)).toBe(true);
    expect(world.instance('web-1').status).toMatchObject({
      taskState: 'resize_migrating',
      migration: 'web-1-other',
    });
  });
});

describe('MigrationCancel: the Migration a flavor change asked for, deleted before it started', () => {
  /** web-1 on node-a, its spec.flavor changed to m1.large (generation 2): web-1-resize-2 made, not started. */
  async function requested(): Promise<World> {
    const world = new World();
    world.seedFlavor('m1.small');
    world.seedFlavor('m1.large', LARGE);
    world.seedNode('node-a');
    world.seedNode('node-b');
    world.seedInstance(anInstance('web-1', {}, running('node-a', small, { observedGeneration: 1 })));
    await world.kube.instances.patch({ namespace: 'default', name: 'web-1' }, { spec: { flavor: 'm1.large' } });
    await world.reconcileInstance('web-1');
    expect(world.migration(RESIZE).status).toBeUndefined();
    return world;
  }

  it('is not asked for again: the cancel records the generation as acted on', async () => {
    const world = await requested();
    await deleteMigration(world);

    await world.reconcileMigration(RESIZE);

    expect(gone(world)).toBe(true);
    const s = world.instance('web-1').status;
    expect(s?.observedGeneration).toBe(2);
    expect(s?.taskState).toBe('');
    await world.reconcileInstance('web-1');
    expect(world.cluster.list('Migration')).toEqual([]);
  });

  it('refused and then deleted, it is not asked for again either', async () => {
    const world = await requested();
    await world.kube.migrations.patchStatus(world.migration(RESIZE), { type: 'resize', status: 'error' });
    await deleteMigration(world);

    await world.reconcileMigration(RESIZE);

    expect(gone(world)).toBe(true);
    expect(world.instance('web-1').status?.observedGeneration).toBe(2);
    await world.reconcileInstance('web-1');
    expect(world.cluster.list('Migration')).toEqual([]);
  });
});

describe('MigrationCancel: a live migration is rolled back by the owner of its way back', () => {
  it('pre-migrating: asks for the rollback once, the operator ends it (Cancelled), then lets it go once the claim is freed', async () => {
    const world = await resizeIn('pre-migrating');
    await deleteMigration(world);

    expect(await world.reconcileMigration(RESIZE)).toEqual({});
    const message = 'Migration deleted while pre-migrating: cancelling (end it; the destination frees its claim)';
    expect(world.migration(RESIZE).status).toMatchObject({
      status: 'pre-migrating',
      rollback: { phase: 'pre-migrating', reason: 'Cancelled', message, time: world.now.toISOString() },
    });
    expect(world.messages(RESIZE, 'MigrationCancelled')).toEqual([message]);
    expect(world.messages('web-1', 'MigrationCancelled')).toEqual([`Migration ${RESIZE}: ${message}`]);

    // The operator owns the way back of pre-migrating: it ends it.
    await world.reconcileMigration(RESIZE);
    expect(world.migration(RESIZE).status).toMatchObject({ status: 'error', fault: { reason: 'Cancelled', message } });
    expect(world.instance('web-1').status).toMatchObject({ taskState: '', host: 'node-a' });
    expect(world.allocations()).toEqual([bootUsed]);

    // Ended: the finalizer waits for node-b's agent to free the migration claim.
    expect(await world.reconcileMigration(RESIZE)).toEqual({ requeueAfterMs: 1_000 });
    expect(gone(world)).toBe(false);
    // Settled meanwhile: the user's spec.flavor goes back to what the instance runs.
    expect(world.instance('web-1').spec.flavor).toBe('m1.small');
    await world.setClaims('node-b', []);
    expect(await world.reconcileMigration(RESIZE)).toEqual({});
    expect(gone(world)).toBe(true);
  });

  for (const phase of ['migrating', 'post-migrating'] as const) {
    it(`${phase}: asks the agent that owns the way back for it, once, and waits for the migration to end`, async () => {
      const world = await resizeIn(phase);
      await deleteMigration(world);

      expect(await world.reconcileMigration(RESIZE)).toEqual({});

      const s = world.migration(RESIZE).status!;
      expect(s.status).toBe(phase);
      expect(s.rollback).toMatchObject({ phase, reason: 'Cancelled' });
      expect(s.rollback?.message).toMatch(new RegExp(`^Migration deleted while ${phase}: cancelling \\(`));
      expect(world.cluster.eventsFor(RESIZE)).toEqual(['MigrationCancelled']);

      // Asked once: the next passes write nothing until the agent has rolled back.
      const writes = world.cluster.writes.length;
      await world.reconcileMigration(RESIZE);
      await world.reconcileMigration(RESIZE);
      expect(world.writesSince(writes)).toEqual([]);
      expect(world.cluster.eventsFor(RESIZE)).toEqual(['MigrationCancelled']);
      expect(gone(world)).toBe(false);
    });
  }

  it('finished: reverts, as if the user had asked for it, and the request is cleared so it ends reverted', async () => {
    const world = await resizeIn('finished');
    await deleteMigration(world);

    await world.reconcileMigration(RESIZE);
    expect(world.migration(RESIZE).status?.rollback).toMatchObject({ phase: 'finished', reason: 'Cancelled' });
    await world.reconcileMigration(RESIZE);

    const s = world.migration(RESIZE).status!;
    expect(s.status).toBe('reverting');
    expect(s.rollback).toBeUndefined();
    expect(world.instance('web-1').status).toMatchObject({ vmState: 'resized', taskState: 'resize_reverting' });
    // Reverting has no way back: it is let finish, nothing more is asked.
    const writes = world.cluster.writes.length;
    await world.reconcileMigration(RESIZE);
    expect(world.writesSince(writes)).toEqual([]);
    expect(world.cluster.eventsFor(RESIZE)).toEqual(['MigrationCancelled']);
  });

  for (const phase of ['confirming', 'reverting'] as const) {
    it(`${phase}: is let finish (no way back), and the finalizer holds until it has`, async () => {
      const world = await resizeIn(phase);
      await deleteMigration(world);
      const writes = world.cluster.writes.length;

      await world.reconcileMigration(RESIZE);

      expect(world.writesSince(writes)).toEqual([]);
      expect(world.migration(RESIZE).status?.rollback).toBeUndefined();
      expect(world.cluster.eventsFor(RESIZE)).toEqual([]);
      expect(gone(world)).toBe(false);
    });
  }

  it('a phase that already has a rollback request for it gets no second one', async () => {
    const request = { phase: 'migrating' as const, reason: 'StepTimedOut' as const, message: 'deadline passed' };
    const world = await resizeIn('migrating', { rollback: request });
    await deleteMigration(world);
    const writes = world.cluster.writes.length;

    await world.reconcileMigration(RESIZE);

    expect(world.writesSince(writes)).toEqual([]);
    expect(world.migration(RESIZE).status?.rollback).toEqual(request);
  });
});

describe('MigrationCancel: a Migration deleted after it ended', () => {
  it('settles it, waits while a host that is up still holds its claim, then drops the finalizer', async () => {
    const world = await resizeIn('error', { fault: { reason: 'TransferFailed', message: 'test' } });
    await world.kube.secrets.create(
      credentialSecret('kubenova-system', {
        migration: { namespace: 'default', name: RESIZE, uid: MIGRATION_UID },
        source: 'node-a',
        destination: 'node-b',
        expiresAt: new Date('2100-01-01T00:00:00Z'),
        token: 'x',
      }),
    );
    await deleteMigration(world);

    expect(await world.reconcileMigration(RESIZE)).toEqual({ requeueAfterMs: 1_000 });

    expect(world.cluster.secret('kubenova-system', transferCredentialName(MIGRATION_UID))).toBeUndefined();
    expect(world.allocations()).toEqual([bootUsed]);
    expect(gone(world)).toBe(false);
    await world.setClaims('node-b', []);
    await world.reconcileMigration(RESIZE);
    expect(gone(world)).toBe(true);
  });

  it('does not wait for a claim on a forced-down host: its agent cleans up when it comes back', async () => {
    const world = await resizeIn('error', { fault: { reason: 'HostLost', message: 'test' } });
    await world.kube.computeNodes.patch({ name: 'node-b' }, { spec: { forcedDown: true } });
    await deleteMigration(world);

    // As the controller runs it: a conflict with its own settlement write is retried.
    expect((await world.reconcileMigrationRetryingConflicts(RESIZE)).result).toEqual({});

    expect(gone(world)).toBe(true);
  });

  it('a confirmed one goes at once: its claim became the instance claim', async () => {
    const world = await resizeIn('confirmed');
    await world.setClaims('node-b', [aClaim(INSTANCE_UID, 'instance', LARGE)]);
    await deleteMigration(world);

    expect((await world.reconcileMigrationRetryingConflicts(RESIZE)).result).toEqual({});

    expect(gone(world)).toBe(true);
    expect(world.allocations()).toEqual([{ ...bootUsed, vcpus: 2, memoryMiB: 4096, diskGiB: 40 }]);
  });
});

describe('MigrationCancel: the finalizer (compute.kubenova.io/migration-cancel)', () => {
  it('is on a resize Migration from its creation by the instance controller', async () => {
    const world = new World();
    world.seedFlavor('m1.small');
    world.seedFlavor('m1.large', LARGE);
    world.seedNode('node-a');
    const inst = anInstance('web-1', {}, running('node-a', small));
    world.seedInstance(inst);
    await world.kube.instances.patch({ namespace: 'default', name: 'web-1' }, { spec: { flavor: 'm1.large' } });

    await world.reconcileInstance('web-1');

    expect(world.migration('web-1-resize-2').metadata.finalizers).toEqual([MIGRATION_FINALIZER]);
  });
});
