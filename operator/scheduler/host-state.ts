// What the scheduler knows about one compute host: a snapshot of its ComputeNode status plus the
// placements this scheduler has made there that the node has not yet reported (see in-flight.ts).
import type { ComputeNode, ResourceAmounts, Resources } from '../../common/api/types.js';
import { add, subtract } from '../../common/api/flavor.js';
import { heartbeatMs, type HeartbeatClock } from '../nodehealth/heartbeat-clock.js';

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

/** What a ComputeNode object says, read once: the scheduler looks at every node on each decision. */
interface NodeReading {
  labels: Record<string, string>;
  readyCondition: boolean;
  heartbeatMs: number;
  allocatable: ResourceAmounts;
  reported: ResourceAmounts;
}

// Keyed by the object: the caches replace a node's object on each change and never change one
// in place, so a reading lives as long as the object it was read from.
const readings = new WeakMap<ComputeNode, NodeReading>();

function readingOf(node: ComputeNode): NodeReading {
  let reading = readings.get(node);
  if (!reading) {
    reading = {
      labels: Object.freeze({ ...(node.metadata.labels ?? {}) }),
      readyCondition: node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True',
      heartbeatMs: heartbeatMs(node),
      allocatable: Object.freeze(amounts(node.status?.allocatable)),
      reported: Object.freeze(amounts(node.status?.allocated)),
    };
    readings.set(node, reading);
  }
  return reading;
}

// The Ready condition alone can lie: an agent that died cannot set it to False, so a silent
// agent counts as not ready (Nova's servicegroup "is_up" check on the service report time).
function isReady(host: string, reading: NodeReading, heartbeats: HeartbeatClock): boolean {
  if (!reading.readyCondition) return false;
  const beatMs = heartbeats.lastBeatMs(host, reading.heartbeatMs);
  return Number.isFinite(beatMs) && !heartbeats.isSilentSince(beatMs);
}

export function hostStateFrom(node: ComputeNode, heartbeats: HeartbeatClock, inFlight?: ResourceAmounts): HostState {
  const reading = readingOf(node);
  return {
    name: node.metadata.name,
    labels: reading.labels,
    disabled: node.spec.disabled === true,
    forcedDown: node.spec.forcedDown === true,
    ready: isReady(node.metadata.name, reading, heartbeats),
    allocatable: reading.allocatable,
    allocated: inFlight ? add(reading.reported, inFlight) : reading.reported,
  };
}

/** allocatable - allocated; negative when a node is over-committed (e.g. after an allocation-ratio cut). */
export function free(host: HostState): ResourceAmounts {
  return subtract(host.allocatable, host.allocated);
}
