import { describe, expect, it } from 'vitest';
import { diskProblems, parseQemuImgInfo } from './libvirt-disk.js';

const GIB = 1024 ** 3;
/** `qemu-img info --output=json` of a qcow2, as qemu-img 7.2 prints it, with `over` merged in. */
const qcow2 = (over: Record<string, unknown> = {}, data: Record<string, unknown> = {}): string =>
  JSON.stringify({
    'virtual-size': GIB,
    filename: 'disk.qcow2',
    'cluster-size': 65536,
    format: 'qcow2',
    'actual-size': 200704,
    'format-specific': { type: 'qcow2', data: { compat: '1.1', corrupt: false, ...data } },
    'dirty-flag': false,
    ...over,
  });

describe('qemu-img info of a disk', () => {
  it('reads format and virtual size, and nothing else, from a disk that stands alone', () => {
    expect(parseQemuImgInfo(qcow2())).toEqual({ format: 'qcow2', virtualSize: GIB, corrupt: false });
    expect(diskProblems(parseQemuImgInfo(qcow2()), { format: 'qcow2' })).toEqual([]);
  });

  it('finds a backing file by its full name, its name, or only its format', () => {
    const full = { 'backing-filename': 'host', 'full-backing-filename': '/srv/host', 'backing-filename-format': 'raw' };
    expect(parseQemuImgInfo(qcow2(full)).backingFile).toBe('/srv/host');
    expect(parseQemuImgInfo(qcow2({ 'backing-filename': 'json:{}' })).backingFile).toBe('json:{}');
    expect(parseQemuImgInfo(qcow2({ 'backing-filename-format': 'raw' })).backingFile).toBe('');
  });

  it('finds an external data file and corrupt metadata in the qcow2 details', () => {
    expect(parseQemuImgInfo(qcow2({}, { 'data-file': '/srv/data', 'data-file-raw': false })).dataFile).toBe(
      '/srv/data',
    );
    expect(parseQemuImgInfo(qcow2({}, { corrupt: true })).corrupt).toBe(true);
  });

  it('is an error when qemu-img says nothing usable', () => {
    expect(() => parseQemuImgInfo('not json')).toThrow(/no format and virtual size/);
    expect(() => parseQemuImgInfo('{"format":"qcow2"}')).toThrow(/no format and virtual size/);
  });
});

describe('what is wrong with a disk', () => {
  it('names each problem: the format, a backing or data file, corruption and a size past the limit', () => {
    const info = {
      format: 'raw',
      virtualSize: 2 * GIB,
      backingFile: '/etc/shadow',
      dataFile: '/srv/data',
      corrupt: true,
    };
    expect(diskProblems(info, { format: 'qcow2', limit: { bytes: GIB, what: "flavor m1's 1 GiB root disk" } })).toEqual(
      [
        'its format is raw, not qcow2',
        'it has a backing file "/etc/shadow" (a disk must stand alone)',
        'it has an external data file "/srv/data"',
        'qemu-img finds its metadata corrupt',
        `its virtual size of ${2 * GIB} bytes is more than flavor m1's 1 GiB root disk (${GIB} bytes)`,
      ],
    );
  });

  it('allows a disk exactly as big as the limit, and cuts a long name from a disk header short', () => {
    expect(
      diskProblems(
        { format: 'qcow2', virtualSize: GIB, corrupt: false },
        { format: 'qcow2', limit: { bytes: GIB, what: 'x' } },
      ),
    ).toEqual([]);
    const [problem] = diskProblems(
      { format: 'qcow2', virtualSize: GIB, corrupt: false, backingFile: 'a'.repeat(5000) },
      { format: 'qcow2' },
    );
    expect(problem!.length).toBeLessThan(260);
  });
});
