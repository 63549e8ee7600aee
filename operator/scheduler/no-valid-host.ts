import { Fault } from '../../common/api/faults.js';
import { FaultReason } from '../../common/api/reasons.js';
export interface FilterCount {
  filter: string;
  removed: number;
  remaining: number;
}

function describe(
  filterCounts: readonly FilterCount[],
  hostReasons: Record<string, string>,
  totalHosts: number,
): string {
  const parts = ['No valid host was found.'];
  if (totalHosts === 0) parts.push('There are no compute hosts.');
  if (filterCounts.length > 0) {
    // "removed N of M": M is what the filter was given, so the chain can be read left to right.
    // Filters that removed nothing are left out; they did not cause the failure.
    const steps = filterCounts
      .filter((c) => c.removed > 0)
      .map((c) => `${c.filter} removed ${c.removed} of ${c.removed + c.remaining}`);
    parts.push(`There are not enough hosts available. Filtering removed all hosts: ${steps.join(', ')}`);
  } else {
    // No filter ran (forced host): the per-host reasons are the whole story.
    parts.push(...Object.values(hostReasons));
  }
  return parts.join(' ');
}

/** Nova's NoValidHost, with the counts an operator needs to see why (Nova logs them; we keep them). */
export class NoValidHost extends Fault {
  constructor(
    readonly filterCounts: FilterCount[],
    /** host name -> "<FilterName>: <reason>" for the filter that removed it. */
    readonly hostReasons: Record<string, string>,
    readonly totalHosts: number,
  ) {
    super(FaultReason.NoValidHost, describe(filterCounts, hostReasons, totalHosts));
  }
}
