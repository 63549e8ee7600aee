// A controller work queue with the guarantees of client-go's: a key waiting is queued
// once however often it is added, a key is never processed by two workers at once, and
// failures are retried with capped exponential backoff.
export interface WorkQueueHooks {
  onAdd?(): void;
  onDepth?(depth: number): void;
  onQueueLatency?(seconds: number): void;
  onWorkDuration?(seconds: number): void;
  onRetry?(): void;
}

export type Reconcile = (key: string) => Promise<ReconcileResult>;
export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface WorkQueueOptions {
  workers: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  hooks?: WorkQueueHooks;
  onError?(key: string, err: unknown): void;
  /** The clock that times work in progress (tests give a fake one). */
  now?: () => number;
}

/** The work being processed at one moment, as client-go's unfinished-work metrics see it. */
export interface InFlight {
  /** Keys being processed now. */
  count: number;
  /** Seconds spent so far on all of them together (workqueue_unfinished_work_seconds). */
  unfinishedSeconds: number;
  /** Seconds the longest-running of them has taken so far (workqueue_longest_running_processor_seconds). */
  longestSeconds: number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Map<string, number>();
  /** Keys being processed, with when their run started (on `now`). */
  private readonly processing = new Map<string, number>();
  /** Keys added while being processed: run again once the current run ends. */
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; due: number }>();
  private active = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  private readonly now: () => number;

  constructor(
    private readonly reconcile: Reconcile,
    private readonly opts: WorkQueueOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  add(key: string): void {
    if (this.stopped) return;
    this.opts.hooks?.onAdd?.();
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.set(key, Date.now());
    this.queue.push(key);
    this.opts.hooks?.onDepth?.(this.queue.length);
    this.pump();
  }

  /** Adds the key after a delay; an earlier pending delay for the key wins. */
  /** Adds the key after a delay; a key already waiting keeps the earlier of the two times (client-go's rule). */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) return this.add(key);
    const due = Date.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing) {
      if (existing.due <= due) return;
      clearTimeout(existing.timer);
    }
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref?.();
    this.timers.set(key, { timer, due });
  }

  get depth(): number {
    return this.queue.length;
  }

  /** What is being processed now and for how long: computed when asked (at scrape time). */
  inFlight(): InFlight {
    const now = this.now();
    let unfinished = 0;
    let longest = 0;
    for (const started of this.processing.values()) {
      const seconds = Math.max(0, (now - started) / 1000);
      unfinished += seconds;
      longest = Math.max(longest, seconds);
    }
    return { count: this.processing.size, unfinishedSeconds: unfinished, longestSeconds: longest };
  }

  private pump(): void {
    while (!this.stopped && this.active < this.opts.workers && this.queue.length > 0) {
      const key = this.queue.shift()!;
      const enqueuedAt = this.queued.get(key) ?? Date.now();
      this.queued.delete(key);
      this.opts.hooks?.onDepth?.(this.queue.length);
      this.opts.hooks?.onQueueLatency?.((Date.now() - enqueuedAt) / 1000);
      this.processing.set(key, this.now());
      this.active++;
      void this.run(key);
    }
    if (this.active === 0 && this.queue.length === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async run(key: string): Promise<void> {
    const started = Date.now();
    try {
      const result = await this.reconcile(key);
      this.failures.delete(key);
      if (result.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      this.opts.hooks?.onRetry?.();
      this.opts.onError?.(key, err);
      const base = this.opts.baseBackoffMs ?? 100;
      this.addAfter(key, Math.min(base * 2 ** (n - 1), this.opts.maxBackoffMs ?? 30_000));
    } finally {
      this.opts.hooks?.onWorkDuration?.((Date.now() - started) / 1000);
      this.processing.delete(key);
      this.active--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
    }
  }

  /** Resolves when nothing is queued or running (for tests and shutdown). */
  idle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    if (this.active > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
  }
}
