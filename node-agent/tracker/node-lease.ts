// This host's node Lease (common/api/node-lease.ts), renewed on every heartbeat as a kubelet
// renews its node's. A renewal is one merge patch, created the first time; the agent needs no
// read of any Lease, so it is granted none. The requests go through the generic object API
// (coordination.k8s.io is served under /apis like any group): the typed Lease API converts every
// body and answer through its models, which cost the agent more than the rest of a heartbeat.
import { V1MicroTime, type CustomObjectsApi } from '@kubernetes/client-node';
import { NODE_LEASE_LABEL, nodeLeaseName } from '../../common/api/node-lease.js';
import { isConflict, isNotFound, mergePatch } from '../../common/kube/client.js';

export type NodeLeaseApi = Pick<CustomObjectsApi, 'patchNamespacedCustomObject' | 'createNamespacedCustomObject'>;

export interface NodeLeaseOptions {
  namespace: string;
  host: string;
  /** Written as spec.leaseDurationSeconds: how long a renewal vouches for the host (informational). */
  durationSeconds: number;
}

const LEASES = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' } as const;

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
      await this.api.patchNamespacedCustomObject({ ...LEASES, namespace, name, body }, mergePatch);
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      await this.api.createNamespacedCustomObject({ ...LEASES, namespace, body });
    } catch (err) {
      // Created meanwhile (a second renewal in flight): renewed all the same.
      if (!isConflict(err)) throw err;
      await this.api.patchNamespacedCustomObject({ ...LEASES, namespace, name, body }, mergePatch);
    }
  }

  private record(name: string): object {
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: this.opts.namespace, labels: { [NODE_LEASE_LABEL]: 'true' } },
      spec: {
        holderIdentity: this.opts.host,
        leaseDurationSeconds: this.opts.durationSeconds,
        // client-node's MicroTime: RFC 3339 with microseconds, as the API server writes one.
        renewTime: new V1MicroTime(this.now()).toISOString(),
      },
    };
  }
}
