// The chart's instance-finalizer policy (a MutatingAdmissionPolicy): where the API server
// offers it, an Instance is created with its clean-up finalizer, so its boot costs no write of
// the operator's for it, and every promise the finalizer keeps still holds.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FINALIZER, type Instance } from '../common/api/types.js';
import { localOnly } from './harness/mode.js';
import { TestEnv } from './harness/env.js';

let env: TestEnv;

beforeAll(async () => {
  env = await TestEnv.start({ agents: [{ name: 'node-a' }], finalizerPolicy: true });
});

afterAll(async () => {
  await env?.stop();
});

const manifest = (name: string, finalizers?: string[]) => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Instance',
  metadata: { name, ...(finalizers ? { finalizers } : {}) },
  spec: { flavor: 'm1.tiny', image: 'cirros' },
});

/** `kubectl create`, answering the object as the API server stored it. */
const create = (obj: object): Instance =>
  JSON.parse(env.kubectl(['create', '-o', 'json', '-f', '-'], JSON.stringify(obj)));

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';

localOnly('the instance-finalizer admission policy', () => {
  it('creates an Instance with the clean-up finalizer, and the operator boots it without writing its metadata', async () => {
    expect(create(manifest('web-1')).metadata.finalizers).toEqual([FINALIZER]);
    const inst = await env.waitForInstance('web-1', active, 'active');
    // Only the create wrote the object itself (its finalizer included); the components wrote
    // status alone (one atomic unit, owned by whoever wrote it last).
    const entries = inst.metadata.managedFields ?? [];
    expect(entries.filter((f) => !f.subresource).map((f) => f.manager)).toEqual(['kubectl-create']);
    expect(entries.filter((f) => f.subresource === 'status').map((f) => f.manager)).toEqual(['kubenova-agent-node-a']);
  });

  it("adds nothing to a create that already carries it, and keeps the user's own finalizers", () => {
    expect(create(manifest('web-2', [FINALIZER])).metadata.finalizers).toEqual([FINALIZER]);
    expect(create(manifest('web-3', ['example.com/backup'])).metadata.finalizers).toEqual([
      'example.com/backup',
      FINALIZER,
    ]);
    env.kubectl([
      'patch',
      'instance',
      'web-3',
      '--type=json',
      '-p',
      '[{"op":"remove","path":"/metadata/finalizers/0"}]',
    ]);
  });

  it('still cleans up before the Instance goes: deleted at once after its create, it leaves no claim on the host', async () => {
    const { uid } = create(manifest('web-4')).metadata;
    env.kubectl(['delete', 'instance', 'web-4', '--wait=true', '--timeout=60s']);
    expect(await env.instance('web-4')).toBeUndefined();
    const node = await env.computeNode('node-a');
    expect((node?.status?.claims ?? []).filter((c) => c.consumer === uid)).toEqual([]);
  });
});
