// Which Migrations keep a host's copy of an instance (its domain, disk, `<uid>_resize` backup
// and claim) when the instance itself no longer runs there. Both passes that give such copies
// back, the stale-copy clean-up and the judgement of an instance that left this host's watch,
// ask the same question, so a copy an admin still needs survives both.
import { isTerminal } from '../../common/api/lifecycle.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';

/**
 * Whether `m` keeps `host`'s copy of `inst`: it has not ended and involves the host (the copy
 * or claim may be in use), or it ended in error leaving the instance in error with its files
 * kept on both its hosts for an admin (migration/shared.ts `strand`), until the instance is
 * deleted. From the deletion on, such a copy is stale: the host the instance no longer runs
 * on does not watch it, so this pass is what gives that copy and its claim back, and the
 * instance's finalizer waits for it.
 */
export function keepsCopyOn(host: string, m: Migration, inst: Instance): boolean {
  const s = m.status ?? {};
  const names = s.sourceHost === host || s.destHost === host;
  if (isTerminal(s.status)) {
    const stranded = s.status === 'error' && inst.status?.vmState === 'error';
    return stranded && names && !inst.metadata.deletionTimestamp;
  }
  return names || s.scheduling?.selectedHost === host;
}

/**
 * The live API's word: whether a Migration of `inst` keeps `host`'s copy. The candidates are
 * the instance's current migration and those of this host's view that name it (an ended
 * Migration is no longer named by its instance); each is read live before it counts.
 */
export async function liveMigrationKeepsCopy(
  host: string,
  kube: KubeClient,
  migrations: ObjectCache<'Migration'>,
  inst: Instance,
): Promise<boolean> {
  const namespace = inst.metadata.namespace;
  const names = new Set(
    migrations
      .list(namespace)
      .filter((m) => m.spec.instance === inst.metadata.name)
      .map((m) => m.metadata.name),
  );
  if (inst.status?.migration) names.add(inst.status.migration);
  for (const name of names) {
    const m = await kube.migrations.get({ namespace, name });
    if (m && m.spec.instance === inst.metadata.name && keepsCopyOn(host, m, inst)) return true;
  }
  return false;
}
