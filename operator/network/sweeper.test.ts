import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { API_VERSION, type IPAllocation } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { AllocationSweeper } from './sweeper.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function held(ip: string, port: string, instanceUID: string, createdAt = T0): IPAllocation {
  return {
    apiVersion: API_VERSION,
    kind: 'IPAllocation',
    metadata: { name: `net1.${ip}`, creationTimestamp: new Date(createdAt) },
    spec: { network: 'net1', ip, port: { namespace: 'default', name: port, instanceUID } },
  };
}

function world(now = T0 + 120_000) {
  const cluster = new FakeCluster();
  const sweeper = new AllocationSweeper(
    cluster.client(),
    cluster.cache('IPAllocation'),
    cluster.cache('Port'),
    cluster.cache('Instance'),
    pino({ level: 'silent' }),
    60_000,
    () => now,
  );
  const names = () => cluster.list('IPAllocation').map((a) => a.metadata.name);
  return { cluster, sweeper, names };
}

describe('the address sweeper', () => {
  it('releases an address whose Port is gone and whose instance is unknown, once past the grace period', async () => {
    const { cluster, sweeper, names } = world();
    cluster.seed(held('10.251.0.2', 'gone-net1', 'uid-gone'));
    expect(await sweeper.pass()).toBe(1);
    expect(names()).toEqual([]);
  });

  it('keeps an address its Port carries', async () => {
    const { cluster, sweeper, names } = world();
    cluster.seed(held('10.251.0.2', 'web-net1', 'uid-web'));
    cluster.seed({
      apiVersion: API_VERSION,
      kind: 'Port',
      metadata: { name: 'web-net1', namespace: 'default' },
      spec: { network: 'net1', instance: 'web', macAddress: 'fa:16:3e:00:00:01', fixedIP: '10.251.0.2' },
    });
    expect(await sweeper.pass()).toBe(0);
    expect(names()).toEqual(['net1.10.251.0.2']);
  });

  it('keeps a young address (a boot about to make its Port) and one of an instance this operator knows', async () => {
    const { cluster, sweeper, names } = world();
    cluster.seed(held('10.251.0.3', 'new-net1', 'uid-new', T0 + 100_000));
    const inst = cluster.seed({
      apiVersion: API_VERSION,
      kind: 'Instance',
      metadata: { name: 'booting', namespace: 'default' },
      spec: { flavor: 'm1.small', image: 'cirros' },
    });
    cluster.seed(held('10.251.0.4', 'booting-net1', inst.metadata.uid ?? ''));
    expect(await sweeper.pass()).toBe(0);
    expect(names().sort()).toEqual(['net1.10.251.0.3', 'net1.10.251.0.4']);
  });
});
