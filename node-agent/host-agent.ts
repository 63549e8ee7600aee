// Everything one host needs: its ComputeNode (tracker), its driver, its instance and
// migration work, its disk-transfer endpoint and its audit. A process runs one of these
// (node-agent/main.ts), fed by the watches of its own host (host-watches.ts, assemble.ts).
import { readdir } from 'node:fs/promises';
import { CustomObjectsApi } from '@kubernetes/client-node';
import type { Instance, Migration } from '../common/api/types.js';
import type { Kube } from '../common/kube/client.js';
import { EventRecorder } from '../common/kube/events.js';
import { FaultRecorder } from '../common/kube/fault-recorder.js';
import type { ObjectCache } from '../common/kube/api.js';
import type { Logger } from '../common/log.js';
import { Controller, objectKey, type Reconciler } from '../common/runtime/controller.js';
import type { Metrics } from '../common/runtime/metrics.js';
import { Auditor } from './audit/audit.js';
import type { VirtDriver } from './driver/driver.js';
import { InstanceWorker } from './instances/instance-worker.js';
import { SpawnDigest } from './instances/spawn-digest.js';
import { MigrationDestination } from './migration/destination.js';
import type { MigrationSide } from './migration/shared.js';
import { MigrationSource } from './migration/source.js';
import { AgentNetworking } from './network/agent-networking.js';
import { DepartedInstances } from './recovery/departed.js';
import { StaleCopies } from './recovery/stale-copies.js';
import { PlacementClaims } from './tracker/claim-or-report.js';
import { NodeLease } from './tracker/node-lease.js';
import { ResourceTracker, shortResources } from './tracker/resource-tracker.js';
import { CredentialCache } from './transfer/credentials.js';
import { TransferGate } from './transfer/gate.js';
import { AgentIdentity, type Identity } from './transfer/identity.js';
import { TransferServer } from './transfer/server.js';

/**
 * The happy path's digest Event comes at most once per this many heartbeats (a minute at the
 * default interval): one Event write per host and minute, however many boots it reports.
 */
const SPAWN_DIGEST_HEARTBEATS = 6;

/** A node Lease's spec.leaseDurationSeconds, in heartbeats: the kubelet's 40 s over 10 s renewals. */
const LEASE_DURATION_HEARTBEATS = 4;

export interface HostAgentOptions {
  host: string;
  labels: Record<string, string>;
  heartbeatIntervalMs: number;
  /** The longest the ComputeNode status goes unwritten while the node Lease carries the heartbeats; 0: no Lease. */
  statusReportIntervalMs: number;
  auditIntervalMs: number;
  auditGraceMs: number;
  workers: number;
  /** Where received disks are staged before finish_resize. */
  stagingDir: string;
  migrationAddress: string;
  migrationPort: number;
  /** host:port other agents use to reach this one; defaults to migrationAddress and the bound port. */
  advertiseAddress?: string;
  transferRetries: number;
  breakTransfers?: number;
  /** Failures of one migration step before it rolls back. */
  stepRetries: number;
  /** How long a migration phase this host starts may take. */
  stepTimeoutMs: number;
  /** The release namespace: transfer credentials are read there and nowhere else. */
  releaseNamespace: string;
  /** Where this host's transfer key and certificate are kept. */
  certDir: string;
  /** Free bytes the staging filesystem keeps; a transfer that would leave less is refused. */
  transferHeadroomBytes: number;
  /** How long a first start waits for its transfer certificate before it registers without one. */
  transferCertificateWaitMs?: number;
  /** Each network's uplink on this host, NETWORK=INTERFACE,... (node-agent/network/uplinks.ts). */
  networkUplinks?: string;
}

export class HostAgent {
  readonly tracker: ResourceTracker;
  readonly worker: InstanceWorker;
  readonly source: MigrationSource;
  readonly destination: MigrationDestination;
  readonly auditor: Auditor;
  private readonly digest: SpawnDigest;
  readonly staleCopies: StaleCopies;
  readonly transfers: TransferServer;
  readonly identity: AgentIdentity;
  /** The Networks read, this host's bridges, and the driver that plugs before every start. */
  readonly networking: AgentNetworking;
  private transfersStarted?: Promise<void>;
  private readonly instanceController: Controller;
  private readonly sourceController: Controller;
  private readonly destinationController: Controller;
  private readonly departed: DepartedInstances;
  private readonly departedController: Controller;
  private heartbeatTimer?: NodeJS.Timeout;
  private auditTimer?: NodeJS.Timeout;
  private stopped = false;
  private registered = false;

  constructor(
    readonly kube: Kube,
    readonly driver: VirtDriver,
    /** The Instances that involve this host (its own watches, host-watches.ts), not the cluster's. */
    readonly instances: ObjectCache<'Instance'>,
    /** The Migrations that involve this host. */
    readonly migrations: ObjectCache<'Migration'>,
    readonly opts: HostAgentOptions,
    metrics: Metrics,
    readonly log: Logger,
  ) {
    const events = new EventRecorder(kube.events, 'kubenova-node-agent', opts.host, log);
    const faults = new FaultRecorder(events);
    const credentials = new CredentialCache(kube.secrets, opts.releaseNamespace);
    const gate = new TransferGate(opts.host, migrations, credentials, driver);
    this.transfers = new TransferServer({
      stagingRoot: opts.stagingDir,
      address: opts.migrationAddress,
      port: opts.migrationPort,
      admit: (request) => gate.admit(request),
      headroomBytes: opts.transferHeadroomBytes,
      log,
    });
    this.identity = new AgentIdentity({ host: opts.host, dir: opts.certDir, csrs: kube.csrs, log });
    const domain = metrics.agent;
    const nodes = metrics.nodes;
    this.tracker = new ResourceTracker(
      kube,
      {
        host: opts.host,
        driverKind: driver.kind,
        labels: opts.labels,
        heartbeatIntervalMs: opts.heartbeatIntervalMs,
        statusReportIntervalMs: opts.statusReportIntervalMs,
        lease:
          opts.statusReportIntervalMs > 0
            ? new NodeLease(kube.config.makeApiClient(CustomObjectsApi), {
                namespace: opts.releaseNamespace,
                host: opts.host,
                durationSeconds: Math.ceil((LEASE_DURATION_HEARTBEATS * opts.heartbeatIntervalMs) / 1000),
              })
            : undefined,
        onClaim: (kind, failure) =>
          failure ? domain.claimFailed(kind, shortResources(failure)) : domain.claimed(kind),
        onStatus: (status) => nodes.set(opts.host, status),
      },
      log,
    );
    const claims = new PlacementClaims(this.tracker, faults);
    this.digest = new SpawnDigest(events, opts.host, SPAWN_DIGEST_HEARTBEATS * opts.heartbeatIntervalMs);
    const discard = (uid: string) => this.transfers.discard(uid);
    this.networking = new AgentNetworking({ kube, driver, log, uplinks: opts.networkUplinks });
    this.worker = new InstanceWorker(
      opts.host,
      kube,
      instances,
      this.tracker,
      claims,
      this.networking.driver,
      events,
      faults,
      log,
      undefined,
      discard,
      opts.stepRetries,
      this.digest,
      this.networking.nicsOf,
    );
    const side: MigrationSide = {
      host: opts.host,
      kube,
      migrations,
      instances,
      tracker: this.tracker,
      driver: this.networking.driver,
      transfers: this.transfers,
      credentials,
      identity: this.identity,
      events,
      faults,
      log,
      now: () => new Date(),
      stepTimeoutMs: opts.stepTimeoutMs,
      nics: this.networking.nicsOf,
    };
    this.source = new MigrationSource(side, {
      transferRetries: opts.transferRetries,
      stepRetries: opts.stepRetries,
      breakTransfers: opts.breakTransfers,
      onTransfer: (bytes, seconds) => domain.transferred(bytes, seconds),
    });
    this.destination = new MigrationDestination(side, claims, opts.stepRetries);
    const staged = () => readdir(opts.stagingDir).catch(() => []);
    this.auditor = new Auditor(
      opts.host,
      kube,
      this.tracker,
      driver,
      instances,
      migrations,
      events,
      opts.auditGraceMs,
      log,
      staged,
      discard,
    );
    this.staleCopies = new StaleCopies(opts.host, kube, this.tracker, driver, instances, migrations, events, log);
    const controller = (name: string, reconciler: Reconciler) =>
      new Controller({ name, workers: opts.workers, reconcile: (key) => reconciler.reconcile(key), metrics, log });
    this.instanceController = controller('agent-instance', this.worker);
    this.sourceController = controller('agent-migration-source', this.source);
    this.destinationController = controller('agent-migration-destination', this.destination);
    this.departed = new DepartedInstances(opts.host, kube, instances, migrations, this.tracker, driver, log);
    this.departedController = controller('agent-departed', this.departed);
  }

  get host(): string {
    return this.opts.host;
  }

  get ready(): boolean {
    return this.registered;
  }

  /** Called by this host's Instance watches for every change. */
  onInstance(inst: Instance): void {
    if (!this.registered) return;
    if (this.worker.concerns(inst)) this.instanceController.enqueue(objectKey(inst));
    // A migration step may be waiting for its instance to show the task it set, or (on a
    // destination) for the instance to come into this host's view at all.
    const namespace = inst.metadata.namespace;
    const name = inst.status?.migration;
    const mig = name ? this.migrations.get(name, namespace) : undefined;
    if (mig) this.onMigration(mig);
    for (const m of this.migrations.list(namespace)) {
      if (m !== mig && m.spec.instance === inst.metadata.name) this.onMigration(m);
    }
  }

  /**
   * Called when an instance left every one of this host's watches: not a delete, but if this
   * host still holds its claim, whether it still counts on this host is read from the API server.
   */
  onInstanceLeft(inst: Instance): void {
    if (!this.registered) return;
    const key = this.departed.left(inst);
    if (key) this.departedController.enqueue(key);
  }

  /** Called by this host's Migration watches for every change. */
  onMigration(mig: Migration): void {
    if (!this.registered) return;
    if (this.source.concerns(mig)) this.sourceController.enqueue(objectKey(mig));
    if (this.destination.concerns(mig)) this.destinationController.enqueue(objectKey(mig));
  }

  async start(): Promise<void> {
    // With a certificate kept from an earlier run the transfer server serves before the host
    // registers; a first start asks for one and publishes the endpoint once it is issued.
    // A host is registered (and can be chosen as a destination) once it can receive disks,
    // unless no certificate comes within transferCertificateWaitMs (no operator yet): then it
    // registers without a transfer endpoint and publishes one when the certificate arrives.
    const kept = await this.identity.load();
    let issued: (identity: Identity) => void = () => {};
    const first = new Promise<Identity>((resolve) => (issued = resolve));
    this.identity.start((identity) => {
      issued(identity);
      this.serveTransfers(identity).catch((err: unknown) =>
        this.log.error({ err: (err as Error).message }, 'cannot start the transfer server'),
      );
    });
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.opts.transferCertificateWaitMs ?? 0);
    });
    const identity = kept ?? (await Promise.race([first, waited]));
    clearTimeout(timer);
    if (identity) await this.serveTransfers(identity);
    else this.log.warn('registering without a transfer endpoint: no transfer certificate yet');
    // The Networks are listed before any instance is looked at, so a first boot finds its own.
    await this.networking.start();
    const node = await this.tracker.register(await this.driver.capacity());
    // Nova's init_host: what was deleted or evacuated while this host was down goes before any new work.
    await this.destroyStaleCopies();
    this.registered = true;
    const { capacity, allocatable, claims, migrationEndpoint } = node.status ?? {};
    this.log.info({ capacity, allocatable, claims: claims?.length ?? 0, migrationEndpoint }, 'registered ComputeNode');
    for (const inst of this.instances.list()) this.onInstance(inst);
    for (const mig of this.migrations.list()) this.onMigration(mig);
    this.heartbeatTimer = this.every(this.opts.heartbeatIntervalMs, () => this.tracker.heartbeat(), 'heartbeat');
    this.auditTimer = this.every(
      this.opts.auditIntervalMs,
      () =>
        this.destroyStaleCopies()
          .then(() => this.auditor.run())
          .then(() => this.pruneBridges()),
      'audit',
    );
  }

  /** Starts the transfer server with `identity` and publishes its endpoint, or hands it a renewed certificate. */
  private async serveTransfers(identity: Identity): Promise<void> {
    if (this.transfersStarted) {
      await this.transfersStarted;
      this.transfers.setTls(identity);
      return;
    }
    this.transfersStarted = (async () => {
      const port = await this.transfers.start(identity);
      this.tracker.setMigrationEndpoint(`${this.opts.advertiseAddress ?? this.opts.migrationAddress}:${port}`);
      // Published at once when registered already (else registration does).
      if (this.registered) await this.tracker.publish();
    })();
    await this.transfersStarted;
  }

  /** One stale-copies pass; a failure is logged and left for the next audit pass. */
  private async destroyStaleCopies(): Promise<void> {
    await this.staleCopies.run().catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message, step: 'stale-copies' }, 'stale copies pass failed');
    });
  }

  /** The data plane's audit: bridges no domain here uses go; a failure waits for the next pass. */
  private async pruneBridges(): Promise<void> {
    try {
      const removed = await this.networking.prune();
      if (removed.length > 0) this.log.info({ bridges: removed, step: 'audit' }, 'removed unused network bridges');
    } catch (err) {
      this.log.warn({ err: (err as Error).message, step: 'audit' }, 'bridge clean-up failed');
    }
  }

  private every(ms: number, fn: () => Promise<unknown>, what: string): NodeJS.Timeout {
    const tick = () => {
      fn()
        .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, `${what} failed`))
        .finally(() => {
          if (!this.stopped) timer.refresh();
        });
    };
    const timer = setTimeout(tick, ms);
    return timer;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.digest.flush();
    this.identity.stop();
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.auditTimer);
    await Promise.all([
      this.instanceController.stop(),
      this.sourceController.stop(),
      this.destinationController.stop(),
      this.departedController.stop(),
    ]);
    await this.transfers.stop();
    await this.networking.stop();
  }
}
