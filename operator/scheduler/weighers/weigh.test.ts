import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { CPUWeigher } from './cpu-weigher.js';
import { RAMWeigher } from './ram-weigher.js';
import { normalize, weighHosts } from './weigh.js';

describe('normalize', () => {
  it('maps the smallest value to 0, the largest to 1 and the rest linearly between', () => {
    expect(normalize([10, 30, 20])).toEqual([0, 1, 0.5]);
  });

  it('gives every host 0 when all values are equal, so the weigher does not tilt the sum', () => {
    expect(normalize([7, 7, 7])).toEqual([0, 0, 0]);
  });

  it('returns nothing for no hosts', () => {
    expect(normalize([])).toEqual([]);
  });
});

describe('weighHosts', () => {
  // "ram" has far more free MiB than "cpu" has free vCPUs; normalisation makes the units comparable.
  const ram = aHost({ name: 'ram', allocatable: { vcpus: 4, memoryMiB: 65536, diskGiB: 100 } });
  const cpu = aHost({ name: 'cpu', allocatable: { vcpus: 64, memoryMiB: 8192, diskGiB: 100 } });

  it('sums multiplier times normalised weight, so units (MiB vs vCPUs) do not dominate', () => {
    const weighed = weighHosts([ram, cpu], aRequest(), [RAMWeigher, CPUWeigher], {
      ramWeightMultiplier: 1,
      cpuWeightMultiplier: 2,
      diskWeightMultiplier: 0,
      softAffinityWeightMultiplier: 0,
    });
    expect(weighed.map((w) => [w.host.name, w.weight])).toEqual([
      ['cpu', 2],
      ['ram', 1],
    ]);
  });

  it('ranks equally weighted hosts by name, so the same snapshot always ranks the same way', () => {
    const b = aHost({ name: 'b' });
    const a = aHost({ name: 'a' });
    expect(
      weighHosts([b, a], aRequest(), [RAMWeigher], {
        ramWeightMultiplier: 1,
        cpuWeightMultiplier: 1,
        diskWeightMultiplier: 1,
        softAffinityWeightMultiplier: 0,
      }).map((w) => w.host.name),
    ).toEqual(['a', 'b']);
  });
});
