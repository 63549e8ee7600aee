// What the conductor does next with a placement attempt, for a boot and for a migration's
// destination alike: wait for the chosen host's agent, retry after its failed claim (or
// after it went silent), or schedule.
import type { SchedulingStatus } from '../../common/api/types.js';

export type PlacementStep = { next: 'wait' } | { next: 'retry'; host: string; reason: string } | { next: 'schedule' };

export function placementStep(sched: SchedulingStatus | undefined, hostIsUsable: (host: string) => boolean, what: string): PlacementStep {
  const attempts = sched?.attempts ?? 0;
  const failure = sched?.claimFailure && sched.claimFailure.attempt === attempts ? sched.claimFailure : undefined;
  if (failure) return { next: 'retry', host: failure.host, reason: failure.message };
  if (!sched?.selectedHost) return { next: 'schedule' };
  // The agent of selectedHost owns the next step. If that host died meanwhile, Nova's
  // conductor would never hear back; we notice and move on.
  if (hostIsUsable(sched.selectedHost)) return { next: 'wait' };
  return { next: 'retry', host: sched.selectedHost, reason: `host ${sched.selectedHost} stopped responding before it claimed the ${what}` };
}
