// What the libvirt driver checks of a disk before a domain is defined on it: the answer of
// `qemu-img info --output=json -f <format>` (the format pinned, never probed) read into the few
// facts that matter, and what is wrong with them. A qcow2 header may name another file (a
// backing file, an external data file) that QEMU would open and libvirt would chown to QEMU's
// user: a disk received from another host, restored from a backup or made from an image must
// stand alone, in the format the domain says, no bigger than the flavor allows.

/** The disk formats the driver reads: its own root disks are qcow2; an image's base disk is either. */
export type DiskFormat = 'qcow2' | 'raw';

export const DISK_FORMATS: readonly DiskFormat[] = ['qcow2', 'raw'];

export interface DiskInfo {
  /** The format qemu-img read it as. */
  format: string;
  virtualSize: number;
  /** A backing file the header names (backing-filename or full-backing-filename). */
  backingFile?: string;
  /** An external data file the qcow2 header names. */
  dataFile?: string;
  /** qemu-img found the qcow2 metadata corrupt. */
  corrupt: boolean;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `qemu-img info --output=json` of one image (not --backing-chain); throws when it is not that. */
export function parseQemuImgInfo(json: string): DiskInfo {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    v = undefined;
  }
  if (!isRecord(v) || typeof v.format !== 'string' || typeof v['virtual-size'] !== 'number')
    throw new Error('qemu-img info gave no format and virtual size');
  const specific =
    isRecord(v['format-specific']) && isRecord(v['format-specific'].data) ? v['format-specific'].data : {};
  const text = (x: unknown): string | undefined => (typeof x === 'string' && x !== '' ? x : undefined);
  const backingFile = text(v['full-backing-filename']) ?? text(v['backing-filename']);
  const info: DiskInfo = { format: v.format, virtualSize: v['virtual-size'], corrupt: specific.corrupt === true };
  if (backingFile !== undefined) info.backingFile = backingFile;
  // qemu-img names a backing file's format even when the name itself is empty: still one.
  else if (text(v['backing-filename-format']) !== undefined) info.backingFile = '';
  const dataFile = text(specific['data-file']);
  if (dataFile !== undefined) info.dataFile = dataFile;
  return info;
}

/** A name from a disk header in a message: quoted, and cut short (it is whoever made the disk's text). */
function quoted(name: string): string {
  return JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}...` : name);
}

export interface DiskExpectation {
  format: DiskFormat;
  /** The largest virtual size allowed, and what allows it, for the message ("flavor m1's 1 GiB root disk"). */
  limit?: { bytes: number; what: string };
}

/** What is wrong with a disk for a domain, one phrase each; empty when nothing is. */
export function diskProblems(info: DiskInfo, want: DiskExpectation): string[] {
  const problems: string[] = [];
  if (info.format !== want.format) problems.push(`its format is ${info.format}, not ${want.format}`);
  if (info.backingFile !== undefined)
    problems.push(`it has a backing file ${quoted(info.backingFile)} (a disk must stand alone)`);
  if (info.dataFile !== undefined) problems.push(`it has an external data file ${quoted(info.dataFile)}`);
  if (info.corrupt) problems.push('qemu-img finds its metadata corrupt');
  if (want.limit && info.virtualSize > want.limit.bytes)
    problems.push(
      `its virtual size of ${info.virtualSize} bytes is more than ${want.limit.what} (${want.limit.bytes} bytes)`,
    );
  return problems;
}
