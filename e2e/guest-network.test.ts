// Real guests on a network, no Kubernetes: the libvirt driver boots the tiny guest with a NIC
// on the network's Linux bridge (made by the agent's data plane, LinuxBridges), the guest
// configures its address from its kernel command line and reports it from inside, and this
// machine pings it there. Moved to a second host (another LibvirtDriver on the same libvirtd, as
// e2e/libvirt.test.ts does) it answers on the same address with the same MAC; reverted, it
// answers again from the first. The bridge carries the network's gateway address here, as the
// environment's shared bridge does on the real-node cluster.
//
// Needs root, ping, libvirtd and QEMU (bash devenv/libvirt/setup.sh). Everything it makes (the
// bridge and its address, the domains) is removed at the end.
import { execFileSync } from 'node:child_process';
import { copyFile, chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlavorSnapshot } from '../common/api/types.js';
import type { DomainSpec, MigrationExport, NicSpec } from '../node-agent/driver/driver.js';
import { LibvirtDriver } from '../node-agent/driver/libvirt.js';
import { ensureTinyImage } from '../node-agent/driver/libvirt-image.js';
import { LinuxBridges } from '../node-agent/network/host-network.js';
import { IpCommand, ipRunner } from '../node-agent/network/ip-command.js';
import { bridgeName } from '../node-agent/network/names.js';
import { PluggingDriver } from '../node-agent/network/plugging-driver.js';
import { uplinkResolver } from '../node-agent/network/uplinks.js';
import { LIBVIRT_URI, libvirtUnavailable } from './harness/libvirt.js';

function pingMissing(): string | undefined {
  try {
    execFileSync('ping', ['-V'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'ping is not installed (iputils-ping; bash devenv/cluster/setup.sh installs it)';
  }
}
const unavailable = process.getuid?.() !== 0 ? 'needs root (bridges)' : (pingMissing() ?? libvirtUnavailable());
if (unavailable) console.warn(`e2e/guest-network.test.ts skipped: ${unavailable}`);

const SMALL: FlavorSnapshot = { name: 'gn.small', vcpus: 1, memoryMiB: 128, rootDiskGiB: 1, ephemeralDiskGiB: 0 };
const LARGE: FlavorSnapshot = { name: 'gn.large', vcpus: 2, memoryMiB: 192, rootDiskGiB: 1, ephemeralDiskGiB: 0 };

const sh = (cmd: string, ...args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8' });

/** Whether `ip` answers one ping within two seconds. */
function answers(ip: string): boolean {
  try {
    sh('ping', '-n', '-c', '1', '-W', '2', ip);
    return true;
  } catch {
    return false;
  }
}

/** Pings until the guest answers (its boot line is printed after its address is up, ARP may take a moment). */
async function waitForPing(ip: string, ms = 30_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) if (answers(ip)) return true;
  return false;
}

/** The MAC this machine has learnt for `ip`, from its neighbour table. */
const neighbourMac = (ip: string): string | undefined => /lladdr (\S+)/.exec(sh('ip', 'neigh', 'show', ip))?.[1];

async function transfer(exp: MigrationExport, target: string): Promise<string> {
  await mkdir(target, { recursive: true });
  for (const f of exp.files) await copyFile(join(exp.dir, f), join(target, f));
  return target;
}

describe.skipIf(unavailable !== undefined)('a real guest on a network', { timeout: 600_000 }, () => {
  // Random names and subnet: colleagues' runs may share this machine and its libvirtd.
  const suffix = randomBytes(3).toString('hex');
  const network = `gn-${suffix}`;
  const bridge = bridgeName(network);
  const subnet = `198.18.${randomInt(1, 255)}`;
  const nic: NicSpec = {
    port: `vm-1-${network}`,
    network,
    mac: `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`,
    ip: `${subnet}.5`,
    prefixLength: 24,
    gateway: `${subnet}.1`,
    mtu: 1400,
    bridge,
  };
  const uid = randomUUID();
  const spec = (flavor: FlavorSnapshot, over: Partial<DomainSpec> = {}): DomainSpec => ({
    uid,
    name: 'default/vm-1',
    flavor,
    image: 'tiny',
    nics: [nic],
    ...over,
  });
  let dir: string;
  let a: PluggingDriver;
  let b: PluggingDriver;

  beforeAll(async () => {
    const image = ensureTinyImage();
    dir = await mkdtemp(join(process.env.KUBENOVA_TEST_TMP ?? tmpdir(), 'kubenova-guest-network-'));
    await chmod(dir, 0o711);
    const capacity = { vcpus: 4, memoryMiB: 2048, diskGiB: 20 };
    const net = new LinuxBridges({ ip: new IpCommand(ipRunner()), uplinks: uplinkResolver(new Map()) });
    const driver = (host: string) =>
      new PluggingDriver(
        new LibvirtDriver({ host, stateDir: join(dir, host), capacity, images: { tiny: image }, uri: LIBVIRT_URI }),
        net,
      );
    a = driver(`gn-a-${suffix}`);
    b = driver(`gn-b-${suffix}`);
  });

  afterAll(async () => {
    for (const d of [a, b]) await d?.destroy(uid).catch(() => undefined);
    try {
      sh('ip', 'link', 'delete', 'dev', bridge);
    } catch {
      // never made
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('boots with its address, reports it from inside and answers ping on it; moved and reverted, it answers on the same address and MAC', async () => {
    const booted = await a.spawn(spec(SMALL));
    expect(booted.nics).toEqual([nic]);
    // The bridge the agent made has the network's MTU; this machine takes the gateway's address on it.
    expect(sh('ip', '-o', 'link', 'show', 'dev', bridge)).toContain('mtu 1400');
    sh('ip', 'addr', 'add', `${nic.gateway}/24`, 'dev', bridge);
    expect((await a.guestReport(uid))?.ips).toEqual([nic.ip]);
    expect(await waitForPing(nic.ip)).toBe(true);
    expect(neighbourMac(nic.ip)).toBe(nic.mac);

    // A resize to the other host: the copy lands there with the same port.
    const received = await transfer(await a.migrateOut(uid), join(dir, 'incoming', uid));
    expect(answers(nic.ip)).toBe(false);
    sh('ip', 'neigh', 'flush', 'dev', bridge);
    const moved = await b.finishMigration(spec(LARGE), { receivedDir: received, powerOn: true });
    expect(moved.nics).toEqual([nic]);
    expect(await b.guestReport(uid)).toMatchObject({ vcpus: 2, ips: [nic.ip] });
    expect(await waitForPing(nic.ip)).toBe(true);
    expect(neighbourMac(nic.ip)).toBe(nic.mac);

    // Reverted: the destination's copy goes, the source's original answers again.
    await b.destroy(uid);
    sh('ip', 'neigh', 'flush', 'dev', bridge);
    const back = await a.revertMigration(spec(SMALL), { powerOn: true });
    expect(back.nics).toEqual([nic]);
    expect(await a.guestReport(uid)).toMatchObject({ vcpus: 1, ips: [nic.ip] });
    expect(await waitForPing(nic.ip)).toBe(true);
    expect(neighbourMac(nic.ip)).toBe(nic.mac);
  });
});
