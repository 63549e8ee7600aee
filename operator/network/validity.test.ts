import { describe, expect, it } from 'vitest';
import type { Network, NetworkSpec } from '../../common/api/types.js';
import { defaultNetwork, judge } from './validity.js';

const network = (name: string, spec: NetworkSpec, created = '2026-01-01T00:00:00Z'): Network => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Network',
  metadata: { name, creationTimestamp: new Date(created) },
  spec,
});

describe('a Network is judged against the others', () => {
  const first = network('blue', { cidr: '10.0.0.0/16', gateway: '10.0.0.1' }, '2026-01-01T00:00:00Z');
  const later = network('green', { cidr: '10.0.7.0/24', gateway: '10.0.7.1' }, '2026-01-02T00:00:00Z');

  it('the later of two overlapping Networks is invalid and names the other; the first stays valid', () => {
    const all = [first, later];
    expect(judge(first, all)).toEqual({ valid: true });
    const verdict = judge(later, all);
    expect(verdict).toMatchObject({ valid: false, reason: 'OverlappingCIDR' });
    expect(!verdict.valid && verdict.message).toMatch(/overlaps Network blue \(10\.0\.0\.0\/16\)/);
  });

  it('two created in the same second: the name decides, the same way on every replica', () => {
    const a = network('a', { cidr: '10.1.0.0/24', gateway: '10.1.0.1' });
    const b = network('b', { cidr: '10.1.0.0/24', gateway: '10.1.0.1' });
    expect(judge(a, [b, a]).valid).toBe(true);
    expect(judge(b, [b, a]).valid).toBe(false);
  });

  it('a backwards allocation range is invalid and says to swap the ends', () => {
    const net = network('r', {
      cidr: '10.2.0.0/24',
      gateway: '10.2.0.1',
      allocationRange: { start: '10.2.0.50', end: '10.2.0.10' },
    });
    expect(judge(net, [net])).toMatchObject({ valid: false, reason: 'InvalidAllocationRange' });
  });

  it('a range holding only the gateway is invalid', () => {
    const net = network('g', {
      cidr: '10.3.0.0/24',
      gateway: '10.3.0.1',
      allocationRange: { start: '10.3.0.1', end: '10.3.0.1' },
    });
    expect(judge(net, [net])).toMatchObject({ valid: false, reason: 'InvalidAllocationRange' });
  });
});

describe('the default network', () => {
  it('is the oldest valid Network marked default', () => {
    const old = network('old', { cidr: '10.4.0.0/24', gateway: '10.4.0.1', default: true }, '2026-01-01T00:00:00Z');
    const young = network('young', { cidr: '10.5.0.0/24', gateway: '10.5.0.1', default: true }, '2026-02-01T00:00:00Z');
    const plain = network('plain', { cidr: '10.6.0.0/24', gateway: '10.6.0.1' }, '2025-01-01T00:00:00Z');
    expect(defaultNetwork([young, plain, old])?.metadata.name).toBe('old');
    expect(defaultNetwork([plain])).toBeUndefined();
  });
});
