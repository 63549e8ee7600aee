// Nova's resize with its two-phase finish: the user confirms or reverts. The disk travels
// between hosts verified end to end, and both hosts hold their claims until the decision.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TRANSFER_CREDENTIAL_LABEL, transferCredentialName } from '../common/api/transfer-credential.js';
import type { ComputeNode, Instance, Migration } from '../common/api/types.js';
import { fakeDiskContent, fakeDiskSize } from '../node-agent/driver/fake.js';
import { backupDir, diskBytes, instanceDir, sha256 } from './harness/disks.js';
import { localOnly } from './harness/mode.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';

let env: TestEnv;
let watcher: InvariantWatcher;

beforeAll(async () => {
  env = await TestEnv.start();
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Flavor',
    metadata: { name: 'm1.small.off' },
    spec: { vcpus: 1, memoryMiB: 2048, rootDiskGiB: 20, disabled: true },
  });
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Flavor',
    metadata: { name: 'm1.mini' },
    spec: { vcpus: 1, memoryMiB: 1024, rootDiskGiB: 10 },
  });
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Flavor',
    metadata: { name: 'm1.nodisk' },
    spec: { vcpus: 2, memoryMiB: 4096, rootDiskGiB: 0 },
  });
  watcher = new InvariantWatcher(env.kube, env.stateDir).start();
});

afterAll(async () => {
  const report = await watcher?.stop();
  await env?.stop();
  expect(report?.violations ?? []).toEqual([]);
});

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';
const boot = async (name: string, flavor = 'm1.small', extra: Record<string, unknown> = {}) => {
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name },
    spec: { flavor, image: 'cirros', ...extra },
  });
  return env.waitForInstance(name, active, 'active');
};
const resize = (name: string, flavor: string) =>
  env.kubectl(['patch', 'instance', name, '--type', 'merge', '-p', JSON.stringify({ spec: { flavor } })]);
const decide = (mig: string, decision: 'Confirm' | 'Revert') =>
  env.kubectl(['patch', 'migration', mig, '--type', 'merge', '-p', JSON.stringify({ spec: { decision } })]);
const migrationPhase = (name: string, phase: string) =>
  env.waitFor(
    `migration ${name} ${phase}`,
    async () => {
      const m = await env.migration(name);
      return m?.status?.status === phase ? m : undefined;
    },
    60_000,
    100,
  );
const claimsOf = (node: ComputeNode | undefined, consumer: string | undefined) =>
  (node?.status?.claims ?? []).filter((c) => c.consumer === consumer);

localOnly('resize', () => {
  it('resizes to another host and, once confirmed, runs there with the new flavor, the same disk bytes plus the grown part, and nothing left on the source', async () => {
    const before = await boot('web-1');
    const uid = before.metadata.uid ?? '';
    const source = before.status?.host ?? '';
    const diskBefore = diskBytes(env.stateDir, source, uid)!;
    expect(before.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'True',
      observedGeneration: before.metadata.generation,
    });
    resize('web-1', 'm1.large');
    const migName = `web-1-resize-${before.metadata.generation! + 1}`;
    const finished = await migrationPhase(migName, 'finished');
    const dest = finished.status?.destHost ?? '';
    expect(dest).not.toBe(source);
    expect(finished.status).toMatchObject({
      type: 'resize',
      sourceHost: source,
      oldFlavor: { name: 'm1.small' },
      newFlavor: { name: 'm1.large' },
      oldVmState: 'active',
    });
    expect(finished.status?.transfer?.sha256).toBe(sha256(diskBefore));
    expect(finished.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Instance', name: 'web-1', uid });

    const resized = await env.waitForInstance(
      'web-1',
      (i) => i.status?.vmState === 'resized' && i.status.taskState === '',
      'resized',
    );
    expect(resized.status).toMatchObject({
      host: dest,
      flavor: { name: 'm1.large' },
      oldFlavor: { name: 'm1.small' },
      powerState: 'running',
      migration: migName,
    });
    // Until the decision both hosts hold: the source the old flavor, the destination the new one.
    expect(claimsOf(await env.computeNode(source), uid)).toEqual([
      expect.objectContaining({ kind: 'instance', vcpus: 1, memoryMiB: 2048, diskGiB: 20 }),
    ]);
    expect(claimsOf(await env.computeNode(dest), finished.metadata.uid)).toEqual([
      expect.objectContaining({ kind: 'migration', vcpus: 4, memoryMiB: 8192, diskGiB: 80 }),
    ]);
    expect(existsSync(backupDir(env.stateDir, source, uid))).toBe(true);

    decide(migName, 'Confirm');
    // kubectl wait returns once the confirmed migration has been settled.
    expect(env.kubectl(['wait', '--for=condition=Complete', `migration/${migName}`, '--timeout=60s'])).toContain(
      'condition met',
    );
    const complete = (await env.migration(migName))?.status;
    expect(complete?.status).toBe('confirmed');
    expect(complete?.conditions?.find((c) => c.type === 'Complete')).toMatchObject({
      status: 'True',
      reason: 'Confirmed',
    });
    const after = await env.waitForInstance('web-1', active, 'active after confirm');
    expect(after.status).toMatchObject({
      host: dest,
      flavor: { name: 'm1.large', vcpus: 4, memoryMiB: 8192, rootDiskGiB: 80 },
      powerState: 'running',
    });
    expect(after.status?.oldFlavor).toBeUndefined();
    expect(after.status?.migration).toBeUndefined();
    expect(after.status?.guest).toMatchObject({ vcpus: 4, memoryKiB: 8192 * 1024 });
    expect(claimsOf(await env.computeNode(source), uid)).toEqual([]);
    expect(claimsOf(await env.computeNode(dest), uid)).toEqual([
      expect.objectContaining({ kind: 'instance', vcpus: 4 }),
    ]);
    expect(claimsOf(await env.computeNode(dest), finished.metadata.uid)).toEqual([]);
    expect(existsSync(instanceDir(env.stateDir, source, uid))).toBe(false);
    expect(existsSync(backupDir(env.stateDir, source, uid))).toBe(false);

    const diskAfter = diskBytes(env.stateDir, dest, uid)!;
    expect(diskAfter.length).toBe(fakeDiskSize(80));
    expect(sha256(diskAfter.subarray(0, diskBefore.length))).toBe(sha256(diskBefore));
    expect(sha256(diskAfter.subarray(diskBefore.length))).toBe(
      sha256(fakeDiskContent(uid, diskBefore.length, diskAfter.length - diskBefore.length)),
    );
    const reasons = (
      await env.eventsWith(migName, ['ResizeStarted', 'DiskTransferred', 'ResizeFinished', 'ResizeConfirmed'])
    ).map((e) => e.reason);
    expect(reasons).toEqual(
      expect.arrayContaining(['ResizeStarted', 'DiskTransferred', 'ResizeFinished', 'ResizeConfirmed']),
    );
    // kubectl describe tells the story through Events.
    const described = env.kubectl(['describe', 'migration', migName]);
    for (const reason of ['ResizeStarted', 'DiskTransferred', 'ResizeFinished', 'ResizeConfirmed'])
      expect(described).toContain(reason);
    expect(env.kubectl(['describe', 'instance', 'web-1'])).toMatch(/ResizeStarted[\s\S]*ResizeFinished/);
    // Every log line about this move carries the migration, node and step; the steps' lines name the instance too.
    const agentLog = readFileSync(join(env.dir, `agent-${dest}.log`), 'utf8')
      .split('\n')
      .filter((l) => l.includes(migName))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(agentLog.length).toBeGreaterThan(0);
    for (const line of agentLog)
      expect(line).toMatchObject({ migration: `default/${migName}`, node: dest, step: expect.any(String) });
    expect(agentLog.filter((l) => l.instance === 'default/web-1').length).toBeGreaterThan(0);
    // The transfer credential lives in the release namespace, named by the migration's uid.
    const credential = transferCredentialName(finished.metadata.uid ?? '');
    await env.waitFor('transfer credential deleted', async () => {
      const secrets = await env.kube.core.listSecretForAllNamespaces({ labelSelector: TRANSFER_CREDENTIAL_LABEL });
      return secrets.items.every((s) => s.metadata?.name !== credential);
    });
  });

  it('reverts a resize: old flavor, old host, identical disk bytes, destination claim gone, spec.flavor set back', async () => {
    const before = await boot('web-2');
    const uid = before.metadata.uid ?? '';
    const source = before.status?.host ?? '';
    const diskBefore = sha256(diskBytes(env.stateDir, source, uid)!);
    resize('web-2', 'm1.medium');
    const migName = `web-2-resize-${before.metadata.generation! + 1}`;
    const finished = await migrationPhase(migName, 'finished');
    const dest = finished.status?.destHost ?? '';
    await env.waitForInstance('web-2', (i) => i.status?.vmState === 'resized', 'resized');
    decide(migName, 'Revert');
    await migrationPhase(migName, 'reverted');
    const after = await env.waitForInstance(
      'web-2',
      (i) => active(i) && i.spec.flavor === 'm1.small',
      'active with spec.flavor back',
    );
    expect(after.status).toMatchObject({ host: source, flavor: { name: 'm1.small' }, powerState: 'running' });
    expect(sha256(diskBytes(env.stateDir, source, uid)!)).toBe(diskBefore);
    expect(existsSync(backupDir(env.stateDir, source, uid))).toBe(false);
    expect(existsSync(instanceDir(env.stateDir, dest, uid))).toBe(false);
    expect(claimsOf(await env.computeNode(dest), finished.metadata.uid)).toEqual([]);
    expect(claimsOf(await env.computeNode(source), uid)).toEqual([
      expect.objectContaining({ kind: 'instance', vcpus: 1, memoryMiB: 2048 }),
    ]);
    const reasons = (await env.eventsWith('web-2', ['ResizeReverted', 'FlavorReset'])).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['ResizeReverted', 'FlavorReset']));
    // spec and status agree: no second resize starts. The operator acts on each generation of the
    // spec once and records it in status.observedGeneration after creating any Migration it asks
    // for: once the generation that set spec.flavor back is recorded, such a Migration would exist.
    await env.waitForInstance(
      'web-2',
      (i) => i.spec.flavor === 'm1.small' && i.status?.observedGeneration === i.metadata.generation,
      'the spec with flavor set back acted on',
    );
    expect((await env.kube.migrations.list('default')).items.filter((m) => m.spec.instance === 'web-2')).toHaveLength(
      1,
    );
  });

  it('resizes a stopped instance and keeps it stopped after confirm', async () => {
    await boot('cold-one');
    env.kubectl(['patch', 'instance', 'cold-one', '--type', 'merge', '-p', '{"spec":{"powerState":"Stopped"}}']);
    const stopped = await env.waitForInstance(
      'cold-one',
      (i) => i.status?.vmState === 'stopped' && i.status.taskState === '',
      'stopped',
    );
    resize('cold-one', 'm1.medium');
    const migName = `cold-one-resize-${stopped.metadata.generation! + 1}`;
    await migrationPhase(migName, 'finished');
    const resized = await env.waitForInstance('cold-one', (i) => i.status?.vmState === 'resized', 'resized');
    expect(resized.status?.powerState).toBe('shutdown');
    decide(migName, 'Confirm');
    const after = await env.waitForInstance(
      'cold-one',
      (i) => i.status?.vmState === 'stopped' && i.status.taskState === '',
      'stopped after confirm',
    );
    expect(after.status).toMatchObject({ flavor: { name: 'm1.medium' }, powerState: 'shutdown' });
  });

  it.each([
    ['a missing flavor', 'm9.huge', /flavor m9\.huge does not exist/],
    ['a disabled flavor', 'm1.small.off', /flavor m1\.small\.off is disabled/],
    ['a shrinking root disk', 'm1.mini', /root disks cannot shrink/],
    ['a zero-disk flavor from a sized disk', 'm1.nodisk', /cannot resize to a zero-disk flavor/],
  ])(
    'refuses a resize to %s with a fault and an Event, leaving instance, claims and disk untouched',
    async (_what, flavor, message) => {
      const name = `refused-${flavor.replace(/\./g, '-')}`;
      const before = await boot(name);
      const uid = before.metadata.uid ?? '';
      const host = before.status?.host ?? '';
      const claimsBefore = claimsOf(await env.computeNode(host), uid);
      const diskBefore = sha256(diskBytes(env.stateDir, host, uid)!);
      resize(name, flavor);
      const refused = await env.waitForInstance(
        name,
        (i) => i.status?.fault?.reason === 'ResizeRefused',
        'resize refused',
      );
      expect(refused.status?.fault?.message).toMatch(message);
      expect(refused.status).toMatchObject({ vmState: 'active', taskState: '', host, flavor: { name: 'm1.small' } });
      expect(
        (await env.eventsWith(name, ['ResizeRefused'])).find((e) => e.reason === 'ResizeRefused')?.message,
      ).toMatch(message);
      expect(claimsOf(await env.computeNode(host), uid)).toEqual(claimsBefore);
      expect(sha256(diskBytes(env.stateDir, host, uid)!)).toBe(diskBefore);
      expect((await env.kube.migrations.list('default')).items.filter((m) => m.spec.instance === name)).toEqual([]);
    },
  );

  it("refuses a Migration whose flavor is the instance's own, and a second Migration while one is in progress", async () => {
    await boot('guarded');
    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Migration',
      metadata: { name: 'same-flavor' },
      spec: { instance: 'guarded', flavor: 'm1.small' },
    });
    const same = await migrationPhase('same-flavor', 'error');
    expect(same.status?.fault?.message).toMatch(/already has flavor m1\.small/);
    // A refused Migration is Failed, with the fault's reason and message, for kubectl wait.
    expect(env.kubectl(['wait', '--for=condition=Failed', 'migration/same-flavor', '--timeout=60s'])).toContain(
      'condition met',
    );
    const failed = (await env.migration('same-flavor'))?.status?.conditions?.find((c) => c.type === 'Failed');
    expect(failed).toMatchObject({ status: 'True', reason: 'MigrationRefused', message: same.status?.fault?.message });

    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Migration',
      metadata: { name: 'first' },
      spec: { instance: 'guarded', flavor: 'm1.medium' },
    });
    await env.waitForInstance('guarded', (i) => i.status?.migration === 'first', 'claimed by the first migration');
    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Migration',
      metadata: { name: 'second' },
      spec: { instance: 'guarded' },
    });
    const second: Migration = await migrationPhase('second', 'error');
    expect(second.status?.fault).toMatchObject({
      reason: 'MigrationRefused',
      message: expect.stringMatching(/already has migration first in progress/),
    });
    await migrationPhase('first', 'finished');
    decide('first', 'Confirm');
    await migrationPhase('first', 'confirmed');
  });

  it('defers a decision made before the migration is finished, with an Event', async () => {
    await boot('eager');
    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Migration',
      metadata: { name: 'eager-move' },
      spec: { instance: 'eager', decision: 'Confirm' },
    });
    await migrationPhase('eager-move', 'confirmed');
    const events = await env.eventsWith('eager-move', ['DecisionIgnored']);
    expect(events.find((e) => e.reason === 'DecisionIgnored')?.message).toMatch(
      /decision Confirm ignored while the migration is/,
    );
  });
});
