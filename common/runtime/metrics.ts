// Prometheus metrics under the names controller-runtime uses, so the dashboards and
// alerts people already have for Go operators work for kubenova unchanged.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { AgentMetrics, NodeResourceMetrics, OperatorMetrics } from './domain-metrics.js';
import type { WorkQueueHooks } from './workqueue.js';

export class Metrics {
  readonly registry = new Registry();
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly reconcileTime: Histogram<'controller'>;
  readonly workqueueDepth: Gauge<'name'>;
  readonly workqueueAdds: Counter<'name'>;
  readonly workqueueQueueDuration: Histogram<'name'>;
  readonly workqueueWorkDuration: Histogram<'name'>;
  readonly workqueueRetries: Counter<'name'>;
  #operator?: OperatorMetrics;
  #agent?: AgentMetrics;
  #nodes?: NodeResourceMetrics;

  constructor(component: string) {
    this.registry.setDefaultLabels({ component });
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.reconcileTotal = new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total reconciliations per controller',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.workqueueDepth = new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue',
      labelNames: ['name'],
      registers,
    });
    this.workqueueAdds = new Counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by workqueue',
      labelNames: ['name'],
      registers,
    });
    this.workqueueQueueDuration = new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested',
      labelNames: ['name'],
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60],
      registers,
    });
    this.workqueueWorkDuration = new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes',
      labelNames: ['name'],
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60],
      registers,
    });
    this.workqueueRetries = new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue',
      labelNames: ['name'],
      registers,
    });
  }

  // kubenova's own metrics (domain-metrics.ts), registered on first use: a process exports
  // those of the component it runs, and several HostAgents in one process share one set.
  get operator(): OperatorMetrics {
    return (this.#operator ??= new OperatorMetrics(this.registry));
  }

  get agent(): AgentMetrics {
    return (this.#agent ??= new AgentMetrics(this.registry));
  }

  get nodes(): NodeResourceMetrics {
    return (this.#nodes ??= new NodeResourceMetrics(this.registry));
  }

  queueHooks(name: string): WorkQueueHooks {
    // Every controller asks once, at construction: like controller-runtime, its series start
    // at zero then, so a scrape shows "no errors yet" rather than no series at all.
    this.reconcileErrors.inc({ controller: name }, 0);
    this.workqueueAdds.inc({ name }, 0);
    this.workqueueRetries.inc({ name }, 0);
    this.workqueueDepth.set({ name }, 0);
    return {
      onAdd: () => this.workqueueAdds.inc({ name }),
      onDepth: (d) => this.workqueueDepth.set({ name }, d),
      onQueueLatency: (s) => this.workqueueQueueDuration.observe({ name }, s),
      onWorkDuration: (s) => this.workqueueWorkDuration.observe({ name }, s),
      onRetry: () => this.workqueueRetries.inc({ name }),
    };
  }
}
