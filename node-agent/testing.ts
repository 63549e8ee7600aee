// Builders for the node agent's unit tests: one host wired as host-agent.ts wires it (tracker,
// placement claims, fault recorder, instance worker, both migration sides, audit), on the
// in-memory API server, with a real FakeDriver in a temporary directory. Each test states only
// the objects its promise depends on.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  FlavorSnapshot,
  Instance,
  InstanceSpec,
  InstanceStatus,
  Migration,
  MigrationStatus,
  ResourceAmounts,
} from '../common/api/types.js';
import { API_VERSION } from '../common/api/types.js';
import type { KubeClient, ObjectCache } from '../common/kube/api.js';
import type { EventRecorder } from '../common/kube/events.js';
import { FakeCluster } from '../common/kube/fake.js';
import { FaultRecorder } from '../common/kube/fault-recorder.js';
import { createLogger, type Logger } from '../common/log.js';
import { objectKey } from '../common/runtime/controller.js';
import { Auditor } from './audit/audit.js';
import { FakeDriver, type FakeDriverOptions } from './driver/fake.js';
import { InstanceWorker } from './instances/instance-worker.js';
import { MigrationDestination } from './migration/destination.js';
import type { MigrationSide } from './migration/shared.js';
import { MigrationSource } from './migration/source.js';
import { PlacementClaims } from './tracker/claim-or-report.js';
import { ResourceTracker } from './tracker/resource-tracker.js';
import { credentialSecret } from '../common/api/transfer-credential.js';
import {
  createCa,
  createCsr,
  newPrivateKey,
  parseCsr,
  signLeaf,
  type CertificateAuthority,
} from '../common/tls/x509.js';
import { CredentialCache } from './transfer/credentials.js';
import { TransferGate } from './transfer/gate.js';
import { TransferServer, type TlsMaterial } from './transfer/server.js';
import { AgentNetworking } from './network/agent-networking.js';
import { SimulatedNetwork } from './network/host-network.js';

export const silentLog: Logger = createLogger({ component: 'test', level: 'silent' });

export const SMALL: FlavorSnapshot = {
  name: 'm1.small',
  vcpus: 1,
  memoryMiB: 1024,
  rootDiskGiB: 1,
  ephemeralDiskGiB: 0,
};
export const MEDIUM: FlavorSnapshot = {
  name: 'm1.medium',
  vcpus: 2,
  memoryMiB: 2048,
  rootDiskGiB: 2,
  ephemeralDiskGiB: 0,
};
export const HUGE: FlavorSnapshot = {
  name: 'm1.huge',
  vcpus: 2,
  memoryMiB: 65536,
  rootDiskGiB: 2,
  ephemeralDiskGiB: 0,
};

/** 4 vCPUs (16 after the default 4x ratio), 8 GiB allocatable after the default 512 MiB reserve, 20 GiB disk. */
/** The step deadline the agents under test write (five minutes, as the default flag). */
export const STEP_TIMEOUT_MS = 300_000;

export const CAPACITY: ResourceAmounts = { vcpus: 4, memoryMiB: 8704, diskGiB: 20 };

/** Whether a file or directory is there. */
export function pathExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The namespace agents under test read transfer credentials from. */
export const RELEASE_NAMESPACE = 'kubenova-system';

let testCa: Promise<CertificateAuthority> | undefined;
const testLeaves = new Map<string, Promise<TlsMaterial>>();

/** A transfer certificate for `host` from one CA made once per test process. */
export function testTls(host: string): Promise<TlsMaterial> {
  let leaf = testLeaves.get(host);
  if (!leaf) {
    leaf = (async () => {
      const ca = await (testCa ??= createCa('kubenova test agent CA', 1));
      const key = await newPrivateKey();
      const pub = parseCsr(createCsr(key, host)).publicKeyPem;
      const cert = signLeaf(ca, pub, host, new Date(Date.now() + 86_400_000));
      return { key, cert: `${cert}${ca.certPem}`, ca: ca.certPem };
    })();
    testLeaves.set(host, leaf);
  }
  return leaf;
}

/** The transfer credential the operator would keep for `mig`, valid for `validMs` from `now`. */
export async function seedCredential(
  cluster: FakeCluster,
  mig: { namespace: string; name: string; uid: string },
  source: string,
  destination: string,
  token: string,
  expiresAt = new Date(Date.parse('2100-01-01T00:00:00Z')),
): Promise<void> {
  await cluster
    .client()
    .secrets.create(credentialSecret(RELEASE_NAMESPACE, { migration: mig, source, destination, expiresAt, token }));
}

/** A clock tests move by hand. */
export class Clock {
  constructor(private t = Date.parse('2030-01-01T00:00:00Z')) {}
  readonly now = (): Date => new Date(this.t);
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface HostOptions {
  capacity?: ResourceAmounts;
  driver?: FakeDriverOptions;
  /** Published as the ComputeNode's migrationEndpoint; none by default. */
  migrationEndpoint?: string;
  clock?: Clock;
  auditGraceMs?: number;
  /** Failures of one migration step before it gives up (3 here, so tests stay short). */
  stepRetries?: number;
  /** The Instance cache the worker reads (a stale view in a test); the cluster's own by default. */
  instanceCache?: ObjectCache<'Instance'>;
}

/** The host's data plane as the fake driver's agents have it: plugs recorded, nothing touched. */
export type TestNetwork = SimulatedNetwork;

/** One host's node agent pieces, built the way host-agent.ts builds them. */
export interface TestHost {
  name: string;
  kube: KubeClient;
  driver: FakeDriver;
  /** The plugs the worker and migration sides made before starting guests here. */
  network: TestNetwork;
  tracker: ResourceTracker;
  claims: PlacementClaims;
  events: EventRecorder;
  faults: FaultRecorder;
  transfers: TransferServer;
  stagingDir: string;
  worker: InstanceWorker;
  source: MigrationSource;
  destination: MigrationDestination;
  auditor: Auditor;
  clock: Clock;
}

/**
 * Hosts on one FakeCluster, each with its own directory under one temporary root; call
 * `cleanup()` after each test.
 */
export class TestHosts {
  private root?: string;

  constructor(readonly cluster: FakeCluster) {}

  async add(name: string, opts: HostOptions = {}): Promise<TestHost> {
    this.root ??= await mkdtemp(join(tmpdir(), 'kubenova-agent-test-'));
    const { cluster } = this;
    const kube = cluster.client();
    const clock = opts.clock ?? new Clock();
    const log = silentLog.child({ node: name });
    const events = cluster.recorder(log, 'kubenova-node-agent');
    const faults = new FaultRecorder(events, clock.now);
    const driver = new FakeDriver(join(this.root, name), opts.capacity ?? CAPACITY, opts.driver);
    const stagingDir = join(this.root, name, 'incoming');
    const migrationCache = cluster.cache('Migration');
    const credentials = new CredentialCache(kube.secrets, RELEASE_NAMESPACE, {}, () => clock.now().getTime());
    const gate = new TransferGate(name, migrationCache, credentials, driver, clock.now);
    const transfers = new TransferServer({
      stagingRoot: stagingDir,
      address: '127.0.0.1',
      port: 0,
      admit: (request) => gate.admit(request),
      log,
    });
    const tls = await testTls(name);
    const tracker = new ResourceTracker(kube, { host: name, driverKind: driver.kind, labels: {}, now: clock.now }, log);
    if (opts.migrationEndpoint) tracker.setMigrationEndpoint(opts.migrationEndpoint);
    await tracker.register(await driver.capacity());
    const claims = new PlacementClaims(tracker, faults);
    const discard = (uid: string) => transfers.discard(uid);
    const instances = opts.instanceCache ?? cluster.cache('Instance');
    const migrations = cluster.cache('Migration');
    const network = new SimulatedNetwork();
    // As host-agent.ts: the reconcilers drive the plugging driver, with the instance's NICs.
    const networking = new AgentNetworking({ driver, log, network, networks: cluster.cache('Network') });
    const worker = new InstanceWorker(
      name,
      kube,
      instances,
      tracker,
      claims,
      networking.driver,
      events,
      faults,
      log,
      clock.now,
      discard,
      opts.stepRetries ?? 3,
      undefined,
      networking.nicsOf,
    );
    const side: MigrationSide = {
      host: name,
      kube,
      migrations,
      instances: cluster.cache('Instance'),
      tracker,
      driver: networking.driver,
      transfers,
      credentials,
      identity: { current: () => tls },
      events,
      faults,
      log,
      now: clock.now,
      stepTimeoutMs: STEP_TIMEOUT_MS,
      nics: networking.nicsOf,
    };
    const source = new MigrationSource(side, { transferRetries: 1, stepRetries: opts.stepRetries ?? 3 });
    const destination = new MigrationDestination(side, claims, opts.stepRetries ?? 3);
    const staged = () => readdir(stagingDir).catch(() => []);
    const grace = opts.auditGraceMs ?? 60_000;
    const auditor = new Auditor(
      name,
      kube,
      tracker,
      driver,
      cluster.cache('Instance'),
      migrations,
      events,
      grace,
      log,
      staged,
      discard,
      clock.now,
    );
    return {
      name,
      kube,
      driver,
      network,
      tracker,
      claims,
      events,
      faults,
      transfers,
      stagingDir,
      worker,
      source,
      destination,
      auditor,
      clock,
    };
  }

  async cleanup(): Promise<void> {
    if (this.root) await rm(this.root, { recursive: true, force: true });
    this.root = undefined;
  }
}

/** An Instance in namespace default, seeded with the given status. */
/** A fresh in-memory cluster with one registered host, as each test starts from. */
export async function oneHost(name = 'host-a', opts: HostOptions = {}) {
  const cluster = new FakeCluster();
  const hosts = new TestHosts(cluster);
  return { cluster, hosts, host: await hosts.add(name, opts) };
}

export function seedInstance(
  cluster: FakeCluster,
  name: string,
  status: InstanceStatus,
  spec: Partial<InstanceSpec> = {},
  finalizers?: string[],
): Instance {
  return cluster.seed<'Instance'>({
    apiVersion: API_VERSION,
    kind: 'Instance',
    metadata: { name, namespace: 'default', ...(finalizers ? { finalizers } : {}) },
    spec: { flavor: status.flavor?.name ?? SMALL.name, image: 'cirros', ...spec },
    status,
  });
}

/** What the operator writes once the scheduler has chosen `host` for attempt `attempt`. */
export function scheduledTo(host: string, flavor: FlavorSnapshot = SMALL, attempt = 1): InstanceStatus {
  return {
    vmState: 'building',
    taskState: 'scheduling',
    powerState: 'nostate',
    flavor,
    scheduling: { attempts: attempt, triedHosts: [host], selectedHost: host },
  };
}

/** Boots an instance on `host` through its worker (claim, spawn): active, claimed, with a running domain. */
export async function bootOn(
  host: TestHost,
  cluster: FakeCluster,
  name: string,
  flavor: FlavorSnapshot = SMALL,
  spec: Partial<InstanceSpec> = {},
): Promise<Instance> {
  const inst = seedInstance(cluster, name, scheduledTo(host.name, flavor), spec);
  await host.worker.reconcile(objectKey(inst));
  const active = cluster.get('Instance', name)!;
  if (active.status?.vmState !== 'active') throw new Error(`boot of ${name} on ${host.name} did not finish`);
  return active;
}

/**
 * What the operator writes when a resize or migration starts and its destination is chosen:
 * the instance shows resize_prep and the Migration, the Migration is pre-migrating with
 * `dest` selected for attempt 1.
 */
export async function startResize(
  cluster: FakeCluster,
  inst: Instance,
  name: string,
  dest: string,
  newFlavor: FlavorSnapshot,
  status: MigrationStatus = {},
): Promise<Migration> {
  const kube = cluster.client();
  await kube.instances.patchStatus(inst, { taskState: 'resize_prep', migration: name });
  return cluster.seed<'Migration'>({
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name, namespace: 'default' },
    spec: { instance: inst.metadata.name, flavor: newFlavor.name },
    status: {
      type: newFlavor.name === inst.status?.flavor?.name ? 'migration' : 'resize',
      status: 'pre-migrating',
      sourceHost: inst.status?.host,
      oldFlavor: inst.status?.flavor,
      newFlavor,
      oldVmState: inst.status?.vmState === 'stopped' ? 'stopped' : 'active',
      startedAt: new Date().toISOString(),
      scheduling: { attempts: 1, triedHosts: [dest], selectedHost: dest },
      ...status,
    },
  });
}

/** The operator's answer to spec.decision on a finished Migration (operator/migration/decision.ts). */
export async function decide(cluster: FakeCluster, migration: string, decision: 'Confirm' | 'Revert'): Promise<void> {
  const kube = cluster.client();
  const mig = cluster.get('Migration', migration)!;
  const inst = cluster.get('Instance', mig.spec.instance)!;
  const confirming = decision === 'Confirm';
  await kube.instances.patchStatus(inst, { taskState: confirming ? 'resize_confirming' : 'resize_reverting' });
  await kube.migrations.patchStatus(mig, { status: confirming ? 'confirming' : 'reverting' });
}

/** The claims the ComputeNode of `host` records in the API, as `kind/consumer`. */
export function claimsOn(cluster: FakeCluster, host: string): string[] {
  return (cluster.get('ComputeNode', host)?.status?.claims ?? []).map((c) => `${c.kind}/${c.consumer}`);
}

/**
 * An Instance cache that can be frozen: while frozen it answers from the snapshot taken at
 * `freeze()`, as a watch-fed cache that has not seen the latest writes yet; `thaw()` catches up.
 */
export class StaleView implements ObjectCache<'Instance'> {
  private snapshot?: Map<string, Instance>;

  constructor(private readonly live: ObjectCache<'Instance'>) {}

  freeze(): void {
    this.snapshot = new Map(this.live.list().map((i) => [objectKey(i), structuredClone(i)]));
  }

  /** The cache catches up: answers from the live cache again. */
  thaw(): void {
    this.snapshot = undefined;
  }

  get(name: string, namespace = 'default'): Instance | undefined {
    if (!this.snapshot) return this.live.get(name, namespace);
    const found = this.snapshot.get(`${namespace}/${name}`);
    return found && structuredClone(found);
  }

  list(namespace?: string): readonly Instance[] {
    if (!this.snapshot) return this.live.list(namespace);
    return [...this.snapshot.values()].filter((i) => !namespace || i.metadata.namespace === namespace);
  }
}
