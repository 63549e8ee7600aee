// Whether a Network may hand out addresses. The API server checks each Network alone (CEL);
// what needs the other Networks or IP ordering is judged here, by one pure function that both
// the Network status controller (its Ready condition) and the allocator (the refusal of a
// boot) call, so a boot is refused on an invalid Network even before its status says so.
import type { Network } from '../../common/api/types.js';
import { overlaps, parseCidr, parseIp, poolOf, poolSize } from './ipv4.js';

export const NetworkReason = {
  Valid: 'Valid',
  OverlappingCIDR: 'OverlappingCIDR',
  InvalidAllocationRange: 'InvalidAllocationRange',
} as const;
export type NetworkReason = (typeof NetworkReason)[keyof typeof NetworkReason];

export type Validity = { valid: true } | { valid: false; reason: NetworkReason; message: string };

/** The older of two Networks keeps its CIDR: creation time, then name, so every replica agrees. */
export function isOlder(a: Network, b: Network): boolean {
  const ta = new Date(a.metadata.creationTimestamp ?? 0).getTime();
  const tb = new Date(b.metadata.creationTimestamp ?? 0).getTime();
  return ta !== tb ? ta < tb : a.metadata.name < b.metadata.name;
}

export function judge(net: Network, all: readonly Network[]): Validity {
  const cidr = parseCidr(net.spec.cidr);
  // Two networks sharing addresses would let one IP be handed out twice; the later one yields.
  const older = all
    // A Network being deleted still counts: its ports hold addresses until they are gone.
    .filter((o) => o.metadata.name !== net.metadata.name && isOlder(o, net))
    .find((o) => overlaps(parseCidr(o.spec.cidr), cidr));
  if (older) {
    return {
      valid: false,
      reason: NetworkReason.OverlappingCIDR,
      message: `spec.cidr ${net.spec.cidr} overlaps Network ${older.metadata.name} (${older.spec.cidr}), which was there first; delete this Network and create it with a CIDR of its own`,
    };
  }
  const range = net.spec.allocationRange;
  if (range && parseIp(range.start) > parseIp(range.end)) {
    return {
      valid: false,
      reason: NetworkReason.InvalidAllocationRange,
      message: `spec.allocationRange starts at ${range.start}, after its end ${range.end}; swap them`,
    };
  }
  if (poolSize(poolOf(net.spec)) === 0) {
    return {
      valid: false,
      reason: NetworkReason.InvalidAllocationRange,
      message: `spec.allocationRange ${range?.start}-${range?.end} holds no address but the gateway ${net.spec.gateway}; widen it`,
    };
  }
  return { valid: true };
}

/**
 * The default network: the oldest valid Network marked spec.default (if an admin marked two,
 * the choice is still the same on every replica).
 */
export function defaultNetwork(all: readonly Network[]): Network | undefined {
  return all
    .filter((n) => n.spec.default === true && !n.metadata.deletionTimestamp && judge(n, all).valid)
    .sort((a, b) => (isOlder(a, b) ? -1 : 1))[0];
}
