import { describe, expect, it } from 'vitest';
import type { MigrationStatus } from '../../common/api/types.js';
import { aMigration, anInstance, running, SMALL, snapshot } from '../testing.js';
import { desiredBinding } from './binding.js';

const onA = anInstance('web-1', {}, running('node-a', snapshot('m1.small', SMALL), { migration: 'move' }));
const onB = anInstance('web-1', {}, running('node-b', snapshot('m1.small', SMALL), { migration: 'move' }));
const move = (status: MigrationStatus['status'], extra: MigrationStatus = {}) =>
  aMigration('move', { instance: 'web-1' }, { status, sourceHost: 'node-a', destHost: 'node-b', ...extra });

describe('where a port is bound', () => {
  it('nowhere before the instance has a host', () => {
    expect(desiredBinding(anInstance('web-1'), undefined)).toEqual({ host: '', state: 'unbound', migratingTo: '' });
  });

  it('on the host the guest runs on when nothing moves', () => {
    expect(desiredBinding(onA, undefined)).toEqual({ host: 'node-a', state: 'bound', migratingTo: '' });
  });

  it.each(['pre-migrating', 'migrating', 'post-migrating'] as const)(
    'during %s: still on the source, being set up on the destination',
    (phase) => {
      expect(desiredBinding(onA, move(phase))).toEqual({ host: 'node-a', state: 'migrating', migratingTo: 'node-b' });
    },
  );

  it('before the destination is known: on the source, nothing to set up yet', () => {
    const early = aMigration('move', { instance: 'web-1' }, { status: 'pre-migrating', sourceHost: 'node-a' });
    expect(desiredBinding(onA, early)).toEqual({ host: 'node-a', state: 'bound', migratingTo: '' });
  });

  it('at finished the binding is on the destination (migrate_instance_finish), and stays there on confirm', () => {
    expect(desiredBinding(onB, move('finished'))).toEqual({ host: 'node-b', state: 'bound', migratingTo: '' });
    expect(desiredBinding(onB, move('confirming')).host).toBe('node-b');
  });

  it('a revert moves it back: on the destination migrating to the source, then on the source', () => {
    expect(desiredBinding(onB, move('reverting'))).toEqual({
      host: 'node-b',
      state: 'migrating',
      migratingTo: 'node-a',
    });
    expect(desiredBinding(onA, move('reverted'))).toEqual({ host: 'node-a', state: 'bound', migratingTo: '' });
  });

  it('a resize on the same host never leaves it', () => {
    const same = aMigration(
      'move',
      { instance: 'web-1' },
      { status: 'migrating', sourceHost: 'node-a', destHost: 'node-a' },
    );
    expect(desiredBinding(onA, same)).toEqual({ host: 'node-a', state: 'bound', migratingTo: '' });
  });

  it('a migration that ended in error leaves it where the instance is', () => {
    expect(desiredBinding(onA, move('error'))).toEqual({ host: 'node-a', state: 'bound', migratingTo: '' });
  });
});
