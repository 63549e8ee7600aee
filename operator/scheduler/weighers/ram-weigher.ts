import { free } from '../host-state.js';
import type { HostWeigher } from './weigher.js';

/** Nova's RAMWeigher: more free memory weighs more (spread), or less with a negative multiplier (pack). */
export const RAMWeigher: HostWeigher = {
  name: 'RAMWeigher',
  configKey: 'ramWeightMultiplier',
  rawWeight: (host) => free(host).memoryMiB,
};
