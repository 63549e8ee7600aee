import type { HostFilter } from './filter.js';
import { PASS, fail } from './filter.js';

const PREFIX = 'node:';

/**
 * Nova's ComputeCapabilitiesFilter, scoped: only extra specs "node:<label>" are host
 * requirements; other keys belong to other consumers (the driver, quotas) and are ignored.
 */
export const ComputeCapabilitiesFilter: HostFilter = {
  name: 'ComputeCapabilitiesFilter',
  passes(host, request) {
    for (const [key, wanted] of Object.entries(request.flavor.extraSpecs ?? {})) {
      if (!key.startsWith(PREFIX)) continue;
      const label = key.slice(PREFIX.length);
      const actual = host.labels[label];
      if (actual === wanted) continue;
      const has = actual === undefined ? 'host has no such label' : `host has "${actual}"`;
      return fail(`flavor extra spec ${key} requires label ${label}="${wanted}", ${has}`);
    }
    return PASS;
  },
};
