// The kubenova image's base layer: a Debian root filesystem made by mmdebstrap from the
// package list in kubenova/packages.txt, with libvirt's container config and the image's
// user added. It is the slow part of the build (minutes: every package is downloaded and
// installed), so it is cached on its own as an OCI layout, keyed by everything that goes in;
// a change to the app reuses it. The Debian archive moves on without the key changing: delete
// the cached base to pick up new package versions.
import { appendFile, copyFile, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pruneCache } from './cache.js';
import { run } from './exec.js';
import { hashFiles, inputsTag } from './inputs.js';
import { addLayer, newLayout, workDir } from './oci.js';
import { SOURCE_DIR } from './paths.js';

export const SUITE = 'bookworm';
/**
 * Debian's essential packages plus apt, which installs the list. minbase would add every
 * `Priority: required` package on top, none of which the image runs.
 */
export const VARIANT = 'apt';
/**
 * Documentation, manuals and translations are not installed at all (dpkg skips the paths),
 * except the copyright files that the licences ask to ship with the binaries.
 */
export const DPKG_OPTIONS = [
  'path-exclude=/usr/share/man/*',
  'path-exclude=/usr/share/info/*',
  'path-exclude=/usr/share/locale/*',
  'path-include=/usr/share/locale/locale.alias',
  'path-exclude=/usr/share/doc/*',
  'path-include=/usr/share/doc/*/copyright',
  'path-exclude=/usr/share/lintian/*',
];
/**
 * Sets up merged /usr before the packages arrive, so that init-system-helpers' dependency is
 * met by usr-is-merged instead of usrmerge, which would bring Perl (about 45 MB) along.
 */
const MERGED_USR_HOOKS = '/usr/share/mmdebstrap/hooks/merged-usr';

/** The image's default user: numeric 1000:1000 in the image config, named here for tools that look it up. */
export const APP_USER = { name: 'kubenova', uid: 1000, gid: 1000 };
/**
 * The unprivileged user QEMU runs as (qemu.conf's `user` and `group`), libvirt's built-in one,
 * without which libvirtd does not start. libvirt-daemon-system's postinst would create it (with
 * Debian's fixed uid and gid); the image leaves that package out.
 */
export const LIBVIRT_QEMU_USER = { name: 'libvirt-qemu', uid: 64055, gid: 64055 };

/** Files installs and the package tools leave behind that nothing in the image reads. */
const LEFTOVERS = [
  'var/cache/debconf/config.dat-old',
  'var/cache/debconf/templates.dat-old',
  'var/lib/dpkg/status-old',
  'var/lib/dpkg/diversions-old',
  'var/cache/ldconfig/aux-cache',
  'var/log/dpkg.log',
  'var/log/alternatives.log',
  'var/log/apt/history.log',
  'var/log/apt/term.log',
  'var/log/apt/eipp.log.xz',
];

/** Directories libvirtd and QEMU write to, present before a volume or the daemon creates them. */
const LIBVIRT_DIRS = ['var/lib/libvirt/qemu', 'var/log/libvirt/qemu', 'var/cache/libvirt/qemu'];

/** Where this folder's kubenova files are: the package list and libvirtd's config. */
const KUBENOVA_DIR = join(SOURCE_DIR, 'kubenova');
/**
 * libvirt's config files the image ships in /etc/libvirt, by name. qemu.conf (QEMU as an
 * unprivileged user with dynamic ownership) is the chart's: one copy for the image and the
 * ConfigMap the chart mounts over it.
 */
const LIBVIRT_CONFIG: Record<string, string> = {
  'qemu.conf': join(SOURCE_DIR, '..', '..', 'charts', 'kubenova', 'files', 'qemu.conf'),
  'libvirtd.conf': join(KUBENOVA_DIR, 'libvirt', 'libvirtd.conf'),
};
/** Bump when the way the base is put together changes without any input changing. */
const RECIPE = 1;

/** Package names from packages.txt: one a line, `#` starts a comment. Sorted and unique. */
export function parsePackageList(text: string): string[] {
  const names = new Set<string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    if (!/^[a-z0-9][a-z0-9+.-]+$/.test(line))
      throw new Error(`packages.txt line ${i + 1}: ${JSON.stringify(line)} is not a Debian package name`);
    names.add(line);
  }
  if (names.size === 0) throw new Error('packages.txt names no package');
  return [...names].sort();
}

export function mmdebstrapArgs(packages: readonly string[], target: string): string[] {
  return [
    `--variant=${VARIANT}`,
    `--include=${packages.join(',')}`,
    `--hook-dir=${MERGED_USR_HOOKS}`,
    ...DPKG_OPTIONS.map((o) => `--dpkgopt=${o}`),
    '--format=directory',
    // No mirror: mmdebstrap then uses Debian's own, with the updates and security suites.
    SUITE,
    target,
  ];
}

/** The lines that make APP_USER and LIBVIRT_QEMU_USER known to /etc/passwd and /etc/group. */
export function accountEntries(): { passwd: string; group: string } {
  const users = [
    { ...APP_USER, home: '/nonexistent' },
    { ...LIBVIRT_QEMU_USER, home: '/var/lib/libvirt' },
  ];
  return {
    passwd: users.map((u) => `${u.name}:x:${u.uid}:${u.gid}::${u.home}:/usr/sbin/nologin\n`).join(''),
    group: users.map((u) => `${u.name}:x:${u.gid}:\n`).join(''),
  };
}

export async function readPackages(): Promise<string[]> {
  return parsePackageList(await readFile(join(KUBENOVA_DIR, 'packages.txt'), 'utf8'));
}

/** Our changes to what the packages installed: libvirt's config, the user, fewer leftovers. */
async function customize(root: string): Promise<void> {
  await mkdir(join(root, 'etc', 'libvirt'), { recursive: true });
  for (const [f, src] of Object.entries(LIBVIRT_CONFIG)) await copyFile(src, join(root, 'etc', 'libvirt', f));
  for (const d of LIBVIRT_DIRS) await mkdir(join(root, d), { recursive: true, mode: 0o755 });
  const { passwd, group } = accountEntries();
  await appendFile(join(root, 'etc', 'passwd'), passwd);
  await appendFile(join(root, 'etc', 'group'), group);
  for (const f of LEFTOVERS) await rm(join(root, f), { force: true });
}

export interface BaseLayout {
  /** An OCI layout whose image (umoci's work tag) holds the base layer and nothing else. */
  layout: string;
  /** The base's cache key: part of every image built on it. */
  key: string;
}

/** The base's cache key: a hash of the package list, the way it is installed and our changes. */
export async function baseKey(): Promise<string> {
  const config = await hashFiles(LIBVIRT_CONFIG);
  return inputsTag({
    recipe: RECIPE,
    suite: SUITE,
    variant: VARIANT,
    packages: await readPackages(),
    dpkg: DPKG_OPTIONS,
    hooks: MERGED_USR_HOOKS,
    config,
    accounts: accountEntries(),
    leftovers: LEFTOVERS,
    dirs: LIBVIRT_DIRS,
  });
}

/**
 * An OCI layout whose image (umoci's work tag) holds the base layer and nothing else: the
 * cached one for `key`, or a new one (minutes).
 */
export async function ensureBaseLayout(cacheDir: string, key: string, log: (line: string) => void): Promise<string> {
  const layout = join(cacheDir, `kubenova-base-${key}.oci`);
  if (existsSync(join(layout, 'index.json'))) return layout;

  const packages = await readPackages();
  const work = await workDir(cacheDir, 'kubenova-base');
  try {
    const root = join(work, 'rootfs');
    log(`installing ${packages.length} Debian ${SUITE} packages and their dependencies with mmdebstrap (minutes)`);
    await run('mmdebstrap', mmdebstrapArgs(packages, root), {
      hint: "mmdebstrap needs root and Debian's package mirror; run `bash devenv/images/setup.sh` as root",
    });
    await customize(root);
    log('packing the base layer');
    const tmpLayout = join(work, 'oci');
    await newLayout(tmpLayout);
    // The container runtime provides /dev; the device nodes mmdebstrap made stay out.
    await addLayer(tmpLayout, { dir: root, createdBy: `mmdebstrap ${SUITE} (${VARIANT})`, exclude: ['dev/*'] });
    await rm(layout, { recursive: true, force: true });
    await rename(tmpLayout, layout);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  // The previous base stays for a quick switch back (another branch, a reverted list).
  await pruneCache(cacheDir, /^kubenova-base-[0-9a-f]+\.oci$/, layout, 2);
  return layout;
}
