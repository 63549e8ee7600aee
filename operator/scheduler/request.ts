import type { FlavorSnapshot, ResourceAmounts } from '../../common/api/types.js';

/** What one placement asks for (Nova's RequestSpec, reduced to what our filters read). */
export interface RequestSpec {
  /** "namespace/name", for logs. */
  instance: string;
  flavor: FlavorSnapshot;
  /** resourcesOf(flavor). */
  resources: ResourceAmounts;
  /** Matched against the host label topology.kubernetes.io/zone (ZONE_LABEL). */
  availabilityZone?: string;
  /** spec.host or Migration targetHost. */
  forcedHost?: string;
  /** Hosts already tried, and the source host of a migration. */
  ignoreHosts: string[];
  /** Nova's setup_instance_group: the group's policy and where its other members are. */
  group?: ServerGroupRequest;
}

export interface ServerGroupRequest {
  name: string;
  policy: 'affinity' | 'anti-affinity' | 'soft-affinity' | 'soft-anti-affinity';
  /** Hosts of the other members, one entry per member (a host may repeat). */
  memberHosts: string[];
}
