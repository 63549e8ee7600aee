// Whether a host's agent has gone silent, as far as the operator can know. A heartbeat older
// than the timeout means the agent stopped posting only if the operator could have seen a newer
// one: while the operator's ComputeNode watch is broken (an API server restart, the operator cut
// off) its cache shows every host's last heartbeat getting older, and right after the watch comes
// back the agents have not yet got their next heartbeat through either. So no host is judged
// silent while the view is broken, nor until a full timeout has passed since it came back (what
// Kubernetes' node lifecycle controller achieves with its probe timestamps). Without this, every
// host looked dead after an API server restart and the boots waiting for them ended NoValidHost.
import type { ComputeNode } from '../../common/api/types.js';

export class HeartbeatClock {
  /** Until then no host is judged silent: the end of the last blind spell plus a timeout. */
  private graceUntil = -Infinity;
  private blind = false;

  constructor(
    readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The watch feeding the operator's view of ComputeNodes failed. */
  viewLost(): void {
    this.blind = true;
  }

  /**
   * The watch is back (it replays or re-lists what was missed): every host gets a full timeout
   * from now. A watch that reconnects without having failed (a routine timeout) changes nothing.
   */
  viewRestored(): void {
    if (!this.blind) return;
    this.blind = false;
    this.graceUntil = this.now() + this.timeoutMs;
  }

  /** No heartbeat, or none newer than the timeout although the operator could have seen one. */
  isSilent(node: ComputeNode): boolean {
    return this.isSilentSince(heartbeatMs(node));
  }

  /** isSilent for a heartbeat already read (heartbeatMs): the scheduler reads each node's once. */
  isSilentSince(beatMs: number): boolean {
    const now = this.now();
    if (this.blind || now < this.graceUntil) return false;
    return !Number.isFinite(beatMs) || now - beatMs > this.timeoutMs;
  }
}

/** The node's last heartbeat in epoch milliseconds; NaN when it has none. */
export function heartbeatMs(node: ComputeNode): number {
  return node.status?.heartbeatTime ? Date.parse(node.status.heartbeatTime) : NaN;
}
