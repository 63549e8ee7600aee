// Keeps each ServerGroup's status.members and status.hosts true to its Instances.
import type { Instance } from '../../common/api/types.js';
import type { KubeClient, WatchedCache } from '../../common/kube/api.js';
import { objectKey, splitKey, type ReconcileResult, type Reconciler } from '../../common/runtime/controller.js';
import { membersOf } from './membership.js';

export class ServerGroupStatus implements Reconciler {
  constructor(
    private readonly kube: KubeClient,
    private readonly groups: WatchedCache<'ServerGroup'>,
    private readonly instances: WatchedCache<'Instance'>,
  ) {}

  /** A group is looked at when it appears and whenever one of its members changes. */
  watch(enqueue: (key: string) => void): void {
    const groupOf = (inst: Instance) => {
      if (inst.spec.serverGroup) enqueue(`${inst.metadata.namespace}/${inst.spec.serverGroup}`);
    };
    this.instances.on('add', groupOf);
    this.instances.on('update', groupOf);
    this.instances.on('delete', groupOf);
    this.groups.on('add', (g) => enqueue(objectKey(g)));
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const group = this.groups.get(name, namespace);
    if (!group) return {};
    const members = membersOf(this.instances.list(namespace), group);
    const names = members.map((m) => m.metadata.name).sort();
    const hosts = [...new Set(members.map((m) => m.status?.host).filter((h): h is string => Boolean(h)))].sort();
    if (
      JSON.stringify(names) === JSON.stringify(group.status?.members ?? []) &&
      JSON.stringify(hosts) === JSON.stringify(group.status?.hosts ?? [])
    )
      return {};
    await this.kube.serverGroups.patchStatus(group, { members: names, hosts });
    return {};
  }
}
