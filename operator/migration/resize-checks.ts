// The checks Nova's API makes before a resize or migration starts (compute/api.py resize
// and check_instance_state). Pure functions, so each refusal reads the same everywhere.
import { checkInstanceState, OK, refuse, type Check } from '../../common/api/instance-actions.js';
import type { Flavor, FlavorSnapshot, Instance } from '../../common/api/types.js';

export type { Check } from '../../common/api/instance-actions.js';

/** Only an active or stopped instance with no task running can move (Nova's 409). */
export function checkInstanceMovable(inst: Instance, migrationName?: string): Check {
  const allowed = checkInstanceState(inst, 'migrate', migrationName);
  if (!allowed.ok) return allowed;
  const s = inst.status ?? {};
  if (!s.host || !s.flavor) {
    return refuse(`instance ${inst.metadata.name} has no host yet; only a booted instance can be resized or migrated`);
  }
  return OK;
}

/** Nova's resize flavor checks: exists, enabled, differs, and the root disk does not shrink. */
export function checkResizeFlavor(current: FlavorSnapshot, wantedName: string, wanted: Flavor | undefined): Check {
  if (!wanted) return refuse(`flavor ${wantedName} does not exist; create it or pick another (kubectl get flv)`);
  if (wanted.spec.disabled) return refuse(`flavor ${wantedName} is disabled; pick another flavor`);
  if (wantedName === current.name)
    return refuse(`instance already has flavor ${wantedName}; pick a different flavor to resize`);
  if (current.rootDiskGiB > 0 && wanted.spec.rootDiskGiB === 0) {
    return refuse(
      `flavor ${wantedName} has a zero root disk and the instance has ${current.rootDiskGiB} GiB; a sized disk cannot resize to a zero-disk flavor`,
    );
  }
  if (wanted.spec.rootDiskGiB < current.rootDiskGiB) {
    return refuse(
      `flavor ${wantedName} has a ${wanted.spec.rootDiskGiB} GiB root disk, smaller than the instance's ${current.rootDiskGiB} GiB; root disks cannot shrink`,
    );
  }
  return OK;
}
