// Nova's setup_instance_group: who else is in an instance's server group and where they
// run (or are being placed), from the watch-fed caches.
import type { Instance, ServerGroup } from '../../common/api/types.js';
import type { ObjectCache } from '../../common/kube/api.js';
import { Mutex } from '../../common/runtime/mutex.js';
import type { ServerGroupRequest } from '../scheduler/request.js';

/** The host an instance holds or is being placed on, if any. */
export function placedOn(inst: Instance): string | undefined {
  const s = inst.status ?? {};
  if (s.vmState === 'error' || inst.metadata.deletionTimestamp) return undefined;
  return s.host ?? (s.taskState === 'scheduling' ? s.scheduling?.selectedHost : undefined);
}

export function membersOf(instances: readonly Instance[], group: ServerGroup): Instance[] {
  return instances.filter((i) => i.spec.serverGroup === group.metadata.name && !i.metadata.deletionTimestamp);
}

export class ServerGroups {
  private readonly locks = new Map<string, Mutex>();

  constructor(
    private readonly groups: ObjectCache<'ServerGroup'>,
    private readonly instances: ObjectCache<'Instance'>,
    /** Where this operator just placed a consumer that no status shows yet. */
    private readonly pendingHostOf: (uid: string) => string | undefined = () => undefined,
  ) {}

  /**
   * Runs one member's placement at a time per group, so members booted together each see
   * where the others went (workers would otherwise place them in parallel, blind).
   */
  serialize<T>(inst: Instance, fn: () => Promise<T>): Promise<T> {
    const name = inst.spec.serverGroup;
    if (!name) return fn();
    const key = `${inst.metadata.namespace}/${name}`;
    let lock = this.locks.get(key);
    if (!lock) this.locks.set(key, (lock = new Mutex()));
    return lock.run(fn);
  }

  /**
   * The group part of a placement request for `inst` (its own placement excluded), or a
   * message when the group it names does not exist.
   */
  requestFor(inst: Instance): { group?: ServerGroupRequest; missing?: string } {
    const name = inst.spec.serverGroup;
    if (!name) return {};
    const group = this.groups.get(name, inst.metadata.namespace);
    if (!group)
      return {
        missing: `server group ${name} does not exist in namespace ${inst.metadata.namespace}; create it or boot without spec.serverGroup`,
      };
    const memberHosts = membersOf(this.instances.list(inst.metadata.namespace), group)
      .filter((m) => m.metadata.uid !== inst.metadata.uid)
      .map((m) => placedOn(m) ?? this.pendingHostOf(m.metadata.uid ?? ''))
      .filter((h): h is string => Boolean(h));
    return { group: { name, policy: group.spec.policy, memberHosts } };
  }
}
