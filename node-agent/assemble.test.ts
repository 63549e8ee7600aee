import { describe, expect, it } from 'vitest';
import { createDriver, FAKE_CAPACITY } from './assemble.js';
import { parseAgentConfig } from './config.js';
import { LibvirtDriver } from './driver/libvirt.js';

describe('createDriver capacity', () => {
  it('gives the fake driver its configured capacity, FAKE_CAPACITY for what is not given', async () => {
    const all = createDriver(parseAgentConfig(['--state-dir=/nonexistent'], {}), 'node-a', {});
    expect(await all.capacity()).toEqual(FAKE_CAPACITY);
    const some = createDriver(
      parseAgentConfig(['--state-dir=/nonexistent', '--capacity-vcpus=3'], { KUBENOVA_CAPACITY_DISK_GIB: '7' }),
      'node-a',
      {},
    );
    expect(await some.capacity()).toEqual({ vcpus: 3, memoryMiB: FAKE_CAPACITY.memoryMiB, diskGiB: 7 });
  });

  it('gives the libvirt driver only the capacity flags given, as overrides of what it measures', async () => {
    const config = parseAgentConfig(['--driver=libvirt', '--state-dir=/nonexistent'], {
      KUBENOVA_CAPACITY_VCPUS: '2',
      KUBENOVA_CAPACITY_MEMORY_MIB: '1024',
      KUBENOVA_CAPACITY_DISK_GIB: '5',
    });
    const driver = createDriver(config, 'node-a', {});
    expect(driver).toBeInstanceOf(LibvirtDriver);
    // All three given: nothing is measured, so this holds on any machine.
    expect(await driver.capacity()).toEqual({ vcpus: 2, memoryMiB: 1024, diskGiB: 5 });
    const measured = await createDriver(
      parseAgentConfig(['--driver=libvirt', '--state-dir=/nonexistent', '--capacity-vcpus=2'], {}),
      'node-a',
      {},
    ).capacity();
    expect(measured.vcpus).toBe(2);
    expect(measured.memoryMiB).toBeGreaterThan(0);
    expect(measured.diskGiB).toBeGreaterThan(0);
  });
});
