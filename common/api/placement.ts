// Where an Instance runs and which host's agent has it are one routing field for the agents:
// each host watches the Instances whose status.scheduling.selectedHost names it
// (node-agent/host-watches.ts), one watch rather than one on status.host as well, because
// kube-apiserver hands every Instance event to every open Instance watch (custom resources
// have no watch index) and a boot makes three. selectedHost is the scheduler's choice while
// an instance is placed; a write that places it on a host (a boot's claim, a migration's
// finish or rebuild, a revert back to the source) names that host in both fields at once, so
// an instance is never, even for one write, under neither watch of the host it runs on.
// A Migration's destination is found the same way: its selectedHost stays equal to destHost.
import type { MergePatch } from './patch.js';
import type { Instance, InstanceStatus, Migration } from './types.js';

/** The part of an Instance status write that places the instance on `host`. */
export function placedOn(host: string): Pick<MergePatch<InstanceStatus>, 'host' | 'scheduling'> {
  return { host, scheduling: { selectedHost: host } };
}

/**
 * The host `inst` runs on, when that host's agent does not watch it there: it was placed by a
 * version that wrote status.host alone (one moved by a migration still names its boot host).
 */
export function unwatchedHost(inst: Instance): string | undefined {
  const s = inst.status;
  return s?.host && s.scheduling?.selectedHost !== s.host ? s.host : undefined;
}

/**
 * A Migration's destination, when that host's agent does not watch it: each host watches the
 * Migrations whose status.sourceHost or status.scheduling.selectedHost names it, and selectedHost
 * stays equal to destHost from the destination's claim to the end. A version that cleared
 * selectedHost when a migration failed left a destination without its view of it.
 */
export function unwatchedDestination(mig: Migration): string | undefined {
  const s = mig.status;
  return s?.destHost && s.destHost !== s.sourceHost && s.scheduling?.selectedHost !== s.destHost
    ? s.destHost
    : undefined;
}
