// The operator's resize options: allowResizeToSameHost (Nova's allow_resize_to_same_host)
// and resizeConfirmWindow (resize_confirm_window: confirm automatically).
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance } from '../common/api/types.js';
import { backupDir, diskBytes, sha256 } from './harness/disks.js';
import { localOnly } from './harness/mode.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';

let env: TestEnv;
let watcher: InvariantWatcher;

beforeAll(async () => {
  env = await TestEnv.start({
    agents: [{ name: 'solo', vcpus: 8, memoryMiB: 32768, diskGiB: 400 }],
    operatorArgs: ['--allow-resize-to-same-host', '--resize-confirm-window=3'],
  });
  watcher = new InvariantWatcher(env.kube, env.stateDir).start();
});

afterAll(async () => {
  const report = await watcher?.stop();
  await env?.stop();
  expect(report?.violations ?? []).toEqual([]);
});

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';

localOnly('resize options', () => {
  it('resizes on the same host holding both claims until it is confirmed automatically after the window', async () => {
    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Instance',
      metadata: { name: 'local' },
      spec: { flavor: 'm1.small', image: 'cirros' },
    });
    const before = await env.waitForInstance('local', active, 'active');
    const uid = before.metadata.uid ?? '';
    const diskBefore = diskBytes(env.stateDir, 'solo', uid)!;
    env.kubectl(['patch', 'instance', 'local', '--type', 'merge', '-p', '{"spec":{"flavor":"m1.medium"}}']);
    const migName = `local-resize-${before.metadata.generation! + 1}`;
    const finished = await env.waitFor('finished', async () => {
      const m = await env.migration(migName);
      return m?.status?.status === 'finished' && m.status.confirmDeadline ? m : undefined;
    });
    expect(finished.status).toMatchObject({ sourceHost: 'solo', destHost: 'solo' });
    expect(finished.status?.transfer).toBeUndefined(); // nothing copied over the network
    const claims = (await env.computeNode('solo'))?.status?.claims ?? [];
    expect(claims).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ consumer: uid, kind: 'instance', vcpus: 1, memoryMiB: 2048 }),
        expect.objectContaining({ consumer: finished.metadata.uid, kind: 'migration', vcpus: 2, memoryMiB: 4096 }),
      ]),
    );
    expect((await env.computeNode('solo'))?.status?.allocated).toEqual({ vcpus: 3, memoryMiB: 6144, diskGiB: 60 });
    expect(existsSync(backupDir(env.stateDir, 'solo', uid))).toBe(true);
    const deadline = Date.parse(finished.status?.confirmDeadline ?? '');
    expect(deadline - Date.parse(finished.status?.finishedAt ?? '')).toBeGreaterThanOrEqual(2_000);

    // Nobody decides: the window passes and the operator confirms.
    const confirmed = await env.waitFor(
      'confirmed automatically',
      async () => {
        const m = await env.migration(migName);
        return m?.status?.status === 'confirmed' ? m : undefined;
      },
      30_000,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(deadline);
    expect(confirmed.spec.decision).toBe('');
    const after = await env.waitForInstance('local', active, 'active after auto-confirm');
    expect(after.status).toMatchObject({ host: 'solo', flavor: { name: 'm1.medium' } });
    expect((await env.computeNode('solo'))?.status?.claims).toEqual([
      expect.objectContaining({ consumer: uid, kind: 'instance', vcpus: 2, memoryMiB: 4096, diskGiB: 40 }),
    ]);
    expect(existsSync(backupDir(env.stateDir, 'solo', uid))).toBe(false);
    const diskAfter = diskBytes(env.stateDir, 'solo', uid)!;
    expect(sha256(diskAfter.subarray(0, diskBefore.length))).toBe(sha256(diskBefore));
  });

  it('reverts a same-host resize to the exact bytes and the old claim alone', async () => {
    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Instance',
      metadata: { name: 'local-2' },
      spec: { flavor: 'm1.small', image: 'cirros' },
    });
    const before = await env.waitForInstance('local-2', active, 'active');
    const uid = before.metadata.uid ?? '';
    const disk = sha256(diskBytes(env.stateDir, 'solo', uid)!);
    env.kubectl(['patch', 'instance', 'local-2', '--type', 'merge', '-p', '{"spec":{"flavor":"m1.large"}}']);
    const migName = `local-2-resize-${before.metadata.generation! + 1}`;
    await env.waitFor('finished', async () => (await env.migration(migName))?.status?.status === 'finished');
    env.kubectl(['patch', 'migration', migName, '--type', 'merge', '-p', '{"spec":{"decision":"Revert"}}']);
    const after = await env.waitForInstance('local-2', (i) => active(i) && i.spec.flavor === 'm1.small', 'reverted');
    expect(after.status).toMatchObject({ host: 'solo', flavor: { name: 'm1.small' } });
    expect(sha256(diskBytes(env.stateDir, 'solo', uid)!)).toBe(disk);
    const mine = ((await env.computeNode('solo'))?.status?.claims ?? []).filter(
      (c) => c.consumer === uid || c.instance === 'default/local-2',
    );
    expect(mine).toEqual([expect.objectContaining({ consumer: uid, kind: 'instance', vcpus: 1, memoryMiB: 2048 })]);
  });
});
