// Keeps each ServerGroup's status.members and status.hosts true to its Instances.
import type { Kube } from '../../common/kube/client.js';
import type { Informer } from '../../common/kube/informer.js';
import { splitKey, type ReconcileResult } from '../../common/runtime/controller.js';
import { membersOf } from './membership.js';

export class ServerGroupStatus {
  constructor(
    private readonly kube: Kube,
    private readonly groups: Informer<'ServerGroup'>,
    private readonly instances: Informer<'Instance'>,
  ) {}

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const group = this.groups.get(name, namespace);
    if (!group) return {};
    const members = membersOf(this.instances.list(namespace), group);
    const names = members.map((m) => m.metadata.name).sort();
    const hosts = [...new Set(members.map((m) => m.status?.host).filter((h): h is string => Boolean(h)))].sort();
    if (JSON.stringify(names) === JSON.stringify(group.status?.members ?? []) && JSON.stringify(hosts) === JSON.stringify(group.status?.hosts ?? [])) return {};
    await this.kube.serverGroups.patchStatus(group, { members: names, hosts });
    return {};
  }
}
