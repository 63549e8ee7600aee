// Networking as one host's agent has it: the Networks it reads (an informer on the
// cluster-scoped kind, read-only; the operator owns every write), this host's data plane (Linux
// bridges with the libvirt driver, a simulated one with the fake driver, which runs
// unprivileged and must leave the machine's network alone), the driver that plugs before every
// start, and the audit's clean-up of unused bridges.
import type { Instance } from '../../common/api/types.js';
import type { ObjectCache } from '../../common/kube/api.js';
import type { Kube } from '../../common/kube/client.js';
import { Informer } from '../../common/kube/informer.js';
import type { Logger } from '../../common/log.js';
import type { NicSpec, VirtDriver } from '../driver/driver.js';
import { LinuxBridges, SimulatedNetwork, type HostNetwork } from './host-network.js';
import { instanceNics } from './instance-nics.js';
import { IpCommand, ipRunner } from './ip-command.js';
import { pruneUnusedBridges } from './network-audit.js';
import { PluggingDriver } from './plugging-driver.js';
import { parseUplinks, uplinkResolver } from './uplinks.js';

/** The NICs of an instance on this host; undefined keeps the domain's (see DomainSpec.nics). */
export type InstanceNicsOf = (inst: Instance) => NicSpec[] | undefined;

/** The data plane for a driver: real bridges only where real guests run. */
export function hostNetworkFor(driver: Pick<VirtDriver, 'kind'>, uplinks = ''): HostNetwork {
  if (driver.kind === 'fake') return new SimulatedNetwork();
  return new LinuxBridges({ ip: new IpCommand(ipRunner()), uplinks: uplinkResolver(parseUplinks(uplinks)) });
}

export class AgentNetworking {
  /** The driver the agent's reconcilers use: it plugs before every start. */
  readonly driver: VirtDriver;
  readonly network: HostNetwork;
  readonly #networks: Informer<'Network'> | undefined;
  readonly #cache: ObjectCache<'Network'>;

  /**
   * `kube` undefined: no Network informer (tests that give `networks` themselves). `uplinks` is
   * the --network-uplinks flag (NETWORK=INTERFACE, ...).
   */
  constructor(opts: {
    kube?: Kube;
    driver: VirtDriver;
    log: Logger;
    uplinks?: string;
    network?: HostNetwork;
    networks?: ObjectCache<'Network'>;
  }) {
    this.network = opts.network ?? hostNetworkFor(opts.driver, opts.uplinks);
    this.driver = new PluggingDriver(opts.driver, this.network);
    this.#networks = opts.networks || !opts.kube ? undefined : new Informer(opts.kube, 'Network', opts.log);
    this.#cache = opts.networks ?? this.#networks ?? { get: () => undefined, list: () => [] };
  }

  /** The instance's NICs here, from its ports and their Networks. */
  readonly nicsOf: InstanceNicsOf = (inst) => instanceNics(inst, (name) => this.#cache.get(name));

  /** Lists the Networks before the host starts work, so a first boot finds its network. */
  async start(): Promise<void> {
    await this.#networks?.start();
  }

  async stop(): Promise<void> {
    await this.#networks?.stop();
  }

  /** The audit's share: removes the bridges no domain here uses; returns their names. */
  prune(): Promise<string[]> {
    return pruneUnusedBridges(this.driver, this.network);
  }
}
