// The first user journey: kubectl apply an Instance and watch it go building/scheduling ->
// building/spawning -> active, placed by the scheduler and protected by the agent's claim.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance } from '../common/api/types.js';
import { Informer } from '../common/kube/informer.js';
import { createLogger } from '../common/log.js';
import { localOnly } from './harness/mode.js';
import { TestEnv, parseTable } from './harness/env.js';
import { untilSchedulerAvoids } from './harness/scheduler-view.js';

let env: TestEnv;

beforeAll(async () => {
  env = await TestEnv.start({
    agents: [
      { name: 'node-a', zone: 'az1', labels: { tier: 'gold' } },
      { name: 'node-b', zone: 'az1' },
      { name: 'node-c', zone: 'az2', extraArgs: ['--fake-fail-spawn-image=broken', '--spawn-delay-ms=1500'] },
    ],
  });
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Flavor',
    metadata: { name: 'gold.small' },
    spec: { vcpus: 1, memoryMiB: 512, rootDiskGiB: 1, extraSpecs: { 'node:tier': 'gold' } },
  });
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Flavor',
    metadata: { name: 'retired' },
    spec: { vcpus: 1, memoryMiB: 512, rootDiskGiB: 1, disabled: true },
  });
});

afterAll(async () => {
  await env?.stop();
});

const boot = (name: string, spec: Record<string, unknown> = {}) =>
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name },
    spec: { flavor: 'm1.tiny', image: 'cirros', ...spec },
  });

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';
const failed = (i: Instance) => i.status?.vmState === 'error';

function domainDir(host: string, uid: string): string {
  return join(env.stateDir, host, 'instances', uid);
}

localOnly('boot', () => {
  it('boots an instance to active with host, flavor snapshot, launchedAt and Ready, through building/scheduling and building/spawning', async () => {
    // Every state it passes through, from a watch: a poll can miss one that lasts a few ms.
    const seen = new Set<string>();
    const states = new Informer(env.kube, 'Instance', createLogger({ component: 'e2e', level: 'silent' }));
    const record = (i: Instance) => {
      if (i.metadata.name === 'web-1' && i.status?.vmState) seen.add(`${i.status.vmState}/${i.status.taskState ?? ''}`);
    };
    states.on('add', record);
    states.on('update', record);
    await states.start();
    boot('web-1', { flavor: 'm1.small' });
    const inst = await env.waitFor(
      'web-1 active',
      async () => {
        const i = await env.instance('web-1');
        return i && active(i) ? i : undefined;
      },
      60_000,
      20,
    );
    await env.waitFor('the watch to show web-1 active', async () => (seen.has('active/') ? true : undefined));
    await states.stop();
    expect(seen.has('building/scheduling') || seen.has('building/spawning')).toBe(true);
    expect(inst.status).toMatchObject({
      vmState: 'active',
      taskState: '',
      powerState: 'running',
      flavor: { name: 'm1.small', vcpus: 1, memoryMiB: 2048, rootDiskGiB: 20, ephemeralDiskGiB: 0 },
      scheduling: { attempts: 1 },
    });
    expect(inst.status?.launchedAt).toBeTruthy();
    expect(inst.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(inst.status?.conditions?.find((c) => c.type === 'Scheduled')?.status).toBe('True');
    const host = inst.status?.host ?? '';
    expect(existsSync(join(domainDir(host, inst.metadata.uid ?? ''), 'disk.img'))).toBe(true);
    const node = await env.computeNode(host);
    expect(node?.status?.claims).toContainEqual(
      expect.objectContaining({
        consumer: inst.metadata.uid,
        kind: 'instance',
        vcpus: 1,
        memoryMiB: 2048,
        diskGiB: 20,
      }),
    );

    expect(env.kubectl(['wait', '--for=condition=Ready', 'instance/web-1', '--timeout=5s'])).toContain('condition met');
    const row = parseTable(env.kubectl(['get', 'inst', 'web-1']))[0];
    expect(row).toMatchObject({
      NAME: 'web-1',
      STATUS: 'active',
      TASK: '',
      FLAVOR: 'm1.small',
      HOST: host,
      POWER: 'running',
    });
    // A boot that went as planned spends no Event of its own: its host reports it in a digest.
    const digest = await env.eventsWith(host, ['Spawned']);
    expect(digest.find((e) => e.reason === 'Spawned')?.message).toMatch(/spawned and running on .*default\/web-1/);
  });

  it("honours a forced host, an availability zone and a flavor's node: extra spec", async () => {
    boot('forced', { host: 'node-c' });
    boot('in-az2', { availabilityZone: 'az2' });
    boot('gold', { flavor: 'gold.small' });
    expect((await env.waitForInstance('forced', active, 'active')).status?.host).toBe('node-c');
    expect((await env.waitForInstance('in-az2', active, 'active')).status?.host).toBe('node-c');
    expect((await env.waitForInstance('gold', active, 'active')).status?.host).toBe('node-a');
  });

  it('fails with NoValidHost, counting what each filter removed, when no host matches', async () => {
    boot('nowhere', { availabilityZone: 'az9' });
    const i = await env.waitForInstance('nowhere', failed, 'error');
    expect(i.status?.fault?.reason).toBe('NoValidHost');
    expect(i.status?.fault?.message).toMatch(/AvailabilityZoneFilter removed 3 of 3/);
    expect((await env.eventsWith('nowhere', ['NoValidHost'])).map((e) => e.reason)).toContain('NoValidHost');
  });

  it('keeps new instances off a disabled host and off a host whose agent is down', async () => {
    env.kubectl([
      'patch',
      'cn',
      'node-a',
      '--type',
      'merge',
      '-p',
      '{"spec":{"disabled":true,"disabledReason":"maintenance"}}',
    ]);
    try {
      // The scheduler decides from its cache of ComputeNodes, which shows the patch a little
      // after the API does. gold.small fits only node-a (tier=gold since it registered): once a
      // probe of it is refused there, the scheduler's view has node-a disabled (untilSchedulerAvoids).
      await untilSchedulerAvoids(env, 'node-a', 'gold.small');
      boot('not-on-disabled', { availabilityZone: 'az1' });
      expect((await env.waitForInstance('not-on-disabled', active, 'active')).status?.host).toBe('node-b');
      await env.killAgent('node-b');
      // The operator itself writes Ready=Unknown, from a cache in which node-b's heartbeat is
      // stale; no heartbeat follows, so the scheduler (same cache) sees node-b not ready from then on.
      await env.waitFor('node-b not Ready', async () => env.nodeReady(await env.computeNode('node-b')) !== 'True');
      boot('no-host-in-az1', { availabilityZone: 'az1' });
      const i = await env.waitForInstance('no-host-in-az1', failed, 'error');
      expect(i.status?.fault?.message).toMatch(/ComputeFilter removed 2 of 3/);
    } finally {
      env.kubectl(['patch', 'cn', 'node-a', '--type', 'merge', '-p', '{"spec":{"disabled":false}}']);
      env.startAgent({ name: 'node-b', zone: 'az1' });
      await env.waitForNodesReady(['node-b']);
    }
  });

  it('fails an instance whose flavor is missing or disabled with a clear fault, not a crash', async () => {
    boot('no-flavor', { flavor: 'm9.huge' });
    boot('old-flavor', { flavor: 'retired' });
    const missing = await env.waitForInstance('no-flavor', failed, 'error');
    expect(missing.status?.fault).toMatchObject({
      reason: 'FlavorNotFound',
      message: expect.stringContaining('flavor m9.huge does not exist'),
    });
    const disabled = await env.waitForInstance('old-flavor', failed, 'error');
    expect(disabled.status?.fault).toMatchObject({
      reason: 'FlavorDisabled',
      message: expect.stringContaining('flavor retired is disabled'),
    });
    boot('still-works');
    await env.waitForInstance('still-works', active, 'active');
  });

  it("frees the claim of a spawn that failed and reports the driver's error", async () => {
    boot('broken', { image: 'broken', host: 'node-c' });
    const i = await env.waitForInstance('broken', failed, 'error');
    expect(i.status?.fault?.reason).toBe('SpawnFailed');
    expect(i.status?.fault?.message).toMatch(/spawn on node-c failed/);
    const node = await env.computeNode('node-c');
    expect(node?.status?.claims?.some((c) => c.consumer === i.metadata.uid)).toBe(false);
    expect(existsSync(domainDir('node-c', i.metadata.uid ?? ''))).toBe(false);
  });

  it('stops and starts an instance with powering_off/powering_on', async () => {
    boot('power');
    await env.waitForInstance('power', active, 'active');
    env.kubectl(['patch', 'instance', 'power', '--type', 'merge', '-p', '{"spec":{"powerState":"Stopped"}}']);
    const stopped = await env.waitForInstance(
      'power',
      (i) => i.status?.vmState === 'stopped' && i.status.taskState === '',
      'stopped',
    );
    expect(stopped.status?.powerState).toBe('shutdown');
    expect(stopped.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('False');
    env.kubectl(['patch', 'instance', 'power', '--type', 'merge', '-p', '{"spec":{"powerState":"Running"}}']);
    const running = await env.waitForInstance(
      'power',
      (i) => active(i) && i.status?.powerState === 'running',
      'running again',
    );
    expect(running.status?.host).toBe(stopped.status?.host);
    const reasons = (await env.eventsWith('power', ['Stopped', 'Started'])).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Stopped', 'Started']));
  });

  it('deletes an instance during spawning: domain destroyed, claim freed, object gone', async () => {
    // node-c spawns slowly (1.5 s), so the delete lands mid-spawn.
    boot('short-lived', { host: 'node-c' });
    const spawning = await env.waitForInstance(
      'short-lived',
      (i) => i.status?.taskState === 'spawning',
      'spawning',
      30_000,
    );
    env.kubectl(['delete', 'instance', 'short-lived', '--wait=false']);
    await env.waitFor('short-lived gone', async () => (await env.instance('short-lived')) === undefined, 60_000);
    await env.waitFor(
      'short-lived claim and directory gone',
      async () => {
        const node = await env.computeNode('node-c');
        return (
          !node?.status?.claims?.some((c) => c.consumer === spawning.metadata.uid) &&
          !existsSync(domainDir('node-c', spawning.metadata.uid ?? ''))
        );
      },
      30_000,
    );
  });

  it('keeps running instances and their claims across an agent restart', async () => {
    boot('survivor', { host: 'node-b' });
    const before = await env.waitForInstance('survivor', active, 'active');
    const claimsBefore = (await env.computeNode('node-b'))?.status?.claims;
    await env.killAgent('node-b');
    // A marker for the audit: a migration claim of no Migration, older than the grace period,
    // recorded while the agent is down. The restarted agent takes it up with the others, and
    // only the audit frees such a claim (the stale-copies pass at start looks at instance
    // claims), in the same write that keeps or drops every other claim: once the marker is
    // gone, an audit pass has judged survivor's claim.
    await env.waitFor('audit marker recorded on node-b', async () => {
      const node = (await env.computeNode('node-b'))!;
      if (node.status?.claims?.some((c) => c.consumer === 'audit-marker')) return true;
      const marker = {
        consumer: 'audit-marker',
        kind: 'migration' as const,
        instance: 'default/audit-marker',
        vcpus: 1,
        memoryMiB: 512,
        diskGiB: 1,
        createdAt: new Date(Date.now() - 60_000).toISOString(),
      };
      const claims = [...(node.status?.claims ?? []), marker];
      const sum = (k: 'vcpus' | 'memoryMiB' | 'diskGiB') => claims.reduce((n, c) => n + c[k], 0);
      await env.kube.computeNodes.patchStatus(node, {
        claims,
        allocated: { vcpus: sum('vcpus'), memoryMiB: sum('memoryMiB'), diskGiB: sum('diskGiB') },
      });
      return true;
    });
    // The old agent is dead: a heartbeat stamped after this moment comes from the new one.
    const restartedAt = Date.now();
    env.startAgent({ name: 'node-b', zone: 'az1' });
    await env.waitFor('a heartbeat from the restarted node-b agent', async () => {
      const n = await env.computeNode('node-b');
      return env.nodeReady(n) === 'True' && Date.parse(n?.status?.heartbeatTime ?? '') > restartedAt;
    });
    await env.waitFor(
      'an audit pass on the restarted node-b (the marker claim freed)',
      async () => !(await env.computeNode('node-b'))?.status?.claims?.some((c) => c.consumer === 'audit-marker'),
      30_000,
    );
    const after = await env.instance('survivor');
    expect(after?.status).toMatchObject({ vmState: 'active', host: 'node-b', powerState: 'running' });
    expect((await env.computeNode('node-b'))?.status?.claims).toEqual(claimsBefore);
    expect(readdirSync(join(env.stateDir, 'node-b', 'instances'))).toContain(before.metadata.uid);
  });
});
