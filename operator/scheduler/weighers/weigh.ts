import type { HostState } from '../host-state.js';
import type { RequestSpec } from '../request.js';
import type { HostWeigher, WeightMultiplierKey } from './weigher.js';
import { compareCodeUnits } from '../../../common/order.js';

export type WeightMultipliers = Record<WeightMultiplierKey, number>;

export interface WeighedHost {
  host: HostState;
  weight: number;
}

/**
 * Nova's weights.normalize: min -> 0, max -> 1 across the candidates. Without it MiB of memory
 * would drown out vCPUs and the multipliers could not be compared. All equal -> all 0, so a
 * weigher that cannot tell hosts apart does not tilt the sum.
 */
export function normalize(values: readonly number[]): number[] {
  if (values.length === 0) return [];
  const min = Math.min(...values);
  const max = Math.max(...values);
  if (max === min) return values.map(() => 0);
  return values.map((v) => (v - min) / (max - min));
}

/** Sum over weighers of multiplier * normalised raw weight; returned sorted best first. */
export function weighHosts(
  hosts: readonly HostState[],
  request: RequestSpec,
  weighers: readonly HostWeigher[],
  multipliers: WeightMultipliers,
): WeighedHost[] {
  const totals = hosts.map(() => 0);
  for (const weigher of weighers) {
    const multiplier = multipliers[weigher.configKey];
    // Nova skips a weigher whose multiplier is 0; it also avoids 0 * NaN surprises.
    if (multiplier === 0) continue;
    const normalised = normalize(hosts.map((h) => weigher.rawWeight(h, request)));
    normalised.forEach((w, i) => {
      totals[i] = (totals[i] ?? 0) + multiplier * w;
    });
  }
  const weighed = hosts.map((host, i) => ({ host, weight: totals[i] ?? 0 }));
  // Ties break by name so the same snapshot always ranks the same way (reproducible tests, logs).
  return weighed.sort((a, b) => b.weight - a.weight || compareCodeUnits(a.host.name, b.host.name));
}
