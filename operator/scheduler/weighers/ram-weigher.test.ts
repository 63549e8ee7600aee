import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { RAMWeigher } from './ram-weigher.js';
import { weighHosts } from './weigh.js';

const only = {
  ramWeightMultiplier: 1,
  cpuWeightMultiplier: 0,
  diskWeightMultiplier: 0,
  softAffinityWeightMultiplier: 0,
};
const hosts = [
  aHost({ name: 'empty', allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 } }),
  aHost({ name: 'half', allocated: { vcpus: 0, memoryMiB: 16384, diskGiB: 0 } }),
  aHost({ name: 'busy', allocated: { vcpus: 0, memoryMiB: 30720, diskGiB: 0 } }),
];

describe('RAMWeigher', () => {
  it('scores a host by its free memory in MiB, in-flight included', () => {
    expect(RAMWeigher.rawWeight(hosts[1]!, aRequest())).toBe(16384);
  });

  it('with a positive multiplier ranks the host with the most free memory first (spread)', () => {
    expect(weighHosts(hosts, aRequest(), [RAMWeigher], only).map((w) => w.host.name)).toEqual([
      'empty',
      'half',
      'busy',
    ]);
  });

  it('with a negative multiplier ranks the host with the least free memory first (pack)', () => {
    const pack = { ...only, ramWeightMultiplier: -1, softAffinityWeightMultiplier: 0 };
    expect(weighHosts(hosts, aRequest(), [RAMWeigher], pack).map((w) => w.host.name)).toEqual([
      'busy',
      'half',
      'empty',
    ]);
  });
});
