import type { HostFilter } from './filter.js';
import { PASS, fail } from './filter.js';

/** Nova's ServerGroupAffinityFilter: once a member has landed, the rest follow it to that host. */
export const ServerGroupAffinityFilter: HostFilter = {
  name: 'ServerGroupAffinityFilter',
  passes(host, request) {
    const group = request.group;
    if (group?.policy !== 'affinity' || group.memberHosts.length === 0) return PASS;
    if (group.memberHosts.includes(host.name)) return PASS;
    return fail(
      `server group ${group.name} (affinity) has its members on ${[...new Set(group.memberHosts)].join(', ')}`,
    );
  },
};
