// An in-memory API server for unit tests of the state machines (controller-runtime's fake
// client): objects with resourceVersions, generations, finalizers and status subresources,
// JSON merge patches, optimistic-concurrency conflicts, and watch-fed caches that see every
// write at once. Integration tests keep the real kube-apiserver; this is never used there.
import { randomUUID } from 'node:crypto';
import type { CoreV1Event, V1Secret } from '@kubernetes/client-node';
import { API_VERSION, KIND_INFO } from '../api/types.js';
import type {
  Csr,
  CsrClient,
  EventSink,
  KindMap,
  KindName,
  KubeClient,
  ObjectClient,
  Ref,
  SecretClient,
  Versioned,
  WatchedCache,
  WatchEvent,
} from './api.js';
import { EventRecorder } from './events.js';
import type { Logger } from '../log.js';

/** An error shaped like the API server's, so isConflict/isNotFound read it. */
export class FakeApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

type Verb = 'create' | 'patch' | 'patchStatus' | 'delete';
export interface Write {
  verb: Verb;
  kind: KindName | 'Secret' | 'CertificateSigningRequest';
  name: string;
  namespace?: string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** RFC 7386: objects merge key by key, null deletes, anything else (arrays too) replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return structuredClone(patch);
  const base: Record<string, unknown> =
    target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, Json>)) {
    if (v === null) delete base[k];
    else base[k] = mergePatch(base[k], v);
  }
  return base;
}

const keyOf = (namespace: string | undefined, name: string) => (namespace ? `${namespace}/${name}` : name);

type AnyObject = KindMap[KindName];
type Handler = (obj: AnyObject) => void;

export class FakeCluster {
  private readonly stores = new Map<KindName, Map<string, AnyObject>>();
  private readonly handlers = new Map<KindName, Map<WatchEvent, Handler[]>>();
  private readonly secretStore = new Map<string, V1Secret>();
  private readonly csrStore = new Map<string, Csr>();
  private readonly failures: {
    kind: KindName | 'Secret' | 'CertificateSigningRequest';
    verb: Verb;
    err: Error;
    name?: string;
  }[] = [];
  /** Every read of a Secret through a client, as namespace/name. */
  readonly secretReads: string[] = [];
  private version = 1;
  readonly events: CoreV1Event[] = [];
  readonly writes: Write[] = [];

  private store<K extends KindName>(kind: K): Map<string, KindMap[K]> {
    let s = this.stores.get(kind);
    if (!s) this.stores.set(kind, (s = new Map()));
    return s as Map<string, KindMap[K]>;
  }

  private nextVersion(): string {
    return String(++this.version);
  }

  private emit(kind: KindName, event: WatchEvent, obj: AnyObject): void {
    for (const h of this.handlers.get(kind)?.get(event) ?? []) h(structuredClone(obj));
  }

  /** The next `verb` on `kind` (on object `name`, if given) fails with `err` instead. */
  failNext(
    kind: KindName | 'Secret' | 'CertificateSigningRequest',
    verb: Verb,
    err: Error = new FakeApiError(409, 'conflict'),
    name?: string,
  ): void {
    this.failures.push({ kind, verb, err, name });
  }

  private checkFailure(
    kind: KindName | 'Secret' | 'CertificateSigningRequest',
    verb: Verb,
    name: string,
    namespace?: string,
  ): void {
    this.writes.push({ verb, kind, name, namespace });
    const i = this.failures.findIndex((f) => f.kind === kind && f.verb === verb && (!f.name || f.name === name));
    if (i >= 0) throw this.failures.splice(i, 1)[0]!.err;
  }

  /** Puts an object in place as if someone had created it earlier (no write counted). */
  seed<K extends KindName>(obj: KindMap[K]): KindMap[K] {
    const kind = obj.kind as K;
    const stored = structuredClone(obj);
    stored.metadata.uid ??= randomUUID();
    stored.metadata.resourceVersion = this.nextVersion();
    stored.metadata.generation ??= 1;
    if (KIND_INFO[kind].namespaced) stored.metadata.namespace ??= 'default';
    this.store(kind).set(keyOf(stored.metadata.namespace, stored.metadata.name), stored);
    this.emit(kind, 'add', stored);
    return structuredClone(stored);
  }

  get<K extends KindName>(kind: K, name: string, namespace?: string): KindMap[K] | undefined {
    const obj = this.store(kind).get(keyOf(KIND_INFO[kind].namespaced ? (namespace ?? 'default') : undefined, name));
    return obj ? structuredClone(obj) : undefined;
  }

  list<K extends KindName>(kind: K, namespace?: string): KindMap[K][] {
    return [...this.store(kind).values()]
      .filter((o) => !namespace || o.metadata.namespace === namespace)
      .map((o) => structuredClone(o));
  }

  /** A client writing as one component (the field manager is not modelled). */
  client(): KubeClient {
    const objects = <K extends KindName>(kind: K): ObjectClient<K> => new FakeObjects(this, kind);
    const secrets: SecretClient = {
      get: async (namespace, name) => {
        this.secretReads.push(keyOf(namespace, name));
        return structuredClone(this.secretStore.get(keyOf(namespace, name)));
      },
      listLabelled: async (namespace, label) =>
        [...this.secretStore.values()]
          .filter((s) => s.metadata?.namespace === namespace && s.metadata.labels?.[label] !== undefined)
          .map((s) => structuredClone(s)),
      create: async (secret) => {
        this.checkFailure('Secret', 'create', secret.metadata.name, secret.metadata.namespace);
        const key = keyOf(secret.metadata.namespace, secret.metadata.name);
        if (this.secretStore.has(key)) throw new FakeApiError(409, `secret ${key} already exists`);
        const data = { ...secret.data };
        for (const [k, v] of Object.entries(secret.stringData ?? {})) data[k] = Buffer.from(v).toString('base64');
        const metadata = {
          ...structuredClone(secret.metadata),
          uid: randomUUID(),
          resourceVersion: this.nextVersion(),
        };
        this.secretStore.set(key, { ...structuredClone(secret), metadata, stringData: undefined, data });
      },
      delete: async (namespace, name) => {
        this.checkFailure('Secret', 'delete', name, namespace);
        this.secretStore.delete(keyOf(namespace, name));
      },
    };
    const events: EventSink = {
      create: async (_namespace, event) => {
        this.events.push(structuredClone(event));
      },
    };
    return {
      csrs: this.csrClient(),
      flavors: objects('Flavor'),
      instances: objects('Instance'),
      migrations: objects('Migration'),
      computeNodes: objects('ComputeNode'),
      quotas: objects('ComputeQuota'),
      serverGroups: objects('ServerGroup'),
      networks: objects('Network'),
      ports: objects('Port'),
      ipAllocations: objects('IPAllocation'),
      secrets,
      events,
    };
  }

  /** CertificateSigningRequests: the status and approval subresources, guarded by resourceVersion. */
  private csrClient(): CsrClient {
    const guarded = (csr: Csr, verb: Verb): Csr => {
      this.checkFailure('CertificateSigningRequest', verb, csr.metadata.name);
      const current = this.csrStore.get(csr.metadata.name);
      if (!current) throw new FakeApiError(404, `certificatesigningrequest ${csr.metadata.name} not found`);
      if (
        csr.metadata.resourceVersion !== undefined &&
        csr.metadata.resourceVersion !== current.metadata.resourceVersion
      )
        throw new FakeApiError(409, 'the object has been modified');
      return current;
    };
    const store = (csr: Csr): Csr => {
      csr.metadata.resourceVersion = this.nextVersion();
      this.csrStore.set(csr.metadata.name, csr);
      return structuredClone(csr);
    };
    return {
      create: async (csr) => {
        this.checkFailure('CertificateSigningRequest', 'create', csr.metadata.name);
        if (this.csrStore.has(csr.metadata.name)) throw new FakeApiError(409, `${csr.metadata.name} already exists`);
        return store({ ...structuredClone(csr), metadata: { ...structuredClone(csr.metadata), uid: randomUUID() } });
      },
      get: async (name) => structuredClone(this.csrStore.get(name)),
      list: async (signerName) =>
        [...this.csrStore.values()].filter((c) => c.spec.signerName === signerName).map((c) => structuredClone(c)),
      decide: async (csr, decision, reason, message) => {
        const current = guarded(csr, 'patchStatus');
        const condition = { type: decision, status: 'True', reason, message, lastUpdateTime: new Date() };
        const conditions = [...(current.status?.conditions ?? []), condition];
        return store({ ...structuredClone(current), status: { ...current.status, conditions } });
      },
      issue: async (csr, certificatePem) => {
        const current = guarded(csr, 'patchStatus');
        const certificate = Buffer.from(certificatePem).toString('base64');
        return store({ ...structuredClone(current), status: { ...current.status, certificate } });
      },
    };
  }

  /** A CertificateSigningRequest as stored. */
  csr(name: string): Csr | undefined {
    return structuredClone(this.csrStore.get(name));
  }

  /** A watch-fed cache of one kind that sees every write at once. */
  cache<K extends KindName>(kind: K): WatchedCache<K> {
    return {
      get: (name, namespace) => this.get(kind, name, namespace),
      list: (namespace) => this.list(kind, namespace),
      on: (event, handler) => {
        let byEvent = this.handlers.get(kind);
        if (!byEvent) this.handlers.set(kind, (byEvent = new Map()));
        byEvent.set(event, [...(byEvent.get(event) ?? []), handler as Handler]);
      },
    };
  }

  /** An EventRecorder writing into `events` (read them with eventsFor). */
  recorder(log: Logger, component = 'test'): EventRecorder {
    return new EventRecorder(this.client().events, component, undefined, log);
  }

  /** The reasons of the Events recorded about one object, oldest first. */
  eventsFor(name: string): string[] {
    return this.events.filter((e) => e.involvedObject.name === name).map((e) => e.reason ?? '');
  }

  secret(namespace: string, name: string): V1Secret | undefined {
    return structuredClone(this.secretStore.get(keyOf(namespace, name)));
  }

  /** @internal the object clients' shared write path. */
  write<K extends KindName>(
    kind: K,
    verb: Verb,
    ref: Ref,
    change: (current: KindMap[K] | undefined) => KindMap[K] | null,
  ): KindMap[K] {
    const namespace = KIND_INFO[kind].namespaced ? (ref.namespace ?? 'default') : undefined;
    this.checkFailure(kind, verb, ref.name, namespace);
    const store = this.store(kind);
    const key = keyOf(namespace, ref.name);
    const current = store.get(key);
    const next = change(current ? structuredClone(current) : undefined);
    if (next === null) {
      store.delete(key);
      if (current) this.emit(kind, 'delete', current);
      return current!;
    }
    next.metadata.resourceVersion = this.nextVersion();
    // A finalized object whose last finalizer went is gone.
    if (next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
      store.delete(key);
      this.emit(kind, 'delete', next);
      return structuredClone(next);
    }
    store.set(key, next);
    this.emit(kind, current ? 'update' : 'add', next);
    return structuredClone(next);
  }
}

class FakeObjects<K extends KindName> implements ObjectClient<K> {
  constructor(
    private readonly cluster: FakeCluster,
    private readonly kind: K,
  ) {}

  async get(ref: Ref): Promise<KindMap[K] | undefined> {
    return this.cluster.get(this.kind, ref.name, ref.namespace);
  }

  async create(obj: KindMap[K]): Promise<KindMap[K]> {
    return this.cluster.write(this.kind, 'create', obj.metadata, (current) => {
      if (current) throw new FakeApiError(409, `${this.kind} ${obj.metadata.name} already exists`);
      const created = structuredClone(obj);
      created.apiVersion = API_VERSION;
      created.metadata.uid = randomUUID();
      created.metadata.generation = 1;
      created.metadata.creationTimestamp = new Date();
      if (KIND_INFO[this.kind].namespaced) created.metadata.namespace ??= 'default';
      return created;
    });
  }

  async patch(ref: Ref, body: object): Promise<KindMap[K]> {
    return this.cluster.write(this.kind, 'patch', ref, (current) => {
      if (!current) throw new FakeApiError(404, `${this.kind} ${ref.name} not found`);
      const b = body as { metadata?: { resourceVersion?: string }; spec?: unknown; status?: unknown };
      guard(current, b.metadata?.resourceVersion);
      const { status: _ignored, ...main } = b;
      const next = mergePatch(current, main) as KindMap[K];
      next.metadata.resourceVersion = current.metadata.resourceVersion;
      next.status = current.status;
      if (JSON.stringify(next.spec) !== JSON.stringify(current.spec)) {
        next.metadata.generation = (current.metadata.generation ?? 1) + 1;
      }
      return next;
    });
  }

  async patchStatus(obj: Versioned, status: object): Promise<KindMap[K]> {
    return this.cluster.write(this.kind, 'patchStatus', obj.metadata, (current) => {
      if (!current) throw new FakeApiError(404, `${this.kind} ${obj.metadata.name} not found`);
      guard(current, obj.metadata.resourceVersion);
      return { ...current, status: mergePatch(current.status, status) } as KindMap[K];
    });
  }

  async delete(ref: Ref): Promise<void> {
    if (!this.cluster.get(this.kind, ref.name, ref.namespace)) return;
    this.cluster.write(this.kind, 'delete', ref, (current) => {
      if (!current) return null;
      if ((current.metadata.finalizers ?? []).length === 0) return null;
      current.metadata.deletionTimestamp ??= new Date();
      return current;
    });
  }
}

function guard(current: AnyObject, resourceVersion: string | undefined): void {
  if (resourceVersion !== undefined && resourceVersion !== current.metadata.resourceVersion) {
    throw new FakeApiError(
      409,
      `the object has been modified (have ${current.metadata.resourceVersion}, got ${resourceVersion})`,
    );
  }
}
