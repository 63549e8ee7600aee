import { describe, expect, it } from 'vitest';
import type { FlavorSnapshot } from '../../common/api/types.js';
import type { NicSpec } from './driver.js';
import {
  buildDomainXml,
  domainName,
  domainUuid,
  EMPTY_ROOT_DISK_BYTES,
  escapeXml,
  guestMemoryMiB,
  isValidHost,
  isValidUid,
  METADATA_NAMESPACE,
  parseDomainMetadata,
  parseGuestReport,
  parseVirshList,
  powerStateOf,
  qemuDacLabel,
  rootDiskBytes,
  virshMessage,
  type DomainXmlInput,
} from './libvirt-xml.js';

const TINY: FlavorSnapshot = { name: 'kn.tiny', vcpus: 1, memoryMiB: 128, rootDiskGiB: 1, ephemeralDiskGiB: 0 };
const NIC: NicSpec = {
  port: 'web-1-net-a',
  network: 'net-a',
  mac: '52:54:00:12:34:56',
  ip: '10.20.0.5',
  prefixLength: 24,
  gateway: '10.20.0.1',
  mtu: 1450,
  bridge: 'kn-0123456789ab',
};
const input = (over: Partial<DomainXmlInput> = {}): DomainXmlInput => ({
  host: 'node-a',
  uid: '0b7c6f1e-5d7a-4c1e-9a51-7d0f2b1c3e4f',
  name: 'default/web-1',
  image: 'tiny',
  flavor: TINY,
  kernel: '/images/tiny/vmlinuz',
  initrd: '/images/tiny/initrd.gz',
  cmdline: 'console=ttyS0 quiet panic=-1',
  disk: '/state/node-a/instances/0b7c6f1e-5d7a-4c1e-9a51-7d0f2b1c3e4f/disk.qcow2',
  consoleLog: '/state/node-a/console/0b7c6f1e-5d7a-4c1e-9a51-7d0f2b1c3e4f.log',
  ...over,
});

/** The text of the first element `tag` in xml. */
const element = (xml: string, tag: string): string | undefined =>
  new RegExp(`<${tag}(?:\\s[^>]*)?>([^<]*)</${tag}>`).exec(xml)?.[1];

describe('libvirt domain names', () => {
  it('carry the host, so agents sharing one libvirtd never share a domain', () => {
    expect(domainName('node-a', 'u1')).toBe('kn-node-a-u1');
    expect(domainUuid('node-a', 'u1')).not.toBe(domainUuid('node-b', 'u1'));
  });

  it('have a UUID that is stable for host and uid and formatted as a version 5 UUID', () => {
    const id = domainUuid('node-a', 'u1');
    expect(id).toBe(domainUuid('node-a', 'u1'));
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('accept only uids and hosts that cannot escape a directory, clash with <uid>_resize or need escaping', () => {
    for (const ok of ['u1', '0b7c6f1e-5d7a-4c1e-9a51-7d0f2b1c3e4f', 'a.b']) expect(isValidUid(ok)).toBe(true);
    for (const bad of ['', '.x', 'a/b', 'u1_resize', "a'b", 'a b', '<x>']) expect(isValidUid(bad)).toBe(false);
    expect(isValidHost('node-a')).toBe(true);
    expect(isValidHost('node_a')).toBe(false);
    expect(isValidHost('x'.repeat(101))).toBe(false);
  });
});

describe("QEMU's user", () => {
  const capabilities = (dac: string) => `<capabilities>
  <host>
    <secmodel>
      <model>none</model>
      <doi>0</doi>
    </secmodel>
    <secmodel>
      <model>dac</model>
      <doi>0</doi>
${dac}    </secmodel>
  </host>
</capabilities>
`;

  it('is the DAC base label libvirt gives a domain type, from virsh capabilities', () => {
    const caps = capabilities(
      "      <baselabel type='kvm'>+64055:+64055</baselabel>\n      <baselabel type='qemu'>+107:+108</baselabel>\n",
    );
    expect(qemuDacLabel(caps, 'kvm')).toBe('+64055:+64055');
    expect(qemuDacLabel(caps, 'qemu')).toBe('+107:+108');
  });

  it('is unknown when libvirt shows no DAC label (a session daemon)', () => {
    expect(qemuDacLabel(capabilities(''), 'qemu')).toBeUndefined();
    expect(qemuDacLabel('<capabilities/>', 'qemu')).toBeUndefined();
  });
});

describe('flavor to domain', () => {
  it('raises memory to the floor and leaves bigger flavors alone', () => {
    expect(guestMemoryMiB({ memoryMiB: 64 })).toBe(128);
    expect(guestMemoryMiB({ memoryMiB: 192 })).toBe(192);
    expect(guestMemoryMiB({ memoryMiB: 64 }, 96)).toBe(96);
  });

  it('sizes the root disk from the flavor, and a 0 GiB root disk from the base image or just big enough for the marker', () => {
    expect(rootDiskBytes({ rootDiskGiB: 3 })).toBe(3 * 1024 ** 3);
    expect(rootDiskBytes({ rootDiskGiB: 0 })).toBe(EMPTY_ROOT_DISK_BYTES);
    expect(rootDiskBytes({ rootDiskGiB: 0 }, 5_000_000)).toBe(5_000_000);
  });

  it('runs a KVM domain where the host offers KVM, and an emulated one otherwise', () => {
    expect(buildDomainXml(input({ virtType: 'kvm' }))).toMatch(/^<domain type='kvm'>\n/);
    expect(buildDomainXml(input({ virtType: 'qemu' }))).toMatch(/^<domain type='qemu'>\n/);
  });

  it("builds an emulated, directly booted domain with the flavor's vCPUs and memory, one virtio disk and a file console", () => {
    const xml = buildDomainXml(input({ flavor: { ...TINY, vcpus: 2, memoryMiB: 192 } }));
    expect(xml).toMatch(/^<domain type='qemu'>\n/);
    expect(element(xml, 'name')).toBe('kn-node-a-0b7c6f1e-5d7a-4c1e-9a51-7d0f2b1c3e4f');
    expect(element(xml, 'uuid')).toBe(domainUuid('node-a', '0b7c6f1e-5d7a-4c1e-9a51-7d0f2b1c3e4f'));
    expect(element(xml, 'vcpu')).toBe('2');
    expect(xml).toContain(`<memory unit='KiB'>${192 * 1024}</memory>`);
    expect(xml).toContain(`<currentMemory unit='KiB'>${192 * 1024}</currentMemory>`);
    expect(element(xml, 'kernel')).toBe('/images/tiny/vmlinuz');
    expect(element(xml, 'initrd')).toBe('/images/tiny/initrd.gz');
    expect(element(xml, 'cmdline')).toBe('console=ttyS0 quiet panic=-1');
    expect(xml).toContain('<features>\n    <acpi/>\n    <apic/>\n  </features>');
    expect(xml).toContain(`<driver name='qemu' type='qcow2'/>`);
    expect(xml).toContain(`<source file='/state/node-a/instances/0b7c6f1e-5d7a-4c1e-9a51-7d0f2b1c3e4f/disk.qcow2'/>`);
    expect(xml).toContain(`<target dev='vda' bus='virtio'/>`);
    expect(xml).toContain(
      `<source path='/state/node-a/console/0b7c6f1e-5d7a-4c1e-9a51-7d0f2b1c3e4f.log' append='off'/>`,
    );
    expect(xml).toContain(`<memballoon model='none'/>`);
    expect(xml).not.toContain('<interface');
  });

  it("names no security label, so QEMU runs as libvirt's unprivileged user with dynamic ownership", () => {
    expect(buildDomainXml(input())).not.toContain('<seclabel');
  });

  it('pins the disk to qcow2 with an empty backing store, so no backing file named in a disk is ever opened', () => {
    const xml = buildDomainXml(input());
    expect(xml).toContain(
      `<driver name='qemu' type='qcow2'/>\n      <source file='${input().disk}'/>\n      <backingStore/>\n`,
    );
  });

  it('gives a tiny flavor the memory floor but keeps the flavor itself in the metadata', () => {
    const xml = buildDomainXml(input({ flavor: { ...TINY, memoryMiB: 64 } }));
    expect(xml).toContain(`<memory unit='KiB'>${128 * 1024}</memory>`);
    expect(parseDomainMetadata(xml)?.flavor.memoryMiB).toBe(64);
  });

  it('leaves out the initrd when the image has none', () => {
    expect(buildDomainXml(input({ initrd: undefined }))).not.toContain('<initrd>');
  });

  it('is deterministic, so a restored definition keeps its bytes', () => {
    expect(buildDomainXml(input())).toBe(buildDomainXml(input()));
  });

  it('escapes what it is given', () => {
    expect(escapeXml(`a<b>&'"`)).toBe('a&lt;b&gt;&amp;&apos;&quot;');
    const xml = buildDomainXml(
      input({ name: `ns/we<ird>&'"`, flavor: { ...TINY, name: 'a&b' }, disk: "/state/it's/disk.qcow2" }),
    );
    expect(element(xml, 'title')).toBe('ns/we&lt;ird&gt;&amp;&apos;&quot;');
    expect(xml).toContain(`<source file='/state/it&apos;s/disk.qcow2'/>`);
    expect(parseDomainMetadata(xml)).toMatchObject({ name: `ns/we<ird>&'"`, flavor: { name: 'a&b' } });
  });
});

describe('NICs in the domain', () => {
  const second: NicSpec = {
    ...NIC,
    port: 'web-1-net-b',
    network: 'net-b',
    mac: '52:54:00:00:00:02',
    ip: '10.30.0.9',
    prefixLength: 16,
    gateway: undefined,
    mtu: 1500,
    bridge: 'kn-fedcba987654',
  };

  it("plugs each port into its network's bridge as a virtio NIC with the port's MAC and the network's MTU", () => {
    const xml = buildDomainXml(input({ nics: [NIC, second] }));
    expect(xml).toContain(
      [
        `    <interface type='bridge'>`,
        `      <mac address='52:54:00:12:34:56'/>`,
        `      <source bridge='kn-0123456789ab'/>`,
        `      <model type='virtio'/>`,
        `      <mtu size='1450'/>`,
        `      <rom enabled='no'/>`,
        `    </interface>`,
        `    <interface type='bridge'>`,
        `      <mac address='52:54:00:00:00:02'/>`,
        `      <source bridge='kn-fedcba987654'/>`,
      ].join('\n'),
    );
  });

  it("tells the guest its addresses on the kernel command line, after the image's own arguments", () => {
    const xml = buildDomainXml(input({ nics: [NIC, second] }));
    expect(element(xml, 'cmdline')).toBe(
      'console=ttyS0 quiet panic=-1 kubenova.nic=52:54:00:12:34:56,10.20.0.5/24,10.20.0.1,1450 kubenova.nic=52:54:00:00:00:02,10.30.0.9/16,,1500',
    );
  });

  it('keeps the NICs in the metadata, so a start or a move rebuilds the same definition', () => {
    const xml = buildDomainXml(input({ nics: [NIC, second] }));
    expect(parseDomainMetadata(xml)?.nics).toEqual([NIC, second]);
    const meta = parseDomainMetadata(xml)!;
    expect(buildDomainXml(input({ nics: meta.nics }))).toBe(xml);
  });

  it('takes a NIC it cannot read back as metadata that is not ours', () => {
    const xml = buildDomainXml(input({ nics: [NIC] })).replace('mtu="1450"', 'mtu="big"');
    expect(parseDomainMetadata(xml)).toBeUndefined();
  });
});

describe('domain metadata', () => {
  it('round-trips host, uid, name, image and flavor', () => {
    expect(parseDomainMetadata(buildDomainXml(input()))).toEqual({
      host: 'node-a',
      uid: '0b7c6f1e-5d7a-4c1e-9a51-7d0f2b1c3e4f',
      name: 'default/web-1',
      image: 'tiny',
      flavor: TINY,
      nics: [],
    });
  });

  it('round-trips extra specs, and keeps no empty extraSpecs (as snapshotOf)', () => {
    const flavor = { ...TINY, extraSpecs: { 'node:gpu': 'yes', 'a&b': '<1>' } };
    expect(parseDomainMetadata(buildDomainXml(input({ flavor })))?.flavor).toEqual(flavor);
    expect(parseDomainMetadata(buildDomainXml(input({ flavor: { ...TINY, extraSpecs: {} } })))?.flavor).toEqual(TINY);
  });

  it('reads the metadata as libvirt gives it back: other prefix, double quotes, other indentation', () => {
    const dumped = `<domain type='qemu' id='3'>
  <name>kn-node-a-u1</name>
  <metadata>
    <kn:instance xmlns:kn="${METADATA_NAMESPACE}">
      <kn:host>node-a</kn:host>
      <kn:uid>u1</kn:uid>
      <kn:name>default/web-1</kn:name>
      <kn:image>tiny</kn:image>
      <kn:flavor name='m1' vcpus='2' memoryMiB='256' rootDiskGiB='3' ephemeralDiskGiB='0'/>
    </kn:instance>
    <other:thing xmlns:other="urn:other"><other:host>elsewhere</other:host></other:thing>
  </metadata>
</domain>`;
    expect(parseDomainMetadata(dumped)).toEqual({
      host: 'node-a',
      uid: 'u1',
      name: 'default/web-1',
      image: 'tiny',
      flavor: { name: 'm1', vcpus: 2, memoryMiB: 256, rootDiskGiB: 3, ephemeralDiskGiB: 0 },
      nics: [],
    });
  });

  it('finds nothing in a domain kubenova did not define or whose metadata is incomplete', () => {
    expect(parseDomainMetadata(`<domain type='kvm'><name>vm1</name></domain>`)).toBeUndefined();
    expect(
      parseDomainMetadata(`<metadata><x:instance xmlns:x="urn:other"><x:host>a</x:host></x:instance></metadata>`),
    ).toBeUndefined();
    const noFlavor = buildDomainXml(input()).replace(/<kubenova:flavor[^>]*\/>\n/, '');
    expect(parseDomainMetadata(noFlavor)).toBeUndefined();
    const badNumber = buildDomainXml(input()).replace('vcpus="1"', 'vcpus="one"');
    expect(parseDomainMetadata(badNumber)).toBeUndefined();
  });
});

describe('guest report', () => {
  const line = (over = '') =>
    `KUBENOVA-GUEST vcpus=2 memkib=160340 diskbytes=2147483648 marker=3fe12b46b49ba32f404734157d61d1f7${over}`;

  it('parses the line the tiny guest prints', () => {
    expect(parseGuestReport(`${line()}\n`)).toEqual({
      vcpus: 2,
      memoryKiB: 160340,
      diskBytes: 2147483648,
      marker: '3fe12b46b49ba32f404734157d61d1f7',
    });
  });

  it('takes the last line among kernel messages, with serial line endings', () => {
    const log = `[    0.000000] Linux version 6.1.0\r\nKUBENOVA-GUEST vcpus=1 memkib=94780 diskbytes=1073741824 marker=aa\r\nnoise\r\n${line()}\r\n`;
    expect(parseGuestReport(log)).toMatchObject({ vcpus: 2, marker: '3fe12b46b49ba32f404734157d61d1f7' });
  });

  it('finds the line after kernel output on the same line', () => {
    expect(parseGuestReport(`[    1.2] random: crng init done${line()}\n`)?.vcpus).toBe(2);
  });

  it('ignores a line still being written, an empty console and malformed lines', () => {
    expect(parseGuestReport(line())).toBeUndefined();
    expect(parseGuestReport(`${line()}\nKUBENOVA-GUEST vcpus=4 memkib=1`)).toMatchObject({ vcpus: 2 });
    expect(parseGuestReport('')).toBeUndefined();
    expect(parseGuestReport('KUBENOVA-GUEST vcpus=x memkib=1 diskbytes=1 marker=ab\n')).toBeUndefined();
    expect(parseGuestReport('KUBENOVA-GUEST vcpus=1 memkib=1 diskbytes=1 marker=XYZ\n')).toBeUndefined();
  });

  it('reads the addresses the guest sees on its interfaces, and none from an image that does not say', () => {
    expect(parseGuestReport(`${line(' ips=10.20.0.5,10.30.0.9')}\n`)?.ips).toEqual(['10.20.0.5', '10.30.0.9']);
    expect(parseGuestReport(`${line(' ips=')}\n`)?.ips).toEqual([]);
    expect(parseGuestReport(`${line()}\n`)).not.toHaveProperty('ips');
  });

  it('accepts an empty marker (a guest without a disk)', () => {
    expect(parseGuestReport('KUBENOVA-GUEST vcpus=1 memkib=94780 diskbytes=0 marker=\n')).toEqual({
      vcpus: 1,
      memoryKiB: 94780,
      diskBytes: 0,
      marker: '',
    });
  });
});

describe('virsh output', () => {
  it('maps libvirt states to power states', () => {
    expect(powerStateOf('running\n')).toBe('running');
    expect(powerStateOf('shut off')).toBe('shutdown');
    expect(powerStateOf('crashed')).toBe('crashed');
    expect(powerStateOf('paused')).toBe('nostate');
    expect(powerStateOf('in shutdown')).toBe('running');
  });

  it('parses virsh list --all with and without a header', () => {
    const out = ` Id   Name             State\n--------------------------------\n 3    kn-node-a-u1     running\n -    kn-node-b-u2     shut off\n\n`;
    expect([...parseVirshList(out)]).toEqual([
      ['kn-node-a-u1', 'running'],
      ['kn-node-b-u2', 'shut off'],
    ]);
    expect([...parseVirshList(' -    x   shut off\n')]).toEqual([['x', 'shut off']]);
    expect(parseVirshList('').size).toBe(0);
  });

  it('makes one message of virsh errors', () => {
    expect(
      virshMessage(
        "error: Failed to start domain 'kn-a-u1'\nerror: internal error: qemu unexpectedly closed the monitor\n",
      ),
    ).toBe("Failed to start domain 'kn-a-u1'; internal error: qemu unexpectedly closed the monitor");
  });
});
