import type { HostFilter } from './filter.js';
import { PASS, fail } from './filter.js';

/** Nova's ServerGroupAntiAffinityFilter: no two members of the group on one host. */
export const ServerGroupAntiAffinityFilter: HostFilter = {
  name: 'ServerGroupAntiAffinityFilter',
  passes(host, request) {
    const group = request.group;
    if (group?.policy !== 'anti-affinity' || !group.memberHosts.includes(host.name)) return PASS;
    return fail(`server group ${group.name} (anti-affinity) already has a member on ${host.name}`);
  },
};
