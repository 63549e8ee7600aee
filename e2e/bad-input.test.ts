// Bad input gets a clear answer and loses nothing: either the API server refuses it with a
// message that says what is wrong, or kubenova records a fault and an Event and leaves
// everything else exactly as it was. Each row compares a full snapshot of the cluster before
// and after (every kubenova object in every namespace with the claims on each ComputeNode,
// the Secrets of the test namespaces, every file on every host) and allows only the changes
// it names. docs/reliability.md lists every row of this table (a unit test checks it).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance } from '../common/api/types.js';
import { TestEnv } from './harness/env.js';
import { localOnly } from './harness/mode.js';
import { diffSnapshots, settledSnapshot, unexpectedChanges, type SnapshotOptions } from './harness/snapshot.js';

let env: TestEnv;

const API = 'compute.kubenova.io/v1alpha1';
const instance = (name: string, spec: Record<string, unknown>, namespace = 'default') => ({
  apiVersion: API,
  kind: 'Instance',
  metadata: { name, namespace },
  spec: { image: 'cirros', ...spec },
});
const migration = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: API,
  kind: 'Migration',
  metadata: { name },
  spec,
});
const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';

beforeAll(async () => {
  env = await TestEnv.start({
    agents: [{ name: 'node-a' }, { name: 'node-b' }, { name: 'node-c', extraArgs: ['--spawn-delay-ms=600000'] }],
  });
  env.apply({
    apiVersion: API,
    kind: 'Flavor',
    metadata: { name: 'retired' },
    spec: { vcpus: 1, memoryMiB: 512, rootDiskGiB: 20, disabled: true },
  });
  env.apply({
    apiVersion: API,
    kind: 'Flavor',
    metadata: { name: 'm1.mini' },
    spec: { vcpus: 1, memoryMiB: 512, rootDiskGiB: 5 },
  });
  env.apply({
    apiVersion: API,
    kind: 'Flavor',
    metadata: { name: 'doomed' },
    spec: { vcpus: 1, memoryMiB: 512, rootDiskGiB: 20 },
  });
  // A quota in the test namespace, so every row also shows what it reserved or gave back.
  env.apply({
    apiVersion: API,
    kind: 'ComputeQuota',
    metadata: { name: 'quota', namespace: 'default' },
    spec: { hard: { instances: 100 } },
  });
  await env.waitFor(
    'quota cached',
    async () => (await env.kube.quotas.get({ namespace: 'default', name: 'quota' })) !== undefined,
  );
  env.apply(instance('victim', { flavor: 'm1.small', host: 'node-a' }));
  env.apply(instance('patient', { flavor: 'm1.tiny', host: 'node-a' }));
  env.apply(instance('uses-doomed', { flavor: 'doomed', host: 'node-a' }));
  env.apply(instance('building', { flavor: 'm1.tiny', host: 'node-c' })); // node-c spawns for ten minutes
  env.apply(instance('broken', { flavor: 'm9.none' }));
  env.apply({
    apiVersion: API,
    kind: 'ServerGroup',
    metadata: { name: 'pair', namespace: 'default' },
    spec: { policy: 'anti-affinity' },
  });
  env.apply(instance('grouped', { flavor: 'm1.tiny', host: 'node-b', serverGroup: 'pair' }));
  env.kubectl(['create', 'namespace', 'other']);
  env.apply(instance('elsewhere', { flavor: 'm1.tiny', host: 'node-b' }, 'other'));
  await env.waitForInstance('victim', active, 'active');
  await env.waitForInstance('uses-doomed', active, 'active');
  await env.waitForInstance('building', (i) => i.status?.taskState === 'spawning', 'spawning');
  await env.waitForInstance('broken', (i) => i.status?.vmState === 'error', 'error');
  await env.waitForInstance('elsewhere', active, 'active', 60_000, 'other');
  await env.waitForInstance('grouped', active, 'active');
  await env.waitForInstance('patient', active, 'active');
  // Each boot's quota settled: used by those running, held by the one still spawning, none for the failed one.
  await env.waitFor('boot quota settled', async () => {
    const q = await env.kube.quotas.get({ namespace: 'default', name: 'quota' });
    const states = (q?.status?.allocations ?? []).map((a) => `${a.instance}:${a.state}`).sort();
    const want = ['building:reserved', 'grouped:used', 'patient:used', 'uses-doomed:used', 'victim:used'];
    return JSON.stringify(states) === JSON.stringify(want);
  });
});

afterAll(async () => {
  await env?.stop();
});

const SNAPSHOT: SnapshotOptions = { secretNamespaces: ['default', 'other'] };

async function migrationFault(name: string): Promise<string> {
  const m = await env.waitFor(`migration ${name} refused`, async () => {
    const mig = await env.migration(name);
    return mig?.status?.status === 'error' ? mig : undefined;
  });
  // Events are written just after the status; give them a moment.
  await env.waitFor(
    `MigrationRefused event on ${name}`,
    async () => (await env.events(name)).some((e) => e.reason === 'MigrationRefused'),
    10_000,
  );
  return `${m.status?.fault?.reason}: ${m.status?.fault?.message}`;
}

async function instanceFault(name: string, reason: string, namespace = 'default'): Promise<string> {
  // The operator has judged the latest spec (observedGeneration) and recorded why it refused.
  const i = await env.waitForInstance(
    name,
    (x) => x.status?.fault?.reason === reason && x.status.observedGeneration === x.metadata.generation,
    `fault ${reason}`,
    60_000,
    namespace,
  );
  await env.waitFor(
    `${reason} event on ${name}`,
    async () => (await env.events(name, namespace)).some((e) => e.reason === reason),
    10_000,
  );
  return `${i.status?.fault?.reason}: ${i.status?.fault?.message}`;
}

const rejected = (args: string[], input?: object) => () =>
  Promise.resolve(env.kubectlFails(args, input ? JSON.stringify(input) : undefined));
const patchInstance = (name: string, spec: object) => [
  'patch',
  'instance',
  name,
  '--type',
  'merge',
  '-p',
  JSON.stringify({ spec }),
];

interface Row {
  name: string;
  /**
   * Every change the request may make, as lines of the snapshot diff or their start
   * (e2e/harness/snapshot.ts); each must happen, and nothing else may change.
   */
  changes?: string[];
  run: () => Promise<string>;
  expect: RegExp;
}

/** What an instance's refused resize request changes: its spec, and the fault it is told. */
const resizeRefused = (name: string) => [
  `Instance default/${name}: metadata.generation`,
  `Instance default/${name}: spec.flavor`,
  `Instance default/${name}: status.fault`,
  `Instance default/${name}: status.observedGeneration`,
];

const rows: Row[] = [
  {
    name: 'instance name longer than 253 characters',
    run: rejected(['apply', '-f', '-'], instance('x'.repeat(300), { flavor: 'm1.tiny' })),
    expect: /must be no more than 253 characters/,
  },
  {
    name: 'oversized image reference',
    run: rejected(['apply', '-f', '-'], instance('big-image', { flavor: 'm1.tiny', image: 'i'.repeat(2000) })),
    expect: /spec\.image: Too long/,
  },
  {
    name: 'malformed flavor name',
    run: rejected(['apply', '-f', '-'], instance('bad-name', { flavor: 'M1 Small!' })),
    expect: /spec\.flavor in body should match/,
  },
  {
    name: 'vcpus of the wrong type',
    run: rejected(['apply', '-f', '-'], {
      apiVersion: API,
      kind: 'Flavor',
      metadata: { name: 'typo' },
      spec: { vcpus: 'two', memoryMiB: 512, rootDiskGiB: 1 },
    }),
    expect: /spec\.vcpus: Invalid value: "string"/,
  },
  {
    name: 'negative root disk',
    run: rejected(['apply', '-f', '-'], {
      apiVersion: API,
      kind: 'Flavor',
      metadata: { name: 'neg' },
      spec: { vcpus: 1, memoryMiB: 512, rootDiskGiB: -1 },
    }),
    expect: /spec\.rootDiskGiB in body should be greater than or equal to 0/,
  },
  {
    name: 'powerState Paused',
    run: rejected(patchInstance('victim', { powerState: 'Paused' })),
    expect: /Unsupported value: "Paused"/,
  },
  {
    name: 'unknown spec field',
    run: rejected(['apply', '-f', '-'], instance('extra', { flavor: 'm1.tiny', gpus: 2 })),
    expect: /unknown field "spec\.gpus"/,
  },
  {
    name: 'editing a flavor',
    run: rejected(['patch', 'flavor', 'm1.small', '--type', 'merge', '-p', '{"spec":{"memoryMiB":4096}}']),
    expect: /Flavor spec is immutable/,
  },
  {
    name: 'flavor change while a task runs',
    run: rejected(patchInstance('building', { flavor: 'm1.small' })),
    expect: /spec\.flavor cannot change while task spawning is running/,
  },
  {
    name: 'decision Maybe',
    run: rejected(['apply', '-f', '-'], migration('maybe', { instance: 'victim', decision: 'Maybe' })),
    expect: /spec\.decision: Unsupported value: "Maybe": supported values: "", "Confirm", "Revert"/,
  },
  {
    name: 'decision Confirm then Revert',
    // The Migration stays (its instance is errored, so it is refused); the second decision is not taken.
    changes: ['+Migration default/decided'],
    run: async () => {
      env.apply(migration('decided', { instance: 'broken', decision: 'Confirm' }));
      const refused = env.kubectlFails([
        'patch',
        'migration',
        'decided',
        '--type',
        'merge',
        '-p',
        '{"spec":{"decision":"Revert"}}',
      ]);
      await migrationFault('decided');
      expect((await env.migration('decided'))?.spec.decision).toBe('Confirm');
      return refused;
    },
    expect: /spec\.decision is final once set/,
  },
  {
    name: 'changing the instance of a migration',
    run: async () =>
      env.kubectlFails(['patch', 'migration', 'decided', '--type', 'merge', '-p', '{"spec":{"instance":"victim"}}']),
    expect: /spec\.instance is immutable/,
  },
  {
    name: 'negative reserved memory',
    run: rejected(['patch', 'cn', 'node-a', '--type', 'merge', '-p', '{"spec":{"reserved":{"memoryMiB":-5}}}']),
    expect: /spec\.reserved\.memoryMiB in body should be greater than or equal to 0/,
  },
  {
    name: 'host reserve raised above what instances claim',
    run: rejected(['patch', 'cn', 'node-a', '--type', 'merge', '-p', '{"spec":{"reserved":{"memoryMiB":16000}}}']),
    expect:
      /this change would make allocatable smaller than what instances on this host already claim \(see status\.allocated\)/,
  },
  {
    name: 'boot with an unknown flavor',
    changes: ['+Instance default/no-such-flavor'],
    run: async () => (
      env.apply(instance('no-such-flavor', { flavor: 'm9.huge' })),
      instanceFault('no-such-flavor', 'FlavorNotFound')
    ),
    expect: /flavor m9\.huge does not exist/,
  },
  {
    name: 'boot with a disabled flavor',
    changes: ['+Instance default/old-flavor'],
    run: async () => (
      env.apply(instance('old-flavor', { flavor: 'retired' })),
      instanceFault('old-flavor', 'FlavorDisabled')
    ),
    expect: /flavor retired is disabled/,
  },
  {
    name: 'resize to an unknown flavor',
    changes: resizeRefused('victim'),
    run: async () => (
      env.kubectl(patchInstance('victim', { flavor: 'm9.huge' })),
      instanceFault('victim', 'ResizeRefused')
    ),
    expect: /flavor m9\.huge does not exist/,
  },
  {
    name: 'resize to a disabled flavor',
    changes: resizeRefused('victim'),
    run: async () => (
      env.kubectl(patchInstance('victim', { flavor: 'retired' })),
      instanceFault('victim', 'ResizeRefused')
    ),
    expect: /flavor retired is disabled/,
  },
  {
    name: 'resize that shrinks the disk',
    changes: resizeRefused('victim'),
    run: async () => (
      env.kubectl(patchInstance('victim', { flavor: 'm1.mini' })),
      instanceFault('victim', 'ResizeRefused')
    ),
    expect: /root disks cannot shrink/,
  },
  {
    name: 'resize while the instance is busy',
    changes: ['+Migration default/busy-resize'],
    run: async () => (
      env.apply(migration('busy-resize', { instance: 'building', flavor: 'm1.small' })),
      migrationFault('busy-resize')
    ),
    expect: /busy with task spawning/,
  },
  {
    name: 'migrate a building instance',
    changes: ['+Migration default/move-building'],
    run: async () => (env.apply(migration('move-building', { instance: 'building' })), migrationFault('move-building')),
    expect: /busy with task spawning/,
  },
  {
    name: 'migrate an errored instance',
    changes: ['+Migration default/move-broken'],
    run: async () => (env.apply(migration('move-broken', { instance: 'broken' })), migrationFault('move-broken')),
    expect: /instance broken is error; only active or stopped instances/,
  },
  {
    name: 'migrate to an unknown host',
    changes: ['+Migration default/to-nowhere'],
    run: async () => (
      env.apply(migration('to-nowhere', { instance: 'victim', targetHost: 'node-z' })),
      migrationFault('to-nowhere')
    ),
    expect: /targetHost node-z does not exist/,
  },
  {
    name: 'migrate to the host it runs on',
    changes: ['+Migration default/to-self'],
    run: async () => (
      env.apply(migration('to-self', { instance: 'victim', targetHost: 'node-a' })),
      migrationFault('to-self')
    ),
    expect: /is where the instance already runs/,
  },
  {
    name: 'migrate to a disabled host',
    // Disabling and enabling the host again is the test's own doing; its reason stays written.
    changes: [
      '+Migration default/to-disabled',
      'ComputeNode node-b: metadata.generation',
      'ComputeNode node-b: spec.disabledReason',
    ],
    run: async () => {
      env.kubectl([
        'patch',
        'cn',
        'node-b',
        '--type',
        'merge',
        '-p',
        '{"spec":{"disabled":true,"disabledReason":"bad disk"}}',
      ]);
      try {
        env.apply(migration('to-disabled', { instance: 'victim', targetHost: 'node-b' }));
        return await migrationFault('to-disabled');
      } finally {
        env.kubectl(['patch', 'cn', 'node-b', '--type', 'merge', '-p', '{"spec":{"disabled":false}}']);
      }
    },
    expect: /targetHost node-b is disabled \(bad disk\)/,
  },
  {
    name: 'migrate to a host that is not Ready',
    // The restarted agent serves transfers on a new port.
    changes: ['+Migration default/to-down', 'ComputeNode node-b: status.migrationEndpoint'],
    run: async () => {
      await env.killAgent('node-b');
      try {
        await env.waitFor('node-b not Ready', async () => env.nodeReady(await env.computeNode('node-b')) !== 'True');
        env.apply(migration('to-down', { instance: 'victim', targetHost: 'node-b' }));
        return await migrationFault('to-down');
      } finally {
        env.startAgent({ name: 'node-b' });
        await env.waitForNodesReady(['node-b']);
      }
    },
    expect: /targetHost node-b is not Ready/,
  },
  {
    name: 'migration for an instance in another namespace',
    changes: ['+Migration default/cross-ns'],
    run: async () => (env.apply(migration('cross-ns', { instance: 'elsewhere' })), migrationFault('cross-ns')),
    expect: /instance elsewhere does not exist in namespace default/,
  },
  {
    name: 'migration for an instance that does not exist',
    changes: ['+Migration default/ghost-move'],
    run: async () => (env.apply(migration('ghost-move', { instance: 'ghost' })), migrationFault('ghost-move')),
    expect: /instance ghost does not exist/,
  },
  {
    name: 'two migrations for one instance',
    // The first goes on to finished, as it would alone: the instance runs on node-b, resized,
    // holding a claim there; node-a keeps its claim, its domain (powered off) and a backup
    // until a decision.
    changes: [
      '+Migration default/first-of-two',
      '+Migration default/second-of-two',
      'Instance default/uses-doomed: status',
      'ComputeNode node-b: status.allocated',
      'ComputeNode node-b: status.claims[<Migration default/first-of-two>]',
      'ComputeNode node-b: status.usage',
      '+File node-b/instances/<Instance default/uses-doomed>',
      'File node-a/instances/<Instance default/uses-doomed>/domain.json',
      '+File node-a/instances/<Instance default/uses-doomed>_resize',
    ],
    run: async () => {
      env.apply(migration('first-of-two', { instance: 'uses-doomed', targetHost: 'node-b' })); // not node-c: it boots for ten minutes
      await env.waitForInstance(
        'uses-doomed',
        (i) => i.status?.migration === 'first-of-two',
        'taken by the first migration',
      );
      env.apply(migration('second-of-two', { instance: 'uses-doomed' }));
      const refused = await migrationFault('second-of-two');
      await env.waitFor('first-of-two finished', async () => {
        const first = await env.migration('first-of-two');
        return first?.status?.status === 'finished' || first?.status?.status === 'error';
      });
      expect((await env.migration('first-of-two'))?.status?.status).toBe('finished');
      return refused;
    },
    expect: /already has migration first-of-two in progress/,
  },
  {
    name: 'decision on a migration that is not finished',
    // A Revert given with the request: noted and waited on, then applied once finished. The
    // instance ends where it was, its disk byte for byte as before; only its guest is reported anew.
    changes: ['+Migration default/early', 'Instance default/patient: status.guest.reportedAt'],
    run: async () => {
      env.apply(migration('early', { instance: 'patient', targetHost: 'node-b', decision: 'Revert' }));
      const ignored = await env.waitFor('DecisionIgnored event', async () =>
        (await env.events('early')).find((e) => e.reason === 'DecisionIgnored'),
      );
      const end = await env.waitFor('early ended', async () => {
        const p = (await env.migration('early'))?.status?.status;
        return p === 'reverted' || p === 'confirmed' || p === 'error' ? p : undefined;
      });
      await env.waitForInstance('patient', active, 'active again');
      return `${ignored.reason}: ${ignored.message}; then ${end}`;
    },
    expect:
      /^DecisionIgnored: decision Revert ignored while the migration is [a-z-]+; it takes effect once the migration is finished; then reverted$/,
  },
  {
    name: 'deleting a flavor that instances use',
    changes: ['-Flavor doomed'],
    run: async () => {
      env.kubectl(['delete', 'flavor', 'doomed']);
      const i = await env.instance('uses-doomed');
      return `flavor deleted; instance keeps its snapshot ${i?.status?.flavor?.name} (${i?.status?.flavor?.memoryMiB} MiB)`;
    },
    expect: /instance keeps its snapshot doomed \(512 MiB\)/,
  },
  {
    name: 'negative quota hard limit',
    run: rejected(['apply', '-f', '-'], {
      apiVersion: API,
      kind: 'ComputeQuota',
      metadata: { name: 'neg' },
      spec: { hard: { memoryMiB: -1 } },
    }),
    expect: /spec\.hard\.memoryMiB in body should be greater than or equal to 0/,
  },
  {
    name: 'unknown server group policy',
    run: rejected(['apply', '-f', '-'], {
      apiVersion: API,
      kind: 'ServerGroup',
      metadata: { name: 'odd' },
      spec: { policy: 'sometimes' },
    }),
    expect: /Unsupported value: "sometimes"/,
  },
  {
    name: 'joining a missing server group',
    changes: ['+Instance default/orphan'],
    run: async () => (
      env.apply(instance('orphan', { flavor: 'm1.tiny', serverGroup: 'nobody' })),
      instanceFault('orphan', 'ServerGroupNotFound')
    ),
    expect: /server group nobody does not exist in namespace default/,
  },
  {
    name: 'changing spec.serverGroup',
    run: rejected(patchInstance('grouped', { serverGroup: 'other' })),
    expect: /spec\.serverGroup is immutable/,
  },
  {
    name: 'compute node capacity lowered by hand below what is claimed',
    run: async () => {
      // As `kubectl patch --subresource=status` would: no resourceVersion, so the agent's
      // heartbeats meanwhile cannot turn the admin's write into a 409.
      await env.kube.computeNodes.patchStatus(
        { metadata: { name: 'node-a' } },
        { capacity: { vcpus: 1, memoryMiB: 256, diskGiB: 1 } },
      );
      const healed = await env.waitFor(
        'agent restores the capacity its driver reports',
        async () => {
          const n = await env.computeNode('node-a');
          return n?.status?.capacity?.memoryMiB === 16384 ? n : undefined;
        },
        30_000,
      );
      return `status belongs to the agent: capacity restored to ${healed.status?.capacity?.memoryMiB} MiB`;
    },
    expect: /capacity restored to 16384 MiB/,
  },
];

localOnly('bad input', () => {
  it('has at least 25 bad requests, each with its expected answer', () => {
    expect(rows.length).toBeGreaterThanOrEqual(25);
  });

  it.each(rows)('$name gets a clear answer and changes nothing else', async (row) => {
    const before = await settledSnapshot(env, SNAPSHOT);
    const answer = await row.run();
    expect(answer).toMatch(row.expect);
    const after = await settledSnapshot(env, SNAPSHOT);
    expect(unexpectedChanges(diffSnapshots(before, after), row.changes ?? [])).toEqual({ unexpected: [], missing: [] });
  });
});
