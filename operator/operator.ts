// Wires the operator's controllers to shared watch-fed caches.
import type { Kube } from '../common/kube/client.js';
import type { EventRecorder } from '../common/kube/events.js';
import { Informer } from '../common/kube/informer.js';
import type { Logger } from '../common/log.js';
import type { Instance, Migration } from '../common/api/types.js';
import { Controller, objectKey, splitKey } from '../common/runtime/controller.js';
import type { Metrics } from '../common/runtime/metrics.js';
import type { OperatorConfig } from './config.js';
import { BootConductor } from './conductor/boot.js';
import { DeletionConductor } from './conductor/deletion.js';
import { InstanceReconciler } from './conductor/instance-controller.js';
import { MigrationConductor } from './conductor/migration.js';
import { ResizeRequests } from './conductor/resize-request.js';
import { NodeMonitor } from './nodehealth/node-monitor.js';
import { QuotaService } from './quota/quota-service.js';
import { ServerGroups } from './servergroups/membership.js';
import { ServerGroupStatus } from './servergroups/status-controller.js';
import { Placement } from './scheduler/placement.js';
import { Scheduler } from './scheduler/scheduler.js';

export class Operator {
  readonly nodes: Informer<'ComputeNode'>;
  readonly flavors: Informer<'Flavor'>;
  readonly instances: Informer<'Instance'>;
  readonly migrations: Informer<'Migration'>;
  readonly quotas: Informer<'ComputeQuota'>;
  readonly serverGroups: Informer<'ServerGroup'>;
  readonly placement: Placement;
  private readonly nodeMonitor: NodeMonitor;
  private readonly instanceController: Controller;
  private readonly migrationController: Controller;
  private readonly serverGroupController: Controller;
  private started = false;

  constructor(
    readonly kube: Kube,
    readonly config: OperatorConfig,
    readonly metrics: Metrics,
    readonly events: EventRecorder,
    readonly log: Logger,
    /** Whether this replica may act now (leader election); always yes without it. */
    leaderGate: () => boolean = () => true,
  ) {
    // Nothing acts before every cache has synced: a Migration judged before the Instance
    // cache is filled would be refused for an instance that exists.
    const canAct = () => this.started && leaderGate();
    const heartbeatTimeoutMs = config['node-heartbeat-timeout'] * 1000;
    this.nodes = new Informer(kube, 'ComputeNode', log);
    this.flavors = new Informer(kube, 'Flavor', log);
    this.instances = new Informer(kube, 'Instance', log, { labelSelector: config['instance-selector'] });
    this.migrations = new Informer(kube, 'Migration', log);
    this.quotas = new Informer(kube, 'ComputeQuota', log);
    this.serverGroups = new Informer(kube, 'ServerGroup', log);
    const quota = new QuotaService(kube, this.quotas, log.child({ controller: 'quota' }));
    this.nodeMonitor = new NodeMonitor(kube, this.nodes, events, { timeoutMs: heartbeatTimeoutMs, periodMs: config['node-monitor-period'] * 1000 }, log.child({ controller: 'node-monitor' }), undefined, canAct);
    const scheduler = new Scheduler({
      ramWeightMultiplier: config['ram-weight-multiplier'],
      cpuWeightMultiplier: config['cpu-weight-multiplier'],
      diskWeightMultiplier: config['disk-weight-multiplier'],
      softAffinityWeightMultiplier: config['soft-affinity-weight-multiplier'],
      hostSubsetSize: config['host-subset-size'],
    });
    const domain = metrics.operator;
    this.placement = new Placement(scheduler, this.nodes, heartbeatTimeoutMs, undefined, (result, seconds) => domain.scheduled(result, seconds));
    const groups = new ServerGroups(this.serverGroups, this.instances, (uid) => this.placement.inFlight.hostOf(uid));
    const instanceLog = log.child({ controller: 'instance' });
    const boot = new BootConductor(kube, this.flavors, this.placement, quota, groups, events, { maxAttempts: config['max-attempts'], claimTimeoutMs: Math.max(2_000, heartbeatTimeoutMs / 2), onReschedule: () => domain.rescheduled('instance') }, instanceLog);
    const deletion = new DeletionConductor(kube, this.placement, quota, instanceLog);
    const resize = new ResizeRequests(kube, this.flavors, quota, events, instanceLog);
    const reconciler = new InstanceReconciler(this.instances, this.migrations, boot, resize, deletion, quota);
    this.instanceController = new Controller({ name: 'instance', workers: config.workers, reconcile: (key) => reconciler.reconcile(key), metrics, log: instanceLog, canAct });
    const migrationLog = log.child({ controller: 'migration' });
    const migration = new MigrationConductor(
      kube,
      this.instances,
      this.flavors,
      this.placement,
      quota,
      groups,
      events,
      {
        maxAttempts: config['max-attempts'],
        claimTimeoutMs: Math.max(2_000, heartbeatTimeoutMs / 2),
        allowResizeToSameHost: config['allow-resize-to-same-host'],
        resizeConfirmWindow: config['resize-confirm-window'],
        onReschedule: () => domain.rescheduled('migration'),
      },
      migrationLog,
    );
    this.migrationController = new Controller({
      name: 'migration',
      workers: config.workers,
      reconcile: async (key) => {
        const { namespace, name } = splitKey(key);
        const mig = this.migrations.get(name, namespace);
        return mig ? migration.reconcile(mig) : {};
      },
      metrics,
      log: migrationLog,
      canAct,
    });
    const groupStatus = new ServerGroupStatus(kube, this.serverGroups, this.instances);
    this.serverGroupController = new Controller({ name: 'servergroup', workers: 2, reconcile: (key) => groupStatus.reconcile(key), metrics, log, canAct });
    const enqueueGroupOf = (inst: Instance) => {
      if (inst.spec.serverGroup) this.serverGroupController.enqueue(`${inst.metadata.namespace}/${inst.spec.serverGroup}`);
    };
    this.instances.on('add', enqueueGroupOf);
    this.instances.on('update', enqueueGroupOf);
    this.instances.on('delete', enqueueGroupOf);
    this.serverGroups.on('add', (g) => this.serverGroupController.enqueue(objectKey(g)));
    const enqueueInstance = (obj: { metadata: { name: string; namespace?: string } }) => this.instanceController.enqueue(objectKey(obj));
    this.instances.on('add', enqueueInstance);
    this.instances.on('update', enqueueInstance);
    const enqueueMigration = (mig: Migration) => {
      this.migrationController.enqueue(objectKey(mig));
      // An instance being deleted waits for its migrations' claims too.
      const inst = this.instances.get(mig.spec.instance, mig.metadata.namespace);
      if (inst?.metadata.deletionTimestamp) enqueueInstance(inst);
    };
    this.migrations.on('add', enqueueMigration);
    this.migrations.on('update', enqueueMigration);
    this.migrations.on('delete', enqueueMigration);
    // Domain metrics from what the caches show: boot time, migration phases, host usage.
    this.instances.on('add', (inst) => domain.observeInstance(inst));
    this.instances.on('update', (inst) => domain.observeInstance(inst));
    this.instances.on('delete', (inst) => domain.forgetInstance(inst));
    this.migrations.on('add', (mig) => domain.observeMigration(mig));
    this.migrations.on('update', (mig) => domain.observeMigration(mig));
    this.migrations.on('delete', (mig) => domain.forgetMigration(mig));
    const nodeMetrics = metrics.nodes;
    this.nodes.on('add', (node) => nodeMetrics.set(node.metadata.name, node.status));
    this.nodes.on('update', (node) => nodeMetrics.set(node.metadata.name, node.status));
    this.nodes.on('delete', (node) => nodeMetrics.delete(node.metadata.name));
    // A finished migration may be waiting for its instance to settle, and a new one for it to be idle.
    this.instances.on('update', (inst) => {
      const name = inst.status?.migration;
      if (name) this.migrationController.enqueue(`${inst.metadata.namespace}/${name}`);
    });
  }

  get ready(): boolean {
    return this.started;
  }

  async start(): Promise<void> {
    await Promise.all([this.nodes.start(), this.flavors.start()]);
    await Promise.all([this.instances.start(), this.migrations.start(), this.quotas.start(), this.serverGroups.start()]);
    this.nodeMonitor.start();
    this.started = true;
  }

  async stop(): Promise<void> {
    this.nodeMonitor.stop();
    await Promise.all([this.instanceController.stop(), this.migrationController.stop(), this.serverGroupController.stop()]);
    await Promise.all([this.nodes.stop(), this.flavors.stop(), this.instances.stop(), this.migrations.stop(), this.quotas.stop(), this.serverGroups.stop()]);
  }
}
