import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FlavorSnapshot } from '../../common/api/types.js';
import type { DomainSpec, NicSpec } from '../driver/driver.js';
import { FakeDriver } from '../driver/fake.js';
import type { HostNetwork } from './host-network.js';
import { SimulatedNetwork } from './host-network.js';
import { bridgeName } from './names.js';
import { pruneUnusedBridges } from './network-audit.js';
import { PluggingDriver } from './plugging-driver.js';

const SMALL: FlavorSnapshot = { name: 'small', vcpus: 1, memoryMiB: 128, rootDiskGiB: 1, ephemeralDiskGiB: 0 };
const NIC: NicSpec = {
  port: 'vm-1-net-a',
  network: 'net-a',
  mac: '52:54:00:12:34:56',
  ip: '10.20.0.5',
  prefixLength: 24,
  gateway: '10.20.0.1',
  mtu: 1450,
  bridge: bridgeName('net-a'),
};
const spec = (over: Partial<DomainSpec> = {}): DomainSpec => ({
  uid: 'u1',
  name: 'default/vm-1',
  flavor: SMALL,
  image: 'tiny',
  ...over,
});

/** A data plane that tells the order of plugs and starts apart: it notes whether the guest ran when plugged. */
class Witness implements HostNetwork {
  readonly kind = 'simulated' as const;
  readonly seen: string[] = [];
  constructor(private readonly driver: FakeDriver) {}
  async plug(nics: readonly NicSpec[]): Promise<void> {
    const state = (await this.driver.get('u1'))?.powerState ?? 'none';
    this.seen.push(`plug ${nics.map((n) => n.bridge).join(',')} while ${state}`);
  }
  settled(): void {}
  prune(): Promise<string[]> {
    return Promise.resolve([]);
  }
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kubenova-plugging-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('the driver the agent drives', () => {
  it('plugs the NICs before the guest starts, on a boot, a power-on, a resize landing and a revert', async () => {
    const fake = new FakeDriver(join(dir, 'a'), { vcpus: 4, memoryMiB: 4096, diskGiB: 40 });
    const witness = new Witness(fake);
    const driver = new PluggingDriver(fake, witness);
    await driver.spawn(spec({ nics: [NIC] }));
    await driver.powerOff('u1');
    await driver.powerOn('u1');
    await driver.migrateOut('u1');
    await driver.finishMigration(spec(), { powerOn: true });
    await driver.revertMigration(spec({ nics: [NIC] }), { powerOn: true });
    const br = NIC.bridge;
    expect(witness.seen).toEqual([
      `plug ${br} while none`,
      `plug ${br} while shutdown`,
      `plug ${br} while shutdown`,
      `plug ${br} while running`,
    ]);
  });

  it('starts no guest when the plug fails', async () => {
    const fake = new FakeDriver(join(dir, 'a'), { vcpus: 4, memoryMiB: 4096, diskGiB: 40 });
    const broken: HostNetwork = {
      kind: 'simulated',
      plug: () => Promise.reject(new Error('uplink eth9 of network net-a is not on this host')),
      settled: () => undefined,
      prune: () => Promise.resolve([]),
    };
    await expect(new PluggingDriver(fake, broken).spawn(spec({ nics: [NIC] }))).rejects.toThrow(/eth9/);
    expect(await fake.get('u1')).toBeUndefined();
  });
});

describe("the audit's bridge clean-up", () => {
  it('keeps the bridges of every defined domain, stopped ones too, and removes the rest', async () => {
    const fake = new FakeDriver(join(dir, 'a'), { vcpus: 4, memoryMiB: 4096, diskGiB: 40 });
    const net = new SimulatedNetwork();
    const driver = new PluggingDriver(fake, net);
    const other = {
      ...NIC,
      port: 'vm-2-net-b',
      network: 'net-b',
      mac: '52:54:00:00:00:02',
      bridge: bridgeName('net-b'),
    };
    await driver.spawn(spec({ nics: [NIC] }));
    await driver.spawn(spec({ uid: 'u2', name: 'default/vm-2', nics: [other] }));
    await driver.powerOff('u1');
    expect(await pruneUnusedBridges(driver, net)).toEqual([]);
    await driver.destroy('u2');
    expect(await pruneUnusedBridges(driver, net)).toEqual([bridgeName('net-b')]);
    expect([...net.bridges.keys()]).toEqual([NIC.bridge]);
  });
});
