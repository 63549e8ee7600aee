// Prometheus metrics under the names controller-runtime uses, so the dashboards and
// alerts people already have for Go operators work for kubenova unchanged.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { AgentMetrics, NodeResourceMetrics, OperatorMetrics } from './domain-metrics.js';
import type { ApiRequest } from '../kube/request-metrics.js';
import type { InFlight, WorkQueueHooks } from './workqueue.js';

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
  readonly workqueueUnfinishedWork: Gauge<'name'>;
  readonly workqueueLongestRunning: Gauge<'name'>;
  readonly leaderStatus: Gauge<'name'>;
  readonly restClientRequests: Counter<'code' | 'method' | 'host'>;
  /** The queues of each controller name (several HostAgents in one process share names). */
  readonly #queues = new Map<string, Set<{ inFlight(): InFlight }>>();
  readonly #leases = new Map<string, () => boolean>();
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
    // Work in progress, asked of the queues at scrape time: a reconcile that never returns
    // shows here long before its work_duration is ever observed.
    this.workqueueUnfinishedWork = new Gauge({
      name: 'workqueue_unfinished_work_seconds',
      help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
      labelNames: ['name'],
      registers,
      collect: () => this.#collectInFlight(),
    });
    this.workqueueLongestRunning = new Gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for workqueue been running.',
      labelNames: ['name'],
      registers,
      collect: () => this.#collectInFlight(),
    });
    this.leaderStatus = new Gauge({
      name: 'leader_election_master_status',
      help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
      labelNames: ['name'],
      registers,
      collect: () => {
        for (const [name, leading] of this.#leases) this.leaderStatus.set({ name }, leading() ? 1 : 0);
      },
    });
    this.restClientRequests = new Counter({
      name: 'rest_client_requests_total',
      help: 'Number of HTTP requests, partitioned by status code, method, and host.',
      labelNames: ['code', 'method', 'host'],
      registers,
    });
  }

  /** Counts one API request: the observer to give countRequests (common/kube/request-metrics.ts). */
  readonly apiRequest = (request: ApiRequest): void => {
    this.restClientRequests.inc({ code: request.code, method: request.method, host: request.host });
  };

  /** Reports `leading()` as leader_election_master_status{name} at every scrape. */
  leaderElection(name: string, leading: () => boolean): void {
    this.#leases.set(name, leading);
  }

  /** Exports the work a controller's queue has in progress (see queueHooks). */
  trackQueue(name: string, queue: { inFlight(): InFlight }): void {
    let queues = this.#queues.get(name);
    if (!queues) this.#queues.set(name, (queues = new Set()));
    queues.add(queue);
  }

  #collectInFlight(): void {
    for (const [name, queues] of this.#queues) {
      let unfinished = 0;
      let longest = 0;
      for (const queue of queues) {
        const now = queue.inFlight();
        unfinished += now.unfinishedSeconds;
        longest = Math.max(longest, now.longestSeconds);
      }
      this.workqueueUnfinishedWork.set({ name }, unfinished);
      this.workqueueLongestRunning.set({ name }, longest);
    }
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
