// Real VMs through the whole system: the operator and two node agents with the libvirt
// driver on the real control plane. The guest itself reports its hardware in
// status.guest, so the flavor is proven from inside, and its first-boot marker proves the
// disk travelled.
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../common/api/types.js';
import { ensureTinyImage } from '../node-agent/driver/libvirt-image.js';
import { TestEnv } from './harness/env.js';
import { LIBVIRT_URI, libvirtUnavailable } from './harness/libvirt.js';
import { external } from './harness/mode.js';

const unavailable = libvirtUnavailable();
if (unavailable) console.warn(`e2e/libvirt-journey.test.ts skipped: ${unavailable}`);

const API = 'compute.kubenova.io/v1alpha1';
const MiB = 1024;
let env: TestEnv;

function domainsOf(hosts: string[]): string[] {
  const out = execFileSync('virsh', ['-q', '-c', LIBVIRT_URI, 'list', '--all', '--name'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((n) => hosts.some((h) => n.startsWith(`kn-${h}-`)));
}

describe.skipIf(Boolean(unavailable) || external)('real guests on the libvirt driver', () => {
  // Host names unique to this run: several agents and earlier runs share one libvirtd.
  const suffix = Math.random().toString(36).slice(2, 7);
  const hostA = `lv-a-${suffix}`;
  const hostB = `lv-b-${suffix}`;

  beforeAll(async () => {
    const image = ensureTinyImage();
    const driverArgs = ['--driver=libvirt', `--libvirt-images=tiny=${dirname(image.kernel)}`];
    env = await TestEnv.start({
      agents: [
        { name: hostA, vcpus: 4, memoryMiB: 2048, diskGiB: 20, extraArgs: driverArgs },
        { name: hostB, vcpus: 4, memoryMiB: 2048, diskGiB: 20, extraArgs: driverArgs },
      ],
    });
    // QEMU runs as libvirt's unprivileged user, which must pass through the agents' state
    // directories (the environment's private directory is 0700).
    chmodSync(dirname(env.stateDir), 0o711);
    env.apply({
      apiVersion: API,
      kind: 'Flavor',
      metadata: { name: 'g1' },
      spec: { vcpus: 1, memoryMiB: 128, rootDiskGiB: 1 },
    });
    env.apply({
      apiVersion: API,
      kind: 'Flavor',
      metadata: { name: 'g2' },
      spec: { vcpus: 2, memoryMiB: 192, rootDiskGiB: 2 },
    });
  }, 300_000);

  afterAll(async () => {
    await env?.stop();
  });

  const reported = (i: Instance) =>
    i.status?.vmState === 'active' && i.status.taskState === '' && i.status.guest?.marker;

  it('boots a tiny guest (QEMU not root) whose own report matches its flavor, resizes it to another host keeping its disk, and deletes it leaving no domain', async () => {
    env.apply({
      apiVersion: API,
      kind: 'Instance',
      metadata: { name: 'vm-1' },
      spec: { flavor: 'g1', image: 'tiny', host: hostA },
    });
    const booted = await env.waitForInstance(
      'vm-1',
      (i) => Boolean(reported(i)),
      'active with a guest report',
      120_000,
    );
    const guest = booted.status!.guest!;
    expect(guest.vcpus).toBe(1);
    expect(guest.diskBytes).toBe(1024 ** 3);
    // The kernel keeps some memory for itself; what is left is most of the 128 MiB.
    expect(guest.memoryKiB).toBeGreaterThan(64 * MiB);
    expect(guest.memoryKiB).toBeLessThanOrEqual(128 * MiB);
    const marker = guest.marker;
    // The guest's QEMU is not root.
    const pid = readFileSync(`/run/libvirt/qemu/kn-${hostA}-${booted.metadata.uid}.pid`, 'utf8').trim();
    expect(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]).not.toBe('0');

    env.kubectl(['patch', 'instance', 'vm-1', '--type', 'merge', '-p', '{"spec":{"flavor":"g2"}}']);
    const mig = await env.waitFor(
      'resize finished',
      async () =>
        (await env.kube.migrations.list('default')).items.find(
          (m) => m.spec.instance === 'vm-1' && m.status?.status === 'finished',
        ),
      180_000,
    );
    expect(mig.status?.destHost).toBe(hostB);
    env.kubectl(['patch', 'migration', mig.metadata.name, '--type', 'merge', '-p', '{"spec":{"decision":"Confirm"}}']);
    const resized = await env.waitForInstance(
      'vm-1',
      (i) => Boolean(reported(i)) && i.status?.flavor?.name === 'g2' && i.status.host === hostB,
      'active on B with g2',
      120_000,
    );
    expect(resized.status?.guest).toMatchObject({ vcpus: 2, diskBytes: 2 * 1024 ** 3, marker });
    expect(resized.status?.guest?.memoryKiB ?? 0).toBeGreaterThan(booted.status!.guest!.memoryKiB ?? 0);
    expect(domainsOf([hostA])).toEqual([]);

    env.kubectl(['delete', 'instance', 'vm-1']);
    await env.waitFor('no domain left', () => domainsOf([hostA, hostB]).length === 0, 60_000);
  });
});
