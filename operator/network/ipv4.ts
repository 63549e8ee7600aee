// IPv4 arithmetic for the allocator and the Network checks: addresses as unsigned 32-bit
// numbers, a Network's usable range, and overlap. Pure functions; the API server has already
// refused malformed CIDRs and addresses (CEL in the Network schema), so parsing here is strict
// and throws on what should never get past it.
import type { NetworkSpec } from '../../common/api/types.js';

export type Ipv4 = number;

export function parseIp(text: string): Ipv4 {
  const parts = text.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${text}`);
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) throw new Error(`not an IPv4 address: ${text}`);
    value = value * 256 + Number(part);
  }
  return value;
}

export function formatIp(ip: Ipv4): string {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join('.');
}

export interface Cidr {
  /** The network address. */
  base: Ipv4;
  prefix: number;
  /** The broadcast address. */
  last: Ipv4;
}

export function parseCidr(text: string): Cidr {
  const [address, prefixText, ...rest] = text.split('/');
  const prefix = Number(prefixText);
  if (!address || rest.length > 0 || !/^\d{1,2}$/.test(prefixText ?? '') || prefix > 32)
    throw new Error(`not an IPv4 CIDR: ${text}`);
  const size = 2 ** (32 - prefix);
  const base = parseIp(address) - (parseIp(address) % size);
  return { base, prefix, last: base + size - 1 };
}

export const contains = (cidr: Cidr, ip: Ipv4): boolean => ip >= cidr.base && ip <= cidr.last;

export const overlaps = (a: Cidr, b: Cidr): boolean => a.base <= b.last && b.base <= a.last;

/** The addresses a Network hands to ports, both ends included, and the one inside it never given out. */
export interface AllocationPool {
  first: Ipv4;
  last: Ipv4;
  gateway: Ipv4;
}

/**
 * spec.allocationRange, or the whole CIDR but its network and broadcast addresses (Neutron's
 * default pool). The gateway is never handed out even when inside the range.
 */
export function poolOf(spec: NetworkSpec): AllocationPool {
  const cidr = parseCidr(spec.cidr);
  const gateway = parseIp(spec.gateway);
  if (spec.allocationRange) {
    return { first: parseIp(spec.allocationRange.start), last: parseIp(spec.allocationRange.end), gateway };
  }
  return { first: cidr.base + 1, last: cidr.last - 1, gateway };
}

/** How many addresses of the pool ports can get. */
export function poolSize(pool: AllocationPool): number {
  if (pool.last < pool.first) return 0;
  const all = pool.last - pool.first + 1;
  return pool.gateway >= pool.first && pool.gateway <= pool.last ? all - 1 : all;
}

/**
 * The pool's addresses in allocation order: round robin, starting just after `after` (the
 * address handed out last) and wrapping, so an address just released is the last to come
 * round again. The gateway is skipped.
 */
export function* candidates(pool: AllocationPool, after: Ipv4 | undefined): Generator<Ipv4> {
  if (pool.last < pool.first) return;
  const span = pool.last - pool.first + 1;
  const start = after !== undefined && after >= pool.first && after <= pool.last ? after - pool.first + 1 : 0;
  for (let i = 0; i < span; i++) {
    const ip = pool.first + ((start + i) % span);
    if (ip !== pool.gateway) yield ip;
  }
}
