import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Fault } from '../../common/api/faults.js';
import type { ObjectCache } from '../../common/kube/api.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { IPAllocator, type PortRef } from './allocator.js';
import { aNetwork } from './testing.js';

const log = pino({ level: 'silent' });
const port = (name: string, instanceUID = `uid-${name}`): PortRef => ({ namespace: 'default', name, instanceUID });

/** A cache that never sees anything: a replica whose watch lags behind every other writer. */
const blind: ObjectCache<'IPAllocation'> = { get: () => undefined, list: () => [] };

function world() {
  const cluster = new FakeCluster();
  const allocator = new IPAllocator(cluster.client(), cluster.cache('IPAllocation'), log);
  return { cluster, allocator };
}

const heldIps = (cluster: FakeCluster) => cluster.list('IPAllocation').map((a) => a.spec.ip);

describe('the IP allocator', () => {
  it('hands out the first free address after the gateway and holds it in an IPAllocation named <network>.<ip>', async () => {
    const { cluster, allocator } = world();
    const ip = await allocator.allocate(aNetwork('net1'), port('web-1-net1'));
    expect(ip).toBe('10.251.0.2');
    expect(cluster.get('IPAllocation', 'net1.10.251.0.2')?.spec).toEqual({
      network: 'net1',
      ip: '10.251.0.2',
      port: port('web-1-net1'),
    });
  });

  it('gives the same port the address it already holds (a boot resumed after a crash asks again)', async () => {
    const { cluster, allocator } = world();
    const net = aNetwork('net1');
    const first = await allocator.allocate(net, port('web-1-net1'));
    const again = await allocator.allocate(net, port('web-1-net1'));
    expect(again).toBe(first);
    expect(cluster.list('IPAllocation')).toHaveLength(1);
  });

  it('resuming a boot whose held address was released meanwhile (a stale cache still shows it) holds a new one', async () => {
    const cluster = new FakeCluster();
    const net = aNetwork('net1');
    const first = await new IPAllocator(cluster.client(), cluster.cache('IPAllocation'), log).allocate(net, port('a'));
    const stale = cluster.list('IPAllocation');
    await cluster.client().ipAllocations.delete({ name: `net1.${first}` });
    const lagging: ObjectCache<'IPAllocation'> = { get: () => undefined, list: () => stale };
    const again = await new IPAllocator(cluster.client(), lagging, log).allocate(net, port('a'));
    expect(again).not.toBe(first);
    expect(heldIps(cluster)).toEqual([again]);
  });

  it('does not reuse a released address at once: the next ones come first, round robin', async () => {
    const { allocator } = world();
    const net = aNetwork('net1', { cidr: '10.0.0.0/29', gateway: '10.0.0.1' });
    const a = await allocator.allocate(net, port('a'));
    await allocator.release('net1', a);
    const next = [];
    for (const p of ['b', 'c', 'd', 'e']) next.push(await allocator.allocate(net, port(p)));
    expect(next).toEqual(['10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    // Only when the range has come round is the released address handed out again.
    expect(await allocator.allocate(net, port('f'))).toBe(a);
  });

  it('after a restart continues after status.lastAllocated, not from the start of the range', async () => {
    const { cluster } = world();
    const restarted = new IPAllocator(cluster.client(), cluster.cache('IPAllocation'), log);
    const net = aNetwork('net1');
    net.status = { lastAllocated: '10.251.0.40' };
    expect(await restarted.allocate(net, port('x'))).toBe('10.251.0.41');
  });

  it('refuses with NetworkExhausted, naming the network and what to do, and holds nothing more', async () => {
    const { cluster, allocator } = world();
    const net = aNetwork('tiny', {
      cidr: '10.9.0.0/24',
      gateway: '10.9.0.1',
      allocationRange: { start: '10.9.0.10', end: '10.9.0.11' },
    });
    await allocator.allocate(net, port('a'));
    await allocator.allocate(net, port('b'));
    const err = await allocator.allocate(net, port('c')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Fault);
    expect(err).toMatchObject({ reason: 'NetworkExhausted' });
    expect((err as Fault).message).toMatch(/no free address left on Network tiny \(range 10\.9\.0\.10-10\.9\.0\.11\)/);
    expect(heldIps(cluster).sort()).toEqual(['10.9.0.10', '10.9.0.11']);
  });

  it('200 concurrent allocations on one network, in one process, never share an address', async () => {
    const { cluster, allocator } = world();
    const net = aNetwork('net1');
    const ips = await Promise.all(Array.from({ length: 200 }, (_, i) => allocator.allocate(net, port(`p${i}`))));
    expect(new Set(ips).size).toBe(200);
    expect(cluster.list('IPAllocation')).toHaveLength(200);
  });

  it('two replicas whose caches see nothing of each other still never share an address: the API server refuses the second holder', async () => {
    const cluster = new FakeCluster();
    const a = new IPAllocator(cluster.client(), blind, log);
    const b = new IPAllocator(cluster.client(), blind, log);
    const net = aNetwork('net1');
    const ips = await Promise.all(
      Array.from({ length: 120 }, (_, i) => (i % 2 ? a : b).allocate(net, port(`p${i}`, `uid-${i}`))),
    );
    expect(new Set(ips).size).toBe(120);
    const holders = cluster.list('IPAllocation').map((x) => x.spec.port.name);
    expect(new Set(holders).size).toBe(120);
  });

  it('a create that fails for another reason than a conflict is not taken for a taken address', async () => {
    const { cluster, allocator } = world();
    cluster.failNext('IPAllocation', 'create', Object.assign(new Error('etcd is down'), { code: 500 }));
    await expect(allocator.allocate(aNetwork('net1'), port('a'))).rejects.toThrow('etcd is down');
    expect(await allocator.allocate(aNetwork('net1'), port('a'))).toBe('10.251.0.2');
  });
});
