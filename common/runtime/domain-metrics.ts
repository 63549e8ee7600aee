// kubenova's own metrics, beside the controller-runtime ones in metrics.ts: one list for both
// components, each registered on the Metrics registry of the process that uses it (see the
// getters on Metrics). The operator observes what it sees in its watch-fed caches; the agent
// counts what it claims and transfers.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { MIGRATION_PHASES, MIGRATION_LIFECYCLE, isTerminal } from '../api/lifecycle.js';
import type {
  ClaimKind,
  ComputeNodeStatus,
  Instance,
  Migration,
  MigrationPhase,
  ResourceAmounts,
} from '../api/types.js';

/** The `resource` label of the node gauges, with the unit in the name as the API has it. */
export const NODE_RESOURCES = [
  ['vcpus', 'vcpus'],
  ['memory_mib', 'memoryMiB'],
  ['disk_gib', 'diskGiB'],
] as const satisfies ReadonlyArray<readonly [string, keyof ResourceAmounts]>;

/** The `resource` label of claim failures: the names a ClaimFailed reason uses. */
export const CLAIM_RESOURCES = ['vcpus', 'memory', 'disk'] as const;
export type ClaimResource = (typeof CLAIM_RESOURCES)[number];

export type SchedulingResult = 'success' | 'no_valid_host';
export type MigrationType = NonNullable<Migration['status']>['type'] & string;

const MIGRATION_TYPES: readonly MigrationType[] = ['resize', 'migration'];
// Phases with the instance running on the destination: the first one seen times the migration.
const arrived = (status: MigrationPhase) => ['open', 'acting'].includes(MIGRATION_LIFECYCLE[status].decision);

/** Allocated and allocatable per host (ComputeNode status), on the operator and on the agent. */
export class NodeResourceMetrics {
  readonly allocated: Gauge<'node' | 'resource'>;
  readonly allocatable: Gauge<'node' | 'resource'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const labelNames = ['node', 'resource'] as const;
    this.allocated = new Gauge({
      name: 'kubenova_node_allocated',
      help: 'Resources claimed on a host (ComputeNode status.allocated); resource=vcpus|memory_mib|disk_gib',
      labelNames,
      registers,
    });
    this.allocatable = new Gauge({
      name: 'kubenova_node_allocatable',
      help: 'Resources a host can give after reserve and allocation ratio (ComputeNode status.allocatable); resource=vcpus|memory_mib|disk_gib',
      labelNames,
      registers,
    });
  }

  set(node: string, status: Pick<ComputeNodeStatus, 'allocated' | 'allocatable'> | undefined): void {
    for (const [resource, key] of NODE_RESOURCES) {
      const allocated = status?.allocated?.[key];
      const allocatable = status?.allocatable?.[key];
      if (allocated !== undefined) this.allocated.set({ node, resource }, allocated);
      if (allocatable !== undefined) this.allocatable.set({ node, resource }, allocatable);
    }
  }

  /** A host that is gone leaves no series behind. */
  delete(node: string): void {
    for (const [resource] of NODE_RESOURCES) {
      this.allocated.remove({ node, resource });
      this.allocatable.remove({ node, resource });
    }
  }
}

interface MigrationSeen {
  statuses: Set<string>;
  timed: boolean;
}

/**
 * The operator's metrics. Counts and durations come from what its caches show, once per
 * object: a transition is counted only when the operator saw the object before it, so the
 * relist at start (or after a leader change) does not count old history again.
 */
export class OperatorMetrics {
  readonly schedulingDuration: Histogram<'result'>;
  readonly bootTimeToActive: Histogram;
  readonly reschedules: Counter<'kind'>;
  readonly migrations: Counter<'type' | 'status'>;
  readonly resizeDuration: Histogram<'type'>;
  /** Instances seen building: their first `active` is observed once, then forgotten. */
  private readonly building = new Set<string>();
  private readonly migrationsSeen = new Map<string, MigrationSeen>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.schedulingDuration = new Histogram({
      name: 'kubenova_scheduling_duration_seconds',
      help: 'Time the scheduler took per decision (filters and weighers over the cached hosts); result=success|no_valid_host',
      labelNames: ['result'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers,
    });
    this.bootTimeToActive = new Histogram({
      name: 'kubenova_boot_time_to_active_seconds',
      help: "Time from an Instance's creation to the operator seeing it active the first time",
      buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers,
    });
    this.reschedules = new Counter({
      name: 'kubenova_reschedules_total',
      help: 'Placements retried on another host after a failed claim or a lost host; kind=instance|migration',
      labelNames: ['kind'],
      registers,
    });
    this.migrations = new Counter({
      name: 'kubenova_migrations_total',
      help: 'Migrations reaching a status (each phase once per Migration); type=resize|migration',
      labelNames: ['type', 'status'],
      registers,
    });
    this.resizeDuration = new Histogram({
      name: 'kubenova_resize_duration_seconds',
      help: "Time from a Migration's startedAt to its finishedAt (disk moved, instance running on the destination); type=resize|migration",
      labelNames: ['type'],
      buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });
    for (const result of ['success', 'no_valid_host'] as const) this.schedulingDuration.zero({ result });
    for (const kind of ['instance', 'migration'] as const) this.reschedules.inc({ kind }, 0);
    for (const type of MIGRATION_TYPES) {
      this.resizeDuration.zero({ type });
      for (const status of MIGRATION_PHASES.filter(isTerminal)) this.migrations.inc({ type, status }, 0);
    }
  }

  /** Times one scheduler decision; the result follows from whether `decide` threw NoValidHost. */
  scheduled(result: SchedulingResult, seconds: number): void {
    this.schedulingDuration.observe({ result }, seconds);
  }

  rescheduled(kind: ClaimKind): void {
    this.reschedules.inc({ kind });
  }

  /** Every Instance the operator's cache delivers (add and update). */
  observeInstance(inst: Instance, now: Date = new Date()): void {
    const uid = inst.metadata.uid;
    if (!uid) return;
    const vmState = inst.status?.vmState;
    if (!vmState || vmState === 'building') {
      this.building.add(uid);
      return;
    }
    if (!this.building.delete(uid) || vmState !== 'active') return;
    const created = inst.metadata.creationTimestamp ? new Date(inst.metadata.creationTimestamp).getTime() : NaN;
    if (Number.isFinite(created)) this.bootTimeToActive.observe(Math.max(0, (now.getTime() - created) / 1000));
  }

  forgetInstance(inst: Instance): void {
    if (inst.metadata.uid) this.building.delete(inst.metadata.uid);
  }

  /** Every Migration the operator's cache delivers (add and update). */
  observeMigration(mig: Migration): void {
    const uid = mig.metadata.uid;
    if (!uid) return;
    const status = mig.status?.status;
    const seen = this.migrationsSeen.get(uid);
    if (!seen) {
      // First sight: a new Migration has no status yet; one with a status was there before
      // this operator started, and its history was counted by whoever saw it happen.
      this.migrationsSeen.set(uid, {
        statuses: new Set([status ?? '']),
        timed: !!status && (arrived(status) || isTerminal(status)),
      });
      return;
    }
    if (!status || seen.statuses.has(status)) return;
    seen.statuses.add(status);
    const type: MigrationType = mig.status?.type ?? (mig.spec.flavor ? 'resize' : 'migration');
    this.migrations.inc({ type, status });
    if (arrived(status) && !seen.timed) {
      seen.timed = true;
      const started = Date.parse(mig.status?.startedAt ?? '');
      const finished = Date.parse(mig.status?.finishedAt ?? '');
      if (Number.isFinite(started) && Number.isFinite(finished))
        this.resizeDuration.observe({ type }, Math.max(0, (finished - started) / 1000));
    }
  }

  forgetMigration(mig: Migration): void {
    if (mig.metadata.uid) this.migrationsSeen.delete(mig.metadata.uid);
  }
}

/** The node agent's metrics: what its hosts claimed and moved. */
export class AgentMetrics {
  readonly claims: Counter<'kind' | 'result'>;
  readonly claimFailures: Counter<'resource'>;
  readonly diskTransferBytes: Counter;
  readonly diskTransferDuration: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    this.claims = new Counter({
      name: 'kubenova_claims_total',
      help: "Claims tested on this agent's hosts; kind=instance|migration, result=success|failure",
      labelNames: ['kind', 'result'],
      registers,
    });
    this.claimFailures = new Counter({
      name: 'kubenova_claim_failures_total',
      help: 'Resources found short by failed claims, one per resource named; resource=vcpus|memory|disk',
      labelNames: ['resource'],
      registers,
    });
    this.diskTransferBytes = new Counter({
      name: 'kubenova_disk_transfer_bytes_total',
      help: 'Bytes of instance directories sent to destination agents (verified transfers)',
      registers,
    });
    this.diskTransferDuration = new Histogram({
      name: 'kubenova_disk_transfer_duration_seconds',
      help: 'Time per completed instance-directory transfer, retries included',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    for (const kind of ['instance', 'migration'] as const)
      for (const result of ['success', 'failure'] as const) this.claims.inc({ kind, result }, 0);
    for (const resource of CLAIM_RESOURCES) this.claimFailures.inc({ resource }, 0);
  }

  claimed(kind: ClaimKind): void {
    this.claims.inc({ kind, result: 'success' });
  }

  claimFailed(kind: ClaimKind, short: readonly ClaimResource[]): void {
    this.claims.inc({ kind, result: 'failure' });
    for (const resource of short) this.claimFailures.inc({ resource });
  }

  transferred(bytes: number, seconds: number): void {
    this.diskTransferBytes.inc(bytes);
    this.diskTransferDuration.observe(seconds);
  }
}
