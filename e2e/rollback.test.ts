// Failures that do not go away, made with the fake driver's fake.kubenova.io/fail annotation and
// the agents' default retry budget: a migration that cannot finish rolls back onto its source,
// where the instance runs as before with its old flavor and its disk byte for byte; only when
// no copy can be brought back does the instance go to error, with what an admin can do.
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FAIL_ANNOTATION } from '../common/api/fault-injection.js';
import type { Instance, Migration } from '../common/api/types.js';
import { backupDir, diskBytes, instanceDir, sha256 } from './harness/disks.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';
import { localOnly } from './harness/mode.js';

let env: TestEnv;
let watcher: InvariantWatcher;
const HOSTS = ['node-a', 'node-b', 'node-c'];

beforeAll(async () => {
  env = await TestEnv.start();
  watcher = new InvariantWatcher(env.kube, env.stateDir).start();
});

afterAll(async () => {
  const report = await watcher?.stop();
  await env?.stop();
  expect(report?.violations ?? []).toEqual([]);
});

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';
const boot = (name: string, fail: string) => {
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name, annotations: { [FAIL_ANNOTATION]: fail } },
    spec: { flavor: 'm1.small', image: 'cirros' },
  });
  return env.waitForInstance(name, active, 'active');
};
const resize = (name: string, flavor: string) =>
  env.kubectl(['patch', 'instance', name, '--type', 'merge', '-p', JSON.stringify({ spec: { flavor } })]);
const decide = (mig: string, decision: 'Confirm' | 'Revert') =>
  env.kubectl(['patch', 'migration', mig, '--type', 'merge', '-p', JSON.stringify({ spec: { decision } })]);
const migrationIn = (name: string, phases: string[], timeoutMs = 60_000) =>
  env.waitFor(
    `migration ${name} ${phases.join(' or ')}`,
    async () => {
      const m = await env.migration(name);
      return m?.status?.status && phases.includes(m.status.status) ? m : undefined;
    },
    timeoutMs,
    100,
  );
/** The kinds of claim each host holds for an instance (its own and its migrations'). */
async function claimsOf(name: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const host of HOSTS) {
    const claims = (await env.computeNode(host))?.status?.claims ?? [];
    const mine = claims.filter((c) => c.instance === `default/${name}`);
    if (mine.length) out[host] = mine.map((c) => c.kind);
  }
  return out;
}
const resizeName = (i: Instance) => `${i.metadata.name}-resize-${(i.metadata.generation ?? 1) + 1}`;

localOnly('failures that do not go away', () => {
  it(`with ${FAIL_ANNOTATION}: finish-migration, a resize ends with the Migration error and the instance active on its source with the old flavor and its disk intact`, async () => {
    const before = await boot('stubborn', 'finish-migration');
    const uid = before.metadata.uid ?? '';
    const source = before.status?.host ?? '';
    const disk = sha256(diskBytes(env.stateDir, source, uid)!);
    const migName = resizeName(before);
    resize('stubborn', 'm1.large');

    // The default budget (5 failures, backing off from 100 ms) is spent in seconds, far inside
    // the default step deadline of five minutes.
    const mig: Migration = await migrationIn(migName, ['error', 'reverted', 'confirmed']);

    expect(mig.status?.status).toBe('error');
    expect(mig.status?.fault?.reason).toBe('StepFailed');
    expect(mig.status?.fault?.message).toMatch(
      new RegExp(`^post-migrating on ${mig.status?.destHost} failed 5 times: .*injected failure`),
    );
    const after = await env.waitForInstance('stubborn', active, 'active again');
    expect(after.status?.host).toBe(source);
    expect(after.status?.flavor?.name).toBe('m1.small');
    expect(after.status?.powerState).toBe('running');
    expect(after.status?.migration).toBeUndefined();
    expect(after.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(sha256(diskBytes(env.stateDir, source, uid)!)).toBe(disk);
    expect(existsSync(backupDir(env.stateDir, source, uid))).toBe(false);
    expect(existsSync(instanceDir(env.stateDir, mig.status?.destHost ?? '', uid))).toBe(false);
    // Claims and the wish are as before the request: one instance claim on the source.
    expect(await claimsOf('stubborn')).toEqual({ [source]: ['instance'] });
    await env.waitForInstance('stubborn', (i) => i.spec.flavor === 'm1.small', 'spec.flavor set back');
    const events = await env.eventsWith(migName, ['RollingBack', 'StepFailed']);
    expect(events.find((e) => e.reason === 'RollingBack')?.message).toContain(`rolling back onto ${source}`);
  });

  it(`with ${FAIL_ANNOTATION}: migrate-out, a cold migration ends error and the instance keeps running on its source`, async () => {
    const before = await boot('rooted', 'migrate-out');
    const uid = before.metadata.uid ?? '';
    const source = before.status?.host ?? '';
    const disk = sha256(diskBytes(env.stateDir, source, uid)!);
    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Migration',
      metadata: { name: 'rooted-move' },
      spec: { instance: 'rooted' },
    });

    const mig = await migrationIn('rooted-move', ['error', 'finished']);

    expect(mig.status?.status).toBe('error');
    expect(mig.status?.fault).toMatchObject({ reason: 'StepFailed' });
    expect(mig.status?.fault?.message).toMatch(new RegExp(`^migrating on ${source} failed 5 times: `));
    const after = await env.waitForInstance('rooted', active, 'active again');
    expect(after.status).toMatchObject({ host: source, powerState: 'running' });
    expect(sha256(diskBytes(env.stateDir, source, uid)!)).toBe(disk);
    expect(existsSync(backupDir(env.stateDir, source, uid))).toBe(false);
    await env.waitFor('the destination frees its claim', async () =>
      JSON.stringify(await claimsOf('rooted')) === JSON.stringify({ [source]: ['instance'] }) ? true : undefined,
    );
  });

  it(`with ${FAIL_ANNOTATION}: revert, a revert that cannot restore leaves the instance in error with its backup kept and says what to do`, async () => {
    const before = await boot('unrevertable', 'revert');
    const uid = before.metadata.uid ?? '';
    const source = before.status?.host ?? '';
    const migName = resizeName(before);
    resize('unrevertable', 'm1.medium');
    await migrationIn(migName, ['finished']);
    decide(migName, 'Revert');

    const mig = await migrationIn(migName, ['error', 'reverted']);

    expect(mig.status?.status).toBe('error');
    expect(mig.status?.fault?.reason).toBe('StepFailed');
    const inst = await env.waitForInstance('unrevertable', (i) => i.status?.vmState === 'error', 'error');
    expect(inst.status?.taskState).toBe('');
    expect(inst.status?.fault?.message).toMatch(/^reverting on .* failed 5 times: .*; .*fix the host/);
    // Nothing is deleted: the revert point stays for an admin, also through the source's next
    // audit passes (every 2 s here), whose stale-copy clean-up sees the instance elsewhere.
    expect(existsSync(backupDir(env.stateDir, source, uid))).toBe(true);
    await sleep(5_000);
    expect(existsSync(backupDir(env.stateDir, source, uid)), 'backup after two audit passes').toBe(true);

    // Deleting it still gives everything back.
    env.kubectl(['delete', 'instance', 'unrevertable', '--wait=true', '--timeout=60s']);
    for (const host of HOSTS) {
      expect(existsSync(instanceDir(env.stateDir, host, uid)), host).toBe(false);
      expect(existsSync(backupDir(env.stateDir, host, uid)), host).toBe(false);
    }
  });
});
