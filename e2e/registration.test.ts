// Node agents register their hosts, and the operator notices when one stops answering
// (Nova's service-down), and when it comes back.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { localOnly } from './harness/mode.js';
import { RELEASE_NAMESPACE } from '../devenv/components.js';
import { TestEnv } from './harness/env.js';

let env: TestEnv;

beforeAll(async () => {
  env = await TestEnv.start({
    agents: [
      { name: 'node-a', vcpus: 8, memoryMiB: 16384, diskGiB: 200, zone: 'az1' },
      { name: 'node-b', vcpus: 16, memoryMiB: 32768, diskGiB: 400, zone: 'az1' },
      { name: 'node-c', vcpus: 4, memoryMiB: 8192, diskGiB: 100, zone: 'az2', labels: { tier: 'gold' } },
    ],
    nodeHeartbeatTimeout: 3,
  });
});

afterAll(async () => {
  await env?.stop();
});

localOnly('node agent registration', () => {
  it('registers three hosts with capacity, allocatable after reserve and ratio, and Ready', async () => {
    const c = await env.computeNode('node-c');
    expect(c?.metadata.labels).toMatchObject({ 'topology.kubernetes.io/zone': 'az2', tier: 'gold' });
    expect(c?.status?.capacity).toEqual({ vcpus: 4, memoryMiB: 8192, diskGiB: 100 });
    // (capacity - reserved) * ratio with the defaults: cpu 4.0, 512 MiB reserved.
    expect(c?.status?.allocatable).toEqual({ vcpus: 16, memoryMiB: 7680, diskGiB: 100 });
    expect(c?.status?.allocated).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
    expect(c?.status?.driver).toBe('fake');
    const ready = env.kubectl([
      'get',
      'cn',
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}',
    ]);
    expect(ready.trim().split(' ').sort()).toEqual(['node-a=True', 'node-b=True', 'node-c=True']);
  });

  it("marks a killed agent's node not Ready for its stopped heartbeats, and Ready again with the same capacity when it returns", async () => {
    const before = await env.computeNode('node-b');
    await env.killAgent('node-b');
    const killedAt = Date.now();
    const notReady = await env.waitFor(
      'node-b not Ready',
      async () => {
        const n = await env.computeNode('node-b');
        return env.nodeReady(n) !== 'True' ? n : undefined;
      },
      60_000,
    );
    // How long it took depends on how busy the machine is: printed to read, never asserted.
    process.stdout.write(`node-b not Ready ${Date.now() - killedAt} ms after its agent was killed (timeout 3 s)\n`);
    const cond = notReady.status?.conditions?.find((c) => c.type === 'Ready');
    expect(cond).toMatchObject({ status: 'Unknown', reason: 'NodeAgentNotResponding' });
    // Marked for the heartbeats that stopped: it names the last one, the later of the node Lease's
    // last renewal and the status heartbeat.
    // (An agent killed before its first renewal has no Lease yet.)
    const renewed = env.kubectl([
      'get',
      'lease',
      'node-b',
      '-n',
      RELEASE_NAMESPACE,
      '--ignore-not-found',
      '-o',
      'jsonpath={.spec.renewTime}',
    ]);
    const beats = [renewed, notReady.status?.heartbeatTime ?? ''].map(Date.parse).filter(Number.isFinite);
    const last = Math.max(...beats);
    expect(cond?.message).toContain(`(last ${new Date(last).toISOString()}, timeout 3s)`);
    expect(env.nodeReady(await env.computeNode('node-a'))).toBe('True');

    env.startAgent({ name: 'node-b', vcpus: 16, memoryMiB: 32768, diskGiB: 400, zone: 'az1' });
    const back = await env.waitFor(
      'node-b Ready again',
      async () => {
        const n = await env.computeNode('node-b');
        return env.nodeReady(n) === 'True' ? n : undefined;
      },
      30_000,
    );
    expect(back.status?.capacity).toEqual(before?.status?.capacity);
    expect(back.status?.allocatable).toEqual(before?.status?.allocatable);
    expect(back.metadata.uid).toBe(before?.metadata.uid);
  });

  it('recomputes allocatable when an admin changes the allocation ratio or reserve', async () => {
    env.kubectl([
      'patch',
      'cn',
      'node-a',
      '--type',
      'merge',
      '-p',
      '{"spec":{"allocationRatio":{"cpu":2.0},"reserved":{"memoryMiB":1024}}}',
    ]);
    const a = await env.waitFor(
      'node-a allocatable recomputed',
      async () => {
        const n = await env.computeNode('node-a');
        return n?.status?.allocatable?.vcpus === 16 ? n : undefined;
      },
      15_000,
    );
    expect(a.status?.allocatable).toEqual({ vcpus: 16, memoryMiB: 15360, diskGiB: 200 });
  });
});
