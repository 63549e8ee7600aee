// The periodic audit (Nova's update_available_resource) heals drift between the claims a
// ComputeNode records and the domains really on the host, and never frees a claim a
// running task still needs.
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance } from '../common/api/types.js';
import { localOnly } from './harness/mode.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';

let env: TestEnv;

beforeAll(async () => {
  env = await TestEnv.start({
    agents: [
      { name: 'node-a' },
      // Audits five times a second with no grace at all, and spawns slowly: the harshest
      // setting for "never frees a claim an in-flight task needs".
      { name: 'node-b', extraArgs: ['--audit-interval=0.2', '--audit-grace=0', '--spawn-delay-ms=2000'] },
    ],
  });
});

afterAll(async () => {
  await env?.stop();
});

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';
const boot = (name: string, host: string) =>
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name },
    spec: { flavor: 'm1.tiny', image: 'cirros', host },
  });

async function withAgentDown(host: string, change: () => Promise<void> | void): Promise<void> {
  await env.killAgent(host);
  await change();
  env.startAgent({
    name: host,
    ...(host === 'node-b' ? { extraArgs: ['--audit-interval=0.2', '--audit-grace=0', '--spawn-delay-ms=2000'] } : {}),
  });
}

localOnly('resource audit', () => {
  it('never frees the claim of an instance being spawned, even auditing constantly with no grace', async () => {
    const watcher = new InvariantWatcher(env.kube, env.stateDir).start();
    boot('slow', 'node-b');
    const spawning = await env.waitForInstance('slow', (i) => i.status?.taskState === 'spawning', 'spawning');
    const uid = spawning.metadata.uid;
    let sawClaimMissing = false;
    const done = await env.waitFor(
      'slow active',
      async () => {
        const node = await env.computeNode('node-b');
        if (!node?.status?.claims?.some((c) => c.consumer === uid)) sawClaimMissing = true;
        const i = await env.instance('slow');
        return i && active(i) ? i : undefined;
      },
      30_000,
      50,
    );
    expect(done.status?.host).toBe('node-b');
    expect(sawClaimMissing).toBe(false);
    expect((await watcher.stop()).violations).toEqual([]);
  });

  it('frees a claim whose instance no longer exists, after the grace period', async () => {
    await withAgentDown('node-a', async () => {
      const node = await env.computeNode('node-a');
      const phantom = {
        consumer: 'phantom-uid',
        kind: 'instance' as const,
        instance: 'default/ghost',
        vcpus: 2,
        memoryMiB: 1024,
        diskGiB: 10,
        createdAt: new Date().toISOString(),
      };
      await env.kube.computeNodes.patchStatus(node!, {
        claims: [...(node?.status?.claims ?? []), phantom],
        allocated: { vcpus: 2, memoryMiB: 1024, diskGiB: 10 },
      });
    });
    await env.waitFor(
      'agent adopted the phantom claim at start',
      async () => (await env.computeNode('node-a'))?.status?.claims?.some((c) => c.consumer === 'phantom-uid'),
      20_000,
    );
    // grace 5 s, audit every 2 s in the test harness
    const healed = await env.waitFor(
      'phantom claim freed',
      async () => {
        const n = await env.computeNode('node-a');
        return n?.status?.claims?.some((c) => c.consumer === 'phantom-uid') ? undefined : n;
      },
      30_000,
    );
    expect(healed.status?.allocated).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
  });

  it('claims again a running domain whose claim was lost, and reaps a domain whose instance is gone', async () => {
    boot('kept', 'node-a');
    const kept = await env.waitForInstance('kept', active, 'active');
    const uid = kept.metadata.uid ?? '';
    const instancesDir = join(env.stateDir, 'node-a', 'instances');
    await withAgentDown('node-a', async () => {
      const node = await env.computeNode('node-a');
      await env.kube.computeNodes.patchStatus(node!, { claims: [], allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 } });
      // A leftover domain of an instance deleted while nobody watched.
      cpSync(join(instancesDir, uid), join(instancesDir, 'orphan-uid'), { recursive: true });
      const def = JSON.parse(readFileSync(join(instancesDir, 'orphan-uid', 'domain.json'), 'utf8')) as Record<
        string,
        unknown
      >;
      writeFileSync(
        join(instancesDir, 'orphan-uid', 'domain.json'),
        JSON.stringify({ ...def, uid: 'orphan-uid', name: 'default/orphan' }),
      );
    });
    const healed = await env.waitFor(
      'lost claim re-established and orphan reaped',
      async () => {
        const n = await env.computeNode('node-a');
        return n?.status?.claims?.some((c) => c.consumer === uid) && !existsSync(join(instancesDir, 'orphan-uid'))
          ? n
          : undefined;
      },
      30_000,
    );
    expect(healed.status?.allocated).toEqual({ vcpus: 1, memoryMiB: 512, diskGiB: 1 });
    expect((await env.eventsWith('kept', ['AuditHealed'])).map((e) => e.reason)).toContain('AuditHealed');
    expect((await env.instance('kept'))?.status?.vmState).toBe('active');
  });
});
