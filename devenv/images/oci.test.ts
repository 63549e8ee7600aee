import { describe, expect, it } from 'vitest';
import {
  archivePath,
  archivePattern,
  configArgs,
  layerTarArgs,
  imageRef,
  namedIndex,
  REF_NAME_ANNOTATION,
} from './oci.js';

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

describe('archivePattern', () => {
  it("matches one image's archives and not another's whose name starts the same", () => {
    const kubenova = archivePattern('kubenova');
    expect(kubenova.test('kubenova-30fd5383f5ab.oci.tar')).toBe(true);
    expect(kubenova.test('kubenova-pause-7e64b6b615ed.oci.tar')).toBe(false);
    expect(kubenova.test('kubenova-30fd5383f5ab.oci.tar.tmp-12')).toBe(false);
    expect(archivePattern('kubenova-pause').test('kubenova-pause-7e64b6b615ed.oci.tar')).toBe(true);
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

describe('layerTarArgs', () => {
  it("tars the directory's entries, not the directory: a './' entry would set the mode of /", () => {
    const args = layerTarArgs({ dir: '/w/root', createdBy: 'x' }, ['etc', 'usr'], '/w/l.tar');
    expect(args.slice(-6)).toEqual(['/w/root', '-cf', '/w/l.tar', '--', 'etc', 'usr']);
    expect(args).not.toContain('.');
    expect(args).toContain('--numeric-owner');
    expect(args).not.toContain('--owner=0');
  });

  it('normalises owners, times and modes of staged files, and anchors exclusions at the root', () => {
    const args = layerTarArgs({ dir: '/w', createdBy: 'x', normalize: true, exclude: ['dev/*'] }, ['app'], '/l');
    expect(args).toEqual(expect.arrayContaining(['--owner=0', '--group=0', '--mtime=@0', '--mode=go+rX,go-w']));
    expect(args.join(' ')).toContain('--anchored --exclude=dev/*');
  });
});
