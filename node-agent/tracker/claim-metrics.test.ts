import { describe, expect, it } from 'vitest';
import { ClaimFailed, shortfalls } from './claims.js';
import { shortResources } from './resource-tracker.js';

describe('claim failure resources', () => {
  it('names every short resource of a ClaimFailed, in the words its reasons use', () => {
    const reasons = shortfalls(
      { vcpus: 4, memoryMiB: 1024, diskGiB: 10 },
      { vcpus: 4, memoryMiB: 0, diskGiB: 0 },
      { vcpus: 1, memoryMiB: 2048, diskGiB: 20 },
    );
    expect(shortResources(new ClaimFailed('node-a', reasons))).toEqual(['memory', 'vcpus', 'disk']);
    expect(
      shortResources(
        new ClaimFailed(
          'node-a',
          shortfalls(
            { vcpus: 4, memoryMiB: 4096, diskGiB: 10 },
            { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
            { vcpus: 1, memoryMiB: 512, diskGiB: 11 },
          ),
        ),
      ),
    ).toEqual(['disk']);
  });
});
