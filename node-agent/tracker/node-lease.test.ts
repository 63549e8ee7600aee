import { ApiException, type V1Lease } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { NODE_LEASE_LABEL } from '../../common/api/node-lease.js';
import { NodeLease, type NodeLeaseApi } from './node-lease.js';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const apiError = (code: number) => new ApiException(code, 'refused', {}, {});

/** An in-memory Lease store answering as kube-apiserver: patching a missing Lease is a 404, a second create a 409. */
function leaseStore() {
  const leases = new Map<string, V1Lease>();
  const calls: string[] = [];
  const api = {
    patchNamespacedLease: ({ name, body }: { namespace: string; name: string; body: V1Lease }) => {
      calls.push(`patch ${name}`);
      const have = leases.get(name);
      if (!have) return Promise.reject(apiError(404));
      leases.set(name, {
        ...have,
        metadata: { ...have.metadata, ...body.metadata },
        spec: { ...have.spec, ...body.spec },
      });
      return Promise.resolve(leases.get(name)!);
    },
    createNamespacedLease: ({ body }: { namespace: string; body: V1Lease }) => {
      const name = body.metadata!.name!;
      calls.push(`create ${name}`);
      if (leases.has(name)) return Promise.reject(apiError(409));
      leases.set(name, body);
      return Promise.resolve(body);
    },
  } as unknown as NodeLeaseApi;
  return { api, leases, calls };
}

describe('NodeLease', () => {
  it('creates the Lease named after the host the first time, then renews it with one patch per heartbeat', async () => {
    const store = leaseStore();
    let now = T0;
    const lease = new NodeLease(
      store.api,
      { namespace: 'kubenova-system', host: 'node-a', durationSeconds: 40 },
      () => now,
    );
    await lease.renew();
    now += 10_000;
    await lease.renew();
    expect(store.calls).toEqual(['patch node-a', 'create node-a', 'patch node-a']);
    const renewed = store.leases.get('node-a')!;
    expect(renewed.metadata?.labels).toEqual({ [NODE_LEASE_LABEL]: 'true' });
    expect(renewed.spec).toMatchObject({ holderIdentity: 'node-a', leaseDurationSeconds: 40 });
    expect(JSON.parse(JSON.stringify(renewed.spec?.renewTime))).toBe('2030-01-01T00:00:10.000000Z');
  });

  it('renews a Lease that another renewal created meanwhile, and passes on any other refusal', async () => {
    const store = leaseStore();
    const lease = new NodeLease(store.api, { namespace: 'kubenova-system', host: 'node-a', durationSeconds: 40 });
    const racing = store.api.createNamespacedLease.bind(store.api);
    store.api.createNamespacedLease = async (req) => {
      await racing({ ...req });
      return racing(req);
    };
    await lease.renew();
    expect(store.calls).toEqual(['patch node-a', 'create node-a', 'create node-a', 'patch node-a']);

    store.api.patchNamespacedLease = () => Promise.reject(apiError(403));
    await expect(lease.renew()).rejects.toMatchObject({ code: 403 });
  });
});
