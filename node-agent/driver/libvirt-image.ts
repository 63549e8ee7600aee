// Guest images of the libvirt driver: a directory holding a kernel, an initramfs, an optional
// base disk and image.json saying how to boot them. `tiny` is built from Debian packages by
// guest-image/build.sh into a cache outside the repo; others can be registered by directory.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DISK_FORMATS, type DiskFormat } from './libvirt-disk.js';

export interface GuestImage {
  name: string;
  /** Absolute path of the kernel for direct kernel boot. */
  kernel: string;
  /** Absolute path of the initramfs, if any. */
  initrd?: string;
  cmdline: string;
  /** Absolute path of a base disk copied (converted to qcow2) into each new root disk. */
  disk?: string;
  /** The base disk's format, which image.json must state: a disk's format is never probed. */
  diskFormat?: DiskFormat;
  /** Whether the guest prints KUBENOVA-GUEST lines: then a start waits for one (the boot is done). */
  guestReport: boolean;
}

export const TINY_IMAGE = 'tiny';

const here = dirname(fileURLToPath(import.meta.url));
/** The build script lives in the source tree; from dist/ walk back to it. */
const guestImageDir = existsSync(join(here, 'guest-image', 'build.sh'))
  ? join(here, 'guest-image')
  : join(here, '..', '..', '..', 'node-agent', 'driver', 'guest-image');

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads `<dir>/image.json`; `name` overrides the name it records. */
export function loadGuestImage(dir: string, name?: string): GuestImage {
  const abs = resolve(dir);
  const path = join(abs, 'image.json');
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`guest image ${abs}: cannot read image.json: ${(err as Error).message}`, { cause: err });
  }
  if (
    !isRecord(v) ||
    typeof v.kernel !== 'string' ||
    (v.initrd !== undefined && typeof v.initrd !== 'string') ||
    (v.disk !== undefined && typeof v.disk !== 'string')
  ) {
    throw new Error(
      `guest image ${abs}: image.json needs "kernel" and may have "initrd", "disk" (with "diskFormat"), "cmdline", "guestReport"`,
    );
  }
  const diskFormat = DISK_FORMATS.find((f) => f === v.diskFormat);
  if (v.disk !== undefined && diskFormat === undefined) {
    throw new Error(
      `guest image ${abs}: image.json's "disk" needs "diskFormat" (${DISK_FORMATS.join(' or ')}), not ${JSON.stringify(v.diskFormat ?? null)}: a disk's format is never guessed`,
    );
  }
  const file = (p: string): string => {
    const full = isAbsolute(p) ? p : join(abs, p);
    if (!existsSync(full)) throw new Error(`guest image ${abs}: ${p} does not exist`);
    return full;
  };
  return {
    name: name ?? (typeof v.name === 'string' ? v.name : abs),
    kernel: file(v.kernel),
    initrd: typeof v.initrd === 'string' ? file(v.initrd) : undefined,
    disk: typeof v.disk === 'string' ? file(v.disk) : undefined,
    diskFormat: typeof v.disk === 'string' ? diskFormat : undefined,
    cmdline: typeof v.cmdline === 'string' ? v.cmdline : 'console=ttyS0',
    guestReport: v.guestReport === true,
  };
}

/**
 * `name=dir,name2=dir2` (the agent's --libvirt-images) as images by name. A bare `dir` takes
 * the name its image.json records.
 */
export function parseImageList(spec: string): Record<string, GuestImage> {
  const out: Record<string, GuestImage> = {};
  for (const item of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = item.indexOf('=');
    const image = eq > 0 ? loadGuestImage(item.slice(eq + 1), item.slice(0, eq)) : loadGuestImage(item);
    out[image.name] = image;
  }
  return out;
}

/**
 * Builds the `tiny` image (or finds it in the cache: a second call costs one apt-cache lookup)
 * and returns it. Needs a Debian host with apt and cpio (devenv/libvirt/setup.sh installs cpio).
 */
export function ensureTinyImage(): GuestImage {
  let out: string;
  try {
    out = execFileSync('bash', [join(guestImageDir, 'build.sh')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`building the ${TINY_IMAGE} guest image failed: ${(e.stderr ?? '').trim() || e.message}`, {
      cause: err,
    });
  }
  const dir = out.trim().split('\n').pop() ?? '';
  return loadGuestImage(dir, TINY_IMAGE);
}
