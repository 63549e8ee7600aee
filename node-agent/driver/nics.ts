// What both drivers check of a domain's NICs before they write them into a definition, and how
// a guest is told its addresses. Pure, so the rules are unit-tested once for both drivers.
import { DriverError, type NicSpec } from './driver.js';

/** Linux's IFNAMSIZ less the terminating NUL. */
export const MAX_INTERFACE_NAME = 15;

const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
// What `ip link` accepts as a name and needs no quoting anywhere: no '/', no whitespace, no ':'.
const INTERFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// Port and Network names are Kubernetes object names (DNS labels or subdomains).
const OBJECT_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

export function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

export function isInterfaceName(s: string): boolean {
  return s.length <= MAX_INTERFACE_NAME && INTERFACE_NAME.test(s);
}

/** What is wrong with one NIC, as sentences naming its port; [] when it can be defined. */
export function nicProblems(nic: NicSpec): string[] {
  const p: string[] = [];
  const who = `port ${JSON.stringify(nic.port)}`;
  if (!OBJECT_NAME.test(nic.port)) p.push(`${who}: the port name is not a Kubernetes object name`);
  if (!OBJECT_NAME.test(nic.network)) p.push(`${who}: network ${JSON.stringify(nic.network)} is not an object name`);
  if (!MAC.test(nic.mac)) p.push(`${who}: MAC ${JSON.stringify(nic.mac)} is not lower-case aa:bb:cc:dd:ee:ff`);
  // The low bit of the first octet marks a multicast address, which no NIC may have.
  else if ((parseInt(nic.mac.slice(0, 2), 16) & 1) === 1) p.push(`${who}: MAC ${nic.mac} is a multicast address`);
  if (!isIPv4(nic.ip)) p.push(`${who}: address ${JSON.stringify(nic.ip)} is not an IPv4 address`);
  if (!Number.isInteger(nic.prefixLength) || nic.prefixLength < 1 || nic.prefixLength > 32)
    p.push(`${who}: prefix length ${nic.prefixLength} is not 1 to 32`);
  if (nic.gateway !== undefined && !isIPv4(nic.gateway))
    p.push(`${who}: gateway ${JSON.stringify(nic.gateway)} is not an IPv4 address`);
  // 68 is IPv4's minimum; 65535 the most a Linux bridge takes.
  if (!Number.isInteger(nic.mtu) || nic.mtu < 68 || nic.mtu > 65535)
    p.push(`${who}: MTU ${nic.mtu} is not 68 to 65535`);
  if (!isInterfaceName(nic.bridge))
    p.push(`${who}: bridge ${JSON.stringify(nic.bridge)} is not an interface name of at most 15 characters`);
  return p;
}

/** Throws DriverError, naming every problem, unless every NIC can be defined and no two share a MAC or port. */
export function checkNics(op: string, uid: string, nics: readonly NicSpec[]): void {
  const problems = nics.flatMap(nicProblems);
  const seen = new Map<string, string>();
  for (const nic of nics) {
    for (const [what, key] of [
      ['MAC', nic.mac],
      ['port', nic.port],
    ] as const) {
      const k = `${what}:${key}`;
      if (seen.has(k)) problems.push(`ports ${seen.get(k)} and ${nic.port} have the same ${what} ${key}`);
      else seen.set(k, nic.port);
    }
  }
  if (problems.length > 0) throw new DriverError(op, uid, `refusing the NICs: ${problems.join('; ')}`);
}

/**
 * The kernel command-line argument that tells the guest one NIC's configuration:
 * `kubenova.nic=<mac>,<ip>/<prefix>,<gateway or empty>,<mtu>`, one per NIC. The tiny guest
 * is booted directly from its kernel and has no metadata service, so the command line is the
 * only thing it reads before its network is up; the guest finds its interface by the MAC.
 */
export function nicKernelArgument(nic: NicSpec): string {
  return `kubenova.nic=${nic.mac},${nic.ip}/${nic.prefixLength},${nic.gateway ?? ''},${nic.mtu}`;
}

/** The image's command line followed by one kubenova.nic= per NIC. */
export function guestCommandLine(base: string, nics: readonly NicSpec[]): string {
  return [base, ...nics.map(nicKernelArgument)].filter((s) => s.length > 0).join(' ');
}

/** A copy with only the NicSpec fields, in a fixed order, so definitions compare and serialise the same. */
export function normalizeNic(nic: NicSpec): NicSpec {
  const out: NicSpec = {
    port: nic.port,
    network: nic.network,
    mac: nic.mac,
    ip: nic.ip,
    prefixLength: nic.prefixLength,
    mtu: nic.mtu,
    bridge: nic.bridge,
  };
  if (nic.gateway !== undefined) out.gateway = nic.gateway;
  return out;
}
