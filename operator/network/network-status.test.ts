import { describe, expect, it } from 'vitest';
import { anInstance, World } from '../testing.js';
import { aNetwork } from './testing.js';

const statusOf = (w: World, name: string) => w.cluster.get('Network', name)?.status;
const ready = (w: World, name: string) => statusOf(w, name)?.conditions?.find((c) => c.type === 'Ready');

describe('Network status', () => {
  it('a valid network is Ready, with the size of its range and what is held and free', async () => {
    const w = new World();
    w.seedFlavor('m1.small');
    w.seedNode('node-a');
    w.cluster.seed(aNetwork('net1'));
    w.seedInstance(anInstance('web-1', { networks: [{ network: 'net1' }] }));
    await w.boot.reconcile(w.instance('web-1'));

    await w.networkStatus.reconcile('net1');

    expect(ready(w, 'net1')).toMatchObject({ status: 'True', reason: 'Valid' });
    expect(statusOf(w, 'net1')).toMatchObject({ size: 253, allocated: 1, free: 252, lastAllocated: '10.251.0.2' });
  });

  it('the later of two overlapping networks is not Ready: OverlappingCIDR naming the other, and a Warning Event', async () => {
    const w = new World();
    w.cluster.seed(aNetwork('first', { cidr: '10.0.0.0/16', gateway: '10.0.0.1' }, '2026-01-01T00:00:00Z'));
    w.cluster.seed(aNetwork('second', { cidr: '10.0.5.0/24', gateway: '10.0.5.1' }, '2026-01-02T00:00:00Z'));

    await w.networkStatus.reconcile('first');
    await w.networkStatus.reconcile('second');
    await w.networkStatus.reconcile('second');

    expect(ready(w, 'first')?.status).toBe('True');
    expect(ready(w, 'second')).toMatchObject({ status: 'False', reason: 'OverlappingCIDR' });
    expect(ready(w, 'second')?.message).toMatch(/overlaps Network first/);
    expect(w.messages('second', 'NetworkInvalid')).toHaveLength(1);
  });

  it('writes nothing when nothing changed', async () => {
    const w = new World();
    w.cluster.seed(aNetwork('net1'));
    await w.networkStatus.reconcile('net1');
    const writes = w.cluster.writes.length;
    await w.networkStatus.reconcile('net1');
    expect(w.cluster.writes.length).toBe(writes);
  });

  it('a Network in use is held by a finalizer when deleted, says how many addresses wait, and goes once its ports are gone', async () => {
    const w = new World();
    w.seedFlavor('m1.small');
    w.seedNode('node-a');
    w.cluster.seed(aNetwork('net1'));
    await w.networkStatus.reconcile('net1');
    expect(w.cluster.get('Network', 'net1')?.metadata.finalizers).toEqual(['compute.kubenova.io/network-in-use']);
    w.seedInstance(anInstance('web-1', { networks: [{ network: 'net1' }] }));
    await w.boot.reconcile(w.instance('web-1'));

    await w.kube.networks.delete({ name: 'net1' });
    await w.networkStatus.reconcile('net1');
    expect(ready(w, 'net1')).toMatchObject({ status: 'False', reason: 'InUse' });
    expect(ready(w, 'net1')?.message).toMatch(/1 address is still held by ports/);
    expect(w.messages('net1', 'NetworkInUse')).toHaveLength(1);
    // No new instance attaches to it meanwhile.
    w.seedInstance(anInstance('web-2', { networks: [{ network: 'net1' }] }));
    await w.boot.reconcile(w.instance('web-2'));
    expect(w.instance('web-2').status?.fault?.reason).toBe('NetworkNotFound');

    await w.kube.instances.delete({ namespace: 'default', name: 'web-1' });
    await w.reconcileInstance('web-1');
    await w.reconcileInstance('web-1');
    await w.networkStatus.reconcile('net1');
    expect(w.cluster.get('Network', 'net1')).toBeUndefined();
  });
});
