import { describe, expect, it } from 'vitest';
import { StepDone, hasDeadline, stepDone, type LivePhase } from '../../common/api/lifecycle.js';
import { credentialSecret } from '../../common/api/transfer-credential.js';
import {
  FINALIZER,
  type InstanceStatus,
  type MigrationStatus,
  type QuotaAllocation,
  type TaskState,
} from '../../common/api/types.js';
import {
  aClaim,
  aMigration,
  anInstance,
  CLAIM_TIMEOUT_MS,
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
const DEADLINE = new Date(T0.getTime() + STEP_TIMEOUT_MS).toISOString();

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

/** Where the instance is in each phase: on the source until the destination has finished it. */
function instanceIn(phase: LivePhase): InstanceStatus {
  const task = { taskState: TASK[phase], migration: RESIZE };
  if (['pre-migrating', 'migrating', 'post-migrating'].includes(phase)) return running('node-a', small, task);
  return running('node-b', large, { ...task, vmState: 'resized', oldFlavor: small });
}

/**
 * A resize of web-1 from node-a (the source) to node-b (the destination, holding its claim) in
 * `phase`, entered at T0 with its deadline; the namespace's quota holds the resize's increase.
 */
function resizeIn(phase: LivePhase, status: MigrationStatus = {}): World {
  const world = new World();
  world.seedFlavor('m1.small');
  world.seedFlavor('m1.large', LARGE);
  world.seedNode('node-a', { claims: [aClaim(INSTANCE_UID, 'instance', SMALL)] });
  world.seedNode('node-b', { claims: [aClaim(MIGRATION_UID, 'migration', LARGE)] });
  world.seedNode('node-c');
  world.seedQuota({ vcpus: 8 }, [bootUsed, increase]);
  const inst = anInstance('web-1', {}, instanceIn(phase));
  inst.metadata.uid = INSTANCE_UID;
  world.seedInstance(inst);
  const mig = aMigration(
    RESIZE,
    { instance: 'web-1', flavor: 'm1.large' },
    {
      type: 'resize',
      status: phase,
      sourceHost: 'node-a',
      ...(phase === 'pre-migrating' ? {} : { destHost: 'node-b' }),
      oldFlavor: small,
      newFlavor: large,
      oldVmState: 'active',
      startedAt: T0.toISOString(),
      ...(hasDeadline(phase) ? { stepDeadline: DEADLINE } : {}),
      scheduling: { attempts: 1, triedHosts: ['node-b'], selectedHost: 'node-b' },
      ...status,
    },
  );
  mig.metadata.uid = MIGRATION_UID;
  world.seedMigration(mig);
  return world;
}

/** An admin declares the host dead and fenced (ComputeNode spec.forcedDown). */
async function forceDown(world: World, host: string): Promise<void> {
  await world.kube.computeNodes.patch({ name: host }, { spec: { forcedDown: true } });
}

const request = (phase: LivePhase, reason: 'Cancelled' | 'StepTimedOut' | 'HostLost' | 'StepFailed') => ({
  phase,
  reason,
  message: `test: ${reason} while ${phase}`,
  time: T0.toISOString(),
});

describe('StepGuard: a migration whose instance is deleted', () => {
  it('ends in error (Cancelled) and gives its quota back; the instance being deleted is not written', async () => {
    const world = resizeIn('migrating');
    await world.kube.instances.delete({ namespace: 'default', name: 'web-1' });
    const before = world.instance('web-1');

    expect(await world.reconcileMigration(RESIZE)).toEqual({});

    const s = world.migration(RESIZE).status;
    expect(s).toMatchObject({
      status: 'error',
      fault: { reason: 'Cancelled', message: 'instance web-1 is deleted or being deleted' },
      finishedAt: world.now.toISOString(),
    });
    expect(s?.stepDeadline).toBeUndefined();
    expect(world.instance('web-1')).toEqual(before);
    expect(world.allocations()).toEqual([bootUsed]);
    expect(world.cluster.eventsFor(RESIZE)).toEqual(['MigrationCancelled']);
    expect(world.cluster.eventsFor('web-1')).toEqual([]);
  });

  it('ends in error (Cancelled) when the instance is already gone', async () => {
    const world = resizeIn('finished');
    const inst = world.instance('web-1');
    await world.kube.instances.patch(
      { namespace: 'default', name: 'web-1' },
      { metadata: { finalizers: (inst.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) } },
    );
    await world.kube.instances.delete({ namespace: 'default', name: 'web-1' });
    expect(world.cluster.get('Instance', 'web-1')).toBeUndefined();

    await world.reconcileMigration(RESIZE);

    expect(world.migration(RESIZE).status).toMatchObject({ status: 'error', fault: { reason: 'Cancelled' } });
  });
});

describe('StepGuard: the operator stands in for a forced-down host (the table\u2019s fenced entries)', () => {
  /** What every stand-in that ends the migration shares: error HostLost, quota back, the instance told and freed. */
  function endedHostLost(world: World, message: string) {
    const s = world.migration(RESIZE).status;
    expect(s).toMatchObject({ status: 'error', fault: { reason: 'HostLost', message } });
    expect(s?.finishedAt).toBe(world.now.toISOString());
    // A host only asked to be the destination lets it go; a destination keeps it in view.
    expect(s?.scheduling?.selectedHost).toBe(s?.destHost);
    const inst = world.instance('web-1').status;
    expect(inst).toMatchObject({ vmState: 'active', taskState: '', host: 'node-a', flavor: small });
    expect(inst?.fault).toMatchObject({ reason: 'HostLost', message });
    expect(inst?.migration).toBeUndefined();
    expect(world.allocations()).toEqual([bootUsed]);
    expect(world.messages(RESIZE, 'HostLost')).toEqual([message]);
    expect(world.messages('web-1', 'HostLost')).toEqual([`Migration ${RESIZE} failed: ${message}`]);
  }

  it('pre-migrating, source forced down: ends it in error (HostLost)', async () => {
    const world = resizeIn('pre-migrating');
    await forceDown(world, 'node-a');

    expect(await world.reconcileMigration(RESIZE)).toEqual({});

    endedHostLost(
      world,
      'node-a, the source of this pre-migrating migration, is forced down: the operator will end it ' +
        '(an evacuation goes on: its source is fenced by definition)',
    );
  });

  it('pre-migrating, the selected destination forced down before it claimed: ends it in error (HostLost)', async () => {
    const world = resizeIn('pre-migrating');
    await forceDown(world, 'node-b');

    await world.reconcileMigration(RESIZE);

    endedHostLost(
      world,
      'node-b, the destination of this pre-migrating migration, is forced down: the operator will end it; nothing has moved',
    );
  });

  it('migrating, source forced down: ends it in error (HostLost)', async () => {
    const world = resizeIn('migrating');
    await forceDown(world, 'node-a');

    await world.reconcileMigration(RESIZE);

    endedHostLost(
      world,
      'node-a, the source of this migrating migration, is forced down: the operator will end it: nothing has landed on the destination',
    );
  });

  it('migrating, only the destination forced down: no stand-in, the source carries on (the table lists none)', async () => {
    const world = resizeIn('migrating');
    await forceDown(world, 'node-b');
    const writes = world.cluster.writes.length;

    expect(await world.reconcileMigration(RESIZE)).toEqual({ requeueAfterMs: STEP_TIMEOUT_MS + 100 });

    expect(world.writesSince(writes)).toEqual([]);
    expect(world.migration(RESIZE).status?.status).toBe('migrating');
  });

  for (const phase of ['post-migrating', 'finished'] as const) {
    it(`${phase}, destination forced down: rolls back onto the source for it (reverting, DestinationCleaned, HostLost)`, async () => {
      const world = resizeIn(phase);
      await forceDown(world, 'node-b');

      await world.reconcileMigration(RESIZE);

      const s = world.migration(RESIZE).status!;
      const message =
        `node-b, the destination of this ${phase} migration, is forced down: ` +
        'the operator will roll back onto the source for it';
      expect(s.status).toBe('reverting');
      expect(s.rollback).toEqual({ phase, reason: 'HostLost', message, time: world.now.toISOString() });
      expect(s.stepDeadline).toBe(DEADLINE);
      expect(s.conditions?.find((c) => c.type === StepDone.DestinationCleaned)).toMatchObject({
        status: 'True',
        reason: 'HostLost',
        message,
      });
      expect(world.instance('web-1').status?.taskState).toBe('resize_reverting');
      expect(world.messages(RESIZE, 'HostLost')).toEqual([message]);
      // The quota waits for the end: the source's restore ends the migration in error.
      expect(world.allocations().map((a) => a.consumer)).toEqual([INSTANCE_UID, MIGRATION_UID]);

      // Next pass (reverting): the destination is already stood in for; the source's step is next.
      const writes = world.cluster.writes.length;
      await world.reconcileMigration(RESIZE);
      expect(world.writesSince(writes)).toEqual([]);
      expect(world.messages(RESIZE, 'HostLost')).toHaveLength(1);
    });
  }

  it('confirming, source forced down: marks SourceCleaned for it, once; the destination goes on', async () => {
    const world = resizeIn('confirming');
    await forceDown(world, 'node-a');

    await world.reconcileMigration(RESIZE);

    const s = world.migration(RESIZE).status!;
    expect(s.status).toBe('confirming');
    expect(s.conditions?.find((c) => c.type === StepDone.SourceCleaned)).toMatchObject({
      status: 'True',
      reason: 'HostLost',
      message:
        'node-a, the source of this confirming migration, is forced down: the operator will mark the source cleaned for it',
    });
    expect(world.instance('web-1').status).toMatchObject({ vmState: 'resized', taskState: 'resize_confirming' });
    expect(world.cluster.eventsFor(RESIZE)).toEqual(['HostLost']);

    const writes = world.cluster.writes.length;
    await world.reconcileMigration(RESIZE);
    expect(world.writesSince(writes)).toEqual([]);
    expect(world.cluster.eventsFor(RESIZE)).toEqual(['HostLost']);
  });

  it('confirming, source already cleaned by its agent before it was forced down: nothing to stand in for', async () => {
    const world = resizeIn('confirming', {
      conditions: [
        {
          type: StepDone.SourceCleaned,
          status: 'True',
          reason: 'Confirmed',
          message: 'node-a dropped the old copy and claim',
          lastTransitionTime: T0.toISOString(),
        },
      ],
    });
    await forceDown(world, 'node-a');
    const writes = world.cluster.writes.length;

    await world.reconcileMigration(RESIZE);

    expect(world.writesSince(writes)).toEqual([]);
    expect(world.cluster.eventsFor(RESIZE)).toEqual([]);
  });

  it('reverting, destination forced down: marks DestinationCleaned for it; the source restores next', async () => {
    const world = resizeIn('reverting');
    await forceDown(world, 'node-b');

    await world.reconcileMigration(RESIZE);

    const s = world.migration(RESIZE).status!;
    expect(s.status).toBe('reverting');
    expect(stepDone(world.migration(RESIZE), StepDone.DestinationCleaned)).toBe(true);
    expect(s.rollback).toBeUndefined();
    expect(world.instance('web-1').status?.taskState).toBe('resize_reverting');
  });

  it('reverting, source forced down: strands the instance in error, saying what an admin can do', async () => {
    const world = resizeIn('reverting');
    await forceDown(world, 'node-a');

    await world.reconcileMigration(RESIZE);

    const message =
      'node-a, the source of this reverting migration, is forced down: the operator will end it: the copy to ' +
      'restore is on the fenced host; evacuate the instance; the instance is in error: evacuate it ' +
      '(a Migration with spec.type Evacuation) or delete it';
    const s = world.migration(RESIZE).status!;
    expect(s).toMatchObject({ status: 'error', fault: { reason: 'HostLost', message } });
    expect(s.finishedAt).toBe(world.now.toISOString());
    const inst = world.instance('web-1').status!;
    expect(inst).toMatchObject({ vmState: 'error', taskState: '', fault: { reason: 'HostLost', message } });
    expect(inst.migration).toBeUndefined();
    expect(inst.taskHosts).toBeUndefined();
    expect(inst.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'HostLost' });
    expect(world.messages(RESIZE, 'HostLost')).toEqual([message]);
    expect(world.messages('web-1', 'HostLost')).toEqual([message]);
    // Then settled like any failed migration: the quota comes back.
    await world.reconcileMigration(RESIZE);
    expect(world.allocations()).toEqual([bootUsed]);
  });

  it('reverting, source forced down after the destination let go: the instance is recorded on the source with its old flavor, so the advised Evacuation starts', async () => {
    const world = resizeIn('reverting', {
      conditions: [
        {
          type: StepDone.DestinationCleaned,
          status: 'True',
          reason: 'Reverted',
          message: 'node-b destroyed its copy and freed its claim',
          lastTransitionTime: T0.toISOString(),
        },
      ],
    });
    await forceDown(world, 'node-a');

    await world.reconcileMigration(RESIZE);

    const inst = world.instance('web-1').status!;
    expect(inst).toMatchObject({ vmState: 'error', taskState: '', host: 'node-a', flavor: small });
    // Under node-a's watch again, for its agent to see once it is back.
    expect(inst.scheduling?.selectedHost).toBe('node-a');
    expect(inst.oldFlavor).toBeUndefined();
    world.seedMigration(aMigration('web-1-evacuate-1', { instance: 'web-1', type: 'Evacuation' }));
    await world.reconcileMigrationRetryingConflicts('web-1-evacuate-1');
    const evacuation = world.migration('web-1-evacuate-1').status!;
    expect(evacuation.fault).toBeUndefined();
    expect(evacuation).toMatchObject({ type: 'evacuation', status: 'pre-migrating', sourceHost: 'node-a' });
  });

  it('an evacuation whose destination is forced down while it rebuilds ends (HostLost): there is no source to roll back onto', async () => {
    const world = resizeIn('post-migrating', { type: 'evacuation', newFlavor: small });
    await forceDown(world, 'node-a');
    await forceDown(world, 'node-b');

    await world.reconcileMigration(RESIZE);

    const s = world.migration(RESIZE).status!;
    expect(s).toMatchObject({ status: 'error', fault: { reason: 'HostLost' } });
    expect(s.fault?.message).toContain('node-b, the destination of this post-migrating migration, is forced down');
    const inst = world.instance('web-1').status!;
    expect(inst).toMatchObject({ taskState: '', host: 'node-a' });
    expect(inst.migration).toBeUndefined();
    // Nothing holds the instance: another Evacuation can start.
    world.seedMigration(aMigration('web-1-evacuate-2', { instance: 'web-1', type: 'Evacuation' }));
    await world.reconcileMigrationRetryingConflicts('web-1-evacuate-2');
    expect(world.migration('web-1-evacuate-2').status?.status).toBe('pre-migrating');
  });

  it('an evacuation goes on in pre-migrating although its source is forced down: a destination is chosen', async () => {
    const world = resizeIn('pre-migrating', {
      type: 'evacuation',
      newFlavor: small,
      scheduling: { attempts: 0, triedHosts: [] },
    });
    await forceDown(world, 'node-a');

    expect(await world.reconcileMigration(RESIZE)).toEqual({ requeueAfterMs: CLAIM_TIMEOUT_MS });

    const s = world.migration(RESIZE).status!;
    expect(s.status).toBe('pre-migrating');
    expect(s.fault).toBeUndefined();
    expect(s.scheduling?.selectedHost).toMatch(/^node-[bc]$/);
    expect(world.cluster.eventsFor(RESIZE)).not.toContain('HostLost');
  });

  it('a forced-down host that is not part of the migration changes nothing', async () => {
    const world = resizeIn('migrating');
    await forceDown(world, 'node-c');
    const writes = world.cluster.writes.length;

    await world.reconcileMigration(RESIZE);

    expect(world.writesSince(writes)).toEqual([]);
  });
});

describe('StepGuard: a rollback the operator owns is carried out', () => {
  it('pre-migrating with a rollback request: ends it in error with the reason (Cancelled), quota back', async () => {
    const world = resizeIn('pre-migrating', { rollback: request('pre-migrating', 'Cancelled') });

    await world.reconcileMigration(RESIZE);

    const s = world.migration(RESIZE).status!;
    expect(s).toMatchObject({
      status: 'error',
      fault: { reason: 'Cancelled', message: 'test: Cancelled while pre-migrating' },
    });
    expect(s.rollback).toBeUndefined();
    expect(world.instance('web-1').status).toMatchObject({ taskState: '', host: 'node-a', vmState: 'active' });
    expect(world.instance('web-1').status?.migration).toBeUndefined();
    expect(world.allocations()).toEqual([bootUsed]);
  });

  it('pre-migrating with a timed-out request: ends it in error StepFailed', async () => {
    const world = resizeIn('pre-migrating', { rollback: request('pre-migrating', 'StepTimedOut') });

    await world.reconcileMigration(RESIZE);

    expect(world.migration(RESIZE).status).toMatchObject({ status: 'error', fault: { reason: 'StepFailed' } });
  });

  it('finished with a rollback request (a cancel): reverts as if the user asked, clearing the request', async () => {
    const world = resizeIn('finished', { rollback: request('finished', 'Cancelled') });

    await world.reconcileMigration(RESIZE);

    const s = world.migration(RESIZE).status!;
    expect(s.status).toBe('reverting');
    // Cleared, so the source's restore ends it reverted, not error.
    expect(s.rollback).toBeUndefined();
    expect(s.stepDeadline).toBe(DEADLINE);
    expect(world.instance('web-1').status).toMatchObject({ vmState: 'resized', taskState: 'resize_reverting' });
  });

  for (const phase of ['migrating', 'post-migrating'] as const) {
    it(`${phase} with a rollback request: the operator leaves it to the agent that owns the way back`, async () => {
      const world = resizeIn(phase, { rollback: request(phase, 'Cancelled') });
      const writes = world.cluster.writes.length;

      // No look at the deadline either: the request is already out.
      expect(await world.reconcileMigration(RESIZE)).toEqual({});

      expect(world.writesSince(writes)).toEqual([]);
    });
  }

  it('a request naming another phase is not carried out in this one', async () => {
    const world = resizeIn('finished', { rollback: request('post-migrating', 'Cancelled') });
    const writes = world.cluster.writes.length;

    await world.reconcileMigration(RESIZE);

    expect(world.migration(RESIZE).status?.status).toBe('finished');
    expect(world.writesSince(writes)).not.toContain(`patchStatus Instance/web-1`);
  });
});

describe('StepGuard: the step deadline', () => {
  it('before the deadline nothing is written, and the controller looks again just after it', async () => {
    const world = resizeIn('migrating');
    world.now = new Date(T0.getTime() + 100_000);
    const writes = world.cluster.writes.length;

    expect(await world.reconcileMigration(RESIZE)).toEqual({ requeueAfterMs: STEP_TIMEOUT_MS - 100_000 + 100 });

    expect(world.writesSince(writes)).toEqual([]);
  });

  it('a phase past its deadline gets a rollback request (StepTimedOut) and one StepFailed Warning, once', async () => {
    const world = resizeIn('migrating');
    world.now = new Date(T0.getTime() + STEP_TIMEOUT_MS);

    expect(await world.reconcileMigration(RESIZE)).toEqual({});

    const message = `migrating did not finish by its deadline ${DEADLINE} (step timeout 300s; waiting on the source)`;
    const s = world.migration(RESIZE).status!;
    expect(s.status).toBe('migrating');
    expect(s.rollback).toEqual({ phase: 'migrating', reason: 'StepTimedOut', message, time: world.now.toISOString() });
    // The deadline is spent: it is not looked at again.
    expect(s.stepDeadline).toBeUndefined();
    expect(world.messages(RESIZE, 'StepFailed')).toEqual([
      `${message}; rolling back: drop <uid>_resize, run the guest again on the source`,
    ]);
    expect(world.instance('web-1').status?.taskState).toBe('resize_migrating');

    // The source carries it out; the operator does not ask again.
    world.now = new Date(world.now.getTime() + STEP_TIMEOUT_MS);
    const writes = world.cluster.writes.length;
    expect(await world.reconcileMigration(RESIZE)).toEqual({});
    expect(world.writesSince(writes)).toEqual([]);
    expect(world.messages(RESIZE, 'StepFailed')).toHaveLength(1);
  });

  it('pre-migrating past its deadline is asked to roll back, then ended in error on the next pass', async () => {
    const world = resizeIn('pre-migrating');
    world.now = new Date(T0.getTime() + STEP_TIMEOUT_MS + 1);

    await world.reconcileMigration(RESIZE);
    expect(world.migration(RESIZE).status).toMatchObject({
      status: 'pre-migrating',
      rollback: { phase: 'pre-migrating', reason: 'StepTimedOut' },
    });
    await world.reconcileMigration(RESIZE);

    const s = world.migration(RESIZE).status!;
    expect(s.status).toBe('error');
    expect(s.fault?.reason).toBe('StepFailed');
    expect(s.fault?.message).toContain('pre-migrating did not finish by its deadline');
    expect(s.fault?.message).toContain('waiting on the operator and destination and source');
    expect(world.instance('web-1').status).toMatchObject({ taskState: '', host: 'node-a' });
    expect(world.allocations()).toEqual([bootUsed]);
  });

  it('a phase with no way back past its deadline is asked too; its owner gives up (confirming)', async () => {
    const world = resizeIn('confirming');
    world.now = new Date(T0.getTime() + STEP_TIMEOUT_MS + 1);

    await world.reconcileMigration(RESIZE);

    expect(world.migration(RESIZE).status?.rollback).toMatchObject({ phase: 'confirming', reason: 'StepTimedOut' });
    expect(world.messages(RESIZE, 'StepFailed')).toEqual([
      `confirming did not finish by its deadline ${DEADLINE} (step timeout 300s; waiting on the source and ` +
        'destination); its owner gives up',
    ]);
  });

  it('a revert that is a rollback, past its deadline, keeps the rollback it carries out (and its reason), once', async () => {
    const carried = request('post-migrating', 'HostLost');
    const world = resizeIn('reverting', { rollback: carried });
    world.now = new Date(T0.getTime() + STEP_TIMEOUT_MS + 1);

    expect(await world.reconcileMigration(RESIZE)).toEqual({});

    const s = world.migration(RESIZE).status!;
    expect(s.status).toBe('reverting');
    expect(s.rollback).toEqual(carried);
    expect(s.stepDeadline).toBeUndefined();
    expect(world.messages(RESIZE, 'StepFailed')).toHaveLength(1);
    const writes = world.cluster.writes.length;
    await world.reconcileMigration(RESIZE);
    expect(world.writesSince(writes)).toEqual([]);
    expect(world.messages(RESIZE, 'StepFailed')).toHaveLength(1);
  });

  it('finished waits for a person: it has no deadline and is never timed out', async () => {
    const world = resizeIn('finished');
    world.now = new Date(T0.getTime() + 100 * STEP_TIMEOUT_MS);

    expect(await world.reconcileMigration(RESIZE)).toEqual({});

    expect(world.migration(RESIZE).status?.rollback).toBeUndefined();
    expect(world.cluster.eventsFor(RESIZE)).toEqual([]);
  });

  it('a forced-down host is stood in for before the deadline is looked at', async () => {
    const world = resizeIn('migrating');
    await forceDown(world, 'node-a');
    world.now = new Date(T0.getTime() + STEP_TIMEOUT_MS + 1);

    await world.reconcileMigration(RESIZE);

    expect(world.migration(RESIZE).status).toMatchObject({ status: 'error', fault: { reason: 'HostLost' } });
    expect(world.cluster.eventsFor(RESIZE)).not.toContain('StepFailed');
  });

  it('a migration that starts gets its deadline, and the controller requeues at it', async () => {
    const world = resizeIn('pre-migrating');
    await world.kube.secrets.create(
      credentialSecret('kubenova-system', {
        migration: { namespace: 'default', name: RESIZE, uid: MIGRATION_UID },
        source: 'node-a',
        destination: 'node-b',
        expiresAt: new Date('2100-01-01T00:00:00Z'),
        token: 'x',
      }),
    );
    await world.kube.migrations.patchStatus(world.migration(RESIZE), { destHost: 'node-b' });
    world.now = new Date(T0.getTime() + 299_000);

    expect(await world.reconcileMigration(RESIZE)).toEqual({ requeueAfterMs: 1_000 + 100 });
  });
});
