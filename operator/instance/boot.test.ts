import { describe, expect, it } from 'vitest';
import { FakeApiError } from '../../common/kube/fake.js';
import { isConflict } from '../../common/kube/client.js';
import { anInstance, CLAIM_TIMEOUT_MS, SMALL, snapshot, World, type WorldOptions } from '../testing.js';

/** m1.small and two empty, healthy hosts; web-1 created, not yet handled. */
async function booting(opts: WorldOptions & { nodes?: string[]; spec?: Parameters<typeof anInstance>[1] } = {}) {
  const world = new World(opts);
  world.seedFlavor('m1.small');
  for (const node of opts.nodes ?? ['node-a', 'node-b']) world.seedNode(node);
  world.seedInstance(anInstance('web-1', opts.spec));
  return world;
}

const step = (world: World) => world.boot.reconcile(world.instance('web-1'));

/**
 * What the selected host's agent writes when it claimed web-1 but the spawn failed: the one
 * status patch that hands it back (host cleared, scheduling again, claimFailure SpawnFailed).
 */
async function failSpawn(world: World, cause: string) {
  const inst = world.instance('web-1');
  const s = inst.status?.scheduling ?? {};
  const host = s.selectedHost ?? '';
  const claimed = await world.kube.instances.patchStatus(inst, { host, taskState: 'spawning' });
  await world.kube.instances.patchStatus(claimed, {
    host: null,
    taskState: 'scheduling',
    powerState: 'nostate',
    scheduling: {
      claimFailure: { host, attempt: s.attempts ?? 0, reason: 'SpawnFailed', message: `spawn failed: ${cause}` },
    },
  });
}
const uidOf = (world: World) => world.instance('web-1').metadata.uid ?? '';

describe('BootConductor: a new instance', () => {
  it('a new instance is placed in its first status write: building/scheduling, host, flavor, Scheduled, no Event', async () => {
    const world = new World();
    world.seedFlavor('m1.small');
    world.seedNode('node-a');
    world.seedInstance(anInstance('web-1'));
    const writes = world.cluster.writes.length;

    expect(await step(world)).toEqual({ requeueAfterMs: CLAIM_TIMEOUT_MS });

    expect(world.writesSince(writes)).toEqual(['patchStatus Instance/web-1']);
    const s = world.instance('web-1').status;
    expect(s).toMatchObject({ vmState: 'building', taskState: 'scheduling', powerState: 'nostate' });
    expect(s?.observedGeneration).toBe(1);
    expect(s?.scheduling).toEqual({ attempts: 1, triedHosts: ['node-a'], selectedHost: 'node-a' });
    expect(s?.conditions).toEqual([expect.objectContaining({ type: 'Scheduled', status: 'True' })]);
    // The happy path's one Event is the agent's Spawned.
    expect(world.cluster.eventsFor('web-1')).toEqual([]);
  });
});

describe('BootConductor: choosing a host', () => {
  it('scheduling selects a host for attempt 1, records it as tried, applies the flavor, says Scheduled', async () => {
    const world = await booting();

    expect(await step(world)).toEqual({ requeueAfterMs: CLAIM_TIMEOUT_MS });

    const s = world.instance('web-1').status;
    expect(s?.scheduling).toEqual({ attempts: 1, triedHosts: ['node-a'], selectedHost: 'node-a' });
    expect(s?.flavor).toEqual(snapshot('m1.small', SMALL));
    expect(s?.host).toBeUndefined();
    const scheduled = { type: 'Scheduled', status: 'True', reason: 'Scheduled' };
    expect(s?.conditions).toEqual([expect.objectContaining(scheduled)]);
    expect(world.placement.inFlight.hostOf(uidOf(world))).toBe('node-a');
  });

  it('while the selected host is usable the conductor waits for its agent: a requeue and no write', async () => {
    const world = await booting();
    await step(world);
    const writes = world.cluster.writes.length;
    const events = world.cluster.events.length;

    expect(await step(world)).toEqual({ requeueAfterMs: CLAIM_TIMEOUT_MS });
    expect(await step(world)).toEqual({ requeueAfterMs: CLAIM_TIMEOUT_MS });

    expect(world.writesSince(writes)).toEqual([]);
    expect(world.cluster.events.length).toBe(events);
    expect(world.instance('web-1').status?.scheduling?.attempts).toBe(1);
  });

  it("once the host's agent has claimed (host set, spawning) the conductor has nothing left to do", async () => {
    const world = await booting();
    await step(world);
    await world.kube.instances.patchStatus(world.instance('web-1'), { host: 'node-a', taskState: 'spawning' });
    const writes = world.cluster.writes.length;

    expect(await step(world)).toEqual({});
    expect(world.writesSince(writes)).toEqual([]);
  });

  it('a failed claim of the current attempt is rescheduled on an untried host, with a Rescheduled event', async () => {
    const world = await booting();
    await step(world);
    await world.failClaim('Instance', 'web-1', 'free vcpus 0 < requested 1');

    expect(await step(world)).toEqual({ requeueAfterMs: CLAIM_TIMEOUT_MS });

    const s = world.instance('web-1').status;
    expect(s?.scheduling).toEqual({
      attempts: 2,
      triedHosts: ['node-a', 'node-b'],
      selectedHost: 'node-b',
      failures: [{ host: 'node-a', attempt: 1, message: 'free vcpus 0 < requested 1' }],
    });
    expect(s?.vmState).toBe('building');
    expect(world.cluster.eventsFor('web-1')).toEqual(['Rescheduled', 'Scheduled']);
    expect(world.messages('web-1', 'Rescheduled')).toEqual([
      'attempt 1 on node-a failed (free vcpus 0 < requested 1); rescheduling',
    ]);
    expect(world.reschedules).toEqual(['instance']);
    expect(world.placement.inFlight.hostOf(uidOf(world))).toBe('node-b');
  });

  it('a selected host that goes silent before claiming is given up and the boot retried elsewhere', async () => {
    const world = await booting();
    await step(world);
    await world.silence('node-a');

    await step(world);

    expect(world.instance('web-1').status?.scheduling).toMatchObject({ attempts: 2, selectedHost: 'node-b' });
    expect(world.messages('web-1', 'Rescheduled')).toEqual([
      'attempt 1 on node-a failed (host node-a stopped responding before it claimed the instance); rescheduling',
    ]);
  });

  it("after maxAttempts failed claims the boot goes to error/NoValidHost naming every attempt's host and failure", async () => {
    const world = await booting({ maxAttempts: 2, nodes: ['node-a', 'node-b', 'node-c'] });
    await step(world);
    await world.failClaim('Instance', 'web-1', 'free vcpus 0 < requested 1');
    await step(world);
    await world.failClaim('Instance', 'web-1', 'free memory 0 MiB < requested 2048 MiB');

    expect(await step(world)).toEqual({});

    const s = world.instance('web-1').status;
    expect(s).toMatchObject({ vmState: 'error', taskState: '' });
    expect(s?.fault?.reason).toBe('NoValidHost');
    expect(s?.fault?.message).toBe(
      'no host could take the instance after 2 attempts: node-a: free vcpus 0 < requested 1; ' +
        'node-b: free memory 0 MiB < requested 2048 MiB',
    );
    expect(s?.fault?.time).toBe(world.now.toISOString());
    expect(s?.scheduling?.selectedHost).toBeUndefined();
    const notScheduled = { type: 'Scheduled', status: 'False', reason: 'NoValidHost' };
    expect(s?.conditions).toEqual([expect.objectContaining(notScheduled)]);
    // node-c was never tried: the budget ran out first.
    expect(s?.scheduling?.triedHosts).toEqual(['node-a', 'node-b']);
    expect(world.cluster.eventsFor('web-1')).toEqual(['Rescheduled', 'Scheduled', 'NoValidHost']);
    expect(world.placement.inFlight.size()).toBe(0);
  });

  it('a forced host (spec.host) whose claim fails ends in error/ClaimFailed without trying elsewhere', async () => {
    const world = await booting({ spec: { host: 'node-b' } });
    await step(world);
    expect(world.instance('web-1').status?.scheduling?.selectedHost).toBe('node-b');
    await world.failClaim('Instance', 'web-1', 'free vcpus 0 < requested 1');

    await step(world);

    const s = world.instance('web-1').status;
    expect(s).toMatchObject({ vmState: 'error', taskState: '' });
    expect(s?.fault).toMatchObject({
      reason: 'ClaimFailed',
      message: 'forced host node-b could not take the instance: free vcpus 0 < requested 1',
    });
    expect(s?.scheduling?.attempts).toBe(1);
    expect(world.cluster.eventsFor('web-1')).toEqual(['ClaimFailed']);
    expect(world.reschedules).toEqual([]);
  });

  it('a spawn that failed on the selected host is rescheduled on an untried host, the failure kept', async () => {
    const world = await booting({ nodes: ['node-a', 'node-b', 'node-c'] });
    await step(world);
    // The agent spawning "spawns" a moment: the conductor has nothing to do meanwhile.
    await failSpawn(world, 'image broken failed to boot');

    expect(await step(world)).toEqual({ requeueAfterMs: CLAIM_TIMEOUT_MS });

    const s = world.instance('web-1').status;
    expect(s).toMatchObject({ vmState: 'building', taskState: 'scheduling' });
    expect(s?.host).toBeUndefined();
    expect(s?.scheduling).toEqual({
      attempts: 2,
      triedHosts: ['node-a', 'node-b'],
      selectedHost: 'node-b',
      failures: [
        { host: 'node-a', attempt: 1, reason: 'SpawnFailed', message: 'spawn failed: image broken failed to boot' },
      ],
    });
    expect(world.messages('web-1', 'Rescheduled')).toEqual([
      'attempt 1 on node-a failed (spawn failed: image broken failed to boot); rescheduling',
    ]);
    expect(world.reschedules).toEqual(['instance']);
    expect(world.placement.inFlight.hostOf(uidOf(world))).toBe('node-b');
  });

  it("after maxAttempts failed spawns the boot goes to error/SpawnFailed naming every host's cause, quota given back", async () => {
    const world = await booting({ nodes: ['node-a', 'node-b', 'node-c'] });
    world.seedQuota({ instances: 10 });
    for (let i = 0; i < 3; i++) {
      await step(world);
      await failSpawn(world, `boom ${i + 1}`);
    }
    expect(world.allocations().map((a) => a.state)).toEqual(['reserved']);

    expect(await step(world)).toEqual({});

    const s = world.instance('web-1').status;
    expect(s).toMatchObject({ vmState: 'error', taskState: '' });
    expect(s?.fault).toEqual({
      reason: 'SpawnFailed',
      message:
        'no host could take the instance after 3 attempts: node-a: spawn failed: boom 1; ' +
        'node-b: spawn failed: boom 2; node-c: spawn failed: boom 3',
      time: world.now.toISOString(),
    });
    expect(s?.scheduling?.selectedHost).toBeUndefined();
    const notScheduled = { type: 'Scheduled', status: 'False', reason: 'SpawnFailed' };
    expect(s?.conditions).toEqual([expect.objectContaining(notScheduled)]);
    // Each spawn failure's Warning is the agent's; the conductor adds the one for the end.
    expect(world.cluster.eventsFor('web-1')).toEqual([
      'Rescheduled',
      'Scheduled',
      'Rescheduled',
      'Scheduled',
      'SpawnFailed',
    ]);
    expect(world.allocations()).toEqual([]);
    expect(world.placement.inFlight.size()).toBe(0);
  });

  it('the end of a boot whose claims and spawns failed is SpawnFailed only when the last attempt failed in spawn', async () => {
    const spawnLast = await booting({ maxAttempts: 2 });
    await step(spawnLast);
    await spawnLast.failClaim('Instance', 'web-1', 'free vcpus 0 < requested 1');
    await step(spawnLast);
    await failSpawn(spawnLast, 'boom');
    await step(spawnLast);
    expect(spawnLast.instance('web-1').status?.fault).toMatchObject({
      reason: 'SpawnFailed',
      message:
        'no host could take the instance after 2 attempts: node-a: free vcpus 0 < requested 1; ' +
        'node-b: spawn failed: boom',
    });

    const claimLast = await booting({ maxAttempts: 2 });
    await step(claimLast);
    await failSpawn(claimLast, 'boom');
    await step(claimLast);
    await claimLast.failClaim('Instance', 'web-1', 'free vcpus 0 < requested 1');
    await step(claimLast);
    expect(claimLast.instance('web-1').status?.fault?.reason).toBe('NoValidHost');
  });

  it('a reschedule keeps the flavor snapshot it started with, even when the Flavor was deleted meanwhile', async () => {
    const world = await booting();
    await step(world);
    await world.kube.flavors.delete({ name: 'm1.small' });
    await world.failClaim('Instance', 'web-1', 'free vcpus 0 < requested 1');

    await step(world);

    const s = world.instance('web-1').status;
    expect(s?.scheduling?.selectedHost).toBe('node-b');
    expect(s?.flavor).toEqual(snapshot('m1.small', SMALL));
  });
});

describe('BootConductor: boots that cannot be placed', () => {
  it('a boot of a flavor that does not exist goes to error/FlavorNotFound and reaches no host', async () => {
    const world = await booting({ spec: { flavor: 'm9.huge' } });

    await step(world);

    const s = world.instance('web-1').status;
    expect(s).toMatchObject({ vmState: 'error', taskState: '' });
    expect(s?.fault?.reason).toBe('FlavorNotFound');
    expect(s?.fault?.message).toContain('flavor m9.huge does not exist');
    expect(s?.scheduling?.selectedHost).toBeUndefined();
    expect(world.cluster.eventsFor('web-1')).toEqual(['FlavorNotFound']);
    expect(world.placement.inFlight.size()).toBe(0);
  });

  it('a boot of a disabled flavor goes to error/FlavorDisabled and reaches no host', async () => {
    const world = new World();
    world.seedFlavor('m1.old', { disabled: true });
    world.seedNode('node-a');
    world.seedInstance(anInstance('web-1', { flavor: 'm1.old' }));
    await step(world);

    await step(world);

    const s = world.instance('web-1').status;
    expect(s).toMatchObject({ vmState: 'error', fault: { reason: 'FlavorDisabled' } });
    expect(s?.fault?.message).toContain('flavor m1.old is disabled');
    expect(s?.scheduling?.selectedHost).toBeUndefined();
    expect(world.cluster.eventsFor('web-1')).toEqual(['FlavorDisabled']);
  });

  it('a boot into a server group that does not exist goes to error/ServerGroupNotFound', async () => {
    const world = await booting({ spec: { serverGroup: 'spread' } });

    await step(world);

    const s = world.instance('web-1').status;
    expect(s).toMatchObject({ vmState: 'error', fault: { reason: 'ServerGroupNotFound' } });
    expect(s?.fault?.message).toContain('server group spread does not exist in namespace default');
    expect(s?.scheduling?.selectedHost).toBeUndefined();
    expect(world.cluster.eventsFor('web-1')).toEqual(['ServerGroupNotFound']);
    expect(world.placement.inFlight.size()).toBe(0);
  });

  it('a boot under quota reserves one instance and its flavor before the scheduler decides', async () => {
    const world = new World();
    world.seedFlavor('m1.small');
    world.seedNode('node-a');
    world.seedQuota({ instances: 2 });
    world.seedInstance(anInstance('web-1'));
    await step(world);

    await step(world);

    expect(world.allocations()).toEqual([
      {
        consumer: uidOf(world),
        instance: 'web-1',
        state: 'reserved',
        instances: 1,
        vcpus: 1,
        memoryMiB: 2048,
        diskGiB: 20,
      },
    ]);
    expect(world.instance('web-1').status?.scheduling?.selectedHost).toBe('node-a');
  });

  it('a boot over quota goes to error with QuotaExceeded and never reaches a host', async () => {
    const world = new World();
    world.seedFlavor('m1.small');
    world.seedNode('node-a');
    const used = { consumer: 'uid-other', instance: 'db-1', state: 'used' as const, instances: 1, vcpus: 1 };
    world.seedQuota({ instances: 1 }, [used]);
    world.seedInstance(anInstance('web-1'));
    await step(world);

    await step(world);

    const s = world.instance('web-1').status;
    expect(s).toMatchObject({ vmState: 'error', taskState: '' });
    expect(s?.fault).toMatchObject({
      reason: 'QuotaExceeded',
      message: 'quota exceeded: instances: used 1 + requested 1 > limit 1',
    });
    expect(s?.scheduling?.selectedHost).toBeUndefined();
    expect(world.cluster.eventsFor('web-1')).toEqual(['QuotaExceeded']);
    expect(world.placement.inFlight.size()).toBe(0);
    // Nothing is held for the refused boot; the other instance's usage is untouched.
    expect(world.allocations()).toEqual([used]);
  });

  it('when no host fits, the boot goes to error/NoValidHost naming the filter, its quota given back', async () => {
    const world = new World();
    world.seedFlavor('m1.huge', { memoryMiB: 65536 });
    world.seedNode('node-a');
    world.seedNode('node-b');
    world.seedQuota({ instances: 10 });
    world.seedInstance(anInstance('web-1', { flavor: 'm1.huge' }));
    await step(world);

    await step(world);

    const s = world.instance('web-1').status;
    expect(s).toMatchObject({ vmState: 'error', taskState: '', fault: { reason: 'NoValidHost' } });
    expect(s?.fault?.message).toBe(
      'No valid host was found. There are not enough hosts available. ' +
        'Filtering removed all hosts: RamFilter removed 2 of 2',
    );
    expect(world.cluster.eventsFor('web-1')).toEqual(['NoValidHost']);
    expect(world.allocations()).toEqual([]);
    expect(world.placement.inFlight.size()).toBe(0);
  });

  it('a failed status write after select forgets the in-flight placement: a retry counts it once', async () => {
    const world = await booting();
    world.cluster.failNext('Instance', 'patchStatus', new FakeApiError(409, 'conflict'));

    const err = await step(world).catch((e: unknown) => e);

    expect(isConflict(err)).toBe(true);
    expect(world.placement.inFlight.size()).toBe(0);
    expect(world.instance('web-1').status?.scheduling).toBeUndefined();
    expect(world.cluster.eventsFor('web-1')).toEqual([]);

    // The retry sees node-a as free as before: it is chosen again and counted once.
    await step(world);
    expect(world.instance('web-1').status?.scheduling).toEqual({
      attempts: 1,
      triedHosts: ['node-a'],
      selectedHost: 'node-a',
    });
    expect(world.placement.inFlight.forHost('node-a')).toEqual({ vcpus: 1, memoryMiB: 2048, diskGiB: 20 });
  });
});
