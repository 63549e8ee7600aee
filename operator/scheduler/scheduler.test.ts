import { describe, expect, it } from 'vitest';
import { ComputeFilter } from './filters/compute-filter.js';
import { RamFilter } from './filters/ram-filter.js';
import { DEFAULT_SCHEDULER_CONFIG, NoValidHost, Scheduler } from './scheduler.js';
import type { SchedulerConfig } from './scheduler.js';
import { aHost, aRequest } from './testing.js';

function caught(fn: () => unknown): NoValidHost {
  try {
    fn();
  } catch (e) {
    if (e instanceof NoValidHost) return e;
    throw e;
  }
  throw new Error('expected NoValidHost');
}

const config = (over: Partial<SchedulerConfig> = {}): SchedulerConfig => ({ ...DEFAULT_SCHEDULER_CONFIG, ...over });

// Free memory 30, 20, 10 GiB: RAM spread ranks them big, mid, small.
const big = aHost({ name: 'big', allocated: { vcpus: 0, memoryMiB: 2048, diskGiB: 0 } });
const mid = aHost({ name: 'mid', allocated: { vcpus: 0, memoryMiB: 12288, diskGiB: 0 } });
const small = aHost({ name: 'small', allocated: { vcpus: 0, memoryMiB: 22528, diskGiB: 0 } });

describe('Scheduler.selectDestination', () => {
  it('defaults to spreading on RAM, CPU and disk with a subset of one', () => {
    expect(DEFAULT_SCHEDULER_CONFIG).toEqual({
      ramWeightMultiplier: 1,
      cpuWeightMultiplier: 1,
      diskWeightMultiplier: 1,
      softAffinityWeightMultiplier: 1,
      hostSubsetSize: 1,
    });
  });

  it('picks the best weighed host that passes every filter', () => {
    const down = aHost({ name: 'down', ready: false });
    const selection = new Scheduler(config()).selectDestination([small, down, mid, big], aRequest());
    expect(selection).toEqual({ host: 'big', weight: 1 });
  });

  it('packs onto the fullest host that still fits when the RAM multiplier is negative', () => {
    const scheduler = new Scheduler(
      config({ ramWeightMultiplier: -1, cpuWeightMultiplier: 0, diskWeightMultiplier: 0 }),
    );
    expect(scheduler.selectDestination([big, mid, small], aRequest()).host).toBe('small');
  });

  it('never picks a host in ignoreHosts', () => {
    expect(new Scheduler(config()).selectDestination([big, mid], aRequest({ ignoreHosts: ['big'] })).host).toBe('mid');
  });
});

describe('hostSubsetSize', () => {
  const hosts = [big, mid, small];

  it('chooses among the top hostSubsetSize hosts using the injected random source', () => {
    const pick = (r: number): string =>
      new Scheduler(config({ hostSubsetSize: 2 }), undefined, undefined, () => r).selectDestination(hosts, aRequest())
        .host;
    expect(pick(0)).toBe('big');
    expect(pick(0.49)).toBe('big');
    expect(pick(0.5)).toBe('mid');
    expect(pick(0.99)).toBe('mid');
  });

  it('clamps the subset to the number of surviving hosts', () => {
    const scheduler = new Scheduler(config({ hostSubsetSize: 10 }), undefined, undefined, () => 0.99);
    expect(scheduler.selectDestination(hosts, aRequest()).host).toBe('small');
  });

  it('treats a subset size below one as one, always taking the best host', () => {
    const scheduler = new Scheduler(config({ hostSubsetSize: 0 }), undefined, undefined, () => 0.99);
    expect(scheduler.selectDestination(hosts, aRequest()).host).toBe('big');
  });

  it('stays in range when the random source returns exactly 1', () => {
    const scheduler = new Scheduler(config({ hostSubsetSize: 3 }), undefined, undefined, () => 1);
    expect(scheduler.selectDestination(hosts, aRequest()).host).toBe('small');
  });
});

describe('forced host', () => {
  it('bypasses every filter: a disabled, not-ready, full, already-tried host is still selected', () => {
    const bad = aHost({
      name: 'bad',
      disabled: true,
      ready: false,
      allocated: { vcpus: 99, memoryMiB: 99999, diskGiB: 9999 },
    });
    const selection = new Scheduler(config()).selectDestination(
      [big, bad],
      aRequest({ forcedHost: 'bad', ignoreHosts: ['bad'] }),
    );
    expect(selection.host).toBe('bad');
  });

  it('never selects a forced host that is forced down, and says so', () => {
    const dead = aHost({ name: 'dead', forcedDown: true });
    const err = caught(() => new Scheduler(config()).selectDestination([big, dead], aRequest({ forcedHost: 'dead' })));
    expect(err.hostReasons).toEqual({ dead: 'Forced host dead is forced down.' });
  });

  it('throws NoValidHost naming the forced host when it does not exist', () => {
    const err = caught(() => new Scheduler(config()).selectDestination([big, mid], aRequest({ forcedHost: 'ghost' })));
    expect(err.message).toBe('No valid host was found. Forced host ghost does not exist.');
    expect(err.hostReasons).toEqual({ ghost: 'Forced host ghost does not exist.' });
  });
});

describe('NoValidHost', () => {
  it("says how many hosts each filter removed, in Nova's wording", () => {
    const down = aHost({ name: 'down', ready: false });
    const err = caught(() =>
      new Scheduler(config(), [ComputeFilter, RamFilter]).selectDestination(
        [down, mid, small],
        aRequest({ flavor: { memoryMiB: 30720 } }),
      ),
    );
    expect(err.reason).toBe('NoValidHost');
    expect(err.message).toBe(
      'No valid host was found. There are not enough hosts available. Filtering removed all hosts: ComputeFilter removed 1 of 3, RamFilter removed 2 of 2',
    );
    expect(err.filterCounts).toEqual([
      { filter: 'ComputeFilter', removed: 1, remaining: 2 },
      { filter: 'RamFilter', removed: 2, remaining: 0 },
    ]);
  });

  it('records, per host, which filter removed it and why', () => {
    const down = aHost({ name: 'down', ready: false });
    const err = caught(() =>
      new Scheduler(config()).selectDestination([down, small], aRequest({ flavor: { memoryMiB: 30720 } })),
    );
    expect(err.hostReasons).toEqual({
      down: 'ComputeFilter: host is not ready (Ready condition not True or heartbeat stale)',
      small: 'RamFilter: free memory 10240 MiB < requested 30720 MiB',
    });
  });

  it('leaves out filters that removed nothing and stops at the filter that removed the last host', () => {
    const err = caught(() => new Scheduler(config()).selectDestination([mid], aRequest({ flavor: { vcpus: 64 } })));
    expect(err.message).toBe(
      'No valid host was found. There are not enough hosts available. Filtering removed all hosts: CoreFilter removed 1 of 1',
    );
    expect(err.filterCounts.map((c) => c.filter)).toEqual([
      'IgnoreHostsFilter',
      'ComputeFilter',
      'AvailabilityZoneFilter',
      'ComputeCapabilitiesFilter',
      'ServerGroupAntiAffinityFilter',
      'ServerGroupAffinityFilter',
      'RamFilter',
      'CoreFilter',
    ]);
  });

  it('says there are no compute hosts when the host list is empty', () => {
    const err = caught(() => new Scheduler(config()).selectDestination([], aRequest()));
    expect(err.message).toBe('No valid host was found. There are no compute hosts.');
    expect(err.totalHosts).toBe(0);
  });

  it('is an Error, so generic handlers still see a message and stack', () => {
    const err = new NoValidHost([], {}, 0);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('NoValidHost');
  });
});
