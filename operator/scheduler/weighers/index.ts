import { CPUWeigher } from './cpu-weigher.js';
import { DiskWeigher } from './disk-weigher.js';
import { RAMWeigher } from './ram-weigher.js';
import { ServerGroupSoftAffinityWeigher } from './server-group-soft-affinity-weigher.js';
import type { HostWeigher } from './weigher.js';

export type { HostWeigher, WeightMultiplierKey } from './weigher.js';
export { normalize, weighHosts } from './weigh.js';
export type { WeighedHost, WeightMultipliers } from './weigh.js';
export { CPUWeigher, DiskWeigher, RAMWeigher, ServerGroupSoftAffinityWeigher };

export const DEFAULT_WEIGHERS: readonly HostWeigher[] = Object.freeze([
  RAMWeigher,
  CPUWeigher,
  DiskWeigher,
  ServerGroupSoftAffinityWeigher,
]);
