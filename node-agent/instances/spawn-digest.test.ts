import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeCluster } from '../../common/kube/fake.js';
import { silentLog } from '../testing.js';
import { SpawnDigest } from './spawn-digest.js';

describe('the spawn digest', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('reports the boots of one period in one Event on the ComputeNode, naming ten and counting the rest', async () => {
    const cluster = new FakeCluster();
    const digest = new SpawnDigest(cluster.recorder(silentLog, 'kubenova-node-agent'), 'host-a', 10_000);
    for (let i = 1; i <= 12; i++) digest.add(`default/web-${i}`);
    expect(cluster.eventsFor('host-a')).toEqual([]);

    await vi.advanceTimersByTimeAsync(10_000);

    expect(cluster.eventsFor('host-a')).toEqual(['Spawned']);
    const message = cluster.events.find((e) => e.involvedObject.name === 'host-a')?.message ?? '';
    expect(message).toMatch(
      /^12 instance\(s\) spawned and running on host-a: default\/web-1, .*default\/web-10 and 2 more$/,
    );
  });

  it('writes nothing in a period without boots, and says what is pending when flushed at shutdown', async () => {
    const cluster = new FakeCluster();
    const digest = new SpawnDigest(cluster.recorder(silentLog, 'kubenova-node-agent'), 'host-a', 10_000);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(cluster.events).toEqual([]);

    digest.add('default/web-1');
    digest.flush();
    await vi.advanceTimersByTimeAsync(0);

    expect(cluster.eventsFor('host-a')).toEqual(['Spawned']);
  });
});
