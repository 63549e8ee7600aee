// The boot's network steps, scenario by scenario, with the operator's controllers on the
// in-memory API server: ports made before a host is chosen, refused requests that hold
// nothing, and every address given back on failure and on delete.
import { describe, expect, it } from 'vitest';
import type { Instance, InstanceSpec } from '../../common/api/types.js';
import { anInstance, World } from '../testing.js';
import { aNetwork } from './testing.js';

async function world(opts: { nodes?: string[] } = {}) {
  const w = new World();
  w.seedFlavor('m1.small');
  for (const node of opts.nodes ?? ['node-a', 'node-b']) w.seedNode(node);
  return w;
}

function boot(w: World, name: string, spec: Partial<InstanceSpec> = {}): Promise<unknown> {
  w.seedInstance(anInstance(name, spec));
  return w.boot.reconcile(w.instance(name));
}

const ports = (w: World) => w.cluster.list('Port', 'default');
const held = (w: World) => w.cluster.list('IPAllocation').map((a) => a.metadata.name);
const faultOf = (i: Instance) => i.status?.fault;

describe('a boot on a network', () => {
  it('makes the Port (an IP from the CIDR, a fa:16:3e MAC) before a host is chosen and records it with the placement', async () => {
    const w = await world();
    w.cluster.seed(aNetwork('net1'));
    await boot(w, 'web-1', { networks: [{ network: 'net1' }] });

    const [port] = ports(w);
    expect(port?.metadata.name).toBe('web-1-net1');
    expect(port?.spec).toMatchObject({ network: 'net1', instance: 'web-1', fixedIP: '10.251.0.2' });
    expect(port?.spec.macAddress).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/);
    expect(port?.metadata.ownerReferences?.[0]).toMatchObject({
      kind: 'Instance',
      uid: w.instance('web-1').metadata.uid,
    });
    expect(held(w)).toEqual(['net1.10.251.0.2']);
    const s = w.instance('web-1').status;
    expect(s?.scheduling?.selectedHost).toBeTruthy();
    expect(s?.networks).toEqual([
      { network: 'net1', port: 'web-1-net1', ip: '10.251.0.2', mac: port?.spec.macAddress },
    ]);
    expect(w.messages('web-1', 'PortCreated')).toEqual([
      `port web-1-net1 on network net1: IP 10.251.0.2, MAC ${port?.spec.macAddress}`,
    ]);
  });

  it('asked again (a retry, or after a crash) finds its Port: no second port, no second address', async () => {
    const w = await world();
    w.cluster.seed(aNetwork('net1'));
    await boot(w, 'web-1', { networks: [{ network: 'net1' }] });
    await w.failClaim('Instance', 'web-1', 'no room');
    await w.boot.reconcile(w.instance('web-1'));

    expect(w.instance('web-1').status?.scheduling?.attempts).toBe(2);
    expect(ports(w)).toHaveLength(1);
    expect(held(w)).toEqual(['net1.10.251.0.2']);
  });

  it('two instances on one network get different addresses and MACs', async () => {
    const w = await world();
    w.cluster.seed(aNetwork('net1'));
    await boot(w, 'web-1', { networks: [{ network: 'net1' }] });
    await boot(w, 'web-2', { networks: [{ network: 'net1' }] });
    const [a, b] = ports(w).map((p) => p.spec);
    expect(a?.fixedIP).not.toBe(b?.fixedIP);
    expect(a?.macAddress).not.toBe(b?.macAddress);
  });
});

describe('the default network', () => {
  it('an instance without spec.networks attaches to the Network the admin marked default', async () => {
    const w = await world();
    w.cluster.seed(aNetwork('lan', { default: true }));
    await boot(w, 'web-1');
    expect(w.instance('web-1').status?.networks?.map((n) => n.network)).toEqual(['lan']);
  });

  it('spec.networks: [] means no network, even with a default; and without a default, none is attached', async () => {
    const w = await world();
    await boot(w, 'plain');
    w.cluster.seed(aNetwork('lan', { default: true }));
    await boot(w, 'isolated', { networks: [] });
    expect(ports(w)).toEqual([]);
    expect(w.instance('plain').status?.networks).toBeUndefined();
    expect(w.instance('isolated').status?.scheduling?.selectedHost).toBeTruthy();
  });
});

describe('a bad request is refused with a clear message and nothing held', () => {
  it('an unknown network: error, a NetworkNotFound fault naming it and what to do; no port, no address, no quota', async () => {
    const w = await world();
    w.seedQuota({ instances: 5 });
    await boot(w, 'web-1', { networks: [{ network: 'nope' }] });

    const inst = w.instance('web-1');
    expect(inst.status).toMatchObject({ vmState: 'error', taskState: '' });
    expect(faultOf(inst)?.reason).toBe('NetworkNotFound');
    expect(faultOf(inst)?.message).toMatch(/network nope does not exist \(kubectl get networks lists those that do\)/);
    expect(w.messages('web-1', 'NetworkNotFound')).toHaveLength(1);
    expect(ports(w)).toEqual([]);
    expect(held(w)).toEqual([]);
    expect(w.allocations()).toEqual([]);
  });

  it('a network overlapping an older one: NetworkInvalid naming the other network', async () => {
    const w = await world();
    w.cluster.seed(aNetwork('first', { cidr: '10.0.0.0/16', gateway: '10.0.0.1' }, '2026-01-01T00:00:00Z'));
    w.cluster.seed(aNetwork('second', { cidr: '10.0.5.0/24', gateway: '10.0.5.1' }, '2026-01-02T00:00:00Z'));
    await boot(w, 'web-1', { networks: [{ network: 'second' }] });

    expect(faultOf(w.instance('web-1'))).toMatchObject({ reason: 'NetworkInvalid' });
    expect(faultOf(w.instance('web-1'))?.message).toMatch(/overlaps Network first \(10\.0\.0\.0\/16\)/);
    expect(held(w)).toEqual([]);
  });

  it('an exhausted range: NetworkExhausted; the port already made on another network is given back too', async () => {
    const w = await world();
    w.seedQuota({ instances: 5 });
    w.cluster.seed(aNetwork('roomy', { cidr: '10.1.0.0/24', gateway: '10.1.0.1' }));
    const range = { start: '10.2.0.10', end: '10.2.0.10' };
    w.cluster.seed(aNetwork('full', { cidr: '10.2.0.0/24', gateway: '10.2.0.1', allocationRange: range }));
    await boot(w, 'first', { networks: [{ network: 'full' }] });
    await boot(w, 'web-1', { networks: [{ network: 'roomy' }, { network: 'full' }] });

    const inst = w.instance('web-1');
    expect(faultOf(inst)?.reason).toBe('NetworkExhausted');
    expect(faultOf(inst)?.message).toMatch(/no free address left on Network full \(range 10\.2\.0\.10-10\.2\.0\.10\)/);
    expect(inst.status?.networks).toBeUndefined();
    expect(ports(w).map((p) => p.metadata.name)).toEqual(['first-full']);
    expect(held(w)).toEqual(['full.10.2.0.10']);
    expect(w.allocations().map((a) => a.instance)).toEqual(['first']);
  });

  it('over the port quota: QuotaExceeded naming ports; no port made', async () => {
    const w = await world();
    w.seedQuota({ ports: 1 });
    w.cluster.seed(aNetwork('a', { cidr: '10.3.0.0/24', gateway: '10.3.0.1' }));
    w.cluster.seed(aNetwork('b', { cidr: '10.4.0.0/24', gateway: '10.4.0.1' }));
    await boot(w, 'web-1', { networks: [{ network: 'a' }, { network: 'b' }] });

    expect(faultOf(w.instance('web-1'))).toMatchObject({ reason: 'QuotaExceeded' });
    expect(faultOf(w.instance('web-1'))?.message).toMatch(/ports: used 0 \+ requested 2 > limit 1/);
    expect(ports(w)).toEqual([]);
    expect(held(w)).toEqual([]);
  });

  it('the port quota counts one per network and is held with the boot', async () => {
    const w = await world();
    w.seedQuota({ ports: 2 });
    w.cluster.seed(aNetwork('a', { cidr: '10.3.0.0/24', gateway: '10.3.0.1' }));
    await boot(w, 'web-1', { networks: [{ network: 'a' }] });
    expect(w.allocations()).toEqual([expect.objectContaining({ instance: 'web-1', state: 'reserved', ports: 1 })]);
  });
});

describe('ports are given back', () => {
  it('when the boot ends in error after its ports were made (no valid host): ports deleted, addresses released', async () => {
    const w = await world({ nodes: ['node-a'] });
    w.cluster.seed(aNetwork('net1'));
    await boot(w, 'web-1', { networks: [{ network: 'net1' }] });
    await w.failClaim('Instance', 'web-1', 'no room');
    await w.boot.reconcile(w.instance('web-1'));

    const inst = w.instance('web-1');
    expect(inst.status?.vmState).toBe('error');
    expect(inst.status?.networks).toBeUndefined();
    expect(ports(w)).toEqual([]);
    expect(held(w)).toEqual([]);
    expect(w.messages('web-1', 'PortsReleased')).toEqual(['1 port deleted and its address released']);
  });

  it('a boot in error that still holds ports (a crash before they were released) has them released by the instance controller', async () => {
    const w = await world();
    w.cluster.seed(aNetwork('net1'));
    await boot(w, 'web-1', { networks: [{ network: 'net1' }] });
    await w.kube.instances.patchStatus(w.instance('web-1'), { vmState: 'error', taskState: '' });

    await w.reconcileInstance('web-1');

    expect(ports(w)).toEqual([]);
    expect(held(w)).toEqual([]);
    expect(w.instance('web-1').status?.networks).toBeUndefined();
  });

  it('an instance that ran and later ended in error keeps its ports', async () => {
    const w = await world();
    w.cluster.seed(aNetwork('net1'));
    await boot(w, 'web-1', { networks: [{ network: 'net1' }] });
    const launchedAt = new Date().toISOString();
    await w.kube.instances.patchStatus(w.instance('web-1'), { vmState: 'error', taskState: '', launchedAt });

    await w.reconcileInstance('web-1');

    expect(ports(w)).toHaveLength(1);
    expect(held(w)).toEqual(['net1.10.251.0.2']);
  });

  it('on delete: the finalizer goes only after the ports are deleted and their addresses released', async () => {
    const w = await world();
    w.cluster.seed(aNetwork('net1'));
    await boot(w, 'web-1', { networks: [{ network: 'net1' }] });
    const writes = w.cluster.writes.length;
    await w.kube.instances.delete({ namespace: 'default', name: 'web-1' });
    await w.reconcileInstance('web-1'); // taskState deleting
    await w.reconcileInstance('web-1');

    expect(w.cluster.get('Instance', 'web-1', 'default')).toBeUndefined();
    expect(ports(w)).toEqual([]);
    expect(held(w)).toEqual([]);
    const order = w.writesSince(writes).filter((x) => !x.startsWith('patchStatus'));
    expect(order.slice(-3)).toEqual([
      'delete Port/web-1-net1',
      'delete IPAllocation/net1.10.251.0.2',
      'patch Instance/web-1',
    ]);
  });

  it('a released address is not handed to the next instance at once', async () => {
    const w = await world();
    w.cluster.seed(aNetwork('net1'));
    await boot(w, 'web-1', { networks: [{ network: 'net1' }] });
    await w.kube.instances.delete({ namespace: 'default', name: 'web-1' });
    await w.reconcileInstance('web-1');
    await w.reconcileInstance('web-1');
    await boot(w, 'web-2', { networks: [{ network: 'net1' }] });
    expect(ports(w).map((p) => p.spec.fixedIP)).toEqual(['10.251.0.3']);
  });
});
