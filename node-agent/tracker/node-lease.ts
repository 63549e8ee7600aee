// This host's node Lease (common/api/node-lease.ts), renewed on every heartbeat as a kubelet
// renews its node's. A renewal is one merge patch, created the first time; the agent needs no
// read of any Lease, so it is granted none.
import { CoordinationV1Api, PatchStrategy, setHeaderOptions, V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { NODE_LEASE_LABEL, nodeLeaseName } from '../../common/api/node-lease.js';
import { isConflict, isNotFound } from '../../common/kube/client.js';

export type NodeLeaseApi = Pick<CoordinationV1Api, 'patchNamespacedLease' | 'createNamespacedLease'>;

export interface NodeLeaseOptions {
  namespace: string;
  host: string;
  /** Written as spec.leaseDurationSeconds: how long a renewal vouches for the host (informational). */
  durationSeconds: number;
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class NodeLease {
  constructor(
    private readonly api: NodeLeaseApi,
    private readonly opts: NodeLeaseOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** Renews the Lease, creating it when missing; throws the API server's answer when it cannot. */
  async renew(): Promise<void> {
    const { namespace } = this.opts;
    const name = nodeLeaseName(this.opts.host);
    const body = this.record(name);
    try {
      await this.api.patchNamespacedLease({ namespace, name, body }, mergePatch);
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      await this.api.createNamespacedLease({ namespace, body });
    } catch (err) {
      // Created meanwhile (a second renewal in flight): renewed all the same.
      if (!isConflict(err)) throw err;
      await this.api.patchNamespacedLease({ namespace, name, body }, mergePatch);
    }
  }

  private record(name: string): V1Lease {
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: this.opts.namespace, labels: { [NODE_LEASE_LABEL]: 'true' } },
      spec: {
        holderIdentity: this.opts.host,
        leaseDurationSeconds: this.opts.durationSeconds,
        renewTime: new V1MicroTime(this.now()),
      },
    };
  }
}
