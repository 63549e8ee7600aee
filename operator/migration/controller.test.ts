import { describe, expect, it } from 'vitest';
import { MIGRATION_LIFECYCLE, MIGRATION_PHASES, ownersOf } from '../../common/api/lifecycle.js';
import {
  TRANSFER_CREDENTIAL_LABEL,
  credentialSecret,
  parseCredential,
  transferCredentialName,
} from '../../common/api/transfer-credential.js';
import {
  API_VERSION,
  MIGRATION_FINALIZER,
  type InstanceStatus,
  type Migration,
  type MigrationStatus,
  type QuotaAllocation,
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
  World,
  type WorldOptions,
} from '../testing.js';

const INSTANCE_UID = 'uid-web-1';
const MIGRATION_UID = 'uid-mig';
const small = snapshot('m1.small', SMALL);
const large = snapshot('m1.large', LARGE);

interface Setup extends WorldOptions {
  /** Hosts besides the source node-a. */
  others?: string[];
  instance?: InstanceStatus;
  /** Omitted: no ComputeQuota in the namespace. */
  quota?: { hard: Record<string, number>; allocations: QuotaAllocation[] };
}

/**
 * web-1 running m1.small on node-a, the roomiest host (so a scheduler that forgot to leave out
 * the source would pick it), plus node-b and node-c.
 */
function cluster(setup: Setup = {}): World {
  const world = new World(setup);
  world.seedFlavor('m1.small');
  world.seedFlavor('m1.large', LARGE);
  world.seedNode('node-a', {
    allocatable: { vcpus: 64, memoryMiB: 262144, diskGiB: 4000 },
    claims: [aClaim(INSTANCE_UID, 'instance', SMALL)],
  });
  for (const host of setup.others ?? ['node-b', 'node-c']) world.seedNode(host);
  const inst = anInstance('web-1', {}, setup.instance ?? running('node-a', small));
  inst.metadata.uid = INSTANCE_UID;
  world.seedInstance(inst);
  if (setup.quota) world.seedQuota(setup.quota.hard, setup.quota.allocations);
  return world;
}

function seedMigration(world: World, name: string, spec: Migration['spec'], status?: MigrationStatus): Migration {
  const mig = aMigration(name, spec, status);
  mig.metadata.uid = MIGRATION_UID;
  return world.seedMigration(mig);
}

const RESIZE = 'web-1-resize-2';
const bootUsed: QuotaAllocation = {
  consumer: INSTANCE_UID,
  instance: 'web-1',
  state: 'used',
  instances: 1,
  vcpus: 1,
  memoryMiB: 2048,
  diskGiB: 20,
};
const increase = (state: QuotaAllocation['state']): QuotaAllocation => ({
  consumer: MIGRATION_UID,
  instance: 'web-1',
  state,
  instances: 0,
  vcpus: 1,
  memoryMiB: 2048,
  diskGiB: 20,
});

/** A resize of web-1 to m1.large, started (pre-migrating) and its destination chosen once. */
async function resizing(setup: Setup = {}): Promise<World> {
  const world = cluster(setup);
  seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm1.large' });
  await world.reconcileMigrationRetryingConflicts(RESIZE);
  expect(world.migration(RESIZE).status?.status).toBe('pre-migrating');
  await world.reconcileMigration(RESIZE);
  return world;
}

describe('MigrationStart: a new Migration', () => {
  it('a resize starts: instance resize_prep, Migration pre-migrating with both flavors, source and owner', async () => {
    const world = cluster();
    seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm1.large' });

    expect((await world.reconcileMigrationRetryingConflicts(RESIZE)).result).toEqual({});

    const inst = world.instance('web-1');
    expect(inst.status).toMatchObject({ vmState: 'active', taskState: 'resize_prep', migration: RESIZE });
    expect(inst.status?.host).toBe('node-a');
    expect(inst.status?.fault).toBeUndefined();
    const mig = world.migration(RESIZE);
    expect(mig.status).toEqual({
      type: 'resize',
      status: 'pre-migrating',
      sourceHost: 'node-a',
      oldFlavor: small,
      newFlavor: large,
      oldVmState: 'active',
      startedAt: world.now.toISOString(),
      stepDeadline: new Date(world.now.getTime() + STEP_TIMEOUT_MS).toISOString(),
      scheduling: { attempts: 0, triedHosts: [] },
    });
    expect(mig.metadata.finalizers).toEqual([MIGRATION_FINALIZER]);
    expect(mig.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'Instance', name: 'web-1', uid: INSTANCE_UID }),
    ]);
    expect(world.messages('web-1', 'ResizeStarted')).toEqual([
      `resize from m1.small to m1.large started (Migration ${RESIZE})`,
    ]);
    expect(world.cluster.eventsFor(RESIZE)).toEqual(['ResizeStarted']);
  });

  it('a resize reserves only its increase in quota, under the Migration', async () => {
    const world = cluster({ quota: { hard: { vcpus: 4 }, allocations: [bootUsed] } });
    seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm1.large' });

    await world.reconcileMigrationRetryingConflicts(RESIZE);

    expect(world.allocations()).toEqual([bootUsed, increase('reserved')]);
  });

  it('a cold migration keeps the flavor, remembers a stopped instance, and reserves no quota', async () => {
    const world = cluster({
      instance: running('node-a', small, { vmState: 'stopped', powerState: 'shutdown' }),
      quota: { hard: { vcpus: 4 }, allocations: [bootUsed] },
    });
    seedMigration(world, 'web-1-move', { instance: 'web-1' });

    await world.reconcileMigrationRetryingConflicts('web-1-move');

    expect(world.migration('web-1-move').status).toMatchObject({
      type: 'migration',
      status: 'pre-migrating',
      sourceHost: 'node-a',
      oldFlavor: small,
      newFlavor: small,
      oldVmState: 'stopped',
    });
    expect(world.instance('web-1').status).toMatchObject({ taskState: 'resize_prep', migration: 'web-1-move' });
    expect(world.messages('web-1', 'MigrationStarted')).toEqual([
      'cold migration off node-a started (Migration web-1-move)',
    ]);
    expect(world.cluster.eventsFor('web-1-move')).toEqual(['MigrationStarted']);
    expect(world.allocations()).toEqual([bootUsed]);
  });

  it('an operator-made resize Migration already owned and held by its instance gets no metadata write', async () => {
    const world = cluster();
    const mig = aMigration(RESIZE, { instance: 'web-1', flavor: 'm1.large' });
    mig.metadata.finalizers = [MIGRATION_FINALIZER];
    mig.metadata.ownerReferences = [
      { apiVersion: API_VERSION, kind: 'Instance', name: 'web-1', uid: INSTANCE_UID, controller: true },
    ];
    world.seedMigration(mig);
    const writes = world.cluster.writes.length;

    await world.reconcileMigration(RESIZE);

    expect(world.writesSince(writes)).toEqual([`patchStatus Instance/web-1`, `patchStatus Migration/${RESIZE}`]);
    expect(world.migration(RESIZE).metadata.ownerReferences).toHaveLength(1);
  });

  it('a Migration created without an owner starts in one pass, without conflicting with itself', async () => {
    const world = cluster();
    seedMigration(world, 'web-1-move', { instance: 'web-1' });

    const { conflicts } = await world.reconcileMigrationRetryingConflicts('web-1-move');

    expect(world.migration('web-1-move').status?.status).toBe('pre-migrating');
    expect(conflicts).toBe(0);
  });
});

describe('MigrationStart: refusals leave the instance untouched', () => {
  /** Runs the start and checks what every refusal shares; returns the fault. */
  async function refused(world: World, name: string, reason = 'MigrationRefused') {
    const before = world.cluster.get('Instance', 'web-1', 'default');
    const writes = world.cluster.writes.length;

    expect(await world.reconcileMigration(name)).toEqual({});

    const s = world.migration(name).status;
    expect(s?.status).toBe('error');
    expect(s?.fault?.reason).toBe(reason);
    expect(s?.finishedAt).toBe(world.now.toISOString());
    expect(world.writesSince(writes)).toEqual([`patchStatus Migration/${name}`]);
    expect(world.cluster.get('Instance', 'web-1', 'default')).toEqual(before);
    expect(world.cluster.eventsFor(name)).toEqual([reason]);
    expect(world.placement.inFlight.size()).toBe(0);
    return s?.fault?.message ?? '';
  }

  it('a Migration for an instance that does not exist is refused (MigrationRefused)', async () => {
    const world = cluster();
    seedMigration(world, 'ghost-move', { instance: 'ghost' });

    expect(await refused(world, 'ghost-move')).toBe(
      "instance ghost does not exist in namespace default; a Migration must live in its Instance's namespace",
    );
    expect(world.migration('ghost-move').status?.type).toBe('migration');
  });

  it('a Migration of a busy instance is refused, naming the task', async () => {
    const world = cluster({ instance: running('node-a', small, { taskState: 'powering_off' }) });
    seedMigration(world, 'web-1-move', { instance: 'web-1' });

    expect(await refused(world, 'web-1-move')).toContain('busy with task powering_off');
    expect(world.messages('web-1', 'MigrationRefused')).toEqual([
      expect.stringMatching(/^Migration web-1-move refused: instance web-1 is busy/),
    ]);
  });

  it('a Migration of an instance with another migration in progress is refused', async () => {
    const world = cluster({
      instance: running('node-a', small, { taskState: 'resize_prep', migration: 'web-1-first' }),
    });
    seedMigration(world, 'web-1-second', { instance: 'web-1' });

    expect(await refused(world, 'web-1-second')).toContain('already has migration web-1-first in progress');
  });

  it('a targetHost that is the source is refused unless allowResizeToSameHost', async () => {
    const world = cluster();
    seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm1.large', targetHost: 'node-a' });

    expect(await refused(world, RESIZE)).toContain('targetHost node-a is where the instance already runs');
  });

  it('a targetHost that does not exist is refused', async () => {
    const world = cluster();
    seedMigration(world, 'web-1-move', { instance: 'web-1', targetHost: 'node-z' });

    expect(await refused(world, 'web-1-move')).toBe('targetHost node-z does not exist (kubectl get cn lists hosts)');
  });

  it('a resize to a flavor that does not exist is refused', async () => {
    const world = cluster();
    seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm9.huge' });

    expect(await refused(world, RESIZE)).toContain('flavor m9.huge does not exist');
    expect(world.migration(RESIZE).status?.type).toBe('resize');
  });

  it('a resize over quota is refused with QuotaExceeded and reserves nothing', async () => {
    const world = cluster({ quota: { hard: { vcpus: 1 }, allocations: [bootUsed] } });
    seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm1.large' });

    expect(await refused(world, RESIZE, 'QuotaExceeded')).toBe('quota exceeded: vcpus: used 1 + requested 1 > limit 1');
    expect(world.cluster.eventsFor('web-1')).toEqual(['QuotaExceeded']);
    expect(world.allocations()).toEqual([bootUsed]);
  });
});

describe('DestinationPlacement: choosing where the instance goes', () => {
  it('the destination is never the source, and its transfer credential (release namespace) exists before the host is asked', async () => {
    const world = cluster();
    seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm1.large' });
    await world.reconcileMigrationRetryingConflicts(RESIZE);

    expect(await world.reconcileMigration(RESIZE)).toEqual({ requeueAfterMs: CLAIM_TIMEOUT_MS });

    const mig = world.migration(RESIZE);
    expect(mig.status?.scheduling).toEqual({ attempts: 1, triedHosts: ['node-b'], selectedHost: 'node-b' });
    expect(mig.status?.status).toBe('pre-migrating');
    // A first choice is in status.scheduling; only retries get Events.
    expect(world.messages(RESIZE, 'Scheduled')).toEqual([]);
    expect(world.placement.inFlight.hostOf(MIGRATION_UID)).toBe('node-b');
    const cred = parseCredential(credentialOf(world));
    expect(cred).toMatchObject({
      migration: { namespace: 'default', name: RESIZE, uid: MIGRATION_UID },
      source: 'node-a',
      destination: 'node-b',
    });
    // Valid until the migrating phase after this one must have ended, and not in any tenant namespace.
    expect(cred?.expiresAt.getTime()).toBe(Date.parse(mig.status?.stepDeadline ?? '') + STEP_TIMEOUT_MS);
    expect(cred?.token).toMatch(/^[0-9a-f]{64}$/);
    expect(world.cluster.secret('default', transferCredentialName(MIGRATION_UID))).toBeUndefined();
    // Written before the status that hands the migration to node-b.
    const { writes } = world.cluster;
    const created = writes.findIndex((w) => w.kind === 'Secret' && w.verb === 'create');
    const asked = writes.findLastIndex((w) => w.kind === 'Migration' && w.verb === 'patchStatus');
    expect(created).toBeGreaterThanOrEqual(0);
    expect(created).toBeLessThan(asked);
  });

  it('when only the source could take it, the Migration fails with NoValidHost naming IgnoreHostsFilter', async () => {
    const world = cluster({ others: [], quota: { hard: { vcpus: 4 }, allocations: [bootUsed] } });
    seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm1.large' });
    await world.reconcileMigrationRetryingConflicts(RESIZE);

    await world.reconcileMigration(RESIZE);

    expect(world.migration(RESIZE).status?.fault?.message).toBe(
      'No valid host was found. There are not enough hosts available. ' +
        'Filtering removed all hosts: IgnoreHostsFilter removed 1 of 1',
    );
    expect(world.instance('web-1').status).toMatchObject({ vmState: 'active', taskState: '', host: 'node-a' });
    expect(world.allocations()).toEqual([bootUsed]);
  });

  it('with allowResizeToSameHost the source itself may be the destination', async () => {
    const world = await resizing({ allowResizeToSameHost: true, others: [] });

    expect(world.migration(RESIZE).status?.scheduling?.selectedHost).toBe('node-a');
  });

  it("once the destination's agent holds its claim (destHost), choosing is over", async () => {
    const world = await resizing();
    await world.kube.migrations.patchStatus(world.migration(RESIZE), { destHost: 'node-b' });
    const writes = world.cluster.writes.length;

    // Nothing to do but look again at the step deadline.
    expect(await world.reconcileMigration(RESIZE)).toEqual({ requeueAfterMs: STEP_TIMEOUT_MS + 100 });

    expect(world.writesSince(writes)).toEqual([]);
  });

  it('a failed destination claim is rescheduled on a host not yet tried, with a Rescheduled event', async () => {
    const world = await resizing();
    await world.failClaim('Migration', RESIZE, 'free memory 0 MiB < requested 4096 MiB');

    await world.reconcileMigration(RESIZE);

    const s = world.migration(RESIZE).status;
    expect(s?.scheduling).toEqual({ attempts: 2, triedHosts: ['node-b', 'node-c'], selectedHost: 'node-c' });
    expect(s?.status).toBe('pre-migrating');
    expect(world.cluster.eventsFor(RESIZE)).toEqual(['ResizeStarted', 'Rescheduled', 'Scheduled']);
    expect(world.reschedules).toEqual(['migration']);
  });

  it('a forced targetHost whose claim fails ends the Migration in error/ClaimFailed, no retry', async () => {
    const world = cluster();
    seedMigration(world, 'web-1-move', { instance: 'web-1', targetHost: 'node-c' });
    await world.reconcileMigrationRetryingConflicts('web-1-move');
    await world.reconcileMigration('web-1-move');
    expect(world.migration('web-1-move').status?.scheduling?.selectedHost).toBe('node-c');
    await world.failClaim('Migration', 'web-1-move', 'free vcpus 0 < requested 1');

    await world.reconcileMigration('web-1-move');

    expect(world.migration('web-1-move').status).toMatchObject({
      status: 'error',
      fault: {
        reason: 'ClaimFailed',
        message: 'target host node-c could not take the instance: free vcpus 0 < requested 1',
      },
    });
    expect(world.instance('web-1').status).toMatchObject({ taskState: '', fault: { reason: 'ClaimFailed' } });
  });

  it('when the attempts run out the Migration fails, the instance stays with the fault, quota comes back', async () => {
    const world = await resizing({ maxAttempts: 2, quota: { hard: { vcpus: 4 }, allocations: [bootUsed] } });
    expect(world.allocations()).toEqual([bootUsed, increase('reserved')]);
    await world.failClaim('Migration', RESIZE, 'free vcpus 0 < requested 2');
    await world.reconcileMigration(RESIZE);
    await world.failClaim('Migration', RESIZE, 'free vcpus 1 < requested 2');

    expect(await world.reconcileMigration(RESIZE)).toEqual({});

    const mig = world.migration(RESIZE).status;
    const message =
      'No valid host was found: exceeded max scheduling attempts 2; last failure on node-c: free vcpus 1 < requested 2';
    expect(mig).toMatchObject({ status: 'error', fault: { reason: 'NoValidHost', message } });
    expect(mig?.finishedAt).toBe(world.now.toISOString());
    expect(mig?.scheduling?.selectedHost).toBeUndefined();
    const inst = world.instance('web-1').status;
    expect(inst).toMatchObject({ vmState: 'active', taskState: '', host: 'node-a', flavor: small });
    expect(inst?.migration).toBeUndefined();
    expect(inst?.fault).toEqual({ reason: 'NoValidHost', message, time: world.now.toISOString() });
    expect(world.messages('web-1', 'NoValidHost')).toEqual([`Migration ${RESIZE} failed: ${message}`]);
    expect(world.cluster.eventsFor(RESIZE)).toEqual(['ResizeStarted', 'Rescheduled', 'Scheduled', 'NoValidHost']);
    expect(world.allocations()).toEqual([bootUsed]);
    expect(world.placement.inFlight.size()).toBe(0);
  });
});

const RELEASE_NAMESPACE = 'kubenova-system';

/** The transfer credential the operator keeps for the Migration with `uid`, if any. */
function credentialOf(world: World, uid = MIGRATION_UID) {
  return world.cluster.secret(RELEASE_NAMESPACE, transferCredentialName(uid));
}

/** The credential of a migration whose disk has not been sent yet. */
async function withTransferSecret(world: World, name: string) {
  await world.kube.secrets.create(
    credentialSecret(RELEASE_NAMESPACE, {
      migration: { namespace: 'default', name, uid: MIGRATION_UID },
      source: 'node-a',
      destination: 'node-b',
      expiresAt: new Date(T_FAR),
      token: 'x',
    }),
  );
}

const T_FAR = Date.parse('2100-01-01T00:00:00Z');

/** A resize to m1.large that has finished on node-b and waits for the user's decision. */
async function finished(
  setup: Setup & { decision?: Migration['spec']['decision']; phase?: MigrationStatus['status'] } = {},
) {
  const world = cluster({
    ...setup,
    instance: running('node-b', large, { vmState: 'resized', oldFlavor: small, migration: RESIZE }),
    quota: { hard: { vcpus: 4 }, allocations: [bootUsed, increase('reserved')] },
  });
  const spec = { instance: 'web-1', flavor: 'm1.large', ...(setup.decision ? { decision: setup.decision } : {}) };
  seedMigration(world, RESIZE, spec, {
    type: 'resize',
    status: setup.phase ?? 'finished',
    sourceHost: 'node-a',
    destHost: 'node-b',
    scheduling: { selectedHost: 'node-b' },
    oldFlavor: small,
    newFlavor: large,
    oldVmState: 'active',
  });
  await withTransferSecret(world, RESIZE);
  return world;
}

describe('Decisions: confirm or revert a finished resize', () => {
  it('a finished resize drops its transfer Secret and commits its quota, then waits for the decision', async () => {
    const world = await finished();
    const instanceBefore = world.instance('web-1');

    expect(await world.reconcileMigration(RESIZE)).toEqual({});

    expect(credentialOf(world)).toBeUndefined();
    expect(world.allocations()).toEqual([bootUsed, increase('used')]);
    expect(world.migration(RESIZE).status?.status).toBe('finished');
    expect(world.instance('web-1')).toEqual(instanceBefore);
  });

  it('Confirm moves a finished Migration to confirming and the instance to resize_confirming', async () => {
    const world = await finished({ decision: 'Confirm' });

    await world.reconcileMigration(RESIZE);

    expect(world.migration(RESIZE).status?.status).toBe('confirming');
    expect(world.instance('web-1').status).toMatchObject({ vmState: 'resized', taskState: 'resize_confirming' });
  });

  it('Revert moves a finished Migration to reverting and the instance to resize_reverting', async () => {
    const world = await finished({ decision: 'Revert' });

    await world.reconcileMigration(RESIZE);

    expect(world.migration(RESIZE).status?.status).toBe('reverting');
    expect(world.instance('web-1').status).toMatchObject({ vmState: 'resized', taskState: 'resize_reverting' });
  });

  it('a decision made before the migration finished gets one DecisionIgnored Event and nothing else', async () => {
    const world = await finished({ decision: 'Confirm', phase: 'migrating' });
    const instanceBefore = world.instance('web-1');
    const writes = world.cluster.writes.length;

    expect(await world.reconcileMigration(RESIZE)).toEqual({});
    expect(await world.reconcileMigration(RESIZE)).toEqual({});

    expect(world.cluster.eventsFor(RESIZE)).toEqual(['DecisionIgnored']);
    expect(world.messages(RESIZE, 'DecisionIgnored')).toEqual([
      'decision Confirm ignored while the migration is migrating; it takes effect once the migration is finished',
    ]);
    // Only the note that the decision is deferred, so the Event is not repeated.
    expect(world.writesSince(writes)).toEqual([`patchStatus Migration/${RESIZE}`]);
    const mig = world.migration(RESIZE).status;
    expect(mig?.status).toBe('migrating');
    expect(mig?.conditions).toEqual([expect.objectContaining({ type: 'DecisionDeferred', status: 'True' })]);
    expect(world.instance('web-1')).toEqual(instanceBefore);
    expect(credentialOf(world)).toBeDefined();
  });

  it('a decision made while the destination is being chosen is noted once; the destination is chosen', async () => {
    const world = cluster();
    seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm1.large', decision: 'Confirm' });
    await world.reconcileMigrationRetryingConflicts(RESIZE);

    await world.reconcileMigrationRetryingConflicts(RESIZE);
    await world.reconcileMigrationRetryingConflicts(RESIZE);

    expect(world.migration(RESIZE).status?.scheduling?.selectedHost).toBe('node-b');
    expect(world.cluster.eventsFor(RESIZE)).toEqual(['ResizeStarted', 'DecisionIgnored']);
  });

  it('a decision made while the destination is being chosen does not make that step conflict', async () => {
    const world = cluster();
    seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm1.large', decision: 'Confirm' });
    await world.reconcileMigrationRetryingConflicts(RESIZE);

    const { conflicts } = await world.reconcileMigrationRetryingConflicts(RESIZE);

    expect(world.migration(RESIZE).status?.scheduling?.selectedHost).toBe('node-b');
    expect(conflicts).toBe(0);
  });

  it('a decision made early takes effect once the migration has finished', async () => {
    const world = await finished({ decision: 'Revert', phase: 'post-migrating' });
    await world.reconcileMigration(RESIZE);
    await world.kube.migrations.patchStatus(world.migration(RESIZE), { status: 'finished' });

    await world.reconcileMigration(RESIZE);

    expect(world.migration(RESIZE).status?.status).toBe('reverting');
    expect(world.instance('web-1').status?.taskState).toBe('resize_reverting');
    expect(world.cluster.eventsFor(RESIZE)).toEqual(['DecisionIgnored']);
  });

  it('with resizeConfirmWindow a finished resize gets a confirmDeadline and confirms itself after it', async () => {
    const world = await finished({ resizeConfirmWindow: 60 });
    const start = world.now.getTime();

    expect(await world.reconcileMigration(RESIZE)).toEqual({ requeueAfterMs: 60_000 });
    expect(world.migration(RESIZE).status?.confirmDeadline).toBe(new Date(start + 60_000).toISOString());

    world.now = new Date(start + 45_000);
    expect(await world.reconcileMigration(RESIZE)).toEqual({ requeueAfterMs: 15_000 });
    expect(world.migration(RESIZE).status?.status).toBe('finished');
    expect(world.instance('web-1').status?.taskState).toBe('');

    world.now = new Date(start + 60_001);
    // Confirming runs against the step deadline; the operator looks again then.
    expect(await world.reconcileMigration(RESIZE)).toEqual({ requeueAfterMs: STEP_TIMEOUT_MS + 100 });
    expect(world.migration(RESIZE).status?.status).toBe('confirming');
    expect(world.instance('web-1').status?.taskState).toBe('resize_confirming');
  });

  it('an explicit Revert within the confirm window wins over the automatic confirm', async () => {
    const world = await finished({ resizeConfirmWindow: 60, decision: 'Revert' });

    await world.reconcileMigration(RESIZE);

    expect(world.migration(RESIZE).status?.status).toBe('reverting');
    expect(world.migration(RESIZE).status?.confirmDeadline).toBeUndefined();
  });
});

describe('MigrationSettlement: after the end', () => {
  /** A resize that ended in `phase`, with the quota its increase was committed to. */
  async function ended(phase: 'confirmed' | 'reverted' | 'error', instance: InstanceStatus, specFlavor = 'm1.large') {
    const world = cluster({
      instance,
      quota: { hard: { vcpus: 4 }, allocations: [bootUsed, increase(phase === 'error' ? 'reserved' : 'used')] },
    });
    // The user asked for the resize through spec.flavor (generation 2, observed).
    await world.kube.instances.patch({ namespace: 'default', name: 'web-1' }, { spec: { flavor: specFlavor } });
    await world.kube.instances.patchStatus(world.instance('web-1'), { observedGeneration: 2 });
    seedMigration(
      world,
      RESIZE,
      { instance: 'web-1', flavor: 'm1.large' },
      {
        type: 'resize',
        status: phase,
        sourceHost: 'node-a',
        destHost: 'node-b',
        scheduling: { selectedHost: 'node-b' },
        oldFlavor: small,
        newFlavor: large,
      },
    );
    await withTransferSecret(world, RESIZE);
    world.placement.inFlight.add('node-b', MIGRATION_UID, { vcpus: 2, memoryMiB: 4096, diskGiB: 40 });
    return world;
  }

  it('a confirmed resize drops its transfer Secret and folds its quota increase into the instance', async () => {
    const world = await ended('confirmed', running('node-b', large));

    expect(await world.reconcileMigration(RESIZE)).toEqual({});

    expect(credentialOf(world)).toBeUndefined();
    expect(world.allocations()).toEqual([{ ...bootUsed, vcpus: 2, memoryMiB: 4096, diskGiB: 40 }]);
    expect(world.placement.inFlight.size()).toBe(0);
    expect(world.instance('web-1').spec.flavor).toBe('m1.large');
  });

  it('a reverted resize gives quota back, sets spec.flavor back (FlavorReset); no second resize', async () => {
    const world = await ended('reverted', running('node-a', small, { observedGeneration: 2 }));

    await world.reconcileMigration(RESIZE);

    expect(credentialOf(world)).toBeUndefined();
    expect(world.allocations()).toEqual([bootUsed]);
    const inst = world.instance('web-1');
    expect(inst.spec.flavor).toBe('m1.small');
    expect(world.messages('web-1', 'FlavorReset')).toEqual([
      'resize reverted: spec.flavor set back from m1.large to m1.small',
    ]);

    // The instance controller sees spec and status agree: it only observes the new generation.
    const writes = world.cluster.writes.length;
    await world.reconcileInstance('web-1');
    expect(world.writesSince(writes)).toEqual(['patchStatus Instance/web-1']);
    expect(world.instance('web-1').status?.observedGeneration).toBe(inst.metadata.generation);
    expect(world.cluster.list('Migration').map((m) => m.metadata.name)).toEqual([RESIZE]);
  });

  it('a reverted resize whose spec.flavor was never changed (a user-made Migration) leaves spec alone', async () => {
    const world = await ended('reverted', running('node-a', small), 'm1.small');
    const generation = world.instance('web-1').metadata.generation;

    await world.reconcileMigration(RESIZE);

    expect(world.instance('web-1').metadata.generation).toBe(generation);
    expect(world.cluster.eventsFor('web-1')).toEqual([]);
  });

  it('a confirmed resize made with a user Migration sets spec.flavor to the new flavor, so no resize back starts', async () => {
    const world = await ended('confirmed', running('node-b', large), 'm1.small');

    await world.reconcileMigration(RESIZE);

    expect(world.instance('web-1').spec.flavor).toBe('m1.large');
    expect(world.messages('web-1', 'FlavorReset')).toEqual([
      'resize confirmed: spec.flavor set from m1.small to m1.large',
    ]);
    await world.reconcileInstance('web-1');
    expect(world.cluster.list('Migration').map((m) => m.metadata.name)).toEqual([RESIZE]);
  });

  it('a resize that ended in error gives its quota back, drops its transfer Secret and sets spec.flavor back', async () => {
    const world = await ended('error', running('node-a', small));

    await world.reconcileMigration(RESIZE);

    expect(credentialOf(world)).toBeUndefined();
    expect(world.allocations()).toEqual([bootUsed]);
    expect(world.placement.inFlight.size()).toBe(0);
    // The instance runs its old flavor; spec says so again, so no second resize starts.
    expect(world.instance('web-1').spec.flavor).toBe('m1.small');
    expect(world.messages('web-1', 'FlavorReset')).toEqual([
      'resize failed (error): spec.flavor set back from m1.large to m1.small',
    ]);
  });
});

describe('MigrationController and the lifecycle table', () => {
  it('has an operator step exactly in the phases whose steps MIGRATION_LIFECYCLE gives to the operator', () => {
    const { migrations } = new World();
    const phases = Object.keys(MIGRATION_LIFECYCLE).sort();
    expect(Object.keys(migrations.steps).sort()).toEqual(phases);
    expect([...MIGRATION_PHASES].sort()).toEqual(phases);
    for (const phase of MIGRATION_PHASES) {
      expect({ phase, operator: migrations.steps[phase] !== null }).toEqual({
        phase,
        operator: ownersOf(phase).has('operator'),
      });
    }
  });

  it('a Migration being deleted without the cancel finalizer is left alone', async () => {
    const world = cluster();
    const mig = aMigration('web-1-move', { instance: 'web-1' });
    mig.metadata.finalizers = ['test/hold'];
    world.seedMigration(mig);
    await world.kube.migrations.delete({ namespace: 'default', name: 'web-1-move' });
    const writes = world.cluster.writes.length;

    expect(await world.reconcileMigration('web-1-move')).toEqual({});
    expect(world.writesSince(writes)).toEqual([]);
  });
});

/** An admin declares the host dead and fenced (ComputeNode spec.forcedDown). */
async function forceDown(world: World, host: string): Promise<void> {
  await world.kube.computeNodes.patch({ name: host }, { spec: { forcedDown: true } });
}

const EVACUATE = 'web-1-evacuate-1';

describe('MigrationStart: an Evacuation', () => {
  /** Runs the start of a refused Evacuation; returns the fault message. The instance is untouched. */
  async function refusedEvacuation(world: World): Promise<string> {
    const before = world.cluster.get('Instance', 'web-1', 'default');
    expect(await world.reconcileMigration(EVACUATE)).toEqual({});
    const s = world.migration(EVACUATE).status;
    expect(s).toMatchObject({ type: 'evacuation', status: 'error', fault: { reason: 'MigrationRefused' } });
    expect(world.cluster.get('Instance', 'web-1', 'default')).toEqual(before);
    expect(world.cluster.eventsFor(EVACUATE)).toEqual(['MigrationRefused']);
    return s?.fault?.message ?? '';
  }

  it('is refused while the instance host is not forced down, saying what to do', async () => {
    const world = cluster();
    seedMigration(world, EVACUATE, { instance: 'web-1', type: 'Evacuation' });

    expect(await refusedEvacuation(world)).toBe(
      'host node-a of instance web-1 is not forced down; once the host is fenced (powered off), set ' +
        'spec.forcedDown: true on ComputeNode node-a, or cold-migrate the instance while its host is up',
    );
  });

  it('is refused for an instance that was never placed on a host', async () => {
    const world = cluster({ instance: { vmState: 'building', taskState: '' } });
    seedMigration(world, EVACUATE, { instance: 'web-1', type: 'Evacuation' });

    expect(await refusedEvacuation(world)).toBe(
      'instance web-1 has no host; only an instance placed on a host can be evacuated',
    );
  });

  it('is refused when its targetHost is the forced-down host itself', async () => {
    const world = cluster();
    await forceDown(world, 'node-a');
    seedMigration(world, EVACUATE, { instance: 'web-1', type: 'Evacuation', targetHost: 'node-a' });

    expect(await refusedEvacuation(world)).toBe(
      'targetHost node-a is the forced-down host the instance is evacuated from',
    );
  });

  it('is refused for an instance busy with another task', async () => {
    const world = cluster({ instance: running('node-a', small, { taskState: 'powering_off' }) });
    await forceDown(world, 'node-a');
    seedMigration(world, EVACUATE, { instance: 'web-1', type: 'Evacuation' });

    expect(await refusedEvacuation(world)).toContain('busy with task powering_off');
  });

  it('waits, writing nothing, while another migration of the instance off the fenced host is being ended', async () => {
    const world = cluster({
      instance: running('node-a', small, { taskState: 'resize_migrating', migration: 'web-1-move' }),
    });
    await forceDown(world, 'node-a');
    seedMigration(world, EVACUATE, { instance: 'web-1', type: 'Evacuation' });
    const writes = world.cluster.writes.length;

    expect(await world.reconcileMigration(EVACUATE)).toEqual({ requeueAfterMs: 1_000 });

    expect(world.writesSince(writes)).toEqual([]);
    expect(world.migration(EVACUATE).status).toBeUndefined();

    // Once that migration has let go of the instance, the evacuation starts.
    await world.kube.instances.patchStatus(world.instance('web-1'), { taskState: '', migration: null });
    await world.reconcileMigrationRetryingConflicts(EVACUATE);
    expect(world.migration(EVACUATE).status?.status).toBe('pre-migrating');
  });

  it.each([
    ['active', running('node-a', small), 'active'],
    ['stopped', running('node-a', small, { vmState: 'stopped', powerState: 'shutdown' }), 'stopped'],
    ['error', running('node-a', small, { vmState: 'error', powerState: 'nostate' }), 'active'],
  ] as const)('starts off a forced-down host for an instance in %s', async (_state, instance, oldVmState) => {
    const world = cluster({ instance, quota: { hard: { vcpus: 4 }, allocations: [bootUsed] } });
    await forceDown(world, 'node-a');
    seedMigration(world, EVACUATE, { instance: 'web-1', type: 'Evacuation' });

    const { result, conflicts } = await world.reconcileMigrationRetryingConflicts(EVACUATE);

    expect(result).toEqual({});
    expect(conflicts).toBe(0);
    const mig = world.migration(EVACUATE);
    expect(mig.status).toEqual({
      type: 'evacuation',
      status: 'pre-migrating',
      sourceHost: 'node-a',
      oldFlavor: small,
      newFlavor: small,
      oldVmState,
      startedAt: world.now.toISOString(),
      stepDeadline: new Date(world.now.getTime() + STEP_TIMEOUT_MS).toISOString(),
      scheduling: { attempts: 0, triedHosts: [] },
    });
    expect(mig.metadata.finalizers).toEqual([MIGRATION_FINALIZER]);
    expect(mig.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Instance', uid: INSTANCE_UID })]);
    expect(world.instance('web-1').status).toMatchObject({ taskState: 'resize_prep', migration: EVACUATE });
    const what = 'evacuation off forced-down node-a, rebuilding from image cirros started';
    expect(world.messages('web-1', 'EvacuationStarted')).toEqual([`${what} (Migration ${EVACUATE})`]);
    expect(world.messages(EVACUATE, 'EvacuationStarted')).toEqual([what]);
    // The instance keeps what it has: an evacuation reserves no quota.
    expect(world.allocations()).toEqual([bootUsed]);
  });
});

describe('DestinationPlacement: an evacuation', () => {
  /** An Evacuation of web-1 off forced-down node-a, started. */
  async function evacuating(setup: Setup = {}): Promise<World> {
    const world = cluster(setup);
    await forceDown(world, 'node-a');
    seedMigration(world, EVACUATE, { instance: 'web-1', type: 'Evacuation' });
    await world.reconcileMigrationRetryingConflicts(EVACUATE);
    expect(world.migration(EVACUATE).status?.status).toBe('pre-migrating');
    return world;
  }

  it('chooses a destination other than the fenced source and creates no transfer Secret', async () => {
    const world = await evacuating();

    expect(await world.reconcileMigration(EVACUATE)).toEqual({ requeueAfterMs: CLAIM_TIMEOUT_MS });

    expect(world.migration(EVACUATE).status?.scheduling).toEqual({
      attempts: 1,
      triedHosts: ['node-b'],
      selectedHost: 'node-b',
    });
    expect(await world.kube.secrets.listLabelled(RELEASE_NAMESPACE, TRANSFER_CREDENTIAL_LABEL)).toEqual([]);
  });

  it('never chooses the source, even with allowResizeToSameHost and the source no longer forced down', async () => {
    const world = cluster({ allowResizeToSameHost: true, others: [] });
    seedMigration(
      world,
      EVACUATE,
      { instance: 'web-1', type: 'Evacuation' },
      {
        type: 'evacuation',
        status: 'pre-migrating',
        sourceHost: 'node-a',
        oldFlavor: small,
        newFlavor: small,
        oldVmState: 'active',
        scheduling: { attempts: 0, triedHosts: [] },
      },
    );
    await world.kube.instances.patchStatus(world.instance('web-1'), { taskState: 'resize_prep', migration: EVACUATE });

    await world.reconcileMigration(EVACUATE);

    expect(world.migration(EVACUATE).status).toMatchObject({
      status: 'error',
      fault: {
        reason: 'NoValidHost',
        message:
          'No valid host was found. There are not enough hosts available. ' +
          'Filtering removed all hosts: IgnoreHostsFilter removed 1 of 1',
      },
    });
  });

  it('once the destination holds its claim, takes the task for the fenced source and hands it to post-migrating', async () => {
    const world = await evacuating();
    await world.reconcileMigration(EVACUATE);
    world.now = new Date(world.now.getTime() + 5_000);
    // node-b's agent claimed and named itself destHost.
    await world.kube.migrations.patchStatus(world.migration(EVACUATE), { destHost: 'node-b' });

    const { result } = await world.reconcileMigrationRetryingConflicts(EVACUATE);

    expect(result).toEqual({ requeueAfterMs: STEP_TIMEOUT_MS + 100 });
    const s = world.migration(EVACUATE).status!;
    expect(s.status).toBe('post-migrating');
    expect(s.stepDeadline).toBe(new Date(world.now.getTime() + STEP_TIMEOUT_MS).toISOString());
    expect(world.instance('web-1').status).toMatchObject({
      taskState: 'resize_migrated',
      taskHosts: ['node-a', 'node-b'],
      host: 'node-a',
      migration: EVACUATE,
    });
    expect(await world.kube.secrets.listLabelled(RELEASE_NAMESPACE, TRANSFER_CREDENTIAL_LABEL)).toEqual([]);
    // The destination's agent rebuilds next; the operator has nothing more to write.
    const writes = world.cluster.writes.length;
    await world.reconcileMigration(EVACUATE);
    expect(world.writesSince(writes)).toEqual([]);
  });
});

describe('MigrationSettlement: a failed resize that left the instance on its new flavor', () => {
  it('leaves spec.flavor as the user asked: spec and status already agree', async () => {
    const world = cluster({ instance: running('node-b', large, { vmState: 'error' }) });
    await world.kube.instances.patch({ namespace: 'default', name: 'web-1' }, { spec: { flavor: 'm1.large' } });
    seedMigration(
      world,
      RESIZE,
      { instance: 'web-1', flavor: 'm1.large' },
      {
        type: 'resize',
        status: 'error',
        sourceHost: 'node-a',
        destHost: 'node-b',
        scheduling: { selectedHost: 'node-b' },
        oldFlavor: small,
        newFlavor: large,
      },
    );

    await world.reconcileMigration(RESIZE);

    expect(world.instance('web-1').spec.flavor).toBe('m1.large');
    expect(world.messages('web-1', 'FlavorReset')).toEqual([]);
  });
});

describe("MigrationController: a Migration its destination's agent cannot see", () => {
  // Ended in error by a version that cleared selectedHost: node-b holds the destination's
  // files and claim, but watches the Migrations whose sourceHost or selectedHost names it.
  const failedAfterTheClaim = (scheduling: MigrationStatus['scheduling']): MigrationStatus => ({
    type: 'resize',
    status: 'error',
    sourceHost: 'node-a',
    destHost: 'node-b',
    scheduling,
    oldFlavor: small,
    newFlavor: large,
  });

  it('is routed to its destination with one write, before anything else', async () => {
    const world = cluster({ instance: running('node-a', small, { vmState: 'error' }) });
    seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm1.large' }, failedAfterTheClaim({ attempts: 1 }));
    const writes = world.cluster.writes.length;

    await world.reconcileMigration(RESIZE);

    expect(world.writesSince(writes)[0]).toBe(`patchStatus Migration/${RESIZE}`);
    expect(world.migration(RESIZE).status?.scheduling).toEqual({ attempts: 1, selectedHost: 'node-b' });
  });

  it('one its destination watches, or with no destination yet, or on its own source, is not routed', async () => {
    for (const status of [
      failedAfterTheClaim({ attempts: 1, selectedHost: 'node-b' }),
      { ...failedAfterTheClaim({ attempts: 1 }), destHost: undefined },
      { ...failedAfterTheClaim({ attempts: 1 }), destHost: 'node-a' },
    ]) {
      const world = cluster({ instance: running('node-a', small, { vmState: 'error' }) });
      seedMigration(world, RESIZE, { instance: 'web-1', flavor: 'm1.large' }, status);
      await world.reconcileMigration(RESIZE);
      expect(world.migration(RESIZE).status?.scheduling?.selectedHost).toBe(status.scheduling?.selectedHost);
    }
  });
});
