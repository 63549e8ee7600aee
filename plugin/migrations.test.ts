import { describe, expect, it } from 'vitest';
import {
  checkDecision,
  findCurrentMigration,
  instanceSettled,
  migrationObject,
  migrationOutcome,
} from './migrations.js';
import { aMigration, anInstance } from './testing.js';

describe('finding the migration a confirm or revert is about', () => {
  it("takes the instance's current migration (status.migration) first", () => {
    const inst = anInstance('web-1', { vmState: 'resized', migration: 'web-1-resize-3' });
    const migs = [
      aMigration('web-1-resize-3', 'web-1', { status: 'finished' }, {}, '2026-01-01T00:00:00Z'),
      aMigration('web-1-migrate-x', 'web-1', { status: 'finished' }, {}, '2026-01-01T00:05:00Z'),
    ];
    expect(findCurrentMigration(inst, migs)?.metadata.name).toBe('web-1-resize-3');
  });

  it("else the newest of the instance's finished Migrations that awaits a decision, ignoring other instances'", () => {
    const inst = anInstance('web-1', { vmState: 'active' });
    const migs = [
      aMigration('old', 'web-1', { status: 'finished' }, {}, '2026-01-01T00:00:00Z'),
      aMigration('newer', 'web-1', { status: 'finished' }, {}, '2026-01-01T00:03:00Z'),
      aMigration('decided', 'web-1', { status: 'finished' }, { decision: 'Confirm' }, '2026-01-01T00:04:00Z'),
      aMigration('ended', 'web-1', { status: 'confirmed' }, {}, '2026-01-01T00:05:00Z'),
      aMigration('other', 'web-2', { status: 'finished' }, {}, '2026-01-01T00:06:00Z'),
    ];
    expect(findCurrentMigration(inst, migs)?.metadata.name).toBe('newer');
    expect(findCurrentMigration(anInstance('web-3'), migs)).toBeUndefined();
  });
});

describe('a decision', () => {
  it('is allowed on a finished migration, and early (taking effect once it finishes) on one in progress', () => {
    expect(checkDecision(aMigration('m', 'web-1', { status: 'finished' }), 'Confirm')).toEqual({ ok: true });
    const early = checkDecision(aMigration('m', 'web-1', { status: 'migrating' }), 'Revert');
    expect(early).toMatchObject({ ok: true, note: expect.stringContaining('takes effect once it has finished') });
  });

  it('is refused once another decision was made (final), after the end, and during a cancel; the same one again is a no-op', () => {
    const decided = aMigration('m', 'web-1', { status: 'confirming' }, { decision: 'Confirm' });
    expect(checkDecision(decided, 'Revert')).toEqual({
      ok: false,
      message: 'migration m is already decided (Confirm); a decision is final',
    });
    expect(checkDecision(decided, 'Confirm')).toEqual({ ok: true, already: true });
    expect(checkDecision(aMigration('m', 'web-1', { status: 'error' }), 'Confirm')).toEqual({
      ok: false,
      message: 'migration m has already ended (error)',
    });
    const cancelled = aMigration('m', 'web-1', { status: 'migrating' });
    cancelled.metadata.deletionTimestamp = new Date();
    expect(checkDecision(cancelled, 'Confirm')).toMatchObject({ ok: false });
  });
});

describe('waiting for a migration', () => {
  it('is done at the phase the goal names, or at any end', () => {
    const at = (status: 'pre-migrating' | 'finished' | 'confirmed' | 'reverted') =>
      aMigration('m', 'web-1', { status });
    expect(migrationOutcome(aMigration('m', 'web-1'), 'started')).toEqual({ state: 'waiting' });
    expect(migrationOutcome(at('pre-migrating'), 'started')).toEqual({ state: 'done', phase: 'pre-migrating' });
    expect(migrationOutcome(at('pre-migrating'), 'finished')).toEqual({ state: 'waiting' });
    expect(migrationOutcome(at('finished'), 'finished')).toEqual({ state: 'done', phase: 'finished' });
    expect(migrationOutcome(at('finished'), 'ended')).toEqual({ state: 'waiting' });
    expect(migrationOutcome(at('confirmed'), 'finished')).toEqual({ state: 'done', phase: 'confirmed' });
    expect(migrationOutcome(at('reverted'), 'ended')).toEqual({ state: 'done', phase: 'reverted' });
  });

  it('fails on the error phase or a Failed condition, with the fault', () => {
    const failed = aMigration('m', 'web-1', {
      status: 'error',
      fault: { reason: 'MigrationRefused', message: 'targetHost node-z does not exist' },
    });
    expect(migrationOutcome(failed, 'started')).toEqual({
      state: 'failed',
      message: 'migration m failed: MigrationRefused: targetHost node-z does not exist',
    });
    const byCondition = aMigration('m', 'web-1', {
      status: 'reverting',
      conditions: [{ type: 'Failed', status: 'True', reason: 'StepFailed', lastTransitionTime: '' }],
    });
    expect(migrationOutcome(byCondition, 'ended').state).toBe('failed');
  });
});

describe('new Migrations', () => {
  it('a cold migration names the instance and the target host, labelled for the instance, with a generated name', () => {
    expect(migrationObject('team', 'web-1', 'migrate', { host: 'node-c' })).toEqual({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Migration',
      metadata: {
        name: '',
        generateName: 'web-1-migrate-',
        namespace: 'team',
        labels: { 'compute.kubenova.io/instance': 'web-1' },
      },
      spec: { instance: 'web-1', targetHost: 'node-c' },
    });
  });

  it('an evacuation has type Evacuation; a drain migration is confirmed up front', () => {
    expect(migrationObject('default', 'db-1', 'evacuate', {}).spec).toEqual({ instance: 'db-1', type: 'Evacuation' });
    expect(migrationObject('default', 'db-1', 'drain', { confirm: true }).spec).toEqual({
      instance: 'db-1',
      decision: 'Confirm',
    });
  });
});

describe('an instance settled after its migration', () => {
  const small = { name: 'm1.small', vcpus: 1, memoryMiB: 2048, rootDiskGiB: 20, ephemeralDiskGiB: 0 };
  it('is resized and idle, still naming the migration, once it has finished', () => {
    const mig = aMigration('m', 'web-1', { status: 'finished' });
    expect(
      instanceSettled(anInstance('web-1', { vmState: 'resized', taskState: 'resize_finish', migration: 'm' }), mig),
    ).toBe(false);
    expect(instanceSettled(anInstance('web-1', { vmState: 'resized', taskState: '', migration: 'm' }), mig)).toBe(true);
  });

  it('no longer names the migration once it has ended; spec.flavor set back after a revert is not waited for', () => {
    const reverted = aMigration('m', 'web-1', { status: 'reverted' });
    const steady = { vmState: 'active' as const, taskState: '' as const, flavor: small };
    expect(instanceSettled(anInstance('web-1', { ...steady, migration: 'm' }), reverted)).toBe(false);
    expect(instanceSettled(anInstance('web-1', { ...steady, taskState: 'resize_reverting' }), reverted)).toBe(false);
    expect(instanceSettled(anInstance('web-1', steady, { flavor: 'm1.large' }), reverted)).toBe(true);
  });
});
