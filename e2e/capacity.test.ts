// Capacity is protected by claims: a burst larger than the cluster fills it exactly and
// no further, and two schedulers racing for the last room on one host cannot both win.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance } from '../common/api/types.js';
import { localOnly } from './harness/mode.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';

// Memory is the limit: (8192 - 512 reserved) / 512 = 15 m1.tiny per host, 45 on three.
const SMALL_HOST = { vcpus: 8, memoryMiB: 8192, diskGiB: 200 };

let env: TestEnv;

beforeAll(async () => {
  env = await TestEnv.start({
    agents: [
      { name: 'node-a', ...SMALL_HOST },
      { name: 'node-b', ...SMALL_HOST },
      { name: 'node-c', ...SMALL_HOST },
    ],
    // node-big's agent is paused while both schedulers place; it must not look dead meanwhile.
    nodeHeartbeatTimeout: 15,
  });
});

afterAll(async () => {
  await env?.stop();
});

const settled = (i: Instance) =>
  (i.status?.vmState === 'active' && i.status.taskState === '') || i.status?.vmState === 'error';

async function instances(prefix: string): Promise<Instance[]> {
  return (await env.kube.instances.list('default')).items.filter((i) => i.metadata.name.startsWith(prefix));
}

function domainCount(): number {
  let n = 0;
  for (const host of existsSync(env.stateDir) ? readdirSync(env.stateDir) : []) {
    const dir = join(env.stateDir, host, 'instances');
    if (existsSync(dir)) n += readdirSync(dir).length;
  }
  return n;
}

localOnly('capacity', () => {
  it('a burst of 60 instances on hosts sized for 45 gives exactly 45 active and 15 NoValidHost, never overbooking, and deleting them frees everything', async () => {
    const watcher = new InvariantWatcher(env.kube, env.stateDir).start();
    const docs = Array.from({ length: 60 }, (_, n) =>
      JSON.stringify({
        apiVersion: 'compute.kubenova.io/v1alpha1',
        kind: 'Instance',
        metadata: { name: `burst-${n}` },
        spec: { flavor: 'm1.tiny', image: 'cirros' },
      }),
    );
    env.kubectl(['create', '-f', '-'], docs.join('\n'));
    const all = await env.waitFor(
      'all 60 settled',
      async () => {
        const list = await instances('burst-');
        return list.length === 60 && list.every(settled) ? list : undefined;
      },
      120_000,
      500,
    );
    // The invariant was checked while the burst was placing and claiming, not only after it.
    const sampledDuringBurst = watcher.report.samples;
    const activeOnes = all.filter((i) => i.status?.vmState === 'active');
    const errored = all.filter((i) => i.status?.vmState === 'error');
    expect(activeOnes).toHaveLength(45);
    expect(errored).toHaveLength(15);
    for (const i of errored) expect(i.status?.fault?.reason).toBe('NoValidHost');
    const perHost = new Map<string, number>();
    for (const i of activeOnes) perHost.set(i.status?.host ?? '', (perHost.get(i.status?.host ?? '') ?? 0) + 1);
    expect([...perHost.values()]).toEqual([15, 15, 15]);

    env.kubectl(['delete', 'instance', '-l', '!keep', '--wait=false']);
    await env.waitFor('every instance gone', async () => (await instances('burst-')).length === 0, 120_000, 500);
    const report = await watcher.stop();
    expect(report.violations).toEqual([]);
    expect(sampledDuringBurst).toBeGreaterThan(0);
    expect(report.samples).toBeGreaterThan(sampledDuringBurst);
    for (const name of ['node-a', 'node-b', 'node-c']) {
      const node = await env.computeNode(name);
      expect(node?.status?.allocated).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
      expect(node?.status?.claims).toEqual([]);
    }
    expect(domainCount()).toBe(0);
  });

  it('two schedulers aiming at the one host with room: one claim wins, the other is rescheduled elsewhere with ClaimFailed and Rescheduled', async () => {
    // node-big has the most free RAM, so a RAM-only weigher always prefers it, but room
    // (by vCPU) for one 4-vCPU instance only. Two operators sharded by label are two
    // schedulers that cannot see each other's in-flight placements; node-big's agent is
    // paused until both have placed, so both claims really meet there.
    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Flavor',
      metadata: { name: 'c4.race' },
      spec: { vcpus: 4, memoryMiB: 1024, rootDiskGiB: 10 },
    });
    const big = env.startAgent({ name: 'node-big', vcpus: 1, memoryMiB: 65536, diskGiB: 400 });
    await env.waitForNodesReady(['node-big']);
    const weights = ['--cpu-weight-multiplier=0', '--disk-weight-multiplier=0'];
    await env.operator?.stop();
    const shardA = env.startOperator([...weights, '--instance-selector=shard=a'], 'operator-shard-a');
    const shardB = env.startOperator([...weights, '--instance-selector=shard=b'], 'operator-shard-b');
    try {
      await Promise.all([env.waitForRunning('operator-shard-a'), env.waitForRunning('operator-shard-b')]);
      const watcher = new InvariantWatcher(env.kube, env.stateDir).start();
      big.child.kill('SIGSTOP');
      const docs = [
        ['race-1', 'a'],
        ['race-2', 'b'],
      ].map(([name, shard]) =>
        JSON.stringify({
          apiVersion: 'compute.kubenova.io/v1alpha1',
          kind: 'Instance',
          metadata: { name, labels: { shard } },
          spec: { flavor: 'c4.race', image: 'cirros' },
        }),
      );
      env.kubectl(['create', '-f', '-'], docs.join('\n'));
      await env.waitFor(
        'both placed on node-big',
        async () => {
          const placed = await Promise.all(['race-1', 'race-2'].map((n) => env.instance(n)));
          return placed.every((i) => i?.status?.scheduling?.selectedHost === 'node-big');
        },
        10_000,
        50,
      );
      big.child.kill('SIGCONT');
      const [one, two] = await Promise.all(
        ['race-1', 'race-2'].map((n) =>
          env.waitForInstance(n, (i) => i.status?.vmState === 'active' && i.status.taskState === '', 'active'),
        ),
      );
      const hosts = [one!.status?.host, two!.status?.host];
      expect(hosts.filter((h) => h === 'node-big')).toHaveLength(1);
      const loser = one!.status?.host === 'node-big' ? two! : one!;
      expect(loser.status?.scheduling?.attempts).toBe(2);
      expect(loser.status?.scheduling?.triedHosts?.[0]).toBe('node-big');
      const events = await env.eventsWith(loser.metadata.name, ['ClaimFailed', 'Rescheduled']);
      expect(events.map((e) => e.reason)).toEqual(expect.arrayContaining(['ClaimFailed', 'Rescheduled']));
      expect(events.find((e) => e.reason === 'ClaimFailed')?.message).toMatch(/free vcpus 0 < requested 4/);
      expect((await watcher.stop()).violations).toEqual([]);
    } finally {
      big.child.kill('SIGCONT');
      await Promise.all([shardA.stop(), shardB.stop()]);
      env.startOperator();
    }
  });
});
