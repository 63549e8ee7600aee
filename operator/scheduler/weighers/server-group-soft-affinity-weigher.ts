import type { HostWeigher } from './weigher.js';

/**
 * Nova's ServerGroupSoftAffinityWeigher and SoftAntiAffinityWeigher in one: more members on
 * a host weigh more for soft-affinity and less for soft-anti-affinity; other groups are not weighed.
 */
export const ServerGroupSoftAffinityWeigher: HostWeigher = {
  name: 'ServerGroupSoftAffinityWeigher',
  configKey: 'softAffinityWeightMultiplier',
  rawWeight(host, request) {
    const group = request.group;
    if (!group) return 0;
    const members = group.memberHosts.filter((h) => h === host.name).length;
    if (group.policy === 'soft-affinity') return members;
    if (group.policy === 'soft-anti-affinity') return -members;
    return 0;
  },
};
