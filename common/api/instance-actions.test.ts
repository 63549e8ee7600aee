import { describe, expect, it } from 'vitest';
import { INSTANCE_ACTIONS, checkInstanceState, type InstanceAction } from './instance-actions.js';
import type { Instance, InstanceStatus } from './types.js';

const instance = (status: InstanceStatus): Instance => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Instance',
  metadata: { name: 'web-1', namespace: 'default' },
  spec: { flavor: 'm1.small', image: 'cirros' },
  status,
});
const allowed = (action: InstanceAction, status: InstanceStatus) => checkInstanceState(instance(status), action).ok;

describe('instance action guards (Nova check_instance_state)', () => {
  it('lets an idle active or stopped instance be resized and migrated', () => {
    for (const action of ['resize', 'migrate'] as const) {
      expect(allowed(action, { vmState: 'active', taskState: '' })).toBe(true);
      expect(allowed(action, { vmState: 'stopped' })).toBe(true);
      expect(allowed(action, { vmState: 'resized' })).toBe(false);
      expect(allowed(action, { vmState: 'error' })).toBe(false);
    }
  });

  it('stops only an active instance and starts only a stopped one', () => {
    expect(allowed('stop', { vmState: 'active' })).toBe(true);
    expect(allowed('stop', { vmState: 'stopped' })).toBe(false);
    expect(allowed('start', { vmState: 'stopped' })).toBe(true);
    expect(allowed('start', { vmState: 'active' })).toBe(false);
  });

  it('refuses every action but delete while a task runs, naming the task', () => {
    for (const action of Object.keys(INSTANCE_ACTIONS) as InstanceAction[]) {
      const check = checkInstanceState(instance({ vmState: 'active', taskState: 'powering_off' }), action);
      if (action === 'delete') expect(check.ok).toBe(true);
      else expect(check).toEqual({ ok: false, message: expect.stringContaining('busy with task powering_off') });
    }
  });

  it('refuses a second migration but lets the migration holding the instance repeat its own step', () => {
    const moving = instance({ vmState: 'active', taskState: 'resize_prep', migration: 'web-1-move' });
    expect(checkInstanceState(moving, 'migrate', 'other')).toEqual({
      ok: false,
      message: expect.stringContaining('already has migration web-1-move in progress'),
    });
    expect(checkInstanceState(moving, 'migrate', 'web-1-move').ok).toBe(true);
  });

  it('says which states an action needs when the instance is in another', () =>
    expect(checkInstanceState(instance({ vmState: 'error' }), 'migrate')).toEqual({
      ok: false,
      message: 'instance web-1 is error; only active or stopped instances can be resized or migrated',
    }));
});
