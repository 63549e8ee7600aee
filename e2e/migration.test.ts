// Cold migration (a resize that keeps the flavor), its guards, the disk transfer's
// retries and rollback, and deletion at every phase leaving nothing behind.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TRANSFER_CREDENTIAL_LABEL, transferCredentialName } from '../common/api/transfer-credential.js';
import type { Instance, Migration, MigrationPhase } from '../common/api/types.js';
import { backupDir, diskBytes, instanceDir, sha256 } from './harness/disks.js';
import { localOnly } from './harness/mode.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';
import { untilSchedulerAvoids } from './harness/scheduler-view.js';

let env: TestEnv;
let watcher: InvariantWatcher;
// node-b alone has this label, from its first registration: a flavor asking for it fits only there.
const NODE_B = { name: 'node-b', labels: { rack: 'r2' } };

beforeAll(async () => {
  env = await TestEnv.start({
    agents: [
      { name: 'node-a' },
      NODE_B,
      // Every transfer this agent sends breaks once, then succeeds on retry.
      { name: 'node-c', extraArgs: ['--test-break-transfers=1'] },
      // Nothing this agent sends ever arrives: its migrations must roll back.
      { name: 'node-d', extraArgs: ['--test-break-transfers=1000', '--transfer-retries=2'] },
    ],
  });
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Flavor',
    metadata: { name: 'r2.tiny' },
    spec: { vcpus: 1, memoryMiB: 512, rootDiskGiB: 1, extraSpecs: { 'node:rack': 'r2' } },
  });
  watcher = new InvariantWatcher(env.kube, env.stateDir).start();
});

afterAll(async () => {
  const report = await watcher?.stop();
  await env?.stop();
  expect(report?.violations ?? []).toEqual([]);
});

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';
const boot = async (name: string, host?: string) => {
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name },
    spec: { flavor: 'm1.small', image: 'cirros', ...(host ? { host } : {}) },
  });
  return env.waitForInstance(name, active, 'active');
};
const migrate = (name: string, instance: string, targetHost?: string) =>
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Migration',
    metadata: { name },
    spec: { instance, ...(targetHost ? { targetHost } : {}) },
  });
const phase = (name: string, wanted: MigrationPhase, timeoutMs = 60_000) =>
  env.waitFor(
    `migration ${name} ${wanted}`,
    async () => {
      const m = await env.migration(name);
      return m?.status?.status === wanted ? m : undefined;
    },
    timeoutMs,
    50,
  );
const decide = (mig: string, decision: 'Confirm' | 'Revert') =>
  env.kubectl(['patch', 'migration', mig, '--type', 'merge', '-p', JSON.stringify({ spec: { decision } })]);

function leftovers(uid: string, migUid?: string): string[] {
  const found: string[] = [];
  for (const host of readdirSync(env.stateDir)) {
    if (existsSync(instanceDir(env.stateDir, host, uid))) found.push(`${host}: instance dir`);
    if (existsSync(backupDir(env.stateDir, host, uid))) found.push(`${host}: _resize`);
    if (migUid && existsSync(join(env.stateDir, host, 'incoming', migUid))) found.push(`${host}: staged transfer`);
  }
  return found;
}

/** The transfer credentials (in any namespace) still held for a migration. */
async function transferSecrets(mig: Migration): Promise<string[]> {
  const name = transferCredentialName(mig.metadata.uid ?? '');
  const secrets = await env.kube.core.listSecretForAllNamespaces({ labelSelector: TRANSFER_CREDENTIAL_LABEL });
  return secrets.items
    .filter((s) => s.metadata?.name === name)
    .map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`);
}

async function claimsAnywhere(consumers: (string | undefined)[]): Promise<string[]> {
  const nodes = (await env.kube.computeNodes.list()).items;
  return nodes.flatMap((n) =>
    (n.status?.claims ?? []).filter((c) => consumers.includes(c.consumer)).map((c) => `${n.metadata.name}:${c.kind}`),
  );
}

localOnly('cold migration', () => {
  it('moves an instance to another host keeping its flavor and disk, with and without a target host', async () => {
    const inst = await boot('mover', 'node-a');
    const uid = inst.metadata.uid ?? '';
    const disk = sha256(diskBytes(env.stateDir, 'node-a', uid)!);
    migrate('mover-1', 'mover');
    const m1 = await phase('mover-1', 'finished');
    expect(m1.status).toMatchObject({
      type: 'migration',
      sourceHost: 'node-a',
      oldFlavor: { name: 'm1.small' },
      newFlavor: { name: 'm1.small' },
    });
    expect(m1.status?.destHost).not.toBe('node-a');
    decide('mover-1', 'Confirm');
    await phase('mover-1', 'confirmed');
    const moved = await env.waitForInstance('mover', active, 'active after the first move');
    expect(moved.status?.host).toBe(m1.status?.destHost);
    expect(sha256(diskBytes(env.stateDir, m1.status?.destHost ?? '', uid)!)).toBe(disk);

    migrate('mover-2', 'mover', 'node-b');
    if (m1.status?.destHost === 'node-b') {
      const refused = await phase('mover-2', 'error');
      expect(refused.status?.fault?.message).toMatch(/targetHost node-b is where the instance already runs/);
      return;
    }
    const m2 = await phase('mover-2', 'finished');
    expect(m2.status?.destHost).toBe('node-b');
    decide('mover-2', 'Confirm');
    await phase('mover-2', 'confirmed');
    const there = await env.waitForInstance('mover', active, 'active on node-b');
    expect(there.status?.host).toBe('node-b');
    expect(sha256(diskBytes(env.stateDir, 'node-b', uid)!)).toBe(disk);
    expect(await claimsAnywhere([uid])).toEqual(['node-b:instance']);
  });

  it.each([
    ['an unknown host', 'node-z', /targetHost node-z does not exist/],
    ['the host it runs on', 'node-a', /is where the instance already runs/],
  ])('refuses a migration to %s, leaving the instance as it was', async (_what, target, message) => {
    const name = `stay-${target}`;
    const inst = await boot(name, 'node-a');
    migrate(`${name}-mig`, name, target);
    const refused = await phase(`${name}-mig`, 'error');
    expect(refused.status?.fault).toMatchObject({
      reason: 'MigrationRefused',
      message: expect.stringMatching(message),
    });
    const after = await env.instance(name);
    expect(after?.status).toMatchObject({ vmState: 'active', taskState: '', host: 'node-a' });
    expect(await claimsAnywhere([inst.metadata.uid])).toEqual(['node-a:instance']);
  });

  it('refuses a migration to a disabled host and to a host whose agent is down', async () => {
    await boot('picky', 'node-a');
    env.kubectl([
      'patch',
      'cn',
      'node-b',
      '--type',
      'merge',
      '-p',
      '{"spec":{"disabled":true,"disabledReason":"firmware upgrade"}}',
    ]);
    try {
      // The operator checks a targetHost against its cache of ComputeNodes, which shows the patch
      // a little after the API does; the scheduler reads the same cache. Once a probe that fits
      // only node-b is refused there, the cache has node-b disabled (untilSchedulerAvoids).
      await untilSchedulerAvoids(env, 'node-b', 'r2.tiny');
      migrate('picky-disabled', 'picky', 'node-b');
      expect((await phase('picky-disabled', 'error')).status?.fault?.message).toMatch(
        /targetHost node-b is disabled \(firmware upgrade\)/,
      );
    } finally {
      env.kubectl(['patch', 'cn', 'node-b', '--type', 'merge', '-p', '{"spec":{"disabled":false}}']);
    }
    await env.killAgent('node-b');
    try {
      // The operator writes Ready=Unknown itself, guarded by the resourceVersion of the node in its
      // cache: that cache then holds the re-enable above and a heartbeat that stays stale.
      await env.waitFor('node-b not Ready', async () => env.nodeReady(await env.computeNode('node-b')) !== 'True');
      migrate('picky-down', 'picky', 'node-b');
      expect((await phase('picky-down', 'error')).status?.fault?.message).toMatch(/targetHost node-b is not Ready/);
    } finally {
      env.startAgent(NODE_B);
      await env.waitForNodesReady(['node-b']);
    }
  });

  it('retries a broken disk transfer and completes with the disk verified', async () => {
    const inst = await boot('bumpy', 'node-c');
    const disk = sha256(diskBytes(env.stateDir, 'node-c', inst.metadata.uid ?? '')!);
    migrate('bumpy-mig', 'bumpy');
    const done = await phase('bumpy-mig', 'finished');
    expect(done.status?.transfer?.attempts).toBeGreaterThan(1);
    expect(done.status?.transfer?.sha256).toBe(disk);
    expect((await env.eventsWith('bumpy-mig', ['DiskTransferRetried'])).map((e) => e.reason)).toContain(
      'DiskTransferRetried',
    );
    decide('bumpy-mig', 'Confirm');
    await phase('bumpy-mig', 'confirmed');
  });

  it('rolls a migration whose transfer cannot finish back onto the source, running as before', async () => {
    const inst = await boot('stuck', 'node-d');
    const uid = inst.metadata.uid ?? '';
    const disk = sha256(diskBytes(env.stateDir, 'node-d', uid)!);
    migrate('stuck-mig', 'stuck');
    const failed = await phase('stuck-mig', 'error');
    expect(failed.status?.fault?.reason).toBe('TransferFailed');
    const after = await env.waitForInstance('stuck', active, 'active on the source');
    expect(after.status).toMatchObject({ host: 'node-d', powerState: 'running', flavor: { name: 'm1.small' } });
    expect(after.status?.fault?.reason).toBe('TransferFailed');
    expect(sha256(diskBytes(env.stateDir, 'node-d', uid)!)).toBe(disk);
    await env.waitFor(
      'destination claim freed',
      async () => (await claimsAnywhere([failed.metadata.uid])).length === 0,
    );
    expect(await claimsAnywhere([uid])).toEqual(['node-d:instance']);
    expect(existsSync(backupDir(env.stateDir, 'node-d', uid))).toBe(false);
  });
});

localOnly('deleting an instance in each phase of a migration', () => {
  const phases: MigrationPhase[] = [
    'pre-migrating',
    'migrating',
    'post-migrating',
    'finished',
    'confirming',
    'reverting',
  ];
  it.each(phases)('frees every claim and removes every directory when deleted while %s', async (target) => {
    const name = `gone-${target}`;
    const inst = await boot(name, 'node-a');
    const uid = inst.metadata.uid ?? '';
    migrate(`${name}-mig`, name, 'node-b');
    if (target === 'confirming' || target === 'reverting') {
      await phase(`${name}-mig`, 'finished');
      decide(`${name}-mig`, target === 'confirming' ? 'Confirm' : 'Revert');
    }
    // Catch the phase as it passes (some last only milliseconds), else delete at the next one.
    const mig: Migration = await env.waitFor(
      `migration at or past ${target}`,
      async () => {
        const m = await env.migration(`${name}-mig`);
        const order = [
          'pre-migrating',
          'migrating',
          'post-migrating',
          'finished',
          'confirming',
          'reverting',
          'confirmed',
          'reverted',
        ];
        const at = order.indexOf(m?.status?.status ?? '');
        return at >= order.indexOf(target) ? m : undefined;
      },
      60_000,
      10,
    );
    env.kubectl(['delete', 'instance', name, '--wait=false']);
    await env.waitFor(`${name} gone`, async () => (await env.instance(name)) === undefined, 60_000);
    await env.waitFor(
      `${name}: no claims and no directories anywhere`,
      async () => {
        const claims = await claimsAnywhere([uid, mig.metadata.uid]);
        return claims.length === 0 && leftovers(uid, mig.metadata.uid).length === 0;
      },
      30_000,
    );
    await env.waitFor(
      `${name}: its Migration and its transfer Secret gone`,
      async () => (await env.migration(`${name}-mig`)) === undefined && (await transferSecrets(mig)).length === 0,
      60_000,
    );
  });
});
