// What the scheduler knows about one compute host: a snapshot of its ComputeNode status plus the
// placements this scheduler has made there that the node has not yet reported (see in-flight.ts).
import type { ComputeNode, ResourceAmounts, Resources } from '../../common/api/types.js';
import { add, subtract } from '../../common/api/flavor.js';
import type { HeartbeatClock } from '../nodehealth/heartbeat-clock.js';

export interface HostState {
  name: string;
  labels: Record<string, string>;
  disabled: boolean;
  /** The admin declared the host dead and fenced (ComputeNode spec.forcedDown): never a destination. */
  forcedDown?: boolean;
  /** Ready condition True and heartbeat fresh. */
  ready: boolean;
  /** From status.allocatable (ratio and reserved already applied by the agent). */
  allocatable: ResourceAmounts;
  /** status.allocated PLUS the scheduler's own in-flight placements. */
  allocated: ResourceAmounts;
}

// A node that has not reported a resource yet has none of it to offer: 0, never "unlimited".
function amounts(r: Resources | undefined): ResourceAmounts {
  return { vcpus: r?.vcpus ?? 0, memoryMiB: r?.memoryMiB ?? 0, diskGiB: r?.diskGiB ?? 0 };
}

// The Ready condition alone can lie: an agent that died cannot set it to False, so a silent
// agent counts as not ready (Nova's servicegroup "is_up" check on the service report time).
function isReady(node: ComputeNode, heartbeats: HeartbeatClock): boolean {
  const readyCondition = node.status?.conditions?.find((c) => c.type === 'Ready');
  if (readyCondition?.status !== 'True' || node.status?.heartbeatTime === undefined) return false;
  return !heartbeats.isSilent(node);
}

export function hostStateFrom(node: ComputeNode, heartbeats: HeartbeatClock, inFlight?: ResourceAmounts): HostState {
  const reported = amounts(node.status?.allocated);
  return {
    name: node.metadata.name,
    labels: { ...(node.metadata.labels ?? {}) },
    disabled: node.spec.disabled === true,
    forcedDown: node.spec.forcedDown === true,
    ready: isReady(node, heartbeats),
    allocatable: amounts(node.status?.allocatable),
    allocated: inFlight ? add(reported, inFlight) : reported,
  };
}

/** allocatable - allocated; negative when a node is over-committed (e.g. after an allocation-ratio cut). */
export function free(host: HostState): ResourceAmounts {
  return subtract(host.allocatable, host.allocated);
}
