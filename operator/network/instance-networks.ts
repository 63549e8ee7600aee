// What the instance conductors (boot, deletion) ask of networking, in one place: which
// networks an instance attaches, its ports made, and its ports gone.
import type { Fault } from '../../common/api/faults.js';
import type { AttachedNetwork, Instance, Network } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import type { Ports } from './ports.js';
import { requestedNetworks } from './requested.js';

export class InstanceNetworks {
  constructor(
    private readonly kube: Pick<KubeClient, 'instances'>,
    private readonly networks: ObjectCache<'Network'>,
    private readonly ports: Ports,
  ) {}

  /** The Networks the instance attaches, or the Fault refusing its boot (unknown or invalid network). */
  requested(inst: Instance): Network[] | Fault {
    return requestedNetworks(inst, this.networks);
  }

  /** One Port per network; throws a NetworkExhausted Fault when a network has no address left. */
  attach(inst: Instance, networks: readonly Network[]): Promise<AttachedNetwork[]> {
    return this.ports.ensure(inst, networks);
  }

  /** Whether the instance may still hold ports (what a failed boot or a delete must give back). */
  holdsAny(inst: Instance): boolean {
    return (inst.status?.networks ?? []).length > 0 || this.ports.of(inst).length > 0;
  }

  /** Deletes the instance's ports and releases their addresses; safe to repeat. */
  release(inst: Instance, known: readonly AttachedNetwork[] = []): Promise<number> {
    return this.ports.release(inst, known);
  }

  /**
   * A boot that ended in error before any host took the instance holds no port: the boot
   * conductor releases them as it writes the error; this finishes the job after a crash in between.
   * An instance that ever ran keeps its ports in error, as Nova keeps a server's.
   */
  async settleFailedBoot(inst: Instance): Promise<void> {
    const s = inst.status;
    if (s?.vmState !== 'error' || s.host || s.launchedAt || !this.holdsAny(inst)) return;
    await this.release(inst);
    if (s.networks) await this.kube.instances.patchStatus(inst, { networks: null });
  }
}
