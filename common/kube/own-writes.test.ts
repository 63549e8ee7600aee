import { describe, expect, it } from 'vitest';
import type { Instance } from '../api/types.js';
import { OwnWrites } from './own-writes.js';

const inst = (rv: string, uid = 'u1', taskState = ''): Instance =>
  ({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name: 'vm', namespace: 'ns', uid, resourceVersion: rv },
    spec: { flavor: 'm1.small', image: 'cirros' },
    status: { taskState },
  }) as Instance;

describe('reading our own writes before the watch shows them', () => {
  it('a reconcile between a write and its watch event reads what was written, not the older cache', () => {
    const own = new OwnWrites<'Instance'>();
    own.record(inst('12', 'u1', 'scheduling'), inst('11'));
    expect(own.read(inst('11'))?.status?.taskState).toBe('scheduling');
    expect(own.readAll([inst('11')])[0]?.metadata.resourceVersion).toBe('12');
  });

  it('once the watch delivers the write (or anything newer) the cache is read again', () => {
    const own = new OwnWrites<'Instance'>();
    own.record(inst('12', 'u1', 'scheduling'), inst('11'));
    own.observed(inst('12', 'u1', 'scheduling'));
    expect(own.size).toBe(0);
    own.record(inst('14', 'u1', 'spawning'), inst('12'));
    own.observed(inst('15', 'u1', 'active'));
    expect(own.read(inst('15', 'u1', 'active'))?.status?.taskState).toBe('active');
  });

  it('never answers for another object of the same name, a deleted one, or one the cache does not follow', () => {
    const own = new OwnWrites<'Instance'>();
    own.record(inst('12', 'u1'), undefined);
    expect(own.size).toBe(0);
    own.record(inst('12', 'u1', 'scheduling'), inst('11'));
    expect(own.read(inst('20', 'u2'))?.metadata.uid).toBe('u2');
    own.observed(inst('11'), true);
    expect(own.size).toBe(0);
    expect(own.read(undefined)).toBeUndefined();
  });

  it('keeps the newest of two writes, and compares nothing when versions are not integers', () => {
    const own = new OwnWrites<'Instance'>();
    own.record(inst('13', 'u1', 'spawning'), inst('11'));
    own.record(inst('12', 'u1', 'scheduling'), inst('11'));
    expect(own.read(inst('11'))?.status?.taskState).toBe('spawning');
    const opaque = new OwnWrites<'Instance'>();
    opaque.record(inst('b', 'u1', 'scheduling'), inst('a'));
    expect(opaque.read(inst('a'))?.metadata.resourceVersion).toBe('a');
  });
});
