import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MIGRATION_LIFECYCLE, MIGRATION_PHASES, StepDone, ownersOf, stepDone } from '../../common/api/lifecycle.js';
import { FAIL_ANNOTATION, injectedFailureMessage } from '../../common/api/fault-injection.js';
import type { Instance, Migration, MigrationStatus } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { InjectedFailures } from '../driver/injected-failures.js';
import {
  MEDIUM,
  SMALL,
  TestHosts,
  claimsOn,
  decide,
  pathExists,
  seedCredential,
  silentLog,
  type TestHost,
  oneHost,
} from '../testing.js';
import {
  MIG,
  MIG_KEY,
  crossHostToFinished,
  resizeStarted,
  sameHostToFinished,
  stageTransfer,
  type Resize,
} from './testing.js';

let cluster: FakeCluster;
let hosts: TestHosts;
let a: TestHost;

beforeEach(async () => ({ cluster, hosts, host: a } = await oneHost()));
afterEach(() => hosts.cleanup());

const inst = (): Instance => cluster.get('Instance', 'web-1')!;
const mig = (): Migration => cluster.get('Migration', MIG)!;
const diskOf = (host: TestHost, uid: string) => readFile(join(host.driver.instanceDir(uid), 'disk.img'));

/** The credential the operator keeps for the Migration's transfer from host-a to host-b. */
async function seedToken(r: Resize): Promise<void> {
  await seedCredential(cluster, { namespace: 'default', name: MIG, uid: r.migUid }, 'host-a', 'host-b', 'secret-token');
}

describe('MigrationSource: its dispatch table', () => {
  it('has a step exactly for the phases whose steps in MIGRATION_LIFECYCLE name the source as owner', () => {
    for (const phase of MIGRATION_PHASES) {
      expect({ phase, step: a.source.steps[phase] !== null }).toEqual({ phase, step: ownersOf(phase).has('source') });
    }
    expect(Object.keys(a.source.steps).sort()).toEqual(Object.keys(MIGRATION_LIFECYCLE).sort());
  });
});

describe('MigrationSource: a same-host resize', () => {
  it('pre-migrating: waits until the destination holds its claim', async () => {
    await resizeStarted(cluster, a, a);
    const from = cluster.writes.length;
    await a.source.reconcile(MIG_KEY);
    expect(cluster.writes.slice(from)).toEqual([]);
    expect(inst().status?.taskState).toBe('resize_prep');
  });

  it('pre-migrating: once destHost is set takes the task, powers off, keeps the backup -> post-migrating', async () => {
    const r = await resizeStarted(cluster, a, a);
    await a.destination.reconcile(MIG_KEY);
    const phases: string[] = [];
    cluster.cache('Migration').on('update', (m) => phases.push(m.status?.status ?? ''));

    await a.source.reconcile(MIG_KEY);

    expect(phases).toEqual(['migrating', 'post-migrating']);
    expect(inst().status).toMatchObject({ taskState: 'resize_migrated', taskHosts: ['host-a', 'host-a'] });
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
    expect((await a.driver.get(r.uid))?.powerState).toBe('shutdown');
    // Nothing crossed the network on one host.
    expect(mig().status?.transfer).toBeUndefined();
    expect(cluster.eventsFor(MIG)).not.toContain('DiskTransferred');
    // Both claims stay while the resize is under way.
    expect(claimsOn(cluster, 'host-a').sort()).toEqual([`instance/${r.uid}`, `migration/${r.migUid}`].sort());
  });

  it('migrating (resumed after a restart): keeps the backup byte for byte -> post-migrating', async () => {
    const r = await resizeStarted(cluster, a, a);
    const original = await diskOf(a, r.uid);
    await a.destination.reconcile(MIG_KEY);
    await a.kube.migrations.patchStatus(mig(), { status: 'migrating' });

    await a.source.reconcile(MIG_KEY);

    expect(mig().status?.status).toBe('post-migrating');
    expect(inst().status?.taskState).toBe('resize_migrated');
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
    const backup = await readFile(join(`${a.driver.instanceDir(r.uid)}_resize`, 'disk.img'));
    expect(backup.equals(original)).toBe(true);
  });

  it('confirming: drops the backup and the old claim, marks SourceCleaned, keeps the resized domain', async () => {
    const r = await resizeStarted(cluster, a, a);
    await sameHostToFinished(a);
    await decide(cluster, MIG, 'Confirm');

    await a.source.reconcile(MIG_KEY);

    expect(stepDone(mig(), StepDone.SourceCleaned)).toBe(true);
    expect(mig().status?.status).toBe('confirming');
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
    expect(await a.driver.get(r.uid)).toMatchObject({ powerState: 'running', flavor: MEDIUM });
    expect(claimsOn(cluster, 'host-a')).toEqual([`migration/${r.migUid}`]);
    // Done once: a second pass does nothing.
    const from = cluster.writes.length;
    await a.source.reconcile(MIG_KEY);
    expect(cluster.writes.slice(from)).toEqual([]);
  });

  it('reverting: does nothing until the destination has marked DestinationCleaned', async () => {
    const r = await resizeStarted(cluster, a, a);
    await sameHostToFinished(a);
    await decide(cluster, MIG, 'Revert');
    const from = cluster.writes.length;

    await a.source.reconcile(MIG_KEY);

    expect(cluster.writes.slice(from)).toEqual([]);
    expect((await a.driver.get(r.uid))?.flavor).toEqual(MEDIUM);
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
  });

  it('reverting: after DestinationCleaned restores the exact disk with the old flavor -> reverted', async () => {
    const r = await resizeStarted(cluster, a, a);
    const original = await diskOf(a, r.uid);
    await sameHostToFinished(a);
    expect((await diskOf(a, r.uid)).length).toBeGreaterThan(original.length);
    await decide(cluster, MIG, 'Revert');
    await a.destination.reconcile(MIG_KEY);

    await a.source.reconcile(MIG_KEY);

    expect(mig().status?.status).toBe('reverted');
    expect(mig().status?.finishedAt).toBeDefined();
    const s = inst().status!;
    expect(s).toMatchObject({ vmState: 'active', taskState: '', host: 'host-a', flavor: SMALL, powerState: 'running' });
    expect(s.oldFlavor).toBeUndefined();
    expect(s.migration).toBeUndefined();
    expect(s.taskHosts).toBeUndefined();
    expect(s.guest).toMatchObject({ vcpus: 1 });
    expect(s.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Running' });
    expect((await diskOf(a, r.uid)).equals(original)).toBe(true);
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(cluster.eventsFor(MIG)).toContain('ResizeReverted');
    expect(cluster.eventsFor('web-1')).toContain('ResizeReverted');
  });
});

describe('MigrationSource: across hosts', () => {
  it('migrating: a transfer that cannot start rolls back onto the source with TransferFailed', async () => {
    // host-b publishes no migration endpoint: the send cannot even start.
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await seedToken(r);
    await b.destination.reconcile(MIG_KEY);
    expect(mig().status?.destHost).toBe('host-b');

    await a.source.reconcile(MIG_KEY);

    const m = mig().status!;
    expect(m.status).toBe('error');
    expect(m.fault).toMatchObject({ reason: 'TransferFailed' });
    expect(m.fault?.message).toBe(
      'disk transfer to host-b failed after 0 attempts: destination host-b publishes no migration endpoint',
    );
    expect(m.finishedAt).toBe(m.fault?.time);
    const s = inst().status!;
    expect(s).toMatchObject({ vmState: 'active', taskState: '', host: 'host-a', powerState: 'running', flavor: SMALL });
    expect(s.fault).toMatchObject({ reason: 'TransferFailed' });
    expect(s.migration).toBeUndefined();
    expect(s.taskHosts).toBeUndefined();
    expect((await a.driver.get(r.uid))?.powerState).toBe('running');
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(cluster.eventsFor(MIG)).toContain('MigrationFailed');
    expect(cluster.eventsFor('web-1')).toContain('MigrationFailed');
    const told = cluster.events.find((e) => e.reason === 'MigrationFailed')?.message;
    expect(told).toContain('the instance keeps running on host-a');

    // The destination then gives back what it held for it.
    await b.destination.reconcile(MIG_KEY);
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
  });

  it('migrating: without a transfer credential naming it and its destination, waits and powers nothing off', async () => {
    const b = await hosts.add('host-b', { migrationEndpoint: '127.0.0.1:1' });
    const r = await resizeStarted(cluster, a, b);
    // The operator's credential names another destination (a stale pass of its own, a moment before it replaces it).
    await seedCredential(
      cluster,
      { namespace: 'default', name: MIG, uid: r.migUid },
      'host-a',
      'host-c',
      'secret-token',
    );
    await b.destination.reconcile(MIG_KEY);

    const result = await a.source.reconcile(MIG_KEY);

    expect(result).toEqual({ requeueAfterMs: 500 });
    expect(mig().status?.status).toBe('migrating');
    expect(mig().status?.fault).toBeUndefined();
    expect((await a.driver.get(r.uid))?.powerState).toBe('running');
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
  });

  it('migrating: the rollback of a stopped instance leaves it stopped', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await seedToken(r);
    await a.kube.migrations.patchStatus(mig(), { oldVmState: 'stopped' });
    await a.kube.instances.patchStatus(inst(), { vmState: 'stopped', powerState: 'shutdown' });
    await a.driver.powerOff(r.uid);
    await b.destination.reconcile(MIG_KEY);
    await a.source.reconcile(MIG_KEY);
    expect(mig().status?.status).toBe('error');
    expect(inst().status).toMatchObject({ vmState: 'stopped', taskState: '', powerState: 'shutdown' });
    expect((await a.driver.get(r.uid))?.powerState).toBe('shutdown');
  });

  it('confirming: deletes the powered-off original and its backup, and the old claim', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await crossHostToFinished(cluster, a, b, r);
    await decide(cluster, MIG, 'Confirm');

    await a.source.reconcile(MIG_KEY);

    expect(await a.driver.get(r.uid)).toBeUndefined();
    expect(await pathExists(a.driver.instanceDir(r.uid))).toBe(false);
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
    expect(stepDone(mig(), StepDone.SourceCleaned)).toBe(true);
    // The copy on the destination is untouched.
    expect((await b.driver.get(r.uid))?.powerState).toBe('running');
  });

  it('ignores migrations that do not involve this host', async () => {
    const b = await hosts.add('host-b');
    const c = await hosts.add('host-c');
    await resizeStarted(cluster, a, b);
    await b.destination.reconcile(MIG_KEY);
    expect(c.source.concerns(mig())).toBe(false);
    for (const phase of MIGRATION_PHASES) {
      await c.kube.migrations.patchStatus(mig(), { status: phase });
      const before = cluster.writes.length;
      await c.source.reconcile(MIG_KEY);
      expect({ phase, writes: cluster.writes.slice(before) }).toEqual({ phase, writes: [] });
    }
    expect(await c.driver.list()).toEqual([]);
    expect(claimsOn(cluster, 'host-c')).toEqual([]);
  });
});

/** The host's driver honours the instance's fake.kubenova.io/fail annotation, wired as the agent wires it. */
function honourFailAnnotation(host: TestHost): void {
  const index = new InjectedFailures(silentLog);
  index.watch(cluster.cache('Instance'));
  for (const i of cluster.list('Instance')) index.observe(i);
  host.driver.setInjectedFailures((uid) => index.stepsFor(uid, host.name));
}

/** Annotates web-1 so that these driver steps fail (common/api/fault-injection.ts). */
async function failSteps(value: string): Promise<void> {
  await cluster
    .client()
    .instances.patch(
      { namespace: 'default', name: 'web-1' },
      { metadata: { annotations: { [FAIL_ANNOTATION]: value } } },
    );
}

/** Runs the source's step until its retry budget (3 in these tests) is spent: two failures, then the give-up. */
async function sourceUntilGiveUp(host: TestHost, failure: string | RegExp): Promise<void> {
  await expect(host.source.reconcile(MIG_KEY)).rejects.toThrow(failure);
  await expect(host.source.reconcile(MIG_KEY)).rejects.toThrow(failure);
  expect(await host.source.reconcile(MIG_KEY)).toEqual({});
}

const rollbackFor = (phase: MigrationStatus['status'], reason: 'Cancelled' | 'StepTimedOut' | 'HostLost') => ({
  phase: phase!,
  reason,
  message: `test: ${reason} while ${phase}`,
  time: new Date().toISOString(),
});

describe("MigrationSource: giving up in migrating (the way back is the source's)", () => {
  /** A resize from host-a to host-b whose source powered off and kept <uid>_resize, then was restarted. */
  async function migratingAfterBackup(): Promise<{ b: TestHost; r: Resize }> {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await seedToken(r);
    await b.destination.reconcile(MIG_KEY);
    await a.driver.migrateOut(r.uid);
    await a.kube.instances.patchStatus(inst(), { taskState: 'resize_migrating', taskHosts: ['host-a', 'host-b'] });
    await a.kube.migrations.patchStatus(mig(), { status: 'migrating' });
    return { b, r };
  }

  it('a step that fails stepRetries times drops <uid>_resize, runs the guest again and ends the Migration in error', async () => {
    const { b, r } = await migratingAfterBackup();
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
    honourFailAnnotation(a);
    await failSteps('migrate-out@host-a');

    await sourceUntilGiveUp(a, injectedFailureMessage('migrate-out'));

    const m = mig().status!;
    expect(m.status).toBe('error');
    expect(m.fault).toMatchObject({ reason: 'StepFailed' });
    expect(m.fault?.message).toBe(
      `migrating on host-a failed 3 times: migrateOut ${r.uid}: ${injectedFailureMessage('migrate-out')}`,
    );
    expect(m.finishedAt).toBe(m.fault?.time);
    expect(m.rollback).toBeUndefined();
    // The instance keeps its state on the source: active, its old flavor, running.
    const s = inst().status!;
    expect(s).toMatchObject({ vmState: 'active', taskState: '', host: 'host-a', flavor: SMALL, powerState: 'running' });
    expect(s.fault).toMatchObject({ reason: 'StepFailed' });
    expect(s.migration).toBeUndefined();
    expect(s.taskHosts).toBeUndefined();
    expect((await a.driver.get(r.uid))?.powerState).toBe('running');
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(cluster.eventsFor(MIG)).toContain('StepFailed');
    expect(cluster.eventsFor('web-1')).toContain('StepFailed');
    expect(cluster.events.find((e) => e.reason === 'StepFailed')?.message).toContain(
      'the instance keeps running on host-a',
    );
    // The destination then gives back what it held for it.
    await b.destination.reconcile(MIG_KEY);
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
  });

  it('a rollback that itself fails leaves the instance in error, saying both failures and what an admin can do', async () => {
    const { r } = await migratingAfterBackup();
    honourFailAnnotation(a);
    await failSteps('migrate-out,power-on');

    await sourceUntilGiveUp(a, injectedFailureMessage('migrate-out'));

    const m = mig().status!;
    expect(m.status).toBe('error');
    expect(m.fault?.reason).toBe('StepFailed');
    expect(m.fault?.message).toBe(
      `migrating on host-a failed 3 times: migrateOut ${r.uid}: ${injectedFailureMessage('migrate-out')}; ` +
        `rolling back failed too: powerOn ${r.uid}: ${injectedFailureMessage('power-on')}; ` +
        'the instance is left in error with its files kept on host-a and host-b; fix the host, then delete the ' +
        'instance, or recreate it from its image',
    );
    expect(inst().status).toMatchObject({ vmState: 'error', taskState: '', fault: m.fault });
    expect(inst().status?.migration).toBeUndefined();
  });

  it('a step that failed fewer than stepRetries times changes nothing and is tried again', async () => {
    const { r } = await migratingAfterBackup();
    honourFailAnnotation(a);
    await failSteps('migrate-out');
    const from = cluster.writes.length;

    await expect(a.source.reconcile(MIG_KEY)).rejects.toThrow(injectedFailureMessage('migrate-out'));
    await expect(a.source.reconcile(MIG_KEY)).rejects.toThrow(injectedFailureMessage('migrate-out'));

    expect(cluster.writes.slice(from)).toEqual([]);
    expect(mig().status?.status).toBe('migrating');
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
  });

  it('a failure on another host named in the annotation does not fail the step here', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, a);
    honourFailAnnotation(a);
    await failSteps(`migrate-out@${b.name}`);
    await a.destination.reconcile(MIG_KEY);

    await a.source.reconcile(MIG_KEY);

    expect(mig().status?.status).toBe('post-migrating');
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
  });

  it('a rollback requested for migrating (a cancel) rolls back at once: the guest keeps running, error Cancelled', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await b.destination.reconcile(MIG_KEY);
    await a.kube.instances.patchStatus(inst(), { taskState: 'resize_migrating' });
    const request = rollbackFor('migrating', 'Cancelled');
    await a.kube.migrations.patchStatus(mig(), { status: 'migrating', rollback: request });

    await a.source.reconcile(MIG_KEY);

    expect(mig().status).toMatchObject({ status: 'error', fault: { reason: 'Cancelled', message: request.message } });
    expect(mig().status?.rollback).toBeUndefined();
    expect(inst().status).toMatchObject({ vmState: 'active', taskState: '', host: 'host-a', powerState: 'running' });
    expect(inst().status?.fault).toMatchObject({ reason: 'Cancelled' });
    // Nothing was sent: the guest was never powered off, no backup was made.
    expect((await a.driver.get(r.uid))?.powerState).toBe('running');
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
    expect(cluster.eventsFor(MIG)).toContain('MigrationCancelled');
    expect(cluster.eventsFor('web-1')).toContain('MigrationCancelled');
  });

  it('a rollback of a stopped instance leaves it stopped', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await a.driver.powerOff(r.uid);
    await a.kube.instances.patchStatus(inst(), { vmState: 'stopped', powerState: 'shutdown' });
    await b.destination.reconcile(MIG_KEY);
    await a.kube.migrations.patchStatus(mig(), {
      status: 'migrating',
      oldVmState: 'stopped',
      rollback: rollbackFor('migrating', 'StepTimedOut'),
    });

    await a.source.reconcile(MIG_KEY);

    expect(mig().status).toMatchObject({ status: 'error', fault: { reason: 'StepFailed' } });
    expect(inst().status).toMatchObject({ vmState: 'stopped', taskState: '', powerState: 'shutdown' });
    expect((await a.driver.get(r.uid))?.powerState).toBe('shutdown');
  });

  it('a rollback request naming another phase does not stop the step, and entering the next phase clears it', async () => {
    const r = await resizeStarted(cluster, a, a);
    await a.destination.reconcile(MIG_KEY);
    await a.kube.migrations.patchStatus(mig(), {
      status: 'migrating',
      rollback: rollbackFor('pre-migrating', 'StepTimedOut'),
    });

    await a.source.reconcile(MIG_KEY);

    expect(mig().status?.status).toBe('post-migrating');
    expect(mig().status?.rollback).toBeUndefined();
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
  });

  it('taking the task writes the step deadline of migrating, then of post-migrating', async () => {
    await resizeStarted(cluster, a, a);
    await a.destination.reconcile(MIG_KEY);
    const deadlines: [string | undefined, string | undefined][] = [];
    cluster.cache('Migration').on('update', (m) => deadlines.push([m.status?.status, m.status?.stepDeadline]));

    await a.source.reconcile(MIG_KEY);

    const at = new Date(a.clock.now().getTime() + 300_000).toISOString();
    expect(deadlines).toEqual([
      ['migrating', at],
      ['post-migrating', at],
    ]);
  });
});

describe('MigrationSource: giving up in confirming (free the old claim, leave the files to the clean-up)', () => {
  it('confirm_resize failing stepRetries times frees the old claim and marks SourceCleaned (CleanupFailed)', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await crossHostToFinished(cluster, a, b, r);
    await decide(cluster, MIG, 'Confirm');
    // The migrated-away original runs again here: the driver refuses to delete it.
    await a.driver.powerOn(r.uid);

    await sourceUntilGiveUp(a, 'refusing to delete it as the migrated-away original');

    const done = mig().status?.conditions?.find((c) => c.type === StepDone.SourceCleaned);
    expect(done).toMatchObject({ status: 'True', reason: 'CleanupFailed' });
    expect(done?.message).toContain('host-a could not drop the old copy (confirming on host-a failed 3 times: ');
    expect(done?.message).toContain('it is left for the clean-up');
    expect(mig().status?.status).toBe('confirming');
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
    // The files stay for the stale-copy clean-up.
    expect(await pathExists(a.driver.instanceDir(r.uid))).toBe(true);
    expect(cluster.eventsFor(MIG)).toContain('StepFailed');
    // The confirm goes on: the destination keeps the instance.
    await b.destination.reconcile(MIG_KEY);
    expect(mig().status?.status).toBe('confirmed');
    expect(inst().status).toMatchObject({ vmState: 'active', host: 'host-b', flavor: MEDIUM });
    expect(claimsOn(cluster, 'host-b')).toEqual([`instance/${r.uid}`]);
  });

  it('a rollback requested for confirming (past its deadline) gives up at once, without touching the files', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await crossHostToFinished(cluster, a, b, r);
    await decide(cluster, MIG, 'Confirm');
    await a.kube.migrations.patchStatus(mig(), { rollback: rollbackFor('confirming', 'StepTimedOut') });
    const confirm = vi.spyOn(a.driver, 'confirmMigration');

    await a.source.reconcile(MIG_KEY);

    expect(confirm).not.toHaveBeenCalled();
    expect(stepDone(mig(), StepDone.SourceCleaned)).toBe(true);
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
    // Done once: a second pass does nothing.
    const from = cluster.writes.length;
    await a.source.reconcile(MIG_KEY);
    expect(cluster.writes.slice(from)).toEqual([]);
  });
});

describe('MigrationSource: reverting has no way back (it strands)', () => {
  it('a restore failing stepRetries times leaves the instance in error with what an admin can do; files kept', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await crossHostToFinished(cluster, a, b, r);
    await decide(cluster, MIG, 'Revert');
    await b.destination.reconcile(MIG_KEY);
    honourFailAnnotation(a);
    await failSteps('revert');

    await sourceUntilGiveUp(a, injectedFailureMessage('revert'));

    const m = mig().status!;
    expect(m.status).toBe('error');
    expect(m.fault?.reason).toBe('StepFailed');
    expect(m.fault?.message).toBe(
      `reverting on host-a failed 3 times: revertMigration ${r.uid}: ${injectedFailureMessage('revert')}; ` +
        'the instance is left in error with its files kept on host-a and host-b; fix the host, then delete the ' +
        'instance, or recreate it from its image',
    );
    expect(m.finishedAt).toBe(m.fault?.time);
    const s = inst().status!;
    expect(s).toMatchObject({ vmState: 'error', taskState: '', fault: m.fault });
    expect(s.migration).toBeUndefined();
    expect(s.taskHosts).toBeUndefined();
    expect(s.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'StepFailed' });
    // Nothing is deleted: the backup to restore by hand stays, and so does the claim.
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(cluster.eventsFor(MIG)).toContain('StepFailed');
    expect(cluster.eventsFor('web-1')).toContain('StepFailed');
  });

  it('a revert the user asked for that ran past its deadline still restores and ends reverted, not error', async () => {
    const r = await resizeStarted(cluster, a, a);
    await sameHostToFinished(a);
    await decide(cluster, MIG, 'Revert');
    await a.destination.reconcile(MIG_KEY);
    // The operator's step guard asks for the rollback of reverting, which has no way back.
    await a.kube.migrations.patchStatus(mig(), { rollback: rollbackFor('reverting', 'StepTimedOut') });

    await a.source.reconcile(MIG_KEY);

    expect(inst().status).toMatchObject({ vmState: 'active', taskState: '', host: 'host-a', flavor: SMALL });
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
    expect(mig().status?.status).toBe('reverted');
    expect(mig().status?.fault).toBeUndefined();
    expect(cluster.eventsFor(MIG)).toContain('ResizeReverted');
  });

  it('a same-host resize stranded in reverting names its one host', async () => {
    await resizeStarted(cluster, a, a);
    await sameHostToFinished(a);
    await decide(cluster, MIG, 'Revert');
    await a.destination.reconcile(MIG_KEY);
    honourFailAnnotation(a);
    await failSteps('revert');

    await sourceUntilGiveUp(a, injectedFailureMessage('revert'));

    expect(mig().status?.status).toBe('error');
    expect(mig().status?.fault?.message).toContain(
      'the instance is left in error with its files kept on host-a; fix the host',
    );
  });
});

describe('MigrationSource: an evacuation', () => {
  it('never acts for an evacuation, even when its agent is back: its host is fenced and the operator stands in', async () => {
    const b = await hosts.add('host-b');
    await resizeStarted(cluster, a, b, SMALL);
    await a.kube.migrations.patchStatus(mig(), { type: 'evacuation' });
    await b.destination.reconcile(MIG_KEY);
    expect(mig().status?.destHost).toBe('host-b');
    expect(a.source.concerns(mig())).toBe(false);
    const from = cluster.writes.length;

    await a.source.reconcile(MIG_KEY);

    expect(cluster.writes.slice(from)).toEqual([]);
    expect(mig().status?.status).toBe('pre-migrating');
    expect(inst().status?.taskState).toBe('resize_prep');
  });
});

describe('MigrationSource: a revert that is a rollback ends in error', () => {
  it("after the destination handed over, restores the old copy and ends the Migration in error with the rollback's fault", async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    const original = await diskOf(a, r.uid);
    await b.destination.reconcile(MIG_KEY);
    await stageTransfer(cluster, a, b, r);
    const request = rollbackFor('post-migrating', 'HostLost');
    await a.kube.instances.patchStatus(inst(), { taskState: 'resize_reverting' });
    await a.kube.migrations.patchStatus(mig(), {
      status: 'reverting',
      rollback: request,
      conditions: [
        {
          type: StepDone.DestinationCleaned,
          status: 'True',
          reason: 'HostLost',
          message: 'host-b is forced down',
          lastTransitionTime: new Date().toISOString(),
        },
      ],
    });

    await a.source.reconcile(MIG_KEY);

    const m = mig().status!;
    expect(m.status).toBe('error');
    expect(m.fault).toMatchObject({ reason: 'HostLost', message: request.message });
    expect(m.finishedAt).toBe(m.fault?.time);
    expect(inst().status).toMatchObject({
      vmState: 'active',
      taskState: '',
      host: 'host-a',
      flavor: SMALL,
      powerState: 'running',
    });
    expect(inst().status?.migration).toBeUndefined();
    expect((await diskOf(a, r.uid)).equals(original)).toBe(true);
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
    expect(cluster.eventsFor(MIG)).toContain('HostLost');
    expect(cluster.eventsFor(MIG)).not.toContain('ResizeReverted');
    expect(cluster.eventsFor('web-1')).toContain('RolledBack');
    const told = cluster.events.find((e) => e.reason === 'HostLost')?.message;
    expect(told).toBe(`${request.message}; rolled back: the instance runs on host-a with m1.small again`);
  });
});
