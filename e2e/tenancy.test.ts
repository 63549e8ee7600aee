// Tenancy: ComputeQuota reserved like Nova's quotas (boot reserves before scheduling, a
// resize only its increase, committed on success, given back on revert, failure or delete;
// a confirmed resize leaves the instance's new flavor used, so a downsize lowers it) and
// ServerGroup placement policies, re-checked on the host after the claim.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ComputeQuota, Instance } from '../common/api/types.js';
import { TestEnv } from './harness/env.js';
import { localOnly } from './harness/mode.js';

const API = 'compute.kubenova.io/v1alpha1';
let env: TestEnv;

beforeAll(async () => {
  env = await TestEnv.start();
  env.kubectl(['create', 'namespace', 'team-a']);
  env.kubectl(['create', 'namespace', 'team-b']);
  env.kubectl(['create', 'namespace', 'team-c']);
  env.kubectl(['create', 'namespace', 'team-d']);
  env.kubectl(['create', 'namespace', 'groups']);
  env.apply({
    apiVersion: API,
    kind: 'Flavor',
    metadata: { name: 'c1' },
    spec: { vcpus: 1, memoryMiB: 256, rootDiskGiB: 1 },
  });
  env.apply({
    apiVersion: API,
    kind: 'Flavor',
    metadata: { name: 'c2' },
    spec: { vcpus: 2, memoryMiB: 256, rootDiskGiB: 1 },
  });
  env.apply({
    apiVersion: API,
    kind: 'Flavor',
    metadata: { name: 'c8' },
    spec: { vcpus: 8, memoryMiB: 256, rootDiskGiB: 1 },
  });
});

afterAll(async () => {
  await env?.stop();
});

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';
const instanceDoc = (name: string, namespace: string, spec: Record<string, unknown>) =>
  JSON.stringify({
    apiVersion: API,
    kind: 'Instance',
    metadata: { name, namespace },
    spec: { image: 'cirros', ...spec },
  });
const quota = (namespace: string) => env.kube.quotas.get({ namespace, name: 'quota' });

localOnly('compute quota', () => {
  it('five one-vCPU boots at once against hard.vcpus 4: exactly four active, one QuotaExceeded, used.vcpus 4', async () => {
    env.apply({
      apiVersion: API,
      kind: 'ComputeQuota',
      metadata: { name: 'quota', namespace: 'team-a' },
      spec: { hard: { vcpus: 4 } },
    });
    await env.waitFor('quota cached', async () => (await quota('team-a')) !== undefined);
    env.kubectl(
      ['create', '-f', '-'],
      Array.from({ length: 5 }, (_, n) => instanceDoc(`q-${n}`, 'team-a', { flavor: 'c1' })).join('\n'),
    );
    const all = await env.waitFor(
      'all five settled',
      async () => {
        const list = (await env.kube.instances.list('team-a')).items;
        return list.length === 5 && list.every((i) => active(i) || i.status?.vmState === 'error') ? list : undefined;
      },
      60_000,
    );
    expect(all.filter(active)).toHaveLength(4);
    const refused = all.filter((i) => i.status?.vmState === 'error');
    expect(refused).toHaveLength(1);
    expect(refused[0]?.status?.fault?.reason).toBe('QuotaExceeded');
    expect(refused[0]?.status?.fault?.message).toMatch(/vcpus: used 4 \+ requested 1 > limit 4/);
    expect(refused[0]?.status?.host).toBeUndefined();
    const q = await env.waitFor('used.vcpus 4', async () => {
      const x = await quota('team-a');
      return x?.status?.used?.vcpus === 4 && x.status.reserved?.vcpus === 0 ? x : undefined;
    });
    expect(q.status?.used).toMatchObject({ instances: 4, vcpus: 4 });
    expect(env.kubectl(['get', 'cq', '-n', 'team-a'])).toMatch(/quota\s+4\/∞\s+4\/4/);
  });

  it('refuses a resize beyond quota with nothing changed; within quota reserves the increase, confirm keeps it, revert gives it back, delete returns used to zero', async () => {
    env.apply({
      apiVersion: API,
      kind: 'ComputeQuota',
      metadata: { name: 'quota', namespace: 'team-b' },
      spec: { hard: { vcpus: 4 } },
    });
    await env.waitFor('quota cached', async () => (await quota('team-b')) !== undefined);
    env.kubectl(['create', '-f', '-'], instanceDoc('r-1', 'team-b', { flavor: 'c1' }));
    const before = await env.waitForInstance('r-1', active, 'active', 60_000, 'team-b');

    env.kubectl(['patch', 'instance', 'r-1', '-n', 'team-b', '--type', 'merge', '-p', '{"spec":{"flavor":"c8"}}']);
    const refused = await env.waitForInstance(
      'r-1',
      (i) => i.status?.fault?.reason === 'QuotaExceeded',
      'QuotaExceeded',
      30_000,
      'team-b',
    );
    expect(refused.status?.fault?.message).toMatch(/vcpus: used 1 \+ requested 7 > limit 4/);
    expect(refused.status).toMatchObject({ vmState: 'active', host: before.status?.host, flavor: { name: 'c1' } });
    expect((await quota('team-b'))?.status?.used?.vcpus).toBe(1);

    env.kubectl(['patch', 'instance', 'r-1', '-n', 'team-b', '--type', 'merge', '-p', '{"spec":{"flavor":"c2"}}']);
    const reserving = await env.waitFor('increase reserved', async () => {
      const q = await quota('team-b');
      return (q?.status?.reserved?.vcpus ?? 0) + (q?.status?.used?.vcpus ?? 0) === 2 ? q : undefined;
    });
    expect(reserving.status?.reserved?.instances ?? 0).toBe(0);
    const mig = await env.waitFor(
      'resize finished',
      async () => {
        const m = (await env.kube.migrations.list('team-b')).items.find((x) => x.status?.status === 'finished');
        return m;
      },
      60_000,
    );
    // The operator commits the increase once it sees the migration finished.
    const committed = await env.waitFor('increase committed at finished', async () => {
      const q = await quota('team-b');
      return q?.status?.used?.vcpus === 2 ? q : undefined;
    });
    expect(committed.status?.used?.vcpus).toBe(2);
    env.kubectl([
      'patch',
      'migration',
      mig.metadata.name,
      '-n',
      'team-b',
      '--type',
      'merge',
      '-p',
      '{"spec":{"decision":"Revert"}}',
    ]);
    await env.waitForInstance('r-1', (i) => active(i) && i.spec.flavor === 'c1', 'reverted', 60_000, 'team-b');
    await env.waitFor('revert gives the increase back', async () => (await quota('team-b'))?.status?.used?.vcpus === 1);

    env.kubectl(['patch', 'instance', 'r-1', '-n', 'team-b', '--type', 'merge', '-p', '{"spec":{"flavor":"c2"}}']);
    const second = await env.waitFor(
      'second resize finished',
      async () =>
        (await env.kube.migrations.list('team-b')).items.find(
          (x) => x.metadata.name !== mig.metadata.name && x.status?.status === 'finished',
        ),
      60_000,
    );
    env.kubectl([
      'patch',
      'migration',
      second.metadata.name,
      '-n',
      'team-b',
      '--type',
      'merge',
      '-p',
      '{"spec":{"decision":"Confirm"}}',
    ]);
    await env.waitForInstance(
      'r-1',
      (i) => active(i) && i.status?.flavor?.name === 'c2',
      'confirmed',
      60_000,
      'team-b',
    );
    const kept: ComputeQuota = await env.waitFor('confirm keeps it', async () => {
      const q = await quota('team-b');
      // Folded into the instance's own allocation once the operator has seen the confirm.
      const folded = q?.status?.allocations?.length === 1;
      return folded && q?.status?.used?.vcpus === 2 && q.status.reserved?.vcpus === 0 ? q : undefined;
    });
    expect(kept.status?.allocations).toHaveLength(1);

    env.kubectl(['delete', 'instance', 'r-1', '-n', 'team-b']);
    await env.waitFor(
      'delete returns used to zero',
      async () => {
        const q = await quota('team-b');
        return (
          q?.status?.used?.vcpus === 0 && q.status.used.instances === 0 && (q.status.allocations ?? []).length === 0
        );
      },
      30_000,
    );
  });
});

// Each downsize has an instance and a namespace of its own, so neither quota shows the other's.
localOnly('compute quota: downsizes', () => {
  /** `name` booted with c2 in `namespace` under hard.vcpus 4, its usage committed. */
  async function bootedWithC2(namespace: string, name: string) {
    env.apply({
      apiVersion: API,
      kind: 'ComputeQuota',
      metadata: { name: 'quota', namespace },
      spec: { hard: { vcpus: 4 } },
    });
    await env.waitFor('quota cached', async () => (await quota(namespace)) !== undefined);
    env.kubectl(['create', '-f', '-'], instanceDoc(name, namespace, { flavor: 'c2' }));
    await env.waitForInstance(name, active, 'active', 60_000, namespace);
    const booted = await env.waitFor('boot committed', async () => {
      const q = await quota(namespace);
      return q?.status?.used?.vcpus === 2 ? q : undefined;
    });
    expect(booted.status?.used).toEqual({ instances: 1, vcpus: 2, memoryMiB: 256, diskGiB: 1, ports: 0 });
  }

  /** Resizes `name` down to c1 and decides once it has finished. */
  async function downsize(namespace: string, name: string, decision: 'Confirm' | 'Revert') {
    env.kubectl(['patch', 'instance', name, '-n', namespace, '--type', 'merge', '-p', '{"spec":{"flavor":"c1"}}']);
    const mig = await env.waitFor(
      'downsize finished',
      async () => (await env.kube.migrations.list(namespace)).items.find((m) => m.status?.status === 'finished'),
      60_000,
    );
    const patch = JSON.stringify({ spec: { decision } });
    env.kubectl(['patch', 'migration', mig.metadata.name, '-n', namespace, '--type', 'merge', '-p', patch]);
    return mig;
  }

  /** The quota once only the instance's own allocation is left: the resize's has been settled. */
  const settled = (namespace: string, name: string) =>
    env.waitFor('resize quota settled', async () => {
      const q = await quota(namespace);
      const allocations = q?.status?.allocations ?? [];
      return allocations.length === 1 && allocations[0]?.instance === name ? q : undefined;
    });

  it('a downsize confirmed lowers quota used', async () => {
    await bootedWithC2('team-c', 'd-1');
    await downsize('team-c', 'd-1', 'Confirm');
    await env.waitForInstance(
      'd-1',
      (i) => active(i) && i.status?.flavor?.name === 'c1',
      'confirmed',
      60_000,
      'team-c',
    );
    const confirmed = await settled('team-c', 'd-1');
    expect(confirmed.status?.used).toEqual({ instances: 1, vcpus: 1, memoryMiB: 256, diskGiB: 1, ports: 0 });
    expect(confirmed.status?.reserved).toEqual({ instances: 0, vcpus: 0, memoryMiB: 0, diskGiB: 0, ports: 0 });
    expect(confirmed.status?.allocations?.[0]).toMatchObject({ state: 'used', vcpus: 1 });
  });

  it('a downsize reverted leaves quota used as it was', async () => {
    await bootedWithC2('team-d', 'd-2');
    await downsize('team-d', 'd-2', 'Revert');
    await env.waitForInstance('d-2', (i) => active(i) && i.spec.flavor === 'c2', 'reverted', 60_000, 'team-d');
    const reverted = await settled('team-d', 'd-2');
    expect(reverted.status?.used).toEqual({ instances: 1, vcpus: 2, memoryMiB: 256, diskGiB: 1, ports: 0 });
    expect(reverted.status?.reserved).toEqual({ instances: 0, vcpus: 0, memoryMiB: 0, diskGiB: 0, ports: 0 });
  });
});

localOnly('server groups', () => {
  const group = (name: string, policy: string) =>
    env.apply({ apiVersion: API, kind: 'ServerGroup', metadata: { name, namespace: 'groups' }, spec: { policy } });

  it('anti-affinity: three members on three hosts, and a fourth fails NoValidHost', async () => {
    group('spread', 'anti-affinity');
    await env.waitFor(
      'group cached',
      async () => (await env.kube.serverGroups.get({ namespace: 'groups', name: 'spread' })) !== undefined,
    );
    for (const n of [1, 2, 3]) {
      env.kubectl(['create', '-f', '-'], instanceDoc(`spread-${n}`, 'groups', { flavor: 'c1', serverGroup: 'spread' }));
      await env.waitForInstance(`spread-${n}`, active, 'active', 60_000, 'groups');
    }
    const hosts = await Promise.all(
      [1, 2, 3].map(async (n) => (await env.instance(`spread-${n}`, 'groups'))?.status?.host),
    );
    expect(new Set(hosts).size).toBe(3);
    env.kubectl(['create', '-f', '-'], instanceDoc('spread-4', 'groups', { flavor: 'c1', serverGroup: 'spread' }));
    const fourth = await env.waitForInstance(
      'spread-4',
      (i) => i.status?.vmState === 'error',
      'error',
      60_000,
      'groups',
    );
    expect(fourth.status?.fault).toMatchObject({
      reason: 'NoValidHost',
      message: expect.stringMatching(/ServerGroupAntiAffinityFilter removed 3 of 3/),
    });
    // The group's status had three members on three hosts before spread-4 was created: wait
    // for the write that adds it, not for the hosts alone.
    const status = await env.waitFor('group status with four members', async () => {
      const g = await env.kube.serverGroups.get({ namespace: 'groups', name: 'spread' });
      return g?.status?.members?.length === 4 ? g : undefined;
    });
    expect(status.status?.members).toEqual(['spread-1', 'spread-2', 'spread-3', 'spread-4']);
    expect(status.status?.hosts).toHaveLength(3);
  });

  it('affinity: all members on one host', async () => {
    group('together', 'affinity');
    await env.waitFor(
      'group cached',
      async () => (await env.kube.serverGroups.get({ namespace: 'groups', name: 'together' })) !== undefined,
    );
    env.kubectl(
      ['create', '-f', '-'],
      [1, 2, 3]
        .map((n) => instanceDoc(`together-${n}`, 'groups', { flavor: 'c1', serverGroup: 'together' }))
        .join('\n'),
    );
    const members = await Promise.all(
      [1, 2, 3].map((n) =>
        env.waitForInstance(
          `together-${n}`,
          (i) => active(i) || i.status?.vmState === 'error',
          'settled',
          60_000,
          'groups',
        ),
      ),
    );
    const running = members.filter(active);
    expect(running.length).toBeGreaterThanOrEqual(1);
    expect(new Set(running.map((i) => i.status?.host)).size).toBe(1);
  });

  it('concurrent boots of an anti-affinity group never share a host: the late check on the host catches the race', async () => {
    group('racers', 'anti-affinity');
    await env.waitFor(
      'group cached',
      async () => (await env.kube.serverGroups.get({ namespace: 'groups', name: 'racers' })) !== undefined,
    );
    // Two schedulers that cannot see each other's placements: operators sharded by label.
    await env.operator?.stop();
    const a = env.startOperator(
      [
        '--instance-selector=shard=a',
        '--ram-weight-multiplier=0',
        '--cpu-weight-multiplier=0',
        '--disk-weight-multiplier=0',
      ],
      'operator-a',
    );
    const b = env.startOperator(
      [
        '--instance-selector=shard=b',
        '--ram-weight-multiplier=0',
        '--cpu-weight-multiplier=0',
        '--disk-weight-multiplier=0',
      ],
      'operator-b',
    );
    try {
      await Promise.all([env.waitForRunning('operator-a'), env.waitForRunning('operator-b')]);
      const docs = [
        ['racer-1', 'a'],
        ['racer-2', 'b'],
      ].map(([name, shard]) =>
        JSON.stringify({
          apiVersion: API,
          kind: 'Instance',
          metadata: { name, namespace: 'groups', labels: { shard } },
          spec: { image: 'cirros', flavor: 'c1', serverGroup: 'racers' },
        }),
      );
      env.kubectl(['create', '-f', '-'], docs.join('\n'));
      const [one, two] = await Promise.all(
        ['racer-1', 'racer-2'].map((n) =>
          env.waitForInstance(n, (i) => active(i) || i.status?.vmState === 'error', 'settled', 60_000, 'groups'),
        ),
      );
      expect(active(one!) && active(two!)).toBe(true);
      expect(one!.status?.host).not.toBe(two!.status?.host);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      env.startOperator();
    }
  });

  it('refuses joining a missing group with a clear fault, and changing spec.serverGroup', async () => {
    env.kubectl(['create', '-f', '-'], instanceDoc('lonely', 'groups', { flavor: 'c1', serverGroup: 'nobody' }));
    const i = await env.waitForInstance('lonely', (x) => x.status?.vmState === 'error', 'error', 30_000, 'groups');
    expect(i.status?.fault).toMatchObject({
      reason: 'ServerGroupNotFound',
      message: expect.stringMatching(/server group nobody does not exist in namespace groups/),
    });
    expect(
      env.kubectlFails([
        'patch',
        'instance',
        'spread-1',
        '-n',
        'groups',
        '--type',
        'merge',
        '-p',
        '{"spec":{"serverGroup":"together"}}',
      ]),
    ).toMatch(/spec\.serverGroup is immutable/);
    expect(
      env.kubectlFails(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: API,
          kind: 'ServerGroup',
          metadata: { name: 'odd', namespace: 'groups' },
          spec: { policy: 'sometimes' },
        }),
      ),
    ).toMatch(/Unsupported value: "sometimes"/);
    expect(
      env.kubectlFails(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: API,
          kind: 'ComputeQuota',
          metadata: { name: 'neg', namespace: 'groups' },
          spec: { hard: { vcpus: -1 } },
        }),
      ),
    ).toMatch(/spec\.hard\.vcpus in body should be greater than or equal to 0/);
  });
});
