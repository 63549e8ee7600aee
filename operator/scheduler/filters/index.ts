import { AvailabilityZoneFilter } from './availability-zone-filter.js';
import { ComputeCapabilitiesFilter } from './compute-capabilities-filter.js';
import { ComputeFilter } from './compute-filter.js';
import { CoreFilter } from './core-filter.js';
import { DiskFilter } from './disk-filter.js';
import type { HostFilter } from './filter.js';
import { IgnoreHostsFilter } from './ignore-hosts-filter.js';
import { RamFilter } from './ram-filter.js';
import { ServerGroupAffinityFilter } from './server-group-affinity-filter.js';
import { ServerGroupAntiAffinityFilter } from './server-group-anti-affinity-filter.js';

export type { FilterResult, HostFilter } from './filter.js';
export {
  AvailabilityZoneFilter,
  ComputeCapabilitiesFilter,
  ComputeFilter,
  CoreFilter,
  DiskFilter,
  IgnoreHostsFilter,
  RamFilter,
  ServerGroupAffinityFilter,
  ServerGroupAntiAffinityFilter,
};

// Order decides which filter a NoValidHost message blames: a host that is both down and full is
// reported as down, because that is the thing to fix. Placement rules (tried, zone, labels) come
// before the resource checks for the same reason.
export const DEFAULT_FILTERS: readonly HostFilter[] = Object.freeze([
  IgnoreHostsFilter,
  ComputeFilter,
  AvailabilityZoneFilter,
  ComputeCapabilitiesFilter,
  ServerGroupAntiAffinityFilter,
  ServerGroupAffinityFilter,
  RamFilter,
  CoreFilter,
  DiskFilter,
]);
