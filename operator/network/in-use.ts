// A Network is not deleted while ports hold its addresses (Neutron refuses to delete a network
// in use): a finalizer holds it, and is removed once its last address is released. While it
// waits, its Ready condition says how many addresses are still held and what to do, and no
// boot attaches to it (a Network being deleted counts as gone for new instances, but still
// counts for overlap, so no other Network takes its addresses before its ports are gone).
import { setCondition } from '../../common/api/conditions.js';
import { EventReason } from '../../common/api/reasons.js';
import type { Network } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';

export const NETWORK_FINALIZER = 'compute.kubenova.io/network-in-use';

export class NetworkInUse {
  constructor(
    private readonly kube: Pick<KubeClient, 'networks'>,
    private readonly events: EventRecorder,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** The Network held by the finalizer, as written (the next write starts from its version). */
  async hold(net: Network): Promise<Network> {
    const finalizers = net.metadata.finalizers ?? [];
    if (finalizers.includes(NETWORK_FINALIZER)) return net;
    return this.kube.networks.patch(
      { name: net.metadata.name },
      { metadata: { resourceVersion: net.metadata.resourceVersion, finalizers: [...finalizers, NETWORK_FINALIZER] } },
    );
  }

  /** A deleted Network: lets it go once nothing is held on it, else says why it waits. */
  async deleting(net: Network, held: number): Promise<void> {
    const finalizers = net.metadata.finalizers ?? [];
    if (!finalizers.includes(NETWORK_FINALIZER)) return;
    if (held === 0) {
      await this.kube.networks.patch(
        { name: net.metadata.name },
        {
          metadata: {
            resourceVersion: net.metadata.resourceVersion,
            finalizers: finalizers.filter((f) => f !== NETWORK_FINALIZER),
          },
        },
      );
      return;
    }
    const message = `being deleted: ${held} address${held === 1 ? ' is' : 'es are'} still held by ports; delete the instances attached to it (kubectl get pt -A shows them)`;
    const ready = net.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready?.reason === 'InUse' && ready.message === message) return;
    const conditions = setCondition(
      net.status?.conditions,
      { type: 'Ready', status: 'False', reason: 'InUse', message },
      this.now(),
      net.metadata.generation,
    );
    await this.kube.networks.patchStatus(net, { conditions, allocated: held });
    if (ready?.reason !== 'InUse') this.events.record(net, 'Warning', EventReason.NetworkInUse, message);
  }
}
