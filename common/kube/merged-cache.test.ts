import { describe, expect, it } from 'vitest';
import { API_VERSION } from '../api/schema.js';
import type { Instance } from '../api/types.js';
import { ListedSource, MergedCache, olderVersion } from './merged-cache.js';

const inst = (resourceVersion: string, host: string, uid = 'u1'): Instance => ({
  apiVersion: API_VERSION,
  kind: 'Instance',
  metadata: { name: 'web-1', namespace: 'default', uid, resourceVersion },
  spec: { flavor: 'm1.small', image: 'cirros' },
  status: { host },
});

function merged() {
  const byHost = new ListedSource<'Instance'>();
  const bySelection = new ListedSource<'Instance'>();
  const cache = new MergedCache<'Instance'>();
  cache.add(byHost);
  cache.add(bySelection);
  const events: string[] = [];
  cache.on('add', (i) => events.push(`add ${i.metadata.resourceVersion}`));
  cache.on('update', (i) => events.push(`update ${i.metadata.resourceVersion}`));
  cache.on('delete', (i) => events.push(`delete ${i.metadata.resourceVersion}`));
  return { byHost, bySelection, cache, events };
}

describe('MergedCache: one view through several field-selected watches', () => {
  it('an object leaving one watch while another still holds it is not deleted from the view', () => {
    const { byHost, bySelection, cache, events } = merged();
    bySelection.put(inst('10', ''));
    byHost.put(inst('11', 'node-a'));
    bySelection.remove(inst('11', 'node-a'));
    expect(cache.get('web-1', 'default')?.metadata.resourceVersion).toBe('11');
    expect(events).toEqual(['add 10', 'update 11']);
  });

  it('an object that left every watch leaves the view once, with the newest copy seen', () => {
    const { byHost, bySelection, cache, events } = merged();
    byHost.put(inst('11', 'node-a'));
    bySelection.put(inst('11', 'node-a'));
    byHost.remove(inst('12', 'node-b'));
    bySelection.remove(inst('12', 'node-b'));
    expect(cache.get('web-1', 'default')).toBeUndefined();
    expect(cache.list()).toEqual([]);
    expect(events).toEqual(['add 11', 'delete 11']);
  });

  it('a watch that lags behind another never shows an older copy', () => {
    const { byHost, bySelection, cache, events } = merged();
    byHost.put(inst('12', 'node-a'));
    bySelection.put(inst('10', ''));
    bySelection.put(inst('12', 'node-a'));
    expect(cache.get('web-1', 'default')?.metadata.resourceVersion).toBe('12');
    expect(events).toEqual(['add 12']);
  });

  it('removing a source drops what only it held; a source added later brings what it holds', () => {
    const { cache, events } = merged();
    const followed = new ListedSource<'Instance'>();
    followed.put(inst('20', 'node-b'));
    cache.add(followed);
    expect(cache.get('web-1', 'default')?.status?.host).toBe('node-b');
    cache.remove(followed);
    followed.put(inst('21', 'node-b'));
    expect(cache.get('web-1', 'default')).toBeUndefined();
    expect(events).toEqual(['add 20', 'delete 20']);
  });

  it("reads this process's own write through the source that holds the object, before its watch event arrives", () => {
    // An informer's get() answers its own writes at once (own-writes.ts); its events come later.
    const written = new Map<string, Instance>();
    class Informer extends ListedSource<'Instance'> {
      override get(name: string, namespace?: string) {
        return written.get(name) ?? super.get(name, namespace);
      }
    }
    const bySelection = new Informer();
    const cache = new MergedCache<'Instance'>();
    cache.add(bySelection);
    bySelection.put(inst('10', ''));
    written.set('web-1', inst('12', 'node-a'));
    expect(cache.get('web-1', 'default')?.metadata.resourceVersion).toBe('12');
    expect(cache.list().map((i) => i.metadata.resourceVersion)).toEqual(['12']);
    // Never an older one, and never another object's under the same name.
    written.set('web-1', inst('9', ''));
    expect(cache.get('web-1', 'default')?.metadata.resourceVersion).toBe('10');
    written.set('web-1', inst('13', 'node-a', 'u2'));
    expect(cache.get('web-1', 'default')?.metadata.uid).toBe('u1');
  });

  it('a recreated object (new uid) replaces the old one under its name', () => {
    const { byHost, cache } = merged();
    byHost.put(inst('5', 'node-a', 'old'));
    byHost.put(inst('30', 'node-a', 'new'));
    expect(cache.get('web-1', 'default')?.metadata.uid).toBe('new');
  });
});

describe('olderVersion', () => {
  it('compares etcd revisions as numbers, not as strings', () => {
    expect(olderVersion('9', '10')).toBe(true);
    expect(olderVersion('10', '9')).toBe(false);
    expect(olderVersion('10', '10')).toBe(false);
    expect(olderVersion(undefined, '1')).toBe(true);
  });
});
