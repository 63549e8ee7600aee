import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MIGRATION_LIFECYCLE, MIGRATION_PHASES, StepDone, ownersOf, stepDone } from '../../common/api/lifecycle.js';
import { FAIL_ANNOTATION, injectedFailureMessage } from '../../common/api/fault-injection.js';
import { API_VERSION, FINALIZER, type Instance, type Migration, type MigrationStatus } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { fakeDiskSize } from '../driver/fake.js';
import { InjectedFailures } from '../driver/injected-failures.js';
import {
  HUGE,
  MEDIUM,
  SMALL,
  TestHosts,
  silentLog,
  bootOn,
  claimsOn,
  decide,
  pathExists,
  type TestHost,
  oneHost,
} from '../testing.js';
import {
  INST_KEY,
  MIG,
  MIG_KEY,
  crossHostToFinished,
  resizeStarted,
  sameHostToFinished,
  stageTransfer,
} from './testing.js';

let cluster: FakeCluster;
let hosts: TestHosts;
let a: TestHost;

beforeEach(async () => ({ cluster, hosts, host: a } = await oneHost()));
afterEach(() => hosts.cleanup());

const inst = (): Instance => cluster.get('Instance', 'web-1')!;
const mig = (name = MIG): Migration => cluster.get('Migration', name)!;
const diskOf = (host: TestHost, uid: string) => readFile(join(host.driver.instanceDir(uid), 'disk.img'));

/** Deletes web-1 as the API server does with the operator's finalizer on it: deletionTimestamp set, object kept. */
async function deleteKeptByFinalizer(host: TestHost): Promise<void> {
  await host.kube.instances.patch({ namespace: 'default', name: 'web-1' }, { metadata: { finalizers: [FINALIZER] } });
  await host.kube.instances.delete({ namespace: 'default', name: 'web-1' });
  expect(inst().metadata.deletionTimestamp).toBeDefined();
}

/**
 * Holds the next call of `obj[method]` until `release()`, before it runs or after it has run
 * (its answer slow to come back); `reached` resolves once the call is held.
 */
function heldOnce<T extends object, M extends keyof T & string>(
  obj: T,
  method: M,
  when: 'before' | 'after' = 'before',
) {
  let arrived!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((resolve) => (arrived = resolve));
  const held = new Promise<void>((resolve) => (release = resolve));
  const original = (obj[method] as (...args: unknown[]) => Promise<unknown>).bind(obj);
  const spy = vi.spyOn(obj, method as never) as unknown as { mockImplementationOnce(f: unknown): void };
  spy.mockImplementationOnce(async (...args: unknown[]) => {
    const answer = when === 'after' ? await original(...args) : undefined;
    arrived();
    await held;
    return when === 'after' ? answer : original(...args);
  });
  return { reached, release };
}

describe('MigrationDestination: its dispatch table', () => {
  it('has a step exactly for the phases whose steps in MIGRATION_LIFECYCLE name the destination as owner', () => {
    for (const phase of MIGRATION_PHASES) {
      expect({ phase, step: a.destination.steps[phase] !== null }).toEqual({
        phase,
        step: ownersOf(phase).has('destination'),
      });
    }
    expect(Object.keys(a.destination.steps).sort()).toEqual(Object.keys(MIGRATION_LIFECYCLE).sort());
  });
});

describe('MigrationDestination: a same-host resize', () => {
  it('pre-migrating: claims the new flavor beside the instance claim and names itself destHost', async () => {
    const r = await resizeStarted(cluster, a, a);
    await a.destination.reconcile(MIG_KEY);
    expect(mig().status?.destHost).toBe('host-a');
    expect(claimsOn(cluster, 'host-a').sort()).toEqual([`instance/${r.uid}`, `migration/${r.migUid}`].sort());
    const claim = cluster.get('ComputeNode', 'host-a')?.status?.claims?.find((c) => c.kind === 'migration');
    expect(claim).toMatchObject({ instance: INST_KEY, vcpus: 2, memoryMiB: 2048, diskGiB: 2 });
    expect(cluster.eventsFor(MIG)).toEqual([]);
    // The instance is the source's to move: the destination has not touched it.
    expect(inst().status?.taskState).toBe('resize_prep');
  });

  it('post-migrating: finishes in place: resized to the new flavor, disk grown, awaiting decision', async () => {
    const r = await resizeStarted(cluster, a, a);
    await a.destination.reconcile(MIG_KEY);
    await a.source.reconcile(MIG_KEY);
    expect(mig().status?.status).toBe('post-migrating');

    await a.destination.reconcile(MIG_KEY);

    expect(mig().status).toMatchObject({ status: 'finished' });
    expect(mig().status?.finishedAt).toBeDefined();
    expect(inst().status).toMatchObject({
      vmState: 'resized',
      taskState: '',
      host: 'host-a',
      flavor: MEDIUM,
      oldFlavor: SMALL,
      powerState: 'running',
      migration: MIG,
    });
    expect(inst().status?.guest).toMatchObject({ vcpus: 2, memoryKiB: 2048 * 1024 });
    const ready = inst().status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'True', reason: 'Running' });
    expect(ready?.message).toContain('resize awaiting confirm or revert');
    expect((await a.driver.get(r.uid))?.flavor).toEqual(MEDIUM);
    expect((await diskOf(a, r.uid)).length).toBe(fakeDiskSize(MEDIUM.rootDiskGiB));
    // The backup stays until the decision.
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
    expect(cluster.eventsFor(MIG)).toContain('ResizeFinished');
    expect(cluster.eventsFor('web-1')).toContain('ResizeFinished');
  });

  it('post-migrating: the resize of a stopped instance finishes stopped, with Ready False', async () => {
    const booted = await bootOn(a, cluster, 'web-1');
    await a.driver.powerOff(booted.metadata.uid!);
    await a.kube.instances.patchStatus(booted, { vmState: 'stopped', powerState: 'shutdown' });
    await resizeStarted(cluster, a, a);
    expect(mig().status?.oldVmState).toBe('stopped');
    await a.destination.reconcile(MIG_KEY);
    await a.source.reconcile(MIG_KEY);
    await a.destination.reconcile(MIG_KEY);
    expect(inst().status).toMatchObject({ vmState: 'resized', powerState: 'shutdown', flavor: MEDIUM });
    expect(inst().status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'Stopped',
    });
    expect(inst().status?.guest).toBeUndefined();
  });

  it('confirming: does nothing until the source has marked SourceCleaned', async () => {
    const r = await resizeStarted(cluster, a, a);
    await sameHostToFinished(a);
    await decide(cluster, MIG, 'Confirm');
    const from = cluster.writes.length;
    await a.destination.reconcile(MIG_KEY);
    expect(cluster.writes.slice(from)).toEqual([]);
    expect(mig().status?.status).toBe('confirming');
    expect(claimsOn(cluster, 'host-a')).toContain(`migration/${r.migUid}`);
  });

  it('confirming: after SourceCleaned turns the migration claim into the instance claim -> confirmed', async () => {
    const r = await resizeStarted(cluster, a, a);
    await sameHostToFinished(a);
    await decide(cluster, MIG, 'Confirm');
    await a.source.reconcile(MIG_KEY);
    expect(stepDone(mig(), StepDone.SourceCleaned)).toBe(true);

    await a.destination.reconcile(MIG_KEY);

    expect(mig().status?.status).toBe('confirmed');
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(cluster.get('ComputeNode', 'host-a')?.status?.allocated).toEqual({ vcpus: 2, memoryMiB: 2048, diskGiB: 2 });
    const s = inst().status!;
    expect(s).toMatchObject({ vmState: 'active', taskState: '', flavor: MEDIUM, host: 'host-a' });
    expect(s.oldFlavor).toBeUndefined();
    expect(s.migration).toBeUndefined();
    expect(s.taskHosts).toBeUndefined();
    expect(cluster.eventsFor(MIG)).toContain('ResizeConfirmed');
    expect(cluster.eventsFor('web-1')).toContain('ResizeConfirmed');
  });

  it('reverting: frees the migration claim, marks DestinationCleaned, leaves the directory to the source', async () => {
    const r = await resizeStarted(cluster, a, a);
    await sameHostToFinished(a);
    await decide(cluster, MIG, 'Revert');

    await a.destination.reconcile(MIG_KEY);

    expect(stepDone(mig(), StepDone.DestinationCleaned)).toBe(true);
    expect(mig().status?.status).toBe('reverting');
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(await a.driver.get(r.uid)).toBeDefined();
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
    // Done once: a second pass does nothing.
    const from = cluster.writes.length;
    await a.destination.reconcile(MIG_KEY);
    expect(cluster.writes.slice(from)).toEqual([]);
  });

  it('announces a slow finish (taskState resize_finish) before the resized write', async () => {
    const slowHosts = new TestHosts(cluster);
    const slow = await slowHosts.add('host-s', { driver: { finishDelayMs: 1_500 } });
    try {
      const tasks: string[] = [];
      cluster.cache('Instance').on('update', (i) => tasks.push(`${i.status?.vmState}/${i.status?.taskState}`));
      await resizeStarted(cluster, slow, slow);
      await sameHostToFinished(slow);
      expect(tasks.slice(-2)).toEqual(['active/resize_finish', 'resized/']);
    } finally {
      await slowHosts.cleanup();
    }
  }, 20_000);

  it('walks every phase with both sides: a resize confirmed, then a second one reverted', async () => {
    const phases: string[] = [];
    const tasks: string[] = [];
    cluster.cache('Migration').on('update', (m) => {
      if (m.metadata.name === MIG && phases.at(-1) !== m.status?.status) phases.push(m.status?.status ?? '');
    });
    cluster.cache('Instance').on('update', (i) => {
      const now = `${i.status?.vmState}/${i.status?.taskState}`;
      if (tasks.at(-1) !== now) tasks.push(now);
    });
    const r = await resizeStarted(cluster, a, a);
    await sameHostToFinished(a);
    await decide(cluster, MIG, 'Confirm');
    await a.source.reconcile(MIG_KEY);
    await a.destination.reconcile(MIG_KEY);
    // pre-migrating is written again when the destination names itself destHost.
    expect(phases).toEqual(['pre-migrating', 'migrating', 'post-migrating', 'finished', 'confirming', 'confirmed']);
    expect(tasks).toEqual([
      'active/', // the boot: a fast spawn is one write
      'active/resize_prep', // the operator starts the resize
      'active/resize_migrating',
      'active/resize_migrated',
      'resized/', // a fast finish is one write: resize_finish is announced only when it is slow
      'resized/resize_confirming',
      'active/',
    ]);
    expect(inst().status).toMatchObject({ vmState: 'active', flavor: MEDIUM });
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
    const resized = await diskOf(a, r.uid);

    // A second resize, down to fewer vCPUs and less memory on the same root disk (root disks never
    // shrink: the driver refuses a disk bigger than the flavor's), reverted: m1.medium comes back
    // with its exact disk.
    const down = { ...SMALL, name: 'm1.small-2g', rootDiskGiB: MEDIUM.rootDiskGiB };
    const second = 'web-1-resize-3';
    const r2 = await resizeStarted(cluster, a, a, down, second);
    const key = `default/${second}`;
    await sameHostToFinished(a, key);
    expect(inst().status).toMatchObject({ vmState: 'resized', flavor: down, oldFlavor: MEDIUM });
    await decide(cluster, second, 'Revert');
    await a.destination.reconcile(key);
    expect(stepDone(mig(second), StepDone.DestinationCleaned)).toBe(true);
    await a.source.reconcile(key);
    expect(mig(second).status?.status).toBe('reverted');
    expect(inst().status).toMatchObject({ vmState: 'active', taskState: '', flavor: MEDIUM, powerState: 'running' });
    expect(inst().status?.oldFlavor).toBeUndefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r2.uid}`]);
    expect(cluster.get('ComputeNode', 'host-a')?.status?.allocated).toEqual({ vcpus: 2, memoryMiB: 2048, diskGiB: 2 });
    expect((await diskOf(a, r.uid)).equals(resized)).toBe(true);
  });
});

describe('MigrationDestination: failures', () => {
  it('pre-migrating: a claim that does not fit reports claimFailure for this attempt and ClaimFailed', async () => {
    const r = await resizeStarted(cluster, a, a, HUGE);
    await a.destination.reconcile(MIG_KEY);
    expect(mig().status?.scheduling?.claimFailure).toEqual({
      host: 'host-a',
      attempt: 1,
      message: 'claim on host-a failed: free memory 7168 MiB < requested 65536 MiB',
    });
    expect(mig().status?.destHost).toBeUndefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(cluster.eventsFor(MIG)).toEqual(['ClaimFailed']);
    // Not tried again for the same attempt.
    const from = cluster.writes.length;
    await a.destination.reconcile(MIG_KEY);
    expect(cluster.writes.slice(from)).toEqual([]);
  });

  it('pre-migrating: a claim whose destHost write finds the migration sent elsewhere is given back at once', async () => {
    const r = await resizeStarted(cluster, a, a);
    let moved = false;
    // The operator gives up on this host while the claim is being written.
    cluster.cache('ComputeNode').on('update', () => {
      if (moved) return;
      moved = true;
      const sent = { attempts: 2, triedHosts: ['host-a', 'host-b'], selectedHost: 'host-b' };
      void cluster.client().migrations.patchStatus({ metadata: mig().metadata }, { scheduling: sent });
    });

    await expect(a.destination.reconcile(MIG_KEY)).rejects.toMatchObject({ code: 409 });

    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(mig().status?.destHost).toBeUndefined();
  });

  it('pre-migrating: a step run again from a cache that missed its own destHost write keeps the claim', async () => {
    const r = await resizeStarted(cluster, a, a);
    const stale = mig();
    await a.destination.reconcile(MIG_KEY);
    // The source has moved on; this host's cache still shows the migration before destHost.
    await a.kube.migrations.patchStatus(mig(), { status: 'migrating' });

    await expect(a.destination.steps['pre-migrating']!(stale, inst(), silentLog)).rejects.toMatchObject({ code: 409 });

    expect(claimsOn(cluster, 'host-a').sort()).toEqual([`instance/${r.uid}`, `migration/${r.migUid}`].sort());
  });

  it('error: frees its migration claim and anything staged for the migration', async () => {
    const r = await resizeStarted(cluster, a, a);
    await a.destination.reconcile(MIG_KEY);
    const staged = join(a.stagingDir, r.migUid);
    await mkdir(join(staged, 'files'), { recursive: true });
    await a.kube.migrations.patchStatus(mig(), {
      status: 'error',
      fault: { reason: 'TransferFailed', message: 'test' },
    });

    await a.destination.reconcile(MIG_KEY);

    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(await pathExists(staged)).toBe(false);
  });

  it('post-migrating across hosts: no verified transfer fails the step for a retry, changing nothing', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await b.destination.reconcile(MIG_KEY);
    await a.kube.migrations.patchStatus(mig(), { status: 'post-migrating' });

    await expect(b.destination.reconcile(MIG_KEY)).rejects.toThrow(
      `no verified transfer for migration ${MIG} on host-b`,
    );

    expect(mig().status?.status).toBe('post-migrating');
    expect(await b.driver.list()).toEqual([]);
    expect(claimsOn(cluster, 'host-b')).toEqual([`migration/${r.migUid}`]);
  });
});

describe('MigrationDestination: server groups (the late check under the claim lock)', () => {
  const group = (name: string, policy: 'affinity' | 'anti-affinity') =>
    cluster.seed<'ServerGroup'>({
      apiVersion: API_VERSION,
      kind: 'ServerGroup',
      metadata: { name, namespace: 'default' },
      spec: { policy },
    });

  it('pre-migrating: an anti-affinity member on the chosen host fails the claim, reported for this attempt', async () => {
    const b = await hosts.add('host-b');
    group('web', 'anti-affinity');
    await bootOn(a, cluster, 'web-1', SMALL, { serverGroup: 'web' });
    const other = await bootOn(b, cluster, 'web-2', SMALL, { serverGroup: 'web' });
    await resizeStarted(cluster, a, b);

    await b.destination.reconcile(MIG_KEY);

    // What the operator reads to try another host: the refusal of this host for this attempt.
    expect(mig().status?.scheduling?.claimFailure).toEqual({
      host: 'host-b',
      attempt: 1,
      message: 'claim on host-b failed: server group web (anti-affinity): member default/web-2 already holds this host',
    });
    expect(mig().status?.destHost).toBeUndefined();
    expect(claimsOn(cluster, 'host-b')).toEqual([`instance/${other.metadata.uid}`]);
    expect(cluster.eventsFor(MIG)).toEqual(['ClaimFailed']);
    expect(inst().status).toMatchObject({ host: 'host-a', taskState: 'resize_prep' });
    // Not tried again for the same attempt.
    const from = cluster.writes.length;
    await b.destination.reconcile(MIG_KEY);
    expect(cluster.writes.slice(from)).toEqual([]);
  });

  it('pre-migrating: the instance being moved is not a conflicting member of itself (same-host resize)', async () => {
    group('web', 'anti-affinity');
    const r = await resizeStarted(cluster, a, a);
    await a.kube.instances.patch({ namespace: 'default', name: 'web-1' }, { spec: { serverGroup: 'web' } });

    await a.destination.reconcile(MIG_KEY);

    expect(mig().status?.scheduling?.claimFailure).toBeUndefined();
    expect(mig().status?.destHost).toBe('host-a');
    expect(claimsOn(cluster, 'host-a').sort()).toEqual([`instance/${r.uid}`, `migration/${r.migUid}`].sort());
  });

  it('pre-migrating: a host with no other member of the anti-affinity group takes the migration', async () => {
    const b = await hosts.add('host-b');
    const c = await hosts.add('host-c');
    group('web', 'anti-affinity');
    await bootOn(a, cluster, 'web-1', SMALL, { serverGroup: 'web' });
    await bootOn(b, cluster, 'web-2', SMALL, { serverGroup: 'web' });
    const r = await resizeStarted(cluster, a, c);

    await c.destination.reconcile(MIG_KEY);

    expect(mig().status?.destHost).toBe('host-c');
    expect(claimsOn(cluster, 'host-c')).toEqual([`migration/${r.migUid}`]);
  });

  it('pre-migrating: an affinity member running elsewhere fails the claim on the chosen host', async () => {
    const b = await hosts.add('host-b');
    group('db', 'affinity');
    await bootOn(a, cluster, 'web-1', SMALL, { serverGroup: 'db' });
    await bootOn(a, cluster, 'db-2', SMALL, { serverGroup: 'db' });
    await resizeStarted(cluster, a, b);

    await b.destination.reconcile(MIG_KEY);

    expect(mig().status?.scheduling?.claimFailure?.message).toContain(
      'server group db (affinity): member db-2 runs on host-a',
    );
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
  });
});

describe('MigrationDestination: across hosts', () => {
  it('post-migrating: moves the verified transfer into place, starts it resized, drops the staging', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    const original = await diskOf(a, r.uid);
    await b.destination.reconcile(MIG_KEY);
    await stageTransfer(cluster, a, b, r);

    await b.destination.reconcile(MIG_KEY);

    expect(mig().status?.status).toBe('finished');
    expect(inst().status).toMatchObject({ vmState: 'resized', host: 'host-b', flavor: MEDIUM, powerState: 'running' });
    const moved = await diskOf(b, r.uid);
    // The received bytes, grown by appending: the original disk is its prefix.
    expect(moved.subarray(0, original.length).equals(original)).toBe(true);
    expect(moved.length).toBe(fakeDiskSize(MEDIUM.rootDiskGiB));
    expect(await pathExists(join(b.stagingDir, r.migUid))).toBe(false);
    expect(claimsOn(cluster, 'host-b')).toEqual([`migration/${r.migUid}`]);
  });

  it("the instance's host and the field its host's agent watches move together: to the destination, back on a revert", async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await b.destination.reconcile(MIG_KEY);
    await stageTransfer(cluster, a, b, r);
    await b.destination.reconcile(MIG_KEY);
    expect(inst().status).toMatchObject({ host: 'host-b', scheduling: { selectedHost: 'host-b' } });

    await decide(cluster, MIG, 'Revert');
    await b.destination.reconcile(MIG_KEY);
    await a.source.reconcile(MIG_KEY);

    expect(mig().status?.status).toBe('reverted');
    expect(inst().status).toMatchObject({ host: 'host-a', scheduling: { selectedHost: 'host-a' } });
  });

  it("a finish seen again through a Migration view that lags behind its instance only writes the Migration's move", async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await crossHostToFinished(cluster, a, b, r);
    // The instance's write has arrived, the Migration's not yet: it still looks post-migrating.
    await b.kube.migrations.patchStatus(mig(), { status: 'post-migrating' });
    const from = cluster.writes.length;

    await b.destination.reconcile(MIG_KEY);

    expect(cluster.writes.slice(from).map((w) => `${w.kind}.${w.verb}`)).toEqual(['Migration.patchStatus']);
    expect(mig().status?.status).toBe('finished');
    expect(inst().status).toMatchObject({ vmState: 'resized', taskState: '', host: 'host-b' });
  });

  it('an instance deleted as its finish found the transfer: no guest is made once the deletion pass destroyed', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await b.destination.reconcile(MIG_KEY);
    await stageTransfer(cluster, a, b, r);
    const found = heldOnce(b.transfers, 'completedDir', 'after');
    const finish = vi.spyOn(b.driver, 'finishMigration');

    const finishing = b.destination.reconcile(MIG_KEY).catch((err: unknown) => err);
    await found.reached;
    await deleteKeptByFinalizer(b);
    const freeing = heldOnce(b.tracker, 'releaseWhere');
    const cleaning = b.worker.reconcile(INST_KEY); // this host's deletion pass: destroy, then free
    await freeing.reached;
    found.release();
    await new Promise(setImmediate); // a finish free to go on would reach the driver here
    freeing.release();
    await Promise.all([finishing, cleaning]);

    // Not even for a moment: the undo after the failed status write would come too late.
    expect(finish).not.toHaveBeenCalled();
    expect(await b.driver.get(r.uid)).toBeUndefined();
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
    expect(mig().status?.status).toBe('post-migrating');
  });

  it('reverting: destroys its copy, frees the migration claim and marks DestinationCleaned', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await crossHostToFinished(cluster, a, b, r);
    await decide(cluster, MIG, 'Revert');

    await b.destination.reconcile(MIG_KEY);

    expect(await b.driver.get(r.uid)).toBeUndefined();
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
    expect(stepDone(mig(), StepDone.DestinationCleaned)).toBe(true);
    // The source still has its powered-off original and the backup to restore.
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
  });

  it('ignores migrations that do not involve this host', async () => {
    const b = await hosts.add('host-b');
    const c = await hosts.add('host-c');
    await resizeStarted(cluster, a, b);
    expect(c.destination.concerns(mig())).toBe(false);
    const from = cluster.writes.length;
    for (const phase of MIGRATION_PHASES) {
      await c.kube.migrations.patchStatus(mig(), { status: phase });
      const before = cluster.writes.length;
      await c.destination.reconcile(MIG_KEY);
      expect({ phase, writes: cluster.writes.slice(before) }).toEqual({ phase, writes: [] });
    }
    expect(cluster.writes.length - from).toBe(MIGRATION_PHASES.length);
    expect(claimsOn(cluster, 'host-c')).toEqual([]);
    expect(await b.driver.list()).toEqual([]);
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

/** Runs the destination's step until its retry budget (3 in these tests) is spent: two failures, then the give-up. */
async function destinationUntilGiveUp(host: TestHost, failure: string): Promise<void> {
  await expect(host.destination.reconcile(MIG_KEY)).rejects.toThrow(failure);
  await expect(host.destination.reconcile(MIG_KEY)).rejects.toThrow(failure);
  expect(await host.destination.reconcile(MIG_KEY)).toEqual({});
}

const rollbackFor = (phase: NonNullable<MigrationStatus['status']>, reason: 'Cancelled' | 'StepTimedOut') => ({
  phase,
  reason,
  message: `test: ${reason} while ${phase}`,
  time: new Date().toISOString(),
});

describe('MigrationDestination: giving up in post-migrating hands over to the revert steps', () => {
  it('finish_resize failing stepRetries times -> reverting with the rollback; the revert steps end the migration in error', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    const original = await diskOf(a, r.uid);
    await b.destination.reconcile(MIG_KEY);
    await stageTransfer(cluster, a, b, r);
    honourFailAnnotation(b);
    await failSteps('finish-migration@host-b');

    await destinationUntilGiveUp(b, injectedFailureMessage('finish-migration'));

    const handed = mig().status!;
    expect(handed.status).toBe('reverting');
    const cause = `post-migrating on host-b failed 3 times: finishMigration ${r.uid}: ${injectedFailureMessage('finish-migration')}`;
    expect(handed.rollback).toMatchObject({ phase: 'post-migrating', reason: 'StepFailed', message: cause });
    expect(handed.stepDeadline).toBe(new Date(b.clock.now().getTime() + 300_000).toISOString());
    expect(inst().status).toMatchObject({ taskState: 'resize_reverting', host: 'host-a', flavor: SMALL });
    expect(cluster.eventsFor(MIG)).toContain('RollingBack');
    expect(cluster.eventsFor('web-1')).toContain('RollingBack');
    expect(cluster.events.find((e) => e.reason === 'RollingBack')?.message).toBe(`rolling back onto host-a: ${cause}`);

    // The normal revert steps: the destination lets go, the source restores its backup.
    await b.destination.reconcile(MIG_KEY);
    expect(stepDone(mig(), StepDone.DestinationCleaned)).toBe(true);
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
    expect(await pathExists(join(b.stagingDir, r.migUid))).toBe(false);
    await a.source.reconcile(MIG_KEY);

    const m = mig().status!;
    expect(m.status).toBe('error');
    expect(m.fault).toMatchObject({ reason: 'StepFailed', message: cause });
    const s = inst().status!;
    expect(s).toMatchObject({ vmState: 'active', taskState: '', host: 'host-a', flavor: SMALL, powerState: 'running' });
    expect(s.migration).toBeUndefined();
    expect((await diskOf(a, r.uid)).equals(original)).toBe(true);
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(cluster.eventsFor(MIG)).not.toContain('ResizeReverted');
    expect(cluster.eventsFor('web-1')).toContain('RolledBack');
  });

  it('on one host: the failed finish is handed over, the source restores the backup in place and ends error', async () => {
    const r = await resizeStarted(cluster, a, a);
    const original = await diskOf(a, r.uid);
    await a.destination.reconcile(MIG_KEY);
    await a.source.reconcile(MIG_KEY);
    expect(mig().status?.status).toBe('post-migrating');
    honourFailAnnotation(a);
    await failSteps('finish-migration');

    await destinationUntilGiveUp(a, injectedFailureMessage('finish-migration'));
    expect(mig().status?.status).toBe('reverting');
    await a.destination.reconcile(MIG_KEY);
    // The directory is the source's to restore: the destination on the same host does not destroy it.
    expect(await a.driver.hasBackup(r.uid)).toBe(true);
    await a.source.reconcile(MIG_KEY);

    expect(mig().status).toMatchObject({ status: 'error', fault: { reason: 'StepFailed' } });
    expect(inst().status).toMatchObject({ vmState: 'active', taskState: '', flavor: SMALL, powerState: 'running' });
    expect((await diskOf(a, r.uid)).equals(original)).toBe(true);
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
  });

  it('a rollback requested for post-migrating (a cancel) hands over at once, keeping the request; it ends error Cancelled', async () => {
    const b = await hosts.add('host-b');
    const r = await resizeStarted(cluster, a, b);
    await b.destination.reconcile(MIG_KEY);
    await stageTransfer(cluster, a, b, r);
    const request = rollbackFor('post-migrating', 'Cancelled');
    await a.kube.migrations.patchStatus(mig(), { rollback: request });
    const finish = vi.spyOn(b.driver, 'finishMigration');

    await b.destination.reconcile(MIG_KEY);

    expect(finish).not.toHaveBeenCalled();
    expect(mig().status).toMatchObject({ status: 'reverting', rollback: request });
    expect(inst().status?.taskState).toBe('resize_reverting');
    await b.destination.reconcile(MIG_KEY);
    await a.source.reconcile(MIG_KEY);
    expect(mig().status).toMatchObject({ status: 'error', fault: { reason: 'Cancelled', message: request.message } });
    expect(inst().status).toMatchObject({ vmState: 'active', host: 'host-a', flavor: SMALL });
  });

  it('a rollback request on a migration this host is not the destination of changes nothing', async () => {
    const b = await hosts.add('host-b');
    const c = await hosts.add('host-c');
    const r = await resizeStarted(cluster, a, b);
    await b.destination.reconcile(MIG_KEY);
    await stageTransfer(cluster, a, b, r);
    await a.kube.migrations.patchStatus(mig(), { rollback: rollbackFor('post-migrating', 'Cancelled') });
    const from = cluster.writes.length;

    await c.destination.reconcile(MIG_KEY);

    expect(cluster.writes.slice(from)).toEqual([]);
    expect(mig().status?.status).toBe('post-migrating');
  });
});

describe('MigrationDestination: an evacuation rebuilds from the image', () => {
  /**
   * web-1 on host-a (forced down) evacuated to host-b: the destination holds its claim and the
   * operator, standing in for the fenced source, has moved the Migration to post-migrating.
   */
  async function evacuationHandedTo(b: TestHost, vmState: 'active' | 'stopped' = 'active') {
    const booted = await bootOn(a, cluster, 'web-1', SMALL);
    if (vmState === 'stopped') {
      await a.driver.powerOff(booted.metadata.uid!);
      await a.kube.instances.patchStatus(booted, { vmState: 'stopped', powerState: 'shutdown' });
    }
    const r = await resizeStarted(cluster, a, b, SMALL);
    await a.kube.migrations.patchStatus(mig(), { type: 'evacuation' });
    await b.destination.reconcile(MIG_KEY);
    expect(mig().status?.destHost).toBe(b.name);
    await a.kube.instances.patchStatus(inst(), { taskState: 'resize_migrated', taskHosts: ['host-a', b.name] });
    await a.kube.migrations.patchStatus(mig(), { status: 'post-migrating' });
    const marker = (await a.driver.guestReport(r.uid))?.marker;
    return { ...r, marker };
  }

  it('post-migrating: spawns a new guest here, turns the migration claim into the instance claim -> confirmed', async () => {
    const b = await hosts.add('host-b');
    const r = await evacuationHandedTo(b);

    await b.destination.reconcile(MIG_KEY);

    const m = mig().status!;
    expect(m.status).toBe('confirmed');
    expect(m.finishedAt).toBeDefined();
    expect(m.stepDeadline).toBeUndefined();
    const s = inst().status!;
    expect(s).toMatchObject({ vmState: 'active', taskState: '', host: 'host-b', flavor: SMALL, powerState: 'running' });
    expect(s.scheduling?.selectedHost).toBe('host-b');
    expect(s.migration).toBeUndefined();
    expect(s.taskHosts).toBeUndefined();
    expect(s.oldFlavor).toBeUndefined();
    expect(s.launchedAt).toBe(b.clock.now().toISOString());
    expect(s.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Running' });
    // A new guest from the image, not a copy of the one on the fenced host.
    expect(s.guest?.marker).toBeDefined();
    expect(s.guest?.marker).not.toBe(r.marker);
    expect(await b.driver.get(r.uid)).toMatchObject({ powerState: 'running', flavor: SMALL });
    expect(claimsOn(cluster, 'host-b')).toEqual([`instance/${r.uid}`]);
    const message = 'rebuilt on host-b from image cirros (the disk on host-a is lost)';
    expect(cluster.events.filter((e) => e.reason === 'Evacuated').map((e) => e.message)).toEqual([message, message]);
    // Nothing was asked of the fenced host: its copy and claim wait for its agent to come back.
    expect(await a.driver.get(r.uid)).toBeDefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
  });

  it('an instance deleted just before its rebuild spawns: no guest is made after the deletion freed the claim', async () => {
    const b = await hosts.add('host-b');
    const r = await evacuationHandedTo(b);
    // The resize_finish announcement is written; its answer is slow to come back.
    const announced = heldOnce(b.kube.instances, 'patchStatus', 'after');
    const spawn = vi.spyOn(b.driver, 'spawn');

    const rebuilding = b.destination.reconcile(MIG_KEY).catch((err: unknown) => err);
    await announced.reached;
    await deleteKeptByFinalizer(b);
    await b.worker.reconcile(INST_KEY);
    announced.release();
    await rebuilding;

    expect(spawn).not.toHaveBeenCalled();
    expect(await b.driver.get(r.uid)).toBeUndefined();
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
  });

  it('post-migrating: a stopped instance is rebuilt and left stopped', async () => {
    const b = await hosts.add('host-b');
    const r = await evacuationHandedTo(b, 'stopped');

    await b.destination.reconcile(MIG_KEY);

    expect(mig().status?.status).toBe('confirmed');
    expect(inst().status).toMatchObject({ vmState: 'stopped', host: 'host-b', powerState: 'shutdown' });
    expect((await b.driver.get(r.uid))?.powerState).toBe('shutdown');
  });

  it("a rebuild seen again through a Migration view that lags behind its instance only writes the Migration's end", async () => {
    const b = await hosts.add('host-b');
    await evacuationHandedTo(b);
    await b.destination.reconcile(MIG_KEY);
    // The instance's write has arrived, the Migration's not yet: it still looks post-migrating.
    await b.kube.migrations.patchStatus(mig(), { status: 'post-migrating' });
    const from = cluster.writes.length;

    await b.destination.reconcile(MIG_KEY);

    expect(cluster.writes.slice(from).map((w) => `${w.kind}.${w.verb}`)).toEqual(['Migration.patchStatus']);
    expect(mig().status?.status).toBe('confirmed');
    expect(inst().status).toMatchObject({ vmState: 'active', taskState: '', host: 'host-b' });
  });

  it('a rebuild repeated after a crash finds the guest it spawned and finishes with one claim', async () => {
    const b = await hosts.add('host-b');
    const r = await evacuationHandedTo(b);
    await b.driver.spawn({ uid: r.uid, name: 'default/web-1', flavor: SMALL, image: 'cirros' });
    const marker = (await b.driver.guestReport(r.uid))?.marker;

    await b.destination.reconcile(MIG_KEY);

    expect(mig().status?.status).toBe('confirmed');
    expect(inst().status?.guest?.marker).toBe(marker);
    expect(claimsOn(cluster, 'host-b')).toEqual([`instance/${r.uid}`]);
  });

  it('a rebuild failing stepRetries times destroys what it made, frees the claim and ends error; the instance stays', async () => {
    const b = await hosts.add('host-b');
    const r = await evacuationHandedTo(b);
    honourFailAnnotation(b);
    await failSteps('spawn@host-b');

    await destinationUntilGiveUp(b, injectedFailureMessage('spawn'));

    const m = mig().status!;
    expect(m.status).toBe('error');
    const cause = `post-migrating on host-b failed 3 times: spawn ${r.uid}: ${injectedFailureMessage('spawn')}`;
    expect(m.fault).toMatchObject({ reason: 'StepFailed', message: cause });
    expect(m.finishedAt).toBe(m.fault?.time);
    const s = inst().status!;
    expect(s).toMatchObject({ vmState: 'active', taskState: '', host: 'host-a', flavor: SMALL });
    expect(s.fault).toMatchObject({ reason: 'StepFailed' });
    expect(s.migration).toBeUndefined();
    expect(s.taskHosts).toBeUndefined();
    expect(await b.driver.list()).toEqual([]);
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
    const told = `${cause}; the instance stays on host-a: create another Evacuation`;
    expect(cluster.events.filter((e) => e.reason === 'StepFailed').map((e) => e.message)).toEqual([told, told]);
  });

  it('a rebuild that fails after it converted the claim destroys the new guest and gives that claim back too', async () => {
    const b = await hosts.add('host-b');
    const r = await evacuationHandedTo(b);
    // Fails after spawn and convertClaim, before the status writes.
    vi.spyOn(b.driver, 'guestReport').mockRejectedValue(new Error('guest agent not responding'));

    await destinationUntilGiveUp(b, 'guest agent not responding');

    expect(mig().status).toMatchObject({ status: 'error', fault: { reason: 'StepFailed' } });
    expect(await b.driver.get(r.uid)).toBeUndefined();
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
    expect(inst().status).toMatchObject({ host: 'host-a', taskState: '' });
  });

  it('a rollback requested for an evacuation in post-migrating (a cancel) gives everything back at once', async () => {
    const b = await hosts.add('host-b');
    await evacuationHandedTo(b);
    const request = rollbackFor('post-migrating', 'Cancelled');
    await a.kube.migrations.patchStatus(mig(), { rollback: request });
    const spawn = vi.spyOn(b.driver, 'spawn');

    await b.destination.reconcile(MIG_KEY);

    expect(spawn).not.toHaveBeenCalled();
    expect(mig().status).toMatchObject({ status: 'error', fault: { reason: 'Cancelled', message: request.message } });
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
    expect(inst().status).toMatchObject({ host: 'host-a', taskState: '' });
    expect(inst().status?.migration).toBeUndefined();
  });
});
