import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { DiskWeigher } from './disk-weigher.js';
import { weighHosts } from './weigh.js';

const only = {
  ramWeightMultiplier: 0,
  cpuWeightMultiplier: 0,
  diskWeightMultiplier: 1,
  softAffinityWeightMultiplier: 0,
};
const hosts = [
  aHost({ name: 'full', allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 400 } }),
  aHost({ name: 'roomy', allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 } }),
];

describe('DiskWeigher', () => {
  it('scores a host by its free disk in GiB', () => {
    expect(DiskWeigher.rawWeight(hosts[0]!, aRequest())).toBe(100);
  });

  it('with a positive multiplier ranks the host with the most free disk first (spread)', () => {
    expect(weighHosts(hosts, aRequest(), [DiskWeigher], only).map((w) => w.host.name)).toEqual(['roomy', 'full']);
  });

  it('with a negative multiplier ranks the host with the least free disk first (pack)', () => {
    const pack = { ...only, diskWeightMultiplier: -1, softAffinityWeightMultiplier: 0 };
    expect(weighHosts(hosts, aRequest(), [DiskWeigher], pack).map((w) => w.host.name)).toEqual(['full', 'roomy']);
  });
});
