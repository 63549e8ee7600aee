// Typed objects of the kubenova API. The spec and status shapes are generated from
// schema.ts (types.generated.ts); this file adds the object envelope and the state names
// the code switches on, so the compiler checks every transition table.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type {
  ComputeQuotaSpec,
  ComputeQuotaStatus,
  ServerGroupSpec,
  ServerGroupStatus,
  ComputeNodeSpec,
  ComputeNodeStatus,
  FlavorSpec,
  FlavorStatus,
  InstanceSpec,
  InstanceStatus,
  IPAllocationSpec,
  IPAllocationStatus,
  MigrationSpec,
  MigrationStatus,
  NetworkSpec,
  NetworkStatus,
  PortSpec,
  PortStatus,
} from './types.generated.js';
import { API_VERSION } from './schema.js';

export * from './types.generated.js';
export { API_VERSION, GROUP, VERSION } from './schema.js';

export interface KubeObject<K extends string, Spec, Status> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: V1ObjectMeta & { name: string };
  spec: Spec;
  status?: Status;
}

export type Flavor = KubeObject<'Flavor', FlavorSpec, FlavorStatus>;
export type Instance = KubeObject<'Instance', InstanceSpec, InstanceStatus>;
export type Migration = KubeObject<'Migration', MigrationSpec, MigrationStatus>;
export type ComputeNode = KubeObject<'ComputeNode', ComputeNodeSpec, ComputeNodeStatus>;
export type ComputeQuota = KubeObject<'ComputeQuota', ComputeQuotaSpec, ComputeQuotaStatus>;
export type ServerGroup = KubeObject<'ServerGroup', ServerGroupSpec, ServerGroupStatus>;
export type Network = KubeObject<'Network', NetworkSpec, NetworkStatus>;
export type Port = KubeObject<'Port', PortSpec, PortStatus>;
export type IPAllocation = KubeObject<'IPAllocation', IPAllocationSpec, IPAllocationStatus>;

export type VmState = NonNullable<InstanceStatus['vmState']>;
export type TaskState = NonNullable<InstanceStatus['taskState']>;
export type PowerState = NonNullable<InstanceStatus['powerState']>;
export type MigrationPhase = NonNullable<MigrationStatus['status']>;
export type PortBindingState = NonNullable<PortStatus['bindingState']>;
export type ClaimKind = 'instance' | 'migration';

/** The three resources a claim holds, in the units the API uses. */
export interface ResourceAmounts {
  vcpus: number;
  memoryMiB: number;
  diskGiB: number;
}

export const RESOURCE_NAMES = ['vcpus', 'memoryMiB', 'diskGiB'] as const;
export type ResourceName = (typeof RESOURCE_NAMES)[number];

export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const FINALIZER = 'compute.kubenova.io/instance-cleanup';
/** Holds a deleted Migration until its instance is steady again (a delete is a cancel). */
export const MIGRATION_FINALIZER = 'compute.kubenova.io/migration-cancel';

export interface KindInfo {
  plural: string;
  namespaced: boolean;
}

export const KIND_INFO = {
  Flavor: { plural: 'flavors', namespaced: false },
  Instance: { plural: 'instances', namespaced: true },
  Migration: { plural: 'migrations', namespaced: true },
  ComputeNode: { plural: 'computenodes', namespaced: false },
  ComputeQuota: { plural: 'computequotas', namespaced: true },
  ServerGroup: { plural: 'servergroups', namespaced: true },
  Network: { plural: 'networks', namespaced: false },
  Port: { plural: 'ports', namespaced: true },
  IPAllocation: { plural: 'ipallocations', namespaced: false },
} as const satisfies Record<string, KindInfo>;
