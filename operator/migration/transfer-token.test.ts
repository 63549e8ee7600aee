import { describe, expect, it } from 'vitest';
import { parseCredential, transferCredentialName } from '../../common/api/transfer-credential.js';
import type { Migration } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { TransferTokens } from './transfer-token.js';

const NS = 'kubenova-system';
const T0 = Date.parse('2030-01-01T00:00:00Z');
const STEP = 300_000;

function world() {
  const cluster = new FakeCluster();
  let now = T0;
  const tokens = new TransferTokens(
    cluster.client().secrets,
    { namespace: NS, stepTimeoutMs: STEP },
    () => new Date(now),
  );
  const seed = (name: string, status: Migration['status']) =>
    cluster.seed<'Migration'>({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Migration',
      metadata: { name, namespace: 'tenant' },
      spec: { instance: 'web-1' },
      status: { sourceHost: 'node-a', stepDeadline: new Date(T0 + STEP).toISOString(), ...status },
    });
  const credential = (uid: string) => parseCredential(cluster.secret(NS, transferCredentialName(uid)));
  return { cluster, tokens, seed, credential, advance: (ms: number) => (now += ms) };
}

describe('TransferTokens', () => {
  it('makes one credential per destination in the release namespace, expiring one step after the pre-migrating deadline', async () => {
    const w = world();
    const mig = w.seed('m1', { status: 'pre-migrating' });
    const uid = mig.metadata.uid!;

    await w.tokens.ensure(mig, 'node-b');
    const first = w.credential(uid);
    await w.tokens.ensure(mig, 'node-b');

    expect(first).toMatchObject({
      source: 'node-a',
      destination: 'node-b',
      migration: { namespace: 'tenant', name: 'm1', uid },
    });
    expect(first?.expiresAt.getTime()).toBe(T0 + 2 * STEP);
    expect(w.credential(uid)?.token).toBe(first?.token);
    expect(w.cluster.secret('tenant', transferCredentialName(uid))).toBeUndefined();

    // Seen through a view that may be stale, another destination replaces nothing.
    await w.tokens.ensure(mig, 'node-c', false);
    expect(w.credential(uid)?.token).toBe(first?.token);

    // Another destination chosen after a failed claim (its request went through): a new credential, naming it.
    await w.tokens.ensure(mig, 'node-c');
    expect(w.credential(uid)).toMatchObject({ destination: 'node-c' });
    expect(w.credential(uid)?.token).not.toBe(first?.token);
  });

  it('deletes a credential once however often a migration waiting for its decision is reconciled, and once more at most when it settles', async () => {
    const w = world();
    const mig = w.seed('m1', { status: 'pre-migrating' });
    const uid = mig.metadata.uid!;
    await w.tokens.ensure(mig, 'node-b');
    const deletes = () => w.cluster.writes.filter((x) => x.kind === 'Secret' && x.verb === 'delete').length;

    for (let pass = 0; pass < 5; pass++) await w.tokens.drop(mig);
    expect(w.credential(uid)).toBeUndefined();
    expect(deletes()).toBe(1);

    await w.tokens.drop(mig, true);
    expect(deletes()).toBe(1);
    // Settled, the migration is forgotten: a drop after that (another process's view) deletes again.
    await w.tokens.drop(mig, true);
    expect(deletes()).toBe(2);

    // A credential made again after a drop is dropped again.
    const again = w.seed('m2', { status: 'pre-migrating' });
    await w.tokens.drop(again);
    await w.tokens.ensure(again, 'node-c');
    await w.tokens.drop(again);
    expect(w.credential(again.metadata.uid!)).toBeUndefined();
  });

  it('sweeps credentials whose Migration is gone, replaced or ended, and expired ones; keeps the live one', async () => {
    const w = world();
    const live = w.seed('live', { status: 'migrating' });
    const ended = w.seed('ended', { status: 'pre-migrating' });
    const gone = w.seed('gone', { status: 'pre-migrating' });
    const late = w.seed('late', { status: 'pre-migrating' });
    for (const m of [live, ended, gone, late]) await w.tokens.ensure(m, 'node-b');
    await w.cluster.client().migrations.patchStatus(ended, { status: 'error' });
    await w.cluster.client().migrations.delete({ name: 'gone', namespace: 'tenant' });
    w.seed('gone', { status: 'pre-migrating' }); // same name, another uid

    expect(await w.tokens.sweep(w.cluster.cache('Migration'))).toBe(2);
    expect(w.credential(live.metadata.uid!)).toBeDefined();
    expect(w.credential(late.metadata.uid!)).toBeDefined();

    w.advance(2 * STEP + 1);
    expect(await w.tokens.sweep(w.cluster.cache('Migration'))).toBe(2);
    expect(w.credential(live.metadata.uid!)).toBeUndefined();
  });
});
