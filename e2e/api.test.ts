// The API contract as the API server enforces it: CRDs install, kubectl shows them the
// way DESIGN.md promises, and bad manifests are refused with a message a user can act on.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { localOnly } from './harness/mode.js';
import { TestEnv, parseTable } from './harness/env.js';

let env: TestEnv;

beforeAll(async () => {
  env = await TestEnv.start({ operator: false, agents: [{ name: 'node-a', zone: 'az1' }] });
});

afterAll(async () => {
  await env?.stop();
});

const instance = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Instance',
  metadata: { name },
  spec,
});
const flavor = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Flavor',
  metadata: { name },
  spec,
});
const migration = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Migration',
  metadata: { name },
  spec,
});

localOnly('the kubenova API', () => {
  it('installs all four CRDs with short names, the kubenova category and printer columns', async () => {
    const all = env.kubectl(['get', 'inst,mig,cn,flv']);
    expect(all).toContain('flavor.compute.kubenova.io/m1.small');
    expect(all).toContain('computenode.compute.kubenova.io/node-a');
    expect(env.kubectl(['get', 'kubenova', '-A'])).toContain('flavor.compute.kubenova.io/m1.tiny');

    const flavors = parseTable(env.kubectl(['get', 'flv']));
    expect(flavors.find((r) => r.NAME === 'm1.large')).toMatchObject({ VCPUS: '4', MEMORY: '8192', DISK: '80' });

    const nodes = parseTable(env.kubectl(['get', 'cn']));
    expect(nodes[0]).toMatchObject({ NAME: 'node-a', ZONE: 'az1', READY: 'True' });
    expect(nodes[0]?.VCPUS).toMatch(/^0\/\d+$/);
    expect(Object.keys(nodes[0] ?? {})).toEqual(['NAME', 'ZONE', 'VCPUS', 'MEMORY', 'DISK', 'READY', 'AGE']);

    env.apply(instance('columns', { flavor: 'm1.small', image: 'cirros' }));
    const header = env.kubectl(['get', 'inst']).split('\n')[0]?.split(/\s+/).filter(Boolean);
    expect(header).toEqual(['NAME', 'STATUS', 'TASK', 'FLAVOR', 'HOST', 'POWER', 'READY', 'AGE']);
    // READY is the Ready condition's status; instances are in the `all` category, as pods are.
    const inst = await env.instance('columns');
    await env.kube.instances.patchStatus(inst!, {
      conditions: [
        {
          type: 'Ready',
          status: 'False',
          reason: 'Stopped',
          message: '',
          lastTransitionTime: new Date().toISOString(),
        },
      ],
    });
    expect(parseTable(env.kubectl(['get', 'inst', 'columns']))[0]).toMatchObject({ NAME: 'columns', READY: 'False' });
    expect(env.kubectl(['get', 'all'])).toContain('instance.compute.kubenova.io/columns');
    env.apply(migration('columns-move', { instance: 'columns' }));
    expect(env.kubectl(['get', 'mig']).split('\n')[0]?.split(/\s+/).filter(Boolean)).toEqual([
      'NAME',
      'INSTANCE',
      'TYPE',
      'STATUS',
      'SOURCE',
      'DEST',
      'AGE',
    ]);
  });

  it('fills defaults the user left out', async () => {
    env.apply(instance('defaults', { flavor: 'm1.tiny', image: 'cirros' }));
    const i = await env.instance('defaults');
    expect(i?.spec.powerState).toBe('Running');
    const node = await env.computeNode('node-a');
    expect(node?.spec.allocationRatio).toEqual({ cpu: 4, memory: 1, disk: 1 });
    expect(node?.spec.reserved).toEqual({ vcpus: 0, memoryMiB: 512, diskGiB: 0 });
  });

  // Each row: a manifest (or a change) the API server must refuse, and the words of its answer.
  const badManifests: { name: string; manifest: object; expect: RegExp }[] = [
    {
      name: 'instance without a flavor',
      manifest: instance('bad-1', { image: 'cirros' }),
      expect: /spec\.flavor: Required value/,
    },
    {
      name: 'instance without an image',
      manifest: instance('bad-2', { flavor: 'm1.small' }),
      expect: /spec\.image: Required value/,
    },
    {
      name: 'instance flavor of the wrong type',
      manifest: instance('bad-3', { flavor: 42, image: 'cirros' }),
      expect: /spec\.flavor: Invalid value: "integer": spec\.flavor in body must be of type string/,
    },
    {
      name: 'instance flavor that is not a name',
      manifest: instance('bad-4', { flavor: 'M1 Small!', image: 'cirros' }),
      expect: /spec\.flavor in body should match/,
    },
    {
      name: 'instance powerState Paused',
      manifest: instance('bad-5', { flavor: 'm1.small', image: 'cirros', powerState: 'Paused' }),
      expect: /spec\.powerState: Unsupported value: "Paused": supported values: "Running", "Stopped"/,
    },
    {
      name: 'instance with an empty image',
      manifest: instance('bad-6', { flavor: 'm1.small', image: '' }),
      expect: /spec\.image in body should be at least 1 chars long/,
    },
    {
      name: 'instance with an unknown field',
      manifest: instance('bad-7', { flavor: 'm1.small', image: 'cirros', cpus: 4 }),
      expect: /unknown field "spec\.cpus"/,
    },
    {
      name: 'flavor with zero vcpus',
      manifest: flavor('bad-8', { vcpus: 0, memoryMiB: 512, rootDiskGiB: 1 }),
      expect: /spec\.vcpus in body should be greater than or equal to 1/,
    },
    {
      name: 'flavor with negative memory',
      manifest: flavor('bad-9', { vcpus: 1, memoryMiB: -1, rootDiskGiB: 1 }),
      expect: /spec\.memoryMiB in body should be greater than or equal to 64/,
    },
    {
      name: 'flavor with negative disk',
      manifest: flavor('bad-10', { vcpus: 1, memoryMiB: 512, rootDiskGiB: -5 }),
      expect: /spec\.rootDiskGiB in body should be greater than or equal to 0/,
    },
    {
      name: 'flavor with fractional vcpus',
      manifest: flavor('bad-11', { vcpus: 1.5, memoryMiB: 512, rootDiskGiB: 1 }),
      expect: /spec\.vcpus in body must be of type integer/,
    },
    {
      name: 'flavor without memory',
      manifest: flavor('bad-12', { vcpus: 1, rootDiskGiB: 1 }),
      expect: /spec\.memoryMiB: Required value/,
    },
    {
      name: 'flavor extraSpecs that are not strings',
      manifest: flavor('bad-13', { vcpus: 1, memoryMiB: 512, rootDiskGiB: 1, extraSpecs: { 'node:tier': 3 } }),
      expect: /extraSpecs\.node:tier in body must be of type string/,
    },
    {
      name: 'migration without an instance',
      manifest: migration('bad-14', {}),
      expect: /spec\.instance: Required value/,
    },
    {
      name: 'migration decision Maybe',
      manifest: migration('bad-15', { instance: 'web-1', decision: 'Maybe' }),
      expect: /spec\.decision: Unsupported value: "Maybe": supported values: "", "Confirm", "Revert"/,
    },
    {
      name: 'compute node with a negative reserve',
      manifest: {
        apiVersion: 'compute.kubenova.io/v1alpha1',
        kind: 'ComputeNode',
        metadata: { name: 'bad-16' },
        spec: { reserved: { memoryMiB: -1 } },
      },
      expect: /spec\.reserved\.memoryMiB in body should be greater than or equal to 0/,
    },
    {
      name: 'compute node with a zero allocation ratio',
      manifest: {
        apiVersion: 'compute.kubenova.io/v1alpha1',
        kind: 'ComputeNode',
        metadata: { name: 'bad-17' },
        spec: { allocationRatio: { cpu: 0 } },
      },
      expect: /allocation ratios must be greater than 0/,
    },
  ];

  it.each(badManifests)('refuses $name with a clear message', ({ manifest, expect: message }) => {
    const stderr = env.kubectlFails(['apply', '-f', '-'], JSON.stringify(manifest));
    expect(stderr).toMatch(message);
  });

  it('refuses a flavor change while a task runs, naming the task (Nova 409)', async () => {
    env.apply(instance('busy', { flavor: 'm1.small', image: 'cirros' }));
    const i = await env.instance('busy');
    await env.kube.instances.patchStatus(i!, { vmState: 'active', taskState: 'resize_migrating' });
    const stderr = env.kubectlFails([
      'patch',
      'instance',
      'busy',
      '--type',
      'merge',
      '-p',
      '{"spec":{"flavor":"m1.large"}}',
    ]);
    expect(stderr).toMatch(/spec\.flavor cannot change while task resize_migrating is running/);
    const after = await env.instance('busy');
    expect(after?.spec.flavor).toBe('m1.small');

    await env.kube.instances.patchStatus(after!, { taskState: '' });
    expect(
      env.kubectl(['patch', 'instance', 'busy', '--type', 'merge', '-p', '{"spec":{"flavor":"m1.large"}}']),
    ).toContain('patched');
  });

  it('refuses any edit of a flavor: flavors are immutable, as in Nova', () => {
    const stderr = env.kubectlFails(['patch', 'flavor', 'm1.small', '--type', 'merge', '-p', '{"spec":{"vcpus":8}}']);
    expect(stderr).toMatch(/Flavor spec is immutable, as Nova flavors are: create a new Flavor/);
  });

  it("refuses changing a migration's instance, flavor or target, and a second decision", () => {
    env.apply(migration('fixed', { instance: 'web-1', flavor: 'm1.large' }));
    expect(
      env.kubectlFails(['patch', 'migration', 'fixed', '--type', 'merge', '-p', '{"spec":{"instance":"web-2"}}']),
    ).toMatch(/spec\.instance is immutable/);
    expect(
      env.kubectlFails(['patch', 'migration', 'fixed', '--type', 'merge', '-p', '{"spec":{"flavor":"m1.tiny"}}']),
    ).toMatch(/spec\.flavor is immutable/);
    expect(
      env.kubectlFails(['patch', 'migration', 'fixed', '--type', 'merge', '-p', '{"spec":{"targetHost":"node-b"}}']),
    ).toMatch(/spec\.targetHost is immutable/);
    env.kubectl(['patch', 'migration', 'fixed', '--type', 'merge', '-p', '{"spec":{"decision":"Confirm"}}']);
    expect(
      env.kubectlFails(['patch', 'migration', 'fixed', '--type', 'merge', '-p', '{"spec":{"decision":"Revert"}}']),
    ).toMatch(/spec\.decision is final once set/);
  });

  it('explains its fields with kubectl explain', () => {
    const out = env.kubectl(['explain', 'instance.spec']);
    expect(out).toContain('Name of the Flavor wanted. Change it to request a resize.');
    expect(out).toMatch(/powerState\s+<string>/);
    // Fields the API fixes to a set of values show them.
    expect(env.kubectl(['explain', 'migration.spec.decision'])).toMatch(/ENUM:\s+""\s+Confirm\s+Revert/);
    expect(env.kubectl(['explain', 'computequota.spec.hard.vcpus'])).toContain('Virtual CPUs.');
    expect(env.kubectl(['explain', 'migration.status.conditions.observedGeneration'])).toContain(
      'The .metadata.generation the condition was set from.',
    );
  });
});
