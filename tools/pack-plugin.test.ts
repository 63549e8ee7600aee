import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { fillManifest, krewProblems } from './pack-plugin.js';

const template = readFileSync(join(import.meta.dirname, '..', 'plugin', 'krew', 'nova.yaml'), 'utf8');
const SHA = 'ab'.repeat(32);

describe('the kubectl nova krew manifest', () => {
  it('is a krew Plugin named nova whose every platform runs bin/kubectl-nova, as the archive lays it out', () => {
    const m = yaml.load(template) as { metadata: { name: string }; spec: { platforms: { bin: string }[] } };
    expect(krewProblems(m)).toEqual([]);
    expect(m.metadata.name).toBe('nova');
    expect(m.spec.platforms.map((p) => p.bin)).toEqual(['bin/kubectl-nova']);
  });

  it("the release copy carries the package version, the archive's address and its sha256 on every platform", () => {
    const filled = yaml.load(
      fillManifest(template, { version: '1.2.3', uri: 'https://example.org/kubectl-nova-1.2.3.tar.gz', sha256: SHA }),
    ) as { spec: { version: string; platforms: { uri: string; sha256: string }[] } };
    expect(filled.spec.version).toBe('v1.2.3');
    expect(filled.spec.platforms).toEqual([
      expect.objectContaining({ uri: 'https://example.org/kubectl-nova-1.2.3.tar.gz', sha256: SHA }),
    ]);
  });

  it('refuses to write a manifest krew would reject', () => {
    expect(() => fillManifest(template, { version: '1.2.3', uri: 'file:///tmp/x.tar.gz', sha256: SHA })).toThrow(
      'platforms[0].uri must be an http(s) URL',
    );
    expect(() => fillManifest(template, { version: '1.2', uri: 'https://example.org/x', sha256: 'nope' })).toThrow(
      'spec.version must be vX.Y.Z; platforms[0].sha256 must be 64 hex digits',
    );
  });
});
