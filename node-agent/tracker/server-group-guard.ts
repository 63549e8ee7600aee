// Nova's _validate_instance_group_policy on the compute host: a hard server group policy is
// checked again under the host's claim lock, against the claims this host holds, catching
// members placed by schedulers that could not see each other. Boots (instance_claim) and
// migration destinations (resize_claim) run the same check.
import type { Claim, Instance } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';

/** A placement rule checked under the host's lock: the reason to refuse, or undefined. */
export type ClaimGuard = (existing: Claim[]) => string | undefined;

export interface GuardContext {
  host: string;
  kube: KubeClient;
  instances: ObjectCache<'Instance'>;
}

/**
 * The guard for claiming `inst` on this host, or undefined when it belongs to no group with a
 * hard policy. The instance itself never counts as a member in its own way: its own claims on
 * this host (a same-host resize keeps the old claim beside the new one) are not a conflict.
 */
export async function serverGroupGuard(ctx: GuardContext, inst: Instance): Promise<ClaimGuard | undefined> {
  const name = inst.spec.serverGroup;
  if (!name) return undefined;
  const namespace = inst.metadata.namespace;
  const group = await ctx.kube.serverGroups.get({ namespace, name });
  const policy = group?.spec.policy;
  const self = `${namespace}/${inst.metadata.name}`;
  const members = new Set(group?.status?.members ?? []);
  // A claim here is an instance this host's view holds; the group's member list covers one it
  // does not (yet) show.
  const memberOf = (key: string | undefined) => {
    if (!key || key === self) return false;
    const [ns, n] = key.split('/');
    return ns === namespace && (ctx.instances.get(n ?? '', ns)?.spec.serverGroup === name || members.has(n ?? ''));
  };
  if (policy === 'anti-affinity') {
    return (claims) => {
      const other = claims.find((c) => memberOf(c.instance));
      return other
        ? `server group ${name} (anti-affinity): member ${other.instance} already holds this host`
        : undefined;
    };
  }
  if (policy === 'affinity') {
    // This host's view holds only the instances that involve it: members elsewhere are found by
    // the group's member list too, read when the view does not show them.
    const inView = ctx.instances.list(namespace).filter((m) => m.spec.serverGroup === name);
    const others = [...new Set([...inView.map((m) => m.metadata.name), ...(group?.status?.members ?? [])])];
    let elsewhere: Instance | undefined;
    for (const member of others) {
      if (member === inst.metadata.name) continue;
      const m = ctx.instances.get(member, namespace) ?? (await ctx.kube.instances.get({ namespace, name: member }));
      if (
        m?.spec.serverGroup === name &&
        m.status?.host &&
        m.status.host !== ctx.host &&
        m.status.vmState !== 'error'
      ) {
        elsewhere = m;
        break;
      }
    }
    return () =>
      elsewhere
        ? `server group ${name} (affinity): member ${elsewhere.metadata.name} runs on ${elsewhere.status?.host}`
        : undefined;
  }
  return undefined;
}
