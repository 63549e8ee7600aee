// Which interface takes a network off this host. An admin names it per network (the chart's
// nodeAgent.network.uplinks, KUBENOVA_NETWORK_UPLINKS="net-a=eth1,net-b=bond0.100"); a network
// without an entry uses the interface named conventionalUplinkName(network) (`ku-` and the
// network's hash) when the host has one, which is how the local real-node environment offers
// its networks; and with neither, the bridge stays local to the host (guests on it reach each
// other, nothing beyond).
import type { LinkInfo } from './ip-command.js';
import { isInterfaceName } from '../driver/nics.js';
import { conventionalUplinkName } from './names.js';

/** The uplink link of `network` among this host's links, or undefined for a host-only bridge. */
export type UplinkResolver = (network: string, links: readonly LinkInfo[]) => LinkInfo | undefined;

/** Parses "net-a=eth1,net-b=bond0.100" (whitespace and empty entries allowed) into network -> interface. */
export function parseUplinks(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split(/[,\s]+/)) {
    if (!raw) continue;
    const eq = raw.indexOf('=');
    const network = raw.slice(0, eq).trim();
    const iface = raw.slice(eq + 1).trim();
    if (eq <= 0 || !iface) throw new Error(`uplink ${JSON.stringify(raw)}: give NETWORK=INTERFACE`);
    if (!isInterfaceName(iface))
      throw new Error(
        `uplink ${JSON.stringify(raw)}: ${JSON.stringify(iface)} is not an interface name of at most 15 characters`,
      );
    if (out.has(network)) throw new Error(`uplink of network ${network} is given twice`);
    out.set(network, iface);
  }
  return out;
}

export function uplinkResolver(configured: ReadonlyMap<string, string>): UplinkResolver {
  return (network, links) => {
    const named = configured.get(network);
    if (named !== undefined) {
      const link = links.find((l) => l.name === named);
      // Configured but missing is a broken host, said plainly; a host-only bridge would hide it.
      if (!link) throw new Error(`uplink ${named} of network ${network} is not on this host`);
      return link;
    }
    return links.find((l) => l.name === conventionalUplinkName(network));
  };
}
