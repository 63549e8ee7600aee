import { parseFlags, type FlagSpec, LOG_FLAGS, METRICS_FLAGS, RELEASE_FLAGS, STEP_FLAGS } from '../common/config.js';

export const OPERATOR_FLAGS = {
  kubeconfig: { type: 'string', env: 'KUBECONFIG', description: 'Path to a kubeconfig; in-cluster config when absent' },
  'node-heartbeat-timeout': {
    type: 'number',
    env: 'KUBENOVA_NODE_HEARTBEAT_TIMEOUT',
    default: 40,
    min: 0.5,
    description: 'Seconds without a heartbeat before a ComputeNode is marked not Ready (Nova service_down_time)',
  },
  'node-monitor-period': {
    type: 'number',
    env: 'KUBENOVA_NODE_MONITOR_PERIOD',
    default: 5,
    min: 0.1,
    description: 'Seconds between heartbeat checks',
  },
  'host-lost-grace': {
    type: 'number',
    env: 'KUBENOVA_HOST_LOST_GRACE',
    default: 60,
    min: 0,
    description:
      'Seconds a ComputeNode may stay not Ready before the Instances on it get condition HostLost (after the heartbeat timeout)',
  },
  'max-attempts': {
    type: 'number',
    env: 'KUBENOVA_MAX_ATTEMPTS',
    default: 3,
    min: 1,
    description: 'Placement attempts before NoValidHost (scheduler_max_attempts)',
  },
  'ram-weight-multiplier': {
    type: 'number',
    env: 'KUBENOVA_RAM_WEIGHT_MULTIPLIER',
    default: 1,
    description: 'RAM weigher multiplier: positive spreads, negative packs',
  },
  'cpu-weight-multiplier': {
    type: 'number',
    env: 'KUBENOVA_CPU_WEIGHT_MULTIPLIER',
    default: 1,
    description: 'vCPU weigher multiplier',
  },
  'disk-weight-multiplier': {
    type: 'number',
    env: 'KUBENOVA_DISK_WEIGHT_MULTIPLIER',
    default: 1,
    description: 'Disk weigher multiplier',
  },
  'soft-affinity-weight-multiplier': {
    type: 'number',
    env: 'KUBENOVA_SOFT_AFFINITY_WEIGHT_MULTIPLIER',
    default: 1,
    min: 0,
    description: "Weight of server groups' soft-affinity and soft-anti-affinity preferences",
  },
  'host-subset-size': {
    type: 'number',
    env: 'KUBENOVA_HOST_SUBSET_SIZE',
    default: 1,
    min: 1,
    description: 'Pick randomly among this many best hosts',
  },
  'allow-resize-to-same-host': {
    type: 'boolean',
    env: 'KUBENOVA_ALLOW_RESIZE_TO_SAME_HOST',
    default: false,
    description: 'Allow a resize or migration to land on the source host',
  },
  'resize-confirm-window': {
    type: 'number',
    env: 'KUBENOVA_RESIZE_CONFIRM_WINDOW',
    default: 0,
    min: 0,
    description: 'Seconds after which a finished resize is confirmed automatically (0 = never)',
  },
  ...STEP_FLAGS,
  ...RELEASE_FLAGS,
  'transfer-credential-ttl': {
    type: 'number',
    env: 'KUBENOVA_TRANSFER_CREDENTIAL_TTL',
    default: 0,
    min: 0,
    description:
      "Seconds a migration's disk-transfer credential stays valid (0 = until the migrating phase's latest deadline: " +
      'the pre-migrating deadline plus --step-timeout)',
  },
  'agent-service-account': {
    type: 'string',
    env: 'KUBENOVA_AGENT_SERVICE_ACCOUNT',
    description:
      "The node agents' service account as namespace:name; its certificate requests are approved for the node its " +
      'token is bound to (the CN must equal that node)',
  },
  'agent-username-prefix': {
    type: 'string',
    env: 'KUBENOVA_AGENT_USERNAME_PREFIX',
    description:
      'Also approve agent certificate requests from the user <prefix><CN> (local environments whose agents ' +
      'authenticate with per-agent client certificates); none by default',
  },
  'agent-cert-validity': {
    type: 'number',
    env: 'KUBENOVA_AGENT_CERT_VALIDITY',
    default: 7 * 86400,
    min: 600,
    description: 'Seconds an agent transfer certificate is valid (agents renew it after two thirds)',
  },
  'instance-selector': {
    type: 'string',
    env: 'KUBENOVA_INSTANCE_SELECTOR',
    description: 'Label selector: reconcile only matching Instances (shards the work between operators)',
  },
  'leader-elect': {
    type: 'boolean',
    env: 'KUBENOVA_LEADER_ELECT',
    default: false,
    description: 'Run leader election so that only one of several replicas acts',
  },
  'leader-election-namespace': {
    type: 'string',
    env: 'KUBENOVA_LEADER_ELECTION_NAMESPACE',
    default: 'default',
    description: 'Namespace of the leader-election Lease',
  },
  'leader-election-id': {
    type: 'string',
    env: 'KUBENOVA_LEADER_ELECTION_ID',
    default: 'kubenova-operator',
    description: 'Name of the leader-election Lease',
  },
  'lease-duration': {
    type: 'number',
    env: 'KUBENOVA_LEASE_DURATION',
    default: 15,
    min: 0.5,
    description: 'Seconds a follower waits without seeing a renewal before taking the lease',
  },
  'renew-deadline': {
    type: 'number',
    env: 'KUBENOVA_RENEW_DEADLINE',
    default: 10,
    min: 0.2,
    description: 'Seconds the leader may fail to renew before it stops acting',
  },
  'retry-period': {
    type: 'number',
    env: 'KUBENOVA_RETRY_PERIOD',
    default: 2,
    min: 0.1,
    description: 'Seconds between lease acquire/renew attempts',
  },
  workers: {
    type: 'number',
    env: 'KUBENOVA_WORKERS',
    default: 8,
    min: 1,
    description: 'Concurrent reconciles per controller',
  },
  ...METRICS_FLAGS,
  ...LOG_FLAGS,
} as const satisfies Record<string, FlagSpec>;

export type OperatorConfig = ReturnType<typeof parseOperatorConfig>;

export function parseOperatorConfig(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  return parseFlags(OPERATOR_FLAGS, argv, env);
}
