import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Instance } from '../../common/api/types.js';
import type { ObjectCache } from '../../common/kube/api.js';
import type { FakeCluster } from '../../common/kube/fake.js';
import { objectKey } from '../../common/runtime/controller.js';
import {
  claimsOn,
  oneHost,
  scheduledTo,
  seedInstance,
  silentLog,
  SMALL,
  type TestHost,
  type TestHosts,
} from '../testing.js';
import { DepartedInstances } from './departed.js';

/** A host's view that no longer holds anything: every instance has left its watches. */
const emptyView: ObjectCache<'Instance'> = { get: () => undefined, list: () => [] };

let cluster: FakeCluster;
let hosts: TestHosts;
let host: TestHost;
let departed: DepartedInstances;

beforeEach(async () => {
  ({ cluster, hosts, host } = await oneHost());
  departed = new DepartedInstances(
    host.name,
    host.kube,
    emptyView,
    cluster.cache('Migration'),
    host.tracker,
    host.driver,
    silentLog,
  );
});
afterEach(() => hosts.cleanup());

/** Claimed and spawned here, but its active write never landed: the instance still says scheduling. */
async function spawnedWithoutActiveWrite(name: string): Promise<Instance> {
  const inst = seedInstance(cluster, name, scheduledTo(host.name));
  const uid = inst.metadata.uid!;
  await host.tracker.claim({
    consumer: uid,
    kind: 'instance',
    instance: objectKey(inst),
    vcpus: 1,
    memoryMiB: 1024,
    diskGiB: 1,
  });
  await host.driver.spawn({ uid, name: objectKey(inst), flavor: SMALL, image: 'cirros' });
  return inst;
}

describe('DepartedInstances: an instance that left the view is judged by a live read', () => {
  it('gives back the domain and the claim of a boot the conductor gave up on (instance in error, no host)', async () => {
    const inst = await spawnedWithoutActiveWrite('web-1');
    await host.kube.instances.patchStatus(cluster.get('Instance', 'web-1')!, { vmState: 'error', taskState: '' });

    const key = departed.left(inst);
    expect(key).toBe('default/web-1');
    await departed.reconcile(key!);

    expect(await host.driver.get(inst.metadata.uid!)).toBeUndefined();
    expect(claimsOn(cluster, host.name)).toEqual([]);
  });

  it('keeps everything while the live instance is still sent here: only the view lagged', async () => {
    const inst = await spawnedWithoutActiveWrite('web-1');

    await departed.reconcile(departed.left(inst)!);

    expect(await host.driver.get(inst.metadata.uid!)).toBeDefined();
    expect(claimsOn(cluster, host.name)).toEqual([`instance/${inst.metadata.uid}`]);
  });

  it('keeps an instance that runs here, and ignores one this host holds nothing for', async () => {
    const inst = await spawnedWithoutActiveWrite('web-1');
    await host.kube.instances.patchStatus(cluster.get('Instance', 'web-1')!, {
      vmState: 'active',
      taskState: '',
      host: host.name,
    });
    await departed.reconcile(departed.left(inst)!);
    expect(claimsOn(cluster, host.name)).toEqual([`instance/${inst.metadata.uid}`]);

    const other = seedInstance(cluster, 'web-2', scheduledTo('host-b'));
    expect(departed.left(other)).toBeUndefined();
  });

  it('keeps the copy of an instance a migration from here stranded in error, for an admin, until it is deleted', async () => {
    const inst = await spawnedWithoutActiveWrite('web-1');
    // The revert failed for good: in error on the destination, its old copy kept here.
    await host.kube.instances.patchStatus(cluster.get('Instance', 'web-1')!, {
      vmState: 'error',
      taskState: '',
      host: 'host-b',
      scheduling: { selectedHost: 'host-b' },
    });
    cluster.seed<'Migration'>({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Migration',
      metadata: { name: 'web-1-resize-2', namespace: 'default' },
      spec: { instance: 'web-1', flavor: 'm1.medium' },
      status: { status: 'error', sourceHost: host.name, destHost: 'host-b' },
    });

    await departed.reconcile(departed.left(inst)!);

    expect(await host.driver.get(inst.metadata.uid!)).toBeDefined();
    expect(claimsOn(cluster, host.name)).toEqual([`instance/${inst.metadata.uid}`]);
  });

  it('destroys the copy of an instance deleted from the API server altogether', async () => {
    const inst = await spawnedWithoutActiveWrite('web-1');
    await host.kube.instances.delete({ namespace: 'default', name: 'web-1' });

    await departed.reconcile(departed.left(inst)!);

    expect(await host.driver.get(inst.metadata.uid!)).toBeUndefined();
    expect(claimsOn(cluster, host.name)).toEqual([]);
  });
});
