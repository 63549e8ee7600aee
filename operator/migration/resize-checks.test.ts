import { describe, expect, it } from 'vitest';
import type { Flavor, FlavorSnapshot, Instance } from '../../common/api/types.js';
import { checkInstanceMovable, checkResizeFlavor } from './resize-checks.js';

const small: FlavorSnapshot = { name: 'm1.small', vcpus: 1, memoryMiB: 2048, rootDiskGiB: 20, ephemeralDiskGiB: 0 };
const flavor = (name: string, rootDiskGiB: number, disabled = false): Flavor => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Flavor',
  metadata: { name },
  spec: { vcpus: 2, memoryMiB: 4096, rootDiskGiB, disabled },
});
const instance = (status: Instance['status']): Instance => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Instance',
  metadata: { name: 'web-1', namespace: 'default' },
  spec: { flavor: 'm1.small', image: 'cirros' },
  status,
});

describe('resize flavor checks', () => {
  it('refuses a missing flavor', () =>
    expect(checkResizeFlavor(small, 'm9', undefined)).toEqual({
      ok: false,
      message: expect.stringContaining('flavor m9 does not exist'),
    }));
  it('refuses a disabled flavor', () =>
    expect(checkResizeFlavor(small, 'old', flavor('old', 40, true))).toEqual({
      ok: false,
      message: expect.stringContaining('flavor old is disabled'),
    }));
  it('refuses the same flavor', () =>
    expect(checkResizeFlavor(small, 'm1.small', flavor('m1.small', 20))).toEqual({
      ok: false,
      message: expect.stringContaining('already has flavor m1.small'),
    }));
  it('refuses a shrinking root disk', () =>
    expect(checkResizeFlavor(small, 'm1.mini', flavor('m1.mini', 10))).toEqual({
      ok: false,
      message: expect.stringContaining('root disks cannot shrink'),
    }));
  it('refuses a sized disk going to a zero disk', () =>
    expect(checkResizeFlavor(small, 'zero', flavor('zero', 0))).toEqual({
      ok: false,
      message: expect.stringContaining('cannot resize to a zero-disk flavor'),
    }));
  it('accepts a bigger flavor', () =>
    expect(checkResizeFlavor(small, 'm1.large', flavor('m1.large', 80))).toEqual({ ok: true }));
  it('accepts a zero-disk instance growing', () =>
    expect(checkResizeFlavor({ ...small, rootDiskGiB: 0 }, 'm1.large', flavor('m1.large', 80))).toEqual({ ok: true }));
});

describe('instance state checks', () => {
  const booted = { vmState: 'active' as const, taskState: '' as const, host: 'node-a', flavor: small };
  it('lets an active or stopped idle instance move', () => {
    expect(checkInstanceMovable(instance(booted))).toEqual({ ok: true });
    expect(checkInstanceMovable(instance({ ...booted, vmState: 'stopped' }))).toEqual({ ok: true });
  });
  it('refuses a busy instance, naming the task', () =>
    expect(checkInstanceMovable(instance({ ...booted, taskState: 'powering_off' }))).toEqual({
      ok: false,
      message: expect.stringContaining('busy with task powering_off'),
    }));
  it('refuses a building or errored instance', () => {
    expect(checkInstanceMovable(instance({ ...booted, vmState: 'error' }))).toEqual({
      ok: false,
      message: expect.stringContaining('is error'),
    });
    expect(checkInstanceMovable(instance({ vmState: 'building', taskState: 'scheduling' }))).toEqual({
      ok: false,
      message: expect.stringContaining('busy'),
    });
  });
  it('refuses a second migration while one is in progress, but recognises its own', () => {
    const moving = instance({ ...booted, taskState: 'resize_prep', migration: 'web-1-move' });
    expect(checkInstanceMovable(moving, 'other')).toEqual({
      ok: false,
      message: expect.stringContaining('already has migration web-1-move in progress'),
    });
    expect(checkInstanceMovable(moving, 'web-1-move')).toEqual({ ok: true });
  });
});
