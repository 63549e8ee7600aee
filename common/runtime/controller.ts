// A level-triggered controller: keys in, one reconcile per key at a time, metrics under
// controller-runtime's names. Conflicts (someone wrote first) are retried quickly and
// quietly — they are the normal outcome of optimistic concurrency, not errors.
import type { Logger } from '../log.js';
import { apiMessage, isConflict } from '../kube/client.js';
import type { Metrics } from './metrics.js';
import { WorkQueue, type ReconcileResult } from './workqueue.js';

export type { ReconcileResult } from './workqueue.js';

/** What every controller implements: one step for one key, from the caches. */
export interface Reconciler {
  reconcile(key: string): Promise<ReconcileResult>;
}

export interface ControllerOptions {
  name: string;
  workers: number;
  reconcile: (key: string) => Promise<ReconcileResult>;
  metrics: Metrics;
  log: Logger;
  /** Leader election's gate: while it says no, keys wait instead of being acted on. */
  canAct?: () => boolean;
}

export class Controller {
  readonly queue: WorkQueue;

  constructor(private readonly opts: ControllerOptions) {
    const { name, metrics, log } = opts;
    this.queue = new WorkQueue(
      async (key) => {
        if (opts.canAct && !opts.canAct()) return { requeueAfterMs: 1_000 };
        const end = metrics.reconcileTime.startTimer({ controller: name });
        try {
          const result = await opts.reconcile(key);
          metrics.reconcileTotal.inc({
            controller: name,
            result: result.requeueAfterMs !== undefined ? 'requeue_after' : 'success',
          });
          return result;
        } catch (err) {
          if (isConflict(err)) {
            metrics.reconcileTotal.inc({ controller: name, result: 'requeue' });
            return { requeueAfterMs: 50 };
          }
          metrics.reconcileTotal.inc({ controller: name, result: 'error' });
          metrics.reconcileErrors.inc({ controller: name });
          throw err;
        } finally {
          end();
        }
      },
      {
        workers: opts.workers,
        hooks: metrics.queueHooks(name),
        onError: (key, err) =>
          log.warn({ controller: name, key, err: apiMessage(err) }, 'reconcile failed; retrying with backoff'),
      },
    );
    metrics.trackQueue(name, this.queue);
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  enqueueAfter(key: string, ms: number): void {
    this.queue.addAfter(key, ms);
  }

  async stop(): Promise<void> {
    await this.queue.shutdown();
  }
}

export function objectKey(obj: { metadata: { name: string; namespace?: string } }): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
