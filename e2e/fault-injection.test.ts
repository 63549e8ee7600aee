// Failures made on purpose with the fake driver's fake.kubenova.io/fail annotation: a spawn
// that fails is rescheduled on another host (Nova's RescheduledException) until the attempts
// run out, and the annotation is read live, so removing it lets the next retry succeed.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FAIL_ANNOTATION } from '../common/api/fault-injection.js';
import type { Instance } from '../common/api/types.js';
import { TestEnv } from './harness/env.js';
import { localOnly } from './harness/mode.js';

let env: TestEnv;

beforeAll(async () => {
  env = await TestEnv.start({
    // node-a has the most free memory, so the RAM weigher sends every first attempt there.
    agents: [{ name: 'node-a', memoryMiB: 32768 }, { name: 'node-b' }, { name: 'node-c' }],
  });
});

afterAll(async () => {
  await env?.stop();
});

const boot = (name: string, fail?: string) =>
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name, ...(fail === undefined ? {} : { annotations: { [FAIL_ANNOTATION]: fail } }) },
    spec: { flavor: 'm1.tiny', image: 'cirros' },
  });

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';
const failed = (i: Instance) => i.status?.vmState === 'error';
const HOSTS = ['node-a', 'node-b', 'node-c'];

async function claimedAnywhere(uid: string): Promise<string[]> {
  const holders: string[] = [];
  for (const host of HOSTS) {
    if ((await env.computeNode(host))?.status?.claims?.some((c) => c.consumer === uid)) holders.push(host);
  }
  return holders;
}

localOnly('fault injection', () => {
  it(`with ${FAIL_ANNOTATION}: spawn on every host, a boot ends error after max attempts with every host's reason`, async () => {
    boot('doomed', 'spawn');

    const i = await env.waitForInstance('doomed', failed, 'error');

    const uid = i.metadata.uid ?? '';
    expect(i.status?.scheduling?.attempts).toBe(3);
    expect([...(i.status?.scheduling?.triedHosts ?? [])].sort()).toEqual(HOSTS);
    expect(i.status?.fault?.reason).toBe('SpawnFailed');
    const message = i.status?.fault?.message ?? '';
    expect(message).toMatch(/^no host could take the instance after 3 attempts: /);
    for (const host of HOSTS) {
      expect(message).toContain(`${host}: spawn failed: spawn ${uid}: injected failure`);
    }
    expect(i.status?.host).toBeUndefined();
    // Every host gave everything back.
    await env.waitFor('no claim left for doomed', async () => (await claimedAnywhere(uid)).length === 0, 15_000);
    for (const host of HOSTS) expect(existsSync(join(env.stateDir, host, 'instances', uid))).toBe(false);
    // One Warning per failed spawn, naming its host, and one for the end.
    const events = await env.eventsWith('doomed', ['Rescheduled', 'SpawnFailed']);
    const spawnFailed = events.filter((e) => e.reason === 'SpawnFailed');
    expect(spawnFailed.every((e) => e.type === 'Warning')).toBe(true);
    for (const host of HOSTS) {
      expect(spawnFailed.some((e) => e.message.startsWith(`spawn on ${host} failed: `))).toBe(true);
    }
    expect(spawnFailed.some((e) => e.message.startsWith('no host could take the instance after 3 attempts'))).toBe(
      true,
    );
  });

  it('a spawn that fails on one host lands on another', async () => {
    boot('second-chance', 'spawn@node-a');

    const i = await env.waitForInstance('second-chance', active, 'active');

    expect(i.status?.host).not.toBe('node-a');
    expect(i.status?.scheduling).toMatchObject({
      attempts: 2,
      failures: [{ host: 'node-a', attempt: 1, reason: 'SpawnFailed' }],
    });
    expect(i.status?.scheduling?.triedHosts?.[0]).toBe('node-a');
    expect(i.status?.fault).toBeUndefined();
    expect(await claimedAnywhere(i.metadata.uid ?? '')).toEqual([i.status?.host]);
    const events = await env.eventsWith('second-chance', ['SpawnFailed', 'Rescheduled', 'Spawned']);
    const warning = events.find((e) => e.reason === 'SpawnFailed');
    expect(warning?.type).toBe('Warning');
    expect(warning?.message).toMatch(/^spawn on node-a failed: .*injected failure/);
  });

  it('a start that keeps failing ends with a StepFailed fault after the retry budget; without the annotation, asking again starts it', async () => {
    boot('stubborn');
    await env.waitForInstance('stubborn', active, 'active');
    env.kubectl(['annotate', 'instance', 'stubborn', `${FAIL_ANNOTATION}=power-on`]);
    env.kubectl(['patch', 'instance', 'stubborn', '--type', 'merge', '-p', '{"spec":{"powerState":"Stopped"}}']);
    await env.waitForInstance(
      'stubborn',
      (i) => i.status?.vmState === 'stopped' && i.status.taskState === '',
      'stopped',
    );

    env.kubectl(['patch', 'instance', 'stubborn', '--type', 'merge', '-p', '{"spec":{"powerState":"Running"}}']);
    const gaveUp = await env.waitForInstance(
      'stubborn',
      (i) => i.status?.fault?.reason === 'StepFailed' && i.status.taskState === '',
      'start given up with StepFailed',
    );
    expect(gaveUp.status).toMatchObject({ vmState: 'stopped', powerState: 'shutdown' });
    expect(gaveUp.status?.fault?.message).toMatch(/^powering_on on .* failed 5 times: .*injected/);

    // Fixed, and asked again (a new generation of the spec): it starts.
    env.kubectl(['annotate', 'instance', 'stubborn', `${FAIL_ANNOTATION}-`]);
    env.kubectl(['patch', 'instance', 'stubborn', '--type', 'merge', '-p', '{"spec":{"powerState":"Stopped"}}']);
    env.kubectl(['patch', 'instance', 'stubborn', '--type', 'merge', '-p', '{"spec":{"powerState":"Running"}}']);
    const running = await env.waitForInstance(
      'stubborn',
      (i) => active(i) && i.status?.powerState === 'running',
      'running',
    );
    expect(running.status?.powerState).toBe('running');
  });
});
