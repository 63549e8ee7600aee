// One fault path: every failure a user must hear about is a typed error carrying its fault
// reason, and each fault reason has exactly one Event reason. The recorder that writes both
// is common/kube/fault-recorder.ts.
import { EventReason, FaultReason } from './reasons.js';
import type { InstanceStatus } from './types.js';

export type FaultStatus = NonNullable<InstanceStatus['fault']>;

/** A failure with its reason: what status.fault says and which Event announces it. */
export class Fault extends Error {
  constructor(
    readonly reason: FaultReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = reason;
  }
}

/** The Event that announces each fault (Warning). */
export const EVENT_FOR_FAULT = {
  [FaultReason.NoValidHost]: EventReason.NoValidHost,
  [FaultReason.ClaimFailed]: EventReason.ClaimFailed,
  [FaultReason.SpawnFailed]: EventReason.SpawnFailed,
  [FaultReason.FlavorNotFound]: EventReason.FlavorNotFound,
  [FaultReason.FlavorDisabled]: EventReason.FlavorDisabled,
  [FaultReason.ResizeRefused]: EventReason.ResizeRefused,
  [FaultReason.MigrationRefused]: EventReason.MigrationRefused,
  [FaultReason.TransferFailed]: EventReason.MigrationFailed,
  [FaultReason.QuotaExceeded]: EventReason.QuotaExceeded,
  [FaultReason.ServerGroupNotFound]: EventReason.ServerGroupNotFound,
  [FaultReason.StepFailed]: EventReason.StepFailed,
  [FaultReason.Cancelled]: EventReason.MigrationCancelled,
  [FaultReason.HostLost]: EventReason.HostLost,
  [FaultReason.NetworkNotFound]: EventReason.NetworkNotFound,
  [FaultReason.NetworkInvalid]: EventReason.NetworkInvalid,
  [FaultReason.NetworkExhausted]: EventReason.NetworkExhausted,
} as const satisfies Record<FaultReason, EventReason>;
