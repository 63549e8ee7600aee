import { HttpMethod, KubeConfig, RequestContext } from '@kubernetes/client-node';
import { Agent } from 'undici';
import { describe, expect, it } from 'vitest';
import { KeepAliveKubeConfig, sharedAgentOptions, WATCH_IDLE_MS } from './keepalive.js';

const SERVER = 'https://127.0.0.1:6443';
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A kubeconfig with a CA and a client certificate (never used to connect: only compared). */
function load<K extends KubeConfig>(kc: K, cert = 'cert-1'): K {
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: SERVER, caData: b64('ca'), skipTLSVerify: false }],
    users: [{ name: 'u', certData: b64(cert), keyData: b64('key') }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return kc;
}

async function dispatcherOf(kc: KubeConfig): Promise<unknown> {
  const ctx = new RequestContext(`${SERVER}/api`, HttpMethod.GET);
  await kc.applySecurityAuthentication(ctx);
  return ctx.getDispatcher();
}

describe('KeepAliveKubeConfig', () => {
  it('gives client-node a new Agent per request, which is what it replaces (remeasure if this changes)', async () => {
    const kc = load(new KubeConfig());
    const [a, b] = [await dispatcherOf(kc), await dispatcherOf(kc)];
    expect(a).toBeInstanceOf(Agent);
    expect(b).not.toBe(a);
  });

  it('hands every request, concurrent ones included, the one shared Agent', async () => {
    const kc = load(new KeepAliveKubeConfig());
    const first = await dispatcherOf(kc);
    expect(first).toBeInstanceOf(Agent);
    const more = await Promise.all([dispatcherOf(kc), dispatcherOf(kc), dispatcherOf(kc)]);
    for (const d of more) expect(d).toBe(first);
  });

  it('starts a new Agent when the client certificate changes', async () => {
    const kc = load(new KeepAliveKubeConfig());
    const before = await dispatcherOf(kc);
    load(kc, 'cert-2');
    const after = await dispatcherOf(kc);
    expect(after).toBeInstanceOf(Agent);
    expect(after).not.toBe(before);
    expect(await dispatcherOf(kc)).toBe(after);
  });

  it('leaves a quiet watch to its own idle limit: the shared Agent does not cut a silent response sooner', () => {
    // undici's default (5 minutes) ended every quiet watch as an error, a lost view and a re-list.
    const { bodyTimeout, keepAliveTimeout } = sharedAgentOptions({});
    expect(bodyTimeout).toBeGreaterThan(WATCH_IDLE_MS);
    expect(keepAliveTimeout).toBeGreaterThan(4_000);
  });
});
