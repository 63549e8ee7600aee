// Nova's claims._test: a request either fits in what the host can still give, or we say
// exactly which resources were short, all of them at once, so the conductor's fault message
// tells the user everything in one go instead of one resource per reschedule.
import type { Claim, ResourceAmounts } from '../../common/api/types.js';

export interface AllocationRatios {
  cpu: number;
  memory: number;
  disk: number;
}

/**
 * floor((capacity - reserved) * ratio) per resource, never negative.
 * Overcommit ratios like 1.15 make the product land a hair below an integer
 * (100 * 1.15 === 114.99999999999999); rounding to 12 significant digits first keeps
 * floor from taking away a whole unit the admin meant to give.
 */
export function allocatableOf(capacity: ResourceAmounts, reserved: ResourceAmounts, ratio: AllocationRatios): ResourceAmounts {
  const one = (cap: number, res: number, r: number): number => {
    const exact = Number(((cap - res) * r).toPrecision(12));
    return Math.max(0, Math.floor(exact));
  };
  return {
    vcpus: one(capacity.vcpus, reserved.vcpus, ratio.cpu),
    memoryMiB: one(capacity.memoryMiB, reserved.memoryMiB, ratio.memory),
    diskGiB: one(capacity.diskGiB, reserved.diskGiB, ratio.disk),
  };
}

export function allocatedOf(claims: readonly Claim[]): ResourceAmounts {
  const sum: ResourceAmounts = { vcpus: 0, memoryMiB: 0, diskGiB: 0 };
  for (const c of claims) {
    sum.vcpus += c.vcpus;
    sum.memoryMiB += c.memoryMiB;
    sum.diskGiB += c.diskGiB;
  }
  return sum;
}

// The order the reasons are reported in; the labels and units are the ones users read.
const TESTS: ReadonlyArray<{ key: keyof ResourceAmounts; label: string; unit: string }> = [
  { key: 'memoryMiB', label: 'memory', unit: ' MiB' },
  { key: 'vcpus', label: 'vcpus', unit: '' },
  { key: 'diskGiB', label: 'disk', unit: ' GiB' },
];

/**
 * [] when `request` fits in `allocatable - allocated`, else one reason per short resource.
 * Free may be negative when an admin lowered a ratio below what is already claimed; the
 * reason shows it as is, because that is the truth the admin needs to see.
 */
export function shortfalls(allocatable: ResourceAmounts, allocated: ResourceAmounts, request: ResourceAmounts): string[] {
  const reasons: string[] = [];
  for (const { key, label, unit } of TESTS) {
    const free = allocatable[key] - allocated[key];
    const requested = request[key];
    // Written as !(<=) so a NaN anywhere (a missing field upstream) fails the claim
    // instead of silently passing it.
    if (!(requested <= free)) reasons.push(`free ${label} ${free}${unit} < requested ${requested}${unit}`);
  }
  return reasons;
}

export class ClaimFailed extends Error {
  readonly reason = 'ClaimFailed';
  readonly shortfalls: readonly string[];

  constructor(
    readonly host: string,
    shortfalls: readonly string[],
  ) {
    super(`claim on ${host} failed: ${shortfalls.join('; ')}`);
    this.name = 'ClaimFailed';
    this.shortfalls = Object.freeze([...shortfalls]);
  }
}
