// Read your own writes. A watch-fed cache shows a write of this process only once its watch
// event arrives, which is after the write's response. A reconcile that runs in between (the
// event of the write before it re-enqueued the key) would decide from the older object and
// write again from its resourceVersion: a 409 conflict and a wasted round trip, or a repeated
// step. So the cache also keeps the objects this process wrote, and reads return the newer of
// the two until the watch catches up (client-go's MutationCache does the same, comparing
// resourceVersions as the integers kube-apiserver makes them).
import type { KindMap, KindName } from './api.js';

type Obj<K extends KindName> = KindMap[K];

const keyOf = (name: string, namespace?: string) => `${namespace ?? ''}/${name}`;

/** The resourceVersion as an integer, or undefined when it is not one (then nothing is compared). */
function versionOf(obj: { metadata: { resourceVersion?: string } }): bigint | undefined {
  const rv = obj.metadata.resourceVersion;
  return rv !== undefined && /^\d+$/.test(rv) ? BigInt(rv) : undefined;
}

export class OwnWrites<K extends KindName> {
  private readonly written = new Map<string, Obj<K>>();

  /**
   * A write of this process answered with `obj`. Kept only when the cache already holds the same
   * object (`cached`, same uid): a cache that does not follow the object has nothing to catch up.
   */
  record(obj: Obj<K>, cached: Obj<K> | undefined): void {
    if (!cached || cached.metadata.uid !== obj.metadata.uid) return;
    const key = keyOf(obj.metadata.name, obj.metadata.namespace);
    const mine = versionOf(obj);
    const kept = this.written.get(key);
    const keptVersion = kept ? versionOf(kept) : undefined;
    if (mine === undefined || (keptVersion !== undefined && keptVersion >= mine)) return;
    this.written.set(key, obj);
  }

  /** The watch delivered `obj` (or its deletion): a written copy it has caught up with goes. */
  observed(obj: Obj<K>, deleted = false): void {
    const key = keyOf(obj.metadata.name, obj.metadata.namespace);
    const kept = this.written.get(key);
    if (!kept) return;
    if (deleted || !this.isNewer(kept, obj)) this.written.delete(key);
  }

  /** What a read returns: the written copy while it is newer than the cache's, else the cache's. */
  read(cached: Obj<K> | undefined): Obj<K> | undefined {
    if (!cached || this.written.size === 0) return cached;
    const key = keyOf(cached.metadata.name, cached.metadata.namespace);
    const kept = this.written.get(key);
    if (!kept) return cached;
    if (this.isNewer(kept, cached)) return kept;
    // Caught up without an event of its own (a re-list that found nothing new to tell).
    this.written.delete(key);
    return cached;
  }

  readAll(cached: readonly Obj<K>[]): readonly Obj<K>[] {
    return this.written.size === 0 ? cached : cached.map((o) => this.read(o)!);
  }

  /** Written copies still ahead of the watch (for tests and metrics). */
  get size(): number {
    return this.written.size;
  }

  private isNewer(kept: Obj<K>, cached: Obj<K>): boolean {
    if (kept.metadata.uid !== cached.metadata.uid) return false;
    const a = versionOf(kept);
    const b = versionOf(cached);
    return a !== undefined && b !== undefined && a > b;
  }
}
