import { parseFlags, type FlagSpec, LOG_FLAGS, METRICS_FLAGS, RELEASE_FLAGS, STEP_FLAGS } from '../common/config.js';

export const AGENT_FLAGS = {
  'node-name': { type: 'string', env: 'NODE_NAME', description: 'Host name this agent serves (its ComputeNode name)' },
  kubeconfig: { type: 'string', env: 'KUBECONFIG', description: 'Path to a kubeconfig; in-cluster config when absent' },
  driver: {
    type: 'string',
    env: 'KUBENOVA_DRIVER',
    default: 'fake',
    choices: ['fake', 'libvirt'],
    description: 'Virt driver',
  },
  'state-dir': {
    type: 'string',
    env: 'KUBENOVA_STATE_DIR',
    default: '/var/lib/kubenova',
    description: 'Where instance directories live',
  },
  // No defaults here: with the libvirt driver a capacity flag given is an override and one not
  // given is measured on the host, so the parser must tell the two apart. The fake driver's
  // defaults (8 vCPUs, 16384 MiB, 200 GiB) are applied in assemble.ts.
  'capacity-vcpus': {
    type: 'number',
    env: 'KUBENOVA_CAPACITY_VCPUS',
    min: 1,
    description:
      'Host vCPUs offered to the scheduler. Fake driver: default 8. Libvirt driver: when not given, the CPUs ' +
      'the agent may run on, lowered to its cgroup CPU quota when that is tighter',
  },
  'capacity-memory-mib': {
    type: 'number',
    env: 'KUBENOVA_CAPACITY_MEMORY_MIB',
    min: 64,
    description:
      'Host memory in MiB offered to the scheduler. Fake driver: default 16384. Libvirt driver: when not given, ' +
      "the machine's total memory",
  },
  'capacity-disk-gib': {
    type: 'number',
    env: 'KUBENOVA_CAPACITY_DISK_GIB',
    min: 0,
    description:
      'Host disk in GiB offered to the scheduler. Fake driver: default 200. Libvirt driver: when not given, the ' +
      'size of the filesystem holding --state-dir',
  },
  zone: { type: 'string', env: 'KUBENOVA_ZONE', description: 'Availability zone label (topology.kubernetes.io/zone)' },
  labels: { type: 'string', env: 'KUBENOVA_NODE_LABELS', description: 'Extra ComputeNode labels, k=v,k2=v2' },
  'heartbeat-interval': {
    type: 'number',
    env: 'KUBENOVA_HEARTBEAT_INTERVAL',
    default: 10,
    min: 0.1,
    description: 'Seconds between heartbeats (node Lease renewals)',
  },
  'status-report-interval': {
    type: 'number',
    env: 'KUBENOVA_STATUS_REPORT_INTERVAL',
    default: 60,
    min: 0,
    description:
      'Seconds the ComputeNode status may go unwritten while the node Lease carries the heartbeats; ' +
      "0: no Lease, every heartbeat writes the status. Keep it below the operator's --node-heartbeat-timeout " +
      'plus its host-lost grace, so that an operator that reads no Leases (an older one, mid-upgrade) never reports a host lost',
  },
  'audit-interval': {
    type: 'number',
    env: 'KUBENOVA_AUDIT_INTERVAL',
    default: 60,
    min: 0.1,
    description: 'Seconds between resource audits (update_available_resource)',
  },
  'audit-grace': {
    type: 'number',
    env: 'KUBENOVA_AUDIT_GRACE',
    default: 30,
    min: 0,
    description: 'Seconds a claim without a live consumer is kept before the audit frees it',
  },
  'network-uplinks': {
    type: 'string',
    env: 'KUBENOVA_NETWORK_UPLINKS',
    description:
      "Each network's uplink on this host, NETWORK=INTERFACE,... (libvirt driver); a network without one uses the " +
      'interface named ku-<its hash> when the host has it, else its bridge stays local to the host',
  },
  ...METRICS_FLAGS,
  'migration-address': {
    type: 'string',
    env: 'KUBENOVA_MIGRATION_ADDRESS',
    default: '127.0.0.1',
    description: 'Address the disk-transfer server listens on',
  },
  'migration-port': {
    type: 'number',
    env: 'KUBENOVA_MIGRATION_PORT',
    default: 0,
    min: 0,
    description: 'Port of the disk-transfer server (0 = any free port)',
  },
  'advertise-address': {
    type: 'string',
    env: 'KUBENOVA_ADVERTISE_ADDRESS',
    description: 'Address peers use to reach this agent (defaults to --migration-address; the node IP in a cluster)',
  },
  ...RELEASE_FLAGS,
  'transfer-headroom-mib': {
    type: 'number',
    env: 'KUBENOVA_TRANSFER_HEADROOM_MIB',
    default: 1024,
    min: 0,
    description:
      'MiB of free space the staging filesystem keeps: an incoming disk transfer that would leave less is refused',
  },
  'transfer-certificate-wait': {
    type: 'number',
    env: 'KUBENOVA_TRANSFER_CERTIFICATE_WAIT',
    default: 30,
    min: 0,
    description:
      'Seconds a first start waits for its transfer certificate (issued by the operator) before it registers ' +
      'the host without a transfer endpoint, to publish one once the certificate arrives',
  },
  'transfer-retries': {
    type: 'number',
    env: 'KUBENOVA_TRANSFER_RETRIES',
    default: 3,
    min: 1,
    description: 'Attempts per file before a disk transfer is given up and the migration rolled back',
  },
  'step-retries': {
    type: 'number',
    env: 'KUBENOVA_STEP_RETRIES',
    default: 5,
    min: 1,
    description:
      'Failures of one migration step (a driver or transfer error, not an API error) before it rolls back onto the source',
  },
  ...STEP_FLAGS,
  'test-break-transfers': {
    type: 'number',
    env: 'KUBENOVA_TEST_BREAK_TRANSFERS',
    default: 0,
    min: 0,
    description: 'Test hook: break this many transfer attempts mid-stream',
  },
  ...LOG_FLAGS,
  'fake-fail-spawn-image': {
    type: 'string',
    env: 'KUBENOVA_FAKE_FAIL_SPAWN_IMAGE',
    description: 'Fake driver: spawning this image fails (to exercise the failure path)',
  },
  'api-keepalive': {
    type: 'boolean',
    env: 'KUBENOVA_API_KEEPALIVE',
    default: true,
    description:
      'Reuse TLS connections to the API server (client-node otherwise opens one per request); false for its own behaviour',
  },
  'libvirt-uri': {
    type: 'string',
    env: 'KUBENOVA_LIBVIRT_URI',
    default: 'qemu:///system',
    description:
      'Libvirt driver: libvirt connection URI, e.g. qemu:///system?socket=<dir>/libvirt-sock for a libvirtd ' +
      'listening elsewhere than in /run/libvirt; the agent waits until it answers before it registers its host',
  },
  'libvirt-images': {
    type: 'string',
    env: 'KUBENOVA_LIBVIRT_IMAGES',
    description:
      'Libvirt driver: guest images as name=dir,... (each dir holds image.json); default: the tiny image, built by node-agent/driver/guest-image/build.sh',
  },
  'libvirt-boot-timeout': {
    type: 'number',
    env: 'KUBENOVA_LIBVIRT_BOOT_TIMEOUT',
    default: 180,
    min: 0,
    description: 'Libvirt driver: seconds a start waits for the guest to report (0 = do not wait)',
  },
  'libvirt-accel': {
    type: 'string',
    env: 'KUBENOVA_LIBVIRT_ACCEL',
    default: 'auto',
    choices: ['auto', 'kvm', 'tcg'],
    description:
      'Libvirt driver: auto = KVM when libvirt offers it on this host (a working /dev/kvm), software emulation ' +
      '(TCG) otherwise; kvm = require it; tcg = never use it',
  },
  'libvirt-min-memory-mib': {
    type: 'number',
    env: 'KUBENOVA_LIBVIRT_MIN_MEMORY_MIB',
    default: 128,
    min: 64,
    description: 'Libvirt driver: memory floor of a guest, whatever its flavor says',
  },
  'spawn-delay-ms': {
    type: 'number',
    env: 'KUBENOVA_SPAWN_DELAY_MS',
    default: 0,
    min: 0,
    description: 'Fake driver: time a spawn takes',
  },
} as const satisfies Record<string, FlagSpec>;

export type AgentConfig = ReturnType<typeof parseAgentConfig>;

export function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  return parseFlags(AGENT_FLAGS, argv, env);
}
