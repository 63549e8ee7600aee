// The pure half of the libvirt driver: domain names and UUIDs, the domain XML built from a
// flavor, reading kubenova's <metadata> back out of `virsh dumpxml`, and parsing the line the
// `tiny` guest prints on its serial console. No libvirt needed, so it is unit-tested directly.
import { createHash } from 'node:crypto';
import type { FlavorSnapshot, PowerState } from '../../common/api/types.js';
import type { GuestInfo, NicSpec } from './driver.js';
import { guestCommandLine, normalizeNic } from './nics.js';
import { compareCodeUnits } from '../../common/order.js';

/** XML namespace of kubenova's element in a domain's <metadata>. */
export const METADATA_NAMESPACE = 'urn:kubenova:libvirt:domain:1';
const PREFIX = 'kubenova';

/**
 * Guests get at least this much memory whatever the flavor says: the schema allows 64 MiB,
 * which a distribution kernel cannot boot in. The flavor (and so the claim) stays as it is;
 * only the domain is given the floor.
 */
export const DEFAULT_MIN_MEMORY_MIB = 128;

/** A root disk of 0 GiB with no base image still gets a disk, big enough for the first-boot marker. */
export const EMPTY_ROOT_DISK_BYTES = 1024 * 1024;

const GIB = 1024 ** 3;

// Letters, digits, '-' and '.', as the fake driver's uids; host names are DNS names. Neither
// may hold '_' (the `<uid>_resize` backup) or anything XML or a path would need escaped.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9.-]*$/;

export function isValidUid(uid: string): boolean {
  return NAME_PATTERN.test(uid);
}

export function isValidHost(host: string): boolean {
  return NAME_PATTERN.test(host) && host.length <= 100;
}

/**
 * Several agents on one machine share one libvirtd (the e2e environment runs every host on
 * one machine), so the domain name carries the host as well as the instance.
 */
export function domainName(host: string, uid: string): string {
  return `kn-${host}-${uid}`;
}

/**
 * A UUID derived from host and uid (SHA-256, formatted as a version 5 UUID), so redefining a
 * domain keeps its UUID (libvirt refuses a new UUID for an existing name) and the source's and
 * the destination's domains of one instance never clash on a shared libvirtd.
 */
export function domainUuid(host: string, uid: string): string {
  const b = createHash('sha256').update(`kubenova:${host}:${uid}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The memory the domain gets for a flavor: the flavor's, raised to the floor. */
export function guestMemoryMiB(
  flavor: Pick<FlavorSnapshot, 'memoryMiB'>,
  minMemoryMiB = DEFAULT_MIN_MEMORY_MIB,
): number {
  return Math.max(flavor.memoryMiB, minMemoryMiB);
}

/** Virtual size of the root disk for a flavor; 0 GiB means the base image's size, or a marker-sized disk. */
export function rootDiskBytes(flavor: Pick<FlavorSnapshot, 'rootDiskGiB'>, baseBytes?: number): number {
  if (flavor.rootDiskGiB > 0) return flavor.rootDiskGiB * GIB;
  return baseBytes ?? EMPTY_ROOT_DISK_BYTES;
}

export function escapeXml(s: string): string {
  return s.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c,
  );
}

export function unescapeXml(s: string): string {
  return s.replace(
    /&(lt|gt|amp|apos|quot|#(\d+)|#x([0-9a-fA-F]+));/g,
    (_m, name: string, dec?: string, hex?: string) => {
      if (dec) return String.fromCodePoint(Number(dec));
      if (hex) return String.fromCodePoint(parseInt(hex, 16));
      return { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' }[name] ?? _m;
    },
  );
}

export interface DomainXmlInput {
  host: string;
  uid: string;
  /** namespace/name of the Instance. */
  name: string;
  image: string;
  flavor: FlavorSnapshot;
  kernel: string;
  initrd?: string;
  cmdline: string;
  disk: string;
  consoleLog: string;
  minMemoryMiB?: number;
  /** 'kvm' with a usable /dev/kvm, 'qemu' (software emulation, TCG) otherwise; default 'qemu'. */
  virtType?: 'kvm' | 'qemu';
  /** The guest's NICs (checked by the caller, nics.ts); none when absent. */
  nics?: readonly NicSpec[];
}

/**
 * The domain for a flavor: KVM-accelerated or software-emulated (type 'qemu', no /dev/kvm), direct kernel
 * boot of the image's kernel and initramfs, one qcow2 virtio disk, the serial console written
 * to a file that QEMU truncates at every start (so it holds only the latest boot), a virtio NIC
 * per port on its network's bridge (the guest told its address on the kernel command line,
 * nics.ts), and no balloon. Deterministic: the same input gives the same bytes. The NICs are in
 * kubenova's metadata too, so a start or a move rebuilds the same definition.
 *
 * No security label: QEMU runs as the user libvirtd's qemu.conf names, unprivileged, and libvirt
 * chowns the disk, kernel and initramfs to it for as long as the guest runs (dynamic
 * ownership). The disk's format is pinned and its empty <backingStore/> says it stands alone,
 * so neither libvirt nor QEMU opens a backing file named in its header (libvirt would chown
 * that file too); the driver refuses such a disk before it is defined.
 */
export function buildDomainXml(d: DomainXmlInput): string {
  const e = escapeXml;
  const f = d.flavor;
  const memKiB = guestMemoryMiB(f, d.minMemoryMiB) * 1024;
  const nics = (d.nics ?? []).map(normalizeNic);
  const lines = [
    `<domain type='${d.virtType ?? 'qemu'}'>`,
    `  <name>${e(domainName(d.host, d.uid))}</name>`,
    `  <uuid>${domainUuid(d.host, d.uid)}</uuid>`,
    `  <title>${e(d.name)}</title>`,
    `  <description>kubenova instance ${e(d.name)} (${e(d.uid)}) on host ${e(d.host)}</description>`,
    `  <metadata>`,
    `    <${PREFIX}:instance xmlns:${PREFIX}="${METADATA_NAMESPACE}">`,
    `      <${PREFIX}:host>${e(d.host)}</${PREFIX}:host>`,
    `      <${PREFIX}:uid>${e(d.uid)}</${PREFIX}:uid>`,
    `      <${PREFIX}:name>${e(d.name)}</${PREFIX}:name>`,
    `      <${PREFIX}:image>${e(d.image)}</${PREFIX}:image>`,
    ...flavorElement(f),
    ...nics.map(nicElement),
    `    </${PREFIX}:instance>`,
    `  </metadata>`,
    `  <memory unit='KiB'>${memKiB}</memory>`,
    `  <currentMemory unit='KiB'>${memKiB}</currentMemory>`,
    `  <vcpu placement='static'>${f.vcpus}</vcpu>`,
    `  <os>`,
    `    <type arch='x86_64' machine='pc'>hvm</type>`,
    `    <kernel>${e(d.kernel)}</kernel>`,
    ...(d.initrd ? [`    <initrd>${e(d.initrd)}</initrd>`] : []),
    `    <cmdline>${e(guestCommandLine(d.cmdline, nics))}</cmdline>`,
    `  </os>`,
    `  <features>`,
    `    <acpi/>`,
    `    <apic/>`,
    `  </features>`,
    `  <clock offset='utc'/>`,
    // The guests have no ACPI agent and never reboot on purpose: a reboot (a kernel panic with
    // panic=-1) stops the domain, so a boot that fails is seen at once instead of looping.
    `  <on_poweroff>destroy</on_poweroff>`,
    `  <on_reboot>destroy</on_reboot>`,
    `  <on_crash>destroy</on_crash>`,
    `  <devices>`,
    `    <disk type='file' device='disk'>`,
    `      <driver name='qemu' type='qcow2'/>`,
    `      <source file='${e(d.disk)}'/>`,
    `      <backingStore/>`,
    `      <target dev='vda' bus='virtio'/>`,
    `    </disk>`,
    ...nics.flatMap(interfaceElement),
    `    <serial type='file'>`,
    `      <source path='${e(d.consoleLog)}' append='off'/>`,
    `      <target port='0'/>`,
    `    </serial>`,
    `    <memballoon model='none'/>`,
    `  </devices>`,
    `</domain>`,
  ];
  return `${lines.join('\n')}\n`;
}

function flavorElement(f: FlavorSnapshot): string[] {
  const e = escapeXml;
  const open = `      <${PREFIX}:flavor name="${e(f.name)}" vcpus="${f.vcpus}" memoryMiB="${f.memoryMiB}" rootDiskGiB="${f.rootDiskGiB}" ephemeralDiskGiB="${f.ephemeralDiskGiB}"`;
  const specs = Object.entries(f.extraSpecs ?? {}).sort(([a], [b]) => compareCodeUnits(a, b));
  if (specs.length === 0) return [`${open}/>`];
  return [
    `${open}>`,
    ...specs.map(([k, v]) => `        <${PREFIX}:extraSpec key="${e(k)}" value="${e(v)}"/>`),
    `      </${PREFIX}:flavor>`,
  ];
}

/** kubenova's record of one NIC in the domain's metadata: the NicSpec, every field an attribute. */
function nicElement(n: NicSpec): string {
  const e = escapeXml;
  const gateway = n.gateway === undefined ? '' : ` gateway="${e(n.gateway)}"`;
  return `      <${PREFIX}:nic port="${e(n.port)}" network="${e(n.network)}" mac="${e(n.mac)}" ip="${e(n.ip)}" prefixLength="${n.prefixLength}"${gateway} mtu="${n.mtu}" bridge="${e(n.bridge)}"/>`;
}

/**
 * A virtio NIC on the network's bridge with the port's MAC and the network's MTU. No option
 * ROM: the guest boots its kernel directly and never from the network, and QEMU would
 * otherwise need the iPXE ROM files installed beside it.
 */
function interfaceElement(n: NicSpec): string[] {
  const e = escapeXml;
  return [
    `    <interface type='bridge'>`,
    `      <mac address='${e(n.mac)}'/>`,
    `      <source bridge='${e(n.bridge)}'/>`,
    `      <model type='virtio'/>`,
    `      <mtu size='${n.mtu}'/>`,
    `      <rom enabled='no'/>`,
    `    </interface>`,
  ];
}

export interface DomainMetadata {
  host: string;
  uid: string;
  name: string;
  image: string;
  flavor: FlavorSnapshot;
  /** In the order of the domain's interfaces; [] for a domain without (or defined before) NICs. */
  nics: NicSpec[];
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/([A-Za-z_][\w.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g))
    out[m[1]!] = unescapeXml(m[2] ?? m[3] ?? '');
  return out;
}

/**
 * kubenova's metadata in a domain XML (ours as written, or libvirt's `dumpxml`, which keeps
 * the element but may re-quote or re-indent it); undefined when the domain has none or it is
 * incomplete, as for a domain kubenova did not define.
 */
export function parseDomainMetadata(xml: string): DomainMetadata | undefined {
  // The prefix is whatever the element was declared with; find it by the namespace.
  const open = new RegExp(
    `<([A-Za-z_][\\w.-]*):instance\\b[^>]*\\bxmlns:\\1\\s*=\\s*["']${METADATA_NAMESPACE.replace(/[.:]/g, '\\$&')}["'][^>]*>`,
  ).exec(xml);
  if (!open) return undefined;
  const p = open[1]!;
  const end = xml.indexOf(`</${p}:instance>`, open.index);
  if (end < 0) return undefined;
  const body = xml.slice(open.index + open[0].length, end);
  const text = (el: string): string | undefined => {
    const m = new RegExp(`<${p}:${el}>([^<]*)</${p}:${el}>`).exec(body);
    return m ? unescapeXml(m[1]!) : undefined;
  };
  const flavorTag = new RegExp(`<${p}:flavor\\b[^>]*>`).exec(body);
  const host = text('host');
  const uid = text('uid');
  const name = text('name');
  const image = text('image');
  if (host === undefined || uid === undefined || name === undefined || image === undefined || !flavorTag)
    return undefined;
  const a = attributes(flavorTag[0]);
  const num = (k: string): number | undefined => (a[k] !== undefined && /^\d+$/.test(a[k]) ? Number(a[k]) : undefined);
  const vcpus = num('vcpus');
  const memoryMiB = num('memoryMiB');
  const rootDiskGiB = num('rootDiskGiB');
  const ephemeralDiskGiB = num('ephemeralDiskGiB') ?? 0;
  if (a.name === undefined || vcpus === undefined || memoryMiB === undefined || rootDiskGiB === undefined)
    return undefined;
  const flavor: FlavorSnapshot = { name: a.name, vcpus, memoryMiB, rootDiskGiB, ephemeralDiskGiB };
  const extraSpecs: Record<string, string> = {};
  for (const m of body.matchAll(new RegExp(`<${p}:extraSpec\\b[^>]*>`, 'g'))) {
    const spec = attributes(m[0]);
    if (spec.key !== undefined && spec.value !== undefined) extraSpecs[spec.key] = spec.value;
  }
  // As snapshotOf keeps them: only when there are some.
  if (Object.keys(extraSpecs).length > 0) flavor.extraSpecs = extraSpecs;
  const nics: NicSpec[] = [];
  for (const m of body.matchAll(new RegExp(`<${p}:nic\\b[^>]*>`, 'g'))) {
    const nic = nicOf(attributes(m[0]));
    // A NIC the agent cannot read back is not one it wrote: the whole metadata is not ours.
    if (!nic) return undefined;
    nics.push(nic);
  }
  return { host, uid, name, image, flavor, nics };
}

function nicOf(a: Record<string, string>): NicSpec | undefined {
  const { port, network, mac, ip, gateway, bridge } = a;
  const prefixLength = /^\d+$/.test(a.prefixLength ?? '') ? Number(a.prefixLength) : undefined;
  const mtu = /^\d+$/.test(a.mtu ?? '') ? Number(a.mtu) : undefined;
  if (!port || !network || !mac || !ip || !bridge || prefixLength === undefined || mtu === undefined) return undefined;
  return normalizeNic({ port, network, mac, ip, prefixLength, gateway, mtu, bridge });
}

/**
 * The line the `tiny` guest's init prints on every boot; the driver reads the last one. `ips=`
 * (the IPv4 addresses on its interfaces, comma-separated) is there only from an image that
 * configures networking; an older image's line still reads, without addresses.
 */
export const GUEST_LINE =
  /KUBENOVA-GUEST vcpus=(\d+) memkib=(\d+) diskbytes=(\d+) marker=([0-9a-f]*)(?: ips=([0-9.,]*))?(?=[\r\n]|$)/g;

/** The guest's own report: the last complete KUBENOVA-GUEST line of a serial console log. */
export function parseGuestReport(consoleText: string): GuestInfo | undefined {
  let last: RegExpExecArray | undefined;
  for (const m of consoleText.matchAll(GUEST_LINE)) last = m;
  if (!last) return undefined;
  // Only a line that ended: a line still being written could be cut inside a number.
  const after = consoleText.slice((last.index ?? 0) + last[0].length);
  if (!/^\r?\n/.test(after)) return undefined;
  const info: GuestInfo = {
    vcpus: Number(last[1]),
    memoryKiB: Number(last[2]),
    diskBytes: Number(last[3]),
    marker: last[4]!,
  };
  if (last[5] !== undefined) info.ips = last[5].split(',').filter((ip) => ip.length > 0);
  return info;
}

/**
 * The user:group label libvirt's DAC driver gives QEMU for domains of `virtType` (`+64055:+64055`,
 * from qemu.conf's user and group), read from `virsh capabilities`; undefined when there is none.
 */
export function qemuDacLabel(capabilities: string, virtType: 'kvm' | 'qemu'): string | undefined {
  for (const m of capabilities.matchAll(/<secmodel>([\s\S]*?)<\/secmodel>/g)) {
    if (!/<model>\s*dac\s*<\/model>/.test(m[1]!)) continue;
    const label = new RegExp(`<baselabel type=['"]${virtType}['"]>([^<]*)</baselabel>`).exec(m[1]!);
    return label?.[1]?.trim();
  }
  return undefined;
}

/** libvirt's domain state (`virsh domstate`, the State column of `virsh list`) as an API power state. */
export function powerStateOf(state: string): PowerState {
  switch (state.trim().toLowerCase()) {
    case 'running':
    case 'idle':
    case 'blocked':
    case 'in shutdown':
      return 'running';
    case 'shut off':
      return 'shutdown';
    case 'crashed':
      return 'crashed';
    default:
      // paused, pmsuspended, no state: none of them runs the guest.
      return 'nostate';
  }
}

/** `virsh list --all` (with or without its header) as name -> state. */
export function parseVirshList(output: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of output.split('\n')) {
    const line = raw.trim();
    if (!line || /^-+$/.test(line) || /^Id\s+Name\s+State$/.test(line)) continue;
    const m = /^(\S+)\s+(\S+)\s+(.+)$/.exec(line);
    if (m) out.set(m[2]!, m[3]!.trim());
  }
  return out;
}

/** Lines of virsh's stderr without the "error: " prefixes, as one message. */
export function virshMessage(stderr: string): string {
  return stderr
    .split('\n')
    .map((l) => l.trim().replace(/^error:\s*/i, ''))
    .filter((l) => l.length > 0)
    .join('; ');
}
