// Nova's instance_claim / resize_claim as the agent answers a placement: claim on this host
// under its lock, or tell the conductor why not (scheduling.claimFailure for this attempt, and
// a ClaimFailed Event), so it can try elsewhere. Written once for boots and destinations.
import type { Claim, SchedulingStatus } from '../../common/api/types.js';
import type { EventTarget } from '../../common/kube/events.js';
import type { FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import { ClaimFailed } from './claims.js';
import type { ResourceTracker } from './resource-tracker.js';

export type ClaimFailureStatus = NonNullable<SchedulingStatus['claimFailure']>;

export interface PlacementClaim {
  target: EventTarget;
  scheduling: SchedulingStatus | undefined;
  claim: Claim;
  /** A placement rule checked under the host's lock (a server group's late check). */
  guard?: (existing: Claim[]) => string | undefined;
  /** Writes scheduling.claimFailure on the target. */
  report(failure: ClaimFailureStatus): Promise<unknown>;
}

export class PlacementClaims {
  constructor(
    private readonly tracker: ResourceTracker,
    private readonly faults: FaultRecorder,
  ) {}

  /** True when this host now holds the claim; false when it refused (now or for this attempt before). */
  async claimOrReport(p: PlacementClaim, log: Logger, step: string): Promise<boolean> {
    const attempt = p.scheduling?.attempts ?? 0;
    if (p.scheduling?.claimFailure?.attempt === attempt) return false;
    try {
      await this.tracker.claim(p.claim, p.guard);
      return true;
    } catch (err) {
      if (!(err instanceof ClaimFailed)) throw err;
      const failure = { host: this.tracker.host, attempt, message: err.message };
      await this.faults.record(err, () => p.report(failure), [{ target: p.target }], log.child({ attempt }), step);
      return false;
    }
  }
}
