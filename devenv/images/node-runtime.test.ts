import { describe, expect, it } from 'vitest';
import { newestRelease, viewVersions } from './node-runtime.js';

describe('newestRelease', () => {
  it('compares versions as numbers, within one major line, without pre-releases', () => {
    const versions = ['24.9.0', '24.10.0', '24.10.2', '26.1.0', '24.11.0-rc.1', '22.20.0'];
    expect(newestRelease(versions, 24)).toBe('24.10.2');
    expect(newestRelease(versions, 26)).toBe('26.1.0');
    expect(newestRelease(versions, 20)).toBeUndefined();
  });
});

describe('viewVersions', () => {
  it('takes npm view --json as a single version or a list', () => {
    expect(viewVersions('"24.1.0"')).toEqual(['24.1.0']);
    expect(viewVersions('["24.1.0","24.2.0"]')).toEqual(['24.1.0', '24.2.0']);
    expect(() => viewVersions('{"error":{}}')).toThrow(/unexpected answer/);
  });
});
