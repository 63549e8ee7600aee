import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { ComputeFilter } from './compute-filter.js';

describe('ComputeFilter', () => {
  it('passes a ready, enabled host', () => {
    expect(ComputeFilter.passes(aHost({ name: 'a' }), aRequest())).toEqual({ pass: true });
  });

  it('rejects a disabled host and says it is disabled', () => {
    expect(ComputeFilter.passes(aHost({ name: 'a', disabled: true }), aRequest())).toEqual({
      pass: false,
      reason: 'host is disabled',
    });
  });

  it('rejects a host that is not ready and says it is not ready', () => {
    expect(ComputeFilter.passes(aHost({ name: 'a', ready: false }), aRequest())).toEqual({
      pass: false,
      reason: 'host is not ready (Ready condition not True or heartbeat stale)',
    });
  });

  it('names disabled, the admin decision, when a host is both disabled and not ready', () => {
    expect(ComputeFilter.passes(aHost({ name: 'a', disabled: true, ready: false }), aRequest())).toEqual({
      pass: false,
      reason: 'host is disabled',
    });
  });

  it('rejects a forced-down host and says it is forced down, even when it is also disabled and not ready', () => {
    const reason = 'host is forced down (ComputeNode spec.forcedDown)';
    expect(ComputeFilter.passes(aHost({ name: 'a', forcedDown: true }), aRequest())).toEqual({ pass: false, reason });
    expect(
      ComputeFilter.passes(aHost({ name: 'a', forcedDown: true, disabled: true, ready: false }), aRequest()),
    ).toEqual({ pass: false, reason });
  });
});
