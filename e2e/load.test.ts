// Load and outage: the API server restarts in the middle of a burst, and many boots,
// resizes and migrations run at once on a cluster too small for all of them. The claim
// invariant is watched continuously; afterwards nothing is held, stored or left behind.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance, Migration } from '../common/api/types.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';
import { localOnly } from './harness/mode.js';

// 6 GiB allocatable memory per host: room for a dozen small instances, not for everything asked.
const HOST = { vcpus: 4, memoryMiB: 6656, diskGiB: 300 };

let env: TestEnv;
let watcher: InvariantWatcher;

beforeAll(async () => {
  env = await TestEnv.start({
    agents: [
      { name: 'node-a', ...HOST },
      { name: 'node-b', ...HOST },
      { name: 'node-c', ...HOST },
    ],
    nodeHeartbeatTimeout: 8,
  });
  watcher = new InvariantWatcher(env.kube, env.stateDir, 200).start();
});

afterAll(async () => {
  const report = await watcher?.stop();
  process.stdout.write(
    `load suite: ${report?.samples ?? 0} invariant samples, ${report?.violations.length ?? 0} violations\n`,
  );
  await env?.stop();
  expect(report?.violations ?? []).toEqual([]);
});

const settledBoot = (i: Instance) =>
  (i.status?.vmState === 'active' && i.status.taskState === '') || i.status?.vmState === 'error';
const instanceDoc = (name: string, flavor: string) =>
  JSON.stringify({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name, labels: { suite: 'load' } },
    spec: { flavor, image: 'cirros' },
  });

async function listLoad(prefix: string): Promise<Instance[]> {
  return (await env.kube.instances.list('default')).items.filter((i) => i.metadata.name.startsWith(prefix));
}

function directoriesLeft(): string[] {
  const left: string[] = [];
  for (const host of existsSync(env.stateDir) ? readdirSync(env.stateDir) : []) {
    for (const sub of ['instances', 'incoming']) {
      const dir = join(env.stateDir, host, sub);
      if (existsSync(dir)) left.push(...readdirSync(dir).map((d) => `${host}/${sub}/${d}`));
    }
  }
  return left;
}

localOnly('load and outage', () => {
  it('a burst survives a kube-apiserver restart: watches resume and every instance reaches its end state', async () => {
    const docs = Array.from({ length: 24 }, (_, n) => instanceDoc(`outage-${n}`, 'm1.tiny'));
    env.kubectl(['create', '-f', '-'], docs.slice(0, 12).join('\n'));
    // Nothing can be sampled while the API server is down on purpose; the watcher looks again once it is back.
    await watcher.pause();
    await env.cp.stopApiserver();
    await new Promise((r) => setTimeout(r, 2_000));
    await env.cp.startApiserver();
    await watcher.resume();
    env.kubectl(['create', '-f', '-'], docs.slice(12).join('\n'));
    const all = await env.waitFor(
      'all 24 active',
      async () => {
        const list = await listLoad('outage-');
        return list.length === 24 && list.every((i) => i.status?.vmState === 'active' && i.status.taskState === '')
          ? list
          : undefined;
      },
      120_000,
      500,
    );
    expect(all.every((i) => i.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True')).toBe(true);
    env.kubectl(['delete', 'instance', '-l', 'suite=load', '--wait=false']);
    await env.waitFor('burst deleted', async () => (await listLoad('outage-')).length === 0, 120_000, 500);
  });

  it('many boots, resizes and migrations at once on too small a cluster: never overbooked, and nothing left once deleted', async () => {
    const flavors = ['m1.tiny', 'm1.small', 'm1.tiny', 'm1.medium'];
    env.kubectl(
      ['create', '-f', '-'],
      Array.from({ length: 16 }, (_, n) => instanceDoc(`busy-${n}`, flavors[n % flavors.length]!)).join('\n'),
    );
    const booted = await env.waitFor(
      'first wave settled',
      async () => {
        const list = await listLoad('busy-');
        return list.length === 16 && list.every(settledBoot) ? list : undefined;
      },
      120_000,
      500,
    );
    const running = booted.filter((i) => i.status?.vmState === 'active');
    expect(running.length).toBeGreaterThan(4);

    // Second wave, all at once: more boots than fit, resizes up, cold migrations.
    env.kubectl(
      ['create', '-f', '-'],
      Array.from({ length: 12 }, (_, n) => instanceDoc(`more-${n}`, 'm1.small')).join('\n'),
    );
    const resized = running.slice(0, 4);
    for (const i of resized) {
      env.kubectl([
        'patch',
        'instance',
        i.metadata.name,
        '--type',
        'merge',
        '-p',
        JSON.stringify({ spec: { flavor: i.spec.flavor === 'm1.medium' ? 'm1.large' : 'm1.medium' } }),
      ]);
    }
    const moved = running.slice(4, 8);
    env.kubectl(
      ['create', '-f', '-'],
      moved
        .map((i) =>
          JSON.stringify({
            apiVersion: 'compute.kubenova.io/v1alpha1',
            kind: 'Migration',
            metadata: { name: `${i.metadata.name}-move` },
            spec: { instance: i.metadata.name },
          }),
        )
        .join('\n'),
    );

    const migrations = await env.waitFor(
      'every migration finished or failed',
      async () => {
        const list = (await env.kube.migrations.list('default')).items.filter((m) =>
          m.spec.instance.startsWith('busy-'),
        );
        return list.length === resized.length + moved.length &&
          list.every((m) => ['finished', 'error'].includes(m.status?.status ?? ''))
          ? list
          : undefined;
      },
      120_000,
      500,
    );
    migrations.forEach((m: Migration, n) => {
      if (m.status?.status === 'finished')
        env.kubectl([
          'patch',
          'migration',
          m.metadata.name,
          '--type',
          'merge',
          '-p',
          JSON.stringify({ spec: { decision: n % 2 ? 'Revert' : 'Confirm' } }),
        ]);
    });
    await env.waitFor(
      'every migration decided',
      async () => {
        const list = (await env.kube.migrations.list('default')).items.filter((m) =>
          m.spec.instance.startsWith('busy-'),
        );
        return list.every((m) => ['confirmed', 'reverted', 'error'].includes(m.status?.status ?? ''));
      },
      120_000,
      500,
    );
    const quiet = await env.waitFor(
      'no task running anywhere',
      async () => {
        const list = await listLoad('');
        return list.every((i) => (i.status?.taskState ?? '') === '' && i.status?.vmState !== 'building')
          ? list
          : undefined;
      },
      120_000,
      500,
    );
    expect(quiet.filter((i) => i.status?.vmState === 'resized')).toEqual([]);

    env.kubectl(['delete', 'instance', '-l', 'suite=load', '--wait=false']);
    await env.waitFor('everything deleted', async () => (await listLoad('')).length === 0, 120_000, 500);
    await env.waitFor(
      'zero allocated, zero claims, zero directories, zero transfer Secrets',
      async () => {
        const nodes = (await env.kube.computeNodes.list()).items;
        const secrets = (
          await env.kube.core.listNamespacedSecret({
            namespace: 'default',
            labelSelector: 'app.kubernetes.io/part-of=kubenova',
          })
        ).items;
        return (
          nodes.every(
            (n) =>
              (n.status?.claims ?? []).length === 0 &&
              n.status?.allocated?.vcpus === 0 &&
              n.status.allocated.memoryMiB === 0 &&
              n.status.allocated.diskGiB === 0,
          ) &&
          directoriesLeft().length === 0 &&
          secrets.length === 0
        );
      },
      60_000,
      500,
    );
  });
});
