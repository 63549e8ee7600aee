import { describe, expect, it } from 'vitest';
import type { Claim, ClaimKind, ResourceAmounts } from '../../common/api/types.js';
import { ClaimLedger } from './claim-ledger.js';
import { ClaimFailed } from './claims.js';

const ALLOCATABLE: ResourceAmounts = { vcpus: 4, memoryMiB: 4096, diskGiB: 40 };
const claim = (
  consumer: string,
  kind: ClaimKind,
  vcpus: number,
  memoryMiB: number,
  diskGiB: number,
  extra: Partial<Claim> = {},
): Claim => ({
  consumer,
  kind,
  vcpus,
  memoryMiB,
  diskGiB,
  ...extra,
});

function failureOf(fn: () => void): ClaimFailed {
  try {
    fn();
  } catch (err) {
    if (err instanceof ClaimFailed) return err;
    throw err;
  }
  throw new Error('expected ClaimFailed');
}

describe('ClaimLedger', () => {
  it('records a claim that fits and counts it in allocated', () => {
    const ledger = new ClaimLedger([]);
    ledger.claim('node-a', ALLOCATABLE, claim('u1', 'instance', 2, 2048, 20));
    expect(ledger.has('u1', 'instance')).toBe(true);
    expect(ledger.has('u1', 'migration')).toBe(false);
    expect(ledger.allocated()).toEqual({ vcpus: 2, memoryMiB: 2048, diskGiB: 20 });
  });

  it('claiming again with the same amounts succeeds without double counting, even when the host is full', () => {
    const ledger = new ClaimLedger([]);
    const full = claim('u1', 'instance', 4, 4096, 40, { createdAt: '2024-01-01T00:00:00Z' });
    ledger.claim('node-a', ALLOCATABLE, full);
    ledger.claim('node-a', ALLOCATABLE, { ...full, createdAt: '2024-01-02T00:00:00Z' });
    expect(ledger.allocated()).toEqual({ vcpus: 4, memoryMiB: 4096, diskGiB: 40 });
    // The first record is kept, so repeating a step does not rewrite status.
    expect(ledger.claims).toEqual([full]);
  });

  it('throws ClaimFailed naming every short resource and leaves the ledger unchanged', () => {
    const ledger = new ClaimLedger([claim('u1', 'instance', 3, 3584, 30)]);
    const err = failureOf(() => ledger.claim('node-a', ALLOCATABLE, claim('u2', 'instance', 2, 2048, 20)));
    expect(err.host).toBe('node-a');
    expect(err.reasons).toEqual([
      'free memory 512 MiB < requested 2048 MiB',
      'free vcpus 1 < requested 2',
      'free disk 10 GiB < requested 20 GiB',
    ]);
    expect(ledger.has('u2', 'instance')).toBe(false);
    expect(ledger.allocated()).toEqual({ vcpus: 3, memoryMiB: 3584, diskGiB: 30 });
  });

  it('a re-claim with different amounts replaces the old one, tested against what the others leave free', () => {
    const ledger = new ClaimLedger([claim('other', 'instance', 1, 1024, 10), claim('u1', 'instance', 2, 2048, 20)]);
    // 3 vcpus would not fit on top of the old 2, but fits once they are given back.
    ledger.claim('node-a', ALLOCATABLE, claim('u1', 'instance', 3, 3072, 30));
    expect(ledger.allocated()).toEqual({ vcpus: 4, memoryMiB: 4096, diskGiB: 40 });
    expect(ledger.claims.filter((c) => c.consumer === 'u1')).toEqual([claim('u1', 'instance', 3, 3072, 30)]);
  });

  it('a re-claim that does not fit keeps the old claim', () => {
    const ledger = new ClaimLedger([claim('other', 'instance', 1, 1024, 10), claim('u1', 'instance', 2, 2048, 20)]);
    const err = failureOf(() => ledger.claim('node-a', ALLOCATABLE, claim('u1', 'instance', 4, 2048, 20)));
    expect(err.reasons).toEqual(['free vcpus 3 < requested 4']);
    expect(ledger.claims.find((c) => c.consumer === 'u1')).toEqual(claim('u1', 'instance', 2, 2048, 20));
  });

  it('holds an instance claim and a migration claim of the same consumer side by side (same-host resize)', () => {
    const ledger = new ClaimLedger([]);
    ledger.claim('node-a', ALLOCATABLE, claim('u1', 'instance', 1, 1024, 10));
    ledger.claim('node-a', ALLOCATABLE, claim('u1', 'migration', 2, 2048, 20));
    expect(ledger.allocated()).toEqual({ vcpus: 3, memoryMiB: 3072, diskGiB: 30 });
  });

  it('release frees the claim, and releasing twice is safe and reports nothing removed', () => {
    const ledger = new ClaimLedger([claim('u1', 'instance', 1, 1024, 10), claim('u1', 'migration', 2, 2048, 20)]);
    expect(ledger.release('u1', 'migration')).toBe(true);
    expect(ledger.release('u1', 'migration')).toBe(false);
    expect(ledger.has('u1', 'instance')).toBe(true);
    expect(ledger.allocated()).toEqual({ vcpus: 1, memoryMiB: 1024, diskGiB: 10 });
  });

  it('release without a kind frees every claim of the consumer', () => {
    const ledger = new ClaimLedger([
      claim('u1', 'instance', 1, 1024, 10),
      claim('u1', 'migration', 2, 2048, 20),
      claim('u2', 'instance', 1, 1, 1),
    ]);
    expect(ledger.release('u1')).toBe(true);
    expect(ledger.release('u1')).toBe(false);
    expect(ledger.claims.map((c) => c.consumer)).toEqual(['u2']);
  });

  it('lists claims sorted by consumer then kind', () => {
    const ledger = new ClaimLedger([
      claim('b', 'migration', 1, 1, 1),
      claim('a', 'migration', 1, 1, 1),
      claim('b', 'instance', 1, 1, 1),
    ]);
    expect(ledger.claims.map((c) => `${c.consumer}/${c.kind}`)).toEqual(['a/migration', 'b/instance', 'b/migration']);
  });

  it('hands out copies, so callers cannot change what the ledger holds', () => {
    const input = [claim('u1', 'instance', 1, 1024, 10)];
    const ledger = new ClaimLedger(input);
    const first = input[0];
    if (first) first.vcpus = 99;
    const listed = ledger.claims;
    listed.pop();
    const again = ledger.claims[0];
    if (again) again.vcpus = 42;
    expect(ledger.claims).toEqual([claim('u1', 'instance', 1, 1024, 10)]);
  });

  it('counts a duplicated status entry once', () => {
    const ledger = new ClaimLedger([claim('u1', 'instance', 1, 1024, 10), claim('u1', 'instance', 1, 1024, 10)]);
    expect(ledger.allocated()).toEqual({ vcpus: 1, memoryMiB: 1024, diskGiB: 10 });
  });

  it('refuses negative or non-numeric amounts, which would make room that does not exist', () => {
    const ledger = new ClaimLedger([]);
    expect(() => ledger.claim('node-a', ALLOCATABLE, claim('u1', 'instance', -1, 0, 0))).toThrow(RangeError);
    expect(() => ledger.claim('node-a', ALLOCATABLE, claim('u1', 'instance', 1, Number.NaN, 0))).toThrow(RangeError);
    expect(ledger.claims).toEqual([]);
  });
});
