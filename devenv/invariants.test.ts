import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ComputeNode, Port } from '../common/api/types.js';
import type { Kube } from '../common/kube/client.js';
import { InvariantWatcher, checkNode, checkPorts } from './invariants.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kubenova-invariants-'));
  dirs.push(d);
  return d;
}

const node = (name: string, claims: { consumer: string; instance?: string; memoryMiB: number }[]): ComputeNode => {
  const memoryMiB = claims.reduce((a, c) => a + c.memoryMiB, 0);
  return {
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'ComputeNode',
    metadata: { name },
    status: {
      allocatable: { vcpus: 8, memoryMiB: 4096, diskGiB: 100 },
      allocated: { vcpus: 0, memoryMiB, diskGiB: 0 },
      claims: claims.map((c) => ({ kind: 'instance' as const, vcpus: 0, diskGiB: 0, ...c })),
    },
  } as ComputeNode;
};

/** A Kube whose ComputeNode list answers with `list` (or throws what it throws). */
const kubeListing = (list: () => ComputeNode[]): Kube =>
  ({
    computeNodes: { list: () => Promise.resolve().then(() => ({ items: list() })) },
    ports: { list: () => Promise.resolve({ items: [] }) },
  }) as unknown as Kube;

const port = (name: string, fixedIP: string, macAddress: string, network = 'net1'): Port => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Port',
  metadata: { name, namespace: 'default' },
  spec: { network, instance: name, fixedIP, macAddress },
});

describe('the port invariant', () => {
  it('holds when every port has its own address and MAC; the same address on two networks is no conflict', () => {
    expect(
      checkPorts([
        port('a', '10.0.0.2', 'fa:16:3e:00:00:01'),
        port('b', '10.0.0.3', 'fa:16:3e:00:00:02'),
        port('c', '10.0.0.2', 'fa:16:3e:00:00:03', 'net2'),
      ]),
    ).toEqual([]);
  });

  it('names two ports holding one address, and two with one MAC', () => {
    expect(
      checkPorts([port('a', '10.0.0.2', 'fa:16:3e:00:00:01'), port('b', '10.0.0.2', 'fa:16:3e:00:00:01')]),
    ).toEqual([
      'ports default/a and default/b both hold 10.0.0.2 on network net1',
      'ports default/a and default/b both have MAC fa:16:3e:00:00:01',
    ]);
  });
});

describe('invariant watcher', () => {
  it('passes a run that sampled a consistent cluster', async () => {
    const watcher = new InvariantWatcher(
      kubeListing(() => [node('a', [{ consumer: 'u1', memoryMiB: 512 }])]),
      stateDir(),
      5,
    );
    watcher.start();
    await new Promise((r) => setTimeout(r, 30));
    const report = await watcher.stop();
    expect(report.samples).toBeGreaterThan(0);
    expect(report.errors).toEqual([]);
    expect(report.violations).toEqual([]);
  });

  it('fails a run whose every sample failed: no samples, and the error, named as the broken promise', async () => {
    const watcher = new InvariantWatcher(
      kubeListing(() => {
        throw new Error('connect ECONNREFUSED');
      }),
      stateDir(),
      5,
    ).start();
    await new Promise((r) => setTimeout(r, 30));
    const report = await watcher.stop();
    expect(report.samples).toBe(0);
    expect(report.violations).toEqual([
      expect.stringMatching(/^invariant watcher took no samples: the claim invariant .* was never checked$/),
      expect.stringMatching(/^invariant watcher: \d+ sample\(s\) failed, .*unchecked.*: connect ECONNREFUSED$/),
    ]);
  });

  it('fails a run where some samples failed, even though others succeeded', async () => {
    let n = 0;
    const watcher = new InvariantWatcher(
      kubeListing(() => {
        if (++n === 2) throw new Error('the server was unable to return a response');
        return [];
      }),
      stateDir(),
      5,
    ).start();
    await new Promise((r) => setTimeout(r, 40));
    const report = await watcher.stop();
    expect(report.samples).toBeGreaterThan(0);
    expect(report.errors).toEqual(['the server was unable to return a response']);
    expect(report.violations).toEqual([expect.stringMatching(/^invariant watcher: 1 sample\(s\) failed/)]);
  });

  it('takes no sample while paused, and one at once on resume', async () => {
    let n = 0;
    const watcher = new InvariantWatcher(
      kubeListing(() => {
        n++;
        return [];
      }),
      stateDir(),
      5,
    ).start();
    await watcher.pause();
    const atPause = n;
    await new Promise((r) => setTimeout(r, 30));
    expect(n).toBe(atPause);
    await watcher.resume();
    expect(n).toBe(atPause + 1);
    expect((await watcher.stop()).violations).toEqual([]);
  });

  it('samples nothing after stop, and stop reports the same once when called again', async () => {
    let n = 0;
    const watcher = new InvariantWatcher(
      kubeListing(() => {
        n++;
        return [];
      }),
      stateDir(),
      5,
    ).start();
    const first = await watcher.stop();
    const at = n;
    await new Promise((r) => setTimeout(r, 30));
    expect(n).toBe(at);
    expect((await watcher.stop()).violations).toEqual(first.violations);
    expect(first.samples).toBe(1);
  });

  it('reports a domain on disk that no claim on its host covers', async () => {
    const dir = stateDir();
    mkdirSync(join(dir, 'a', 'instances', 'u2'), { recursive: true });
    writeFileSync(join(dir, 'a', 'instances', 'u2', 'domain.json'), JSON.stringify({ name: 'default/two' }));
    const watcher = new InvariantWatcher(
      kubeListing(() => [node('a', [{ consumer: 'u1', memoryMiB: 512 }])]),
      dir,
      5,
    );
    await watcher.sample();
    expect(watcher.report.violations).toEqual(['a: domain u2 (default/two) on disk without a claim']);
  });

  it('checkNode reports overbooking and an allocated total that is not the sum of the claims', () => {
    const n = node('a', [{ consumer: 'u1', memoryMiB: 512 }]);
    n.status!.allocated!.memoryMiB = 5000;
    expect(checkNode(n)).toEqual([
      'a: allocated memoryMiB 5000 > allocatable 4096',
      'a: allocated memoryMiB 5000 != sum of claims 512',
    ]);
  });
});
