import { describe, expect, it } from 'vitest';
import { DriverError, type NicSpec } from './driver.js';
import { checkNics, guestCommandLine, isIPv4, nicKernelArgument, nicProblems } from './nics.js';

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

describe('a NIC the drivers accept', () => {
  it('is a port with a unicast MAC, an IPv4 address and prefix, an MTU and a bridge name Linux takes', () => {
    expect(nicProblems(NIC)).toEqual([]);
    expect(nicProblems({ ...NIC, gateway: undefined })).toEqual([]);
  });

  it('is refused with every problem named, port by port', () => {
    const bad: NicSpec = {
      ...NIC,
      mac: '52:54:00:12:34',
      ip: '10.20.0.256',
      prefixLength: 33,
      gateway: 'gw',
      mtu: 9,
      bridge: 'kn-far-too-long-a-name',
    };
    expect(nicProblems(bad)).toEqual([
      'port "web-1-net-a": MAC "52:54:00:12:34" is not lower-case aa:bb:cc:dd:ee:ff',
      'port "web-1-net-a": address "10.20.0.256" is not an IPv4 address',
      'port "web-1-net-a": prefix length 33 is not 1 to 32',
      'port "web-1-net-a": gateway "gw" is not an IPv4 address',
      'port "web-1-net-a": MTU 9 is not 68 to 65535',
      'port "web-1-net-a": bridge "kn-far-too-long-a-name" is not an interface name of at most 15 characters',
    ]);
    expect(nicProblems({ ...NIC, mac: '01:00:5e:00:00:01' })).toEqual([
      'port "web-1-net-a": MAC 01:00:5e:00:00:01 is a multicast address',
    ]);
    expect(nicProblems({ ...NIC, bridge: 'br/../x' })).toHaveLength(1);
  });

  it('shares neither MAC nor port with another NIC of the domain', () => {
    const twin = { ...NIC, ip: '10.20.0.6' };
    expect(() => checkNics('spawn', 'u1', [NIC, twin])).toThrow(DriverError);
    expect(() => checkNics('spawn', 'u1', [NIC, twin])).toThrow(
      'spawn u1: refusing the NICs: ports web-1-net-a and web-1-net-a have the same MAC 52:54:00:12:34:56; ports web-1-net-a and web-1-net-a have the same port web-1-net-a',
    );
    expect(() => checkNics('spawn', 'u1', [NIC, { ...NIC, port: 'p2', mac: '52:54:00:00:00:02' }])).not.toThrow();
  });

  it('reads IPv4 addresses strictly: four decimal octets, no leading zeros', () => {
    for (const ok of ['0.0.0.0', '10.0.0.1', '255.255.255.255']) expect(isIPv4(ok)).toBe(true);
    for (const bad of ['10.0.0', '10.0.0.01', '10.0.0.1.2', '1.2.3.a', '', '::1']) expect(isIPv4(bad)).toBe(false);
  });
});

describe("the guest's kernel command line", () => {
  it('tells the guest each NIC by MAC: address/prefix, gateway and MTU', () => {
    expect(nicKernelArgument(NIC)).toBe('kubenova.nic=52:54:00:12:34:56,10.20.0.5/24,10.20.0.1,1450');
    expect(nicKernelArgument({ ...NIC, gateway: undefined })).toBe('kubenova.nic=52:54:00:12:34:56,10.20.0.5/24,,1450');
  });

  it("follows the image's own arguments, one argument per NIC", () => {
    const second = { ...NIC, port: 'p2', mac: '52:54:00:00:00:02', ip: '10.30.0.9', prefixLength: 16 };
    expect(guestCommandLine('console=ttyS0 quiet', [NIC, second])).toBe(
      'console=ttyS0 quiet kubenova.nic=52:54:00:12:34:56,10.20.0.5/24,10.20.0.1,1450 kubenova.nic=52:54:00:00:00:02,10.30.0.9/16,10.20.0.1,1450',
    );
    expect(guestCommandLine('console=ttyS0', [])).toBe('console=ttyS0');
  });
});
