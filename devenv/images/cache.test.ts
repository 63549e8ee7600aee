import { describe, expect, it } from 'vitest';
import { namesToPrune } from './cache.js';

const ARCHIVE = /^kubenova-[0-9a-f]{12}\.oci\.tar$/;

describe('namesToPrune', () => {
  const entries = [
    { name: 'kubenova-000000000001.oci.tar', mtimeMs: 1 },
    { name: 'kubenova-000000000002.oci.tar', mtimeMs: 2 },
    { name: 'kubenova-000000000003.oci.tar', mtimeMs: 3 },
    { name: 'kubenova-000000000004.oci.tar', mtimeMs: 4 },
    { name: 'kubenova-pause-000000000009.oci.tar', mtimeMs: 0 },
    { name: 'kubenova-base-000000000009.oci', mtimeMs: 0 },
  ];

  it('keeps the current build and the newest others, and never touches other kinds', () => {
    expect(namesToPrune(entries, ARCHIVE, 3, 'kubenova-000000000004.oci.tar').sort()).toEqual([
      'kubenova-000000000001.oci.tar',
    ]);
  });

  it('keeps the current build even when it is the oldest (a cache hit)', () => {
    expect(namesToPrune(entries, ARCHIVE, 2, 'kubenova-000000000001.oci.tar').sort()).toEqual([
      'kubenova-000000000002.oci.tar',
      'kubenova-000000000003.oci.tar',
    ]);
  });

  it('keeps only the current build with keep = 1', () => {
    expect(namesToPrune(entries, ARCHIVE, 1, 'kubenova-000000000002.oci.tar')).toHaveLength(3);
  });
});
