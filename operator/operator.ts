// Wires the operator's controllers to shared watch-fed caches.
import type { Kube } from '../common/kube/client.js';
import type { EventRecorder } from '../common/kube/events.js';
import { Informer } from '../common/kube/informer.js';
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/runtime/metrics.js';
import type { OperatorConfig } from './config.js';
import { NodeMonitor } from './nodehealth/node-monitor.js';

export class Operator {
  readonly nodes: Informer<'ComputeNode'>;
  private readonly nodeMonitor: NodeMonitor;
  private started = false;

  constructor(
    readonly kube: Kube,
    readonly config: OperatorConfig,
    readonly metrics: Metrics,
    readonly events: EventRecorder,
    readonly log: Logger,
  ) {
    this.nodes = new Informer(kube, 'ComputeNode', log);
    this.nodeMonitor = new NodeMonitor(
      kube,
      this.nodes,
      events,
      { timeoutMs: config['node-heartbeat-timeout'] * 1000, periodMs: config['node-monitor-period'] * 1000 },
      log.child({ controller: 'node-monitor' }),
    );
  }

  get ready(): boolean {
    return this.started;
  }

  async start(): Promise<void> {
    await this.nodes.start();
    this.nodeMonitor.start();
    this.started = true;
  }

  async stop(): Promise<void> {
    this.nodeMonitor.stop();
    await this.nodes.stop();
  }
}
