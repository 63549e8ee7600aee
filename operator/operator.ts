// Wires the operator's controllers to shared watch-fed caches.
import type { Kube } from '../common/kube/client.js';
import type { EventRecorder } from '../common/kube/events.js';
import { Informer } from '../common/kube/informer.js';
import type { Logger } from '../common/log.js';
import { Controller, objectKey } from '../common/runtime/controller.js';
import type { Metrics } from '../common/runtime/metrics.js';
import type { OperatorConfig } from './config.js';
import { BootConductor } from './conductor/boot.js';
import { DeletionConductor } from './conductor/deletion.js';
import { InstanceReconciler } from './conductor/instance-controller.js';
import { NodeMonitor } from './nodehealth/node-monitor.js';
import { Placement } from './scheduler/placement.js';
import { Scheduler } from './scheduler/scheduler.js';

export class Operator {
  readonly nodes: Informer<'ComputeNode'>;
  readonly flavors: Informer<'Flavor'>;
  readonly instances: Informer<'Instance'>;
  readonly placement: Placement;
  private readonly nodeMonitor: NodeMonitor;
  private readonly instanceController: Controller;
  private started = false;

  constructor(
    readonly kube: Kube,
    readonly config: OperatorConfig,
    readonly metrics: Metrics,
    readonly events: EventRecorder,
    readonly log: Logger,
  ) {
    const heartbeatTimeoutMs = config['node-heartbeat-timeout'] * 1000;
    this.nodes = new Informer(kube, 'ComputeNode', log);
    this.flavors = new Informer(kube, 'Flavor', log);
    this.instances = new Informer(kube, 'Instance', log, { labelSelector: config['instance-selector'] });
    this.nodeMonitor = new NodeMonitor(kube, this.nodes, events, { timeoutMs: heartbeatTimeoutMs, periodMs: config['node-monitor-period'] * 1000 }, log.child({ controller: 'node-monitor' }));
    const scheduler = new Scheduler({
      ramWeightMultiplier: config['ram-weight-multiplier'],
      cpuWeightMultiplier: config['cpu-weight-multiplier'],
      diskWeightMultiplier: config['disk-weight-multiplier'],
      hostSubsetSize: config['host-subset-size'],
    });
    this.placement = new Placement(scheduler, this.nodes, heartbeatTimeoutMs);
    const instanceLog = log.child({ controller: 'instance' });
    const boot = new BootConductor(kube, this.flavors, this.placement, events, { maxAttempts: config['max-attempts'], claimTimeoutMs: Math.max(2_000, heartbeatTimeoutMs / 2) }, instanceLog);
    const deletion = new DeletionConductor(kube, this.placement, instanceLog);
    const reconciler = new InstanceReconciler(this.instances, boot, deletion);
    this.instanceController = new Controller({ name: 'instance', workers: config.workers, reconcile: (key) => reconciler.reconcile(key), metrics, log: instanceLog });
    const enqueue = (obj: { metadata: { name: string; namespace?: string } }) => this.instanceController.enqueue(objectKey(obj));
    this.instances.on('add', enqueue);
    this.instances.on('update', enqueue);
  }

  get ready(): boolean {
    return this.started;
  }

  async start(): Promise<void> {
    await Promise.all([this.nodes.start(), this.flavors.start()]);
    await this.instances.start();
    this.nodeMonitor.start();
    this.started = true;
  }

  async stop(): Promise<void> {
    this.nodeMonitor.stop();
    await this.instanceController.stop();
    await Promise.all([this.nodes.stop(), this.flavors.stop(), this.instances.stop()]);
  }
}
