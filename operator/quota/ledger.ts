// Nova's quota reservations as pure arithmetic over a ComputeQuota's allocations: a boot
// reserves one instance and its flavor before scheduling; a resize reserves only the
// increase; a reservation is committed (used) when the task succeeds and dropped when it
// fails, is reverted or its instance is deleted. A confirmed resize leaves the instance
// holding exactly its new flavor, so a downsize lowers what is used. Ports (one per network
// an instance attaches, Nova's port quota checked at boot) are reserved with the boot and do
// not change with a resize.
import { Fault } from '../../common/api/faults.js';
import { FaultReason } from '../../common/api/reasons.js';
import type { ComputeQuotaStatus, QuotaAllocation, QuotaAmounts } from '../../common/api/types.js';

export const QUOTA_KEYS = ['instances', 'vcpus', 'memoryMiB', 'diskGiB', 'ports'] as const;
export type QuotaKey = (typeof QUOTA_KEYS)[number];
export type Amounts = Record<QuotaKey, number>;

export const NONE: Amounts = { instances: 0, vcpus: 0, memoryMiB: 0, diskGiB: 0, ports: 0 };

export function amountsOf(a: Partial<Record<QuotaKey, number>> | undefined): Amounts {
  return {
    instances: a?.instances ?? 0,
    vcpus: a?.vcpus ?? 0,
    memoryMiB: a?.memoryMiB ?? 0,
    diskGiB: a?.diskGiB ?? 0,
    ports: a?.ports ?? 0,
  };
}

/** What an allocation records: ports only when it holds some, so instances without networks read as before. */
function recorded(amounts: Amounts): Partial<Amounts> {
  const { ports, ...rest } = amounts;
  return ports ? amounts : rest;
}

export function sum(allocations: QuotaAllocation[], state: QuotaAllocation['state']): Amounts {
  const out = { ...NONE };
  for (const a of allocations) if (a.state === state) for (const k of QUOTA_KEYS) out[k] += a[k] ?? 0;
  return out;
}

/** Per-resource increase from old to new; a shrink reserves nothing (Nova's upsize delta). */
export function increase(from: Amounts, to: Amounts): Amounts {
  const out = { ...NONE };
  for (const k of QUOTA_KEYS) out[k] = Math.max(0, to[k] - from[k]);
  return out;
}

export class QuotaExceeded extends Fault {
  constructor(readonly overs: string[]) {
    super(FaultReason.QuotaExceeded, `quota exceeded: ${overs.join('; ')}`);
  }
}

const UNIT: Record<QuotaKey, string> = { instances: '', vcpus: '', memoryMiB: ' MiB', diskGiB: ' GiB', ports: '' };

/** Every resource over its limit, in Nova's words: used + reserved, requested, limit. */
export function overLimits(hard: QuotaAmounts | undefined, allocations: QuotaAllocation[], request: Amounts): string[] {
  const used = sum(allocations, 'used');
  const reserved = sum(allocations, 'reserved');
  const overs: string[] = [];
  for (const k of QUOTA_KEYS) {
    const limit = hard?.[k];
    if (limit === undefined || request[k] === 0) continue;
    if (used[k] + reserved[k] + request[k] > limit) {
      overs.push(
        `${k}: used ${used[k] + reserved[k]}${UNIT[k]} + requested ${request[k]}${UNIT[k]} > limit ${limit}${UNIT[k]}`,
      );
    }
  }
  return overs;
}

/** Adds a reservation (idempotent per consumer); throws QuotaExceeded naming every resource over. */
export function reserve(
  hard: QuotaAmounts | undefined,
  allocations: QuotaAllocation[],
  consumer: string,
  instance: string,
  request: Amounts,
): QuotaAllocation[] {
  if (allocations.some((a) => a.consumer === consumer)) return allocations;
  const overs = overLimits(hard, allocations, request);
  if (overs.length) throw new QuotaExceeded(overs);
  return [...allocations, { consumer, instance, state: 'reserved', ...recorded(request) }];
}

export function commit(allocations: QuotaAllocation[], consumer: string): QuotaAllocation[] {
  return allocations.map((a) => (a.consumer === consumer ? { ...a, state: 'used' } : a));
}

export function release(allocations: QuotaAllocation[], match: (a: QuotaAllocation) => boolean): QuotaAllocation[] {
  return allocations.filter((a) => !match(a));
}

/**
 * A confirmed resize: the resize's allocation goes and the instance's own allocation becomes
 * `holds`, what the instance now has (its new flavor). An upsize ends where its committed
 * increase took it; a downsize, which reserved nothing, lowers what is used.
 */
export function fold(
  allocations: QuotaAllocation[],
  resizeConsumer: string,
  instanceConsumer: string,
  holds: Amounts,
): QuotaAllocation[] {
  if (!allocations.some((a) => a.consumer === resizeConsumer)) return allocations;
  // A resize keeps the instance's ports: they stay as the boot reserved them.
  const { ports: _kept, ...flavorHolds } = holds;
  return allocations
    .filter((a) => a.consumer !== resizeConsumer)
    .map((a) => (a.consumer === instanceConsumer ? { ...a, ...flavorHolds } : a));
}

export function statusOf(hard: QuotaAmounts | undefined, allocations: QuotaAllocation[]): ComputeQuotaStatus {
  const used = sum(allocations, 'used');
  const reserved = sum(allocations, 'reserved');
  const show = (k: QuotaKey) => `${used[k]}/${hard?.[k] ?? '∞'}`;
  return {
    used,
    reserved,
    allocations,
    summary: {
      instances: show('instances'),
      vcpus: show('vcpus'),
      memory: show('memoryMiB'),
      disk: show('diskGiB'),
      ports: show('ports'),
    },
  };
}
