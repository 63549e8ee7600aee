import type { HostFilter } from './filter.js';
import { PASS, fail } from './filter.js';

/** Nova's retry bookkeeping (IgnoreHosts / the old RetryFilter): never offer a host twice. */
export const IgnoreHostsFilter: HostFilter = {
  name: 'IgnoreHostsFilter',
  passes(host, request) {
    return request.ignoreHosts.includes(host.name) ? fail('already tried') : PASS;
  },
};
