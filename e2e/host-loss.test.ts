// Host loss, end to end against a real API server: a host's agent is killed for good, its
// instances are told their host is lost (HostLost) and keep their state; an evacuation is
// refused until the admin forces the host down. Then an Evacuation rebuilds an instance on
// another host, one with evacuationPolicy Automatic is rebuilt by the operator itself, and
// deleting an instance there completes without its agent (Nova's local delete) and frees its
// quota; when the agent starts again it destroys what was evacuated or deleted meanwhile and
// drops their claims, and the instance still there sees its host back. The claim invariant
// holds throughout.
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

const evacuate = (name: string, instance: string) =>
  env.apply({ apiVersion: API, kind: 'Migration', metadata: { name }, spec: { instance, type: 'Evacuation' } });
const migrationEnded = (name: string) =>
  env.waitFor(
    `migration ${name} ended`,
    async () => {
      const m = await env.migration(name);
      return m?.status?.status === 'confirmed' || m?.status?.status === 'error' ? m : undefined;
    },
    60_000,
  );

localOnly('host loss', () => {
  let web: Instance;
  let db: Instance;
  let app: Instance;
  let api: Instance;

  it('boots four instances on the host that will be lost (one with evacuationPolicy Automatic), counted in quota', async () => {
    env.apply({
      apiVersion: API,
      kind: 'ComputeQuota',
      metadata: { name: 'quota', namespace: 'default' },
      spec: { hard: { instances: 10 } },
    });
    await env.waitFor('quota in the API', async () => (await quota()) !== undefined);
    for (const name of ['web-1', 'db-1', 'app-1', 'api-1'])
      env.apply({
        apiVersion: API,
        kind: 'Instance',
        metadata: { name },
        spec: {
          flavor: 'm1.small',
          image: 'cirros',
          host: HOST,
          ...(name === 'app-1' ? { evacuationPolicy: 'Automatic' } : {}),
        },
      });
    web = await env.waitForInstance('web-1', active, 'active');
    db = await env.waitForInstance('db-1', active, 'active');
    app = await env.waitForInstance('app-1', active, 'active');
    api = await env.waitForInstance('api-1', active, 'active');
    await env.waitFor('quota used by all four', async () => (await quota())?.status?.used?.instances === 4);
    expect(await claimsOnHost()).toEqual([web, db, app, api].map((i) => i.metadata.uid).sort());
  });

  it('an agent killed for good: its instances get HostLost=True with one Warning Event, their state kept', async () => {
    await env.killAgent(HOST);

    for (const name of ['web-1', 'db-1', 'app-1', 'api-1']) {
      const inst = await env.waitForInstance(name, (i) => hostLost(i)?.status === 'True', 'HostLost', 60_000);
      expect(hostLost(inst)).toMatchObject({ reason: 'HostLost' });
      expect(hostLost(inst)?.message).toMatch(/forcedDown/);
      expect(inst.status).toMatchObject({ vmState: 'active', host: HOST });
    }
    const events = await env.eventsWith('web-1', ['HostLost']);
    expect(events.filter((e) => e.reason === 'HostLost')).toEqual([expect.objectContaining({ type: 'Warning' })]);
  });

  it('an evacuation off a host that is not forced down is refused, saying what to do, and nothing changes', async () => {
    evacuate('db-1-evacuate-early', 'db-1');

    const refused = await migrationEnded('db-1-evacuate-early');

    expect(refused.status?.status).toBe('error');
    expect(refused.status?.fault?.reason).toBe('MigrationRefused');
    expect(refused.status?.fault?.message).toContain(`set spec.forcedDown: true on ComputeNode ${HOST}`);
    expect((await env.instance('db-1'))?.status).toMatchObject({ vmState: 'active', host: HOST, taskState: '' });
  });

  it('forced down: an Evacuation rebuilds the instance on another host from its image, active and Ready', async () => {
    forcedDown(true);
    // The operator may not have seen forcedDown yet: a refusal changes nothing, so ask again.
    let done = undefined as Awaited<ReturnType<typeof migrationEnded>> | undefined;
    for (let attempt = 1; !done || done.status?.fault?.reason === 'MigrationRefused'; attempt++) {
      expect(attempt, `evacuation still refused: ${done?.status?.fault?.message}`).toBeLessThanOrEqual(20);
      evacuate(`db-1-evacuate-${attempt}`, 'db-1');
      done = await migrationEnded(`db-1-evacuate-${attempt}`);
    }

    expect(done.status).toMatchObject({ status: 'confirmed', type: 'evacuation', sourceHost: HOST });
    const moved = await env.waitForInstance('db-1', active, 'active elsewhere');
    expect(moved.status?.host).toBe(done.status?.destHost);
    expect(moved.status?.host).not.toBe(HOST);
    expect(moved.status).toMatchObject({
      powerState: 'running',
      flavor: expect.objectContaining({ name: 'm1.small' }),
    });
    expect(moved.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    const claims = (await env.computeNode(moved.status!.host!))?.status?.claims ?? [];
    expect(claims.filter((c) => c.consumer === db.metadata.uid).map((c) => c.kind)).toEqual(['instance']);
    const events = await env.eventsWith('db-1', ['Evacuated']);
    expect(events.find((e) => e.reason === 'Evacuated')?.message).toContain(`the disk on ${HOST} is lost`);
  });

  it('forced down: an instance with evacuationPolicy Automatic is evacuated by the operator itself', async () => {
    const moved = await env.waitForInstance(
      'app-1',
      (i) => active(i) && i.status?.host !== HOST,
      'evacuated automatically',
      60_000,
    );
    expect(moved.status?.powerState).toBe('running');
    expect((await env.migration('app-1-evacuate-1'))?.status?.status).toBe('confirmed');
  });

  it('forced down: deleting an instance there completes without its agent, frees its quota, says LocalDelete', async () => {
    forcedDown(true);
    env.kubectl(['delete', 'instance', 'web-1', '--wait=false']);

    await env.waitFor('web-1 gone', async () => (await env.instance('web-1')) === undefined, 30_000);
    await env.waitFor('quota used by the other three', async () => (await quota())?.status?.used?.instances === 3);
    const events = await env.eventsWith('web-1', ['LocalDelete']);
    expect(events.find((e) => e.reason === 'LocalDelete')?.message).toContain(HOST);
    // Nobody but its own agent writes the host: its copy and claim wait for it.
    expect(existsSync(domainDir(web.metadata.uid!))).toBe(true);
    expect(await claimsOnHost()).toContain(web.metadata.uid);
  });

  it('the agent starts again: the copies evacuated or deleted meanwhile and their claims are gone, the instance still there sees its host back', async () => {
    env.startAgent({ name: HOST });
    await env.waitForNodesReady([HOST]);

    await env.waitFor('stale claims dropped', async () => (await claimsOnHost()).join() === api.metadata.uid, 30_000);
    for (const gone of [web, db, app])
      expect(existsSync(domainDir(gone.metadata.uid!)), gone.metadata.name).toBe(false);
    expect(existsSync(domainDir(api.metadata.uid!))).toBe(true);
    const events = await env.eventsWith('web-1', ['StaleCopyDestroyed']);
    expect(events.find((e) => e.reason === 'StaleCopyDestroyed')?.message).toMatch(/deleted/);
    await env.eventsWith('db-1', ['StaleCopyDestroyed']);
    // Nothing is counted twice: the evacuated instances are claimed once, on their new hosts.
    for (const moved of [db, app]) {
      let holders = 0;
      for (const node of (await env.kube.computeNodes.list()).items) {
        holders += (node.status?.claims ?? []).filter((c) => c.consumer === moved.metadata.uid).length;
      }
      expect(holders, moved.metadata.name).toBe(1);
    }

    const back = await env.waitForInstance('api-1', (i) => hostLost(i)?.status === 'False', 'HostLost False', 30_000);
    expect(hostLost(back)).toMatchObject({ reason: 'HostBack' });
    expect(back.status).toMatchObject({ vmState: 'active', host: HOST });
    const apiEvents = await env.eventsWith('api-1', ['HostBack']);
    expect(apiEvents.find((e) => e.reason === 'HostBack')?.type).toBe('Normal');
  });

  it('once no longer forced down, the host deletes the remaining instance as usual', async () => {
    forcedDown(false);
    env.kubectl(['delete', 'instance', 'api-1', '--wait=false']);

    await env.waitFor('api-1 gone', async () => (await env.instance('api-1')) === undefined, 30_000);
    expect(await claimsOnHost()).toEqual([]);
    expect(existsSync(domainDir(api.metadata.uid!))).toBe(false);
    expect((await env.events('api-1')).some((e) => e.reason === 'LocalDelete')).toBe(false);
  });
});
