// Nova's placement attempts, written once for boots and for migration destinations: ask the
// scheduler for a host, hand it to that host's agent (scheduling.selectedHost), wait for its
// claim, and after a failed claim (or a host gone silent) try elsewhere up to maxAttempts.
// What differs between a boot and a migration is behind PlacementTarget.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { Fault } from '../../common/api/faults.js';
import { FaultReason } from '../../common/api/reasons.js';
import type { Instance, SchedulingStatus } from '../../common/api/types.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { ServerGroups } from '../servergroups/membership.js';
import type { Placement } from './placement.js';
import type { RequestSpec } from './request.js';

export type PlacementStep = { next: 'wait' } | { next: 'retry'; host: string; reason: string } | { next: 'schedule' };

/** What the conductor does next with a placement attempt. */
export function placementStep(
  sched: SchedulingStatus | undefined,
  hostIsUsable: (host: string) => boolean,
  what: string,
): PlacementStep {
  const attempts = sched?.attempts ?? 0;
  const failure = sched?.claimFailure && sched.claimFailure.attempt === attempts ? sched.claimFailure : undefined;
  if (failure) return { next: 'retry', host: failure.host, reason: failure.message };
  if (!sched?.selectedHost) return { next: 'schedule' };
  // The agent of selectedHost owns the next step. If that host died meanwhile, Nova's
  // conductor would never hear back; we notice and move on.
  if (hostIsUsable(sched.selectedHost)) return { next: 'wait' };
  return {
    next: 'retry',
    host: sched.selectedHost,
    reason: `host ${sched.selectedHost} stopped responding before it claimed the ${what}`,
  };
}

/** One thing to place: a booting instance or a migration's destination. */
export interface PlacementTarget {
  what: 'instance' | 'migration';
  /** The in-flight consumer (the Instance's or the Migration's uid). */
  consumer: string;
  /** The instance being placed: server-group placements are serialised by it. */
  instance: Instance;
  scheduling: SchedulingStatus | undefined;
  /** A host the user named (Instance.spec.host, Migration.spec.targetHost): no retries elsewhere. */
  forcedHost?: string;
  /** The scheduler's request given the hosts already tried; a Fault when it cannot be made. */
  request(tried: string[]): RequestSpec | Fault;
  /** Runs before the scheduler decides (a boot reserves its quota); may throw a Fault. */
  beforeSelect?(): Promise<void>;
  /** Writes the new attempt (attempts, triedHosts, selectedHost) to status. */
  recordAttempt(
    scheduling: Required<Pick<SchedulingStatus, 'attempts' | 'triedHosts' | 'selectedHost'>>,
  ): Promise<void>;
  /** Ends the placement with a fault: status, Events, giving back what was held. */
  fail(fault: Fault): Promise<ReconcileResult>;
  /** Tells the user (an Event) and the log about a new attempt or a retry. */
  announce(kind: 'scheduled' | 'rescheduled', message: string, host: string, attempt: number): void;
  crashPointAfterSelect?: string;
}

export interface PlacementAttemptsConfig {
  maxAttempts: number;
  /** How long an agent may take to answer a placement before the host is treated as lost. */
  claimTimeoutMs: number;
  /** Told of every retry on another host (kubenova_reschedules_total). */
  onReschedule?: (what: PlacementTarget['what']) => void;
}

export class PlacementAttempts {
  constructor(
    private readonly placement: Placement,
    private readonly groups: ServerGroups,
    private readonly config: PlacementAttemptsConfig,
  ) {}

  /** One step of the target's placement; a selected host waits for its agent's claim. */
  async step(target: PlacementTarget): Promise<ReconcileResult> {
    const step = placementStep(target.scheduling, (h) => this.placement.hostIsUsable(h), target.what);
    if (step.next === 'wait') return { requeueAfterMs: this.config.claimTimeoutMs };
    if (step.next === 'retry') return this.retryOrFail(target, step.reason, step.host);
    return this.groups.serialize(target.instance, () => this.schedule(target));
  }

  private async retryOrFail(target: PlacementTarget, reason: string, host: string): Promise<ReconcileResult> {
    const attempts = target.scheduling?.attempts ?? 0;
    this.placement.forget(target.consumer);
    if (target.forcedHost) {
      // Nova disables retries for a forced host: there is nowhere else to go.
      const who = target.what === 'instance' ? 'forced host' : 'target host';
      return this.fail(
        target,
        new Fault(FaultReason.ClaimFailed, `${who} ${target.forcedHost} could not take the instance: ${reason}`),
      );
    }
    if (attempts >= this.config.maxAttempts) {
      const message =
        `No valid host was found: exceeded max scheduling attempts ${this.config.maxAttempts}; ` +
        `last failure on ${host}: ${reason}`;
      return this.fail(target, new Fault(FaultReason.NoValidHost, message));
    }
    target.announce('rescheduled', `attempt ${attempts} on ${host} failed (${reason}); rescheduling`, host, attempts);
    this.config.onReschedule?.(target.what);
    return this.groups.serialize(target.instance, () => this.schedule(target));
  }

  private async schedule(target: PlacementTarget): Promise<ReconcileResult> {
    const tried = target.scheduling?.triedHosts ?? [];
    let host: string;
    try {
      const request = target.request(tried);
      if (request instanceof Fault) throw request;
      await target.beforeSelect?.();
      host = this.placement.select(request, target.consumer).host;
    } catch (err) {
      if (err instanceof Fault) return this.fail(target, err);
      throw err;
    }
    if (target.crashPointAfterSelect) crashPoint(target.crashPointAfterSelect);
    const attempt = (target.scheduling?.attempts ?? 0) + 1;
    try {
      await target.recordAttempt({ attempts: attempt, triedHosts: [...tried, host], selectedHost: host });
    } catch (err) {
      this.placement.forget(target.consumer);
      throw err;
    }
    const where = target.what === 'instance' ? `scheduled to ${host}` : `destination ${host} chosen`;
    target.announce('scheduled', `${where} (attempt ${attempt} of ${this.config.maxAttempts})`, host, attempt);
    return { requeueAfterMs: this.config.claimTimeoutMs };
  }

  private fail(target: PlacementTarget, fault: Fault): Promise<ReconcileResult> {
    this.placement.forget(target.consumer);
    return target.fail(fault);
  }
}
