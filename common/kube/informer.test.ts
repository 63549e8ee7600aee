import type { Watch } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { dropManagedFields, withoutManagedFields } from './informer.js';

const instance = () => ({
  metadata: { name: 'web-1', resourceVersion: '7', managedFields: [{ manager: 'kubectl', operation: 'Update' }] },
  status: { vmState: 'active' },
});

describe("the informer's cache", () => {
  it('keeps listed objects without their managedFields, and everything else as listed', () => {
    const obj = instance();
    dropManagedFields(obj);
    expect(obj).toEqual({ metadata: { name: 'web-1', resourceVersion: '7' }, status: { vmState: 'active' } });
    expect(() => dropManagedFields({ kind: 'Status', code: 410 })).not.toThrow();
  });

  it('hands every watch event on without managedFields, with its phase', async () => {
    const seen: [string, unknown][] = [];
    const wire = {
      watch: async (_path: string, _q: object, callback: (phase: string, obj: unknown) => void) => {
        callback('MODIFIED', instance());
        return new AbortController();
      },
    } as unknown as Watch;
    await withoutManagedFields(wire).watch(
      '/apis/x',
      {},
      (phase, obj) => seen.push([phase, obj]),
      () => {},
    );
    expect(seen).toEqual([
      ['MODIFIED', { metadata: { name: 'web-1', resourceVersion: '7' }, status: { vmState: 'active' } }],
    ]);
  });
});
