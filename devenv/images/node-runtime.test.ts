import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NODE_MAJOR, newestRelease, viewVersions } from './node-runtime.js';

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

describe('NODE_MAJOR', () => {
  it('is the major engines.node asks for, and the one the Dockerfile builds with and ships', () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).toBe(`>=${NODE_MAJOR}`);
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain(`ARG NODE_MAJOR=${NODE_MAJOR}\n`);
    expect(dockerfile).toContain(`ARG BUILD_IMAGE=node:${NODE_MAJOR}-`);
  });
});
