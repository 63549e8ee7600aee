// A watch-fed cache of one kind. client-node's ListWatch stops on any error other than
// 410 Gone; this wrapper restarts it with capped exponential backoff, and a restart
// re-lists, so objects changed while the watch was down are still delivered.
//
// A label or field selector narrows the list as well as the watch: ListWatch passes the
// selectors to its watch only, so the list is made here with them. (Listing everything and
// watching a part would fill the cache with objects no watch event ever updates.)
//
// Cached objects go without metadata.managedFields (client-go informers are commonly set to
// drop them too): nothing here reads them, and they are a large share of every object kept.
import {
  CustomObjectsApi,
  ListWatch,
  type KubernetesListObject,
  type KubernetesObject,
  type Watch,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, VERSION } from '../api/schema.js';
import type { KindMap, KindName, WatchedCache, WatchEvent } from './api.js';
import type { Kube, ResourceClient } from './client.js';
import { OwnWrites } from './own-writes.js';
import { watchFor } from './request-metrics.js';

export type Handler<T> = (obj: T) => void;

export interface InformerOptions {
  labelSelector?: string;
  /** e.g. `status.host=node-a`: the field must be one of the CRD's selectableFields. */
  fieldSelector?: string;
}

export class Informer<K extends KindName> implements WatchedCache<K> {
  private readonly lw: ListWatch<KindMap[K] & KubernetesObject>;
  private backoffMs = 0;
  private stopped = false;
  private synced = false;
  private readonly syncWaiters: (() => void)[] = [];
  private restartTimer?: NodeJS.Timeout;
  private readonly viewHandlers: ((view: 'lost' | 'restored') => void)[] = [];
  private readonly own = new OwnWrites<K>();
  private readonly client: ResourceClient<K>;
  /** Stops hearing of this process's writes (an informer that stopped, e.g. an unfollowed instance's). */
  private unsubscribe?: () => void;

  constructor(
    kube: Kube,
    readonly kind: K,
    private readonly log: Logger,
    readonly options: InformerOptions = {},
  ) {
    const client = kube.resource(kind);
    const api = kube.config.makeApiClient(CustomObjectsApi);
    // resourceVersion 0, as client-go's reflector lists: kube-apiserver answers from its watch
    // cache. A list without one may be read from etcd in full, every object of the kind however
    // narrow the selector: at 500 hosts a wave of agents' re-lists read every Instance once per
    // host. The watch that follows starts from the list's version, so nothing is missed.
    const listFn = async () => {
      const list: unknown = await api.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: client.plural,
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        resourceVersion: '0',
      });
      for (const item of (list as { items?: unknown[] }).items ?? []) dropManagedFields(item);
      this.markSynced();
      return list as KubernetesListObject<KindMap[K] & KubernetesObject> & {
        items: (KindMap[K] & KubernetesObject)[];
      };
    };
    this.lw = new ListWatch(
      client.watchPath(),
      withoutManagedFields(watchFor(kube.config)),
      listFn,
      false,
      options.labelSelector,
      options.fieldSelector,
    );
    this.client = client;
    // Registered before any controller's handlers: they read what the event brought, not an older write.
    this.lw.on('add', (obj) => this.own.observed(obj));
    this.lw.on('update', (obj) => this.own.observed(obj));
    this.lw.on('delete', (obj) => this.own.observed(obj, true));
    this.lw.on('connect', () => {
      this.backoffMs = 0;
      for (const h of this.viewHandlers) h('restored');
    });
    this.lw.on('error', (err: unknown) => this.restart(err));
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private restart(err: unknown): void {
    if (this.stopped) return;
    for (const h of this.viewHandlers) h('lost');
    this.backoffMs = Math.min(this.backoffMs ? this.backoffMs * 2 : 200, 10_000);
    this.log.warn(
      { kind: this.kind, err: (err as Error)?.message ?? String(err), retryInMs: this.backoffMs },
      'watch failed; re-listing',
    );
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.lw.start().catch((e: unknown) => this.restart(e));
    }, this.backoffMs);
  }

  on(event: WatchEvent, handler: Handler<KindMap[K]>): void {
    this.lw.on(event, handler as Handler<KindMap[K] & KubernetesObject>);
  }

  /**
   * Told when the watch fails ('lost': the cache stops following the API server) and when it
   * connects again ('restored': what was missed is replayed or re-listed next).
   */
  onViewChange(handler: (view: 'lost' | 'restored') => void): void {
    this.viewHandlers.push(handler);
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.unsubscribe ??= this.client.onWritten((obj) =>
      this.own.record(
        { ...obj, metadata: { ...obj.metadata, managedFields: undefined } },
        this.lw.get(obj.metadata.name, obj.metadata.namespace),
      ),
    );
    this.lw.start().catch((err: unknown) => this.restart(err));
    await this.waitForSync();
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearTimeout(this.restartTimer);
    await this.lw.stop();
  }

  get(name: string, namespace?: string): KindMap[K] | undefined {
    return this.own.read(this.lw.get(name, namespace) as KindMap[K] | undefined);
  }

  list(namespace?: string): readonly KindMap[K][] {
    return this.own.readAll(this.lw.list(namespace) as readonly KindMap[K][]);
  }
}

/** Deletes an object's metadata.managedFields in place (the object is fresh from the wire). */
export function dropManagedFields(obj: unknown): void {
  const metadata = (obj as { metadata?: { managedFields?: unknown } } | null)?.metadata;
  if (metadata && typeof metadata === 'object') delete metadata.managedFields;
}

/** The watch, delivering every object without its managedFields. */
export function withoutManagedFields(watch: Watch): Watch {
  const open = watch.watch.bind(watch);
  watch.watch = (path, queryParams, callback, done) =>
    open(
      path,
      queryParams,
      (phase, apiObj, watchObj) => {
        dropManagedFields(apiObj);
        callback(phase, apiObj, watchObj);
      },
      done,
    );
  return watch;
}
