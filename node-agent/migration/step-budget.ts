// A step's retry budget: how many times the work of one step (a migration phase, a power
// action) may fail on this host before its owner gives up and rolls back. Only the step's own work counts (the
// driver, the transfer); an API error is the API server's trouble and is bounded by the step
// deadline instead. Kept in memory: an agent restart starts the count again, and the deadline
// written in the Migration still bounds the whole phase.
import { Fault } from '../../common/api/faults.js';
import { FaultReason } from '../../common/api/reasons.js';
import { statusCode } from '../../common/kube/client.js';

export class StepBudget {
  private readonly failures = new Map<string, { phase: string; count: number }>();

  constructor(readonly retries: number) {}

  /**
   * Counts a failure of step `phase` for the object `uid`; returns the fault to give up with once
   * the budget is spent, undefined while retries are left (or when the error does not count).
   */
  failed(uid: string, phase: string, host: string, err: unknown): Fault | undefined {
    if (statusCode(err) !== undefined) return undefined;
    const seen = this.failures.get(uid);
    const count = seen?.phase === phase ? seen.count + 1 : 1;
    this.failures.set(uid, { phase, count });
    if (count < this.retries) return undefined;
    this.failures.delete(uid);
    const cause = err instanceof Error ? err.message : String(err);
    return new Fault(FaultReason.StepFailed, `${phase} on ${host} failed ${count} times: ${cause}`, { cause: err });
  }

  /** The phase's step went through: its count starts again. */
  succeeded(uid: string): void {
    this.failures.delete(uid);
  }
}
