import { describe, expect, it } from 'vitest';
import { FAIL_ANNOTATION } from '../../common/api/fault-injection.js';
import { API_VERSION, type Instance } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import type { Logger } from '../../common/log.js';
import { InjectedFailures } from './injected-failures.js';

function setup() {
  const cluster = new FakeCluster();
  const warnings: string[] = [];
  const log = { warn: (_fields: object, message: string) => warnings.push(message) } as unknown as Logger;
  const index = new InjectedFailures(log);
  index.watch(cluster.cache('Instance'));
  const kube = cluster.client();
  const seed = (name: string, annotation?: string): Instance =>
    cluster.seed<'Instance'>({
      apiVersion: API_VERSION,
      kind: 'Instance',
      metadata: {
        name,
        namespace: 'default',
        ...(annotation === undefined ? {} : { annotations: { [FAIL_ANNOTATION]: annotation } }),
      },
      spec: { flavor: 'm1.small', image: 'cirros' },
    });
  const annotate = (name: string, value: string | null) =>
    kube.instances.patch({ namespace: 'default', name }, { metadata: { annotations: { [FAIL_ANNOTATION]: value } } });
  return { index, seed, annotate, kube, warnings };
}

const steps = (set: ReadonlySet<string>) => [...set].sort();

describe('InjectedFailures', () => {
  it("knows an annotated instance's failing steps by uid, on every host or only the named one", () => {
    const { index, seed } = setup();
    const uid = seed('web-1', 'spawn@node-a,power-on').metadata.uid!;
    expect(steps(index.stepsFor(uid, 'node-a'))).toEqual(['power-on', 'spawn']);
    expect(steps(index.stepsFor(uid, 'node-b'))).toEqual(['power-on']);
  });

  it('keeps only annotated instances: one without the annotation fails nothing and takes no room', () => {
    const { index, seed } = setup();
    const uid = seed('web-1').metadata.uid!;
    expect(index.stepsFor(uid, 'node-a').size).toBe(0);
    expect(index.size).toBe(0);
  });

  it('follows the annotation as it changes and when it is removed, so the next call sees it', async () => {
    const { index, seed, annotate } = setup();
    const uid = seed('web-1').metadata.uid!;
    await annotate('web-1', 'migrate-out');
    expect(steps(index.stepsFor(uid, 'node-a'))).toEqual(['migrate-out']);
    await annotate('web-1', 'revert,finish-migration');
    expect(steps(index.stepsFor(uid, 'node-a'))).toEqual(['finish-migration', 'revert']);
    await annotate('web-1', null);
    expect(index.stepsFor(uid, 'node-a').size).toBe(0);
    expect(index.size).toBe(0);
  });

  it('forgets a deleted instance', async () => {
    const { index, seed, kube } = setup();
    const uid = seed('web-1', 'spawn').metadata.uid!;
    await kube.instances.delete({ namespace: 'default', name: 'web-1' });
    expect(index.stepsFor(uid, 'node-a').size).toBe(0);
    expect(index.size).toBe(0);
  });

  it('ignores unknown step names and says so once per annotation value, not on every update', async () => {
    const { index, seed, annotate, kube, warnings } = setup();
    const uid = seed('web-1', 'spwan,power-on').metadata.uid!;
    expect(steps(index.stepsFor(uid, 'node-a'))).toEqual(['power-on']);
    await kube.instances.patch({ namespace: 'default', name: 'web-1' }, { metadata: { labels: { touched: 'yes' } } });
    expect(warnings).toEqual([`${FAIL_ANNOTATION}: ignoring entries that name no known step (spwan)`]);
    await annotate('web-1', 'explode');
    expect(index.stepsFor(uid, 'node-a').size).toBe(0);
    expect(warnings).toHaveLength(2);
    expect(warnings[1]).toContain('(explode)');
  });
});
