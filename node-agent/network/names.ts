// The names of a network's interfaces on a host. Linux allows 15 characters and network names
// are Kubernetes names of up to 253, so both are derived from a hash of the network's name:
// stable across agents, restarts and hosts, and recognisable by their prefix alone, which is how
// the audit tells this agent's bridges from everything else on the host.
import { createHash } from 'node:crypto';

/** Prefix of the bridge of a network: `kn-` and 12 hex digits (48 bits of SHA-256) is 15 characters. */
export const BRIDGE_PREFIX = 'kn-';
/** Prefix of the conventional uplink of a network (see uplinks.ts). */
export const UPLINK_PREFIX = 'ku-';

const HASH_DIGITS = 12;
const BRIDGE_NAME = new RegExp(`^${BRIDGE_PREFIX}[0-9a-f]{${HASH_DIGITS}}$`);

function networkHash(network: string): string {
  if (network.length === 0) throw new Error('a network name is needed to name its interfaces');
  return createHash('sha256').update(`kubenova-network:${network}`).digest('hex').slice(0, HASH_DIGITS);
}

/** The Linux bridge that carries `network` on every host. */
export function bridgeName(network: string): string {
  return `${BRIDGE_PREFIX}${networkHash(network)}`;
}

/** The interface a host offers as `network`'s way out when no uplink is configured for it. */
export function conventionalUplinkName(network: string): string {
  return `${UPLINK_PREFIX}${networkHash(network)}`;
}

/** Whether an interface name is one of kubenova's bridges (and so the audit's to remove when unused). */
export function isNetworkBridge(name: string): boolean {
  return BRIDGE_NAME.test(name);
}
