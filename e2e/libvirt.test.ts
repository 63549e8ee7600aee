// Real VMs: the libvirt driver boots the `tiny` guest, whose own report (vCPUs, MemTotal, disk
// size and a marker it wrote to its disk at first boot) proves the flavor from inside, through
// a resize to another host with revert and with confirm, and a same-host resize. Two hosts are
// two LibvirtDriver instances on one libvirtd, as several agents on one machine would be; the
// migration transfer is a plain copy of the exported files. No Kubernetes needed.
//
// Needs libvirtd and QEMU (bash devenv/libvirt/setup.sh, as root) and builds the guest image on
// first use (node-agent/driver/guest-image/build.sh, cached). Each boot takes about 7 s.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlavorSnapshot } from '../common/api/types.js';
import { DriverError } from '../node-agent/driver/driver.js';
import type { DomainSpec, GuestInfo, MigrationExport } from '../node-agent/driver/driver.js';
import { LibvirtDriver } from '../node-agent/driver/libvirt.js';
import { ensureTinyImage, type GuestImage } from '../node-agent/driver/libvirt-image.js';
import { buildDomainXml } from '../node-agent/driver/libvirt-xml.js';
import { LIBVIRT_URI, libvirtUnavailable } from './harness/libvirt.js';

const URI = LIBVIRT_URI;

const unavailable = libvirtUnavailable();
if (unavailable) console.warn(`e2e/libvirt.test.ts skipped: ${unavailable}`);

const GIB = 1024 ** 3;
/** What the guest kernel keeps for itself out of the domain's memory (about 35 MiB at 128 MiB). */
const KERNEL_RESERVE_KIB = 48 * 1024;
const SMALL: FlavorSnapshot = { name: 'lv.small', vcpus: 1, memoryMiB: 128, rootDiskGiB: 1, ephemeralDiskGiB: 0 };
const LARGE: FlavorSnapshot = { name: 'lv.large', vcpus: 2, memoryMiB: 192, rootDiskGiB: 2, ephemeralDiskGiB: 0 };
const LARGER: FlavorSnapshot = { name: 'lv.larger', vcpus: 2, memoryMiB: 256, rootDiskGiB: 3, ephemeralDiskGiB: 0 };

const sha256 = async (path: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
const virsh = (...args: string[]): string => execFileSync('virsh', ['-q', '-c', URI, ...args], { encoding: 'utf8' });
const allDomains = (): string[] =>
  virsh('list', '--all', '--name')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

/** Who the QEMU process of a running domain is, from libvirt's pid file and /proc. */
function qemuProcess(domain: string): { pid: number; uids: number[]; gids: number[]; capEff: bigint } {
  const pid = Number(readFileSync(`/run/libvirt/qemu/${domain}.pid`, 'utf8').trim());
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
  return {
    pid,
    uids: field('Uid').split(/\s+/).map(Number),
    gids: field('Gid').split(/\s+/).map(Number),
    capEff: BigInt(`0x${field('CapEff')}`),
  };
}

/** The guest's own report says it has the flavor: vCPUs, memory less the kernel's share, disk size. */
function expectFlavor(report: GuestInfo | undefined, flavor: FlavorSnapshot): GuestInfo {
  expect(report).toBeDefined();
  const r = report!;
  expect(r.vcpus).toBe(flavor.vcpus);
  expect(r.memoryKiB).toBeLessThanOrEqual(flavor.memoryMiB * 1024);
  expect(r.memoryKiB).toBeGreaterThan(flavor.memoryMiB * 1024 - KERNEL_RESERVE_KIB);
  expect(r.diskBytes).toBe(flavor.rootDiskGiB * GIB);
  expect(r.marker).toMatch(/^[0-9a-f]{32}$/);
  return r;
}

/** What the migration transfer does: the exported files land in a directory on the destination. */
async function transfer(exp: MigrationExport, target: string): Promise<string> {
  await mkdir(target, { recursive: true });
  for (const f of exp.files) await copyFile(join(exp.dir, f), join(target, f));
  return target;
}

async function listing(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

const timings: [string, number][] = [];
async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await fn();
  } finally {
    timings.push([what, Math.round(performance.now() - t)]);
  }
}

// Two boots in one test can take minutes when the integration suite loads both cores.
describe.skipIf(unavailable !== undefined)(
  unavailable ? `libvirt driver (skipped: ${unavailable})` : 'libvirt driver',
  { timeout: 600_000 },
  () => {
    let image: GuestImage;
    let dir: string;
    let a: LibvirtDriver;
    let b: LibvirtDriver;
    let stateA: string;
    let stateB: string;
    // Random host names: colleagues' runs may share this libvirtd.
    const suffix = randomBytes(3).toString('hex');
    const hostA = `lv-a-${suffix}`;
    const hostB = `lv-b-${suffix}`;
    const uid = randomUUID();
    const spec = (flavor: FlavorSnapshot, over: Partial<DomainSpec> = {}): DomainSpec => ({
      uid,
      name: 'default/vm-1',
      flavor,
      image: 'tiny',
      ...over,
    });
    let marker = '';

    beforeAll(async () => {
      image = await timed('guest image (build or cache)', async () => ensureTinyImage());
      dir = await mkdtemp(join(process.env.KUBENOVA_TEST_TMP ?? tmpdir(), 'kubenova-libvirt-'));
      // QEMU runs as libvirt's unprivileged user, which must pass through the state directories.
      await chmod(dir, 0o711);
      stateA = join(dir, hostA);
      stateB = join(dir, hostB);
      const capacity = { vcpus: 4, memoryMiB: 2048, diskGiB: 20 };
      a = new LibvirtDriver({ host: hostA, stateDir: stateA, capacity, images: { tiny: image }, uri: URI });
      b = new LibvirtDriver({ host: hostB, stateDir: stateB, capacity, images: { tiny: image }, uri: URI });
    });

    afterAll(async () => {
      // Whatever a failed test left: no guest of this run keeps running.
      for (const d of [a, b]) await d?.destroy(uid).catch(() => undefined);
      for (const name of allDomains().filter((n) => n.startsWith(`kn-${hostA}-`) || n.startsWith(`kn-${hostB}-`))) {
        try {
          virsh('destroy', name);
        } catch {
          // not running
        }
        virsh('undefine', name);
      }
      if (dir && !process.env.KUBENOVA_KEEP_TEST_DIRS) await rm(dir, { recursive: true, force: true });
      console.log(
        `libvirt e2e timings (ms):\n${timings.map(([w, ms]) => `  ${String(ms).padStart(6)}  ${w}`).join('\n')}`,
      );
    });

    it('boots a tiny guest whose own report matches the flavor, on a sparse disk, listed only by its host, its QEMU running as an unprivileged user that only the disk is lent to', async () => {
      expect(a.kind).toBe('libvirt');
      expect(await a.capacity()).toEqual({ vcpus: 4, memoryMiB: 2048, diskGiB: 20 });
      const info = await timed('spawn (boot 1)', () => a.spawn(spec(SMALL)));
      expect(info).toMatchObject({ uid, name: 'default/vm-1', flavor: SMALL, image: 'tiny', powerState: 'running' });
      marker = expectFlavor(await a.guestReport(uid), SMALL).marker;

      expect(allDomains()).toContain(`kn-${hostA}-${uid}`);
      expect((await a.list()).map((d) => [d.uid, d.powerState])).toEqual([[uid, 'running']]);
      expect(await b.list()).toEqual([]);
      expect(await b.get(uid)).toBeUndefined();
      const xml = virsh('dumpxml', `kn-${hostA}-${uid}`);
      expect(xml).toContain(`<kubenova:host>${hostA}</kubenova:host>`);
      expect(xml).toContain(`<kubenova:uid>${uid}</kubenova:uid>`);
      expect(xml).toContain('<kubenova:flavor name="lv.small" vcpus="1" memoryMiB="128" rootDiskGiB="1"');

      // The disk keeps the flavor's virtual size but takes next to nothing on the host.
      const disk = join(a.instanceDir(uid), 'disk.qcow2');
      const virtualSize = (
        JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', disk], { encoding: 'utf8' })) as {
          'virtual-size': number;
        }
      )['virtual-size'];
      expect(virtualSize).toBe(GIB);
      expect((await stat(disk)).blocks * 512).toBeLessThan(16 * 1024 * 1024);
      expect(info.diskBytes).toBe((await stat(disk)).size);
      expect(await listing(a.instanceDir(uid))).toEqual(['disk.qcow2', 'domain.xml']);

      // QEMU runs unprivileged: libvirt lent it the disk for as long as the guest runs, and
      // nothing else of the instance.
      const qemu = qemuProcess(`kn-${hostA}-${uid}`);
      expect(qemu.uids.every((u) => u !== 0)).toBe(true);
      expect(qemu.gids.every((g) => g !== 0)).toBe(true);
      expect(qemu.capEff).toBe(0n);
      expect((await stat(disk)).uid).toBe(qemu.uids[0]);
      expect((await stat(disk)).mode & 0o777).toBe(0o600);
      const definition = await stat(join(a.instanceDir(uid), 'domain.xml'));
      expect([definition.uid, definition.mode & 0o777]).toEqual([0, 0o600]);
      expect((await stat(a.instanceDir(uid))).mode & 0o777).toBe(0o711);

      // Idempotent: a second spawn returns the running domain without rebooting it.
      const again = await timed('spawn again (no boot)', () => a.spawn(spec(SMALL)));
      expect(again.powerState).toBe('running');
      expect((await a.guestReport(uid))?.marker).toBe(marker);
    });

    it('powers off (the guest says nothing) and on again with the same marker', async () => {
      expect((await timed('powerOff', () => a.powerOff(uid))).powerState).toBe('shutdown');
      expect((await a.powerOff(uid)).powerState).toBe('shutdown');
      expect(await a.guestReport(uid)).toBeUndefined();
      // Dynamic ownership: the stopped guest's disk is root's again.
      expect((await stat(join(a.instanceDir(uid), 'disk.qcow2'))).uid).toBe(0);
      expect((await timed('powerOn (boot 2)', () => a.powerOn(uid))).powerState).toBe('running');
      expect(expectFlavor(await a.guestReport(uid), SMALL).marker).toBe(marker);
    });

    it("resizes to a bigger flavor on another host, then reverts: the source runs the old flavor again on the backup's exact bytes", async () => {
      const exp = await timed('migrateOut', () => a.migrateOut(uid));
      expect(exp).toEqual({ dir: `${a.instanceDir(uid)}_resize`, files: ['disk.qcow2', 'domain.xml'] });
      expect((await a.get(uid))?.powerState).toBe('shutdown');
      expect(await a.guestReport(uid)).toBeUndefined();
      const backupDisk = await sha256(join(exp.dir, 'disk.qcow2'));
      expect(await sha256(join(a.instanceDir(uid), 'disk.qcow2'))).toBe(backupDisk);

      const received = await transfer(exp, join(stateB, 'incoming', 'mig-1'));
      const finished = await timed('finishMigration on B (boot 3)', () =>
        b.finishMigration(spec(LARGE), { receivedDir: received, powerOn: true }),
      );
      expect(finished).toMatchObject({ flavor: LARGE, powerState: 'running' });
      const onB = expectFlavor(await b.guestReport(uid), LARGE);
      expect(onB.marker).toBe(marker);
      expect(await listing(join(stateB, 'incoming'))).toEqual([]);
      expect(allDomains()).toEqual(expect.arrayContaining([`kn-${hostA}-${uid}`, `kn-${hostB}-${uid}`]));

      // Revert: the destination drops its copy, the source restores its backup.
      await timed('destroy on B', () => b.destroy(uid));
      const reverted = await timed('revertMigration on A (boot 4)', () =>
        a.revertMigration(spec(SMALL), { powerOn: true }),
      );
      expect(reverted).toMatchObject({ flavor: SMALL, powerState: 'running' });
      expect(await sha256(join(a.instanceDir(uid), 'disk.qcow2'))).toBe(backupDisk);
      expect(expectFlavor(await a.guestReport(uid), SMALL).marker).toBe(marker);
      expect(await a.hasBackup(uid)).toBe(false);
      expect(await b.list()).toEqual([]);
      expect(allDomains()).not.toContain(`kn-${hostB}-${uid}`);
    });

    it('resizes to a bigger flavor on another host and confirms: the guest there reports the new flavor and the same marker, nothing stays on the source', async () => {
      const exp = await timed('migrateOut', () => a.migrateOut(uid));
      const received = await transfer(exp, join(stateB, 'incoming', 'mig-2'));
      await timed('finishMigration on B (boot 5)', () =>
        b.finishMigration(spec(LARGE), { receivedDir: received, powerOn: true }),
      );
      expect(expectFlavor(await b.guestReport(uid), LARGE).marker).toBe(marker);

      await timed('confirmMigration on A', () => a.confirmMigration(uid, false));
      await a.confirmMigration(uid, false);
      expect(await a.get(uid)).toBeUndefined();
      expect(await a.hasBackup(uid)).toBe(false);
      expect(await listing(join(stateA, 'instances'))).toEqual([]);
      expect(allDomains()).not.toContain(`kn-${hostA}-${uid}`);
      expect((await b.list()).map((d) => [d.uid, d.flavor.name, d.powerState])).toEqual([[uid, 'lv.large', 'running']]);

      // A repeated finish (the received directory is gone) changes nothing and does not reboot.
      const marked = await readFile(b.consoleLog(uid), 'utf8');
      expect((await b.finishMigration(spec(LARGE), { receivedDir: received, powerOn: true })).powerState).toBe(
        'running',
      );
      expect(await readFile(b.consoleLog(uid), 'utf8')).toBe(marked);
    });

    it('resizes on the same host: the guest reports the bigger flavor and the same marker, and confirm drops the backup', async () => {
      const exp = await timed('migrateOut (same host)', () => b.migrateOut(uid));
      const backupDisk = await sha256(join(exp.dir, 'disk.qcow2'));
      await timed('finishMigration same host (boot 6)', () => b.finishMigration(spec(LARGER), { powerOn: true }));
      expect(expectFlavor(await b.guestReport(uid), LARGER).marker).toBe(marker);
      expect(await b.hasBackup(uid)).toBe(true);
      expect(await sha256(join(exp.dir, 'disk.qcow2'))).toBe(backupDisk);
      await b.confirmMigration(uid, true);
      expect(await b.hasBackup(uid)).toBe(false);
      expect(await b.get(uid)).toMatchObject({ flavor: LARGER, powerState: 'running' });
    });

    it("reports failures as DriverError naming the operation, the host and libvirt's message", async () => {
      const unknownImage = await b.spawn(spec(SMALL, { uid: 'other-1', image: 'cirros' })).catch((e: unknown) => e);
      expect(unknownImage).toBeInstanceOf(DriverError);
      expect((unknownImage as DriverError).message).toBe(
        `spawn other-1: image cirros is not registered on host ${hostB} (registered: tiny)`,
      );
      const missing = await b.powerOn('other-1').catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(DriverError);
      expect((missing as DriverError).message).toBe('powerOn other-1: no such domain');
      const badUri = new LibvirtDriver({
        host: hostB,
        stateDir: stateB,
        capacity: { vcpus: 1, memoryMiB: 128, diskGiB: 1 },
        images: {},
        uri: 'qemu:///nonexistent',
      });
      const err = await badUri.list().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DriverError);
      expect((err as DriverError).message).toMatch(
        new RegExp(
          `^list \\*: virsh list --all failed on host ${hostB}: failed to connect to the hypervisor; .*nonexistent`,
        ),
      );
    });

    it('refuses a received disk whose qcow2 header names a host file as its backing file: nothing is defined, the file keeps its owner', async () => {
      const other = randomUUID();
      const hostFile = join(dir, 'host-secret');
      await writeFile(hostFile, 'not for guests', { mode: 0o600 });
      const received = join(stateA, 'incoming', other);
      await mkdir(received, { recursive: true });
      // A definition of the instance as another host would send it, and a crafted disk.
      const xml = buildDomainXml({
        host: hostB,
        uid: other,
        name: 'default/vm-2',
        image: 'tiny',
        flavor: SMALL,
        kernel: image.kernel,
        cmdline: image.cmdline,
        disk: join(received, 'disk.qcow2'),
        consoleLog: join(received, 'console.log'),
      });
      await writeFile(join(received, 'domain.xml'), xml);
      const disk = join(received, 'disk.qcow2');
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', hostFile, '-F', 'raw', disk, '1G']);
      const err = await a
        .finishMigration(spec(SMALL, { uid: other, name: 'default/vm-2' }), { receivedDir: received, powerOn: true })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DriverError);
      expect((err as DriverError).message).toBe(
        `finishMigration ${other}: refusing disk ${disk} on host ${hostA}: it has a backing file ${JSON.stringify(hostFile)} (a disk must stand alone)`,
      );
      expect(allDomains()).not.toContain(`kn-${hostA}-${other}`);
      expect(await listing(join(stateA, 'instances'))).not.toContain(other);
      expect(await stat(hostFile)).toMatchObject({ uid: 0, gid: 0, mode: 0o100600 });
      await rm(received, { recursive: true, force: true });
    });

    it('destroy leaves no domain defined and no files, and is safe to repeat', async () => {
      await timed('destroy', () => b.destroy(uid));
      await b.destroy(uid);
      expect(allDomains().filter((n) => n.startsWith(`kn-${hostA}-`) || n.startsWith(`kn-${hostB}-`))).toEqual([]);
      expect(await b.list()).toEqual([]);
      for (const state of [stateA, stateB]) {
        expect(await listing(join(state, 'instances'))).toEqual([]);
        expect(await listing(join(state, 'console'))).toEqual([]);
      }
    });
  },
);
