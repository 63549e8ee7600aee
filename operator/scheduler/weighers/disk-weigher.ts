import { free } from '../host-state.js';
import type { HostWeigher } from './weigher.js';

/** Nova's DiskWeigher: more free disk weighs more (spread), or less with a negative multiplier (pack). */
export const DiskWeigher: HostWeigher = {
  name: 'DiskWeigher',
  configKey: 'diskWeightMultiplier',
  rawWeight: (host) => free(host).diskGiB,
};
