// The checks Nova's API makes before a resize or migration starts (compute/api.py resize
// and check_instance_state). Pure functions, so each refusal reads the same everywhere.
import type { Flavor, FlavorSnapshot, Instance } from '../../common/api/types.js';

export type Check = { ok: true } | { ok: false; message: string };
const OK: Check = { ok: true };
const refuse = (message: string): Check => ({ ok: false, message });

/** Only an active or stopped instance with no task running can move (Nova's 409). */
export function checkInstanceMovable(inst: Instance, migrationName?: string): Check {
  const s = inst.status ?? {};
  if (s.migration && s.migration !== migrationName) {
    return refuse(`instance ${inst.metadata.name} already has migration ${s.migration} in progress; confirm, revert or wait for it first`);
  }
  if (s.taskState && !(migrationName && s.migration === migrationName)) {
    return refuse(`instance ${inst.metadata.name} is busy with task ${s.taskState}; wait until status.taskState is empty and try again`);
  }
  if (s.vmState !== 'active' && s.vmState !== 'stopped' && !(migrationName && s.migration === migrationName)) {
    return refuse(`instance ${inst.metadata.name} is ${s.vmState ?? 'not yet built'}; only active or stopped instances can be resized or migrated`);
  }
  if (!s.host || !s.flavor) return refuse(`instance ${inst.metadata.name} has no host yet; only a booted instance can be resized or migrated`);
  return OK;
}

/** Nova's resize flavor checks: exists, enabled, differs, and the root disk does not shrink. */
export function checkResizeFlavor(current: FlavorSnapshot, wantedName: string, wanted: Flavor | undefined): Check {
  if (!wanted) return refuse(`flavor ${wantedName} does not exist; create it or pick another (kubectl get flv)`);
  if (wanted.spec.disabled) return refuse(`flavor ${wantedName} is disabled; pick another flavor`);
  if (wantedName === current.name) return refuse(`instance already has flavor ${wantedName}; pick a different flavor to resize`);
  if (current.rootDiskGiB > 0 && wanted.spec.rootDiskGiB === 0) {
    return refuse(`flavor ${wantedName} has a zero root disk and the instance has ${current.rootDiskGiB} GiB; a sized disk cannot resize to a zero-disk flavor`);
  }
  if (wanted.spec.rootDiskGiB < current.rootDiskGiB) {
    return refuse(`flavor ${wantedName} has a ${wanted.spec.rootDiskGiB} GiB root disk, smaller than the instance's ${current.rootDiskGiB} GiB; root disks cannot shrink`);
  }
  return OK;
}
