// The libvirt driver's parts that need no libvirtd: capacity (measured, or overridden per
// resource), the answer check the agent waits on, and the inspection of every disk before a
// domain is defined on it. Domains are proven against a real libvirtd in e2e/libvirt.test.ts.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FlavorSnapshot } from '../../common/api/types.js';
import { DriverError, type DomainSpec, type NicSpec } from './driver.js';
import { LibvirtDriver } from './libvirt.js';
import { loadGuestImage, type GuestImage } from './libvirt-image.js';
import { buildDomainXml } from './libvirt-xml.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kubenova-libvirt-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const MACHINE = { vcpus: 12, memoryMiB: 64_000, diskGiB: 900 };

describe('LibvirtDriver capacity', () => {
  it('measures the machine once, for the filesystem of its instance directories', async () => {
    const asked: string[] = [];
    const driver = new LibvirtDriver({
      host: 'node-a',
      stateDir: join(dir, 'node-a'),
      images: {},
      detectCapacity: async (d) => {
        asked.push(d);
        return MACHINE;
      },
    });
    expect(await driver.capacity()).toEqual(MACHINE);
    expect(await driver.capacity()).toEqual(MACHINE);
    expect(asked).toEqual([join(dir, 'node-a', 'instances')]);
  });

  it('keeps each resource given (a flag or chart value) and measures only the others', async () => {
    const driver = new LibvirtDriver({
      host: 'node-a',
      stateDir: dir,
      images: {},
      capacity: { memoryMiB: 4096 },
      detectCapacity: async () => MACHINE,
    });
    expect(await driver.capacity()).toEqual({ vcpus: 12, memoryMiB: 4096, diskGiB: 900 });
  });

  it('does not measure at all when every resource is given', async () => {
    const driver = new LibvirtDriver({
      host: 'node-a',
      stateDir: dir,
      images: {},
      capacity: { vcpus: 2, memoryMiB: 2048, diskGiB: 20 },
      detectCapacity: () => Promise.reject(new Error('measured')),
    });
    expect(await driver.capacity()).toEqual({ vcpus: 2, memoryMiB: 2048, diskGiB: 20 });
  });

  it('measures again after a failed measurement', async () => {
    let calls = 0;
    const driver = new LibvirtDriver({
      host: 'node-a',
      stateDir: dir,
      images: {},
      detectCapacity: async () => {
        calls++;
        if (calls === 1) throw new Error('statfs failed');
        return MACHINE;
      },
    });
    await expect(driver.capacity()).rejects.toThrow(/statfs failed/);
    expect(await driver.capacity()).toEqual(MACHINE);
  });
});

describe('LibvirtDriver answers', () => {
  it('is undefined when virsh reaches libvirtd, and says which URI failed otherwise', async () => {
    const ok = new LibvirtDriver({ host: 'node-a', stateDir: dir, images: {}, virsh: 'true' });
    expect(await ok.answers()).toBeUndefined();
    const uri = 'qemu:///system?socket=/nowhere/libvirt-sock';
    const down = new LibvirtDriver({ host: 'node-a', stateDir: dir, images: {}, uri, virsh: 'false' });
    expect(await down.answers()).toBe(`virsh -c ${uri} version failed on host node-a: exit 1`);
    const missing = new LibvirtDriver({ host: 'node-a', stateDir: dir, images: {}, virsh: join(dir, 'no-virsh') });
    expect(await missing.answers()).toMatch(/version failed on host node-a: cannot run .*no-virsh/);
  });
});

// Disks are inspected before a domain is defined on them, against a stand-in for virsh (a
// script that logs every call and keeps one domain's definition and state in files) and real
// qemu-img, which crafts the disks: a backing file, an external data file, a raw file posing
// as qcow2, a virtual size past the flavor.
const qemuImgMissing = (() => {
  try {
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'qemu-img is not installed (bash devenv/libvirt/setup.sh installs it)';
  }
})();

const STAND_IN_VIRSH = `#!/bin/sh
here=$(dirname "$0")
while [ "$1" = -q ] || [ "$1" = -c ]; do [ "$1" = -c ] && shift; shift; done
echo "$*" >> "$here/calls"
cmd=$1; shift
case $cmd in
  define) cp "$1" "$here/defined.xml"; [ -f "$here/state" ] || echo "shut off" > "$here/state" ;;
  undefine) rm -f "$here/defined.xml" "$here/state" ;;
  start) if [ -f "$here/deny" ]; then echo "error: Failed to start domain '$1'" >&2; echo "error: internal error: Could not open 'disk.qcow2': Permission denied" >&2; exit 1; fi
    echo running > "$here/state" ;;
  destroy) if [ -f "$here/state" ]; then echo "shut off" > "$here/state"; else echo "error: failed to get domain '$1'" >&2; exit 1; fi ;;
  domstate) if [ -f "$here/state" ]; then cat "$here/state"; else echo "error: failed to get domain '$1'" >&2; exit 1; fi ;;
  dumpxml) [ "$1" = --inactive ] && shift
    if [ -f "$here/defined.xml" ]; then cat "$here/defined.xml"; else echo "error: failed to get domain '$1'" >&2; exit 1; fi ;;
  capabilities) cat "$here/capabilities" ;;
  domcapabilities) echo "error: KVM is not offered here" >&2; exit 1 ;;
esac
`;

const dacCapabilities = (label: string): string =>
  `<capabilities><host><secmodel><model>dac</model><doi>0</doi><baselabel type='kvm'>${label}</baselabel><baselabel type='qemu'>${label}</baselabel></secmodel></host></capabilities>\n`;

describe.skipIf(qemuImgMissing !== undefined)('LibvirtDriver disk inspection', () => {
  const GIB = 1024 ** 3;
  const SMALL: FlavorSnapshot = { name: 'lv.small', vcpus: 1, memoryMiB: 128, rootDiskGiB: 1, ephemeralDiskGiB: 0 };
  const uid = '3f1c2a9e-0d4b-4e8f-9c61-5b7a2d0e4f13';
  const spec = (over: Partial<DomainSpec> = {}): DomainSpec => ({
    uid,
    name: 'default/vm-1',
    flavor: SMALL,
    image: 'tiny',
    ...over,
  });
  let virshDir: string;
  let hostFile: string;
  let kernel: string;

  const qemuImg = (...args: string[]): void => {
    execFileSync('qemu-img', args, { stdio: 'ignore' });
  };
  const calls = (): string[] => {
    try {
      return readFileSync(join(virshDir, 'calls'), 'utf8').trim().split('\n');
    } catch {
      return [];
    }
  };
  const driverFor = (images: Record<string, GuestImage> = { tiny: tinyImage() }): LibvirtDriver =>
    new LibvirtDriver({
      host: 'node-a',
      stateDir: join(dir, 'state'),
      images,
      virsh: join(virshDir, 'virsh'),
      capacity: { vcpus: 2, memoryMiB: 2048, diskGiB: 20 },
      bootTimeoutMs: 0,
    });
  const tinyImage = (over: Partial<GuestImage> = {}): GuestImage => ({
    name: 'tiny',
    kernel,
    cmdline: 'console=ttyS0',
    guestReport: false,
    ...over,
  });
  /** A directory as the transfer leaves it: this instance's definition and the given disk. */
  const received = (makeDisk: (path: string) => void, nics: NicSpec[] = []): string => {
    const d = join(dir, 'incoming', uid);
    mkdirSync(d, { recursive: true });
    const xml = buildDomainXml({
      host: 'node-b',
      uid,
      name: 'default/vm-1',
      image: 'tiny',
      flavor: SMALL,
      kernel,
      cmdline: 'console=ttyS0',
      disk: '/elsewhere/disk.qcow2',
      consoleLog: '/elsewhere/console.log',
      nics,
    });
    writeFileSync(join(d, 'domain.xml'), xml);
    makeDisk(join(d, 'disk.qcow2'));
    return d;
  };
  const refusal = async (p: Promise<unknown>): Promise<string> => {
    const err: unknown = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DriverError);
    return (err as DriverError).message;
  };

  beforeEach(() => {
    virshDir = join(dir, 'virsh');
    mkdirSync(virshDir);
    writeFileSync(join(virshDir, 'virsh'), STAND_IN_VIRSH, { mode: 0o755 });
    writeFileSync(join(virshDir, 'capabilities'), dacCapabilities('+64055:+64055'));
    hostFile = join(dir, 'host-secret');
    writeFileSync(hostFile, 'not for guests', { mode: 0o600 });
    kernel = join(dir, 'vmlinuz');
    writeFileSync(kernel, 'a kernel');
  });

  it('refuses a received disk with a backing file, saying so; nothing is defined or moved and the host file is untouched', async () => {
    const d = received((p) => qemuImg('create', '-q', '-f', 'qcow2', '-b', hostFile, '-F', 'raw', p, '1G'));
    const driver = driverFor();
    expect(await refusal(driver.finishMigration(spec(), { receivedDir: d, powerOn: true }))).toBe(
      `finishMigration ${uid}: refusing disk ${join(d, 'disk.qcow2')} on host node-a: it has a backing file ${JSON.stringify(hostFile)} (a disk must stand alone)`,
    );
    expect(calls().filter((c) => /^(define|start)\b/.test(c))).toEqual([]);
    expect(existsSync(driver.instanceDir(uid))).toBe(false);
    expect(readdirSync(d).sort()).toEqual(['disk.qcow2', 'domain.xml']);
    expect(statSync(hostFile)).toMatchObject({ uid: process.getuid?.(), mode: 0o100600 });
  });

  it('refuses a received disk with an external data file', async () => {
    const data = join(dir, 'data.raw');
    const d = received((p) => qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${data}`, p, '1G'));
    expect(await refusal(driverFor().finishMigration(spec(), { receivedDir: d, powerOn: true }))).toBe(
      `finishMigration ${uid}: refusing disk ${join(d, 'disk.qcow2')} on host node-a: it has an external data file ${JSON.stringify(data)}`,
    );
    expect(calls().filter((c) => c.startsWith('define'))).toEqual([]);
  });

  it('reads a disk only as qcow2, never probing: a raw file named disk.qcow2 is refused', async () => {
    const d = received((p) => qemuImg('create', '-q', '-f', 'raw', p, '1M'));
    expect(await refusal(driverFor().finishMigration(spec(), { receivedDir: d, powerOn: true }))).toMatch(
      new RegExp(
        `^finishMigration ${uid}: refusing disk ${join(d, 'disk.qcow2')} on host node-a: it cannot be read as qcow2: .*not in qcow2 format`,
      ),
    );
    expect(calls().filter((c) => c.startsWith('define'))).toEqual([]);
  });

  it("refuses a received disk whose virtual size is more than the flavor's root disk", async () => {
    const d = received((p) => qemuImg('create', '-q', '-f', 'qcow2', p, '2G'));
    expect(await refusal(driverFor().finishMigration(spec(), { receivedDir: d, powerOn: true }))).toBe(
      `finishMigration ${uid}: refusing disk ${join(d, 'disk.qcow2')} on host node-a: its virtual size of ${2 * GIB} bytes is more than flavor lv.small's 1 GiB root disk (${GIB} bytes)`,
    );
  });

  it('refuses a received directory whose disk is a link to a host file, or that holds anything else', async () => {
    const d = received((p) => symlinkSync(hostFile, p));
    writeFileSync(join(d, 'backing.raw'), 'x');
    expect(await refusal(driverFor().finishMigration(spec(), { receivedDir: d, powerOn: true }))).toBe(
      `finishMigration ${uid}: refusing ${d} on host node-a: it holds "backing.raw", which is no part of a domain; its disk.qcow2 is not a regular file`,
    );
  });

  it('defines a received self-contained qcow2 within the flavor, and restricts its directory before a start', async () => {
    const d = received((p) => qemuImg('create', '-q', '-f', 'qcow2', p, '1G'));
    const driver = driverFor();
    const info = await driver.finishMigration(spec(), { receivedDir: d, powerOn: true });
    expect(info).toMatchObject({ uid, flavor: SMALL, powerState: 'running' });
    expect(calls().filter((c) => /^(define|start)\b/.test(c))).toEqual([
      `define ${join(driver.instanceDir(uid), 'domain.xml')}`,
      `start kn-node-a-${uid}`,
    ]);
    const mode = (p: string): number => statSync(p).mode & 0o777;
    expect(mode(driver.instanceDir(uid))).toBe(0o711);
    expect(mode(join(driver.instanceDir(uid), 'disk.qcow2'))).toBe(0o600);
    expect(mode(join(driver.instanceDir(uid), 'domain.xml'))).toBe(0o600);
    // QEMU boots a copy of the kernel in the state directory, not the image's own file.
    const defined = readFileSync(join(virshDir, 'defined.xml'), 'utf8');
    const bootKernel = /<kernel>([^<]*)<\/kernel>/.exec(defined)?.[1] ?? '';
    expect(bootKernel.startsWith(join(dir, 'state', 'images'))).toBe(true);
    expect(readFileSync(bootKernel, 'utf8')).toBe('a kernel');
    expect(defined).toContain('<backingStore/>');
    expect(defined).not.toContain('<seclabel');
  });

  it("keeps a received domain's NICs when the finish names none: the same MAC on this host's bridge, the same address for the guest", async () => {
    const nic: NicSpec = {
      port: 'vm-1-net-a',
      network: 'net-a',
      mac: '52:54:00:12:34:56',
      ip: '10.20.0.5',
      prefixLength: 24,
      gateway: '10.20.0.1',
      mtu: 1450,
      bridge: 'kn-0123456789ab',
    };
    const d = received((p) => qemuImg('create', '-q', '-f', 'qcow2', p, '1G'), [nic]);
    const driver = driverFor();
    const info = await driver.finishMigration(spec(), { receivedDir: d, powerOn: true });
    expect(info.nics).toEqual([nic]);
    const defined = readFileSync(join(virshDir, 'defined.xml'), 'utf8');
    expect(defined).toContain(`<mac address='52:54:00:12:34:56'/>\n      <source bridge='kn-0123456789ab'/>`);
    expect(defined).toContain('kubenova.nic=52:54:00:12:34:56,10.20.0.5/24,10.20.0.1,1450</cmdline>');
    // Named by the step, they replace what came with the directory.
    const moved = await driver.finishMigration(spec({ nics: [{ ...nic, bridge: 'kn-other' }] }), { powerOn: true });
    expect(moved.nics.map((n) => n.bridge)).toEqual(['kn-other']);
  });

  it('refuses a bad NIC before anything moves', async () => {
    const d = received((p) => qemuImg('create', '-q', '-f', 'qcow2', p, '1G'));
    const driver = driverFor();
    const bad = {
      port: 'p',
      network: 'n',
      mac: '52:54:00:12:34:56',
      ip: '10.0.0.300',
      prefixLength: 24,
      mtu: 1500,
      bridge: 'kn-x',
    };
    expect(await refusal(driver.finishMigration(spec({ nics: [bad] }), { receivedDir: d, powerOn: true }))).toBe(
      `finishMigration ${uid}: refusing the NICs: port "p": address "10.0.0.300" is not an IPv4 address`,
    );
    expect(existsSync(d)).toBe(true);
    expect(calls().filter((c) => c.startsWith('define'))).toEqual([]);
  });

  it('lets QEMU pass through a state directory made private before it (search only), and names the directory that blocks a start', async () => {
    mkdirSync(join(dir, 'state'), { mode: 0o700 });
    const driver = driverFor();
    const d = received((p) => qemuImg('create', '-q', '-f', 'qcow2', p, '1G'));
    await driver.finishMigration(spec(), { receivedDir: d, powerOn: true });
    expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o701);

    await driver.powerOff(uid);
    writeFileSync(join(virshDir, 'deny'), '');
    const blocked = (statSync(dir).mode & 0o777).toString(8).padStart(4, '0');
    expect(await refusal(driver.powerOn(uid))).toBe(
      `powerOn ${uid}: virsh start kn-node-a-${uid} failed on host node-a: Failed to start domain 'kn-node-a-${uid}'; internal error: Could not open 'disk.qcow2': Permission denied (QEMU runs as an unprivileged user, which must pass through every directory above its disk; ${dir} (mode ${blocked}) lets others no search)`,
    );
  });

  it('refuses a backup with a backing file on revert, keeping the domain in place and the backup', async () => {
    const driver = driverFor();
    await driver.finishMigration(spec(), {
      receivedDir: received((p) => qemuImg('create', '-q', '-f', 'qcow2', p, '1G')),
      powerOn: false,
    });
    const exp = await driver.migrateOut(uid);
    rmSync(join(exp.dir, 'disk.qcow2'));
    qemuImg('create', '-q', '-f', 'qcow2', '-b', hostFile, '-F', 'raw', join(exp.dir, 'disk.qcow2'), '1G');
    expect(await refusal(driver.revertMigration(spec(), { powerOn: true }))).toBe(
      `revertMigration ${uid}: refusing disk ${join(exp.dir, 'disk.qcow2')} on host node-a: it has a backing file ${JSON.stringify(hostFile)} (a disk must stand alone)`,
    );
    expect(await driver.hasBackup(uid)).toBe(true);
    expect(calls().filter((c) => c.startsWith('start'))).toEqual([]);
  });

  it("refuses to spawn from an image whose base disk has a backing file or is bigger than the flavor's root disk, defining nothing", async () => {
    const base = join(dir, 'base.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', hostFile, '-F', 'raw', base, '1G');
    const backed = driverFor({ tiny: tinyImage({ disk: base, diskFormat: 'qcow2' }) });
    expect(await refusal(backed.spawn(spec()))).toBe(
      `spawn ${uid}: refusing image tiny's disk ${base} on host node-a: it has a backing file ${JSON.stringify(hostFile)} (a disk must stand alone)`,
    );
    const big = join(dir, 'big.raw');
    qemuImg('create', '-q', '-f', 'raw', big, '2G');
    const tooBig = driverFor({ tiny: tinyImage({ disk: big, diskFormat: 'raw' }) });
    expect(await refusal(tooBig.spawn(spec()))).toBe(
      `spawn ${uid}: image tiny's disk (${2 * GIB} bytes) is bigger than flavor lv.small's 1 GiB root disk`,
    );
    expect(calls().filter((c) => c.startsWith('define'))).toEqual([]);
  });

  it("spawns from an image's raw base disk, read as raw and converted to a qcow2 of the flavor's size", async () => {
    const base = join(dir, 'base.raw');
    qemuImg('create', '-q', '-f', 'raw', base, '64M');
    const driver = driverFor({ tiny: tinyImage({ disk: base, diskFormat: 'raw' }) });
    expect(await driver.spawn(spec())).toMatchObject({ uid, powerState: 'running' });
    const info = JSON.parse(
      execFileSync('qemu-img', ['info', '-f', 'qcow2', '--output=json', join(driver.instanceDir(uid), 'disk.qcow2')], {
        encoding: 'utf8',
      }),
    ) as { 'virtual-size': number; 'backing-filename'?: string };
    expect(info['virtual-size']).toBe(GIB);
    expect(info['backing-filename']).toBeUndefined();
  });

  it('refuses to start a guest when libvirtd runs QEMU as root', async () => {
    writeFileSync(join(virshDir, 'capabilities'), dacCapabilities('+0:+0'));
    expect(await refusal(driverFor().spawn(spec()))).toBe(
      `spawn ${uid}: libvirtd on host node-a runs QEMU as root (DAC label +0:+0); set an unprivileged user and group, with dynamic_ownership = 1, in its qemu.conf`,
    );
    expect(calls().filter((c) => c.startsWith('start'))).toEqual([]);
  });
});

describe('guest images', () => {
  it('need the format of a base disk stated: a disk is never probed', () => {
    writeFileSync(join(dir, 'vmlinuz'), 'k');
    writeFileSync(join(dir, 'base.img'), 'd');
    writeFileSync(join(dir, 'image.json'), JSON.stringify({ kernel: 'vmlinuz', disk: 'base.img' }));
    expect(() => loadGuestImage(dir, 'x')).toThrow(/"disk" needs "diskFormat" \(qcow2 or raw\), not null/);
    writeFileSync(join(dir, 'image.json'), JSON.stringify({ kernel: 'vmlinuz', disk: 'base.img', diskFormat: 'vmdk' }));
    expect(() => loadGuestImage(dir, 'x')).toThrow(/not "vmdk"/);
    writeFileSync(join(dir, 'image.json'), JSON.stringify({ kernel: 'vmlinuz', disk: 'base.img', diskFormat: 'raw' }));
    expect(loadGuestImage(dir, 'x')).toMatchObject({ disk: join(dir, 'base.img'), diskFormat: 'raw' });
  });
});
