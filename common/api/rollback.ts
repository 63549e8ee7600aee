// A Migration's rollback request (status.rollback) and the fault it ends with, one mapping for
// the operator's step guard and the agents' give-ups.
import { Fault } from './faults.js';
import { FaultReason } from './reasons.js';
import type { MigrationPhase, MigrationStatus } from './types.js';

export type RollbackRequest = NonNullable<MigrationStatus['rollback']>;

const FAULT_FOR_ROLLBACK = {
  StepFailed: FaultReason.StepFailed,
  StepTimedOut: FaultReason.StepFailed,
  Cancelled: FaultReason.Cancelled,
  HostLost: FaultReason.HostLost,
} as const satisfies Record<RollbackRequest['reason'], FaultReason>;

/** The fault a requested rollback ends with. */
export function rollbackFault(request: RollbackRequest): Fault {
  return new Fault(FAULT_FOR_ROLLBACK[request.reason], request.message);
}

/** The request a side writes when it gives up by itself (its retry budget is spent). */
export function rollbackRequest(phase: MigrationPhase, fault: Fault, now: Date): RollbackRequest {
  const reason =
    fault.reason === FaultReason.Cancelled || fault.reason === FaultReason.HostLost ? fault.reason : 'StepFailed';
  return { phase, reason, message: fault.message, time: now.toISOString() };
}
