import { describe, expect, it } from 'vitest';
import { candidates, formatIp, overlaps, parseCidr, parseIp, poolOf, poolSize } from './ipv4.js';

describe('IPv4 arithmetic', () => {
  it('reads and writes dotted quads, the top bit included', () => {
    expect(formatIp(parseIp('10.251.0.7'))).toBe('10.251.0.7');
    expect(parseIp('255.255.255.255')).toBe(2 ** 32 - 1);
    expect(() => parseIp('10.0.0.256')).toThrow(/not an IPv4/);
    expect(() => parseIp('10.0.0')).toThrow(/not an IPv4/);
  });

  it('knows the network and broadcast address of a CIDR', () => {
    const c = parseCidr('10.251.0.0/24');
    expect([formatIp(c.base), formatIp(c.last), c.prefix]).toEqual(['10.251.0.0', '10.251.0.255', 24]);
  });

  it('sees overlap between a /16 and a /24 inside it, and none between neighbours', () => {
    expect(overlaps(parseCidr('10.0.0.0/16'), parseCidr('10.0.7.0/24'))).toBe(true);
    expect(overlaps(parseCidr('10.0.0.0/24'), parseCidr('10.0.1.0/24'))).toBe(false);
  });
});

describe('the allocation pool', () => {
  it('is the whole CIDR but network, broadcast and gateway by default', () => {
    const pool = poolOf({ cidr: '10.0.0.0/29', gateway: '10.0.0.1' });
    expect(poolSize(pool)).toBe(5);
    expect([...candidates(pool, undefined)].map(formatIp)).toEqual([
      '10.0.0.2',
      '10.0.0.3',
      '10.0.0.4',
      '10.0.0.5',
      '10.0.0.6',
    ]);
  });

  it('is the allocation range when one is given, the gateway left out only if inside it', () => {
    const outside = poolOf({
      cidr: '10.0.0.0/24',
      gateway: '10.0.0.1',
      allocationRange: { start: '10.0.0.10', end: '10.0.0.12' },
    });
    expect(poolSize(outside)).toBe(3);
    const inside = poolOf({
      cidr: '10.0.0.0/24',
      gateway: '10.0.0.11',
      allocationRange: { start: '10.0.0.10', end: '10.0.0.12' },
    });
    expect([...candidates(inside, undefined)].map(formatIp)).toEqual(['10.0.0.10', '10.0.0.12']);
  });

  it('goes round robin after the address handed out last, so a released one comes round last', () => {
    const pool = poolOf({ cidr: '10.0.0.0/29', gateway: '10.0.0.1' });
    expect([...candidates(pool, parseIp('10.0.0.4'))].map(formatIp)).toEqual([
      '10.0.0.5',
      '10.0.0.6',
      '10.0.0.2',
      '10.0.0.3',
      '10.0.0.4',
    ]);
  });

  it('is empty when the range is backwards', () => {
    const pool = poolOf({
      cidr: '10.0.0.0/24',
      gateway: '10.0.0.1',
      allocationRange: { start: '10.0.0.20', end: '10.0.0.10' },
    });
    expect(poolSize(pool)).toBe(0);
    expect([...candidates(pool, undefined)]).toEqual([]);
  });
});
