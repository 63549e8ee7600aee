// Host loss, end to end against a real API server: a host's agent is killed for good, its
// instances are told their host is lost (HostLost) and keep their state; the admin forces the
// host down, after which deleting an instance there completes without its agent (Nova's local
// delete) and frees its quota; when the agent starts again it destroys what was deleted
// meanwhile and drops its claims, and the instance still there sees its host back. The claim
// invariant holds throughout.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance } from '../common/api/types.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';
import { localOnly } from './harness/mode.js';

const API = 'compute.kubenova.io/v1alpha1';
const HOST = 'node-c';
let env: TestEnv;
let watcher: InvariantWatcher;

beforeAll(async () => {
  env = await TestEnv.start({ operatorArgs: ['--host-lost-grace=2'] });
  watcher = new InvariantWatcher(env.kube, env.stateDir).start();
});

afterAll(async () => {
  const report = await watcher?.stop();
  await env?.stop();
  expect(report?.violations ?? []).toEqual([]);
});

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';
const hostLost = (i: Instance | undefined) => i?.status?.conditions?.find((c) => c.type === 'HostLost');
const quota = () => env.kube.quotas.get({ namespace: 'default', name: 'quota' });
const domainDir = (uid: string) => join(env.stateDir, HOST, 'instances', uid);
const claimsOnHost = async () => ((await env.computeNode(HOST))?.status?.claims ?? []).map((c) => c.consumer).sort();
const forcedDown = (on: boolean) =>
  env.kubectl(['patch', 'computenode', HOST, '--type', 'merge', '-p', JSON.stringify({ spec: { forcedDown: on } })]);

localOnly('host loss', () => {
  let web: Instance;
  let db: Instance;

  it('boots two instances on the host that will be lost, counted in quota', async () => {
    env.apply({
      apiVersion: API,
      kind: 'ComputeQuota',
      metadata: { name: 'quota', namespace: 'default' },
      spec: { hard: { instances: 10 } },
    });
    await env.waitFor('quota in the API', async () => (await quota()) !== undefined);
    for (const name of ['web-1', 'db-1'])
      env.apply({
        apiVersion: API,
        kind: 'Instance',
        metadata: { name },
        spec: { flavor: 'm1.small', image: 'cirros', host: HOST },
      });
    web = await env.waitForInstance('web-1', active, 'active');
    db = await env.waitForInstance('db-1', active, 'active');
    await env.waitFor('quota used by both', async () => (await quota())?.status?.used?.instances === 2);
    expect(await claimsOnHost()).toEqual([web.metadata.uid, db.metadata.uid].sort());
  });

  it('an agent killed for good: its instances get HostLost=True with one Warning Event, their state kept', async () => {
    await env.killAgent(HOST);

    for (const name of ['web-1', 'db-1']) {
      const inst = await env.waitForInstance(name, (i) => hostLost(i)?.status === 'True', 'HostLost', 60_000);
      expect(hostLost(inst)).toMatchObject({ reason: 'HostLost' });
      expect(hostLost(inst)?.message).toMatch(/forcedDown/);
      expect(inst.status).toMatchObject({ vmState: 'active', host: HOST });
    }
    const events = await env.eventsWith('web-1', ['HostLost']);
    expect(events.filter((e) => e.reason === 'HostLost')).toEqual([expect.objectContaining({ type: 'Warning' })]);
  });

  it('forced down: deleting an instance there completes without its agent, frees its quota, says LocalDelete', async () => {
    forcedDown(true);
    env.kubectl(['delete', 'instance', 'web-1', '--wait=false']);

    await env.waitFor('web-1 gone', async () => (await env.instance('web-1')) === undefined, 30_000);
    await env.waitFor('quota used by db-1 only', async () => (await quota())?.status?.used?.instances === 1);
    const events = await env.eventsWith('web-1', ['LocalDelete']);
    expect(events.find((e) => e.reason === 'LocalDelete')?.message).toContain(HOST);
    // Nobody but its own agent writes the host: its copy and claim wait for it.
    expect(existsSync(domainDir(web.metadata.uid!))).toBe(true);
    expect(await claimsOnHost()).toContain(web.metadata.uid);
  });

  it('the agent starts again: the stale copy and its claim are gone, the instance still there sees its host back', async () => {
    env.startAgent({ name: HOST });
    await env.waitForNodesReady([HOST]);

    await env.waitFor('stale claim dropped', async () => (await claimsOnHost()).join() === db.metadata.uid, 30_000);
    expect(existsSync(domainDir(web.metadata.uid!))).toBe(false);
    expect(existsSync(domainDir(db.metadata.uid!))).toBe(true);
    const events = await env.eventsWith('web-1', ['StaleCopyDestroyed']);
    expect(events.find((e) => e.reason === 'StaleCopyDestroyed')?.message).toMatch(/deleted/);

    const back = await env.waitForInstance('db-1', (i) => hostLost(i)?.status === 'False', 'HostLost False', 30_000);
    expect(hostLost(back)).toMatchObject({ reason: 'HostBack' });
    expect(back.status).toMatchObject({ vmState: 'active', host: HOST });
    const dbEvents = await env.eventsWith('db-1', ['HostBack']);
    expect(dbEvents.find((e) => e.reason === 'HostBack')?.type).toBe('Normal');
  });

  it('once no longer forced down, the host deletes the remaining instance as usual', async () => {
    forcedDown(false);
    env.kubectl(['delete', 'instance', 'db-1', '--wait=false']);

    await env.waitFor('db-1 gone', async () => (await env.instance('db-1')) === undefined, 30_000);
    expect(await claimsOnHost()).toEqual([]);
    expect(existsSync(domainDir(db.metadata.uid!))).toBe(false);
    expect((await env.events('db-1')).some((e) => e.reason === 'LocalDelete')).toBe(false);
  });

  it.todo('an instance with evacuationPolicy Automatic on the forced-down host is rebuilt elsewhere (Evacuation)');
});
