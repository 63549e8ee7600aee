// Everything one host needs: its ComputeNode (tracker), its driver, its instance work and
// its audit. A process runs one of these (a real agent) or many (simulated hosts); both
// run the same code.
import type { Instance } from '../common/api/types.js';
import type { Kube } from '../common/kube/client.js';
import { EventRecorder } from '../common/kube/events.js';
import type { Informer } from '../common/kube/informer.js';
import type { Logger } from '../common/log.js';
import { Controller, objectKey } from '../common/runtime/controller.js';
import type { Metrics } from '../common/runtime/metrics.js';
import { Auditor } from './audit/audit.js';
import type { VirtDriver } from './driver/driver.js';
import { InstanceWorker } from './instances/instance-worker.js';
import { ResourceTracker } from './tracker/resource-tracker.js';

export interface HostAgentOptions {
  host: string;
  labels: Record<string, string>;
  heartbeatIntervalMs: number;
  auditIntervalMs: number;
  auditGraceMs: number;
  workers: number;
}

export class HostAgent {
  readonly tracker: ResourceTracker;
  readonly worker: InstanceWorker;
  readonly auditor: Auditor;
  private readonly controller: Controller;
  private heartbeatTimer?: NodeJS.Timeout;
  private auditTimer?: NodeJS.Timeout;
  private stopped = false;
  private registered = false;

  constructor(
    readonly kube: Kube,
    readonly driver: VirtDriver,
    readonly instances: Informer<'Instance'>,
    readonly opts: HostAgentOptions,
    metrics: Metrics,
    readonly log: Logger,
  ) {
    const events = new EventRecorder(kube, 'kubenova-node-agent', opts.host, log);
    this.tracker = new ResourceTracker(kube, { host: opts.host, driverKind: driver.kind, labels: opts.labels }, log);
    this.worker = new InstanceWorker(opts.host, kube, instances, this.tracker, driver, events, log);
    this.auditor = new Auditor(opts.host, this.tracker, driver, instances, events, opts.auditGraceMs, log);
    this.controller = new Controller({ name: 'agent-instance', workers: opts.workers, reconcile: (key) => this.worker.reconcile(key), metrics, log });
  }

  get host(): string {
    return this.opts.host;
  }

  get ready(): boolean {
    return this.registered;
  }

  /** Called by the process's shared Instance informer for every change. */
  onInstance(inst: Instance): void {
    if (this.registered && this.worker.concerns(inst)) this.controller.enqueue(objectKey(inst));
  }

  async start(): Promise<void> {
    const node = await this.tracker.register(await this.driver.capacity());
    this.registered = true;
    this.log.info({ capacity: node.status?.capacity, allocatable: node.status?.allocatable, claims: node.status?.claims?.length ?? 0 }, 'registered ComputeNode');
    for (const inst of this.instances.list()) this.onInstance(inst);
    this.heartbeatTimer = this.every(this.opts.heartbeatIntervalMs, () => this.tracker.heartbeat(), 'heartbeat');
    this.auditTimer = this.every(this.opts.auditIntervalMs, () => this.auditor.run(), 'audit');
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
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.auditTimer);
    await this.controller.stop();
  }
}
