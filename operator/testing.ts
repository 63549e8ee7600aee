// The operator's controllers for unit tests, built as operator.ts builds them but on the in-memory
// API server (common/kube/fake.ts) with a clock the test moves, plus builders for the objects
// they read. A test seeds the world, plays the node agent's part by writing what an agent would
// write, and calls one reconcile at a time.
import pino from 'pino';
import { snapshotOf } from '../common/api/flavor.js';
import {
  API_VERSION,
  FINALIZER,
  type Claim,
  type ComputeNode,
  type ComputeQuota,
  type Flavor,
  type FlavorSnapshot,
  type FlavorSpec,
  type Instance,
  type InstanceSpec,
  type InstanceStatus,
  type Migration,
  type MigrationSpec,
  type MigrationStatus,
  type QuotaAllocation,
  type QuotaAmounts,
  type ResourceAmounts,
} from '../common/api/types.js';
import { isConflict } from '../common/kube/client.js';
import { FakeCluster } from '../common/kube/fake.js';
import { FaultRecorder } from '../common/kube/fault-recorder.js';
import type { ReconcileResult } from '../common/runtime/controller.js';
import { BootConductor } from './instance/boot.js';
import { InstanceController } from './instance/controller.js';
import { DeletionConductor } from './instance/deletion.js';
import { HostRouting } from './host-routing.js';
import { ResizeRequests } from './instance/resize-request.js';
import type { MigrationController } from './migration/controller.js';
import type { Decisions } from './migration/decision.js';
import { migrationController } from './migration/wiring.js';
import { statusOf } from './quota/ledger.js';
import { QuotaService } from './quota/quota-service.js';
import { PlacementAttempts } from './scheduler/attempts.js';
import { HeartbeatClock } from './nodehealth/heartbeat-clock.js';
import { Placement } from './scheduler/placement.js';
import { DEFAULT_SCHEDULER_CONFIG, Scheduler } from './scheduler/scheduler.js';
import { ServerGroups } from './servergroups/membership.js';
import { IPAllocator } from './network/allocator.js';
import { PortBindingController } from './network/binding-controller.js';
import { InstanceNetworks } from './network/instance-networks.js';
import { NetworkStatusController } from './network/network-status.js';
import { Ports } from './network/ports.js';

export const T0 = new Date('2025-01-01T12:00:00Z');
export const HEARTBEAT_TIMEOUT_MS = 40_000;
/** The step deadline the operator under test writes (the default flag: five minutes). */
export const STEP_TIMEOUT_MS = 300_000;
/** What operator.ts derives from the heartbeat timeout. */
export const CLAIM_TIMEOUT_MS = Math.max(2_000, HEARTBEAT_TIMEOUT_MS / 2);

export const SMALL: FlavorSpec = { vcpus: 1, memoryMiB: 2048, rootDiskGiB: 20, ephemeralDiskGiB: 0 };
export const LARGE: FlavorSpec = { vcpus: 2, memoryMiB: 4096, rootDiskGiB: 40, ephemeralDiskGiB: 0 };

export function aFlavor(name: string, spec: Partial<FlavorSpec> = {}): Flavor {
  return { apiVersion: API_VERSION, kind: 'Flavor', metadata: { name }, spec: { ...SMALL, ...spec } };
}

export interface NodeOptions {
  allocatable?: ResourceAmounts;
  claims?: Claim[];
  labels?: Record<string, string>;
  disabled?: boolean;
  heartbeatTime?: Date;
  ready?: 'True' | 'False' | 'Unknown';
}

/** A registered host whose agent is alive: Ready True, heartbeat at `now`, allocated = sum of claims. */
export function aNode(name: string, now: Date, opts: NodeOptions = {}): ComputeNode {
  const allocatable = opts.allocatable ?? { vcpus: 8, memoryMiB: 16384, diskGiB: 200 };
  const claims = opts.claims ?? [];
  return {
    apiVersion: API_VERSION,
    kind: 'ComputeNode',
    metadata: { name, labels: opts.labels ?? {} },
    spec: { disabled: opts.disabled ?? false },
    status: {
      capacity: { ...allocatable },
      allocatable: { ...allocatable },
      allocated: sumClaims(claims),
      claims,
      heartbeatTime: (opts.heartbeatTime ?? now).toISOString(),
      conditions: [
        {
          type: 'Ready',
          status: opts.ready ?? 'True',
          reason: 'NodeAgentReady',
          lastTransitionTime: now.toISOString(),
        },
      ],
    },
  };
}

function sumClaims(claims: readonly Claim[]): ResourceAmounts {
  return claims.reduce(
    (s, c) => ({ vcpus: s.vcpus + c.vcpus, memoryMiB: s.memoryMiB + c.memoryMiB, diskGiB: s.diskGiB + c.diskGiB }),
    { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
  );
}

export function aClaim(consumer: string, kind: Claim['kind'], flavor: FlavorSpec, instance = 'default/web-1'): Claim {
  const diskGiB = flavor.rootDiskGiB + (flavor.ephemeralDiskGiB ?? 0);
  return { consumer, kind, instance, vcpus: flavor.vcpus, memoryMiB: flavor.memoryMiB, diskGiB };
}

export function anInstance(name: string, spec: Partial<InstanceSpec> = {}, status?: InstanceStatus): Instance {
  return {
    apiVersion: API_VERSION,
    kind: 'Instance',
    metadata: { name, namespace: 'default', finalizers: [FINALIZER] },
    spec: { flavor: 'm1.small', image: 'cirros', ...spec },
    ...(status ? { status } : {}),
  };
}

/** The status of an instance that booted on `host` with `flavor` and has no task. */
export function running(host: string, flavor: FlavorSnapshot, extra: InstanceStatus = {}): InstanceStatus {
  return {
    vmState: 'active',
    taskState: '',
    powerState: 'running',
    host,
    flavor,
    observedGeneration: 1,
    scheduling: { selectedHost: host },
    ...extra,
  };
}

export function aMigration(name: string, spec: MigrationSpec, status?: MigrationStatus): Migration {
  return {
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name, namespace: 'default' },
    spec,
    ...(status ? { status } : {}),
  };
}

export function aQuota(hard: QuotaAmounts, allocations: QuotaAllocation[] = []): ComputeQuota {
  return {
    apiVersion: API_VERSION,
    kind: 'ComputeQuota',
    metadata: { name: 'compute', namespace: 'default' },
    spec: { hard },
    status: statusOf(hard, allocations),
  };
}

export const snapshot = (name: string, spec: FlavorSpec): FlavorSnapshot => snapshotOf(aFlavor(name, spec));

export interface WorldOptions {
  maxAttempts?: number;
  /** Seconds (0 = never confirm automatically). */
  resizeConfirmWindow?: number;
  allowResizeToSameHost?: boolean;
}

export class World {
  readonly cluster = new FakeCluster();
  readonly kube = this.cluster.client();
  readonly log = pino({ level: 'silent' });
  /** The clock every component reads; a test moves it. */
  now = T0;
  readonly reschedules: string[] = [];

  readonly quota: QuotaService;
  readonly placement: Placement;
  readonly groups: ServerGroups;
  readonly attempts: PlacementAttempts;
  readonly boot: BootConductor;
  readonly resize: ResizeRequests;
  readonly deletion: DeletionConductor;
  readonly instances: InstanceController;
  readonly decisions: Decisions;
  readonly migrations: MigrationController;
  readonly allocator: IPAllocator;
  readonly networks: InstanceNetworks;
  readonly networkStatus: NetworkStatusController;
  readonly binding: PortBindingController;

  constructor(opts: WorldOptions = {}) {
    const clock = () => this.now;
    const { cluster, kube, log } = this;
    const events = cluster.recorder(log, 'operator');
    const faults = new FaultRecorder(events, clock);
    this.quota = new QuotaService(kube, cluster.cache('ComputeQuota'), log);
    const scheduler = new Scheduler(DEFAULT_SCHEDULER_CONFIG);
    this.placement = new Placement(
      scheduler,
      cluster.cache('ComputeNode'),
      new HeartbeatClock(HEARTBEAT_TIMEOUT_MS, () => clock().getTime()),
    );
    const inFlight = this.placement.inFlight;
    const pendingHostOf = (uid: string) => inFlight.hostOf(uid);
    this.groups = new ServerGroups(cluster.cache('ServerGroup'), cluster.cache('Instance'), pendingHostOf);
    this.attempts = new PlacementAttempts(this.placement, this.groups, {
      maxAttempts: opts.maxAttempts ?? 3,
      claimTimeoutMs: CLAIM_TIMEOUT_MS,
      onReschedule: (what) => this.reschedules.push(what),
    });
    const flavors = cluster.cache('Flavor');
    this.allocator = new IPAllocator(kube, cluster.cache('IPAllocation'), log);
    const ports = new Ports(kube, cluster.cache('Port'), this.allocator, events, log);
    this.networks = new InstanceNetworks(kube, cluster.cache('Network'), ports);
    this.networkStatus = new NetworkStatusController(
      kube,
      cluster.cache('Network'),
      cluster.cache('IPAllocation'),
      events,
      clock,
    );
    this.binding = new PortBindingController(
      kube,
      cluster.cache('Port'),
      cluster.cache('Instance'),
      cluster.cache('Migration'),
      events,
      log,
    );
    const { networks } = this;
    this.boot = new BootConductor(
      kube,
      flavors,
      this.attempts,
      this.quota,
      this.groups,
      networks,
      events,
      faults,
      log,
      clock,
    );
    this.resize = new ResizeRequests(kube, flavors, cluster.cache('Migration'), this.quota, faults, log);
    this.deletion = new DeletionConductor(kube, this.placement, this.quota, networks, events, log);
    this.instances = new InstanceController(
      cluster.cache('Instance'),
      cluster.cache('Migration'),
      this.boot,
      this.resize,
      this.deletion,
      this.quota,
      networks,
      new HostRouting(kube, log),
    );
    const wired = migrationController({
      kube,
      caches: {
        migrations: cluster.cache('Migration'),
        instances: cluster.cache('Instance'),
        nodes: cluster.cache('ComputeNode'),
        flavors,
      },
      placement: this.placement,
      attempts: this.attempts,
      groups: this.groups,
      quota: this.quota,
      events,
      faults,
      config: {
        allowResizeToSameHost: opts.allowResizeToSameHost ?? false,
        resizeConfirmWindowSeconds: opts.resizeConfirmWindow ?? 0,
        stepTimeoutMs: STEP_TIMEOUT_MS,
      },
      log,
      now: clock,
    });
    this.decisions = wired.decisions;
    this.migrations = wired.controller;
  }

  seedFlavor(name: string, spec: Partial<FlavorSpec> = {}): Flavor {
    return this.cluster.seed(aFlavor(name, spec)) as Flavor;
  }

  seedNode(name: string, opts: NodeOptions = {}): ComputeNode {
    return this.cluster.seed(aNode(name, this.now, opts)) as ComputeNode;
  }

  seedInstance(inst: Instance): Instance {
    return this.cluster.seed(inst) as Instance;
  }

  seedMigration(mig: Migration): Migration {
    return this.cluster.seed(mig) as Migration;
  }

  seedQuota(hard: QuotaAmounts, allocations: QuotaAllocation[] = []): ComputeQuota {
    return this.cluster.seed(aQuota(hard, allocations)) as ComputeQuota;
  }

  instance(name: string): Instance {
    const inst = this.cluster.get('Instance', name, 'default');
    if (!inst) throw new Error(`instance ${name} does not exist`);
    return inst;
  }

  migration(name: string): Migration {
    const mig = this.cluster.get('Migration', name, 'default');
    if (!mig) throw new Error(`migration ${name} does not exist`);
    return mig;
  }

  /** The namespace's quota allocations, by consumer. */
  allocations(): QuotaAllocation[] {
    return this.cluster.get('ComputeQuota', 'compute', 'default')?.status?.allocations ?? [];
  }

  /** Messages of the Events about one object with one reason. */
  messages(name: string, reason: string): string[] {
    return this.cluster.events
      .filter((e) => e.involvedObject.name === name && e.reason === reason)
      .map((e) => e.message ?? '');
  }

  /** The writes after the first `since` ones, as "verb Kind/name". */
  writesSince(since: number): string[] {
    return this.cluster.writes.slice(since).map((w) => `${w.verb} ${w.kind}/${w.name}`);
  }

  // What the node agents would write.

  /** The agent of the selected host could not claim: scheduling.claimFailure for the current attempt. */
  async failClaim(kind: 'Instance' | 'Migration', name: string, message: string): Promise<void> {
    const obj = kind === 'Instance' ? this.instance(name) : this.migration(name);
    const s = obj.status?.scheduling ?? {};
    const claimFailure = { host: s.selectedHost ?? '', attempt: s.attempts ?? 0, message };
    if (kind === 'Instance') await this.kube.instances.patchStatus(obj, { scheduling: { claimFailure } });
    else await this.kube.migrations.patchStatus(obj, { scheduling: { claimFailure } });
  }

  /** The host's agent stopped posting heartbeats long ago. */
  async silence(node: string): Promise<void> {
    const cn = this.cluster.get('ComputeNode', node);
    if (!cn) throw new Error(`node ${node} does not exist`);
    const old = new Date(this.now.getTime() - 10 * HEARTBEAT_TIMEOUT_MS).toISOString();
    await this.kube.computeNodes.patchStatus(cn, { heartbeatTime: old });
  }

  /** Sets a host's claims (allocated follows), as its agent would after claiming or freeing. */
  async setClaims(node: string, claims: Claim[]): Promise<void> {
    const cn = this.cluster.get('ComputeNode', node);
    if (!cn) throw new Error(`node ${node} does not exist`);
    await this.kube.computeNodes.patchStatus(cn, { claims, allocated: sumClaims(claims) });
  }

  reconcileInstance(name: string) {
    return this.instances.reconcile(`default/${name}`);
  }

  reconcileMigration(name: string) {
    return this.migrations.reconcile(`default/${name}`);
  }

  /**
   * Reconciles a Migration as the Controller does: a conflict (someone wrote first) is retried
   * with a fresh read. Returns the last result and how many conflicts it took.
   */
  async reconcileMigrationRetryingConflicts(name: string): Promise<{ result: ReconcileResult; conflicts: number }> {
    for (let conflicts = 0; ; conflicts++) {
      try {
        return { result: await this.reconcileMigration(name), conflicts };
      } catch (err) {
        if (!isConflict(err) || conflicts >= 5) throw err;
      }
    }
  }
}
