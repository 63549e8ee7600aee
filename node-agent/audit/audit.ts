// Nova's update_available_resource: rebuild this host's usage from the driver's real
// domains and the live instances, and heal drift. A claim is freed only when no task can
// still need it (its instance is gone or lives elsewhere, and it is older than the grace
// period that covers the gap between a claim and the status write that follows it). A domain
// is destroyed only when a live read confirms its instance is gone, never because a lagging
// cache does not show it yet.
import { resourcesOf } from '../../common/api/flavor.js';
import { isTerminal } from '../../common/api/lifecycle.js';
import { EventReason } from '../../common/api/reasons.js';
import type { Claim, Instance, Migration } from '../../common/api/types.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import type { Logger } from '../../common/log.js';
import type { VirtDriver } from '../driver/driver.js';
import type { ResourceTracker } from '../tracker/resource-tracker.js';

export interface AuditResult {
  freedClaims: string[];
  adoptedDomains: string[];
  destroyedDomains: string[];
  unclaimedDomains: string[];
  discardedTransfers: string[];
}

export class Auditor {
  constructor(
    private readonly host: string,
    /** For live reads: the cache alone never condemns a domain. */
    private readonly kube: KubeClient,
    private readonly tracker: ResourceTracker,
    private readonly driver: VirtDriver,
    private readonly instances: ObjectCache<'Instance'>,
    private readonly migrationsInformer: ObjectCache<'Migration'>,
    private readonly events: EventRecorder,
    private readonly graceMs: number,
    private readonly log: Logger,
    /** Migration UIDs with something staged by the transfer server, and how to drop one. */
    private readonly staged: () => Promise<string[]> = async () => [],
    private readonly discardStaged: (uid: string) => Promise<void> = async () => undefined,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Whether a live task needs this claim on this host. */
  private needs(claim: Claim, byUid: Map<string, Instance>, migrations: Map<string, Migration>): boolean {
    if (claim.kind === 'migration') {
      const m = migrations.get(claim.consumer);
      if (!m || m.metadata.deletionTimestamp || isTerminal(m.status?.status)) return false;
      return m.status?.destHost === this.host || m.status?.scheduling?.selectedHost === this.host;
    }
    const inst = byUid.get(claim.consumer);
    if (!inst || inst.metadata.deletionTimestamp) return false;
    const s = inst.status ?? {};
    if (s.host === this.host || (s.taskState === 'scheduling' && s.scheduling?.selectedHost === this.host)) return true;
    // The source keeps the old claim until the resize is confirmed or reverted.
    const m = s.migration ? migrations.get(this.migrationUid(inst, s.migration)) : undefined;
    return m?.status?.sourceHost === this.host;
  }

  /**
   * The instance of a domain the cache does not show, read from the API server: 'gone' only
   * when the API server confirms it (not found, or its name now belongs to another instance);
   * 'unknown' when the read fails or the domain's name says nothing to read.
   */
  private async liveInstance(domain: { uid: string; name: string }): Promise<Instance | 'gone' | 'unknown'> {
    const slash = domain.name.indexOf('/');
    if (slash <= 0 || slash === domain.name.length - 1) return 'unknown';
    const ref = { namespace: domain.name.slice(0, slash), name: domain.name.slice(slash + 1) };
    try {
      const live = await this.kube.instances.get(ref);
      return live && live.metadata.uid === domain.uid ? live : 'gone';
    } catch (err) {
      this.log.warn({ step: 'audit', domain: domain.uid, err: (err as Error).message }, 'cannot read instance');
      return 'unknown';
    }
  }

  private migrationUid(inst: Instance, name: string): string {
    return this.migrationsInformer.get(name, inst.metadata.namespace)?.metadata.uid ?? '';
  }

  run(): Promise<AuditResult> {
    return this.tracker.lock.run(async () => {
      const result: AuditResult = {
        freedClaims: [],
        adoptedDomains: [],
        destroyedDomains: [],
        unclaimedDomains: [],
        discardedTransfers: [],
      };
      const now = this.now().getTime();
      const byUid = new Map(this.instances.list().map((i) => [i.metadata.uid ?? '', i]));
      const migrations = new Map(this.migrationsInformer.list().map((m) => [m.metadata.uid ?? '', m]));
      const young = (createdAt: string | undefined) =>
        createdAt !== undefined && now - Date.parse(createdAt) < this.graceMs;
      const domains = await this.driver.list();
      // A claim whose domain is still here stays until the domain goes (stale-copies.ts and the
      // deletion destroy a copy first, then drop its claims): no moment may show a domain without
      // a claim. On a destination that is the migration's claim until the confirm converts it, also
      // when the Migration is going away with its deleted instance.
      const onDisk = new Set(domains.flatMap((d) => [d.uid, d.name]));
      const keep: Claim[] = [];
      for (const claim of this.tracker.claims()) {
        const inst = byUid.get(claim.consumer);
        if (
          this.needs(claim, byUid, migrations) ||
          (claim.kind === 'instance' && onDisk.has(claim.consumer)) ||
          (claim.kind === 'migration' && claim.instance !== undefined && onDisk.has(claim.instance)) ||
          young(claim.createdAt) ||
          (inst?.metadata.deletionTimestamp && inst.status?.host === this.host)
        ) {
          keep.push(claim);
        } else {
          result.freedClaims.push(claim.consumer);
        }
      }
      // A domain is covered by its instance's claim or, on a destination, by its migration's.
      const claimed = new Set(keep.flatMap((c) => [c.consumer, ...(c.instance ? [c.instance] : [])]));
      for (const domain of domains) {
        if (claimed.has(domain.uid) || claimed.has(domain.name)) continue;
        let inst = byUid.get(domain.uid);
        if (!inst) {
          // Missing from the cache: it may only lag behind. Ask the API server before judging.
          const live = await this.liveInstance(domain);
          if (live === 'unknown') {
            result.unclaimedDomains.push(domain.uid);
            continue;
          }
          if (live !== 'gone') byUid.set(domain.uid, (inst = live));
        }
        if (inst && inst.status?.host === this.host && !inst.metadata.deletionTimestamp) {
          keep.push({
            consumer: domain.uid,
            kind: 'instance',
            instance: domain.name,
            ...resourcesOf(domain.flavor),
            createdAt: new Date(now).toISOString(),
          });
          result.adoptedDomains.push(domain.uid);
        } else if (!inst) {
          // A domain whose instance the API server says no longer exists (Nova's
          // running_deleted_instance_action=reap).
          await this.driver.destroy(domain.uid);
          result.destroyedDomains.push(domain.uid);
        } else {
          result.unclaimedDomains.push(domain.uid);
        }
      }
      if (result.freedClaims.length || result.adoptedDomains.length) {
        await this.tracker.replaceClaimsLocked(keep);
        this.log.warn({ ...result, step: 'audit' }, 'audit healed drift');
        for (const uid of [...result.freedClaims, ...result.adoptedDomains]) {
          const inst = byUid.get(uid);
          if (inst)
            this.events.record(
              inst,
              'Warning',
              EventReason.AuditHealed,
              `resource audit on ${this.host} corrected the claim for this instance`,
            );
        }
      }
      for (const uid of await this.staged()) {
        if (!migrations.has(uid)) {
          await this.discardStaged(uid);
          result.discardedTransfers.push(uid);
        }
      }
      if (result.destroyedDomains.length)
        this.log.warn(
          { destroyed: result.destroyedDomains, step: 'audit' },
          'audit reaped domains of deleted instances',
        );
      return result;
    });
  }
}
