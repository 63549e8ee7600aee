import { free } from '../host-state.js';
import type { HostWeigher } from './weigher.js';

/** Nova's CPUWeigher: more free vCPUs weighs more (spread), or less with a negative multiplier (pack). */
export const CPUWeigher: HostWeigher = {
  name: 'CPUWeigher',
  configKey: 'cpuWeightMultiplier',
  rawWeight: (host) => free(host).vcpus,
};
