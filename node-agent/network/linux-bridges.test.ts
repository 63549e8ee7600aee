// LinuxBridges against the kernel: real `ip`, in a network namespace made for the test, so the
// machine's own network is never touched. Needs root (skipped otherwise).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LinuxBridges } from './host-network.js';
import { IpCommand, ipRunner } from './ip-command.js';
import { bridgeName, conventionalUplinkName } from './names.js';
import { uplinkResolver } from './uplinks.js';

const unavailable = (() => {
  if (process.getuid?.() !== 0) return 'needs root';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'needs iproute2';
  }
})();

const sh = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });

describe.skipIf(unavailable !== undefined)('Linux bridges in a network namespace', () => {
  let netns: string;
  beforeEach(() => {
    netns = `kn-test-${randomBytes(4).toString('hex')}`;
    sh('netns', 'add', netns);
  });
  afterEach(() => {
    sh('netns', 'delete', netns);
  });

  it("are made with the network's MTU and uplink, plugged again without change, and removed once unused", async () => {
    const up = conventionalUplinkName('net-a');
    // The environment's side of the uplink stays outside; only its peer is in the namespace.
    sh('-n', netns, 'link', 'add', up, 'type', 'veth', 'peer', 'name', 'outside');
    const ip = new IpCommand(ipRunner({ netns }));
    let t = 0;
    const net = new LinuxBridges({ ip, uplinks: uplinkResolver(new Map()), now: () => t, pluggedGraceMs: 10 });
    const nic = {
      port: 'vm-1-net-a',
      network: 'net-a',
      mac: '52:54:00:12:34:56',
      ip: '10.20.0.5',
      prefixLength: 24,
      mtu: 1400,
      bridge: bridgeName('net-a'),
    };
    await net.plug([nic]);
    net.settled([nic]);
    await net.plug([nic]);
    net.settled([nic]);
    const links = await ip.links();
    expect(links.find((l) => l.name === nic.bridge)).toMatchObject({ kind: 'bridge', mtu: 1400, up: true });
    expect(links.find((l) => l.name === up)).toMatchObject({ kind: 'veth', master: nic.bridge, mtu: 1400, up: true });

    t = 100;
    expect(await net.prune(new Set([nic.bridge]))).toEqual([]);
    expect(await net.prune(new Set())).toEqual([nic.bridge]);
    const after = await ip.links();
    expect(after.some((l) => l.name === nic.bridge)).toBe(false);
    expect(after.find((l) => l.name === up)?.master).toBeUndefined();
  });
});
