// Real VMs: a VirtDriver on libvirt. Each instance is a persistent libvirt domain
// `kn-<host>-<uid>` (several agents on one machine share one libvirtd) with kubenova's
// <metadata> (host, uid, name, image, flavor), a qcow2 root disk and a domain.xml in its
// instance directory, so a migration moves the directory as with the fake driver. Guests are
// software-emulated (domain type 'qemu': no /dev/kvm) and boot the image's kernel directly.
// The host's capacity is measured on the machine (host-capacity.ts) unless configured.
//
// QEMU runs as libvirtd's unprivileged user (qemu.conf; the driver refuses a libvirtd that runs
// it as root) with dynamic ownership: libvirt chowns a guest's disk and boot files to that user
// while it runs. The agent stays root and keeps every other file out of that user's reach.
//
// libvirt is driven through `virsh` and disks through `qemu-img`, as processes: there is no
// maintained libvirt binding for Node.js (the npm packages are unmaintained forks of a native
// addon that needs libvirt's development headers and a compiler at install time), and the
// CLI is what every libvirt installation has, with libvirt's own error messages.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import {
  domainDirProblems,
  InstanceDirs,
  isDirectory,
  isFile,
  isNotFound,
  tempPathFor,
  writeFileAtomic,
} from './instance-dirs.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import type { FlavorSnapshot, ResourceAmounts } from '../../common/api/types.js';
import { DriverError } from './driver.js';
import { detectHostCapacity } from './host-capacity.js';
import type { DomainInfo, DomainSpec, GuestInfo, MigrationExport, NicSpec, VirtDriver } from './driver.js';
import { diskProblems, parseQemuImgInfo, type DiskFormat, type DiskInfo } from './libvirt-disk.js';
import type { GuestImage } from './libvirt-image.js';
import {
  buildDomainXml,
  DEFAULT_MIN_MEMORY_MIB,
  domainName,
  isValidHost,
  isValidUid,
  parseDomainMetadata,
  parseGuestReport,
  parseVirshList,
  powerStateOf,
  qemuDacLabel,
  rootDiskBytes,
  virshMessage,
  type DomainMetadata,
} from './libvirt-xml.js';
import { MigrationSteps } from './migration-steps.js';
import { checkNics } from './nics.js';
import { UidQueue } from '../../common/runtime/uid-queue.js';

export type LibvirtAccel = 'auto' | 'kvm' | 'tcg';

export interface LibvirtDriverOptions {
  /** The host this driver serves: it names the domains and only its domains are listed. */
  host: string;
  /**
   * Holds instances/<uid> (disk.qcow2, domain.xml), instances/<uid>_resize, console/<uid>.log
   * and images/<sha256>/ (the kernels and initramfs QEMU boots). QEMU's unprivileged user must
   * be able to pass through it and its parents (mode o+x).
   */
  stateDir: string;
  /**
   * What the host offers the scheduler. A resource given here is an override (a flag or chart
   * value); the others are measured on the machine at the first capacity() call.
   */
  capacity?: Partial<ResourceAmounts>;
  /** Measures the machine (default detectHostCapacity) for the disks under `dir`; tests replace it. */
  detectCapacity?: (dir: string) => Promise<ResourceAmounts>;
  /** Bootable images by name (Instance spec.image). */
  images: Record<string, GuestImage>;
  /** libvirt connection URI; default qemu:///system. */
  uri?: string;
  virsh?: string;
  qemuImg?: string;
  /** Memory floor of a domain, whatever the flavor says (default 128 MiB). */
  minMemoryMiB?: number;
  /** How long a start waits for a reporting guest's KUBENOVA-GUEST line (default 180 s; 0 = do not wait). */
  bootTimeoutMs?: number;
  /** Limit for one virsh or qemu-img call (default 120 s). */
  commandTimeoutMs?: number;
  /**
   * Hardware acceleration: 'auto' (default) uses KVM when libvirt offers it on this host and
   * software emulation (TCG) otherwise; 'kvm' requires it; 'tcg' never uses it.
   */
  accel?: LibvirtAccel;
}

/** The copies of an image's boot files that QEMU reads (see #bootFiles). */
interface BootFiles {
  kernel: string;
  initrd?: string;
}

const DISK = 'disk.qcow2';
const DEFINITION = 'domain.xml';
const POLL_MS = 200;
const CONSOLE_TAIL = 600;

interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** virsh's words for "there is no such domain". */
function noSuchDomain(stderr: string): boolean {
  return /failed to get domain|Domain not found|no domain with matching/i.test(stderr);
}

/**
 * The first directory on the way to `path` that gives others no search permission (QEMU's user
 * is neither its owner nor, as a rule, in its group), as `dir (mode 0700)`; for messages only.
 */
async function blockedOnWayTo(path: string): Promise<string | undefined> {
  const dirs: string[] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    dirs.unshift(d);
    if (d === dirname(d)) break;
  }
  for (const d of dirs) {
    const mode = await stat(d).then(
      (st) => st.mode & 0o777,
      () => undefined,
    );
    if (mode === undefined) return undefined;
    if ((mode & 0o001) === 0) return `${d} (mode ${mode.toString(8).padStart(4, '0')})`;
  }
  return undefined;
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<CommandResult> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (!err) return resolvePromise({ code: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
        if (typeof e.code === 'number') return resolvePromise({ code: e.code, stdout, stderr });
        if (e.killed) return resolvePromise({ code: -1, stdout, stderr: `${stderr}\ntimed out after ${timeoutMs} ms` });
        reject(err);
      },
    );
  });
}

export class LibvirtDriver implements VirtDriver {
  readonly kind = 'libvirt' as const;
  readonly host: string;
  readonly #stateDir: string;
  readonly #dirs: InstanceDirs;
  readonly #consoleDir: string;
  readonly #imagesDir: string;
  readonly #staged = new Map<string, Promise<BootFiles>>();
  readonly #baseDisks = new Map<string, Promise<DiskInfo>>();
  #qemuUser?: Promise<string | undefined>;
  readonly #capacityOverride: Partial<ResourceAmounts>;
  readonly #detectCapacity: (dir: string) => Promise<ResourceAmounts>;
  #capacity: Promise<ResourceAmounts> | undefined;
  readonly #images: Record<string, GuestImage>;
  readonly #uri: string;
  readonly #virsh: string;
  readonly #qemuImg: string;
  readonly #minMemoryMiB: number;
  readonly #accel: LibvirtAccel;
  #virtType?: Promise<'kvm' | 'qemu'>;
  readonly #bootTimeoutMs: number;
  readonly #commandTimeoutMs: number;
  readonly #queue = new UidQueue();
  readonly #steps: MigrationSteps;

  constructor(opts: LibvirtDriverOptions) {
    if (!isValidHost(opts.host))
      throw new Error(`libvirt driver: host name ${JSON.stringify(opts.host)} must be letters, digits, "-" or "."`);
    this.host = opts.host;
    // Absolute, because instanceDir() is handed to the migration transfer and paths go into domain XML.
    this.#stateDir = resolve(opts.stateDir);
    this.#dirs = new InstanceDirs(join(this.#stateDir, 'instances'), DEFINITION);
    this.#consoleDir = join(this.#stateDir, 'console');
    this.#imagesDir = join(this.#stateDir, 'images');
    this.#capacityOverride = { ...opts.capacity };
    this.#detectCapacity = opts.detectCapacity ?? ((dir) => detectHostCapacity(dir));
    this.#images = { ...opts.images };
    this.#uri = opts.uri ?? 'qemu:///system';
    this.#virsh = opts.virsh ?? 'virsh';
    this.#qemuImg = opts.qemuImg ?? 'qemu-img';
    this.#minMemoryMiB = opts.minMemoryMiB ?? DEFAULT_MIN_MEMORY_MIB;
    this.#accel = opts.accel ?? 'auto';
    this.#bootTimeoutMs = opts.bootTimeoutMs ?? 180_000;
    this.#commandTimeoutMs = opts.commandTimeoutMs ?? 120_000;
    this.#steps = new MigrationSteps({
      dirs: this.#dirs,
      disk: DISK,
      checkUid: (op, uid) => this.#checkUid(op, uid),
      serial: (uid, fn) => this.#queue.run(uid, fn),
      definitionUid: async (dir) => (await this.#definitionIn(dir))?.uid,
      powerOff: async (op, uid) => {
        if ((await this.#state(op, uid)) === undefined) return false;
        // A hard stop: the guests have no ACPI agent, and the marker is written with fsync at boot.
        await this.#stop(op, uid);
        return true;
      },
      isRunning: async (op, uid) => {
        const state = await this.#state(op, uid);
        return state !== undefined && powerStateOf(state) === 'running';
      },
      stopBeforeReplace: (op, uid) => this.#stop(op, uid),
      checkSpec: (op, spec) => {
        this.#image(op, spec.uid, spec.image);
        if (spec.nics) checkNics(op, spec.uid, spec.nics);
      },
      inspect: (op, spec, dir) => this.#inspect(op, spec, dir),
      growDisk: (op, uid, rootDiskGiB) => this.#growDisk(op, uid, rootDiskGiB),
      settle: (op, spec, powerOn) => this.#settle(op, spec, this.#image(op, spec.uid, spec.image), powerOn),
      undefine: async (op, uid) => {
        await this.#undefine(op, uid);
        await rm(this.consoleLog(uid), { force: true });
      },
      names: (uid) => ({ domain: `domain ${this.domainName(uid)}`, host: `host ${this.host}` }),
    });
  }

  /**
   * A qcow2 of the root disk's virtual size (at least 1 GiB when the flavor leaves it to the
   * image) and its metadata.
   */
  maxDiskBytes(flavor: Parameters<VirtDriver['maxDiskBytes']>[0]): number {
    const virtual = Math.max(rootDiskBytes(flavor), 1024 ** 3);
    return virtual + Math.ceil(virtual / 256) + 16 * 1024 * 1024;
  }

  async capacity(): Promise<ResourceAmounts> {
    // Measured once: the machine does not change under a running agent, and the tracker reads
    // it only to register the host.
    this.#capacity ??= this.#measureCapacity();
    try {
      return { ...(await this.#capacity) };
    } catch (err) {
      this.#capacity = undefined;
      throw err;
    }
  }

  async #measureCapacity(): Promise<ResourceAmounts> {
    const given = this.#capacityOverride;
    if (given.vcpus !== undefined && given.memoryMiB !== undefined && given.diskGiB !== undefined) {
      return { vcpus: given.vcpus, memoryMiB: given.memoryMiB, diskGiB: given.diskGiB };
    }
    // The instance directories are where every root disk is written.
    const measured = await this.#detectCapacity(this.#dirs.root);
    return {
      vcpus: given.vcpus ?? measured.vcpus,
      memoryMiB: given.memoryMiB ?? measured.memoryMiB,
      diskGiB: given.diskGiB ?? measured.diskGiB,
    };
  }

  /**
   * Undefined when libvirtd answers on this driver's URI and runs a hypervisor, else what went
   * wrong. libvirtd may start after the agent (in the Helm chart it is another pod), so the
   * agent waits on this before it registers the host.
   */
  async answers(): Promise<string | undefined> {
    const res = await this.#virshRun(['version']);
    if (res.code === 0) return undefined;
    const why = virshMessage(res.stderr) || `exit ${res.code}`;
    return `virsh -c ${this.#uri} version failed on host ${this.host}: ${why}`;
  }

  instanceDir(uid: string): string {
    this.#checkUid('instanceDir', uid);
    return this.#dirs.dir(uid);
  }

  /** The libvirt domain name of `uid` on this host. */
  domainName(uid: string): string {
    return domainName(this.host, uid);
  }

  /** The serial console log of `uid`'s current boot. */
  consoleLog(uid: string): string {
    return join(this.#consoleDir, `${uid}.log`);
  }

  async spawn(spec: DomainSpec): Promise<DomainInfo> {
    const uid = spec.uid;
    this.#checkUid('spawn', uid);
    return this.#queue.run(uid, async () => {
      const image = this.#image('spawn', uid, spec.image);
      if (spec.nics) checkNics('spawn', uid, spec.nics);
      const state = await this.#state('spawn', uid);
      if (state !== undefined) {
        if (powerStateOf(state) !== 'running') await this.#start('spawn', uid);
        return this.#infoOrFail('spawn', uid);
      }
      const dir = this.instanceDir(uid);
      const disk = join(dir, DISK);
      // A directory with a disk and this instance's definition is a spawn interrupted before
      // the domain was defined: carry on with its disk. Anything else starts over.
      const def = await this.#definitionIn(dir);
      if (!(def?.uid === uid && (await isFile(disk)))) {
        await this.#dirs.removeDomainDir(uid);
        await mkdir(dir, { recursive: true, mode: 0o711 });
        await this.#createDisk('spawn', uid, disk, image, spec.flavor);
      }
      // A disk made here from an image, or left by an interrupted spawn: inspected all the same.
      await this.#inspect('spawn', spec, dir);
      await this.#define('spawn', spec, image);
      await this.#start('spawn', uid);
      return this.#infoOrFail('spawn', uid);
    });
  }

  async powerOff(uid: string): Promise<DomainInfo> {
    this.#checkUid('powerOff', uid);
    return this.#queue.run(uid, async () => {
      const state = await this.#state('powerOff', uid);
      if (state === undefined) throw new DriverError('powerOff', uid, 'no such domain');
      await this.#stop('powerOff', uid);
      return this.#infoOrFail('powerOff', uid);
    });
  }

  async powerOn(uid: string): Promise<DomainInfo> {
    this.#checkUid('powerOn', uid);
    return this.#queue.run(uid, async () => {
      const state = await this.#state('powerOn', uid);
      if (state === undefined) throw new DriverError('powerOn', uid, 'no such domain');
      if (powerStateOf(state) !== 'running') await this.#start('powerOn', uid);
      return this.#infoOrFail('powerOn', uid);
    });
  }

  async destroy(uid: string): Promise<void> {
    this.#checkUid('destroy', uid);
    await this.#queue.run(uid, async () => {
      await this.#stop('destroy', uid);
      await this.#undefine('destroy', uid);
      await this.#dirs.removeDomainDir(uid);
      await rm(this.#dirs.backupDir(uid), { recursive: true, force: true });
      await rm(this.consoleLog(uid), { force: true });
      await this.#dirs.removeStrayTempDirs(uid);
    });
  }

  async get(uid: string): Promise<DomainInfo | undefined> {
    this.#checkUid('get', uid);
    const state = await this.#state('get', uid);
    if (state === undefined) return undefined;
    const meta = await this.#metadata('get', uid);
    return meta && this.#info(meta, state);
  }

  async list(): Promise<DomainInfo[]> {
    const res = await this.#virshRun(['list', '--all']);
    if (res.code !== 0) throw this.#error('list', '*', ['list', '--all'], res);
    const prefix = domainName(this.host, '');
    const infos: DomainInfo[] = [];
    for (const [name, state] of parseVirshList(res.stdout)) {
      const uid = name.slice(prefix.length);
      if (!name.startsWith(prefix) || !isValidUid(uid)) continue;
      // Another host whose name extends this one ('node-a' and 'node-a-2') matches the prefix too.
      const meta = await this.#metadata('list', uid, { lenient: true });
      if (meta) infos.push(await this.#info(meta, state));
    }
    return infos.sort((a, b) => (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0));
  }

  async guestReport(uid: string): Promise<GuestInfo | undefined> {
    this.#checkUid('guestReport', uid);
    const state = await this.#state('guestReport', uid);
    if (state === undefined || powerStateOf(state) !== 'running') return undefined;
    // QEMU truncates the log at every start (append='off'), so it holds only the latest boot.
    const text = await readIfExists(this.consoleLog(uid));
    return text === undefined ? undefined : parseGuestReport(text);
  }

  migrateOut(uid: string): Promise<MigrationExport> {
    return this.#steps.migrateOut(uid);
  }

  finishMigration(spec: DomainSpec, opts: { receivedDir?: string; powerOn: boolean }): Promise<DomainInfo> {
    return this.#steps.finishMigration(spec, opts);
  }

  confirmMigration(uid: string, sameHost: boolean): Promise<void> {
    return this.#steps.confirmMigration(uid, sameHost);
  }

  revertMigration(spec: DomainSpec, opts: { powerOn: boolean }): Promise<DomainInfo> {
    return this.#steps.revertMigration(spec, opts);
  }

  hasBackup(uid: string): Promise<boolean> {
    return this.#steps.hasBackup(uid);
  }

  // ---- domain and disk steps ----

  /**
   * Makes the libvirt definition match `spec` (flavor, name, image, this host's paths) and the
   * guest the asked power state. A running guest whose definition changes is stopped first:
   * vCPUs and memory change offline, as Nova's finish_migration defines and then starts.
   */
  async #settle(op: string, spec: DomainSpec, image: GuestImage, powerOn: boolean): Promise<DomainInfo> {
    const uid = spec.uid;
    const file = join(this.instanceDir(uid), DEFINITION);
    let state = await this.#state(op, uid);
    const defined = state === undefined ? undefined : await this.#metadata(op, uid, { lenient: true });
    const current = await readIfExists(file);
    // A spec without NICs keeps the domain's: libvirt's definition here, else the one that
    // came with the directory (a received or restored domain carries its NICs with it).
    const nics: NicSpec[] =
      spec.nics ?? defined?.nics ?? (current === undefined ? undefined : parseDomainMetadata(current)?.nics) ?? [];
    const xml = await this.#xml(op, { ...spec, nics }, image);
    // Compared as libvirt will hold it (an empty extraSpecs is not written, for one).
    const sameMeta = defined !== undefined && isDeepStrictEqual(defined, parseDomainMetadata(xml));
    if (!sameMeta || current !== xml) {
      if (state !== undefined) await this.#stop(op, uid);
      // Written only when it differs, so a restored backup's definition keeps its bytes.
      if (current !== xml) await writeFileAtomic(file, xml);
      await this.#virshOrFail(op, uid, ['define', file]);
      state = await this.#state(op, uid);
    }
    const running = state !== undefined && powerStateOf(state) === 'running';
    if (powerOn && !running) await this.#start(op, uid);
    if (!powerOn && running) await this.#stop(op, uid);
    return this.#infoOrFail(op, uid);
  }

  /**
   * The domain type this host runs guests with, decided once. libvirt offers KVM whenever
   * /dev/kvm opens, but a guest only runs under KVM when the CPU exposes its virtualization
   * extensions (a nested VM without them starts KVM guests paused), so 'auto' asks for both.
   */
  #domainType(op: string, uid: string): Promise<'kvm' | 'qemu'> {
    if (this.#accel === 'tcg') return Promise.resolve('qemu');
    this.#virtType ??= (async () => {
      const res = await this.#virshRun(['domcapabilities', '--virttype', 'kvm']);
      const cpu = await readIfExists('/proc/cpuinfo');
      const extensions = /^flags\s*:.*\b(vmx|svm)\b/m.test(cpu ?? '');
      if (res.code === 0 && (extensions || this.#accel === 'kvm')) return 'kvm';
      if (this.#accel === 'kvm') {
        this.#virtType = undefined;
        throw this.#error(op, uid, ['domcapabilities', '--virttype', 'kvm'], res);
      }
      return 'qemu';
    })();
    return this.#virtType;
  }

  async #xml(op: string, spec: DomainSpec, image: GuestImage): Promise<string> {
    const dir = this.instanceDir(spec.uid);
    const virtType = await this.#domainType(op, spec.uid);
    const boot = await this.#bootFiles(op, spec.uid, image);
    return buildDomainXml({
      host: this.host,
      uid: spec.uid,
      name: spec.name,
      image: spec.image,
      flavor: spec.flavor,
      kernel: boot.kernel,
      initrd: boot.initrd,
      cmdline: image.cmdline,
      disk: join(dir, DISK),
      consoleLog: this.consoleLog(spec.uid),
      minMemoryMiB: this.#minMemoryMiB,
      virtType,
      nics: spec.nics ?? [],
    });
  }

  async #define(op: string, spec: DomainSpec, image: GuestImage): Promise<void> {
    const file = join(this.instanceDir(spec.uid), DEFINITION);
    await writeFileAtomic(file, await this.#xml(op, spec, image));
    await this.#virshOrFail(op, spec.uid, ['define', file]);
  }

  /**
   * Starts the domain and, for an image whose guest reports, waits until it has booted. A
   * definition this driver would now write differently (one from an earlier version, which
   * ran QEMU as root) is replaced first, so every boot runs on the current one.
   */
  async #start(op: string, uid: string): Promise<void> {
    await this.#checkQemuUser(op, uid);
    const meta = await this.#metadata(op, uid, { lenient: true });
    const image = meta && this.#images[meta.image];
    if (meta && image) {
      const spec: DomainSpec = { uid, name: meta.name, flavor: meta.flavor, image: meta.image, nics: meta.nics };
      const file = join(this.instanceDir(uid), DEFINITION);
      const xml = await this.#xml(op, spec, image);
      if ((await readIfExists(file)) !== xml) {
        await writeFileAtomic(file, xml);
        await this.#virshOrFail(op, uid, ['define', file]);
      }
    }
    await this.#restrictInstanceDir(uid);
    // Only virtlogd (root) opens the console logs: QEMU's user needs nothing here.
    await mkdir(this.#consoleDir, { recursive: true, mode: 0o700 });
    // No line of an earlier boot may be taken for this one's.
    await rm(this.consoleLog(uid), { force: true });
    const res = await this.#virshRun(['start', this.domainName(uid)]);
    if (res.code !== 0) {
      // Started by someone else meanwhile (or paused): not a boot of ours to wait for.
      if (/already active/i.test(res.stderr)) return;
      const blocked = /permission denied/i.test(res.stderr)
        ? await blockedOnWayTo(join(this.instanceDir(uid), DISK))
        : undefined;
      const hint = blocked
        ? ` (QEMU runs as an unprivileged user, which must pass through every directory above its disk; ${blocked} lets others no search)`
        : '';
      throw this.#error(op, uid, ['start', this.domainName(uid)], res, hint);
    }
    if (image?.guestReport && this.#bootTimeoutMs > 0) await this.#waitForGuest(op, uid);
  }

  /**
   * Refuses to start guests when libvirtd runs QEMU as root: its DAC label (`virsh
   * capabilities`) names the user qemu.conf sets. Asked once; a libvirtd that shows no DAC
   * label (a session daemon runs QEMU as its own user) is taken at its word.
   */
  async #checkQemuUser(op: string, uid: string): Promise<void> {
    this.#qemuUser ??= (async () => {
      const res = await this.#virshRun(['capabilities']);
      if (res.code !== 0) {
        this.#qemuUser = undefined;
        throw this.#error(op, uid, ['capabilities'], res);
      }
      return qemuDacLabel(res.stdout, await this.#domainType(op, uid));
    })();
    const label = await this.#qemuUser;
    if (label !== undefined && /^\+?0:/.test(label)) {
      throw new DriverError(
        op,
        uid,
        `libvirtd on host ${this.host} runs QEMU as root (DAC label ${label}); set an unprivileged user and group, with dynamic_ownership = 1, in its qemu.conf`,
      );
    }
  }

  /**
   * What QEMU's user may reach of an instance: the directories to pass through (0711), not
   * the files. libvirt chowns the disk to that user while the guest runs and back to root after;
   * disk and definition stay 0600 (a received directory keeps the modes it came with until here).
   */
  async #restrictInstanceDir(uid: string): Promise<void> {
    const dir = this.instanceDir(uid);
    await mkdir(this.#dirs.root, { recursive: true, mode: 0o711 });
    // The state directory may have been made private (0700) by whatever created it first; QEMU
    // needs to pass through it (search, not read) to reach the disk.
    const state = await stat(this.#stateDir);
    if ((state.mode & 0o001) === 0) await chmod(this.#stateDir, (state.mode & 0o7777) | 0o001);
    await chmod(this.#dirs.root, 0o711);
    // A missing directory or file is for `virsh start` to report.
    for (const [path, mode] of [
      [dir, 0o711],
      [join(dir, DISK), 0o600],
      [join(dir, DEFINITION), 0o600],
    ] as const) {
      try {
        await chmod(path, mode);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  /**
   * The kernel and initramfs a guest of `image` boots, copied into `<stateDir>/images/<sha256>/`
   * (once per content): QEMU runs unprivileged and libvirt chowns them to its user, so they
   * must sit where that user can pass (an image in root's home directory is not) and must not
   * be the image's own files. Named by content, so a definition keeps pointing at the files
   * it was written with while a changed image gets a directory of its own.
   */
  #bootFiles(op: string, uid: string, image: GuestImage): Promise<BootFiles> {
    let staged = this.#staged.get(image.name);
    if (!staged) {
      staged = this.#stageBootFiles(image).catch((err: unknown) => {
        this.#staged.delete(image.name);
        throw new DriverError(
          op,
          uid,
          `cannot stage the boot files of image ${image.name} on host ${this.host}: ${(err as Error).message}`,
        );
      });
      this.#staged.set(image.name, staged);
    }
    return staged;
  }

  async #stageBootFiles(image: GuestImage): Promise<BootFiles> {
    const sources: [keyof BootFiles, string][] = [['kernel', image.kernel]];
    if (image.initrd) sources.push(['initrd', image.initrd]);
    const hash = createHash('sha256');
    for (const [name, path] of sources) {
      hash.update(`${name}\0`);
      for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    }
    const dir = join(this.#imagesDir, hash.digest('hex').slice(0, 32));
    const files: BootFiles = { kernel: join(dir, 'kernel') };
    if (image.initrd) files.initrd = join(dir, 'initrd');
    if (await isDirectory(dir)) return files;
    await mkdir(this.#imagesDir, { recursive: true, mode: 0o711 });
    const tmp = tempPathFor(dir);
    await mkdir(tmp, { mode: 0o711 });
    try {
      for (const [name, path] of sources) {
        await copyFile(path, join(tmp, name));
        // Readable by all: the guests of several instances share them, and libvirt gives each
        // back to root when one of them stops.
        await chmod(join(tmp, name), 0o644);
      }
      await chmod(tmp, 0o711);
      await rename(tmp, dir);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      // Another driver on this state directory staged the same files meanwhile.
      if (await isDirectory(dir)) return files;
      throw err;
    }
    return files;
  }

  async #waitForGuest(op: string, uid: string): Promise<GuestInfo> {
    const started = Date.now();
    let lastStateCheck = started;
    for (;;) {
      const text = (await readIfExists(this.consoleLog(uid))) ?? '';
      const report = parseGuestReport(text);
      if (report) return report;
      const now = Date.now();
      if (now - started > this.#bootTimeoutMs) {
        throw new DriverError(
          op,
          uid,
          `the guest of ${this.domainName(uid)} on host ${this.host} did not report within ${Math.round(this.#bootTimeoutMs / 1000)} s; console: ${JSON.stringify(text.slice(-CONSOLE_TAIL))}`,
        );
      }
      if (now - lastStateCheck >= 1000) {
        lastStateCheck = now;
        const state = await this.#state(op, uid);
        if (state === undefined || powerStateOf(state) !== 'running') {
          throw new DriverError(
            op,
            uid,
            `the guest of ${this.domainName(uid)} on host ${this.host} stopped while booting (${state ?? 'undefined'}); console: ${JSON.stringify(text.slice(-CONSOLE_TAIL))}`,
          );
        }
      }
      await sleep(POLL_MS);
    }
  }

  /** A hard stop (`virsh destroy`); idempotent. */
  async #stop(op: string, uid: string): Promise<void> {
    const args = ['destroy', this.domainName(uid)];
    const res = await this.#virshRun(args);
    if (res.code !== 0 && !noSuchDomain(res.stderr) && !/not running/i.test(res.stderr))
      throw this.#error(op, uid, args, res);
  }

  async #undefine(op: string, uid: string): Promise<void> {
    const args = ['undefine', this.domainName(uid)];
    const res = await this.#virshRun(args);
    if (res.code !== 0 && !noSuchDomain(res.stderr)) throw this.#error(op, uid, args, res);
  }

  /** libvirt's state of the domain (`shut off`, `running`, ...), undefined when it is not defined. */
  async #state(op: string, uid: string): Promise<string | undefined> {
    const args = ['domstate', this.domainName(uid)];
    const res = await this.#virshRun(args);
    if (res.code === 0) return res.stdout.trim().split('\n')[0]?.trim();
    if (noSuchDomain(res.stderr)) return undefined;
    throw this.#error(op, uid, args, res);
  }

  /**
   * kubenova's metadata of the defined domain. A domain by this name that is not this host's
   * instance is an error, or with `lenient` (listing; the domain vanished meanwhile) skipped.
   */
  async #metadata(op: string, uid: string, opts: { lenient?: boolean } = {}): Promise<DomainMetadata | undefined> {
    const args = ['dumpxml', '--inactive', this.domainName(uid)];
    const res = await this.#virshRun(args);
    if (res.code !== 0) {
      if (noSuchDomain(res.stderr)) return undefined;
      throw this.#error(op, uid, args, res);
    }
    const meta = parseDomainMetadata(res.stdout);
    if (meta?.host === this.host && meta.uid === uid) return meta;
    if (opts.lenient) return undefined;
    throw new DriverError(op, uid, `domain ${this.domainName(uid)} has no kubenova metadata for host ${this.host}`);
  }

  async #info(meta: DomainMetadata, state: string): Promise<DomainInfo> {
    let diskBytes = 0;
    try {
      diskBytes = (await stat(join(this.instanceDir(meta.uid), DISK))).size;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return {
      uid: meta.uid,
      name: meta.name,
      flavor: structuredClone(meta.flavor),
      image: meta.image,
      powerState: powerStateOf(state),
      diskBytes,
      nics: structuredClone(meta.nics),
    };
  }

  async #infoOrFail(op: string, uid: string): Promise<DomainInfo> {
    const state = await this.#state(op, uid);
    const meta = state === undefined ? undefined : await this.#metadata(op, uid);
    if (state === undefined || !meta)
      throw new DriverError(op, uid, `domain ${this.domainName(uid)} vanished from host ${this.host}`);
    return this.#info(meta, state);
  }

  /**
   * A sparse qcow2 of the flavor's root disk size: empty, or the image's base disk (inspected
   * first, read in its stated format) converted and grown to it. The agent's alone (0600) until
   * libvirt lends it to QEMU.
   */
  async #createDisk(op: string, uid: string, disk: string, image: GuestImage, flavor: FlavorSnapshot): Promise<void> {
    const tmp = tempPathFor(disk);
    try {
      if (image.disk) {
        const base = await this.#baseDisk(op, uid, image, flavor);
        const format = image.diskFormat ?? 'raw';
        await this.#qemuImgOrFail(op, uid, ['convert', '-q', '-f', format, '-O', 'qcow2', image.disk, tmp]);
        const size = rootDiskBytes(flavor, base.virtualSize);
        if (size > base.virtualSize)
          await this.#qemuImgOrFail(op, uid, ['resize', '-q', '-f', 'qcow2', tmp, String(size)]);
      } else {
        await this.#qemuImgOrFail(op, uid, ['create', '-q', '-f', 'qcow2', tmp, String(rootDiskBytes(flavor))]);
      }
      await chmod(tmp, 0o600);
      await rename(tmp, disk);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Grows the root disk's virtual size to the flavor's (never shrinks; existing bytes stay). */
  async #growDisk(op: string, uid: string, rootDiskGiB: number): Promise<void> {
    const disk = join(this.instanceDir(uid), DISK);
    const current = (await this.#diskInfo(op, uid, disk, 'qcow2')).virtualSize;
    const target = rootDiskBytes({ rootDiskGiB }, current);
    if (target <= current) return;
    // qemu-img needs the image unused; the guest starts again when the flavor is applied.
    await this.#stop(op, uid);
    await this.#qemuImgOrFail(op, uid, ['resize', '-q', '-f', 'qcow2', disk, String(target)]);
  }

  /**
   * Refuses (DriverError saying what is wrong) a domain directory to define spec from unless it
   * holds only its files, as regular files, and a disk that stands alone: qcow2 (the format
   * pinned, never probed), no backing or data file that QEMU would open and libvirt would chown
   * to QEMU's user, a virtual size within the flavor's root disk (the image's size when the
   * flavor leaves the root disk at 0).
   */
  async #inspect(op: string, spec: DomainSpec, dir: string): Promise<void> {
    const uid = spec.uid;
    const files = await domainDirProblems(dir, { definition: DEFINITION, disk: DISK });
    if (files.length > 0) throw new DriverError(op, uid, `refusing ${dir} on host ${this.host}: ${files.join('; ')}`);
    const image = this.#image(op, uid, spec.image);
    const base = image.disk ? await this.#baseDisk(op, uid, image) : undefined;
    const f = spec.flavor;
    const limit =
      f.rootDiskGiB > 0
        ? { bytes: rootDiskBytes(f), what: `flavor ${f.name}'s ${f.rootDiskGiB} GiB root disk` }
        : base
          ? { bytes: base.virtualSize, what: `image ${image.name}'s disk (flavor ${f.name} has a 0 GiB root disk)` }
          : { bytes: rootDiskBytes(f), what: `the disk of a 0 GiB root disk (flavor ${f.name})` };
    const disk = join(dir, DISK);
    const problems = diskProblems(await this.#diskInfo(op, uid, disk, 'qcow2'), { format: 'qcow2', limit });
    if (problems.length > 0)
      throw new DriverError(op, uid, `refusing disk ${disk} on host ${this.host}: ${problems.join('; ')}`);
  }

  /**
   * The image's base disk, inspected once: in its stated format, standing alone, and (given a
   * flavor with a root disk) no bigger than that root disk, as Nova refuses an image bigger
   * than the flavor's disk.
   */
  async #baseDisk(op: string, uid: string, image: GuestImage, flavor?: FlavorSnapshot): Promise<DiskInfo> {
    const path = image.disk!;
    const format = image.diskFormat ?? 'raw';
    let info = this.#baseDisks.get(image.name);
    if (!info) {
      info = this.#diskInfo(op, uid, path, format).then((i) => {
        const problems = diskProblems(i, { format });
        if (problems.length > 0)
          throw new DriverError(
            op,
            uid,
            `refusing image ${image.name}'s disk ${path} on host ${this.host}: ${problems.join('; ')}`,
          );
        return i;
      });
      info.catch(() => this.#baseDisks.delete(image.name));
      this.#baseDisks.set(image.name, info);
    }
    const base = await info;
    if (flavor && flavor.rootDiskGiB > 0 && base.virtualSize > rootDiskBytes(flavor)) {
      throw new DriverError(
        op,
        uid,
        `image ${image.name}'s disk (${base.virtualSize} bytes) is bigger than flavor ${flavor.name}'s ${flavor.rootDiskGiB} GiB root disk`,
      );
    }
    return base;
  }

  /** `qemu-img info` of a disk read as `format` (never probed); -U: readable while a guest holds it. */
  async #diskInfo(op: string, uid: string, disk: string, format: DiskFormat): Promise<DiskInfo> {
    const res = await this.#qemuImgRun(['info', '-U', '-f', format, '--output=json', disk]);
    if (res.code !== 0) {
      const why = res.stderr.trim().replace(/^qemu-img:\s*/, '') || `exit ${res.code}`;
      throw new DriverError(
        op,
        uid,
        `refusing disk ${disk} on host ${this.host}: it cannot be read as ${format}: ${why}`,
      );
    }
    try {
      return parseQemuImgInfo(res.stdout);
    } catch (err) {
      throw new DriverError(op, uid, `qemu-img info ${disk} on host ${this.host}: ${(err as Error).message}`);
    }
  }

  // ---- files ----

  /** kubenova's metadata in `<dir>/domain.xml`; undefined when there is none or it is not ours. */
  async #definitionIn(dir: string): Promise<DomainMetadata | undefined> {
    const xml = await readIfExists(join(dir, DEFINITION));
    return xml === undefined ? undefined : parseDomainMetadata(xml);
  }

  // ---- commands ----

  #image(op: string, uid: string, name: string): GuestImage {
    const image = this.#images[name];
    if (!image) {
      const known = Object.keys(this.#images).sort().join(', ') || 'none';
      throw new DriverError(op, uid, `image ${name} is not registered on host ${this.host} (registered: ${known})`);
    }
    return image;
  }

  async #virshRun(args: string[]): Promise<CommandResult> {
    try {
      return await run(this.#virsh, ['-q', '-c', this.#uri, ...args], this.#commandTimeoutMs);
    } catch (err) {
      return { code: -1, stdout: '', stderr: `cannot run ${this.#virsh}: ${(err as Error).message}` };
    }
  }

  async #virshOrFail(op: string, uid: string, args: string[]): Promise<string> {
    const res = await this.#virshRun(args);
    if (res.code !== 0) throw this.#error(op, uid, args, res);
    return res.stdout;
  }

  async #qemuImgRun(args: string[]): Promise<CommandResult> {
    try {
      return await run(this.#qemuImg, args, this.#commandTimeoutMs);
    } catch (err) {
      return { code: -1, stdout: '', stderr: `cannot run ${this.#qemuImg}: ${(err as Error).message}` };
    }
  }

  async #qemuImgOrFail(op: string, uid: string, args: string[]): Promise<string> {
    const res = await this.#qemuImgRun(args);
    if (res.code !== 0)
      throw new DriverError(
        op,
        uid,
        `${this.#qemuImg} ${args.join(' ')} failed on host ${this.host}: ${res.stderr.trim() || `exit ${res.code}`}`,
      );
    return res.stdout;
  }

  #error(op: string, uid: string, args: string[], res: CommandResult, hint = ''): DriverError {
    return new DriverError(
      op,
      uid,
      `virsh ${args.join(' ')} failed on host ${this.host}: ${virshMessage(res.stderr) || `exit ${res.code}`}${hint}`,
    );
  }

  #checkUid(operation: string, uid: string): void {
    if (!isValidUid(uid))
      throw new DriverError(operation, uid, 'uid must be letters, digits, "-" or "." and not start with "."');
  }
}
