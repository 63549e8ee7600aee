// How the benchmark offers work: one create-and-wait (a boot, or a pod), driven by a closed loop
// (a fixed number of clients, each sending the next create when its last one ended) or an open
// loop (creates at fixed times, whatever the answers). Boots and pods share both, so kubenova
// and the pods referee are offered the same load by the same client.
import { performance } from 'node:perf_hooks';
import type { HttpClient } from './http.js';
import { TimeoutError, type CollectionWatch } from './watch.js';

interface Named {
  metadata: { name: string; resourceVersion?: string };
}

export type Outcome<T> =
  /** `ok` held when it ended: timed from the create sent (start) to the event's arrival (at). */
  | { kind: 'ok'; name: string; obj: T; start: number; at: number }
  /** Ended, but not as wanted (an instance in error). */
  | { kind: 'failed'; name: string; obj: T | undefined; start: number }
  /** Not ended in time, or the create failed. */
  | { kind: 'stuck'; name: string; error: string; start: number };

export interface CreateAndWait<T> {
  client: HttpClient;
  watch: CollectionWatch<T & Named>;
  /** The collection to POST to. */
  path: string;
  body: (name: string) => unknown;
  /** True once the object has reached an end (good or bad). */
  ended: (obj: T | undefined) => boolean;
  /** True when that end is the one wanted. */
  ok: (obj: T | undefined) => boolean;
  timeoutMs: number;
}

/** Creates `name` and waits (on the watch) until it has ended. */
export async function createAndWait<T>(spec: CreateAndWait<T>, name: string): Promise<Outcome<T>> {
  const done = spec.watch.waitFor(name, (o) => spec.ended(o), spec.timeoutMs);
  const start = performance.now();
  try {
    await spec.client.json('POST', spec.path, spec.body(name));
    const { obj, at } = await done;
    if (obj && spec.ok(obj)) return { kind: 'ok', name, obj, start, at };
    return { kind: 'failed', name, obj, start };
  } catch (err) {
    done.catch(() => undefined);
    return {
      kind: 'stuck',
      name,
      error: err instanceof TimeoutError ? 'stuck (not ended in time)' : (err as Error).message,
      start,
    };
  }
}

/** `concurrency` workers take the items in order, each awaiting `fn` before its next; `stop` ends them early. */
export async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !stop()) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** Closed loop: every name created and waited for, `concurrency` at a time. */
export async function closedLoop<T>(
  spec: CreateAndWait<T>,
  names: readonly string[],
  concurrency: number,
  stop: () => boolean,
): Promise<Outcome<T>[]> {
  const out: Outcome<T>[] = [];
  await forEachConcurrently(names, concurrency, async (name) => void out.push(await createAndWait(spec, name)), stop);
  return out;
}

/** Open loop: name i created at i / rate seconds from now, whether or not the earlier ones have ended. */
export async function openLoop<T>(
  spec: CreateAndWait<T>,
  names: readonly string[],
  rate: number,
): Promise<Outcome<T>[]> {
  const t0 = performance.now();
  return Promise.all(
    names.map(async (name, i) => {
      const due = t0 + (i * 1000) / rate;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
      return createAndWait(spec, name);
    }),
  );
}
