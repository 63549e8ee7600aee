// Nova's update_available_resource: rebuild this host's usage from the driver's real
// domains and the live instances, and heal drift. A claim is freed only when no task can
// still need it (its instance is gone or lives elsewhere, and it is older than the grace
// period that covers the gap between a claim and the status write that follows it).
import { resourcesOf } from '../../common/api/flavor.js';
import { EventReason } from '../../common/api/reasons.js';
import type { Claim, Instance } from '../../common/api/types.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { Informer } from '../../common/kube/informer.js';
import type { Logger } from '../../common/log.js';
import type { VirtDriver } from '../driver/driver.js';
import type { ResourceTracker } from '../tracker/resource-tracker.js';

export interface AuditResult {
  freedClaims: string[];
  adoptedDomains: string[];
  destroyedDomains: string[];
  unclaimedDomains: string[];
}

export class Auditor {
  constructor(
    private readonly host: string,
    private readonly tracker: ResourceTracker,
    private readonly driver: VirtDriver,
    private readonly instances: Informer<'Instance'>,
    private readonly events: EventRecorder,
    private readonly graceMs: number,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Whether an instance's current step needs a claim of this kind on this host. */
  private needs(inst: Instance | undefined, claim: Claim): boolean {
    if (!inst || inst.metadata.deletionTimestamp) return false;
    const s = inst.status ?? {};
    if (claim.kind === 'instance') {
      return s.host === this.host || (s.taskState === 'scheduling' && s.scheduling?.selectedHost === this.host);
    }
    return false;
  }

  run(): Promise<AuditResult> {
    return this.tracker.lock.run(async () => {
      const result: AuditResult = { freedClaims: [], adoptedDomains: [], destroyedDomains: [], unclaimedDomains: [] };
      const now = this.now().getTime();
      const byUid = new Map(this.instances.list().map((i) => [i.metadata.uid ?? '', i]));
      const young = (createdAt: string | undefined) => createdAt !== undefined && now - Date.parse(createdAt) < this.graceMs;
      const keep: Claim[] = [];
      for (const claim of this.tracker.claims()) {
        const inst = byUid.get(claim.consumer);
        if (this.needs(inst, claim) || young(claim.createdAt) || (inst?.metadata.deletionTimestamp && inst.status?.host === this.host)) {
          keep.push(claim);
        } else {
          result.freedClaims.push(claim.consumer);
        }
      }
      const claimed = new Set(keep.map((c) => c.consumer));
      for (const domain of await this.driver.list()) {
        if (claimed.has(domain.uid)) continue;
        const inst = byUid.get(domain.uid);
        if (inst && inst.status?.host === this.host && !inst.metadata.deletionTimestamp) {
          keep.push({ consumer: domain.uid, kind: 'instance', instance: domain.name, ...resourcesOf(domain.flavor), createdAt: new Date(now).toISOString() });
          result.adoptedDomains.push(domain.uid);
        } else if (!inst) {
          // A domain whose instance no longer exists (Nova's running_deleted_instance_action=reap).
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
          if (inst) this.events.record(inst, 'Warning', EventReason.AuditHealed, `resource audit on ${this.host} corrected the claim for this instance`);
        }
      }
      if (result.destroyedDomains.length) this.log.warn({ destroyed: result.destroyedDomains, step: 'audit' }, 'audit reaped domains of deleted instances');
      return result;
    });
  }
}
