import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { FAIL_ANNOTATION } from '../common/api/fault-injection.js';
import { API_VERSION } from '../common/api/types.js';
import { Kube } from '../common/kube/client.js';
import { ListedSource } from '../common/kube/merged-cache.js';
import { AgentProcess, agentLogger, createDriver, FAKE_CAPACITY, hostAgentOptions } from './assemble.js';
import { parseAgentConfig } from './config.js';
import { DriverError } from './driver/driver.js';
import { LibvirtDriver } from './driver/libvirt.js';

describe('createDriver capacity', () => {
  it('gives the fake driver its configured capacity, FAKE_CAPACITY for what is not given', async () => {
    const all = createDriver(parseAgentConfig(['--state-dir=/nonexistent'], {}), 'node-a', {});
    expect(await all.capacity()).toEqual(FAKE_CAPACITY);
    const some = createDriver(
      parseAgentConfig(['--state-dir=/nonexistent', '--capacity-vcpus=3'], { KUBENOVA_CAPACITY_DISK_GIB: '7' }),
      'node-a',
      {},
    );
    expect(await some.capacity()).toEqual({ vcpus: 3, memoryMiB: FAKE_CAPACITY.memoryMiB, diskGiB: 7 });
  });

  it('gives the libvirt driver only the capacity flags given, as overrides of what it measures', async () => {
    const config = parseAgentConfig(['--driver=libvirt', '--state-dir=/nonexistent'], {
      KUBENOVA_CAPACITY_VCPUS: '2',
      KUBENOVA_CAPACITY_MEMORY_MIB: '1024',
      KUBENOVA_CAPACITY_DISK_GIB: '5',
    });
    const driver = createDriver(config, 'node-a', {});
    expect(driver).toBeInstanceOf(LibvirtDriver);
    // All three given: nothing is measured, so this holds on any machine.
    expect(await driver.capacity()).toEqual({ vcpus: 2, memoryMiB: 1024, diskGiB: 5 });
    const measured = await createDriver(
      parseAgentConfig(['--driver=libvirt', '--state-dir=/nonexistent', '--capacity-vcpus=2'], {}),
      'node-a',
      {},
    ).capacity();
    expect(measured.vcpus).toBe(2);
    expect(measured.memoryMiB).toBeGreaterThan(0);
    expect(measured.diskGiB).toBeGreaterThan(0);
  });
});

describe('AgentProcess fault injection', () => {
  it("makes each fake driver fail the steps an Instance's fake.kubenova.io/fail names for its host", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'kubenova-assemble-'));
    try {
      const config = parseAgentConfig([`--state-dir=${stateDir}`, '--log-level=silent'], {});
      const kc = new KubeConfig();
      // Never contacted: the watches are not started, the views are fed by hand.
      kc.loadFromOptions({
        clusters: [{ name: 'none', server: 'https://127.0.0.1:1' }],
        users: [{ name: 'none' }],
        contexts: [{ name: 'none', cluster: 'none', user: 'none' }],
        currentContext: 'none',
      });
      const kube = new Kube(kc, 'test');
      const log = agentLogger(config);
      const agents = new AgentProcess(log);
      const a = createDriver(config, 'node-a', {});
      const b = createDriver(config, 'node-b', {});
      const hostA = agents.addHost(kube, a, hostAgentOptions(config, 'node-a', {}), log);
      const hostB = agents.addHost(kube, b, hostAgentOptions(config, 'node-b', {}), log);
      // Both hosts' views hold the instance (as if it were migrating between them).
      const seen = new ListedSource<'Instance'>();
      agents.watchesOf(hostA)?.instances.add(seen);
      agents.watchesOf(hostB)?.instances.add(seen);
      seen.put({
        apiVersion: API_VERSION,
        kind: 'Instance',
        metadata: {
          name: 'web-1',
          namespace: 'default',
          uid: 'u1',
          annotations: { [FAIL_ANNOTATION]: 'spawn@node-a' },
        },
        spec: { flavor: 'm1.small', image: 'cirros' },
      });
      const flavor = { name: 'm1.small', vcpus: 1, memoryMiB: 512, rootDiskGiB: 1, ephemeralDiskGiB: 0 };
      const spec = { uid: 'u1', name: 'default/web-1', flavor, image: 'cirros' };
      await expect(a.spawn(spec)).rejects.toThrow(DriverError);
      await expect(a.spawn(spec)).rejects.toThrow(/fake\.kubenova\.io\/fail/);
      expect((await b.spawn(spec)).powerState).toBe('running');
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
