// Every Event reason and fault reason a user can see, listed once (KubeVirt keeps
// vmi_event_reasons.go for the same purpose).
export const EventReason = {
  Scheduled: 'Scheduled',
  ClaimFailed: 'ClaimFailed',
  Rescheduled: 'Rescheduled',
  Spawned: 'Spawned',
  SpawnFailed: 'SpawnFailed',
  Stopped: 'Stopped',
  Started: 'Started',
  Deleted: 'Deleted',
  NoValidHost: 'NoValidHost',
  FlavorNotFound: 'FlavorNotFound',
  FlavorDisabled: 'FlavorDisabled',
  NodeNotReady: 'NodeNotReady',
  NodeReady: 'NodeReady',
  AuditHealed: 'AuditHealed',
  ResizeStarted: 'ResizeStarted',
  MigrationStarted: 'MigrationStarted',
  ResizeRefused: 'ResizeRefused',
  MigrationRefused: 'MigrationRefused',
  DiskTransferred: 'DiskTransferred',
  DiskTransferRetried: 'DiskTransferRetried',
  ResizeFinished: 'ResizeFinished',
  ResizeConfirmed: 'ResizeConfirmed',
  ResizeReverted: 'ResizeReverted',
  MigrationFailed: 'MigrationFailed',
  FlavorReset: 'FlavorReset',
  DecisionIgnored: 'DecisionIgnored',
  QuotaExceeded: 'QuotaExceeded',
  ServerGroupNotFound: 'ServerGroupNotFound',
  StepFailed: 'StepFailed',
  RollingBack: 'RollingBack',
  RolledBack: 'RolledBack',
  MigrationCancelled: 'MigrationCancelled',
  HostLost: 'HostLost',
  HostBack: 'HostBack',
  EvacuationStarted: 'EvacuationStarted',
  Evacuated: 'Evacuated',
  LocalDelete: 'LocalDelete',
  StaleCopyDestroyed: 'StaleCopyDestroyed',
  NetworkNotFound: 'NetworkNotFound',
  NetworkInvalid: 'NetworkInvalid',
  NetworkExhausted: 'NetworkExhausted',
  /** A deleted Network waits for the ports still holding its addresses. */
  NetworkInUse: 'NetworkInUse',
  /** A Port was made for the instance, with its MAC and fixed IP. */
  PortCreated: 'PortCreated',
  /** The ports of an instance were deleted and their addresses released. */
  PortsReleased: 'PortsReleased',
  /** A Port's binding changed host or state (bound, migrating, unbound). */
  PortBound: 'PortBound',
  PortBindingMigrating: 'PortBindingMigrating',
  PortUnbound: 'PortUnbound',
} as const;
export type EventReason = (typeof EventReason)[keyof typeof EventReason];

export const FaultReason = {
  NoValidHost: 'NoValidHost',
  ClaimFailed: 'ClaimFailed',
  SpawnFailed: 'SpawnFailed',
  FlavorNotFound: 'FlavorNotFound',
  FlavorDisabled: 'FlavorDisabled',
  ResizeRefused: 'ResizeRefused',
  MigrationRefused: 'MigrationRefused',
  TransferFailed: 'TransferFailed',
  QuotaExceeded: 'QuotaExceeded',
  ServerGroupNotFound: 'ServerGroupNotFound',
  /** A step ran out of its retry budget or deadline; the message names the step, host and cause. */
  StepFailed: 'StepFailed',
  /** The Migration was deleted (or its instance was) before it ended. */
  Cancelled: 'Cancelled',
  /** The host is gone (forced down) and took the step with it. */
  HostLost: 'HostLost',
  /** The instance asks for a Network that does not exist. */
  NetworkNotFound: 'NetworkNotFound',
  /** The instance asks for a Network that cannot hand out addresses (overlapping CIDR, bad range). */
  NetworkInvalid: 'NetworkInvalid',
  /** Every address of the Network is held. */
  NetworkExhausted: 'NetworkExhausted',
} as const;
export type FaultReason = (typeof FaultReason)[keyof typeof FaultReason];

export const ConditionReason = {
  AgentReady: 'NodeAgentReady',
  AgentNotResponding: 'NodeAgentNotResponding',
} as const;
