// Per-host watches: each node agent lists and watches only the Instances and Migrations that
// involve its host (field selectors on the CRDs' selectable fields: one on Instances, two on
// Migrations, node-agent/host-watches.ts), so a host that takes no
// part in an instance's life hears nothing of it, and an instance that leaves a host's watch
// (it moved away) is not mistaken there for a deleted one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance, MigrationPhase } from '../common/api/types.js';
import { WATCH_EVENTS_METRIC } from '../node-agent/host-watches.js';
import { diskBytes, sha256 } from './harness/disks.js';
import { localOnly } from './harness/mode.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';

const AGENTS = ['node-a', 'node-b', 'node-c'];

let env: TestEnv;
let watcher: InvariantWatcher;

beforeAll(async () => {
  env = await TestEnv.start({ agents: AGENTS.map((name) => ({ name })) });
  await Promise.all(['operator', ...AGENTS.map((a) => `agent-${a}`)].map((l) => env.waitForRunning(l)));
  watcher = new InvariantWatcher(env.kube, env.stateDir).start();
});

afterAll(async () => {
  const report = await watcher?.stop();
  await env?.stop();
  expect(report?.violations ?? []).toEqual([]);
});

/** The watch events an agent counted as delivered to its host, by kind. */
async function watchEvents(agent: string): Promise<Record<string, number>> {
  const log = readFileSync(join(env.dir, `agent-${agent}.log`), 'utf8');
  const address = [...log.matchAll(/"metrics":"([^"]+)"/g)].at(-1)?.[1];
  if (!address) throw new Error(`agent-${agent} logged no metrics address`);
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(new RegExp(`^${WATCH_EVENTS_METRIC}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
    const kind = /kind="([^"]*)"/.exec(m[1]!)?.[1] ?? '?';
    out[kind] = (out[kind] ?? 0) + Number(m[2]);
  }
  return out;
}

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';
const phase = (name: string, wanted: MigrationPhase) =>
  env.waitFor(
    `migration ${name} ${wanted}`,
    async () => ((await env.migration(name))?.status?.status === wanted ? env.migration(name) : undefined),
    60_000,
    50,
  );
const decide = (mig: string, decision: 'Confirm' | 'Revert') =>
  env.kubectl(['patch', 'migration', mig, '--type', 'merge', '-p', JSON.stringify({ spec: { decision } })]);
const migrate = (name: string, instance: string, targetHost: string) =>
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Migration',
    metadata: { name },
    spec: { instance, targetHost },
  });

localOnly('per-host watches', () => {
  it('a host hears only of the instances that involve it; the source keeps a moved instance until revert or confirm, and nothing is destroyed because an instance left a watch', async () => {
    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Instance',
      metadata: { name: 'web' },
      spec: { flavor: 'm1.small', image: 'cirros', host: 'node-a' },
    });
    const booted = await env.waitForInstance('web', active, 'active on node-a');
    const uid = booted.metadata.uid ?? '';
    const disk = sha256(diskBytes(env.stateDir, 'node-a', uid)!);
    expect((await watchEvents('node-a')).Instance ?? 0).toBeGreaterThan(0);
    expect((await watchEvents('node-b')).Instance ?? 0).toBe(0);

    // Moved to node-b and reverted: node-b sees it from pre-migrating on; node-a, whose host
    // watch lost it at finish, still restores it byte for byte.
    migrate('web-1', 'web', 'node-b');
    await phase('web-1', 'finished');
    expect((await env.instance('web'))?.status?.host).toBe('node-b');
    decide('web-1', 'Revert');
    await phase('web-1', 'reverted');
    await env.waitForInstance('web', (i) => active(i) && i.status?.host === 'node-a', 'active on node-a again');
    expect(sha256(diskBytes(env.stateDir, 'node-a', uid)!)).toBe(disk);
    expect((await watchEvents('node-b')).Instance ?? 0).toBeGreaterThan(0);

    // Moved again and confirmed: it runs on node-b with its disk; node-a let go of everything.
    migrate('web-2', 'web', 'node-b');
    await phase('web-2', 'finished');
    decide('web-2', 'Confirm');
    await phase('web-2', 'confirmed');
    await env.waitForInstance('web', (i) => active(i) && i.status?.host === 'node-b', 'active on node-b');
    expect(sha256(diskBytes(env.stateDir, 'node-b', uid)!)).toBe(disk);
    // The destination found the Migration, and keeps it, through the one field it watches.
    expect((await env.migration('web-2'))?.status).toMatchObject({
      destHost: 'node-b',
      scheduling: { selectedHost: 'node-b' },
    });
    const claims = (await env.kube.computeNodes.list()).items.flatMap((n) =>
      (n.status?.claims ?? []).map((c) => `${n.metadata.name}:${c.kind}:${c.consumer === uid ? 'web' : c.consumer}`),
    );
    expect(claims).toEqual(['node-b:instance:web']);

    // node-c took no part: not one Instance or Migration event reached it.
    expect(await watchEvents('node-c')).toEqual({});

    // node-a's audit and stale-copy passes (every 2 s here, grace 5 s) run while web is outside
    // its watches: they leave the running instance alone (a live read tells them where it runs).
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    const after = await env.instance('web');
    expect(after?.status).toMatchObject({ vmState: 'active', host: 'node-b' });
    expect(diskBytes(env.stateDir, 'node-b', uid)).toBeDefined();

    env.kubectl(['delete', 'instance', 'web', '--wait=true']);
    await env.waitFor('web gone', async () => ((await env.instance('web')) ? undefined : true), 60_000, 100);
    const left = (await env.kube.computeNodes.list()).items.flatMap((n) => n.status?.claims ?? []);
    expect(left).toEqual([]);
  });
});
