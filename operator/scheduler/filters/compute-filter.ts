import type { HostFilter } from './filter.js';
import { PASS, fail } from './filter.js';

/** Nova's ComputeFilter: the host's service must be up and enabled. */
export const ComputeFilter: HostFilter = {
  name: 'ComputeFilter',
  passes(host) {
    // Disabled is checked first: it is the admin's deliberate choice and the more useful reason.
    if (host.disabled) return fail('host is disabled');
    if (!host.ready) return fail('host is not ready (Ready condition not True or heartbeat stale)');
    return PASS;
  },
};
