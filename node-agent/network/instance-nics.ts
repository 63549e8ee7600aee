// The NICs of an Instance on this host: its ports (status.networks, which the operator writes
// once each Port exists and which keep their MAC and address through every move) joined with
// what their Networks say (prefix, gateway, MTU) and this host's bridge for each network.
import type { Instance, Network } from '../../common/api/types.js';
import type { NicSpec } from '../driver/driver.js';
import { bridgeName } from './names.js';

/** Linux's default, and the Network's when it names none. */
export const DEFAULT_MTU = 1500;

/** Reads a Network by name (the agent's informer cache). */
export type NetworkLookup = (name: string) => Network | undefined;

/** A port whose Network this host cannot read (yet): the step is retried, nothing is started without it. */
export class NetworkUnknown extends Error {
  constructor(
    readonly network: string,
    readonly port: string,
  ) {
    super(`network ${network} of port ${port} is not known on this host (yet)`);
    this.name = 'NetworkUnknown';
  }
}

function prefixLengthOf(cidr: string): number {
  const m = /^\d{1,3}(?:\.\d{1,3}){3}\/(\d{1,2})$/.exec(cidr);
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 1 && n <= 32)) throw new Error(`network CIDR ${JSON.stringify(cidr)} is not an IPv4 CIDR`);
  return n;
}

/**
 * The instance's NICs in the order of its status.networks; undefined when the instance has no
 * status.networks at all (an instance from before networking, or whose ports are not written
 * yet), which the drivers read as "keep the domain's".
 */
export function instanceNics(inst: Instance, networks: NetworkLookup): NicSpec[] | undefined {
  const attached = inst.status?.networks;
  if (attached === undefined) return undefined;
  return attached.map((a): NicSpec => {
    const net = networks(a.network);
    if (!net) throw new NetworkUnknown(a.network, a.port);
    const nic: NicSpec = {
      port: a.port,
      network: a.network,
      // Neutron keeps MACs lower-case; a port written otherwise still names the same NIC.
      mac: a.mac.toLowerCase(),
      ip: a.ip,
      prefixLength: prefixLengthOf(net.spec.cidr),
      mtu: net.spec.mtu ?? DEFAULT_MTU,
      bridge: bridgeName(a.network),
    };
    if (net.spec.gateway) nic.gateway = net.spec.gateway;
    return nic;
  });
}
