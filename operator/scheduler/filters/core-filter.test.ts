import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { CoreFilter } from './core-filter.js';

describe('CoreFilter', () => {
  const host = aHost({
    name: 'a',
    allocatable: { vcpus: 8, memoryMiB: 65536, diskGiB: 100 },
    allocated: { vcpus: 6, memoryMiB: 0, diskGiB: 0 },
  });

  it("CoreFilter rejects a host whose free vcpus are below the flavor's and names both numbers", () => {
    expect(CoreFilter.passes(host, aRequest({ flavor: { vcpus: 4 } }))).toEqual({
      pass: false,
      reason: 'free vcpus 2 < requested 4',
    });
  });

  it('CoreFilter passes a host whose free vcpus exactly equal the request', () => {
    expect(CoreFilter.passes(host, aRequest({ flavor: { vcpus: 2 } }))).toEqual({ pass: true });
  });
});
