import type { HostFilter } from './filter.js';
import { PASS, fail } from './filter.js';

/** Nova's ComputeFilter: the host's service must be up, enabled and not forced down. */
export const ComputeFilter: HostFilter = {
  name: 'ComputeFilter',
  passes(host) {
    // The admin's deliberate choices come first, as the more useful reasons: a host declared dead
    // (Nova's forced_down, its instances being evacuated) even before a merely disabled one.
    if (host.forcedDown) return fail('host is forced down (ComputeNode spec.forcedDown)');
    if (host.disabled) return fail('host is disabled');
    if (!host.ready) return fail('host is not ready (Ready condition not True or heartbeat stale)');
    return PASS;
  },
};
