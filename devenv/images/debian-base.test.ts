import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { accountEntries, mmdebstrapArgs, parsePackageList } from './debian-base.js';
import { SOURCE_DIR } from './paths.js';

describe('parsePackageList', () => {
  it('reads one name a line, skipping comments and blank lines, sorted and unique', () => {
    expect(parsePackageList('# head\nqemu-utils\n\nca-certificates  # roots\nqemu-utils\nlibstdc++6\n')).toEqual([
      'ca-certificates',
      'libstdc++6',
      'qemu-utils',
    ]);
  });

  it('refuses what is not a package name, naming the line', () => {
    expect(() => parsePackageList('ok\nqemu utils\n')).toThrow(/line 2: "qemu utils"/);
    expect(() => parsePackageList('# nothing\n')).toThrow(/no package/);
  });

  it("holds what the image's users run: libvirt's daemons and client, QEMU and qemu-img", async () => {
    const list = parsePackageList(await readFile(join(SOURCE_DIR, 'kubenova', 'packages.txt'), 'utf8'));
    expect(list).toEqual(
      expect.arrayContaining(['ca-certificates', 'libvirt-clients', 'libvirt-daemon', 'qemu-system-x86', 'qemu-utils']),
    );
  });
});

describe('mmdebstrapArgs', () => {
  it('installs the list on bookworm with merged /usr and no documentation, into a directory', () => {
    const args = mmdebstrapArgs(['a', 'b'], '/t/rootfs');
    expect(args).toContain('--include=a,b');
    expect(args).toContain('--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr');
    expect(args).toContain('--dpkgopt=path-exclude=/usr/share/doc/*');
    expect(args).toContain('--dpkgopt=path-include=/usr/share/doc/*/copyright');
    expect(args.slice(-2)).toEqual(['bookworm', '/t/rootfs']);
  });
});

describe('accountEntries', () => {
  it("adds the image's user 1000 and libvirt's QEMU user with Debian's ids", () => {
    const { passwd, group } = accountEntries();
    expect(passwd.split('\n')).toEqual([
      'kubenova:x:1000:1000::/nonexistent:/usr/sbin/nologin',
      'libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin',
      '',
    ]);
    expect(group).toBe('kubenova:x:1000:\nlibvirt-qemu:x:64055:\n');
  });
});
