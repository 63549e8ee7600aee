// Nova's _destroy_evacuated_instances: a host that comes back after it was declared dead may
// still hold copies of instances that were deleted meanwhile (a local delete) or rebuilt on
// another host (an evacuation). Counting them would take capacity twice, and starting them
// would run one guest twice. So when the agent starts, and with each audit pass, every
// domain (with its `<uid>_resize` backup) and every instance claim on this host whose
// Instance is gone, or now lives on another host with no live Migration naming this one as
// source or destination, is destroyed and its claim dropped, with a StaleCopyDestroyed Event.
// A migration that ended by stranding its instance in error keeps the files of both its hosts
// for an admin until the instance is deleted.
// So is the copy of a boot this host claimed (and perhaps spawned) that the conductor has given
// up on meanwhile (placed elsewhere, or failed, while this host could not report it).
//
// The caches only pick candidates, so a host with nothing stale makes no API call; each
// candidate is confirmed with a live read before anything is destroyed. Claims of kind
// migration whose Migration is gone or has ended are the audit's (audit/audit.ts).
import { EventReason } from '../../common/api/reasons.js';
import type { Instance } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import type { EventRecorder, EventTarget } from '../../common/kube/events.js';
import type { Logger } from '../../common/log.js';
import type { VirtDriver } from '../driver/driver.js';
import type { ResourceTracker } from '../tracker/resource-tracker.js';
import { keepsCopyOn, liveMigrationKeepsCopy } from './copy-keepers.js';

export interface StaleCopiesResult {
  /** Instance UIDs whose copy (domain, disk, backup) was destroyed here. */
  destroyed: string[];
  /** Instance UIDs whose claim was dropped from this host's ComputeNode. */
  droppedClaims: string[];
}

interface Candidate {
  uid: string;
  /** namespace/name of the Instance, from the domain or the claim. */
  name: string;
}

interface Stale extends Candidate {
  why: string;
  /** What the Event is recorded on: the live Instance, or a reference to the one that is gone. */
  target: EventTarget;
}

export class StaleCopies {
  constructor(
    private readonly host: string,
    private readonly kube: KubeClient,
    private readonly tracker: ResourceTracker,
    private readonly driver: VirtDriver,
    private readonly instances: ObjectCache<'Instance'>,
    private readonly migrations: ObjectCache<'Migration'>,
    private readonly events: EventRecorder,
    private readonly log: Logger,
  ) {}

  async run(): Promise<StaleCopiesResult> {
    const result: StaleCopiesResult = { destroyed: [], droppedClaims: [] };
    const candidates = await this.candidates();
    const stale: Stale[] = [];
    for (const candidate of candidates) {
      const confirmed = await this.confirm(candidate);
      if (confirmed) stale.push(confirmed);
    }
    if (stale.length === 0) return result;

    const destroyed = new Set<string>();
    await this.tracker.lock.run(async () => {
      for (const s of stale) {
        // A migration to this host has claimed the instance since: its destination owns what is here.
        if (this.tracker.holds((c) => c.kind === 'migration' && c.instance === s.name)) continue;
        // The copy goes before its claim, so no moment shows a domain without a claim.
        await this.driver.destroy(s.uid);
        destroyed.add(s.uid);
      }
      const claims = this.tracker.claims();
      const keep = claims.filter((c) => !(c.kind === 'instance' && destroyed.has(c.consumer)));
      result.droppedClaims = claims.filter((c) => !keep.includes(c)).map((c) => c.consumer);
      if (result.droppedClaims.length > 0) await this.tracker.replaceClaimsLocked(keep);
    });
    result.destroyed = [...destroyed];

    for (const s of stale.filter((x) => destroyed.has(x.uid))) {
      const dropped = result.droppedClaims.includes(s.uid) ? ' and dropped its claim' : '';
      const message = `node agent on ${this.host} destroyed its stale copy of ${s.name}${dropped}: ${s.why}`;
      this.log.warn({ instance: s.name, uid: s.uid, step: 'stale-copies' }, message);
      this.events.record(s.target, 'Normal', EventReason.StaleCopyDestroyed, message);
    }
    return result;
  }

  /** Domains and instance claims whose Instance the caches show gone or living elsewhere. */
  private async candidates(): Promise<Candidate[]> {
    const byUid = new Map(this.instances.list().map((i) => [i.metadata.uid ?? '', i]));
    const found = new Map<string, Candidate>();
    const consider = (uid: string, name: string | undefined) => {
      if (!name || found.has(uid) || !this.looksStale(byUid.get(uid))) return;
      found.set(uid, { uid, name });
    };
    for (const domain of await this.driver.list()) consider(domain.uid, domain.name);
    for (const claim of this.tracker.claims()) if (claim.kind === 'instance') consider(claim.consumer, claim.instance);
    return [...found.values()];
  }

  private looksStale(inst: Instance | undefined): boolean {
    if (!inst) return true;
    const host = inst.status?.host;
    if (host === this.host || (!host && this.placedHere(inst))) return false;
    return !this.migrations
      .list(inst.metadata.namespace)
      .some((m) => m.spec.instance === inst.metadata.name && keepsCopyOn(this.host, m, inst));
  }

  /** A boot the conductor still expects this host to claim and run (the current placement attempt is here). */
  private placedHere(inst: Instance): boolean {
    const s = inst.status ?? {};
    if (s.taskState !== 'scheduling' || s.scheduling?.selectedHost !== this.host) return false;
    return s.scheduling.claimFailure?.attempt !== s.scheduling.attempts;
  }

  /** The live API's word on a candidate: why it is stale, or undefined when it is not. */
  private async confirm(candidate: Candidate): Promise<Stale | undefined> {
    const slash = candidate.name.indexOf('/');
    const namespace = slash > 0 ? candidate.name.slice(0, slash) : 'default';
    const name = candidate.name.slice(slash + 1);
    const live = await this.kube.instances.get({ namespace, name });
    if (!live || live.metadata.uid !== candidate.uid) {
      return {
        ...candidate,
        why: 'the instance was deleted while this host was down',
        target: { kind: 'Instance', metadata: { name, namespace, uid: candidate.uid } },
      };
    }
    const host = live.status?.host;
    if (
      host === this.host ||
      (!host && this.placedHere(live)) ||
      (await liveMigrationKeepsCopy(this.host, this.kube, this.migrations, live))
    )
      return undefined;
    const why = host
      ? `the instance now runs on ${host}`
      : `its boot here was given up while this host could not report it (the instance is ${live.status?.vmState ?? 'not yet placed'})`;
    return { ...candidate, why, target: live };
  }
}
