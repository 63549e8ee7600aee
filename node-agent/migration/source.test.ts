import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATION_LIFECYCLE, MIGRATION_PHASES, StepDone, ownersOf, stepDone } from '../../common/api/lifecycle.js';
import { MIGRATION_UID_ANNOTATION, transferSecretName } from '../../common/api/transfer-secret.js';
import type { Instance, Migration } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { MEDIUM, SMALL, TestHosts, claimsOn, decide, pathExists, type TestHost, oneHost } from '../testing.js';
import { MIG, MIG_KEY, crossHostToFinished, resizeStarted, sameHostToFinished, type Resize } from './testing.js';

let cluster: FakeCluster;
let hosts: TestHosts;
let a: TestHost;

beforeEach(async () => ({ cluster, hosts, host: a } = await oneHost()));
afterEach(() => hosts.cleanup());

const inst = (): Instance => cluster.get('Instance', 'web-1')!;
const mig = (): Migration => cluster.get('Migration', MIG)!;
const diskOf = (host: TestHost, uid: string) => readFile(join(host.driver.instanceDir(uid), 'disk.img'));

/** The one-time token the operator keeps for the Migration's transfer. */
async function seedToken(r: Resize): Promise<void> {
  await cluster.client().secrets.create({
    metadata: {
      name: transferSecretName(MIG),
      namespace: 'default',
      annotations: { [MIGRATION_UID_ANNOTATION]: r.migUid },
    },
    stringData: { token: 'secret-token' },
  });
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

  it('migrating: a migration without its transfer token rolls back the same way', async () => {
    const b = await hosts.add('host-b', { migrationEndpoint: '127.0.0.1:1' });
    const r = await resizeStarted(cluster, a, b);
    await b.destination.reconcile(MIG_KEY);
    await a.source.reconcile(MIG_KEY);
    expect(mig().status?.status).toBe('error');
    expect(mig().status?.fault?.message).toContain(`no transfer token for Migration ${MIG}`);
    expect(inst().status).toMatchObject({ vmState: 'active', taskState: '', host: 'host-a', powerState: 'running' });
    expect((await a.driver.get(r.uid))?.powerState).toBe('running');
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
