import { describe, expect, it } from 'vitest';
import { nextToStart, planDrain } from './drain.js';
import { aMigration, anInstance } from './testing.js';

const on = (name: string, host: string, extra: Parameters<typeof anInstance>[1] = {}, group?: string) =>
  anInstance(name, { vmState: 'active', taskState: '', host, ...extra }, group ? { serverGroup: group } : {});

describe('drain plan', () => {
  it('moves every steady instance on the host, in namespace then name order, and none elsewhere', () => {
    const plan = planDrain(
      'node-a',
      [on('b', 'node-a'), on('a', 'node-a', { vmState: 'stopped' }), on('c', 'node-b')],
      [],
    );
    expect(plan.move.map((i) => i.metadata.name)).toEqual(['a', 'b']);
    expect(plan.skip).toEqual([]);
  });

  it('leaves busy, broken and deleting instances where they are, saying why', () => {
    const deleting = on('d', 'node-a');
    deleting.metadata.deletionTimestamp = new Date();
    const plan = planDrain(
      'node-a',
      [
        on('busy', 'node-a', { taskState: 'powering_off' }),
        on('broken', 'node-a', { vmState: 'error' }),
        on('resized', 'node-a', { vmState: 'resized', migration: 'resized-resize-2' }),
        deleting,
      ],
      [],
    );
    expect(plan.move).toEqual([]);
    expect(Object.fromEntries(plan.skip.map((s) => [s.instance.metadata.name, s.why]))).toEqual({
      broken: 'instance broken is error; only active or stopped instances can be resized or migrated',
      busy: 'instance busy is busy with task powering_off; wait until status.taskState is empty and try again',
      d: 'it is being deleted',
      resized:
        'instance resized already has migration resized-resize-2 in progress; confirm, revert or wait for it first',
    });
  });

  it('reports an instance on its way to the host, which the drain cannot stop', () => {
    const moving = on('m', 'node-b', { taskState: 'resize_migrating', migration: 'm-migrate-x' });
    const plan = planDrain(
      'node-a',
      [moving],
      [aMigration('m-migrate-x', 'm', { status: 'migrating', sourceHost: 'node-b', destHost: 'node-a' })],
    );
    expect(plan.skip[0]?.why).toContain('migration m-migrate-x is moving it here (migrating)');
  });

  it('never starts a member of a server group while another member of it is moving', () => {
    const queue = [on('db-1', 'node-a', {}, 'db'), on('db-2', 'node-a', {}, 'db'), on('web-1', 'node-a')];
    expect(nextToStart(queue, new Set())).toBe(0);
    expect(nextToStart(queue, new Set(['default/db']))).toBe(2);
    expect(nextToStart(queue.slice(0, 2), new Set(['default/db']))).toBe(-1);
    // A group is per namespace: another namespace's group of the same name does not hold it back.
    expect(nextToStart(queue, new Set(['team/db']))).toBe(0);
  });
});
