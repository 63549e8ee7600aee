// Resume after a crash at every step: the operator, the source agent or the destination
// agent SIGKILLs itself between two writes of a boot or a migration step (a crash point),
// is started again, and the task reaches the one end promised for that point
// (docs/architecture.md, "After a crash"): a boot becomes active on its host; a migration
// finishes and is confirmed or reverted as decided, or, for the destination dying while it
// receives the disk, rolls back onto the source; an evacuation off a forced-down host is
// confirmed on its destination. No claim, directory or disk byte is lost or left.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance, Migration, MigrationPhase } from '../common/api/types.js';
import type { ManagedProcess } from '../devenv/controlplane/processes.js';
import { startAgent, startOperator } from './harness/components.js';
import { diskBytes, sha256 } from './harness/disks.js';
import { localOnly } from './harness/mode.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';

let env: TestEnv;
let watcher: InvariantWatcher;
const tally = { faults: 0, completed: 0, rolledBack: 0 };
// No scenario here waits for a host to be judged lost (the evacuation's source is forced down),
// while every one restarts agents: a short timeout would let a restart, or a few seconds of a
// loaded machine, make a host look lost in the middle of a placement (seen once in CI: a
// destination given up on as silent before it claimed).
const HEARTBEAT_TIMEOUT_S = 15;
const OPERATOR_ARGS = [`--node-heartbeat-timeout=${HEARTBEAT_TIMEOUT_S}`, '--node-monitor-period=0.5'];

beforeAll(async () => {
  env = await TestEnv.start({ nodeHeartbeatTimeout: HEARTBEAT_TIMEOUT_S });
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

/**
 * Waits for the armed process to crash at its point, then starts it normally. `scenario` is
 * what the test awaits meanwhile (a decision given once the migration has finished): when it
 * fails first, its error is the one reported, since the crash point will not come. `state`
 * says where the task is when no crash came.
 */
async function survive(
  who: Who,
  proc: ManagedProcess,
  scenario?: Promise<unknown>,
  state?: () => Promise<string>,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    proc.exited,
    new Promise((r) => (timer = setTimeout(() => r('no crash'), 90_000))),
    new Promise((r) => scenario?.catch(() => r('scenario failed'))),
  ]);
  clearTimeout(timer);
  // Whatever happened, the next scenario gets a component without a crash point armed.
  if (result !== 'SIGKILL') await proc.kill();
  if (who === 'operator') env.startOperator();
  else env.startAgent({ name: who === 'source' ? 'node-a' : 'node-b' });
  if (result === 'scenario failed') await scenario;
  const where = result === 'no crash' && state ? ` (${await state().catch((e: Error) => e.message)})` : '';
  expect(result, `${who} should have crashed at its crash point${where}`).toBe('SIGKILL');
  tally.faults++;
}

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

type Outcome = 'confirmed' | 'reverted' | 'rolled back';
const TERMINAL: MigrationPhase[] = ['confirmed', 'reverted', 'error'];

/** The Migration once it reaches `phase`; fails, with its fault, as soon as it ends in another phase. */
async function phaseReached(name: string, phase: MigrationPhase): Promise<Migration> {
  const mig = await env.waitFor(
    `migration ${name} ${phase}`,
    async () => {
      const m = await env.migration(name);
      const p = m?.status?.status;
      return p && (p === phase || TERMINAL.includes(p)) ? m : undefined;
    },
    90_000,
  );
  const fault = mig.status?.fault;
  expect(mig.status?.status, `migration ${name}${fault ? ` (${fault.reason}: ${fault.message})` : ''}`).toBe(phase);
  return mig;
}

/** What is on disk for an instance and its migration: domain and backup directories, staged transfers. */
function dirsFor(uid: string, migUid: string): string[] {
  return ['node-a', 'node-b', 'node-c']
    .flatMap((host) => [
      ...[uid, `${uid}_resize`]
        .filter((d) => existsSync(join(env.stateDir, host, 'instances', d)))
        .map((d) => `${host}:instances/${d}`),
      ...(migUid && existsSync(join(env.stateDir, host, 'incoming', migUid)) ? [`${host}:incoming/${migUid}`] : []),
    ])
    .sort();
}

localOnly('crash during boot', () => {
  it.each([
    ['operator', 'operator:boot:after-select'],
    ['dest', 'agent:boot:after-claim'],
    ['dest', 'agent:boot:after-spawn'],
  ] as [Who, string][])(
    '%s killed at %s: the instance still becomes active on its host, claimed once',
    async (who, point) => {
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
      expect(dirsFor(inst.metadata.uid ?? '', '')).toEqual([`node-b:instances/${inst.metadata.uid}`]);
      await cleanUp(name, inst.metadata.uid ?? '');
    },
  );
});

localOnly('crash during a migration', () => {
  // [who crashes, where, the one end it must reach]. A resize of an instance on node-a to
  // m1.medium on node-b: every step resumes after the restart, so the migration reaches
  // finished and then the end the user's decision asks for (confirmed or reverted). The one
  // exception is the destination dying while it receives the disk: its transfer server is
  // gone before the source's transfer attempts run out, so the migration rolls back.
  // docs/architecture.md ("After a crash") states each promise.
  const cases: [Who, string, Outcome][] = [
    ['operator', 'operator:migration:after-instance-task', 'confirmed'],
    ['dest', 'agent:pre-migrating:after-claim', 'confirmed'],
    ['source', 'agent:migrating:after-backup', 'confirmed'],
    ['source', 'agent:migrating:sending-domain.json', 'reverted'],
    ['source', 'agent:migrating:after-transfer', 'confirmed'],
    ['dest', 'agent:transfer:received-disk.img', 'rolled back'],
    ['dest', 'agent:post-migrating:after-finish', 'reverted'],
    ['operator', 'operator:decide:after-instance-task', 'confirmed'],
    ['source', 'agent:confirming:after-source-cleanup', 'confirmed'],
    ['dest', 'agent:confirming:after-convert', 'confirmed'],
    ['dest', 'agent:reverting:after-destroy', 'reverted'],
    ['source', 'agent:reverting:before-restore', 'reverted'],
  ];

  it.each(cases)(
    '%s killed at %s: the resize ends %s, the one end promised for that point',
    async (who, point, outcome) => {
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
        // The decision is given once the migration is finished, while the crash may still be ahead.
        const decided = (async () => {
          if (outcome === 'rolled back') return;
          await phaseReached(migName, 'finished');
          const decision = outcome === 'confirmed' ? 'Confirm' : 'Revert';
          env.kubectl(['patch', 'migration', migName, '--type', 'merge', '-p', JSON.stringify({ spec: { decision } })]);
        })();
        decided.catch(() => undefined); // its failure is reported by survive()
        await survive(who, proc, decided, async () => {
          const m = await env.migration(migName);
          const i = await env.instance(name);
          const decision = m?.spec.decision ? `, decision ${m.spec.decision}` : '';
          return `migration ${m?.status?.status ?? 'not started'}${decision}, instance ${i?.status?.vmState}/${i?.status?.taskState ?? ''}`;
        });
        await decided;
        const end: MigrationPhase = outcome === 'rolled back' ? 'error' : outcome;
        const mig = await phaseReached(migName, end);
        const migUid = mig.metadata.uid ?? '';
        if (outcome === 'rolled back') {
          tally.rolledBack++;
          expect(mig.status?.fault?.reason).toBe('TransferFailed');
        } else {
          tally.completed++;
        }

        // The instance is written before the Migration's end phase, so it is idle by now.
        const after = await env.instance(name);
        const host = outcome === 'confirmed' ? 'node-b' : 'node-a';
        const flavor = outcome === 'confirmed' ? 'm1.medium' : 'm1.small';
        expect(after?.status).toMatchObject({ vmState: 'active', taskState: '', powerState: 'running', host });
        expect(after?.status?.flavor?.name).toBe(flavor);
        const diskNow = diskBytes(env.stateDir, host, uid)!;
        // The first bytes are the instance's own; a confirmed resize adds the grown part, a
        // revert or roll-back restores the disk byte for byte.
        expect(sha256(diskNow.subarray(0, diskBefore.length))).toBe(sha256(diskBefore));
        // m1.small's 20 GiB root disk grows to m1.medium's 40 GiB.
        if (outcome === 'confirmed') expect(diskNow.length).toBe(2 * diskBefore.length);
        else expect(sha256(diskNow)).toBe(sha256(diskBefore));

        // One claim and one domain, on the host it ended on: no backup, staged transfer or
        // destination claim left anywhere (a restarted destination gives its own back).
        const expected = { claims: [`${host}:instance`], dirs: [`${host}:instances/${uid}`] };
        const left = async () => ({ claims: await claimsFor(uid, migUid), dirs: dirsFor(uid, migUid) });
        await env
          .waitFor(
            'only the instance left, on its host',
            async () => JSON.stringify(await left()) === JSON.stringify(expected),
            30_000,
          )
          .catch(() => undefined);
        expect(await left()).toEqual(expected);
      } finally {
        await cleanUp(name, uid);
      }
    },
  );
});

localOnly('crash during an evacuation', () => {
  const forcedDown = (host: string, on: boolean) =>
    env.kubectl(['patch', 'cn', host, '--type', 'merge', '-p', JSON.stringify({ spec: { forcedDown: on } })]);

  /**
   * An Evacuation of `instance` to `target`, as the operator accepts it; returns its name. The
   * operator checks the source's spec.forcedDown (and the target's Ready) in its ComputeNode
   * cache, which shows a change a little after the API does. A refused Evacuation changes
   * nothing, so one refused for what the cache has not caught up with is made again, new name.
   */
  async function evacuate(instance: string, target: string): Promise<string> {
    for (let n = 1; ; n++) {
      const name = `${instance}-evac-${n}`;
      env.apply({
        apiVersion: 'compute.kubenova.io/v1alpha1',
        kind: 'Migration',
        metadata: { name },
        spec: { instance, type: 'Evacuation', targetHost: target },
      });
      const mig = await env.waitFor(`evacuation ${name} accepted or refused`, async () => {
        const m = await env.migration(name);
        return m?.status?.status ? m : undefined;
      });
      if (mig.status?.status !== 'error') return name;
      const message = mig.status?.fault?.message ?? '';
      if (n >= 20 || !/is not forced down|is not Ready/.test(message)) {
        throw new Error(`evacuation ${name} refused: ${message}`);
      }
      env.kubectl(['delete', 'migration', name, '--wait=false']);
    }
  }

  // The instance's host node-a is lost (its agent killed for good) and forced down; the
  // Evacuation rebuilds it from its image on node-b, which dies after the rebuild and before it
  // writes anything. Restarted, node-b repeats the rebuild: spawn finds the guest it made, the
  // migration claim becomes the instance's, and the evacuation is confirmed. The copy on node-a
  // and its claim wait for node-a's agent, which drops them when it returns (stale copies).
  it('dest killed at agent:post-migrating:after-rebuild: the evacuation ends confirmed on the destination, the guest rebuilt once', async () => {
    const point = 'agent:post-migrating:after-rebuild';
    const name = 'evac-after-rebuild';
    const inst = await bootOn(name, 'node-a');
    const uid = inst.metadata.uid ?? '';
    let nodeALost = false;
    try {
      const proc = await arm('dest', point);
      // The guest as the crash leaves it: its first-boot marker, read the moment node-b dies.
      const definition = join(env.stateDir, 'node-b', 'instances', uid, 'domain.json');
      const markerAtCrash = proc.exited.then(() =>
        existsSync(definition)
          ? (JSON.parse(readFileSync(definition, 'utf8')) as { marker?: string }).marker
          : undefined,
      );
      await env.killAgent('node-a');
      nodeALost = true;
      forcedDown('node-a', true);
      const migName = await evacuate(name, 'node-b');
      const confirmed = phaseReached(migName, 'confirmed');
      confirmed.catch(() => undefined); // its failure is reported by survive()
      await survive('dest', proc, confirmed, async () => {
        const m = await env.migration(migName);
        const i = await env.instance(name);
        return `migration ${m?.status?.status ?? 'not started'}, instance ${i?.status?.vmState}/${i?.status?.taskState ?? ''}`;
      });
      const mig = await confirmed;
      const migUid = mig.metadata.uid ?? '';
      tally.completed++;
      expect(mig.status).toMatchObject({ type: 'evacuation', sourceHost: 'node-a', destHost: 'node-b' });

      // The instance is written before the Migration's end phase, so it is idle by now.
      const after = await env.instance(name);
      expect(after?.status).toMatchObject({ vmState: 'active', taskState: '', powerState: 'running', host: 'node-b' });
      expect(after?.status?.flavor?.name).toBe('m1.small');
      // The guest rebuilt before the crash is the one running: not made a second time.
      const marker = await markerAtCrash;
      expect(marker, 'a guest rebuilt on node-b when it died').toBeTruthy();
      expect(after?.status?.guest?.marker).toBe(marker);

      // node-b holds the instance's claim, and no migration claim; node-a's agent is still down,
      // so its copy and claim are still there.
      expect(await claimsFor(uid, migUid)).toEqual(['node-a:instance', 'node-b:instance']);
      env.startAgent({ name: 'node-a' });
      nodeALost = false;
      const expected = { claims: ['node-b:instance'], dirs: [`node-b:instances/${uid}`] };
      const left = async () => ({ claims: await claimsFor(uid, migUid), dirs: dirsFor(uid, migUid) });
      await env
        .waitFor(
          'only the instance left, on node-b',
          async () => JSON.stringify(await left()) === JSON.stringify(expected),
          30_000,
        )
        .catch(() => undefined);
      expect(await left()).toEqual(expected);
    } finally {
      forcedDown('node-a', false);
      if (nodeALost) env.startAgent({ name: 'node-a' });
      await env.waitForNodesReady(['node-a']);
      await cleanUp(name, uid);
    }
  });
});
