// Nova's placement attempts, written once for boots and for migration destinations: ask the
// scheduler for a host, hand it to that host's agent (scheduling.selectedHost), wait for its
// claim, and after a failed claim, a failed spawn (Nova's RescheduledException) or a host gone
// silent try elsewhere up to maxAttempts. What differs between a boot and a migration is behind
// PlacementTarget.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { Fault } from '../../common/api/faults.js';
import { FaultReason } from '../../common/api/reasons.js';
import type { Instance, SchedulingStatus } from '../../common/api/types.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { ServerGroups } from '../servergroups/membership.js';
import type { Placement } from './placement.js';
import type { RequestSpec } from './request.js';

/** One failed attempt: the host, the attempt, what failed (a claim when no reason) and why. */
export type PlacementFailure = NonNullable<SchedulingStatus['failures']>[number];

export type PlacementStep = { next: 'wait' } | { next: 'retry'; failure: PlacementFailure } | { next: 'schedule' };

/** A failure's message in a fault that lists several; the whole one stays in scheduling.failures. */
const LISTED_MESSAGE_CHARS = 1024;
/** Below status.fault.message's limit of 8192. */
const FAULT_MESSAGE_CHARS = 8000;
/** scheduling.failures' limit. */
const MAX_RECORDED_FAILURES = 64;

const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);

/** What the conductor does next with a placement attempt. */
export function placementStep(
  sched: SchedulingStatus | undefined,
  hostIsUsable: (host: string) => boolean,
  what: string,
): PlacementStep {
  const attempts = sched?.attempts ?? 0;
  const failure = sched?.claimFailure && sched.claimFailure.attempt === attempts ? sched.claimFailure : undefined;
  if (failure) {
    const { host, attempt, reason, message } = failure;
    return { next: 'retry', failure: { host, attempt, ...(reason ? { reason } : {}), message } };
  }
  if (!sched?.selectedHost) return { next: 'schedule' };
  // The agent of selectedHost owns the next step. If that host died meanwhile, Nova's
  // conductor would never hear back; we notice and move on.
  if (hostIsUsable(sched.selectedHost)) return { next: 'wait' };
  return {
    next: 'retry',
    failure: {
      host: sched.selectedHost,
      attempt: attempts,
      message: `host ${sched.selectedHost} stopped responding before it claimed the ${what}`,
    },
  };
}

/**
 * The fault reason that ends a placement after failed attempts. It follows the last attempt:
 * SpawnFailed when that host claimed but could not spawn the instance (a build failure, as
 * Nova reports one whose retries ran out), NoValidHost otherwise (a refused claim, or a host
 * lost before it claimed: no host was valid).
 */
export function exhaustedReason(last: PlacementFailure): FaultReason {
  return last.reason === 'SpawnFailed' ? FaultReason.SpawnFailed : FaultReason.NoValidHost;
}

/**
 * "no host could take the instance after 3 attempts: node-a: <why>; node-b: <why>; ...", or
 * undefined when `failures` does not hold every attempt (a placement that does not record them).
 */
export function describeAttempts(failures: readonly PlacementFailure[], attempts: number): string | undefined {
  if (attempts === 0 || failures.length < attempts) return undefined;
  const list = failures.map((f) => `${f.host}: ${clip(f.message, LISTED_MESSAGE_CHARS)}`).join('; ');
  return `no host could take the instance after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${list}`;
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
  /**
   * Writes the new attempt (attempts, triedHosts, selectedHost) to status, in one write with
   * `failures`, every earlier attempt's failure (empty on the first attempt) when the target
   * keeps them (scheduling.failures); the final fault can list them only then.
   */
  recordAttempt(
    scheduling: Required<Pick<SchedulingStatus, 'attempts' | 'triedHosts' | 'selectedHost'>>,
    failures: PlacementFailure[],
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
    if (step.next === 'retry') return this.retryOrFail(target, step.failure);
    return this.groups.serialize(target.instance, () => this.schedule(target, []));
  }

  private async retryOrFail(target: PlacementTarget, failure: PlacementFailure): Promise<ReconcileResult> {
    const attempts = target.scheduling?.attempts ?? 0;
    const earlier = (target.scheduling?.failures ?? []).filter((f) => f.attempt !== failure.attempt);
    const failures = [...earlier, failure].slice(-MAX_RECORDED_FAILURES);
    const { host, message: reason } = failure;
    this.placement.forget(target.consumer);
    if (target.forcedHost) {
      // Nova disables retries for a forced host: there is nowhere else to go.
      const who = target.what === 'instance' ? 'forced host' : 'target host';
      const faultReason = failure.reason === 'SpawnFailed' ? FaultReason.SpawnFailed : FaultReason.ClaimFailed;
      return this.fail(
        target,
        new Fault(faultReason, `${who} ${target.forcedHost} could not take the instance: ${reason}`),
      );
    }
    if (attempts >= this.config.maxAttempts) {
      const message =
        describeAttempts(failures, attempts) ??
        `No valid host was found: exceeded max scheduling attempts ${this.config.maxAttempts}; ` +
          `last failure on ${host}: ${reason}`;
      return this.fail(target, new Fault(exhaustedReason(failure), clip(message, FAULT_MESSAGE_CHARS)));
    }
    target.announce('rescheduled', `attempt ${attempts} on ${host} failed (${reason}); rescheduling`, host, attempts);
    this.config.onReschedule?.(target.what);
    return this.groups.serialize(target.instance, () => this.schedule(target, failures));
  }

  /** Chooses a host for the next attempt; `failures` are the earlier attempts' (none on the first). */
  private async schedule(target: PlacementTarget, failures: PlacementFailure[]): Promise<ReconcileResult> {
    const tried = target.scheduling?.triedHosts ?? [];
    let host: string;
    try {
      const request = target.request(tried);
      if (request instanceof Fault) throw request;
      await target.beforeSelect?.();
      host = this.placement.select(request, target.consumer).host;
    } catch (err) {
      if (err instanceof Fault) return this.fail(target, this.afterFailures(err, failures, target.scheduling));
      throw err;
    }
    if (target.crashPointAfterSelect) crashPoint(target.crashPointAfterSelect);
    const attempt = (target.scheduling?.attempts ?? 0) + 1;
    try {
      await target.recordAttempt({ attempts: attempt, triedHosts: [...tried, host], selectedHost: host }, failures);
    } catch (err) {
      this.placement.forget(target.consumer);
      throw err;
    }
    const where = target.what === 'instance' ? `scheduled to ${host}` : `destination ${host} chosen`;
    target.announce('scheduled', `${where} (attempt ${attempt} of ${this.config.maxAttempts})`, host, attempt);
    return { requeueAfterMs: this.config.claimTimeoutMs };
  }

  /**
   * No host is left for a retry: the earlier attempts are the story, so a NoValidHost says
   * them first and takes its reason from the last one, as when the attempts run out.
   */
  private afterFailures(fault: Fault, failures: PlacementFailure[], sched: SchedulingStatus | undefined): Fault {
    const last = failures.at(-1);
    const attempts = describeAttempts(failures, sched?.attempts ?? 0);
    if (fault.reason !== FaultReason.NoValidHost || !last || !attempts) return fault;
    const message = `${attempts}; no other host is left. ${fault.message}`;
    return new Fault(exhaustedReason(last), clip(message, FAULT_MESSAGE_CHARS), { cause: fault });
  }

  private fail(target: PlacementTarget, fault: Fault): Promise<ReconcileResult> {
    this.placement.forget(target.consumer);
    return target.fail(fault);
  }
}
