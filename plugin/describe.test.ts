import { describe, expect, it } from 'vitest';
import { eventsTable, filterEliminations, renderInstance, stateText } from './describe.js';
import { aMigration, anEvent, anInstance } from './testing.js';

const now = new Date('2026-01-01T00:10:00Z');
const small = { name: 'm1.small', vcpus: 1, memoryMiB: 2048, rootDiskGiB: 20, ephemeralDiskGiB: 0 };
const large = { name: 'm1.large', vcpus: 4, memoryMiB: 8192, rootDiskGiB: 80, ephemeralDiskGiB: 0 };
const NO_VALID_HOST =
  'No valid host was found. There are not enough hosts available. Filtering removed all hosts: ' +
  'ComputeFilter removed 1 of 3, AvailabilityZoneFilter removed 1 of 2, RamFilter removed 1 of 1';

describe('show', () => {
  it("reads back how many hosts each scheduler filter removed from Nova's NoValidHost message, in order", () => {
    expect(filterEliminations(NO_VALID_HOST)).toEqual([
      { filter: 'ComputeFilter', removed: 1, of: 3 },
      { filter: 'AvailabilityZoneFilter', removed: 1, of: 2 },
      { filter: 'RamFilter', removed: 1, of: 1 },
    ]);
    expect(filterEliminations('spawn failed on node-a')).toEqual([]);
  });

  it('shows a NoValidHost fault as a list of filters with the hosts each removed', () => {
    const inst = anInstance('big-1', {
      vmState: 'error',
      taskState: '',
      fault: { reason: 'NoValidHost', message: NO_VALID_HOST, time: '2026-01-01T00:09:00Z' },
      scheduling: { attempts: 1, triedHosts: [] },
    });
    const text = renderInstance({ instance: inst, events: [], now });
    expect(text).toContain('State:');
    expect(text).toMatch(/Fault: +NoValidHost at 2026-01-01T00:09:00Z/);
    expect(text).toContain('No valid host was found. There are not enough hosts available.');
    expect(text).toMatch(/ComputeFilter +removed 1 of 3\n/);
    expect(text).toMatch(/AvailabilityZoneFilter +removed 1 of 2\n/);
    expect(text).toMatch(/RamFilter +removed 1 of 1\n/);
  });

  it('shows state, host, both flavors of a resize awaiting its decision, the migration and what to run next', () => {
    const inst = anInstance(
      'web-1',
      {
        vmState: 'resized',
        taskState: '',
        host: 'node-b',
        powerState: 'running',
        flavor: large,
        oldFlavor: small,
        migration: 'web-1-resize-2',
      },
      { flavor: 'm1.large' },
    );
    const mig = aMigration('web-1-resize-2', 'web-1', {
      type: 'resize',
      status: 'finished',
      sourceHost: 'node-a',
      destHost: 'node-b',
      oldFlavor: small,
      newFlavor: large,
    });
    const text = renderInstance({ instance: inst, migration: mig, events: [], now });
    expect(text).toMatch(/State: +resized\n/);
    expect(text).toMatch(/Host: +node-b\n/);
    expect(text).toContain('m1.large (4 vCPUs, 8192 MiB, 80 GiB disk)');
    expect(text).toMatch(/Old flavor: +m1\.small \(1 vCPU, 2048 MiB, 20 GiB disk\)/);
    expect(text).toContain('web-1-resize-2 (resize finished node-a -> node-b, m1.small -> m1.large)');
    expect(text).toContain('kubectl nova resize-confirm web-1');
  });

  it('shows the step deadline of a migration in progress', () => {
    const inst = anInstance('web-1', { vmState: 'active', taskState: 'resize_migrating', migration: 'm' });
    const mig = aMigration('m', 'web-1', { status: 'migrating', stepDeadline: '2026-01-01T00:14:00Z' });
    expect(renderInstance({ instance: inst, migration: mig, events: [], now })).toContain(
      'step deadline 2026-01-01T00:14:00Z (in 4m)',
    );
  });

  it('lists the newest events last, at most the limit, and says how many there were', () => {
    const events = Array.from({ length: 12 }, (_, i) =>
      anEvent(`R${i}`, `message ${i}`, `2026-01-01T00:0${Math.floor(i / 2)}:${i % 2 ? '30' : '00'}Z`),
    );
    const text = renderInstance({ instance: anInstance('web-1'), events: events.reverse(), now, eventLimit: 3 });
    expect(text).toContain('Events (last 3 of 12):');
    const rows = text.split('Events (last 3 of 12):\n')[1]!.trim().split('\n').slice(1);
    expect(rows.map((r) => /\b(R\d+)\b/.exec(r)?.[1])).toEqual(['R9', 'R10', 'R11']);
  });

  it('says <none> when there are no events, and names a state with its task', () => {
    expect(eventsTable([], now)).toBe('  <none>\n');
    expect(stateText(anInstance('a', { vmState: 'building', taskState: 'spawning' }))).toBe('building/spawning');
    expect(stateText(anInstance('a', {}))).toBe('pending');
  });
});
