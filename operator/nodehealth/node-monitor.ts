// Nova's service-down check, done the way Kubernetes' node lifecycle controller does it:
// a ComputeNode whose agent stopped posting heartbeats (renewing its node Lease, or writing its
// status) is marked Ready=Unknown, so the scheduler stops placing work there. The agent's next
// status write sets it True again; an agent back after a silence writes one at once.
// What follows from a host's health (instances told their host is lost, automatic
// evacuations) runs as passes after each check, on the same period and leader gate.
import { getCondition, setCondition } from '../../common/api/conditions.js';
import { ConditionReason, EventReason } from '../../common/api/reasons.js';
import { isConflict, isNotFound } from '../../common/kube/client.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { ObjectCache } from '../../common/kube/api.js';
import type { Logger } from '../../common/log.js';
import { heartbeatMs, type HeartbeatClock } from './heartbeat-clock.js';

/** Work that follows each heartbeat check (host-lost.ts, auto-evacuation.ts). */
export interface HealthPass {
  readonly name: string;
  check(): Promise<void>;
}

export class NodeMonitor {
  private timer?: NodeJS.Timeout;
  private readonly passes: HealthPass[] = [];

  constructor(
    private readonly kube: KubeClient,
    private readonly nodes: ObjectCache<'ComputeNode'>,
    private readonly events: EventRecorder,
    private readonly heartbeats: HeartbeatClock,
    /** refresh: reads what the clock needs before each check (the node Leases). */
    private readonly opts: { periodMs: number; refresh?: () => Promise<void> },
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
    private readonly canAct: () => boolean = () => true,
  ) {}

  start(): void {
    const tick = () => {
      this.check()
        .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'node monitor pass failed'))
        .finally(() => {
          this.timer = setTimeout(tick, this.opts.periodMs);
        });
    };
    this.timer = setTimeout(tick, this.opts.periodMs);
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** Runs `pass` after every check, in the order added; one failing pass does not stop the others. */
  addPass(pass: HealthPass): this {
    this.passes.push(pass);
    return this;
  }

  async check(): Promise<void> {
    if (!this.canAct()) return;
    try {
      await this.opts.refresh?.();
      await this.markSilentNodes();
    } finally {
      for (const pass of this.passes) {
        await pass.check().catch((err: unknown) => {
          this.log.warn({ err: (err as Error).message, pass: pass.name }, 'node health pass failed');
        });
      }
    }
  }

  private async markSilentNodes(): Promise<void> {
    const now = this.now();
    for (const node of this.nodes.list()) {
      const ready = getCondition(node.status?.conditions, 'Ready');
      if (ready?.status !== 'True' || !this.heartbeats.isSilent(node)) continue;
      const last = this.heartbeats.lastBeatMs(node.metadata.name, heartbeatMs(node));
      const message = `node agent stopped posting heartbeats (last ${Number.isFinite(last) ? new Date(last).toISOString() : 'never'}, timeout ${this.heartbeats.timeoutMs / 1000}s)`;
      try {
        await this.kube.computeNodes.patchStatus(node, {
          conditions: setCondition(
            node.status?.conditions,
            { type: 'Ready', status: 'Unknown', reason: ConditionReason.AgentNotResponding, message },
            now,
          ),
        });
        this.log.warn({ node: node.metadata.name }, message);
        this.events.record(
          { kind: 'ComputeNode', metadata: { ...node.metadata, namespace: 'default' } },
          'Warning',
          EventReason.NodeNotReady,
          message,
        );
      } catch (err) {
        // A heartbeat that raced us wins: the node is alive after all.
        if (!isConflict(err) && !isNotFound(err)) throw err;
      }
    }
  }
}
