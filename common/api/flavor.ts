import type { Flavor, FlavorSnapshot, ResourceAmounts } from './types.js';

/** What a flavor asks of a host: Nova counts root plus ephemeral disk against the host's disk. */
export function resourcesOf(
  flavor: Pick<FlavorSnapshot, 'vcpus' | 'memoryMiB' | 'rootDiskGiB' | 'ephemeralDiskGiB'>,
): ResourceAmounts {
  return {
    vcpus: flavor.vcpus,
    memoryMiB: flavor.memoryMiB,
    diskGiB: flavor.rootDiskGiB + (flavor.ephemeralDiskGiB ?? 0),
  };
}

/** The copy of a flavor an instance keeps, so later edits or deletion of the Flavor do not change it. */
export function snapshotOf(flavor: Flavor): FlavorSnapshot {
  const snap: FlavorSnapshot = {
    name: flavor.metadata.name,
    vcpus: flavor.spec.vcpus,
    memoryMiB: flavor.spec.memoryMiB,
    rootDiskGiB: flavor.spec.rootDiskGiB,
    ephemeralDiskGiB: flavor.spec.ephemeralDiskGiB ?? 0,
  };
  if (flavor.spec.extraSpecs && Object.keys(flavor.spec.extraSpecs).length > 0)
    snap.extraSpecs = { ...flavor.spec.extraSpecs };
  return snap;
}

export const ZERO: ResourceAmounts = Object.freeze({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });

export function add(a: ResourceAmounts, b: ResourceAmounts): ResourceAmounts {
  return { vcpus: a.vcpus + b.vcpus, memoryMiB: a.memoryMiB + b.memoryMiB, diskGiB: a.diskGiB + b.diskGiB };
}

export function subtract(a: ResourceAmounts, b: ResourceAmounts): ResourceAmounts {
  return { vcpus: a.vcpus - b.vcpus, memoryMiB: a.memoryMiB - b.memoryMiB, diskGiB: a.diskGiB - b.diskGiB };
}
