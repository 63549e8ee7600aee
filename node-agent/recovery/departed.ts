// An instance that left every one of this host's watches (host-watches.ts) while this host
// still holds something for it: a claim, a domain. Leaving a watch is not being deleted — the
// instance may only lag in the view, or be back with the scheduler — so nothing is given back
// on the view's word: the API server is read, and only when the live instance no longer counts
// on this host (gone, or neither running here, nor sent here to be claimed, nor kept here by a
// migration: one in progress that names this host, or one that ended in error stranding the
// instance with its files on both hosts for an admin) is the domain destroyed and the
// instance's claim freed, as a boot whose status write found the instance sent elsewhere gives
// them back.
//
// The case it exists for: a boot claimed and spawned here, but its active write failed (the API
// server was down) and meanwhile the conductor gave up on this host; the instance leaves the
// selectedHost watch and the boot's retry finds nothing in the view to write to. The source of
// a migration that moved the instance away sees it leave too, once the migration has ended.
import type { Instance } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import type { Logger } from '../../common/log.js';
import { splitKey, type ReconcileResult, type Reconciler } from '../../common/runtime/controller.js';
import type { VirtDriver } from '../driver/driver.js';
import type { ResourceTracker } from '../tracker/resource-tracker.js';
import { liveMigrationKeepsCopy } from './copy-keepers.js';

export class DepartedInstances implements Reconciler {
  /** namespace/name -> uid of an instance that left the view, until it is judged. */
  private readonly departed = new Map<string, string>();

  constructor(
    private readonly host: string,
    private readonly kube: KubeClient,
    private readonly instances: ObjectCache<'Instance'>,
    private readonly migrations: ObjectCache<'Migration'>,
    private readonly tracker: ResourceTracker,
    private readonly driver: VirtDriver,
    private readonly log: Logger,
  ) {}

  /**
   * Called when `inst` left the view: its key, to reconcile, when this host holds a claim for
   * it (a domain without a claim is the audit's and the stale-copy pass's).
   */
  left(inst: Instance): string | undefined {
    const uid = inst.metadata.uid ?? '';
    const key = `${inst.metadata.namespace}/${inst.metadata.name}`;
    if (!this.tracker.holds((c) => c.kind === 'instance' && (c.consumer === uid || c.instance === key))) return;
    this.departed.set(key, uid);
    return key;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const uid = this.departed.get(key);
    const { namespace, name } = splitKey(key);
    if (uid === undefined) return {};
    // Back in the view: its own controller has it.
    if (this.instances.get(name, namespace)) {
      this.departed.delete(key);
      return {};
    }
    const live = await this.kube.instances.get({ namespace, name });
    if (live && live.metadata.uid === uid && (await this.countsOnThisHost(live))) {
      this.departed.delete(key);
      return {};
    }
    await this.driver.destroy(uid);
    const freed = await this.tracker.releaseWhere((c) => c.kind === 'instance' && c.consumer === uid);
    this.departed.delete(key);
    this.log.info(
      { instance: key, step: 'departed', freed: freed.length, now: live?.status?.host ?? (live ? 'no host' : 'gone') },
      'instance no longer counts on this host: its domain destroyed and its claim freed',
    );
    return {};
  }

  private async countsOnThisHost(inst: Instance): Promise<boolean> {
    const s = inst.status ?? {};
    if (s.host === this.host) return true;
    const attempt = s.scheduling?.attempts;
    if (
      s.taskState === 'scheduling' &&
      s.scheduling?.selectedHost === this.host &&
      s.scheduling.claimFailure?.attempt !== attempt
    )
      return true;
    return liveMigrationKeepsCopy(this.host, this.kube, this.migrations, inst);
  }
}
