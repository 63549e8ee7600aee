import { describe, expect, it } from 'vitest';
import type { QuotaAllocation } from '../../common/api/types.js';
import { commit, fold, increase, overLimits, QuotaExceeded, release, reserve, statusOf, sum } from './ledger.js';

const one = { instances: 1, vcpus: 1, memoryMiB: 512, diskGiB: 1, ports: 0 };
/** An allocation as recorded: without ports when it holds none. */
const held = ({ ports: _none, ...flavor }: typeof one) => flavor;

describe('quota ledger', () => {
  it('reserves a boot within the limit and counts it as reserved until committed', () => {
    let a: QuotaAllocation[] = reserve({ vcpus: 4 }, [], 'uid-1', 'web-1', one);
    expect(sum(a, 'reserved')).toEqual(one);
    a = commit(a, 'uid-1');
    expect(sum(a, 'used')).toEqual(one);
    expect(sum(a, 'reserved')).toEqual({ instances: 0, vcpus: 0, memoryMiB: 0, diskGiB: 0, ports: 0 });
  });

  it('refuses a boot that would pass a limit, naming used, requested and limit for every resource over', () => {
    const a = [
      { consumer: 'x', instance: 'x', state: 'used' as const, instances: 1, vcpus: 4, memoryMiB: 2048, diskGiB: 1 },
    ];
    expect(() => reserve({ vcpus: 4, memoryMiB: 2048 }, a, 'uid-2', 'web-2', one)).toThrow(QuotaExceeded);
    expect(overLimits({ vcpus: 4, memoryMiB: 2048 }, a, one)).toEqual([
      'vcpus: used 4 + requested 1 > limit 4',
      'memoryMiB: used 2048 MiB + requested 512 MiB > limit 2048 MiB',
    ]);
  });

  it('treats omitted limits as unlimited and a repeated reservation as one', () => {
    const a = reserve(undefined, [], 'uid-1', 'web-1', { ...one, vcpus: 1000 });
    expect(reserve(undefined, a, 'uid-1', 'web-1', one)).toBe(a);
  });

  it('reserves only the increase of a resize, nothing for a shrink', () => {
    expect(
      increase(
        { instances: 0, vcpus: 2, memoryMiB: 4096, diskGiB: 40, ports: 0 },
        { instances: 0, vcpus: 1, memoryMiB: 8192, diskGiB: 40, ports: 0 },
      ),
    ).toEqual({ instances: 0, vcpus: 0, memoryMiB: 4096, diskGiB: 0, ports: 0 });
  });

  it('folds a confirmed resize into the instance and releases a reverted one', () => {
    const two = { instances: 1, vcpus: 2, memoryMiB: 1024, diskGiB: 1, ports: 0 };
    let a = commit(reserve(undefined, [], 'i', 'web', one), 'i');
    a = commit(reserve(undefined, a, 'm', 'web', increase(one, two)), 'm');
    expect(fold(a, 'm', 'i', two)).toEqual([{ consumer: 'i', instance: 'web', state: 'used', ...held(two) }]);
    expect(release(a, (x) => x.consumer === 'm')).toEqual([
      { consumer: 'i', instance: 'web', state: 'used', ...held(one) },
    ]);
  });

  it('a confirmed downsize lowers used to the new flavor; a reverted one leaves used as it was', () => {
    const big = { instances: 1, vcpus: 4, memoryMiB: 4096, diskGiB: 40, ports: 0 };
    const other = { consumer: 'j', instance: 'db', state: 'used' as const, ...held(one) };
    let a = commit(reserve({ vcpus: 8 }, [other], 'i', 'web', big), 'i');
    // The downsize reserves nothing, and committing nothing changes nothing.
    a = commit(reserve({ vcpus: 8 }, a, 'm', 'web', increase(big, one)), 'm');
    expect(sum(a, 'used')).toEqual({ instances: 2, vcpus: 5, memoryMiB: 4608, diskGiB: 41, ports: 0 });

    const confirmed = fold(a, 'm', 'i', one);
    expect(confirmed).toEqual([other, { consumer: 'i', instance: 'web', state: 'used', ...held(one) }]);
    expect(sum(confirmed, 'used')).toEqual({ instances: 2, vcpus: 2, memoryMiB: 1024, diskGiB: 2, ports: 0 });
    expect(
      sum(
        release(a, (x) => x.consumer === 'm'),
        'used',
      ),
    ).toEqual(sum(a, 'used'));
  });

  it('a confirmed resize up in one resource and down in another leaves exactly the new flavor used', () => {
    const from = { instances: 1, vcpus: 2, memoryMiB: 4096, diskGiB: 20, ports: 0 };
    const to = { instances: 1, vcpus: 4, memoryMiB: 2048, diskGiB: 20, ports: 0 };
    let a = commit(reserve(undefined, [], 'i', 'web', from), 'i');
    a = commit(reserve(undefined, a, 'm', 'web', increase(from, to)), 'm');
    expect(sum(a, 'used')).toEqual({ instances: 1, vcpus: 4, memoryMiB: 4096, diskGiB: 20, ports: 0 });
    expect(sum(fold(a, 'm', 'i', to), 'used')).toEqual(to);
  });

  it('folds once: a settled resize is not folded again', () => {
    const a = [{ consumer: 'i', instance: 'web', state: 'used' as const, ...one }];
    expect(fold(a, 'm', 'i', { ...one, vcpus: 8 })).toBe(a);
  });

  it('summarises used/hard for kubectl get', () => {
    expect(statusOf({ vcpus: 4 }, commit(reserve({ vcpus: 4 }, [], 'i', 'web', one), 'i')).summary).toEqual({
      instances: '1/∞',
      vcpus: '1/4',
      memory: '512/∞',
      disk: '1/∞',
      ports: '0/∞',
    });
  });

  it('counts ports with the boot, names them when over the limit, and keeps them through a confirmed resize', () => {
    const withPorts = { ...one, ports: 2 };
    let a = commit(reserve({ ports: 3 }, [], 'i', 'web', withPorts), 'i');
    expect(sum(a, 'used').ports).toBe(2);
    expect(overLimits({ ports: 3 }, a, withPorts)).toEqual(['ports: used 2 + requested 2 > limit 3']);
    const bigger = { ...one, vcpus: 4 };
    a = commit(reserve(undefined, a, 'm', 'web', increase(withPorts, bigger)), 'm');
    expect(sum(fold(a, 'm', 'i', bigger), 'used')).toEqual({ ...bigger, ports: 2 });
  });

  it('an allocation without ports records none, as before ports were counted', () => {
    expect(reserve(undefined, [], 'i', 'web', one)).toEqual([
      { consumer: 'i', instance: 'web', state: 'reserved', instances: 1, vcpus: 1, memoryMiB: 512, diskGiB: 1 },
    ]);
  });
});
