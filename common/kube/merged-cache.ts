// One cache seen through several watches: a node agent watches each way an object can involve
// its host (status.host=<host>, status.scheduling.selectedHost=<host>, ...) with a field
// selector of its own, and its controllers read the union. An object is in the union while
// any source holds it; the copy shown is the newest any source has delivered.
//
// An object that stops matching one field selector arrives from that watch as a DELETED
// event, though it still exists (it may have only moved to another host, or to another
// field this host also watches). So a source's delete only removes that source's copy; the
// union says 'delete' when no source holds the object any more, which means "no longer
// involves this host", never "deleted from the API server": nothing may be destroyed on the
// strength of it without a live read.
import type { KindMap, KindName, WatchedCache, WatchEvent } from './api.js';

type Handler<T> = (obj: T) => void;

/** Whether resourceVersion `a` is older than `b`: etcd revisions, compared as integers when both are. */
export function olderVersion(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === undefined && b !== undefined;
  if (!/^\d+$/.test(a) || !/^\d+$/.test(b)) return a !== b;
  return a.length !== b.length ? a.length < b.length : a < b;
}

const keyOf = (obj: { metadata: { namespace?: string; name: string } }) =>
  `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;

export class MergedCache<K extends KindName> implements WatchedCache<K> {
  /** key -> source -> that source's copy. */
  private readonly copies = new Map<string, Map<WatchedCache<K>, KindMap[K]>>();
  /** key -> the copy shown (the newest of the sources' copies). */
  private readonly shown = new Map<string, KindMap[K]>();
  private readonly handlers: Record<WatchEvent, Handler<KindMap[K]>[]> = { add: [], update: [], delete: [] };
  private readonly sources = new Set<WatchedCache<K>>();

  /**
   * Adds a source: what it holds now joins the union, and its events are followed until
   * `remove`. A source's handlers cannot be unregistered, so a removed source's late events are
   * dropped here.
   */
  add(source: WatchedCache<K>): void {
    if (this.sources.has(source)) return;
    this.sources.add(source);
    source.on('add', (obj) => this.put(source, obj));
    source.on('update', (obj) => this.put(source, obj));
    source.on('delete', (obj) => this.drop(source, obj));
    for (const obj of source.list()) this.put(source, obj);
  }

  /** Removes a source and its copies; what no other source holds leaves the union. */
  remove(source: WatchedCache<K>): void {
    if (!this.sources.delete(source)) return;
    for (const [key, bySource] of [...this.copies]) {
      const obj = bySource.get(source);
      if (obj) this.dropKey(key, bySource, source, obj);
    }
  }

  private put(source: WatchedCache<K>, obj: KindMap[K]): void {
    if (!this.sources.has(source)) return;
    const key = keyOf(obj);
    let bySource = this.copies.get(key);
    if (!bySource) this.copies.set(key, (bySource = new Map()));
    bySource.set(source, obj);
    const current = this.shown.get(key);
    if (current && current.metadata.uid === obj.metadata.uid) {
      // Another source may have delivered this version, or a newer one, already.
      if (!olderVersion(current.metadata.resourceVersion, obj.metadata.resourceVersion)) return;
      this.shown.set(key, obj);
      this.emit('update', obj);
      return;
    }
    if (current) {
      // A new object under a known name (deleted and recreated): the newest wins.
      if (olderVersion(obj.metadata.resourceVersion, current.metadata.resourceVersion)) return;
      this.shown.set(key, obj);
      this.emit('update', obj);
      return;
    }
    this.shown.set(key, obj);
    this.emit('add', obj);
  }

  private drop(source: WatchedCache<K>, obj: KindMap[K]): void {
    if (!this.sources.has(source)) return;
    const key = keyOf(obj);
    const bySource = this.copies.get(key);
    if (bySource?.has(source)) this.dropKey(key, bySource, source, obj);
  }

  private dropKey(key: string, bySource: Map<WatchedCache<K>, KindMap[K]>, source: WatchedCache<K>, obj: KindMap[K]) {
    bySource.delete(source);
    if (bySource.size > 0) {
      // Still held elsewhere: show the newest copy left (a source may lag behind the one that let go).
      let newest: KindMap[K] | undefined;
      for (const copy of bySource.values()) {
        if (!newest || olderVersion(newest.metadata.resourceVersion, copy.metadata.resourceVersion)) newest = copy;
      }
      const shown = this.shown.get(key);
      if (newest && shown && olderVersion(shown.metadata.resourceVersion, newest.metadata.resourceVersion)) {
        this.shown.set(key, newest);
        this.emit('update', newest);
      }
      return;
    }
    this.copies.delete(key);
    const shown = this.shown.get(key) ?? obj;
    this.shown.delete(key);
    this.emit('delete', shown);
  }

  private emit(event: WatchEvent, obj: KindMap[K]): void {
    for (const h of this.handlers[event]) h(obj);
  }

  on(event: WatchEvent, handler: Handler<KindMap[K]>): void {
    this.handlers[event].push(handler);
  }

  /**
   * The newest copy: the one shown, or a source's read when it is newer. An informer's read
   * includes this process's own writes before their watch events arrive (own-writes.ts), which
   * the copies delivered by events do not; without it a controller would write again from the
   * older version (a 409) right after its own write.
   */
  get(name: string, namespace?: string): KindMap[K] | undefined {
    const key = `${namespace ?? ''}/${name}`;
    const shown = this.shown.get(key);
    if (!shown) return undefined;
    let newest = shown;
    for (const source of this.copies.get(key)?.keys() ?? []) {
      const read = source.get(name, namespace);
      if (!read || read.metadata.uid !== shown.metadata.uid) continue;
      if (olderVersion(newest.metadata.resourceVersion, read.metadata.resourceVersion)) newest = read;
    }
    return newest;
  }

  list(namespace?: string): readonly KindMap[K][] {
    const all = [...this.shown.values()].map((o) => this.get(o.metadata.name, o.metadata.namespace) ?? o);
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }
}

/** A cache fed by hand (put, remove) that tells its watchers, as an informer would: a source for tests. */
export class ListedSource<K extends KindName> implements WatchedCache<K> {
  private readonly objects = new Map<string, KindMap[K]>();
  private readonly handlers: Record<WatchEvent, Handler<KindMap[K]>[]> = { add: [], update: [], delete: [] };

  put(obj: KindMap[K]): void {
    const known = this.objects.has(keyOf(obj));
    this.objects.set(keyOf(obj), obj);
    for (const h of this.handlers[known ? 'update' : 'add']) h(obj);
  }

  /** The object leaves this source (deleted, or no longer matching its selector). */
  remove(obj: KindMap[K]): void {
    if (!this.objects.delete(keyOf(obj))) return;
    for (const h of this.handlers.delete) h(obj);
  }

  on(event: WatchEvent, handler: Handler<KindMap[K]>): void {
    this.handlers[event].push(handler);
  }

  get(name: string, namespace?: string): KindMap[K] | undefined {
    return this.objects.get(`${namespace ?? ''}/${name}`);
  }

  list(namespace?: string): readonly KindMap[K][] {
    const all = [...this.objects.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }
}
