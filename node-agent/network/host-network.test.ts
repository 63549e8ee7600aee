import { describe, expect, it } from 'vitest';
import type { NicSpec } from '../driver/driver.js';
import { bridgesFor, LinuxBridges, SimulatedNetwork } from './host-network.js';
import { IpCommand, parseLinks } from './ip-command.js';
import { bridgeName, conventionalUplinkName } from './names.js';
import { FakeIp } from './testing.js';
import { parseUplinks, uplinkResolver } from './uplinks.js';

const BR = bridgeName('net-a');
const nic = (over: Partial<NicSpec> = {}): NicSpec => ({
  port: 'vm-1-net-a',
  network: 'net-a',
  mac: '52:54:00:12:34:56',
  ip: '10.20.0.5',
  prefixLength: 24,
  gateway: '10.20.0.1',
  mtu: 1450,
  bridge: BR,
  ...over,
});

function host(opts: { links?: ConstructorParameters<typeof FakeIp>[0]; uplinks?: string; now?: () => number } = {}) {
  const ip = new FakeIp(opts.links ?? [{ name: 'eth0', mtu: 1500, up: true, kind: 'veth' }]);
  const net = new LinuxBridges({
    ip: new IpCommand(ip.run),
    uplinks: uplinkResolver(parseUplinks(opts.uplinks ?? '')),
    now: opts.now,
    pluggedGraceMs: 1000,
  });
  return { ip, net };
}

describe('plugging NICs into the Linux bridges of this host', () => {
  it("creates the network's bridge with its MTU and brings it up, before any guest starts", async () => {
    const { ip, net } = host();
    await net.plug([nic()]);
    expect(ip.links.get(BR)).toEqual({ name: BR, kind: 'bridge', mtu: 1450, up: true });
    expect(ip.calls).toEqual([`link add name ${BR} mtu 1450 type bridge`, `link set dev ${BR} up`]);
  });

  it('is idempotent: a second plug (a retry, another guest on the network) changes nothing', async () => {
    const { ip, net } = host();
    await net.plug([nic()]);
    ip.calls.length = 0;
    await net.plug([nic(), nic({ port: 'vm-2-net-a', mac: '52:54:00:00:00:02', ip: '10.20.0.6' })]);
    expect(ip.calls).toEqual([]);
  });

  it('puts right a bridge left down or with another MTU (a crash, a changed network)', async () => {
    const { ip, net } = host({ links: [{ name: BR, kind: 'bridge', mtu: 1500, up: false }] });
    await net.plug([nic()]);
    expect(ip.links.get(BR)).toMatchObject({ mtu: 1450, up: true });
  });

  it("enslaves the network's uplink with the network's MTU: the configured one, else the conventional ku- interface", async () => {
    const up = conventionalUplinkName('net-a');
    const conventional = host({ links: [{ name: up, kind: 'veth', mtu: 1500, up: false }] });
    await conventional.net.plug([nic()]);
    expect(conventional.ip.links.get(up)).toEqual({ name: up, kind: 'veth', mtu: 1450, up: true, master: BR });

    const configured = host({ links: [{ name: 'eth1', mtu: 1450, up: true }], uplinks: 'net-a=eth1' });
    await configured.net.plug([nic()]);
    expect(configured.ip.links.get('eth1')?.master).toBe(BR);
  });

  it('keeps the bridge local to the host when the network has no uplink here', async () => {
    const { ip, net } = host();
    await net.plug([nic()]);
    expect([...ip.links.values()].filter((l) => l.master === BR)).toEqual([]);
  });

  it('refuses, saying why, a configured uplink that is missing or enslaved elsewhere, and a name taken by a non-bridge', async () => {
    await expect(host({ uplinks: 'net-a=eth9' }).net.plug([nic()])).rejects.toThrow(
      'uplink eth9 of network net-a is not on this host',
    );
    const taken = host({ links: [{ name: 'eth1', mtu: 1450, up: true, master: 'br0' }], uplinks: 'net-a=eth1' });
    await expect(taken.net.plug([nic()])).rejects.toThrow(
      `uplink eth1 of network net-a is already enslaved to br0, not to ${BR}`,
    );
    const squatted = host({ links: [{ name: BR, kind: 'veth', mtu: 1500, up: true }] });
    await expect(squatted.net.plug([nic()])).rejects.toThrow(
      `interface ${BR} on this host is a veth, not network net-a's bridge`,
    );
  });

  it('refuses two NICs that want one bridge for different networks or MTUs', () => {
    expect(() => bridgesFor([nic(), nic({ port: 'p2', mtu: 9000 })])).toThrow(
      `bridge ${BR} is asked for network net-a (MTU 1450) and network net-a (MTU 9000)`,
    );
  });
});

describe('removing bridges no guest here uses', () => {
  it('removes an unused kubenova bridge (its uplink stays), and keeps used ones and every other interface', async () => {
    let t = 0;
    const up = conventionalUplinkName('net-a');
    const brB = bridgeName('net-b');
    const { ip, net } = host({
      links: [
        { name: 'cni0', kind: 'bridge', mtu: 1500, up: true },
        { name: up, kind: 'veth', mtu: 1500, up: true },
      ],
      now: () => t,
    });
    const nics = [nic(), nic({ port: 'p2', network: 'net-b', mac: '52:54:00:00:00:02', bridge: brB })];
    await net.plug(nics);
    net.settled(nics);
    t = 5000;
    expect(await net.prune(new Set([brB]))).toEqual([BR]);
    expect([...ip.links.keys()].sort()).toEqual([brB, 'cni0', up].sort());
    expect(ip.links.get(up)?.master).toBeUndefined();
    expect(await net.prune(new Set([brB]))).toEqual([]);
  });

  it('keeps the bridge of a start in progress however long it takes, and for a moment after it settled', async () => {
    let t = 0;
    const { ip, net } = host({ now: () => t });
    await net.plug([nic()]);
    t = 60_000;
    expect(await net.prune(new Set())).toEqual([]);
    net.settled([nic()]);
    t = 60_500;
    expect(await net.prune(new Set())).toEqual([]);
    t = 61_500;
    expect(await net.prune(new Set())).toEqual([BR]);
    expect(ip.links.has(BR)).toBe(false);
  });

  it('counts a plug that failed as settled', async () => {
    let t = 0;
    const { net } = host({ links: [], uplinks: 'net-a=eth9', now: () => t });
    await expect(net.plug([nic()])).rejects.toThrow(/eth9/);
    t = 5000;
    expect(await net.prune(new Set())).toEqual([BR]);
  });

  it("keeps a bridge a guest is attached to (libvirt's tap), whatever the domains say; a fresh agent removes leftovers of an earlier run", async () => {
    const { ip, net } = host({
      links: [
        { name: BR, kind: 'bridge', mtu: 1450, up: true },
        { name: 'vnet0', kind: 'tun', mtu: 1450, up: true, master: BR },
        { name: bridgeName('net-gone'), kind: 'bridge', mtu: 1500, up: true },
      ],
    });
    expect(await net.prune(new Set())).toEqual([bridgeName('net-gone')]);
    expect(ip.links.has(BR)).toBe(true);
  });
});

describe('the simulated data plane (fake driver)', () => {
  it('records the plugs and prunes like the real one, touching nothing', async () => {
    const sim = new SimulatedNetwork();
    await sim.plug([nic()]);
    expect(sim.bridges).toEqual(new Map([[BR, 1450]]));
    expect(sim.plugs).toEqual([[nic()]]);
    expect(await sim.prune(new Set([BR]))).toEqual([]);
    expect(await sim.prune(new Set())).toEqual([BR]);
  });
});

describe('ip -j link show', () => {
  it('is read as name, kind, master, MTU and whether it is up', () => {
    const json = JSON.stringify([
      { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], mtu: 65536 },
      { ifname: BR, flags: ['BROADCAST', 'MULTICAST'], mtu: 1450, linkinfo: { info_kind: 'bridge' } },
      { ifname: 'vnet0', flags: ['UP'], mtu: 1450, master: BR, linkinfo: { info_kind: 'tun' } },
    ]);
    expect(parseLinks(json)).toEqual([
      { name: 'lo', mtu: 65536, up: true },
      { name: BR, kind: 'bridge', mtu: 1450, up: false },
      { name: 'vnet0', kind: 'tun', master: BR, mtu: 1450, up: true },
    ]);
  });
});

describe('uplinks given as NETWORK=INTERFACE', () => {
  it('are read from a list and refused when malformed', () => {
    expect(parseUplinks(' net-a=eth1, net-b=bond0.100 ,')).toEqual(
      new Map([
        ['net-a', 'eth1'],
        ['net-b', 'bond0.100'],
      ]),
    );
    expect(() => parseUplinks('eth1')).toThrow('uplink "eth1": give NETWORK=INTERFACE');
    expect(() => parseUplinks('net-a=a-much-too-long-name')).toThrow(/is not an interface name/);
    expect(() => parseUplinks('net-a=eth1,net-a=eth2')).toThrow('uplink of network net-a is given twice');
  });
});
