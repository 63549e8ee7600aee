// Whether a host's agent has gone silent, as far as the operator can know. A heartbeat older
// than the timeout means the agent stopped posting only if the operator could have seen a newer
// one: while the operator's ComputeNode watch is broken (an API server restart, the operator cut
// off) its cache shows every host's last heartbeat getting older, and right after the watch comes
// back the agents have not yet got their next heartbeat through either. So no host is judged
// silent while the view is broken, nor until a full timeout has passed since it came back (what
// Kubernetes' node lifecycle controller achieves with its probe timestamps). Without this, every
// host looked dead after an API server restart and the boots waiting for them ended NoValidHost.
//
// An agent's heartbeat is the renewal of its node Lease (node-leases.ts) or, from an agent that
// has none, its ComputeNode's status.heartbeatTime: whichever is newer counts. The Leases are a
// second view with its own blind spells.
import type { ComputeNode } from '../../common/api/types.js';

/** The operator's two views of the agents: their ComputeNodes (a watch) and their node Leases (read each check). */
export type HeartbeatView = 'nodes' | 'leases';

/** When each host's node Lease was last renewed, in epoch milliseconds; NaN for a host without one. */
export interface LeaseRenewals {
  renewMs(host: string): number;
}

export class HeartbeatClock {
  /** Until then no host is judged silent: the end of the last blind spell plus a timeout. */
  private graceUntil = -Infinity;
  private readonly blind = new Set<HeartbeatView>();
  private leases?: LeaseRenewals;

  constructor(
    readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts the renewals of the agents' node Leases as heartbeats. */
  useLeases(leases: LeaseRenewals): void {
    this.leases = leases;
  }

  /** A view failed: the watch feeding the ComputeNodes, or a read of the Leases. */
  viewLost(view: HeartbeatView = 'nodes'): void {
    this.blind.add(view);
  }

  /**
   * The view is back (a watch replays or re-lists what was missed): every host gets a full
   * timeout from now. A watch that reconnects without having failed (a routine timeout) changes
   * nothing. `grace: false` is for a first look that ends a blindness of not having looked yet,
   * not of having lost sight: what it shows is current.
   */
  viewRestored(view: HeartbeatView = 'nodes', grace = true): void {
    if (!this.blind.delete(view)) return;
    if (grace) this.graceUntil = Math.max(this.graceUntil, this.now() + this.timeoutMs);
  }

  /** A host's newest heartbeat: its Lease's renewal or its status heartbeat (heartbeatMs), whichever is later. */
  lastBeatMs(host: string, statusBeatMs: number): number {
    const renewed = this.leases?.renewMs(host) ?? NaN;
    if (!Number.isFinite(renewed)) return statusBeatMs;
    return Number.isFinite(statusBeatMs) ? Math.max(statusBeatMs, renewed) : renewed;
  }

  /** No heartbeat, or none newer than the timeout although the operator could have seen one. */
  isSilent(node: ComputeNode): boolean {
    return this.isSilentSince(this.lastBeatMs(node.metadata.name, heartbeatMs(node)));
  }

  /** isSilent for a heartbeat already read (lastBeatMs): the scheduler reads each node's once. */
  isSilentSince(beatMs: number): boolean {
    const now = this.now();
    if (this.blind.size > 0 || now < this.graceUntil) return false;
    return !Number.isFinite(beatMs) || now - beatMs > this.timeoutMs;
  }
}

/** The node's last heartbeat in epoch milliseconds; NaN when it has none. */
export function heartbeatMs(node: ComputeNode): number {
  return node.status?.heartbeatTime ? Date.parse(node.status.heartbeatTime) : NaN;
}
