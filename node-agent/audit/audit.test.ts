import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resourcesOf } from '../../common/api/flavor.js';
import type { Claim, Migration, MigrationStatus } from '../../common/api/types.js';
import { API_VERSION, FINALIZER } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import { FakeCluster } from '../../common/kube/fake.js';
import {
  Clock,
  MEDIUM,
  SMALL,
  TestHosts,
  bootOn,
  claimsOn,
  pathExists,
  seedInstance,
  silentLog,
  StaleView,
  type TestHost,
  oneHost,
} from '../testing.js';
import { Auditor } from './audit.js';

const GRACE_MS = 60_000;

let cluster: FakeCluster;
let hosts: TestHosts;
let clock: Clock;
let a: TestHost;

beforeEach(async () => {
  clock = new Clock();
  ({ cluster, hosts, host: a } = await oneHost('host-a', { clock, auditGraceMs: GRACE_MS }));
});
afterEach(() => hosts.cleanup());

const claimFor = (consumer: string, over: Partial<Claim> = {}): Claim => ({
  consumer,
  kind: 'instance',
  instance: 'default/web-1',
  ...resourcesOf(SMALL),
  ...over,
});

/** web-1 running on host-b, as the API says. */
const runningElsewhere = (name = 'web-1') =>
  seedInstance(cluster, name, {
    vmState: 'active',
    taskState: '',
    host: 'host-b',
    flavor: SMALL,
    powerState: 'running',
  });

function seedMigration(name: string, instance: string, status: MigrationStatus): Migration {
  return cluster.seed<'Migration'>({
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name, namespace: 'default' },
    spec: { instance, flavor: MEDIUM.name },
    status: { type: 'resize', oldFlavor: SMALL, newFlavor: MEDIUM, ...status },
  });
}

/** web-1 resized from host-b to host-a (this host), in `phase`: the copy here is covered by the migration claim. */
async function destinationCopy(phase: 'post-migrating' | 'confirming') {
  const inst = seedInstance(cluster, 'web-1', {
    vmState: phase === 'confirming' ? 'resized' : 'active',
    taskState: phase === 'confirming' ? 'resize_confirming' : 'resize_migrated',
    host: phase === 'confirming' ? 'host-a' : 'host-b',
    flavor: phase === 'confirming' ? MEDIUM : SMALL,
    migration: 'web-1-resize-2',
  });
  const uid = inst.metadata.uid!;
  const mig = seedMigration('web-1-resize-2', 'web-1', { status: phase, sourceHost: 'host-b', destHost: 'host-a' });
  await a.tracker.claim(claimFor(mig.metadata.uid!, { kind: 'migration', ...resourcesOf(MEDIUM) }));
  await a.driver.spawn({ uid, name: 'default/web-1', flavor: MEDIUM, image: 'cirros' });
  return { inst, mig, uid };
}

describe('Auditor: claims', () => {
  it('frees a leaked claim older than the grace period, with an AuditHealed Event on its instance', async () => {
    const inst = runningElsewhere();
    await a.tracker.claim(claimFor(inst.metadata.uid!));
    clock.advance(GRACE_MS + 1);

    const result = await a.auditor.run();

    expect(result.freedClaims).toEqual([inst.metadata.uid]);
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
    expect(cluster.get('ComputeNode', 'host-a')?.status?.allocated).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
    expect(cluster.eventsFor('web-1')).toEqual(['AuditHealed']);
  });

  it('keeps an old claim while its domain is still here: the stale-copy pass destroys the copy first, then drops it', async () => {
    const inst = runningElsewhere();
    const uid = inst.metadata.uid!;
    await a.tracker.claim(claimFor(uid));
    await a.driver.spawn({ uid, name: 'default/web-1', flavor: SMALL, image: 'cirros' });
    clock.advance(GRACE_MS + 1);

    const result = await a.auditor.run();

    expect(result.freedClaims).toEqual([]);
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${uid}`]);
  });

  it('keeps a leaked claim younger than the grace period (its status write may still be on the way)', async () => {
    const inst = runningElsewhere();
    await a.tracker.claim(claimFor(inst.metadata.uid!));
    clock.advance(GRACE_MS - 1);
    const from = cluster.writes.length;

    const result = await a.auditor.run();

    expect(result.freedClaims).toEqual([]);
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${inst.metadata.uid}`]);
    expect(cluster.writes.slice(from)).toEqual([]);
    expect(cluster.eventsFor('web-1')).toEqual([]);
  });

  it('frees an old claim whose instance no longer exists', async () => {
    const gone = randomUUID();
    await a.tracker.claim(claimFor(gone));
    clock.advance(GRACE_MS + 1);
    expect((await a.auditor.run()).freedClaims).toEqual([gone]);
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
  });

  it('keeps the claims of the instances it runs, however old', async () => {
    const inst = await bootOn(a, cluster, 'web-1');
    clock.advance(10 * GRACE_MS);
    const from = cluster.writes.length;
    const result = await a.auditor.run();
    expect(result).toEqual({
      freedClaims: [],
      adoptedDomains: [],
      destroyedDomains: [],
      unclaimedDomains: [],
      discardedTransfers: [],
    });
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${inst.metadata.uid}`]);
    expect(cluster.writes.slice(from)).toEqual([]);
  });

  it('keeps the claim of an instance being deleted on this host: the instance worker frees it', async () => {
    const inst = await bootOn(a, cluster, 'web-1');
    const ref = { namespace: 'default', name: 'web-1' };
    await a.kube.instances.patch(ref, { metadata: { finalizers: [FINALIZER] } });
    await a.kube.instances.delete(ref);
    clock.advance(10 * GRACE_MS);
    expect((await a.auditor.run()).freedClaims).toEqual([]);
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${inst.metadata.uid}`]);
  });

  it('keeps the claim a live migration needs on its destination, however old', async () => {
    runningElsewhere();
    const mig = seedMigration('web-1-resize-2', 'web-1', {
      status: 'finished',
      sourceHost: 'host-b',
      destHost: 'host-a',
    });
    await a.tracker.claim(claimFor(mig.metadata.uid!, { kind: 'migration', ...resourcesOf(MEDIUM) }));
    clock.advance(10 * GRACE_MS);
    expect((await a.auditor.run()).freedClaims).toEqual([]);
    expect(claimsOn(cluster, 'host-a')).toEqual([`migration/${mig.metadata.uid}`]);
  });

  it('keeps the claim a migration needs while this host is still only selected for it', async () => {
    runningElsewhere();
    const mig = seedMigration('web-1-resize-2', 'web-1', {
      status: 'pre-migrating',
      sourceHost: 'host-b',
      scheduling: { attempts: 1, selectedHost: 'host-a' },
    });
    await a.tracker.claim(claimFor(mig.metadata.uid!, { kind: 'migration', ...resourcesOf(MEDIUM) }));
    clock.advance(10 * GRACE_MS);
    expect((await a.auditor.run()).freedClaims).toEqual([]);
  });

  it("keeps the source's old claim while the resized instance awaits its decision on another host", async () => {
    const inst = seedInstance(cluster, 'web-1', {
      vmState: 'resized',
      taskState: '',
      host: 'host-b',
      flavor: MEDIUM,
      oldFlavor: SMALL,
      migration: 'web-1-resize-2',
    });
    seedMigration('web-1-resize-2', 'web-1', { status: 'finished', sourceHost: 'host-a', destHost: 'host-b' });
    await a.tracker.claim(claimFor(inst.metadata.uid!));
    clock.advance(10 * GRACE_MS);
    expect((await a.auditor.run()).freedClaims).toEqual([]);
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${inst.metadata.uid}`]);
  });

  it('frees an old migration claim once its migration has ended', async () => {
    runningElsewhere();
    const mig = seedMigration('web-1-resize-2', 'web-1', { status: 'error', sourceHost: 'host-b', destHost: 'host-a' });
    await a.tracker.claim(claimFor(mig.metadata.uid!, { kind: 'migration' }));
    clock.advance(GRACE_MS + 1);
    expect((await a.auditor.run()).freedClaims).toEqual([mig.metadata.uid]);
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
  });

  it("keeps a destination's migration claim while its copy is here, though the instance and its Migration are being deleted", async () => {
    const { inst, mig } = await destinationCopy('confirming');
    for (const obj of [inst, mig]) {
      obj.metadata.deletionTimestamp = clock.now();
      obj.metadata.finalizers = ['kubenova.io/test'];
      cluster.seed(obj);
    }
    clock.advance(GRACE_MS + 1);

    // The deletion on this host destroys the copy and then frees the claims, in that order.
    expect((await a.auditor.run()).freedClaims).toEqual([]);
    expect(claimsOn(cluster, 'host-a')).toEqual([`migration/${mig.metadata.uid}`]);
  });
});

describe('Auditor: domains', () => {
  it('adopts a running domain of an instance on this host that has no claim, with an AuditHealed Event', async () => {
    const inst = seedInstance(cluster, 'web-1', { vmState: 'active', taskState: '', host: 'host-a', flavor: MEDIUM });
    const uid = inst.metadata.uid!;
    await a.driver.spawn({ uid, name: 'default/web-1', flavor: MEDIUM, image: 'cirros' });

    const result = await a.auditor.run();

    expect(result.adoptedDomains).toEqual([uid]);
    expect(cluster.get('ComputeNode', 'host-a')?.status?.claims).toEqual([
      {
        consumer: uid,
        kind: 'instance',
        instance: 'default/web-1',
        ...resourcesOf(MEDIUM),
        createdAt: clock.now().toISOString(),
      },
    ]);
    expect(cluster.eventsFor('web-1')).toEqual(['AuditHealed']);
  });

  it('destroys the domain of an instance that no longer exists', async () => {
    const uid = randomUUID();
    await a.driver.spawn({ uid, name: 'default/gone', flavor: SMALL, image: 'cirros' });

    const result = await a.auditor.run();

    expect(result.destroyedDomains).toEqual([uid]);
    expect(await a.driver.get(uid)).toBeUndefined();
    expect(await pathExists(a.driver.instanceDir(uid))).toBe(false);
  });

  it('leaves an unclaimed domain of an instance that lives elsewhere in place and reports it', async () => {
    const inst = runningElsewhere();
    const uid = inst.metadata.uid!;
    await a.driver.spawn({ uid, name: 'default/web-1', flavor: SMALL, image: 'cirros' });
    const result = await a.auditor.run();
    expect(result.unclaimedDomains).toEqual([uid]);
    expect(result.destroyedDomains).toEqual([]);
    expect(await a.driver.get(uid)).toBeDefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([]);
  });

  it("counts a destination's domain as covered by its migration claim", async () => {
    const { uid } = await destinationCopy('post-migrating');
    const result = await a.auditor.run();
    expect(result).toEqual({
      freedClaims: [],
      adoptedDomains: [],
      destroyedDomains: [],
      unclaimedDomains: [],
      discardedTransfers: [],
    });
    expect(await a.driver.get(uid)).toBeDefined();
  });
});

describe('Auditor: a cache that lags behind the API server', () => {
  /** host-a's auditor reading instances from a view that can be frozen, and live reads from `kube`. */
  function lagging(kube: KubeClient = a.kube) {
    const view = new StaleView(cluster.cache('Instance'));
    const migrations = cluster.cache('Migration');
    const auditor = new Auditor('host-a', kube, a.tracker, a.driver, view, migrations, a.events, GRACE_MS, silentLog);
    return { view, auditor };
  }

  it('never destroys the domain of an instance the cache does not show yet: the live read finds it here, it is adopted', async () => {
    const { view, auditor } = lagging();
    view.freeze();
    const inst = seedInstance(cluster, 'web-1', { vmState: 'active', taskState: '', host: 'host-a', flavor: MEDIUM });
    const uid = inst.metadata.uid!;
    await a.driver.spawn({ uid, name: 'default/web-1', flavor: MEDIUM, image: 'cirros' });
    expect(view.get('web-1')).toBeUndefined();

    const result = await auditor.run();

    expect(result.destroyedDomains).toEqual([]);
    expect(result.adoptedDomains).toEqual([uid]);
    expect(await a.driver.get(uid)).toBeDefined();
    expect(claimsOn(cluster, 'host-a')).toEqual([`instance/${uid}`]);
    expect(cluster.eventsFor('web-1')).toEqual(['AuditHealed']);
  });

  it('leaves the domain of an instance the cache does not show yet in place when the live read says it lives elsewhere', async () => {
    const { view, auditor } = lagging();
    view.freeze();
    const uid = runningElsewhere().metadata.uid!;
    await a.driver.spawn({ uid, name: 'default/web-1', flavor: SMALL, image: 'cirros' });

    const result = await auditor.run();

    expect(result).toMatchObject({ destroyedDomains: [], adoptedDomains: [], unclaimedDomains: [uid] });
    expect(await a.driver.get(uid)).toBeDefined();
  });

  it('leaves a domain the cache does not show in place when the live read fails', async () => {
    const unreachable = {
      instances: { get: () => Promise.reject(new Error('connection refused')) },
    } as unknown as KubeClient;
    const { auditor } = lagging(unreachable);
    const uid = randomUUID();
    await a.driver.spawn({ uid, name: 'default/web-1', flavor: SMALL, image: 'cirros' });

    const result = await auditor.run();

    expect(result).toMatchObject({ destroyedDomains: [], unclaimedDomains: [uid] });
    expect(await a.driver.get(uid)).toBeDefined();
  });

  it('destroys a domain once the live read confirms its instance is gone: its name now belongs to another instance', async () => {
    const { view, auditor } = lagging();
    view.freeze();
    seedInstance(cluster, 'web-1', { vmState: 'building', taskState: 'scheduling', flavor: SMALL });
    const uid = randomUUID();
    await a.driver.spawn({ uid, name: 'default/web-1', flavor: SMALL, image: 'cirros' });

    const result = await auditor.run();

    expect(result.destroyedDomains).toEqual([uid]);
    expect(await a.driver.get(uid)).toBeUndefined();
  });
});

describe('Auditor: staged transfers', () => {
  it('discards a staged transfer of an unknown migration and keeps one of a known migration', async () => {
    runningElsewhere();
    const known = seedMigration('web-1-resize-2', 'web-1', {
      status: 'migrating',
      sourceHost: 'host-b',
      destHost: 'host-a',
    });
    const unknown = randomUUID();
    for (const uid of [known.metadata.uid!, unknown])
      await mkdir(join(a.stagingDir, uid, 'files'), { recursive: true });

    const result = await a.auditor.run();

    expect(result.discardedTransfers).toEqual([unknown]);
    expect(await pathExists(join(a.stagingDir, unknown))).toBe(false);
    expect(await pathExists(join(a.stagingDir, known.metadata.uid!))).toBe(true);
  });
});
