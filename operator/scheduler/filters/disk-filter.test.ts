import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { DiskFilter } from './disk-filter.js';

describe('DiskFilter', () => {
  const host = aHost({
    name: 'a',
    allocatable: { vcpus: 8, memoryMiB: 65536, diskGiB: 100 },
    allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 70 },
  });

  it('DiskFilter rejects a host whose free disk is below root plus ephemeral disk and names both numbers', () => {
    expect(DiskFilter.passes(host, aRequest({ flavor: { rootDiskGiB: 20, ephemeralDiskGiB: 20 } }))).toEqual({
      pass: false,
      reason: 'free disk 30 GiB < requested 40 GiB',
    });
  });

  it('DiskFilter passes a host whose free disk exactly equals the request', () => {
    expect(DiskFilter.passes(host, aRequest({ flavor: { rootDiskGiB: 20, ephemeralDiskGiB: 10 } }))).toEqual({
      pass: true,
    });
  });
});
