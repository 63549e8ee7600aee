import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { injectedFailureMessage, type FailStep } from '../../common/api/fault-injection.js';
import { API_VERSION, FINALIZER } from '../../common/api/types.js';
import type { Instance } from '../../common/api/types.js';
import { isConflict } from '../../common/kube/client.js';
import { FakeCluster } from '../../common/kube/fake.js';
import {
  HUGE,
  MEDIUM,
  SMALL,
  StaleView,
  TestHosts,
  bootOn,
  claimsOn,
  pathExists,
  scheduledTo,
  seedInstance,
  type TestHost,
  oneHost,
} from '../testing.js';

const KEY = 'default/web-1';

let cluster: FakeCluster;
let hosts: TestHosts;
let host: TestHost;

beforeEach(async () => ({ cluster, hosts, host } = await oneHost()));
afterEach(() => hosts.cleanup());

const inst = (name = 'web-1'): Instance => cluster.get('Instance', name)!;
const ready = (i: Instance) => i.status?.conditions?.find((c) => c.type === 'Ready');
const writesSince = (n: number) => cluster.writes.slice(n);

describe('InstanceWorker: boot on this host', () => {
  it('claims a scheduled instance first, then makes it active with Ready True in one write, and one Spawned Event', async () => {
    const seeded = seedInstance(cluster, 'web-1', scheduledTo('host-a', SMALL));
    const seen: string[] = [];
    cluster
      .cache('Instance')
      .on('update', (i) => seen.push(`${i.status?.vmState}/${i.status?.taskState}/${i.status?.host ?? '-'}`));
    const from = cluster.writes.length;

    await host.worker.reconcile(KEY);

    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${seeded.metadata.uid}`]);
    expect(cluster.get('ComputeNode', 'host-a')?.status?.claims?.[0]).toMatchObject({
      instance: KEY,
      vcpus: 1,
      memoryMiB: 1024,
      diskGiB: 1,
    });
    // The claim is in the API server before the instance is told it has a host.
    expect(
      writesSince(from)
        .map((w) => `${w.kind}.${w.verb}`)
        .slice(0, 2),
    ).toEqual(['ComputeNode.patchStatus', 'Instance.patchStatus']);
    // A fast spawn is not announced first: one instance write, after the claim's.
    expect(seen).toEqual(['active//host-a']);
    expect(writesSince(from).map((w) => `${w.kind}.${w.verb}`)).toEqual([
      'ComputeNode.patchStatus',
      'Instance.patchStatus',
    ]);
    const s = inst().status!;
    expect(s).toMatchObject({ vmState: 'active', taskState: '', powerState: 'running', host: 'host-a' });
    expect(s.launchedAt).toBeDefined();
    expect(s.guest).toMatchObject({ vcpus: 1, memoryKiB: 1024 * 1024 });
    expect(ready(inst())).toMatchObject({ status: 'True', reason: 'Running' });
    expect((await host.driver.get(seeded.metadata.uid!))?.powerState).toBe('running');
    expect(cluster.eventsFor('web-1')).toEqual(['Spawned']);
  });

  it('announces a slow spawn (host, taskState spawning) before it ends, then makes the instance active', async () => {
    const slowHosts = new TestHosts(cluster);
    const slow = await slowHosts.add('host-s', { driver: { spawnDelayMs: 1_500 } });
    try {
      seedInstance(cluster, 'slow-1', scheduledTo('host-s', SMALL));
      const seen: string[] = [];
      cluster
        .cache('Instance')
        .on('update', (i) => seen.push(`${i.status?.vmState}/${i.status?.taskState}/${i.status?.host ?? '-'}`));

      await slow.worker.reconcile('default/slow-1');

      expect(seen).toEqual(['building/spawning/host-s', 'active//host-s']);
    } finally {
      await slowHosts.cleanup();
    }
  });

  it('spawns an instance left in spawning (a restart between claim and spawn) and makes it active', async () => {
    const seeded = seedInstance(cluster, 'web-1', { ...scheduledTo('host-a'), taskState: 'spawning', host: 'host-a' });
    await host.tracker.claim({
      consumer: seeded.metadata.uid!,
      kind: 'instance',
      instance: KEY,
      vcpus: 1,
      memoryMiB: 1024,
      diskGiB: 1,
    });
    await host.worker.reconcile(KEY);
    expect(inst().status).toMatchObject({ vmState: 'active', taskState: '', powerState: 'running' });
    expect(cluster.eventsFor('web-1')).toEqual(['Spawned']);
  });

  it('reports a claim that does not fit as claimFailure for this attempt, naming the short resource', async () => {
    seedInstance(cluster, 'web-1', scheduledTo('host-a', HUGE, 2));
    await host.worker.reconcile(KEY);
    const s = inst().status!;
    expect(s.scheduling?.claimFailure).toEqual({
      host: 'host-a',
      attempt: 2,
      message: 'claim on host-a failed: free memory 8192 MiB < requested 65536 MiB',
    });
    expect(s).toMatchObject({ vmState: 'building', taskState: 'scheduling' });
    expect(s.host).toBeUndefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
    const event = cluster.events.find((e) => e.involvedObject.name === 'web-1');
    expect(event).toMatchObject({ reason: 'ClaimFailed', type: 'Warning' });
    expect(event?.message).toContain('free memory');
  });

  it('does not try a refused claim again for the same attempt', async () => {
    seedInstance(cluster, 'web-1', scheduledTo('host-a', HUGE, 1));
    await host.worker.reconcile(KEY);
    const from = cluster.writes.length;
    await host.worker.reconcile(KEY);
    expect(writesSince(from)).toEqual([]);
    expect(cluster.eventsFor('web-1')).toEqual(['ClaimFailed']);
  });

  it('claims again when the scheduler sends the instance here for a new attempt and it now fits', async () => {
    const seeded = seedInstance(cluster, 'web-1', {
      ...scheduledTo('host-a', SMALL, 2),
      scheduling: {
        attempts: 2,
        triedHosts: ['host-a', 'host-a'],
        selectedHost: 'host-a',
        claimFailure: {
          host: 'host-a',
          attempt: 1,
          message: 'claim on host-a failed: free memory 0 MiB < requested 1024 MiB',
        },
      },
    });
    await host.worker.reconcile(KEY);
    expect(inst().status?.vmState).toBe('active');
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${seeded.metadata.uid}`]);
  });

  it('refuses an anti-affinity member when another member already holds this host (late check)', async () => {
    cluster.seed<'ServerGroup'>({
      apiVersion: API_VERSION,
      kind: 'ServerGroup',
      metadata: { name: 'web', namespace: 'default' },
      spec: { policy: 'anti-affinity' },
    });
    const first = await bootOn(host, cluster, 'web-1', SMALL, { serverGroup: 'web' });
    seedInstance(cluster, 'web-2', scheduledTo('host-a'), { serverGroup: 'web' });

    await host.worker.reconcile('default/web-2');

    const failure = inst('web-2').status?.scheduling?.claimFailure;
    expect(failure).toMatchObject({ host: 'host-a', attempt: 1 });
    expect(failure?.message).toContain(
      'server group web (anti-affinity): member default/web-1 already holds this host',
    );
    expect(inst('web-2').status?.host).toBeUndefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${first.metadata.uid}`]);
    expect(cluster.eventsFor('web-2')).toEqual(['ClaimFailed']);
  });

  it('refuses a member of an affinity server group when another member runs on a different host', async () => {
    cluster.seed<'ServerGroup'>({
      apiVersion: API_VERSION,
      kind: 'ServerGroup',
      metadata: { name: 'db', namespace: 'default' },
      spec: { policy: 'affinity' },
    });
    seedInstance(
      cluster,
      'db-1',
      { vmState: 'active', taskState: '', host: 'host-b', flavor: SMALL },
      { serverGroup: 'db' },
    );
    seedInstance(cluster, 'db-2', scheduledTo('host-a'), { serverGroup: 'db' });
    await host.worker.reconcile('default/db-2');
    expect(inst('db-2').status?.scheduling?.claimFailure?.message).toContain(
      'server group db (affinity): member db-1 runs on host-b',
    );
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
  });

  it('a failed spawn on a forced host (spec.host) frees the claim and ends in error/SpawnFailed at once', async () => {
    const broken = await hosts.add('host-b', { driver: { failSpawnForImage: 'broken' } });
    const seeded = seedInstance(cluster, 'web-1', scheduledTo('host-b'), { image: 'broken', host: 'host-b' });

    await broken.worker.reconcile(KEY);

    const s = inst().status!;
    expect(s).toMatchObject({ vmState: 'error', taskState: '', powerState: 'nostate' });
    expect(s.host).toBeUndefined();
    expect(s.fault).toMatchObject({ reason: 'SpawnFailed' });
    expect(s.fault?.message).toContain('spawn on host-b failed');
    expect(ready(inst())).toMatchObject({ status: 'False', reason: 'SpawnFailed' });
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
    expect(await broken.driver.get(seeded.metadata.uid!)).toBeUndefined();
    expect(cluster.eventsFor('web-1')).toEqual(['SpawnFailed']);
  });
});

describe('InstanceWorker: a failed spawn goes back to the scheduler (RescheduledException)', () => {
  /** host-b, whose fake driver fails the steps listed for an instance uid (as fake.kubenova.io/fail would). */
  async function failingHost(steps: FailStep[] = ['spawn']) {
    const failing = new Map<string, FailStep[]>();
    const b = await hosts.add('host-b', { driver: { injectedFailures: (uid) => new Set(failing.get(uid) ?? []) } });
    const seeded = seedInstance(cluster, 'web-1', scheduledTo('host-b', SMALL, 2));
    failing.set(seeded.metadata.uid!, steps);
    return { b, uid: seeded.metadata.uid!, failing };
  }

  it('destroys the domain, frees the claim and hands the instance back with claimFailure SpawnFailed for this attempt', async () => {
    const { b, uid } = await failingHost();
    const seen: string[] = [];
    cluster
      .cache('Instance')
      .on('update', (i) => seen.push(`${i.status?.vmState}/${i.status?.taskState}/${i.status?.host ?? '-'}`));

    expect(await b.worker.reconcile(KEY)).toEqual({});

    const s = inst().status!;
    expect(s).toMatchObject({ vmState: 'building', taskState: 'scheduling', powerState: 'nostate' });
    expect(s.host).toBeUndefined();
    expect(s.fault).toBeUndefined();
    expect(s.scheduling).toEqual({
      attempts: 2,
      triedHosts: ['host-b'],
      selectedHost: 'host-b',
      claimFailure: {
        host: 'host-b',
        attempt: 2,
        reason: 'SpawnFailed',
        message: `spawn failed: spawn ${uid}: ${injectedFailureMessage('spawn')}`,
      },
    });
    // Claimed, failed to spawn, straight back to scheduling in one write.
    expect(seen).toEqual(['building/scheduling/-']);
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
    expect(await b.driver.list()).toEqual([]);
  });

  it('says so in one SpawnFailed Warning naming the host and the cause', async () => {
    const { b } = await failingHost();

    await b.worker.reconcile(KEY);

    const events = cluster.events.filter((e) => e.involvedObject.name === 'web-1');
    expect(events.map((e) => `${e.type} ${e.reason}`)).toEqual(['Warning SpawnFailed']);
    expect(events[0]?.message).toMatch(
      /^spawn on host-b failed: spawn \S+: injected failure: .*fake\.kubenova\.io\/fail/,
    );
    expect(events[0]?.message).toMatch(/; given back to the scheduler$/);
  });

  it('does nothing more for the attempt it handed back: no spawn, no claim, no write', async () => {
    const { b } = await failingHost();
    await b.worker.reconcile(KEY);
    const from = cluster.writes.length;

    await b.worker.reconcile(KEY);

    expect(writesSince(from)).toEqual([]);
    expect(claimsOn(cluster, 'host-b')).toEqual([]);
    expect(cluster.eventsFor('web-1')).toEqual(['SpawnFailed']);
  });

  it('frees a claim left by a crash between the hand-back write and the release, on the next pass', async () => {
    const { b, uid } = await failingHost();
    await b.tracker.claim({ consumer: uid, kind: 'instance', instance: KEY, vcpus: 1, memoryMiB: 1024, diskGiB: 1 });
    await b.kube.instances.patchStatus(inst(), {
      scheduling: { claimFailure: { host: 'host-b', attempt: 2, reason: 'SpawnFailed', message: 'spawn failed: x' } },
    });

    await b.worker.reconcile(KEY);

    expect(claimsOn(cluster, 'host-b')).toEqual([]);
    expect(inst().status?.scheduling?.claimFailure?.message).toBe('spawn failed: x');
  });

  it('keeps the claim when the hand-back write conflicts, so a retry after the failure is gone boots with it', async () => {
    const { b, uid, failing } = await failingHost();
    // As after the claim: host set, spawning, the claim held.
    await b.tracker.claim({ consumer: uid, kind: 'instance', instance: KEY, vcpus: 1, memoryMiB: 1024, diskGiB: 1 });
    await b.kube.instances.patchStatus(inst(), { host: 'host-b', taskState: 'spawning' });
    cluster.failNext('Instance', 'patchStatus', undefined, 'web-1');

    const err = await b.worker.reconcile(KEY).catch((e: unknown) => e);

    expect(isConflict(err)).toBe(true);
    expect(inst().status).toMatchObject({ vmState: 'building', taskState: 'spawning', host: 'host-b' });
    expect(claimsOn(cluster, 'host-b')).toEqual([`instance/${uid}`]);
    expect(cluster.eventsFor('web-1')).toEqual([]);

    failing.delete(uid);
    await b.worker.reconcile(KEY);

    expect(inst().status).toMatchObject({ vmState: 'active', taskState: '', host: 'host-b' });
    expect(claimsOn(cluster, 'host-b')).toEqual([`instance/${uid}`]);
  });
});

describe('InstanceWorker: power', () => {
  it('spec.powerState Stopped moves an active instance to powering_off', async () => {
    await bootOn(host, cluster, 'web-1');
    await host.kube.instances.patch({ namespace: 'default', name: 'web-1' }, { spec: { powerState: 'Stopped' } });
    await host.worker.reconcile(KEY);
    expect(inst().status).toMatchObject({ vmState: 'active', taskState: 'powering_off' });
  });

  it('powering_off shuts the domain down: stopped, powerState shutdown, Ready False and a Stopped Event', async () => {
    const booted = await bootOn(host, cluster, 'web-1');
    await host.kube.instances.patch({ namespace: 'default', name: 'web-1' }, { spec: { powerState: 'Stopped' } });
    await host.worker.reconcile(KEY);
    await host.worker.reconcile(KEY);
    expect(inst().status).toMatchObject({ vmState: 'stopped', taskState: '', powerState: 'shutdown' });
    expect(ready(inst())).toMatchObject({ status: 'False', reason: 'Stopped' });
    expect((await host.driver.get(booted.metadata.uid!))?.powerState).toBe('shutdown');
    expect(cluster.eventsFor('web-1')).toEqual(['Spawned', 'Stopped']);
    // Stopped is where it was asked to be: nothing more to do, and the claim stays.
    const from = cluster.writes.length;
    await host.worker.reconcile(KEY);
    expect(writesSince(from)).toEqual([]);
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${booted.metadata.uid}`]);
  });

  it('spec.powerState Running moves a stopped instance to powering_on', async () => {
    await bootOn(host, cluster, 'web-1');
    const ref = { namespace: 'default', name: 'web-1' };
    await host.kube.instances.patch(ref, { spec: { powerState: 'Stopped' } });
    await host.worker.reconcile(KEY);
    await host.worker.reconcile(KEY);
    await host.kube.instances.patch(ref, { spec: { powerState: 'Running' } });
    await host.worker.reconcile(KEY);
    expect(inst().status).toMatchObject({ vmState: 'stopped', taskState: 'powering_on' });
  });

  it('powering_on starts the domain: active, running, Ready True and a Started Event', async () => {
    const booted = await bootOn(host, cluster, 'web-1');
    const ref = { namespace: 'default', name: 'web-1' };
    await host.kube.instances.patch(ref, { spec: { powerState: 'Stopped' } });
    await host.worker.reconcile(KEY);
    await host.worker.reconcile(KEY);
    await host.kube.instances.patch(ref, { spec: { powerState: 'Running' } });
    await host.worker.reconcile(KEY);
    await host.worker.reconcile(KEY);
    expect(inst().status).toMatchObject({ vmState: 'active', taskState: '', powerState: 'running' });
    expect(inst().status?.guest).toMatchObject({ vcpus: 1 });
    expect(ready(inst())).toMatchObject({ status: 'True', reason: 'Running' });
    expect((await host.driver.get(booted.metadata.uid!))?.powerState).toBe('running');
    expect(cluster.eventsFor('web-1')).toEqual(['Spawned', 'Stopped', 'Started']);
  });

  it('a start that keeps failing ends its task with a StepFailed fault and Event after the retry budget, and is not tried again until the spec changes', async () => {
    await bootOn(host, cluster, 'web-1');
    const ref = { namespace: 'default', name: 'web-1' };
    await host.kube.instances.patch(ref, { spec: { powerState: 'Stopped' } });
    await host.worker.reconcile(KEY);
    await host.worker.reconcile(KEY);
    host.driver.setInjectedFailures(() => new Set<FailStep>(['power-on']));
    await host.kube.instances.patch(ref, { spec: { powerState: 'Running' } });
    await host.worker.reconcile(KEY);

    // The test hosts give a step three tries.
    await expect(host.worker.reconcile(KEY)).rejects.toThrow(/injected/);
    await expect(host.worker.reconcile(KEY)).rejects.toThrow(/injected/);
    await host.worker.reconcile(KEY);

    expect(inst().status).toMatchObject({ vmState: 'stopped', taskState: '', powerState: 'shutdown' });
    expect(inst().status?.fault?.reason).toBe('StepFailed');
    expect(inst().status?.fault?.message).toMatch(
      /^powering_on on host-a failed 3 times: .*injected.*; the instance stays stopped: fix the host, then set spec.powerState again$/,
    );
    expect(cluster.eventsFor('web-1')).toEqual(['Spawned', 'Stopped', 'StepFailed']);
    const from = cluster.writes.length;
    await host.worker.reconcile(KEY);
    expect(writesSince(from)).toEqual([]);

    // Asked again (a new generation of the spec), with the host fixed: it starts.
    host.driver.setInjectedFailures(() => new Set<FailStep>());
    await host.kube.instances.patch(ref, { spec: { powerState: 'Stopped' } });
    await host.kube.instances.patch(ref, { spec: { powerState: 'Running' } });
    await host.worker.reconcile(KEY);
    await host.worker.reconcile(KEY);
    expect(inst().status).toMatchObject({ vmState: 'active', taskState: '', powerState: 'running' });
  });

  it('does not start a power change while a resize awaits its decision (vmState resized)', async () => {
    const booted = await bootOn(host, cluster, 'web-1');
    await host.kube.instances.patchStatus(booted, {
      vmState: 'resized',
      flavor: MEDIUM,
      oldFlavor: SMALL,
      migration: 'web-1-resize-2',
    });
    await host.kube.instances.patch({ namespace: 'default', name: 'web-1' }, { spec: { powerState: 'Stopped' } });
    const from = cluster.writes.length;
    await host.worker.reconcile(KEY);
    expect(writesSince(from)).toEqual([]);
    expect((await host.driver.get(booted.metadata.uid!))?.powerState).toBe('running');
  });
});

describe('InstanceWorker: delete', () => {
  it("destroys the domain and frees the instance's claim, its migrations' claims and what they staged", async () => {
    const booted = await bootOn(host, cluster, 'web-1');
    const uid = booted.metadata.uid!;
    const migUid = randomUUID();
    await host.tracker.claim({
      consumer: migUid,
      kind: 'migration',
      instance: KEY,
      vcpus: 2,
      memoryMiB: 2048,
      diskGiB: 2,
    });
    const staged = join(host.stagingDir, migUid);
    await mkdir(join(staged, 'files'), { recursive: true });
    const ref = { namespace: 'default', name: 'web-1' };
    await host.kube.instances.patch(ref, { metadata: { finalizers: [FINALIZER] } });
    await host.kube.instances.delete(ref);
    expect(inst().metadata.deletionTimestamp).toBeDefined();

    await host.worker.reconcile(KEY);

    expect(await host.driver.get(uid)).toBeUndefined();
    expect(await pathExists(host.driver.instanceDir(uid))).toBe(false);
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
    expect(cluster.get('ComputeNode', 'host-a')?.status?.allocated).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
    expect(await pathExists(staged)).toBe(false);
    expect(cluster.eventsFor('web-1')).toEqual(['Spawned', 'Deleted']);
    // Safe to repeat: a second pass finds nothing to destroy or free and says nothing.
    const from = cluster.writes.length;
    await host.worker.reconcile(KEY);
    expect(writesSince(from)).toEqual([]);
    expect(cluster.eventsFor('web-1')).toEqual(['Spawned', 'Deleted']);
  });

  it('destroys the resize backup of a deleted instance that awaits its resize decision on this host', async () => {
    const booted = await bootOn(host, cluster, 'web-1');
    const uid = booted.metadata.uid!;
    await host.driver.migrateOut(uid);
    expect(await host.driver.hasBackup(uid)).toBe(true);
    const ref = { namespace: 'default', name: 'web-1' };
    await host.kube.instances.patch(ref, { metadata: { finalizers: [FINALIZER] } });
    await host.kube.instances.delete(ref);
    await host.worker.reconcile(KEY);
    expect(await host.driver.hasBackup(uid)).toBe(false);
    expect(await host.driver.get(uid)).toBeUndefined();
  });
});

describe('InstanceWorker: what it leaves alone', () => {
  it('ignores an instance that does not involve this host', async () => {
    const other = await hosts.add('host-b');
    const booted = await bootOn(other, cluster, 'web-1');
    seedInstance(cluster, 'web-2', scheduledTo('host-b'));
    const from = cluster.writes.length;
    expect(host.worker.concerns(booted)).toBe(false);
    await host.worker.reconcile(KEY);
    await host.worker.reconcile('default/web-2');
    expect(writesSince(from)).toEqual([]);
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
    expect(await host.driver.list()).toEqual([]);
  });

  it('ignores a key whose instance is gone', async () => {
    const from = cluster.writes.length;
    expect(await host.worker.reconcile('default/nothing-here')).toEqual({});
    expect(writesSince(from)).toEqual([]);
  });
});

describe('InstanceWorker: a stale view of the instance at claim time', () => {
  let view: StaleView;
  let stale: TestHost;

  beforeEach(async () => {
    view = new StaleView(cluster.cache('Instance'));
    stale = await hosts.add('host-c', { instanceCache: view });
  });

  it('gives the claim back when the claim write conflicts and the instance was no longer sent here', async () => {
    const seeded = seedInstance(cluster, 'web-1', scheduledTo('host-c'));
    view.freeze();
    // The operator rescheduled it meanwhile (say host-c looked dead); the cache has not seen it yet.
    await host.kube.instances.patchStatus(seeded, {
      scheduling: { attempts: 2, triedHosts: ['host-c', 'host-a'], selectedHost: 'host-a' },
    });

    const err = await stale.worker.reconcile(KEY).catch((e: unknown) => e);

    expect(isConflict(err)).toBe(true);
    expect(claimsOn(cluster, 'host-c')).toEqual([]);
    expect(inst().status?.host).toBeUndefined();
    expect(await stale.driver.list()).toEqual([]);
  });

  it('keeps the claim on a conflict while the instance is still sent here; the retry boots it', async () => {
    const seeded = seedInstance(cluster, 'web-1', scheduledTo('host-c'));
    view.freeze();
    await host.kube.instances.patch({ namespace: 'default', name: 'web-1' }, { metadata: { labels: { tier: 'web' } } });

    const err = await stale.worker.reconcile(KEY).catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);
    expect(claimsOn(cluster, 'host-c')).toEqual([`instance/${seeded.metadata.uid}`]);

    view.thaw();
    await stale.worker.reconcile(KEY);
    expect(inst().status).toMatchObject({ vmState: 'active', host: 'host-c' });
    expect(claimsOn(cluster, 'host-c')).toEqual([`instance/${seeded.metadata.uid}`]);
  });

  it('gives the claim back when the instance was deleted before the claim write', async () => {
    seedInstance(cluster, 'web-1', scheduledTo('host-c'));
    view.freeze();
    await host.kube.instances.delete({ namespace: 'default', name: 'web-1' });
    const err = await stale.worker.reconcile(KEY).catch((e: unknown) => e);
    expect((err as { code?: number }).code).toBe(404);
    expect(claimsOn(cluster, 'host-c')).toEqual([]);
  });
});
