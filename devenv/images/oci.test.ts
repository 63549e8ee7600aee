import { describe, expect, it } from 'vitest';
import { archivePath, configArgs, imageRef, namedIndex, REF_NAME_ANNOTATION } from './oci.js';

const manifest = {
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: 'sha256:4ac5d3fffdd16b32b71782604304200ab949556a8159e6524aad3e7bf7c002dc',
  size: 348,
};

describe('imageRef', () => {
  it('names an image under localhost/ so the CRI plugin takes it as is', () => {
    expect(imageRef('kubenova-pause', '740473699936')).toBe('localhost/kubenova-pause:740473699936');
  });

  it('refuses names and tags a reference cannot hold', () => {
    expect(() => imageRef('Kubenova', 'a')).toThrow(/image name/);
    expect(() => imageRef('kubenova/x', 'a')).toThrow(/image name/);
    expect(() => imageRef('kubenova', 'a:b')).toThrow(/image tag/);
    expect(() => imageRef('kubenova', '')).toThrow(/image tag/);
  });
});

describe('archivePath', () => {
  it('puts the archive in the cache under the name and tag', () => {
    expect(archivePath('/c', 'localhost/kubenova:abc')).toBe('/c/kubenova-abc.oci.tar');
    expect(() => archivePath('/c', 'docker.io/library/kubenova:abc')).toThrow(/localhost/);
  });
});

describe('namedIndex', () => {
  it("replaces umoci's work tag with the full reference and nothing else", () => {
    const umoci = {
      schemaVersion: 2,
      manifests: [{ ...manifest, annotations: { [REF_NAME_ANNOTATION]: 'build', 'x.other': 'y' } }],
    };
    const named = namedIndex(umoci, 'localhost/kubenova:abc');
    expect(named.manifests).toEqual([
      { ...manifest, annotations: { [REF_NAME_ANNOTATION]: 'localhost/kubenova:abc' } },
    ]);
    // The input is left alone.
    expect(umoci.manifests[0]?.annotations[REF_NAME_ANNOTATION]).toBe('build');
  });

  it('keeps the index fields it does not know', () => {
    const named = namedIndex({ schemaVersion: 2, manifests: [manifest], mediaType: 'x' }, 'localhost/a:b');
    expect(named.mediaType).toBe('x');
  });

  it('refuses an index whose extra manifests would import as stray images', () => {
    expect(() => namedIndex({ schemaVersion: 2, manifests: [manifest, manifest] }, 'localhost/a:b')).toThrow(
      /exactly one manifest, found 2/,
    );
    expect(() => namedIndex({ schemaVersion: 2, manifests: [] }, 'localhost/a:b')).toThrow(/found 0/);
    expect(() => namedIndex({ schemaVersion: 2, manifests: [{ digest: 1 }] }, 'localhost/a:b')).toThrow(/descriptors/);
    expect(() => namedIndex(null, 'localhost/a:b')).toThrow(/JSON object/);
  });
});

describe('configArgs', () => {
  it('passes each list item as its own flag, in order', () => {
    expect(
      configArgs({
        entrypoint: ['node'],
        cmd: ['dist/operator/main.js', '--x'],
        workingDir: '/app',
        user: '1000:1000',
        env: { NODE_ENV: 'production' },
      }),
    ).toEqual([
      ...['--config.entrypoint', 'node'],
      ...['--config.cmd', 'dist/operator/main.js', '--config.cmd', '--x'],
      ...['--config.workingdir', '/app', '--config.user', '1000:1000'],
      ...['--config.env', 'NODE_ENV=production'],
      ...['--os', 'linux', '--architecture', 'amd64'],
    ]);
  });

  it('refuses an environment variable name umoci would mangle', () => {
    expect(() => configArgs({ env: { 'A=B': 'c' } })).toThrow(/variable name/);
  });
});
