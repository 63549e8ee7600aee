import { describe, expect, it } from 'vitest';
import { DEFAULT_FILTERS } from './index.js';

describe('DEFAULT_FILTERS', () => {
  it('runs every filter once, the placement rules before the resource checks', () => {
    expect(DEFAULT_FILTERS.map((f) => f.name)).toEqual([
      'IgnoreHostsFilter',
      'ComputeFilter',
      'AvailabilityZoneFilter',
      'ComputeCapabilitiesFilter',
      'ServerGroupAntiAffinityFilter',
      'ServerGroupAffinityFilter',
      'RamFilter',
      'CoreFilter',
      'DiskFilter',
    ]);
  });
});
