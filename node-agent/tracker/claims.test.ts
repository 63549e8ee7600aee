import { describe, expect, it } from 'vitest';
import type { Claim, ResourceAmounts } from '../../common/api/types.js';
import { ClaimFailed, allocatableOf, allocatedOf, describeShortfall, shortfalls } from './claims.js';

const amounts = (vcpus: number, memoryMiB: number, diskGiB: number): ResourceAmounts => ({ vcpus, memoryMiB, diskGiB });
const claim = (consumer: string, vcpus: number, memoryMiB: number, diskGiB: number): Claim => ({
  consumer,
  kind: 'instance',
  vcpus,
  memoryMiB,
  diskGiB,
});
const NO_RESERVE = amounts(0, 0, 0);
const described = (...args: Parameters<typeof shortfalls>) => shortfalls(...args).map(describeShortfall);
const UNIT_RATIO = { cpu: 1, memory: 1, disk: 1 };

describe('allocatableOf', () => {
  it('subtracts reserved before applying the ratio, then floors', () => {
    expect(allocatableOf(amounts(8, 16384, 100), amounts(1, 512, 10), { cpu: 4, memory: 1.5, disk: 0.9 })).toEqual(
      // (8-1)*4, (16384-512)*1.5, floor((100-10)*0.9 = 81)
      amounts(28, 23808, 81),
    );
  });

  it('floors fractional results down, never up', () => {
    expect(allocatableOf(amounts(3, 1001, 7), NO_RESERVE, { cpu: 1.5, memory: 0.5, disk: 1.1 })).toEqual(
      amounts(4, 500, 7),
    );
  });

  it('does not lose a unit to floating-point error when the product is a whole number', () => {
    // 100 * 1.15 is 114.99999999999999 in IEEE doubles.
    expect(allocatableOf(amounts(100, 100, 100), NO_RESERVE, { cpu: 1.15, memory: 1.15, disk: 1.15 })).toEqual(
      amounts(115, 115, 115),
    );
  });

  it('is never negative when reserved exceeds capacity', () => {
    expect(allocatableOf(amounts(2, 256, 5), amounts(4, 512, 10), UNIT_RATIO)).toEqual(amounts(0, 0, 0));
  });
});

describe('allocatedOf', () => {
  it('sums every claim', () => {
    expect(allocatedOf([claim('a', 1, 512, 10), claim('b', 2, 1024, 0)])).toEqual(amounts(3, 1536, 10));
  });

  it('is zero for no claims', () => {
    expect(allocatedOf([])).toEqual(amounts(0, 0, 0));
  });
});

describe('shortfalls', () => {
  const allocatable = amounts(4, 4096, 40);
  const allocated = amounts(3, 3584, 30);

  it('passes a request that fits exactly at the limit', () => {
    expect(described(allocatable, allocated, amounts(1, 512, 10))).toEqual([]);
  });

  it('reports memory alone when only memory is short', () => {
    expect(described(allocatable, allocated, amounts(1, 2048, 10))).toEqual([
      'free memory 512 MiB < requested 2048 MiB',
    ]);
  });

  it('reports vcpus alone when only vcpus are short', () => {
    expect(described(allocatable, allocated, amounts(2, 512, 10))).toEqual(['free vcpus 1 < requested 2']);
  });

  it('reports disk alone when only disk is short', () => {
    expect(described(allocatable, allocated, amounts(1, 512, 20))).toEqual(['free disk 10 GiB < requested 20 GiB']);
  });

  it('reports every short resource together, memory then vcpus then disk', () => {
    expect(described(allocatable, allocated, amounts(2, 2048, 20))).toEqual([
      'free memory 512 MiB < requested 2048 MiB',
      'free vcpus 1 < requested 2',
      'free disk 10 GiB < requested 20 GiB',
    ]);
  });

  it('shows negative free space truthfully when the host is already overcommitted', () => {
    expect(described(amounts(2, 1024, 10), amounts(3, 1024, 10), amounts(1, 0, 0))).toEqual([
      'free vcpus -1 < requested 1',
    ]);
  });

  it('fails rather than passes a request with a missing (NaN) amount', () => {
    expect(described(allocatable, allocated, amounts(1, Number.NaN, 0))).toEqual([
      'free memory 512 MiB < requested NaN MiB',
    ]);
  });
});

describe('ClaimFailed', () => {
  it('names the host and every shortfall in its message, and keeps them for the fault', () => {
    const err = new ClaimFailed('node-a', [
      { resource: 'memoryMiB', free: 512, requested: 2048 },
      { resource: 'vcpus', free: 1, requested: 2 },
    ]);
    expect(err).toBeInstanceOf(Error);
    expect(err.reason).toBe('ClaimFailed');
    expect(err.name).toBe('ClaimFailed');
    expect(err.host).toBe('node-a');
    expect(err.shortfalls.map((f) => f.resource)).toEqual(['memoryMiB', 'vcpus']);
    expect(err.reasons).toEqual(['free memory 512 MiB < requested 2048 MiB', 'free vcpus 1 < requested 2']);
    expect(err.message).toBe(
      'claim on node-a failed: free memory 512 MiB < requested 2048 MiB; free vcpus 1 < requested 2',
    );
  });
});
