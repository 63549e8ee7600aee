// IPAM: hands out a Network's addresses to Ports, never one address to two holders, across
// operator replicas and restarts.
//
// Why one object per address (IPAllocation, named <network>.<ip>) and not a record of every
// address in the Network's status: the API server refuses a second create of a name with
// 409, atomically, whoever sends it, so uniqueness holds with no lock, no leader and no
// read-modify-write. Kubernetes moved its own Service ClusterIP allocator the same way (KEP-1880:
// one IPAddress object per address instead of a bitmap in one RangeAllocation object), for the
// same reasons: a single status record is one hot object that every concurrent boot must
// rewrite (200 boots are 200 conflicting writes of a growing list) and it is capped by the
// object size limit, while per-address objects are independent creates, one request each, and
// a /16 costs nothing more than a /24.
//
// What this process keeps in memory only makes it fast, never correct: the cursor (round
// robin: the next address is searched after the one handed out last, so a released address is
// the last to come round again; seeded from Network status.lastAllocated after a restart), the
// addresses it has just created or seen taken (the watch-fed cache lags behind its own writes),
// and the addresses being created right now (two workers of this process never race for one).
import { Fault } from '../../common/api/faults.js';
import { FaultReason } from '../../common/api/reasons.js';
import { API_VERSION, type IPAllocation, type Network } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import { isConflict } from '../../common/kube/client.js';
import type { Logger } from '../../common/log.js';
import { candidates, formatIp, parseIp, poolOf, type Ipv4 } from './ipv4.js';

/** The Port an address is held for; the Instance uid tells a leftover of an earlier instance of the same name. */
export interface PortRef {
  namespace: string;
  name: string;
  instanceUID: string;
}

export const allocationName = (network: string, ip: string): string => `${network}.${ip}`;

/** How long an address seen taken (a 409) is skipped without asking again, should the cache not show it yet. */
const TAKEN_MEMORY_MS = 30_000;

export class IPAllocator {
  private readonly cursor = new Map<string, Ipv4>();
  /** Names being created now by this process. */
  private readonly creating = new Set<string>();
  /** Names this process created or found taken, until the cache shows them (or the memory runs out). */
  private readonly known = new Map<string, number>();

  constructor(
    private readonly kube: Pick<KubeClient, 'ipAllocations'>,
    private readonly allocations: ObjectCache<'IPAllocation'>,
    private readonly log: Logger,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** The allocation already held for this port (an earlier attempt that stopped before its Port was made). */
  heldFor(network: string, port: PortRef): IPAllocation | undefined {
    return this.allocations
      .list()
      .find(
        (a) =>
          a.spec.network === network &&
          a.spec.port.namespace === port.namespace &&
          a.spec.port.name === port.name &&
          a.spec.port.instanceUID === port.instanceUID &&
          !a.metadata.deletionTimestamp,
      );
  }

  /** Every allocation made for one instance, on any network. */
  heldByInstance(instanceUID: string): IPAllocation[] {
    return this.allocations.list().filter((a) => a.spec.port.instanceUID === instanceUID);
  }

  /**
   * Holds a free address of `net` for `port` and returns it: the one already held for it if
   * any, else the next free one after the cursor. Throws a NetworkExhausted Fault when every
   * address is held (nothing is then held for the port).
   */
  async allocate(net: Network, port: PortRef): Promise<string> {
    const network = net.metadata.name;
    const already = this.heldFor(network, port);
    // Resuming a boot: the cache says the address is held for this port; the API server must
    // agree (the sweeper may have released it meanwhile), or a new one is held.
    if (already && (await this.kube.ipAllocations.get({ name: already.metadata.name }))) return already.spec.ip;
    const pool = poolOf(net.spec);
    const held = this.heldIps(network);
    const after =
      this.cursor.get(network) ?? (net.status?.lastAllocated ? parseIp(net.status.lastAllocated) : undefined);
    let refused = 0;
    for (const candidate of candidates(pool, after)) {
      const ip = formatIp(candidate);
      const name = allocationName(network, ip);
      if (held.has(ip) || this.creating.has(name) || this.recentlyKnown(name)) continue;
      // Claimed synchronously before the first await: no other worker of this process picks it.
      this.creating.add(name);
      try {
        await this.kube.ipAllocations.create(this.allocation(network, ip, port));
        this.cursor.set(network, candidate);
        this.known.set(name, this.now());
        return ip;
      } catch (err) {
        if (!isConflict(err)) throw err;
        // Another replica (or an earlier life of this one) holds it; the cache will show it.
        this.known.set(name, this.now());
        refused++;
      } finally {
        this.creating.delete(name);
      }
    }
    if (refused > 0) this.log.debug({ network, refused }, 'addresses found taken by another writer');
    throw new Fault(
      FaultReason.NetworkExhausted,
      `no free address left on Network ${network} (${this.describePool(net)}): every address is held by a port; ` +
        `delete instances on it, widen spec.allocationRange, or attach another network`,
    );
  }

  /** Gives an address back; a missing allocation is not an error. */
  async release(network: string, ip: string): Promise<void> {
    const name = allocationName(network, ip);
    await this.kube.ipAllocations.delete({ name });
    this.known.delete(name);
  }

  /** Addresses of `network` held according to the cache. */
  private heldIps(network: string): Set<string> {
    const held = new Set<string>();
    for (const a of this.allocations.list()) if (a.spec.network === network) held.add(a.spec.ip);
    return held;
  }

  private recentlyKnown(name: string): boolean {
    const at = this.known.get(name);
    if (at === undefined) return false;
    if (this.now() - at > TAKEN_MEMORY_MS) {
      this.known.delete(name);
      return false;
    }
    return true;
  }

  private describePool(net: Network): string {
    const range = net.spec.allocationRange;
    return range ? `range ${range.start}-${range.end}` : `${net.spec.cidr}`;
  }

  private allocation(network: string, ip: string, port: PortRef): IPAllocation {
    return {
      apiVersion: API_VERSION,
      kind: 'IPAllocation',
      metadata: {
        name: allocationName(network, ip),
        labels: { 'compute.kubenova.io/network': network },
      },
      spec: { network, ip, port: { ...port } },
    };
  }
}
