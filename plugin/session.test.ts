import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, loadConfig, pickNamespace } from './session.js';

const dir = mkdtempSync(join(tmpdir(), 'kubectl-nova-session-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(file: string, contexts: { name: string; server: string; namespace?: string }[], current: string) {
  const text = JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: contexts.map((c) => ({ name: c.name, cluster: { server: c.server } })),
    users: [{ name: 'u', user: { token: 't' } }],
    contexts: contexts.map((c) => ({
      name: c.name,
      context: { cluster: c.name, user: 'u', ...(c.namespace ? { namespace: c.namespace } : {}) },
    })),
    'current-context': current,
  });
  const path = join(dir, file);
  writeFileSync(path, text);
  return path;
}

const a = kubeconfig('a.json', [{ name: 'alpha', server: 'https://alpha.invalid:6443', namespace: 'team-a' }], 'alpha');
const b = kubeconfig('b.json', [{ name: 'beta', server: 'https://beta.invalid:6443' }], 'beta');

describe('connecting as kubectl does', () => {
  it("uses --kubeconfig, its current context and that context's namespace", () => {
    const s = connect({ kubeconfig: a }, {});
    expect(s.server).toBe('https://alpha.invalid:6443');
    expect(s.namespace).toBe('team-a');
    expect(s.namespaceGiven).toBe(false);
  });

  it('-n overrides the namespace of the context and is remembered as given', () => {
    const s = connect({ kubeconfig: a, namespace: 'other' }, {});
    expect([s.namespace, s.namespaceGiven]).toEqual(['other', true]);
  });

  it('reads KUBECONFIG, several files merged, and --context picks any of their contexts', () => {
    const env = { KUBECONFIG: `${a}:${b}` };
    const kc = loadConfig({ context: 'beta' }, env);
    expect(kc.getCurrentCluster()?.server).toBe('https://beta.invalid:6443');
    expect(pickNamespace(kc, {})).toEqual({ namespace: 'default', given: false });
  });

  it('refuses an unknown context, naming the ones there are, a missing kubeconfig and a bad namespace', () => {
    expect(() => loadConfig({ kubeconfig: a, context: 'gamma' }, {})).toThrow(
      'context "gamma" is not in the kubeconfig (contexts: alpha)',
    );
    expect(() => loadConfig({ kubeconfig: join(dir, 'none') }, {})).toThrow('no such file');
    expect(() => loadConfig({}, { KUBECONFIG: join(dir, 'none') })).toThrow('KUBECONFIG names no file that exists');
    expect(() => connect({ kubeconfig: a, namespace: 'Not_A_Namespace' }, {})).toThrow('is not a valid namespace name');
  });
});
