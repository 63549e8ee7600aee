// Resume after a crash at every step: the operator, the source agent or the destination
// agent SIGKILLs itself between two writes of a boot or a migration step (a crash point),
// is started again, and the task completes — or rolls back to a consistent, running
// instance. Nothing is left with a task running, no claim leaks, no disk byte changes.
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance, MigrationPhase } from '../common/api/types.js';
import type { ManagedProcess } from '../devenv/controlplane/processes.js';
import { startAgent, startOperator } from './harness/components.js';
import { diskBytes, sha256 } from './harness/disks.js';
import { localOnly } from './harness/mode.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';

let env: TestEnv;
let watcher: InvariantWatcher;
const tally = { faults: 0, completed: 0, rolledBack: 0 };
const OPERATOR_ARGS = ['--node-heartbeat-timeout=4', '--node-monitor-period=0.5'];

beforeAll(async () => {
  env = await TestEnv.start();
  watcher = new InvariantWatcher(env.kube, env.stateDir).start();
});

afterAll(async () => {
  const report = await watcher?.stop();
  await env?.stop();
  process.stdout.write(
    `crash suite: ${tally.faults} faults injected, ${tally.completed} tasks completed, ${tally.rolledBack} rolled back, ` +
      `${report?.samples ?? 0} invariant samples, ${report?.violations.length ?? 0} violations\n`,
  );
  expect(report?.violations ?? []).toEqual([]);
});

type Who = 'operator' | 'source' | 'dest';

/** Restarts one component with a crash point armed, and returns its process. */
async function arm(who: Who, point: string): Promise<ManagedProcess> {
  const crashEnv = { KUBENOVA_TEST_CRASH_AT: point };
  if (who === 'operator') {
    await env.operator?.stop();
    env.operator = startOperator(env.cp, OPERATOR_ARGS, { logFile: join(env.dir, 'operator.log') }, crashEnv);
    await env.waitForRunning('operator');
    return env.operator;
  }
  const host = who === 'source' ? 'node-a' : 'node-b';
  await env.agents.get(host)?.stop();
  const proc = startAgent(
    env.cp,
    { name: host, extraArgs: ['--heartbeat-interval=1', '--audit-interval=2', '--audit-grace=5'] },
    env.stateDir,
    { logFile: join(env.dir, `agent-${host}.log`) },
    crashEnv,
  );
  env.agents.set(host, proc);
  await env.waitForNodesReady([host]);
  return proc;
}

/** Waits for the armed process to crash at its point, then starts it normally. */
async function survive(who: Who, proc: ManagedProcess): Promise<void> {
  const result = await Promise.race([proc.exited, new Promise((r) => setTimeout(() => r('no crash'), 60_000))]);
  // Whatever happened, the next scenario gets a component without a crash point armed.
  if (result !== 'SIGKILL') await proc.kill();
  if (who === 'operator') env.startOperator();
  else env.startAgent({ name: who === 'source' ? 'node-a' : 'node-b' });
  expect(result, `${who} should have crashed at its crash point`).toBe('SIGKILL');
  tally.faults++;
}

const idle = (i: Instance) =>
  (i.status?.taskState ?? '') === '' && ['active', 'stopped', 'resized', 'error'].includes(i.status?.vmState ?? '');

async function bootOn(name: string, host: string): Promise<Instance> {
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name },
    spec: { flavor: 'm1.small', image: 'cirros', host },
  });
  return env.waitForInstance(name, (i) => i.status?.vmState === 'active' && i.status.taskState === '', 'active');
}

/** Each scenario starts from empty hosts: delete what it made and wait until nothing is held. */
async function cleanUp(name: string, uid: string): Promise<void> {
  env.kubectl(['delete', 'instance', name, '--wait=false', '--ignore-not-found']);
  await env.waitFor(
    `${name} deleted and its claims freed`,
    async () => (await env.instance(name)) === undefined && (await claimsFor(uid)).length === 0,
    60_000,
  );
}

async function claimsFor(uid: string, migUid?: string): Promise<string[]> {
  const nodes = (await env.kube.computeNodes.list()).items;
  return nodes
    .flatMap((n) =>
      (n.status?.claims ?? [])
        .filter((c) => c.consumer === uid || c.consumer === migUid)
        .map((c) => `${n.metadata.name}:${c.kind}`),
    )
    .sort();
}

localOnly('crash during boot', () => {
  it.each([
    ['operator', 'operator:boot:after-select'],
    ['dest', 'agent:boot:after-claim'],
    ['dest', 'agent:boot:after-spawn'],
  ] as [Who, string][])('%s killed at %s: the instance still becomes active, claimed once', async (who, point) => {
    const proc = await arm(who, point);
    const name = `boot-${point.replace(/[^a-z]+/g, '-')}`;
    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Instance',
      metadata: { name },
      spec: { flavor: 'm1.small', image: 'cirros', host: 'node-b' },
    });
    await survive(who, proc);
    const inst = await env.waitForInstance(
      name,
      (i) => i.status?.vmState === 'active' && i.status.taskState === '',
      'active after the crash',
      60_000,
    );
    tally.completed++;
    expect(inst.status?.host).toBe('node-b');
    expect(await claimsFor(inst.metadata.uid ?? '')).toEqual(['node-b:instance']);
    await cleanUp(name, inst.metadata.uid ?? '');
  });
});

localOnly('crash during a migration', () => {
  // [who crashes, where, what the user decides once finished]
  const cases: [Who, string, 'Confirm' | 'Revert'][] = [
    ['operator', 'operator:migration:after-instance-task', 'Confirm'],
    ['dest', 'agent:pre-migrating:after-claim', 'Confirm'],
    ['source', 'agent:migrating:after-backup', 'Confirm'],
    ['source', 'agent:migrating:sending-domain.json', 'Revert'],
    ['source', 'agent:migrating:after-transfer', 'Confirm'],
    ['dest', 'agent:transfer:received-disk.img', 'Confirm'],
    ['dest', 'agent:post-migrating:after-finish', 'Revert'],
    ['operator', 'operator:decide:after-instance-task', 'Confirm'],
    ['source', 'agent:confirming:after-source-cleanup', 'Confirm'],
    ['dest', 'agent:confirming:after-convert', 'Confirm'],
    ['dest', 'agent:reverting:after-destroy', 'Revert'],
    ['source', 'agent:reverting:before-restore', 'Revert'],
  ];

  it.each(cases)('%s killed at %s, then %s: the resize completes consistently', async (who, point, decision) => {
    const name = `mig-${point.replace(/^[a-z]+:/, '').replace(/[^a-z]+/g, '-')}`.slice(0, 50);
    const inst = await bootOn(name, 'node-a');
    const uid = inst.metadata.uid ?? '';
    try {
      const diskBefore = diskBytes(env.stateDir, 'node-a', uid)!;
      const proc = await arm(who, point);
      const migName = `${name}-mig`;
      env.apply({
        apiVersion: 'compute.kubenova.io/v1alpha1',
        kind: 'Migration',
        metadata: { name: migName },
        spec: { instance: name, flavor: 'm1.medium', targetHost: 'node-b' },
      });
      const decideWhenFinished = async () => {
        const reached = await env.waitFor(
          `${migName} finished (or failed)`,
          async () => {
            const p = (await env.migration(migName))?.status?.status;
            return p === 'finished' || p === 'error' ? p : undefined;
          },
          90_000,
        );
        if (reached === 'finished')
          env.kubectl(['patch', 'migration', migName, '--type', 'merge', '-p', JSON.stringify({ spec: { decision } })]);
      };
      const decided = decideWhenFinished();
      await survive(who, proc);
      await decided;
      const endPhases: MigrationPhase[] = ['confirmed', 'reverted', 'error'];
      const mig = await env.waitFor(
        `${migName} ended`,
        async () => {
          const m = await env.migration(migName);
          return m && endPhases.includes(m.status?.status ?? 'pre-migrating') ? m : undefined;
        },
        90_000,
      );
      const after = await env.waitForInstance(name, idle, 'idle', 60_000);
      expect(after.status?.taskState).toBe('');
      expect(after.status?.powerState).toBe('running');
      const diskNow = diskBytes(env.stateDir, after.status?.host ?? '', uid)!;
      // The first bytes are the instance's own whatever happened; a confirmed resize adds the grown part.
      expect(sha256(diskNow.subarray(0, diskBefore.length))).toBe(sha256(diskBefore));
      if (mig.status?.status === 'confirmed') {
        tally.completed++;
        expect(after.status).toMatchObject({ vmState: 'active', host: 'node-b', flavor: { name: 'm1.medium' } });
        await env.waitFor(
          'claims settle on node-b',
          async () => (await claimsFor(uid, mig.metadata.uid)).join() === 'node-b:instance',
          30_000,
        );
      } else {
        // Reverted as the user asked, or rolled back after a failure: back on the source either way.
        if (mig.status?.status === 'reverted') tally.completed++;
        else tally.rolledBack++;
        expect(after.status).toMatchObject({ vmState: 'active', host: 'node-a', flavor: { name: 'm1.small' } });
        expect(diskNow.length).toBe(diskBefore.length);
        await env.waitFor(
          'claims settle on node-a',
          async () => (await claimsFor(uid, mig.metadata.uid)).join() === 'node-a:instance',
          30_000,
        );
      }
    } finally {
      await cleanUp(name, uid);
    }
  });
});
