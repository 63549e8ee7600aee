// A watch-fed view of one collection for the benchmark: the latest object per name, and
// waiters that resolve at the moment an event makes their predicate true (timed with the
// monotonic clock when the event arrived, so latencies are what a user watching would see).
import { performance } from 'node:perf_hooks';
import { ApiError, type HttpClient, type WatchEvent, type WatchHandle } from './http.js';

interface Named {
  metadata: { name: string; resourceVersion?: string };
}

interface Waiter<T> {
  test: (obj: T | undefined) => boolean;
  resolve: (r: { obj: T | undefined; at: number }) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class TimeoutError extends Error {}

export class CollectionWatch<T extends Named> {
  readonly objects = new Map<string, T>();
  private readonly waiters = new Map<string, Waiter<T>[]>();
  private resourceVersion = '';
  private handle?: WatchHandle;
  private stopped = false;
  private loop?: Promise<void>;
  events = 0;

  constructor(
    private readonly client: HttpClient,
    private readonly path: string,
  ) {}

  async start(): Promise<void> {
    await this.relist();
    this.loop = this.run();
  }

  private async relist(): Promise<void> {
    const list = await this.client.json<{ metadata: { resourceVersion: string }; items: T[] }>('GET', this.path);
    this.objects.clear();
    for (const o of list.items) this.objects.set(o.metadata.name, o);
    this.resourceVersion = list.metadata.resourceVersion;
    for (const name of [...this.waiters.keys()]) this.check(name, performance.now());
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let gone = false;
      this.handle = this.client.watch<T>(this.path, this.resourceVersion, (e) => {
        if (e.type === 'ERROR') {
          gone = (e.object as unknown as { code?: number }).code === 410;
          return;
        }
        this.onEvent(e);
      });
      await this.handle.ended;
      if (this.stopped) return;
      if (gone) {
        await this.relist().catch((err: unknown) => {
          if (!(err instanceof ApiError)) throw err;
        });
      } else {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private onEvent(e: WatchEvent<T>): void {
    const at = performance.now();
    this.resourceVersion = e.object.metadata.resourceVersion ?? this.resourceVersion;
    if (e.type === 'BOOKMARK') return;
    this.events++;
    const name = e.object.metadata.name;
    if (e.type === 'DELETED') this.objects.delete(name);
    else this.objects.set(name, e.object);
    this.check(name, at);
  }

  private check(name: string, at: number): void {
    const list = this.waiters.get(name);
    if (!list) return;
    const obj = this.objects.get(name);
    const remaining = list.filter((w) => {
      if (!w.test(obj)) return true;
      clearTimeout(w.timer);
      w.resolve({ obj, at });
      return false;
    });
    if (remaining.length) this.waiters.set(name, remaining);
    else this.waiters.delete(name);
  }

  /**
   * Resolves with the object and the arrival time of the event that made `test` true
   * (register it before the request that starts the change). Rejects with TimeoutError.
   */
  waitFor(
    name: string,
    test: (obj: T | undefined) => boolean,
    timeoutMs: number,
  ): Promise<{ obj: T | undefined; at: number }> {
    const current = this.objects.get(name);
    if (test(current)) return Promise.resolve({ obj: current, at: performance.now() });
    return new Promise((resolve, reject) => {
      const waiter: Waiter<T> = {
        test,
        resolve,
        reject,
        timer: setTimeout(() => {
          const list = (this.waiters.get(name) ?? []).filter((w) => w !== waiter);
          if (list.length) this.waiters.set(name, list);
          else this.waiters.delete(name);
          reject(new TimeoutError(`${name}: timed out after ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.set(name, [...(this.waiters.get(name) ?? []), waiter]);
    });
  }

  /** Rejects every pending wait (a component the waits depend on has died). */
  failAll(err: Error): void {
    for (const list of this.waiters.values()) {
      for (const w of list) {
        clearTimeout(w.timer);
        w.reject(err);
      }
    }
    this.waiters.clear();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.handle?.stop();
    await this.loop;
  }
}
