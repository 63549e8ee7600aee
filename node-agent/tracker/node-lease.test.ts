import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { NODE_LEASE_LABEL } from '../../common/api/node-lease.js';
import { NodeLease, type NodeLeaseApi } from './node-lease.js';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const apiError = (code: number) => new ApiException(code, 'refused', {}, {});

interface Lease {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string };
}
interface LeaseRequest {
  group: string;
  plural: string;
  namespace: string;
  name?: string;
  body: Lease;
}

/** An in-memory Lease store answering as kube-apiserver: patching a missing Lease is a 404, a second create a 409. */
function leaseStore() {
  const leases = new Map<string, Lease>();
  const calls: string[] = [];
  const api = {
    patchNamespacedCustomObject: ({ group, plural, name = '', body }: LeaseRequest) => {
      calls.push(`patch ${group}/${plural}/${name}`);
      const have = leases.get(name);
      if (!have) return Promise.reject(apiError(404));
      leases.set(name, {
        metadata: { ...have.metadata, ...body.metadata },
        spec: { ...have.spec, ...body.spec },
      });
      return Promise.resolve(leases.get(name));
    },
    createNamespacedCustomObject: ({ group, plural, body }: LeaseRequest) => {
      const name = body.metadata.name;
      calls.push(`create ${group}/${plural}/${name}`);
      if (leases.has(name)) return Promise.reject(apiError(409));
      leases.set(name, body);
      return Promise.resolve(body);
    },
  };
  return { api, leases, calls, lease: (now?: () => number) => leaseFor(api as unknown as NodeLeaseApi, now) };
}

const leaseFor = (api: NodeLeaseApi, now?: () => number) =>
  new NodeLease(api, { namespace: 'kubenova-system', host: 'node-a', durationSeconds: 40 }, now);

describe('NodeLease', () => {
  it('creates the Lease named after the host the first time, then renews it with one patch per heartbeat', async () => {
    const store = leaseStore();
    let now = T0;
    const lease = store.lease(() => now);
    await lease.renew();
    now += 10_000;
    await lease.renew();
    const [patch, create] = ['patch coordination.k8s.io/leases/node-a', 'create coordination.k8s.io/leases/node-a'];
    expect(store.calls).toEqual([patch, create, patch]);
    const renewed = store.leases.get('node-a');
    expect(renewed?.metadata.labels).toEqual({ [NODE_LEASE_LABEL]: 'true' });
    expect(renewed?.spec).toEqual({
      holderIdentity: 'node-a',
      leaseDurationSeconds: 40,
      renewTime: '2030-01-01T00:00:10.000000Z',
    });
  });

  it('renews a Lease that another renewal created meanwhile, and passes on any other refusal', async () => {
    const store = leaseStore();
    const creating = store.api.createNamespacedCustomObject;
    store.api.createNamespacedCustomObject = async (req) => {
      await creating({ ...req });
      return creating(req);
    };
    await store.lease().renew();
    expect(store.calls.map((c) => c.split(' ')[0])).toEqual(['patch', 'create', 'create', 'patch']);

    store.api.patchNamespacedCustomObject = () => Promise.reject(apiError(403));
    await expect(store.lease().renew()).rejects.toMatchObject({ code: 403 });
  });
});
