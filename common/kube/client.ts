// Typed access to the kubenova custom resources. Every write is a JSON merge patch or a
// create; status writes carry the resourceVersion they were computed from, so two
// writers can never overwrite each other (the loser gets a Conflict and re-reads).
import {
  ApiException,
  CertificatesV1Api,
  type CoreV1Event,
  type V1Secret,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesListObject,
} from '@kubernetes/client-node';
import type { MergePatch } from '../api/patch.js';
import { KeepAliveKubeConfig } from './keepalive.js';
import { countRequests, type RequestObserver } from './request-metrics.js';
import { GROUP, KIND_INFO, VERSION } from '../api/types.js';
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
} from './api.js';

export type { KindMap, KindName, Ref } from './api.js';

/**
 * Loads a kubeconfig; requests reuse TLS connections unless keepAlive is false. With `observe`,
 * every request made through it (API clients, watches, the Lease) is reported to it
 * (rest_client_requests_total).
 */
export function loadKubeConfig(kubeconfigPath?: string, keepAlive = true, observe?: RequestObserver): KubeConfig {
  const kc = keepAlive ? new KeepAliveKubeConfig() : new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  return observe ? countRequests(kc, observe) : kc;
}

export function statusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const code =
    (err as { code?: unknown; statusCode?: unknown } | null)?.statusCode ?? (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (err: unknown): boolean => statusCode(err) === 404;
export const isConflict = (err: unknown): boolean => statusCode(err) === 409;

/** The message the API server gave, for faults and logs. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as unknown;
    if (typeof body === 'string') {
      try {
        const parsed = JSON.parse(body) as { message?: string };
        if (parsed.message) return parsed.message;
      } catch {
        return body;
      }
    }
    if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  }
  return err instanceof Error ? err.message : String(err);
}

function hasNamespace<T extends { namespace?: string }>(b: T): b is T & { namespace: string } {
  return b.namespace !== undefined;
}

/** Request options that send a body as a JSON merge patch. */
export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class ResourceClient<K extends KindName> implements ObjectClient<K> {
  readonly plural: string;
  readonly namespaced: boolean;
  private readonly writeListeners: ((obj: KindMap[K]) => void)[] = [];

  constructor(
    private readonly api: CustomObjectsApi,
    readonly kind: K,
    private readonly fieldManager: string,
  ) {
    this.plural = KIND_INFO[kind].plural;
    this.namespaced = KIND_INFO[kind].namespaced;
  }

  /**
   * Told of every object a write of this client returned (the caches read their own writes)
   * until the returned function is called.
   */
  onWritten(listener: (obj: KindMap[K]) => void): () => void {
    this.writeListeners.push(listener);
    return () => {
      const at = this.writeListeners.indexOf(listener);
      if (at >= 0) this.writeListeners.splice(at, 1);
    };
  }

  private written(res: unknown): KindMap[K] {
    const obj = res as KindMap[K];
    for (const listener of this.writeListeners) listener(obj);
    return obj;
  }

  /** The URL path the watch uses. */
  watchPath(namespace?: string): string {
    return namespace && this.namespaced
      ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${this.plural}`
      : `/apis/${GROUP}/${VERSION}/${this.plural}`;
  }

  private base(ref: Ref): { group: string; version: string; plural: string; name: string; namespace?: string } {
    const common = { group: GROUP, version: VERSION, plural: this.plural, name: ref.name };
    return this.namespaced ? { ...common, namespace: ref.namespace ?? 'default' } : common;
  }

  async get(ref: Ref): Promise<KindMap[K] | undefined> {
    try {
      const b = this.base(ref);
      const obj: unknown = hasNamespace(b)
        ? await this.api.getNamespacedCustomObject(b)
        : await this.api.getClusterCustomObject(b);
      return obj as KindMap[K];
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list(namespace?: string): Promise<KubernetesListObject<KindMap[K]>> {
    const res: unknown =
      this.namespaced && namespace
        ? await this.api.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: this.plural, namespace })
        : await this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: this.plural });
    return res as KubernetesListObject<KindMap[K]>;
  }

  async create(obj: KindMap[K]): Promise<KindMap[K]> {
    const b = this.base({ namespace: obj.metadata.namespace, name: obj.metadata.name });
    const res: unknown = hasNamespace(b)
      ? await this.api.createNamespacedCustomObject({ ...b, body: obj, fieldManager: this.fieldManager })
      : await this.api.createClusterCustomObject({ ...b, body: obj, fieldManager: this.fieldManager });
    return this.written(res);
  }

  /** Merge-patches the main resource (spec, metadata). */
  async patch(ref: Ref, body: object): Promise<KindMap[K]> {
    const b = this.base(ref);
    const res: unknown = hasNamespace(b)
      ? await this.api.patchNamespacedCustomObject({ ...b, body, fieldManager: this.fieldManager }, mergePatch)
      : await this.api.patchClusterCustomObject({ ...b, body, fieldManager: this.fieldManager }, mergePatch);
    return this.written(res);
  }

  /**
   * Merge-patches status, guarded by the resourceVersion the change was computed from:
   * a concurrent writer makes this fail with 409 instead of being overwritten.
   */
  async patchStatus(
    obj: { metadata: { name: string; namespace?: string; resourceVersion?: string } },
    status: MergePatch<NonNullable<KindMap[K]['status']>>,
  ): Promise<KindMap[K]> {
    const b = this.base({ namespace: obj.metadata.namespace, name: obj.metadata.name });
    const body = { metadata: { resourceVersion: obj.metadata.resourceVersion }, status };
    const res: unknown = hasNamespace(b)
      ? await this.api.patchNamespacedCustomObjectStatus({ ...b, body, fieldManager: this.fieldManager }, mergePatch)
      : await this.api.patchClusterCustomObjectStatus({ ...b, body, fieldManager: this.fieldManager }, mergePatch);
    return this.written(res);
  }

  async delete(ref: Ref): Promise<void> {
    try {
      const b = this.base(ref);
      if (hasNamespace(b)) await this.api.deleteNamespacedCustomObject(b);
      else await this.api.deleteClusterCustomObject(b);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

class CoreSecrets implements SecretClient {
  constructor(private readonly core: CoreV1Api) {}

  async get(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ namespace, name });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async create(secret: V1Secret & { metadata: { name: string; namespace: string } }): Promise<void> {
    await this.core.createNamespacedSecret({ namespace: secret.metadata.namespace, body: secret });
  }

  async delete(namespace: string, name: string): Promise<void> {
    try {
      await this.core.deleteNamespacedSecret({ namespace, name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async listLabelled(namespace: string, label: string): Promise<V1Secret[]> {
    return (await this.core.listNamespacedSecret({ namespace, labelSelector: label })).items;
  }
}

class Csrs implements CsrClient {
  constructor(private readonly api: CertificatesV1Api) {}

  async create(csr: Csr): Promise<Csr> {
    return (await this.api.createCertificateSigningRequest({ body: csr })) as Csr;
  }

  async get(name: string): Promise<Csr | undefined> {
    try {
      return (await this.api.readCertificateSigningRequest({ name })) as Csr;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list(signerName: string): Promise<Csr[]> {
    const list = await this.api.listCertificateSigningRequest({ fieldSelector: `spec.signerName=${signerName}` });
    return list.items as Csr[];
  }

  async decide(csr: Csr, decision: 'Approved' | 'Denied', reason: string, message: string): Promise<Csr> {
    const condition = { type: decision, status: 'True', reason, message, lastUpdateTime: new Date() };
    const body = { ...csr, status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] } };
    return (await this.api.replaceCertificateSigningRequestApproval({ name: csr.metadata.name, body })) as Csr;
  }

  async issue(csr: Csr, certificatePem: string): Promise<Csr> {
    const body = { ...csr, status: { ...csr.status, certificate: Buffer.from(certificatePem).toString('base64') } };
    return (await this.api.replaceCertificateSigningRequestStatus({ name: csr.metadata.name, body })) as Csr;
  }
}

class CoreEvents implements EventSink {
  constructor(private readonly core: CoreV1Api) {}

  async create(namespace: string, event: CoreV1Event): Promise<void> {
    await this.core.createNamespacedEvent({ namespace, body: event });
  }
}

export class Kube implements KubeClient {
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly secrets: SecretClient;
  readonly events: EventSink;
  readonly csrs: CsrClient;
  private readonly clients = new Map<KindName, ResourceClient<KindName>>();

  constructor(
    readonly config: KubeConfig,
    readonly fieldManager: string,
  ) {
    this.custom = config.makeApiClient(CustomObjectsApi);
    this.core = config.makeApiClient(CoreV1Api);
    this.secrets = new CoreSecrets(this.core);
    this.events = new CoreEvents(this.core);
    this.csrs = new Csrs(config.makeApiClient(CertificatesV1Api));
  }

  /** The client of one kind, made once. */
  resource<K extends KindName>(kind: K): ResourceClient<K> {
    const made = this.clients.get(kind) as ResourceClient<K> | undefined;
    if (made) return made;
    const client = new ResourceClient(this.custom, kind, this.fieldManager);
    this.clients.set(kind, client as unknown as ResourceClient<KindName>);
    return client;
  }

  get flavors() {
    return this.resource('Flavor');
  }
  get instances() {
    return this.resource('Instance');
  }
  get migrations() {
    return this.resource('Migration');
  }
  get computeNodes() {
    return this.resource('ComputeNode');
  }
  get quotas() {
    return this.resource('ComputeQuota');
  }
  get serverGroups() {
    return this.resource('ServerGroup');
  }
  get networks() {
    return this.resource('Network');
  }
  get ports() {
    return this.resource('Port');
  }
  get ipAllocations() {
    return this.resource('IPAllocation');
  }
}
