import { describe, expect, it } from 'vitest';
import { indexWidth, planHosts, simulatedHostNames, staggerDelays } from './hosts.js';

describe('simulated host names', () => {
  it('names 100 hosts sim-000 to sim-099, in index order when sorted', () => {
    const names = simulatedHostNames('sim', 100);
    expect(names[0]).toBe('sim-000');
    expect(names[99]).toBe('sim-099');
    expect(new Set(names).size).toBe(100);
    expect([...names].sort()).toEqual(names);
  });

  it('widens the index only when three digits are not enough', () => {
    expect(indexWidth(0)).toBe(3);
    expect(indexWidth(999)).toBe(3);
    expect(indexWidth(1000)).toBe(4);
    expect(simulatedHostNames('sim', 1001).at(-1)).toBe('sim-1000');
  });

  it('lets two processes split one numbered range with an offset', () => {
    const first = simulatedHostNames('sim', 50, 0);
    const second = simulatedHostNames('sim', 50, 50);
    expect(first.at(-1)).toBe('sim-049');
    expect(second[0]).toBe('sim-050');
    expect(second.at(-1)).toBe('sim-099');
    expect(new Set([...first, ...second]).size).toBe(100);
  });
});

describe('timer staggering', () => {
  it('spreads 100 hosts evenly over one interval, 100 ms apart for 10 s', () => {
    const delays = staggerDelays(100, 10_000);
    expect(delays[0]).toBe(0);
    expect(delays[1]).toBe(100);
    expect(delays[99]).toBe(9_900);
    expect(new Set(delays).size).toBe(100);
    expect(Math.max(...delays)).toBeLessThan(10_000);
  });

  it('starts a single host at once', () => {
    expect(staggerDelays(1, 10_000)).toEqual([0]);
    expect(staggerDelays(0, 10_000)).toEqual([]);
  });
});

describe('host plan', () => {
  it('serves N staggered simulated hosts with --hosts=N', () => {
    const plan = planHosts('sim', 4, 0, 1_000);
    expect(plan).toEqual([
      { host: 'sim-000', startDelayMs: 0 },
      { host: 'sim-001', startDelayMs: 250 },
      { host: 'sim-002', startDelayMs: 500 },
      { host: 'sim-003', startDelayMs: 750 },
    ]);
  });

  it('starts the range at --host-offset', () => {
    expect(planHosts('sim', 2, 50, 0)).toEqual([
      { host: 'sim-050', startDelayMs: 0 },
      { host: 'sim-051', startDelayMs: 0 },
    ]);
  });

  it('refuses no hosts, a fractional count or a negative offset', () => {
    expect(() => planHosts('sim', 0, 0, 1_000)).toThrow(RangeError);
    expect(() => planHosts('sim', 2.5, 0, 1_000)).toThrow(RangeError);
    expect(() => planHosts('sim', 3, -1, 1_000)).toThrow(RangeError);
  });
});
