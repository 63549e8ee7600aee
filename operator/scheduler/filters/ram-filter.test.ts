import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { RamFilter } from './ram-filter.js';

describe('RamFilter', () => {
  const host = aHost({
    name: 'a',
    allocatable: { vcpus: 8, memoryMiB: 4096, diskGiB: 100 },
    allocated: { vcpus: 0, memoryMiB: 3584, diskGiB: 0 },
  });

  it("RamFilter rejects a host whose free memory is below the flavor's and names both numbers", () => {
    expect(RamFilter.passes(host, aRequest({ flavor: { memoryMiB: 2048 } }))).toEqual({
      pass: false,
      reason: 'free memory 512 MiB < requested 2048 MiB',
    });
  });

  it('RamFilter passes a host whose free memory exactly equals the request', () => {
    expect(RamFilter.passes(host, aRequest({ flavor: { memoryMiB: 512 } }))).toEqual({ pass: true });
  });

  it('RamFilter counts allocated (including in-flight) against allocatable, not capacity', () => {
    const full = aHost({
      name: 'b',
      allocatable: { vcpus: 8, memoryMiB: 4096, diskGiB: 100 },
      allocated: { vcpus: 0, memoryMiB: 4096, diskGiB: 0 },
    });
    expect(RamFilter.passes(full, aRequest({ flavor: { memoryMiB: 64 } })).pass).toBe(false);
  });
});
