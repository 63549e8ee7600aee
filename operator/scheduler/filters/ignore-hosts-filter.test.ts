import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { IgnoreHostsFilter } from './ignore-hosts-filter.js';

describe('IgnoreHostsFilter', () => {
  it('rejects a host the request already tried, saying so', () => {
    expect(IgnoreHostsFilter.passes(aHost({ name: 'a' }), aRequest({ ignoreHosts: ['a'] }))).toEqual({
      pass: false,
      reason: 'already tried',
    });
  });

  it('passes a host not in ignoreHosts', () => {
    expect(IgnoreHostsFilter.passes(aHost({ name: 'b' }), aRequest({ ignoreHosts: ['a'] }))).toEqual({ pass: true });
  });
});
