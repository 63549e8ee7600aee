// This host's data plane (Nova's os-vif with the Linux bridge plugin): one Linux bridge per
// network, made before a guest on that network starts here and removed once no guest here
// uses it. Two implementations: LinuxBridges drives `ip` (the libvirt driver's hosts), and
// SimulatedNetwork only records (the fake driver's, which must run unprivileged and leave the
// machine's network alone).
import type { NicSpec } from '../driver/driver.js';
import { IpCommand, type LinkInfo } from './ip-command.js';
import { isNetworkBridge } from './names.js';
import type { UplinkResolver } from './uplinks.js';

export interface HostNetwork {
  readonly kind: 'linux-bridge' | 'simulated';
  /**
   * Nova's plug_vifs (and setup_networks_on_host): every bridge the NICs name exists, is up,
   * has its network's MTU and, when the host has one for the network, its uplink. Idempotent;
   * called before any start of a guest here.
   */
  plug(nics: readonly NicSpec[]): Promise<void>;
  /**
   * Says that the start a plug was for has ended (its domain is defined, or it failed): from
   * then on the domains say whether the bridges are used. Until then the audit keeps them.
   */
  settled(nics: readonly NicSpec[]): void;
  /**
   * The audit's clean-up: removes kubenova's bridges on this host that no domain here uses
   * (`inUse` is every bridge the defined domains name), that no guest is attached to and that
   * were not plugged moments ago (a start in progress). Returns the names removed. Safe after a
   * crash: it needs no record of what an earlier run made.
   */
  prune(inUse: ReadonlySet<string>): Promise<string[]>;
}

/** One bridge a set of NICs needs, with the network it carries. */
export interface BridgeNeed {
  bridge: string;
  network: string;
  mtu: number;
}

/** The bridges `nics` need, one each; two NICs that want one bridge with different MTUs or networks are an error. */
export function bridgesFor(nics: readonly NicSpec[]): BridgeNeed[] {
  const needs = new Map<string, BridgeNeed>();
  for (const nic of nics) {
    const seen = needs.get(nic.bridge);
    if (!seen) needs.set(nic.bridge, { bridge: nic.bridge, network: nic.network, mtu: nic.mtu });
    else if (seen.network !== nic.network || seen.mtu !== nic.mtu)
      throw new Error(
        `bridge ${nic.bridge} is asked for network ${seen.network} (MTU ${seen.mtu}) and network ${nic.network} (MTU ${nic.mtu})`,
      );
  }
  return [...needs.values()];
}

/** Runs the work for one bridge after the work already queued for it, so a plug and a prune never interleave. */
class PerBridgeQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(bridge: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(bridge) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#tails.set(bridge, tail);
    void tail.then(() => {
      if (this.#tails.get(bridge) === tail) this.#tails.delete(bridge);
    });
    return next;
  }
}

export interface LinuxBridgesOptions {
  ip: IpCommand;
  /** The uplink of a network on this host, if any (uplinks.ts). */
  uplinks: UplinkResolver;
  /**
   * How long after a start settled its bridges are kept even when no domain names them: the
   * audit's list of domains may have been read before the domain was defined. Default 30 s.
   */
  pluggedGraceMs?: number;
  now?: () => number;
}

export class LinuxBridges implements HostNetwork {
  readonly kind = 'linux-bridge' as const;
  readonly #ip: IpCommand;
  readonly #uplinks: UplinkResolver;
  readonly #graceMs: number;
  readonly #now: () => number;
  readonly #queue = new PerBridgeQueue();
  /** When each bridge was last plugged or settled by this process. */
  readonly #plugged = new Map<string, number>();
  /** Starts in progress per bridge (plugged, not settled): the audit never removes their bridges. */
  readonly #starting = new Map<string, number>();

  constructor(opts: LinuxBridgesOptions) {
    this.#ip = opts.ip;
    this.#uplinks = opts.uplinks;
    this.#graceMs = opts.pluggedGraceMs ?? 30_000;
    this.#now = opts.now ?? (() => Date.now());
  }

  async plug(nics: readonly NicSpec[]): Promise<void> {
    const needs = bridgesFor(nics);
    // Counted before anything is made, so a prune running meanwhile leaves them all alone.
    for (const need of needs) this.#starting.set(need.bridge, (this.#starting.get(need.bridge) ?? 0) + 1);
    try {
      await this.#plugAll(needs);
    } catch (err) {
      this.settled(nics);
      throw err;
    }
  }

  settled(nics: readonly NicSpec[]): void {
    for (const need of bridgesFor(nics)) {
      const left = (this.#starting.get(need.bridge) ?? 1) - 1;
      if (left > 0) this.#starting.set(need.bridge, left);
      else this.#starting.delete(need.bridge);
      this.#plugged.set(need.bridge, this.#now());
    }
  }

  async #plugAll(needs: BridgeNeed[]): Promise<void> {
    for (const need of needs) {
      await this.#queue.run(need.bridge, async () => {
        this.#plugged.set(need.bridge, this.#now());
        await this.#ensure(need);
        this.#plugged.set(need.bridge, this.#now());
      });
    }
  }

  async #ensure(need: BridgeNeed): Promise<void> {
    const ip = this.#ip;
    let links = await ip.links();
    let bridge = links.find((l) => l.name === need.bridge);
    if (bridge && bridge.kind !== 'bridge')
      throw new Error(
        `interface ${need.bridge} on this host is a ${bridge.kind ?? 'device'}, not network ${need.network}'s bridge`,
      );
    if (!bridge) {
      await ip.addBridge(need.bridge, need.mtu);
      links = await ip.links();
      bridge = links.find((l) => l.name === need.bridge);
      if (!bridge) throw new Error(`bridge ${need.bridge} of network ${need.network} is not there after creating it`);
    }
    if (bridge.mtu !== need.mtu) await ip.setMtu(need.bridge, need.mtu);
    const uplink = this.#uplinks(need.network, links);
    if (uplink) await this.#attachUplink(need, uplink);
    if (!bridge.up) await ip.setUp(need.bridge);
  }

  async #attachUplink(need: BridgeNeed, uplink: LinkInfo): Promise<void> {
    const ip = this.#ip;
    if (uplink.kind === 'bridge')
      throw new Error(`uplink ${uplink.name} of network ${need.network} is a bridge; give a device or veth to enslave`);
    if (uplink.master !== undefined && uplink.master !== need.bridge)
      throw new Error(
        `uplink ${uplink.name} of network ${need.network} is already enslaved to ${uplink.master}, not to ${need.bridge}`,
      );
    // The same MTU on both sides of the bridge, or frames of the network's size are dropped on the way out.
    if (uplink.mtu !== need.mtu) await ip.setMtu(uplink.name, need.mtu);
    if (uplink.master !== need.bridge) await ip.setMaster(uplink.name, need.bridge);
    if (!uplink.up) await ip.setUp(uplink.name);
  }

  async prune(inUse: ReadonlySet<string>): Promise<string[]> {
    const links = await this.#ip.links();
    const removed: string[] = [];
    for (const br of links) {
      if (br.kind !== 'bridge' || !isNetworkBridge(br.name) || inUse.has(br.name)) continue;
      const gone = await this.#queue.run(br.name, async () => {
        if (this.#starting.has(br.name)) return false;
        const plugged = this.#plugged.get(br.name);
        if (plugged !== undefined && this.#now() - plugged < this.#graceMs) return false;
        // Read again inside the queue: a guest attached meanwhile (libvirt's tap) keeps the bridge.
        const now = await this.#ip.links();
        if (!now.some((l) => l.name === br.name)) return false;
        const ports = now.filter((l) => l.master === br.name);
        // A tap (libvirt's vnetN, kind tun) is a guest's; anything else is an uplink.
        if (ports.some((p) => p.kind === 'tun')) return false;
        await this.#ip.delete(br.name);
        this.#plugged.delete(br.name);
        return true;
      });
      if (gone) removed.push(br.name);
    }
    return removed;
  }
}

/**
 * The fake driver's data plane: it remembers which bridges are plugged (so tests and the
 * scheduler benchmark see the same calls as on a real host) and touches nothing.
 */
export class SimulatedNetwork implements HostNetwork {
  readonly kind = 'simulated' as const;
  /** Bridge name to the MTU it was plugged with. */
  readonly bridges = new Map<string, number>();
  /** Every plug, in order, for tests. */
  readonly plugs: NicSpec[][] = [];

  plug(nics: readonly NicSpec[]): Promise<void> {
    const needs = bridgesFor(nics);
    this.plugs.push(nics.map((n) => ({ ...n })));
    for (const need of needs) this.bridges.set(need.bridge, need.mtu);
    return Promise.resolve();
  }

  settled(): void {}

  prune(inUse: ReadonlySet<string>): Promise<string[]> {
    const removed = [...this.bridges.keys()].filter((b) => !inUse.has(b));
    for (const b of removed) this.bridges.delete(b);
    return Promise.resolve(removed);
  }
}
