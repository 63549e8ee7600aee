// Nova's claims._test: a request either fits in what the host can still give, or we say
// exactly which resources were short, all of them at once, so the conductor's fault message
// tells the user everything in one go instead of one resource per reschedule.
import { Fault } from '../../common/api/faults.js';
import { FaultReason } from '../../common/api/reasons.js';
import type { Claim, ResourceAmounts, ResourceName } from '../../common/api/types.js';

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
export function allocatableOf(
  capacity: ResourceAmounts,
  reserved: ResourceAmounts,
  ratio: AllocationRatios,
): ResourceAmounts {
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

// The order shortfalls are reported in; the labels and units are the ones users read.
const TESTS: ReadonlyArray<{ key: ResourceName; label: ShortResource; unit: string }> = [
  { key: 'memoryMiB', label: 'memory', unit: ' MiB' },
  { key: 'vcpus', label: 'vcpus', unit: '' },
  { key: 'diskGiB', label: 'disk', unit: ' GiB' },
];

/** The `resource` label of claim-failure metrics and the word a shortfall uses. */
export type ShortResource = 'vcpus' | 'memory' | 'disk';

/** One resource a claim did not fit in: free may be negative (an admin lowered a ratio). */
export interface Shortfall {
  resource: ResourceName;
  free: number;
  requested: number;
}

export function shortResource(s: Shortfall): ShortResource {
  return TESTS.find((t) => t.key === s.resource)!.label;
}

/** "free memory 512 MiB < requested 2048 MiB": the truth the admin needs to see, as is. */
export function describeShortfall(s: Shortfall): string {
  const { label, unit } = TESTS.find((t) => t.key === s.resource)!;
  return `free ${label} ${s.free}${unit} < requested ${s.requested}${unit}`;
}

/** [] when `request` fits in `allocatable - allocated`, else one shortfall per short resource. */
export function shortfalls(
  allocatable: ResourceAmounts,
  allocated: ResourceAmounts,
  request: ResourceAmounts,
): Shortfall[] {
  const short: Shortfall[] = [];
  for (const { key } of TESTS) {
    const free = allocatable[key] - allocated[key];
    const requested = request[key];
    // Written as !(<=) so a NaN anywhere (a missing field upstream) fails the claim
    // instead of silently passing it.
    if (!(requested <= free)) short.push({ resource: key, free, requested });
  }
  return short;
}

/**
 * A claim that did not hold: the resources that were short and the placement rules that
 * refused it (a server group checked under the host's lock), all at once.
 */
export class ClaimFailed extends Fault {
  readonly shortfalls: readonly Shortfall[];
  readonly refusals: readonly string[];

  constructor(
    readonly host: string,
    shortfalls: readonly Shortfall[],
    refusals: readonly string[] = [],
  ) {
    const reasons = [...shortfalls.map(describeShortfall), ...refusals];
    super(FaultReason.ClaimFailed, `claim on ${host} failed: ${reasons.join('; ')}`);
    this.shortfalls = Object.freeze([...shortfalls]);
    this.refusals = Object.freeze([...refusals]);
  }

  /** Every reason in the words users read. */
  get reasons(): string[] {
    return [...this.shortfalls.map(describeShortfall), ...this.refusals];
  }
}
