import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATION_LIFECYCLE, MIGRATION_PHASES, StepDone, ownersOf, stepDone } from '../../common/api/lifecycle.js';
import { API_VERSION, type Instance, type Migration } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { fakeDiskSize } from '../driver/fake.js';
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
    expect(cluster.eventsFor(MIG)).toEqual(['MigrationClaimed']);
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
      'building/spawning', // the boot
      'active/',
      'active/resize_prep', // the operator starts the resize
      'active/resize_migrating',
      'active/resize_migrated',
      'active/resize_finish',
      'resized/',
      'resized/resize_confirming',
      'active/',
    ]);
    expect(inst().status).toMatchObject({ vmState: 'active', flavor: MEDIUM });
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${r.uid}`]);
    expect(await a.driver.hasBackup(r.uid)).toBe(false);
    const resized = await diskOf(a, r.uid);

    // A second resize, to m1.small, reverted: m1.medium comes back with its exact disk.
    const second = 'web-1-resize-3';
    const r2 = await resizeStarted(cluster, a, a, SMALL, second);
    const key = `default/${second}`;
    await sameHostToFinished(a, key);
    expect(inst().status).toMatchObject({ vmState: 'resized', flavor: SMALL, oldFlavor: MEDIUM });
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
