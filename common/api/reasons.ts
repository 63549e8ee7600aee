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
} as const;
export type EventReason = (typeof EventReason)[keyof typeof EventReason];

export const FaultReason = {
  NoValidHost: 'NoValidHost',
  ClaimFailed: 'ClaimFailed',
  SpawnFailed: 'SpawnFailed',
  FlavorNotFound: 'FlavorNotFound',
  FlavorDisabled: 'FlavorDisabled',
  HostLost: 'HostLost',
} as const;
export type FaultReason = (typeof FaultReason)[keyof typeof FaultReason];

export const ConditionReason = {
  AgentReady: 'NodeAgentReady',
  AgentNotResponding: 'NodeAgentNotResponding',
} as const;
