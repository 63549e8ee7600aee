// The node Lease: every node agent renews one coordination.k8s.io/v1 Lease per host in the
// release namespace, as a kubelet renews its node's in kube-node-lease, and the operator counts
// a renewal as the host's heartbeat. A Lease is a small built-in object only the operator reads,
// so a heartbeat costs the API server a fraction of a ComputeNode status write and reaches no
// ComputeNode watcher; the ComputeNode's status (and its heartbeatTime) is then written on
// change and at a longer report interval.

/** Carried by every node Lease: the operator lists the Leases of the release namespace by it. */
export const NODE_LEASE_LABEL = 'compute.kubenova.io/node-lease';

/** A host's node Lease is named after the host (admission lets an agent write its own only). */
export function nodeLeaseName(host: string): string {
  return host;
}
