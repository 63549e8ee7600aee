// kubenova's own metrics, beside the controller-runtime ones in metrics.ts: one list for both
// components, each registered on the Metrics registry of the process that uses it (see the
// getters on Metrics). The operator observes what it sees in its watch-fed caches; the agent
// counts what it claims and transfers.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { MIGRATION_PHASES, MIGRATION_LIFECYCLE, isTerminal } from '../api/lifecycle.js';
import { getCondition } from '../api/conditions.js';
import type {
  ClaimKind,
  ComputeNode,
  ComputeNodeStatus,
  Instance,
  Migration,
  MigrationPhase,
  ResourceAmounts,
  VmState,
} from '../api/types.js';

/**
 * The `resource` and `unit` labels of the node gauges, in base units (Prometheus' convention):
 * each ComputeNode amount times the factor that turns the API's unit into that base unit.
 */
export const NODE_RESOURCES = [
  { resource: 'cpu', unit: 'cores', key: 'vcpus', factor: 1 },
  { resource: 'memory', unit: 'bytes', key: 'memoryMiB', factor: 1024 ** 2 },
  { resource: 'disk', unit: 'bytes', key: 'diskGiB', factor: 1024 ** 3 },
] as const satisfies ReadonlyArray<{ resource: string; unit: string; key: keyof ResourceAmounts; factor: number }>;

/** The `resource` label of claim failures: the names a ClaimFailed reason uses. */
export const CLAIM_RESOURCES = ['vcpus', 'memory', 'disk'] as const;
export type ClaimResource = (typeof CLAIM_RESOURCES)[number];

export type SchedulingResult = 'success' | 'no_valid_host';
export type MigrationType = NonNullable<Migration['status']>['type'] & string;

const MIGRATION_TYPES: readonly MigrationType[] = ['resize', 'migration'];
// Every vmState, so that a namespace with instances shows each state, at zero when none is in it.
const EVERY_VM_STATE: Record<VmState, true> = {
  building: true,
  active: true,
  stopped: true,
  resized: true,
  error: true,
  deleted: true,
};
const VM_STATES = Object.keys(EVERY_VM_STATE) as VmState[];
/** The `phase` of a Migration the operator has not yet started or refused (no status yet). */
export const PENDING_PHASE = 'pending';
// Phases with the instance running on the destination: the first one seen times the migration.
const arrived = (status: MigrationPhase) => ['open', 'acting'].includes(MIGRATION_LIFECYCLE[status].decision);

/** Allocated and allocatable per host (ComputeNode status), on the operator and on the agent. */
export class NodeResourceMetrics {
  readonly allocated: Gauge<'node' | 'resource' | 'unit'>;
  readonly allocatable: Gauge<'node' | 'resource' | 'unit'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const labelNames = ['node', 'resource', 'unit'] as const;
    this.allocated = new Gauge({
      name: 'kubenova_node_allocated',
      help: 'Resources claimed on a host (ComputeNode status.allocated), in base units; resource=cpu (unit=cores), memory or disk (unit=bytes)',
      labelNames,
      registers,
    });
    this.allocatable = new Gauge({
      name: 'kubenova_node_allocatable',
      help: 'Resources a host can give after reserve and allocation ratio (ComputeNode status.allocatable), in base units; resource=cpu (unit=cores), memory or disk (unit=bytes)',
      labelNames,
      registers,
    });
  }

  set(node: string, status: Pick<ComputeNodeStatus, 'allocated' | 'allocatable'> | undefined): void {
    for (const { resource, unit, key, factor } of NODE_RESOURCES) {
      const allocated = status?.allocated?.[key];
      const allocatable = status?.allocatable?.[key];
      if (allocated !== undefined) this.allocated.set({ node, resource, unit }, allocated * factor);
      if (allocatable !== undefined) this.allocatable.set({ node, resource, unit }, allocatable * factor);
    }
  }

  /** A host that is gone leaves no series behind. */
  delete(node: string): void {
    for (const { resource, unit } of NODE_RESOURCES) {
      this.allocated.remove({ node, resource, unit });
      this.allocatable.remove({ node, resource, unit });
    }
  }
}

interface MigrationSeen {
  statuses: Set<string>;
  timed: boolean;
}

/** What the gauges need of a Migration the cache holds now. */
interface MigrationNow {
  phase: MigrationPhase | typeof PENDING_PHASE;
  /** When it is past its deadline (ms since the epoch), if it runs against one. */
  overdueAt?: number;
}

/**
 * When a live Migration is stuck: past its phase's `stepDeadline` (the step guard acts at that
 * moment, so one still there is not being acted on), or, once a rollback was asked of the
 * phase's owner (the guard clears the deadline then), one more step timeout after the request.
 */
export function overdueAt(mig: Migration, stepTimeoutMs: number): number | undefined {
  const s = mig.status;
  if (!s?.status || isTerminal(s.status)) return undefined;
  const deadline = Date.parse(s.stepDeadline ?? '');
  if (Number.isFinite(deadline)) return deadline;
  const requested = s.rollback?.phase === s.status ? Date.parse(s.rollback.time ?? '') : NaN;
  return Number.isFinite(requested) ? requested + stepTimeoutMs : undefined;
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
  readonly instances: Gauge<'namespace' | 'state'>;
  readonly migrationsNow: Gauge<'phase'>;
  readonly migrationsPastDeadline: Gauge<'phase'>;
  readonly nodeReady: Gauge<'node'>;
  /** Instances seen building: their first `active` is observed once, then forgotten. */
  private readonly building = new Set<string>();
  private readonly migrationsSeen = new Map<string, MigrationSeen>();
  /** Every Instance in the cache now, by uid: the gauge counts them at scrape time. */
  private readonly instanceStates = new Map<string, { namespace: string; state: VmState }>();
  private readonly migrationStates = new Map<string, MigrationNow>();
  /** How long the owner of a requested rollback has before the Migration counts as stuck. */
  private stepTimeoutMs = 300_000;

  constructor(
    registry: Registry,
    private readonly now: () => number = Date.now,
  ) {
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
    this.instances = new Gauge({
      name: 'kubenova_instances',
      help: "Instances in the operator's cache by namespace and state (status.vmState; building until it has one)",
      labelNames: ['namespace', 'state'],
      registers,
      collect: () => this.countInstances(),
    });
    this.migrationsNow = new Gauge({
      name: 'kubenova_migrations',
      help: `Migrations in the operator's cache by phase (status.status; ${PENDING_PHASE} until the operator starts or refuses it)`,
      labelNames: ['phase'],
      registers,
      collect: () => this.countMigrations(),
    });
    this.migrationsPastDeadline = new Gauge({
      name: 'kubenova_migrations_past_deadline',
      help: 'Live Migrations past their status.stepDeadline, or whose requested rollback has waited longer than the step timeout, by phase',
      labelNames: ['phase'],
      registers,
      collect: () => this.countMigrations(),
    });
    this.nodeReady = new Gauge({
      name: 'kubenova_node_ready',
      help: 'Whether a ComputeNode is Ready (its Ready condition is True): 1, or 0 while False or Unknown',
      labelNames: ['node'],
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

  /** The operator's --step-timeout: how long a requested rollback may take before it is stuck. */
  setStepTimeout(ms: number): void {
    this.stepTimeoutMs = ms;
  }

  /** Every Instance the operator's cache delivers (add and update). */
  observeInstance(inst: Instance, now: Date = new Date()): void {
    const uid = inst.metadata.uid;
    if (!uid) return;
    const vmState = inst.status?.vmState;
    this.instanceStates.set(uid, { namespace: inst.metadata.namespace ?? '', state: vmState ?? 'building' });
    if (!vmState || vmState === 'building') {
      this.building.add(uid);
      return;
    }
    if (!this.building.delete(uid) || vmState !== 'active') return;
    const created = inst.metadata.creationTimestamp ? new Date(inst.metadata.creationTimestamp).getTime() : NaN;
    if (Number.isFinite(created)) this.bootTimeToActive.observe(Math.max(0, (now.getTime() - created) / 1000));
  }

  forgetInstance(inst: Instance): void {
    if (!inst.metadata.uid) return;
    this.building.delete(inst.metadata.uid);
    this.instanceStates.delete(inst.metadata.uid);
  }

  /** Every Migration the operator's cache delivers (add and update). */
  observeMigration(mig: Migration): void {
    const uid = mig.metadata.uid;
    if (!uid) return;
    const status = mig.status?.status;
    this.migrationStates.set(uid, {
      phase: status ?? PENDING_PHASE,
      overdueAt: overdueAt(mig, this.stepTimeoutMs),
    });
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
    if (!mig.metadata.uid) return;
    this.migrationsSeen.delete(mig.metadata.uid);
    this.migrationStates.delete(mig.metadata.uid);
  }

  /** Every ComputeNode the operator's cache delivers (add and update). */
  observeNode(node: ComputeNode): void {
    const ready = getCondition(node.status?.conditions, 'Ready')?.status === 'True';
    this.nodeReady.set({ node: node.metadata.name }, ready ? 1 : 0);
  }

  forgetNode(node: ComputeNode): void {
    this.nodeReady.remove({ node: node.metadata.name });
  }

  private countInstances(): void {
    const counts = new Map<string, Map<VmState, number>>();
    for (const { namespace, state } of this.instanceStates.values()) {
      let byState = counts.get(namespace);
      if (!byState) counts.set(namespace, (byState = new Map(VM_STATES.map((s) => [s, 0]))));
      byState.set(state, (byState.get(state) ?? 0) + 1);
    }
    // A namespace whose last instance went leaves no series behind.
    this.instances.reset();
    for (const [namespace, byState] of counts)
      for (const [state, n] of byState) this.instances.set({ namespace, state }, n);
  }

  private countMigrations(): void {
    const now = this.now();
    const phases = [PENDING_PHASE, ...MIGRATION_PHASES];
    const all = new Map<string, number>(phases.map((p) => [p, 0]));
    const overdue = new Map<string, number>(MIGRATION_PHASES.filter((p) => !isTerminal(p)).map((p) => [p, 0]));
    for (const { phase, overdueAt } of this.migrationStates.values()) {
      all.set(phase, (all.get(phase) ?? 0) + 1);
      if (overdueAt !== undefined && now > overdueAt) overdue.set(phase, (overdue.get(phase) ?? 0) + 1);
    }
    for (const [phase, n] of all) this.migrationsNow.set({ phase }, n);
    for (const [phase, n] of overdue) this.migrationsPastDeadline.set({ phase }, n);
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
