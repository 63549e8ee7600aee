// The port binding follows its instance through a resize and a revert, one Event at each
// change, with the MAC and IP the port was born with.
import { describe, expect, it } from 'vitest';
import type { Port } from '../../common/api/types.js';
import { aMigration, anInstance, World } from '../testing.js';
import { aNetwork } from './testing.js';

async function bootedOn(host: string) {
  const w = new World();
  w.seedFlavor('m1.small');
  w.seedNode('node-a');
  w.seedNode('node-b');
  w.cluster.seed(aNetwork('net1'));
  w.seedInstance(anInstance('web-1', { networks: [{ network: 'net1' }] }));
  await w.boot.reconcile(w.instance('web-1'));
  // The agent of the host claims and spawns.
  await w.kube.instances.patchStatus(w.instance('web-1'), { host, vmState: 'active', taskState: '' });
  return w;
}

const port = (w: World): Port => w.cluster.get('Port', 'web-1-net1', 'default')!;
const sync = (w: World) => w.binding.reconcile('default/web-1-net1');
const binding = (w: World) => {
  const s = port(w).status;
  return [s?.bindingHost ?? '', s?.bindingState ?? '', s?.migratingTo ?? ''];
};

describe('the port binding follows the instance', () => {
  it('unbound while the instance has no host; bound to the host it lands on, with an Event on the port and the instance', async () => {
    const w = new World();
    w.seedFlavor('m1.small');
    w.seedNode('node-a');
    w.cluster.seed(aNetwork('net1'));
    w.seedInstance(anInstance('web-1', { networks: [{ network: 'net1' }] }));
    await w.boot.reconcile(w.instance('web-1'));
    await sync(w);
    expect(port(w).status?.bindingHost).toBeUndefined();

    await w.kube.instances.patchStatus(w.instance('web-1'), { host: 'node-a' });
    await sync(w);
    expect(binding(w)).toEqual(['node-a', 'bound', '']);
    const { fixedIP, macAddress } = port(w).spec;
    const message = `port web-1-net1 (${fixedIP}, ${macAddress}) bound to node-a`;
    expect(w.messages('web-1-net1', 'PortBound')).toEqual([message]);
    expect(w.messages('web-1', 'PortBound')).toEqual([message]);
  });

  it('a resize to node-b: set up there while migrating, bound there at finished, back on node-a after a revert; MAC and IP never change', async () => {
    const w = await bootedOn('node-a');
    await sync(w);
    const born = port(w).spec;
    const mig = w.seedMigration(
      aMigration('web-1-resize-2', { instance: 'web-1' }, { status: 'pre-migrating', sourceHost: 'node-a' }),
    );
    await w.kube.instances.patchStatus(w.instance('web-1'), { migration: mig.metadata.name, taskState: 'resize_prep' });
    const phase = async (status: 'migrating' | 'finished' | 'reverting' | 'reverted', host: string) => {
      await w.kube.migrations.patchStatus(w.migration('web-1-resize-2'), { status, destHost: 'node-b' });
      await w.kube.instances.patchStatus(w.instance('web-1'), { host });
      await sync(w);
      return binding(w);
    };

    expect(await phase('migrating', 'node-a')).toEqual(['node-a', 'migrating', 'node-b']);
    expect(await phase('finished', 'node-b')).toEqual(['node-b', 'bound', '']);
    expect(await phase('reverting', 'node-b')).toEqual(['node-b', 'migrating', 'node-a']);
    expect(await phase('reverted', 'node-a')).toEqual(['node-a', 'bound', '']);

    expect(port(w).spec).toEqual(born);
    expect(w.cluster.eventsFor('web-1-net1')).toEqual([
      'PortBound',
      'PortBindingMigrating',
      'PortBound',
      'PortBindingMigrating',
      'PortBound',
    ]);
    expect(w.messages('web-1-net1', 'PortBound')[1]).toMatch(/bound to node-b \(was node-a, migrating to node-b\)/);
  });

  it('an evacuation re-binds on the host the instance was rebuilt on', async () => {
    const w = await bootedOn('node-a');
    await sync(w);
    await w.kube.instances.patchStatus(w.instance('web-1'), { host: 'node-b' });
    await sync(w);
    expect(binding(w)).toEqual(['node-b', 'bound', '']);
  });

  it('writes nothing when the binding is already right', async () => {
    const w = await bootedOn('node-a');
    await sync(w);
    const writes = w.cluster.writes.length;
    await sync(w);
    expect(w.cluster.writes.length).toBe(writes);
  });
});
