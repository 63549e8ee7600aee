// Deleting a Migration cancels it, in whichever phase it is: a finalizer holds it until the
// instance is steady again (rolled back before finished, reverted after, a confirm or revert
// under way completes), and nothing is leaked. The fake driver's fake.kubenova.io/fail
// annotation holds a migration in a phase: here the agents retry a failing step (almost)
// without end, so only the cancel, or the step deadline, can end it.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FAIL_ANNOTATION } from '../common/api/fault-injection.js';
import type { Instance, Migration } from '../common/api/types.js';
import { backupDir, diskBytes, instanceDir, sha256 } from './harness/disks.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';
import { localOnly } from './harness/mode.js';

const STEP_TIMEOUT_S = 15;
let env: TestEnv;
let watcher: InvariantWatcher;
const HOSTS = ['node-a', 'node-b', 'node-c'];

beforeAll(async () => {
  env = await TestEnv.start({
    agentArgs: ['--step-retries=100000', `--step-timeout=${STEP_TIMEOUT_S}`],
    operatorArgs: [`--step-timeout=${STEP_TIMEOUT_S}`],
    // A destination that does not claim is waited for this long/2 before another host is
    // tried: long enough to catch a migration in pre-migrating.
    nodeHeartbeatTimeout: 60,
  });
  watcher = new InvariantWatcher(env.kube, env.stateDir).start();
});

afterAll(async () => {
  const report = await watcher?.stop();
  await env?.stop();
  expect(report?.violations ?? []).toEqual([]);
});

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';
const boot = async (name: string, fail?: string) => {
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name, ...(fail ? { annotations: { [FAIL_ANNOTATION]: fail } } : {}) },
    spec: { flavor: 'm1.small', image: 'cirros' },
  });
  const inst = await env.waitForInstance(name, active, 'active');
  const host = inst.status?.host ?? '';
  return {
    inst,
    uid: inst.metadata.uid ?? '',
    host,
    disk: sha256(diskBytes(env.stateDir, host, inst.metadata.uid ?? '')!),
  };
};
const migrate = (name: string, instance: string, targetHost?: string) =>
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Migration',
    metadata: { name },
    spec: { instance, ...(targetHost ? { targetHost } : {}) },
  });
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
const cancel = (mig: string) => env.kubectl(['delete', 'migration', mig, '--wait=true', '--timeout=90s']);

/** The instance is where it was, as it was, with one claim and no copy anywhere else. */
async function expectSteadyOnSource(name: string, uid: string, host: string, disk: string, flavor = 'm1.small') {
  // The operator sets spec.flavor back after the instance is steady: wait for both.
  const inst = await env.waitForInstance(name, (i) => active(i) && i.spec.flavor === flavor, 'steady');
  expect(inst.status).toMatchObject({ host, powerState: 'running', flavor: expect.objectContaining({ name: flavor }) });
  expect(inst.status?.migration).toBeUndefined();
  expect(sha256(diskBytes(env.stateDir, host, uid)!)).toBe(disk);
  expect(existsSync(backupDir(env.stateDir, host, uid))).toBe(false);
  await env.waitFor(`${name}: one claim, on ${host}, and no copy elsewhere`, async () => {
    for (const other of HOSTS) {
      const claims = (await env.computeNode(other))?.status?.claims ?? [];
      const mine = claims.filter((c) => c.instance === `default/${name}`).map((c) => c.kind);
      if (JSON.stringify(mine) !== JSON.stringify(other === host ? ['instance'] : [])) return undefined;
      if (other !== host && existsSync(instanceDir(env.stateDir, other, uid))) return undefined;
    }
    return true;
  });
}

localOnly('cancelling a migration by deleting it', () => {
  it('before the operator has started it: it goes, the instance untouched', async () => {
    const { uid, host, disk } = await boot('early');
    await env.operator?.stop();
    migrate('early-move', 'early');
    const m = await env.migration('early-move');
    expect(m?.metadata.finalizers ?? []).toEqual([]);
    env.kubectl(['delete', 'migration', 'early-move']);
    env.startOperator();
    await env.waitFor('early-move gone', async () => ((await env.migration('early-move')) ? undefined : true));
    await expectSteadyOnSource('early', uid, host, disk);
  });

  it('in pre-migrating (the destination has not claimed yet): it ends and the instance stays', async () => {
    const { uid, host, disk } = await boot('waiting');
    const target = HOSTS.find((h) => h !== host)!;
    const agent = env.agents.get(target)!;
    agent.child.kill('SIGSTOP');
    try {
      migrate('waiting-move', 'waiting', target);
      await migrationIn('waiting-move', ['pre-migrating']);
      cancel('waiting-move');
    } finally {
      agent.child.kill('SIGCONT');
    }
    expect(await env.migration('waiting-move')).toBeUndefined();
    await expectSteadyOnSource('waiting', uid, host, disk);
    const events = await env.eventsWith('waiting-move', ['MigrationCancelled']);
    expect(events.map((e) => e.reason)).toContain('MigrationCancelled');
  });

  it('in migrating (the source cannot send): the source runs the guest again and the Migration goes', async () => {
    const { uid, host, disk } = await boot('sending', 'migrate-out');
    migrate('sending-move', 'sending');
    await migrationIn('sending-move', ['migrating']);

    cancel('sending-move');

    expect(await env.migration('sending-move')).toBeUndefined();
    await expectSteadyOnSource('sending', uid, host, disk);
  });

  it('in post-migrating (the destination cannot finish): it rolls back onto the source with the old flavor', async () => {
    const { inst, uid, host, disk } = await boot('landing', 'finish-migration');
    const mig = `landing-resize-${(inst.metadata.generation ?? 1) + 1}`;
    resize('landing', 'm1.large');
    await migrationIn(mig, ['post-migrating']);

    cancel(mig);

    expect(await env.migration(mig)).toBeUndefined();
    await expectSteadyOnSource('landing', uid, host, disk);
  });

  it('in finished (awaiting the decision): it is reverted and the Migration goes', async () => {
    const { inst, uid, host, disk } = await boot('undecided');
    const mig = `undecided-resize-${(inst.metadata.generation ?? 1) + 1}`;
    resize('undecided', 'm1.large');
    await migrationIn(mig, ['finished']);

    cancel(mig);

    expect(await env.migration(mig)).toBeUndefined();
    await expectSteadyOnSource('undecided', uid, host, disk);
  });

  it('in reverting (the restore keeps failing): the delete waits for the revert to finish, then it goes', async () => {
    const { inst, uid, host, disk } = await boot('restoring', 'revert');
    const mig = `restoring-resize-${(inst.metadata.generation ?? 1) + 1}`;
    resize('restoring', 'm1.large');
    await migrationIn(mig, ['finished']);
    decide(mig, 'Revert');
    await migrationIn(mig, ['reverting']);

    env.kubectl(['delete', 'migration', mig, '--wait=false']);
    const held: Migration | undefined = await env.migration(mig);
    expect(held?.metadata.deletionTimestamp).toBeDefined();
    expect(held?.status?.status).toBe('reverting');
    // The failure clears up: the revert completes and the cancel with it.
    env.kubectl(['annotate', 'instance', 'restoring', `${FAIL_ANNOTATION}-`]);

    await env.waitFor(`${mig} gone`, async () => ((await env.migration(mig)) ? undefined : true), 60_000);
    await expectSteadyOnSource('restoring', uid, host, disk);
  });

  it('deleting the instance during a migration ends the migration and frees everything', async () => {
    const { inst, uid } = await boot('leaving', 'finish-migration');
    const mig = `leaving-resize-${(inst.metadata.generation ?? 1) + 1}`;
    resize('leaving', 'm1.large');
    await migrationIn(mig, ['post-migrating']);

    env.kubectl(['delete', 'instance', 'leaving', '--wait=true', '--timeout=60s']);

    const ended = await env.migration(mig);
    if (ended) expect(ended.status).toMatchObject({ status: 'error', fault: { reason: 'Cancelled' } });
    for (const host of HOSTS) {
      const claims = (await env.computeNode(host))?.status?.claims ?? [];
      expect(
        claims.filter((c) => c.instance === 'default/leaving'),
        host,
      ).toEqual([]);
      expect(existsSync(instanceDir(env.stateDir, host, uid)), host).toBe(false);
    }
  });
});

localOnly('the step deadline', () => {
  it(`a phase that makes no progress for --step-timeout (${STEP_TIMEOUT_S}s here) rolls back onto the source`, async () => {
    const { inst, uid, host, disk } = await boot('slow', 'finish-migration');
    const mig = `slow-resize-${(inst.metadata.generation ?? 1) + 1}`;
    resize('slow', 'm1.large');

    const ended = await migrationIn(mig, ['error'], (STEP_TIMEOUT_S + 45) * 1000);

    expect(ended.status?.fault?.reason).toBe('StepFailed');
    expect(ended.status?.fault?.message).toMatch(/^post-migrating did not finish by its deadline .*step timeout 15s/);
    await expectSteadyOnSource('slow', uid, host, disk);
  });
});
