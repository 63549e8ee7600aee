import type { HostState } from '../host-state.js';
import type { RequestSpec } from '../request.js';

export type WeightMultiplierKey =
  'ramWeightMultiplier' | 'cpuWeightMultiplier' | 'diskWeightMultiplier' | 'softAffinityWeightMultiplier';

/** One Nova weigher: a raw score per host; weigh.ts normalises it and applies the multiplier. */
export interface HostWeigher {
  readonly name: string;
  readonly configKey: WeightMultiplierKey;
  rawWeight(host: HostState, request: RequestSpec): number;
}
