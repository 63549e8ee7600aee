// Names and addresses of one environment, all derived from its state directory so that two
// environments side by side never share a bridge, a namespace, a cgroup or an address, and
// a later run in the same directory finds what an earlier one left.
//
// Addresses come from 10.224.0.0/11, split into 32 slots of a /16; an environment takes the
// slot its id points at, or the next one free on this machine. Inside slot S:
//   10.S.0.0/24    the environment bridge: .1 this machine (kube-apiserver), .10+i node i
//   10.S.1.0/24    Service ClusterIPs (10.S.1.1 is the `kubernetes` Service)
//   10.S.64.0/24   the guest network (a kubenova Network): .1 this machine, its gateway, on a
//                  bridge of its own that every node's uplink veth joins
//   10.S.128.0/17  pods: node i gets 10.S.(128+i).0/24
import { createHash } from 'node:crypto';

export const SLOT_BASE = [10, 224] as const;
export const SLOTS = 32;
export const MAX_NODES = 100;

export interface NodePlan {
  name: string;
  index: number;
  /** The node's address on the environment bridge: its InternalIP. */
  ip: string;
  podCidr: string;
  /** Network namespace name (`ip netns`) and its path for nsenter. */
  netns: string;
  netnsPath: string;
  /** This machine's end of the node's veth pair, on the bridge. */
  hostVeth: string;
  /** This machine's end of the node's uplink into the guest network, on the guest bridge. */
  guestVeth: string;
  /** The kubelet's cgroupRoot, and where the node's containerd shims are kept. */
  cgroupRoot: string;
  shimCgroup: string;
}

/** What marks everything an environment makes on this machine: derived from its state directory alone. */
export interface EnvironmentNames {
  /** 8 hex digits of the state directory's hash. */
  id: string;
  stateDir: string;
  bridge: string;
  /** Short paths under /run: unix sockets allow 107 bytes, a state directory may be deep. */
  runDir: string;
  /** Parent of the nodes' cgroups, in every hierarchy. */
  cgroupParent: string;
  /** Comment on this machine's iptables rules of the environment. */
  ruleComment: string;
  /** Prefix of network namespace names and of host veth names. */
  netnsPrefix: string;
  vethPrefix: string;
}

export interface EnvironmentPlan extends EnvironmentNames {
  slot: number;
  bridgeCidr: string;
  /** This machine's address on the bridge; kube-apiserver binds here. */
  hostIp: string;
  serviceCidr: string;
  /** All pod addresses of the environment (kube-proxy's clusterCIDR). */
  clusterCidr: string;
  /** The guest network's subnet, its gateway (this machine) and the bridge that carries it here. */
  guestCidr: string;
  guestGateway: string;
  guestBridge: string;
  nodes: NodePlan[];
}

export function environmentId(stateDir: string): string {
  return createHash('sha256').update(stateDir).digest('hex').slice(0, 8);
}

/** The slot an id prefers; the caller moves on to the next while a slot is taken. */
export function preferredSlot(id: string): number {
  return Number.parseInt(id.slice(0, 6), 16) % SLOTS;
}

export function slotCidr(slot: number): string {
  return `${SLOT_BASE[0]}.${SLOT_BASE[1] + slot}.0.0/16`;
}

/** First free slot starting from the id's own, or an error when all are taken. */
export function chooseSlot(id: string, taken: (slotCidr: string) => boolean): number {
  const first = preferredSlot(id);
  for (let k = 0; k < SLOTS; k++) {
    const slot = (first + k) % SLOTS;
    if (!taken(slotCidr(slot))) return slot;
  }
  throw new Error(
    `every address slot in 10.224.0.0/11 overlaps a route or address on this machine; stop an environment (or remove the route) and retry`,
  );
}

export function environmentNames(stateDir: string): EnvironmentNames {
  const id = environmentId(stateDir);
  return {
    id,
    stateDir,
    bridge: `knbr-${id}`,
    runDir: `/run/kubenova-${id}`,
    cgroupParent: `/kubenova-${id}`,
    ruleComment: `kubenova-${id}`,
    netnsPrefix: `kn-${id}-`,
    vethPrefix: `kn${id}-`,
  };
}

export function planEnvironment(stateDir: string, nodeCount: number, slot: number): EnvironmentPlan {
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > MAX_NODES)
    throw new Error(`--nodes ${nodeCount}: give a whole number from 1 to ${MAX_NODES}`);
  const names = environmentNames(stateDir);
  const net = `${SLOT_BASE[0]}.${SLOT_BASE[1] + slot}`;
  const nodes = Array.from({ length: nodeCount }, (_, index): NodePlan => {
    const name = `node-${index + 1}`;
    return {
      name,
      index,
      ip: `${net}.0.${10 + index}`,
      podCidr: `${net}.${128 + index}.0/24`,
      netns: `${names.netnsPrefix}${name}`,
      netnsPath: `/run/netns/${names.netnsPrefix}${name}`,
      // IFNAMSIZ: 15 characters at most (kn + 8 + - + up to 3 digits, and g).
      hostVeth: `${names.vethPrefix}${index + 1}`,
      guestVeth: `${names.vethPrefix}${index + 1}g`,
      cgroupRoot: `${names.cgroupParent}/${name}`,
      shimCgroup: `${names.cgroupParent}/${name}-shims`,
    };
  });
  return {
    ...names,
    slot,
    bridgeCidr: `${net}.0.0/24`,
    hostIp: `${net}.0.1`,
    serviceCidr: `${net}.1.0/24`,
    clusterCidr: `${net}.128.0/17`,
    guestCidr: `${net}.64.0/24`,
    guestGateway: `${net}.64.1`,
    guestBridge: `${names.vethPrefix}g`,
    nodes,
  };
}

/** Whether two IPv4 CIDRs share any address. */
export function cidrsOverlap(a: string, b: string): boolean {
  const [na, la] = parseCidr(a);
  const [nb, lb] = parseCidr(b);
  const len = Math.min(la, lb);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return (na & mask) >>> 0 === (nb & mask) >>> 0;
}

export function parseCidr(cidr: string): [number, number] {
  const [addr = '', lenText = '32'] = cidr.split('/');
  const octets = addr.split('.').map(Number);
  const len = Number(lenText);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255) || !(len >= 0 && len <= 32))
    throw new Error(`${cidr}: not an IPv4 address or CIDR`);
  const n = octets.reduce((acc, o) => ((acc << 8) | o) >>> 0, 0);
  return [n, len];
}
