// The data plane through the agent's flows, on the fake driver: the instance's ports are
// plugged into the host's bridge before its guest starts (boot), on the destination before the
// guest starts there (resize: setup_networks_on_host, plug_vifs) and on the source again for a
// revert, always with the Port's MAC and address; the guest reports the address as
// status.guest.ips; the audit removes a bridge once no domain on the host uses it.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { API_VERSION, type Instance, type InstanceStatus } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { decide, MEDIUM, SMALL, TestHosts, scheduledTo, seedInstance, type TestHost } from '../testing.js';
import { crossHostToFinished, MIG, MIG_KEY, resizeStarted } from '../migration/testing.js';
import { bridgeName } from './names.js';
import { pruneUnusedBridges } from './network-audit.js';

const PORT = { network: 'net-a', port: 'web-1-net-a', ip: '10.251.0.5', mac: '52:54:00:0a:00:05' };
const BR = bridgeName('net-a');

let cluster: FakeCluster;
let hosts: TestHosts;
let a: TestHost;
let b: TestHost;

beforeEach(async () => {
  cluster = new FakeCluster();
  hosts = new TestHosts(cluster);
  a = await hosts.add('host-a');
  b = await hosts.add('host-b');
  cluster.seed<'Network'>({
    apiVersion: API_VERSION,
    kind: 'Network',
    metadata: { name: 'net-a' },
    spec: { cidr: '10.251.0.0/24', gateway: '10.251.0.1', mtu: 1450 },
  });
});
afterEach(() => hosts.cleanup());

const inst = (): Instance => cluster.get('Instance', 'web-1')!;

/** Boots web-1 on host-a with its port written by the operator, as the boot flow leaves it. */
async function bootWithPort(): Promise<Instance> {
  const status: InstanceStatus = { ...scheduledTo('host-a', SMALL), networks: [PORT] };
  seedInstance(cluster, 'web-1', status, { networks: [{ network: 'net-a' }] });
  await a.worker.reconcile('default/web-1');
  return inst();
}

const nicOfPort = {
  port: 'web-1-net-a',
  network: 'net-a',
  mac: '52:54:00:0a:00:05',
  ip: '10.251.0.5',
  prefixLength: 24,
  gateway: '10.251.0.1',
  mtu: 1450,
  bridge: BR,
};

describe('an instance on a network, through boot, resize and revert', () => {
  it("boots with its port plugged into the host's bridge first, and reports the address from inside", async () => {
    const booted = await bootWithPort();
    expect(booted.status?.vmState).toBe('active');
    expect(a.network.plugs).toEqual([[nicOfPort]]);
    expect(a.network.bridges).toEqual(new Map([[BR, 1450]]));
    expect((await a.driver.get(booted.metadata.uid!))?.nics).toEqual([nicOfPort]);
    expect(booted.status?.guest?.ips).toEqual(['10.251.0.5']);
  });

  it('waits, starting nothing, for a Network the host cannot read yet', async () => {
    const port = { ...PORT, network: 'net-x', port: 'web-1-net-x' };
    seedInstance(cluster, 'web-1', { ...scheduledTo('host-a', SMALL), networks: [port] });
    await expect(a.worker.reconcile('default/web-1')).rejects.toThrow(
      'network net-x of port web-1-net-x is not known on this host (yet)',
    );
    expect(a.network.plugs).toEqual([]);
    expect(await a.driver.list()).toEqual([]);
  });

  it('lands on the destination with the same MAC and address, plugged there before its guest starts', async () => {
    await bootWithPort();
    const r = await resizeStarted(cluster, a, b, MEDIUM);
    await crossHostToFinished(cluster, a, b, r);
    expect(inst().status).toMatchObject({ vmState: 'resized', host: 'host-b' });
    expect(b.network.plugs).toEqual([[nicOfPort]]);
    expect((await b.driver.get(r.uid))?.nics).toEqual([nicOfPort]);
    expect(inst().status?.guest?.ips).toEqual(['10.251.0.5']);
    // The source keeps its stopped original, and so its bridge, for a revert.
    expect(await pruneUnusedBridges(a.driver, a.network)).toEqual([]);
  });

  it('after a revert answers again from its first host, plugged there again', async () => {
    await bootWithPort();
    const r = await resizeStarted(cluster, a, b, MEDIUM);
    await crossHostToFinished(cluster, a, b, r);
    await decide(cluster, MIG, 'Revert');
    await b.destination.reconcile(MIG_KEY);
    await a.source.reconcile(MIG_KEY);
    expect(cluster.get('Migration', MIG)?.status?.status).toBe('reverted');
    expect(inst().status).toMatchObject({ vmState: 'active', host: 'host-a', guest: { ips: ['10.251.0.5'] } });
    expect(a.network.plugs).toEqual([[nicOfPort], [nicOfPort]]);
    expect((await a.driver.get(r.uid))?.nics).toEqual([nicOfPort]);
    // The destination's copy is gone, and with it the last user of its bridge.
    expect(await pruneUnusedBridges(b.driver, b.network)).toEqual([BR]);
    expect(await pruneUnusedBridges(a.driver, a.network)).toEqual([]);
  });

  it('boots an instance without networks with no NIC and plugs nothing', async () => {
    seedInstance(cluster, 'web-1', { ...scheduledTo('host-a', SMALL), networks: [] }, { networks: [] });
    await a.worker.reconcile('default/web-1');
    expect((await a.driver.get(inst().metadata.uid!))?.nics).toEqual([]);
    expect(a.network.bridges.size).toBe(0);
    expect(inst().status?.guest).not.toHaveProperty('ips');
  });
});
