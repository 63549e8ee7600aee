// Nova's consume_from_request: between choosing a host and that host's agent recording the claim
// in ComputeNode status, the snapshot still shows the host as free. Without this, a burst of
// boots would all land on the same "emptiest" host and most claims would fail.
import type { ComputeNode, ResourceAmounts } from '../../common/api/types.js';
import { ZERO, add } from '../../common/api/flavor.js';

interface Pending {
  host: string;
  resources: ResourceAmounts;
  addedAt: number;
}

export const DEFAULT_IN_FLIGHT_TTL_MS = 30_000;

export class InFlightPlacements {
  // Keyed by consumer: one consumer has at most one pending placement, and a reschedule replaces it.
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly now: () => number = Date.now,
    // The TTL is a safety net for a lost update (agent crashed, status write dropped); it only
    // has to outlive the normal claim round-trip.
    private readonly ttlMs: number = DEFAULT_IN_FLIGHT_TTL_MS,
  ) {}

  /** consumer = Instance UID (boot) or Migration UID (resize/migration destination). */
  add(host: string, consumer: string, resources: ResourceAmounts): void {
    this.pending.set(consumer, { host, resources: { ...resources }, addedAt: this.now() });
  }

  /** The placement is resolved without a claim (claim failed, instance deleted). Safe to repeat. */
  remove(consumer: string): void {
    this.pending.delete(consumer);
  }

  /** Drop entries whose claim has landed on this node: node.status.allocated counts them now. */
  reconcileWithNode(node: ComputeNode): void {
    this.expire();
    const claimed = new Set((node.status?.claims ?? []).map((c) => c.consumer));
    for (const [consumer, p] of this.pending) {
      // Match the host too: an Instance UID also appears in its source host's claims during a
      // migration, which must not cancel a pending placement elsewhere.
      if (p.host === node.metadata.name && claimed.has(consumer)) this.pending.delete(consumer);
    }
  }

  forHost(host: string): ResourceAmounts {
    return this.byHost().get(host) ?? ZERO;
  }

  /** What is pending on every host, in one pass (a placement reads it for all hosts at once). */
  byHost(): Map<string, ResourceAmounts> {
    this.expire();
    const sums = new Map<string, ResourceAmounts>();
    for (const p of this.pending.values()) sums.set(p.host, add(sums.get(p.host) ?? ZERO, p.resources));
    return sums;
  }

  /** Where a consumer was placed, while that placement is still pending. */
  hostOf(consumer: string): string | undefined {
    this.expire();
    return this.pending.get(consumer)?.host;
  }

  size(): number {
    this.expire();
    return this.pending.size;
  }

  private expire(): void {
    const now = this.now();
    for (const [consumer, p] of this.pending) if (now - p.addedAt > this.ttlMs) this.pending.delete(consumer);
  }
}
