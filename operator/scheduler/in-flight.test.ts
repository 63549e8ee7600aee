import { describe, expect, it } from 'vitest';
import { API_VERSION } from '../../common/api/types.js';
import type { Claim, ComputeNode } from '../../common/api/types.js';
import { InFlightPlacements } from './in-flight.js';

const small = { vcpus: 1, memoryMiB: 2048, diskGiB: 20 };
const large = { vcpus: 4, memoryMiB: 8192, diskGiB: 80 };

function node(name: string, consumers: string[]): ComputeNode {
  const claims: Claim[] = consumers.map((consumer) => ({
    consumer,
    kind: 'instance',
    vcpus: 1,
    memoryMiB: 2048,
    diskGiB: 20,
  }));
  return { apiVersion: API_VERSION, kind: 'ComputeNode', metadata: { name }, spec: {}, status: { claims } };
}

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('InFlightPlacements', () => {
  it("sums the pending placements of a host so a burst sees each other's consumption", () => {
    const inFlight = new InFlightPlacements(clock().now);
    inFlight.add('a', 'uid-1', small);
    inFlight.add('a', 'uid-2', large);
    inFlight.add('b', 'uid-3', large);
    expect(inFlight.forHost('a')).toEqual({ vcpus: 5, memoryMiB: 10240, diskGiB: 100 });
    expect(inFlight.forHost('c')).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
    expect(inFlight.size()).toBe(3);
    expect(Object.fromEntries(inFlight.byHost())).toEqual({
      a: { vcpus: 5, memoryMiB: 10240, diskGiB: 100 },
      b: large,
    });
  });

  it('moves a consumer rescheduled to another host instead of counting it twice', () => {
    const inFlight = new InFlightPlacements(clock().now);
    inFlight.add('a', 'uid-1', small);
    inFlight.add('b', 'uid-1', small);
    expect(inFlight.forHost('a')).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
    expect(inFlight.forHost('b')).toEqual(small);
  });

  it('remove drops a placement whose claim failed, and repeating it is harmless', () => {
    const inFlight = new InFlightPlacements(clock().now);
    inFlight.add('a', 'uid-1', small);
    inFlight.remove('uid-1');
    inFlight.remove('uid-1');
    expect(inFlight.size()).toBe(0);
  });

  it("reconcileWithNode drops entries whose claim now appears in that node's status, keeping the rest", () => {
    const inFlight = new InFlightPlacements(clock().now);
    inFlight.add('a', 'uid-1', small);
    inFlight.add('a', 'uid-2', large);
    inFlight.reconcileWithNode(node('a', ['uid-1', 'someone-else']));
    expect(inFlight.forHost('a')).toEqual(large);
    expect(inFlight.size()).toBe(1);
  });

  it('reconcileWithNode ignores a matching consumer on a different node (e.g. a migration source)', () => {
    const inFlight = new InFlightPlacements(clock().now);
    inFlight.add('dest', 'uid-1', small);
    inFlight.reconcileWithNode(node('source', ['uid-1']));
    expect(inFlight.forHost('dest')).toEqual(small);
  });

  it('expires entries older than the TTL, so a lost status update cannot block a host forever', () => {
    const c = clock();
    const inFlight = new InFlightPlacements(c.now, 30_000);
    inFlight.add('a', 'uid-1', small);
    c.advance(30_000);
    expect(inFlight.forHost('a')).toEqual(small);
    c.advance(1);
    expect(inFlight.forHost('a')).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
    expect(inFlight.size()).toBe(0);
  });

  it('defaults the TTL to 30 seconds', () => {
    const c = clock();
    const inFlight = new InFlightPlacements(c.now);
    inFlight.add('a', 'uid-1', small);
    c.advance(29_999);
    expect(inFlight.size()).toBe(1);
    c.advance(2);
    expect(inFlight.size()).toBe(0);
  });

  it('keeps its own copy of the resources, so a caller mutating its object later changes nothing', () => {
    const inFlight = new InFlightPlacements(clock().now);
    const r = { ...small };
    inFlight.add('a', 'uid-1', r);
    r.vcpus = 100;
    expect(inFlight.forHost('a').vcpus).toBe(1);
  });
});
