// Where an instance's ports are bound, from the instance and its active Migration: the one
// rule the binding controller applies. Neutron's port binding in a move, in our phases:
// - before a move and after it settles: bound to the host the guest runs on (status.host);
// - pre-migrating to post-migrating: still bound to the source, and "migrating" to the
//   destination (Neutron's binding profile migrating_to): its agent plugs the port there
//   before the guest starts (setup_networks_on_host);
// - finished (and confirming): bound to the destination, the guest runs there
//   (migrate_instance_finish);
// - reverting: bound to the destination, migrating back to the source, which plugs it before
//   the guest restarts there; reverted: bound to the source again.
// An evacuation is the same move off a fenced source; an instance not yet placed is unbound.
import type { Instance, Migration, PortBindingState } from '../../common/api/types.js';

export interface Binding {
  host: string;
  state: PortBindingState;
  migratingTo: string;
}

const bound = (host: string | undefined): Binding =>
  host ? { host, state: 'bound', migratingTo: '' } : { host: '', state: 'unbound', migratingTo: '' };

const moving = (from: string, to: string | undefined): Binding =>
  to && to !== from ? { host: from, state: 'migrating', migratingTo: to } : bound(from);

export function desiredBinding(inst: Instance, active: Migration | undefined): Binding {
  const host = inst.status?.host;
  const mig = active?.status;
  if (!host || !mig?.status) return bound(host);
  const source = mig.sourceHost ?? host;
  switch (mig.status) {
    case 'pre-migrating':
    case 'migrating':
    case 'post-migrating':
      return moving(source, mig.destHost);
    case 'finished':
    case 'confirming':
      return bound(mig.destHost ?? host);
    case 'reverting':
      return mig.destHost ? moving(mig.destHost, source) : bound(source);
    case 'confirmed':
    case 'reverted':
    case 'error':
      return bound(host);
  }
}

export const sameBinding = (a: Binding, b: Binding): boolean =>
  a.host === b.host && a.state === b.state && a.migratingTo === b.migratingTo;
