import { describe, expect, it } from 'vitest';
import { credentialSecret } from '../../common/api/transfer-credential.js';
import type { FlavorSnapshot, Migration } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { CredentialCache } from './credentials.js';
import { DEFINITION_BYTES, MAX_FILES, TransferGate } from './gate.js';
import { Refusal } from './server.js';

const NS = 'kubenova-system';
const T0 = Date.parse('2030-01-01T00:00:00Z');
const tiny: FlavorSnapshot = { name: 'm1.tiny', vcpus: 1, memoryMiB: 512, rootDiskGiB: 1, ephemeralDiskGiB: 0 };
const small: FlavorSnapshot = { ...tiny, name: 'm1.small', rootDiskGiB: 20 };

function world(status: Migration['status'] = {}) {
  const cluster = new FakeCluster();
  const mig = cluster.seed<'Migration'>({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Migration',
    metadata: { name: 'm1', namespace: 'tenant' },
    spec: { instance: 'web-1' },
    status: {
      status: 'migrating',
      sourceHost: 'node-a',
      destHost: 'node-b',
      oldFlavor: tiny,
      newFlavor: small,
      ...status,
    },
  });
  const uid = mig.metadata.uid!;
  let now = T0;
  const credentials = new CredentialCache(cluster.client().secrets, NS, {}, () => now);
  const gate = new TransferGate(
    'node-b',
    cluster.cache('Migration'),
    credentials,
    { maxDiskBytes: (f) => f.rootDiskGiB * 1000 },
    () => new Date(now),
  );
  const ref = { namespace: 'tenant', name: 'm1', uid };
  const credential = (over: Partial<Parameters<typeof credentialSecret>[1]> = {}, namespace = NS) =>
    cluster.client().secrets.create(
      credentialSecret(namespace, {
        migration: { namespace: 'tenant', name: 'm1', uid },
        source: 'node-a',
        destination: 'node-b',
        expiresAt: new Date(T0 + 60_000),
        token: 'secret',
        ...over,
      }),
    );
  return { cluster, gate, ref, uid, credential, advance: (ms: number) => (now += ms) };
}

async function refusal(p: Promise<unknown>): Promise<Refusal> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Refusal);
  return err as Refusal;
}

describe('TransferGate', () => {
  it('admits the source with the right token, within the larger flavor disk plus definition room', async () => {
    const w = world();
    await w.credential();

    const admission = await w.gate.admit({ ref: w.ref, peer: 'node-a', token: 'secret' });

    expect(admission.maxBytes).toBe(20 * 1000 + DEFINITION_BYTES);
    expect(admission.maxFiles).toBe(MAX_FILES);
    expect(admission.credential).toMatch(/^[0-9a-f]{16}$/);
  });

  it.each<[string, { peer?: string; uid?: string }, Migration['status']]>([
    ['another peer', { peer: 'node-c' }, {}],
    ['a migration not migrating', {}, { status: 'post-migrating' }],
    ['a migration to another host', {}, { destHost: 'node-c' }],
    ['another uid', { uid: 'other' }, {}],
  ])('refuses (403) %s from the cache alone, reading no Secret', async (_label, req, status) => {
    const w = world(status);
    await w.credential();

    const r = await refusal(
      w.gate.admit({ ref: { ...w.ref, uid: req.uid ?? w.ref.uid }, peer: req.peer ?? 'node-a', token: 'secret' }),
    );

    expect(r.status).toBe(403);
    expect(w.cluster.secretReads).toEqual([]);
  });

  it('asks the source to retry (503) while this host still sees its migration pre-migrating: its view lags the move', async () => {
    const w = world({ status: 'pre-migrating' });
    await w.credential();

    const r = await refusal(w.gate.admit({ ref: w.ref, peer: 'node-a', token: 'secret' }));

    expect(r.status).toBe(503);
    expect(w.cluster.secretReads).toEqual([]);
  });

  it('never reads a credential outside the release namespace: one planted in the tenant namespace is not there', async () => {
    const w = world();
    await w.credential({ token: 'forged' }, 'tenant');

    const r = await refusal(w.gate.admit({ ref: w.ref, peer: 'node-a', token: 'forged' }));

    expect(r.status).toBe(401);
    expect(w.cluster.secretReads.every((k) => k.startsWith(`${NS}/`))).toBe(true);
  });

  it.each([
    ['a wrong token', {}, 'guess'],
    ['an expired credential', { expiresAt: new Date(T0 - 1) }, 'secret'],
    ['a credential naming another source', { source: 'node-c' }, 'secret'],
    ['a credential naming another destination', { destination: 'node-c' }, 'secret'],
  ])('refuses (401) %s', async (_label, over, token) => {
    const w = world();
    await w.credential(over);

    expect((await refusal(w.gate.admit({ ref: w.ref, peer: 'node-a', token }))).status).toBe(401);
  });

  it('reads a credential once for a burst of requests, right or wrong, and a missing one once a while', async () => {
    const w = world();
    await w.credential();
    for (let i = 0; i < 5; i++) await w.gate.admit({ ref: w.ref, peer: 'node-a', token: 'secret' });
    for (let i = 0; i < 5; i++) await refusal(w.gate.admit({ ref: w.ref, peer: 'node-a', token: 'guess' }));
    expect(w.cluster.secretReads).toHaveLength(1);

    const none = world();
    for (let i = 0; i < 5; i++) await refusal(none.gate.admit({ ref: none.ref, peer: 'node-a', token: 'x' }));
    expect(none.cluster.secretReads).toHaveLength(1);
  });

  it('reads again, at most once a second, a credential that named other hosts: the operator may have replaced it', async () => {
    const w = world();
    await w.credential({ destination: 'node-c' });
    expect((await refusal(w.gate.admit({ ref: w.ref, peer: 'node-a', token: 'secret' }))).status).toBe(401);
    await w.cluster.client().secrets.delete(NS, `kubenova-transfer-${w.uid}`);
    await w.credential();

    expect((await refusal(w.gate.admit({ ref: w.ref, peer: 'node-a', token: 'secret' }))).status).toBe(401);
    w.advance(1_001);
    await w.gate.admit({ ref: w.ref, peer: 'node-a', token: 'secret' });
    expect(w.cluster.secretReads).toHaveLength(2);
  });

  it('refuses a request without a token before reading anything', async () => {
    const w = world();
    expect((await refusal(w.gate.admit({ ref: w.ref, peer: 'node-a', token: undefined }))).status).toBe(401);
    expect(w.cluster.secretReads).toEqual([]);
  });
});
