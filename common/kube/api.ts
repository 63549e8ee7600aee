// The client and cache interfaces the controllers are written against. The real ones talk to
// the API server (client.ts, informer.ts); the in-memory ones (fake.ts) let unit tests drive a
// state machine step by step, as controller-runtime's fake client does.
import type { CoreV1Event, V1CertificateSigningRequest, V1Secret } from '@kubernetes/client-node';
import type { MergePatch } from '../api/patch.js';
import type {
  ComputeNode,
  ComputeQuota,
  Flavor,
  Instance,
  IPAllocation,
  Migration,
  Network,
  Port,
  ServerGroup,
} from '../api/types.js';

export interface KindMap {
  Flavor: Flavor;
  Instance: Instance;
  Migration: Migration;
  ComputeNode: ComputeNode;
  ComputeQuota: ComputeQuota;
  ServerGroup: ServerGroup;
  Network: Network;
  Port: Port;
  IPAllocation: IPAllocation;
}
export type KindName = keyof KindMap;

export interface Ref {
  namespace?: string;
  name: string;
}

/** What a status write is computed from: its resourceVersion guards it. */
export interface Versioned {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

export interface ObjectClient<K extends KindName> {
  get(ref: Ref): Promise<KindMap[K] | undefined>;
  create(obj: KindMap[K]): Promise<KindMap[K]>;
  /** Merge-patches the main resource (spec, metadata); metadata.resourceVersion, if given, guards it. */
  patch(ref: Ref, body: object): Promise<KindMap[K]>;
  /** Merge-patches status; a concurrent writer makes it fail with 409 instead of being overwritten. */
  patchStatus(obj: Versioned, status: MergePatch<NonNullable<KindMap[K]['status']>>): Promise<KindMap[K]>;
  /** Deletes; a missing object is not an error. */
  delete(ref: Ref): Promise<void>;
}

export interface SecretClient {
  get(namespace: string, name: string): Promise<V1Secret | undefined>;
  /** Throws a 409 when it exists already. */
  create(secret: V1Secret & { metadata: { name: string; namespace: string } }): Promise<void>;
  /** A missing Secret is not an error. */
  delete(namespace: string, name: string): Promise<void>;
  /** The Secrets of one namespace carrying `label` (any value). */
  listLabelled(namespace: string, label: string): Promise<V1Secret[]>;
}

export type Csr = V1CertificateSigningRequest & { metadata: { name: string } };

/** CertificateSigningRequests (certificates.k8s.io/v1, cluster-scoped). */
export interface CsrClient {
  create(csr: Csr): Promise<Csr>;
  get(name: string): Promise<Csr | undefined>;
  /** The requests addressed to one signer. */
  list(signerName: string): Promise<Csr[]>;
  /** Adds an Approved or Denied condition (the approval subresource); 409 when the request changed meanwhile. */
  decide(csr: Csr, decision: 'Approved' | 'Denied', reason: string, message: string): Promise<Csr>;
  /** Writes the issued certificate (the status subresource); 409 when the request changed meanwhile. */
  issue(csr: Csr, certificatePem: string): Promise<Csr>;
}

export interface EventSink {
  create(namespace: string, event: CoreV1Event): Promise<void>;
}

export interface KubeClient {
  readonly flavors: ObjectClient<'Flavor'>;
  readonly instances: ObjectClient<'Instance'>;
  readonly migrations: ObjectClient<'Migration'>;
  readonly computeNodes: ObjectClient<'ComputeNode'>;
  readonly quotas: ObjectClient<'ComputeQuota'>;
  readonly serverGroups: ObjectClient<'ServerGroup'>;
  readonly networks: ObjectClient<'Network'>;
  readonly ports: ObjectClient<'Port'>;
  readonly ipAllocations: ObjectClient<'IPAllocation'>;
  readonly secrets: SecretClient;
  readonly events: EventSink;
  readonly csrs: CsrClient;
}

/** A read-only view of a watch-fed cache. */
export interface ObjectCache<K extends KindName> {
  get(name: string, namespace?: string): KindMap[K] | undefined;
  list(namespace?: string): readonly KindMap[K][];
}

export type WatchEvent = 'add' | 'update' | 'delete';

/** A cache that also tells who registers what changed: controllers register their watches on it. */
export interface WatchedCache<K extends KindName> extends ObjectCache<K> {
  on(event: WatchEvent, handler: (obj: KindMap[K]) => void): void;
}
