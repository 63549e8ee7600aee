import { describe, expect, it } from 'vitest';
import type { Instance } from '../api/types.js';
import { isConflict, isNotFound } from './client.js';
import { FakeCluster, mergePatch } from './fake.js';

const instance = (name: string): Instance => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Instance',
  metadata: { name, namespace: 'default' },
  spec: { flavor: 'm1.small', image: 'cirros' },
});

describe('the in-memory API server for unit tests', () => {
  it('merge-patches as RFC 7386 says: objects merge, null deletes, arrays replace', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, e: [1, 2] }, { b: { c: null, f: 4 }, e: [3] })).toEqual({
      a: 1,
      b: { d: 3, f: 4 },
      e: [3],
    });
  });

  it('refuses a status write computed from an old resourceVersion with a 409, as the API server does', async () => {
    const cluster = new FakeCluster();
    const kube = cluster.client();
    const created = await kube.instances.create(instance('web-1'));
    await kube.instances.patchStatus(created, { vmState: 'building' });
    const err = await kube.instances.patchStatus(created, { vmState: 'active' }).catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);
    expect(cluster.get('Instance', 'web-1', 'default')?.status?.vmState).toBe('building');
  });

  it('bumps the generation on a spec change only, and keeps status out of a main-resource patch', async () => {
    const cluster = new FakeCluster();
    const kube = cluster.client();
    await kube.instances.create(instance('web-1'));
    await kube.instances.patch({ name: 'web-1', namespace: 'default' }, { metadata: { labels: { a: 'b' } } });
    expect(cluster.get('Instance', 'web-1')?.metadata.generation).toBe(1);
    await kube.instances.patch({ name: 'web-1' }, { spec: { flavor: 'm1.large' }, status: { vmState: 'error' } });
    const after = cluster.get('Instance', 'web-1');
    expect(after?.metadata.generation).toBe(2);
    expect(after?.status).toBeUndefined();
  });

  it('holds a deleted object with finalizers until the last one is removed', async () => {
    const cluster = new FakeCluster();
    const kube = cluster.client();
    await kube.instances.create({
      ...instance('web-1'),
      metadata: { name: 'web-1', namespace: 'default', finalizers: ['x'] },
    });
    await kube.instances.delete({ name: 'web-1', namespace: 'default' });
    expect(cluster.get('Instance', 'web-1')?.metadata.deletionTimestamp).toBeDefined();
    await kube.instances.patch({ name: 'web-1', namespace: 'default' }, { metadata: { finalizers: [] } });
    expect(cluster.get('Instance', 'web-1')).toBeUndefined();
    expect(isNotFound(await kube.instances.patchStatus(instance('web-1'), {}).catch((e: unknown) => e))).toBe(true);
  });

  it("tells a cache's watchers of every write, and fails the write a test asks it to", async () => {
    const cluster = new FakeCluster();
    const seen: string[] = [];
    cluster.cache('Instance').on('update', (i) => seen.push(i.status?.vmState ?? ''));
    const kube = cluster.client();
    const created = await kube.instances.create(instance('web-1'));
    cluster.failNext('Instance', 'patchStatus');
    expect(isConflict(await kube.instances.patchStatus(created, { vmState: 'active' }).catch((e: unknown) => e))).toBe(
      true,
    );
    await kube.instances.patchStatus(created, { vmState: 'active' });
    expect(seen).toEqual(['active']);
    expect(cluster.writes.map((w) => w.verb)).toEqual(['create', 'patchStatus', 'patchStatus']);
  });
});
