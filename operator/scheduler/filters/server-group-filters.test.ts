import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { ServerGroupAffinityFilter } from './server-group-affinity-filter.js';
import { ServerGroupAntiAffinityFilter } from './server-group-anti-affinity-filter.js';

describe('server group filters', () => {
  const host = aHost({ name: 'node-a' });
  it('anti-affinity rejects a host that already has a member, naming the group', () => {
    const r = ServerGroupAntiAffinityFilter.passes(
      host,
      aRequest({ group: { name: 'web', policy: 'anti-affinity', memberHosts: ['node-a'] } }),
    );
    expect(r).toEqual({ pass: false, reason: 'server group web (anti-affinity) already has a member on node-a' });
  });
  it('anti-affinity accepts a host without members', () => {
    expect(
      ServerGroupAntiAffinityFilter.passes(
        host,
        aRequest({ group: { name: 'web', policy: 'anti-affinity', memberHosts: ['node-b'] } }),
      ),
    ).toEqual({ pass: true });
  });
  it('affinity follows the first member, and lets the first one go anywhere', () => {
    expect(
      ServerGroupAffinityFilter.passes(host, aRequest({ group: { name: 'db', policy: 'affinity', memberHosts: [] } })),
    ).toEqual({ pass: true });
    expect(
      ServerGroupAffinityFilter.passes(
        host,
        aRequest({ group: { name: 'db', policy: 'affinity', memberHosts: ['node-b'] } }),
      ),
    ).toEqual({ pass: false, reason: 'server group db (affinity) has its members on node-b' });
  });
  it('soft policies filter nothing', () => {
    expect(
      ServerGroupAntiAffinityFilter.passes(
        host,
        aRequest({ group: { name: 's', policy: 'soft-anti-affinity', memberHosts: ['node-a'] } }),
      ),
    ).toEqual({ pass: true });
  });
});
