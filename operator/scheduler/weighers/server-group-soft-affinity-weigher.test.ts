import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { ServerGroupSoftAffinityWeigher } from './server-group-soft-affinity-weigher.js';

describe('server group soft affinity weigher', () => {
  const a = aHost({ name: 'node-a' });
  it('prefers hosts with more members for soft-affinity and fewer for soft-anti-affinity', () => {
    const members = ['node-a', 'node-a'];
    expect(
      ServerGroupSoftAffinityWeigher.rawWeight(
        a,
        aRequest({ group: { name: 'g', policy: 'soft-affinity', memberHosts: members } }),
      ),
    ).toBe(2);
    expect(
      ServerGroupSoftAffinityWeigher.rawWeight(
        a,
        aRequest({ group: { name: 'g', policy: 'soft-anti-affinity', memberHosts: members } }),
      ),
    ).toBe(-2);
    expect(ServerGroupSoftAffinityWeigher.rawWeight(a, aRequest())).toBe(0);
  });
});
