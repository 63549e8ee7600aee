// The operator's view of the agents' node Leases (common/api/node-lease.ts): one list of the
// release namespace's node Leases per node-monitor check, served from kube-apiserver's watch
// cache. A watch would deliver every renewal of every host (50 events a second at 500 hosts)
// to be looked at once per check; the list reads what the check needs, when it needs it. A
// renewal can therefore look up to one monitor period older than it is, which only shortens
// the timeout by that period. The list goes through the generic object API, as the agents'
// renewals do (node-agent/tracker/node-lease.ts): read as plain JSON, not through the typed models.
import type { CustomObjectsApi } from '@kubernetes/client-node';
import { NODE_LEASE_LABEL } from '../../common/api/node-lease.js';
import type { Logger } from '../../common/log.js';
import type { HeartbeatClock, LeaseRenewals } from './heartbeat-clock.js';

export type LeaseListApi = Pick<CustomObjectsApi, 'listNamespacedCustomObject'>;

interface LeaseList {
  items?: { metadata?: { name?: string }; spec?: { renewTime?: string } }[];
}

export class NodeLeases implements LeaseRenewals {
  private renewals = new Map<string, number>();
  private looked = false;

  constructor(
    private readonly api: LeaseListApi,
    private readonly namespace: string,
    private readonly clock: HeartbeatClock,
    private readonly log: Logger,
  ) {
    clock.useLeases(this);
    // Until the first read, a host whose agent renews only its Lease would look silent.
    clock.viewLost('leases');
  }

  renewMs(host: string): number {
    return this.renewals.get(host) ?? NaN;
  }

  /** Reads every node Lease; a failed read leaves the clock blind until a read succeeds again. */
  async refresh(): Promise<void> {
    try {
      const list = (await this.api.listNamespacedCustomObject({
        group: 'coordination.k8s.io',
        version: 'v1',
        plural: 'leases',
        namespace: this.namespace,
        labelSelector: NODE_LEASE_LABEL,
        resourceVersion: '0',
      })) as LeaseList;
      const renewals = new Map<string, number>();
      for (const lease of list.items ?? []) {
        const host = lease.metadata?.name;
        const renewed = lease.spec?.renewTime;
        const ms = renewed === undefined ? NaN : Date.parse(renewed);
        if (host && Number.isFinite(ms)) renewals.set(host, ms);
      }
      this.renewals = renewals;
      this.clock.viewRestored('leases', this.looked);
      this.looked = true;
    } catch (err) {
      this.clock.viewLost('leases');
      this.log.warn(
        { namespace: this.namespace, err: (err as Error).message },
        'cannot read the node Leases: no host is judged silent until they can be read',
      );
    }
  }
}
