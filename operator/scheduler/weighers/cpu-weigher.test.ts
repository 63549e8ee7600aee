import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { CPUWeigher } from './cpu-weigher.js';
import { weighHosts } from './weigh.js';

const only = {
  ramWeightMultiplier: 0,
  cpuWeightMultiplier: 1,
  diskWeightMultiplier: 0,
  softAffinityWeightMultiplier: 0,
};
const hosts = [
  aHost({ name: 'idle', allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 } }),
  aHost({ name: 'busy', allocated: { vcpus: 12, memoryMiB: 0, diskGiB: 0 } }),
];

describe('CPUWeigher', () => {
  it('scores a host by its free vcpus', () => {
    expect(CPUWeigher.rawWeight(hosts[1]!, aRequest())).toBe(4);
  });

  it('with a positive multiplier ranks the host with the most free vcpus first (spread)', () => {
    expect(weighHosts(hosts, aRequest(), [CPUWeigher], only).map((w) => w.host.name)).toEqual(['idle', 'busy']);
  });

  it('with a negative multiplier ranks the host with the fewest free vcpus first (pack)', () => {
    const pack = { ...only, cpuWeightMultiplier: -2, softAffinityWeightMultiplier: 0 };
    expect(weighHosts(hosts, aRequest(), [CPUWeigher], pack).map((w) => [w.host.name, w.weight])).toEqual([
      ['busy', 0],
      ['idle', -2],
    ]);
  });
});
