import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NODE_NAME_EXTRA } from '../../common/api/agent-certificates.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { createLogger } from '../../common/log.js';
import { AgentSigner } from '../../operator/certificates/agent-signer.js';
import { AgentIdentity, type Identity } from './identity.js';

const log = createLogger({ component: 'test', level: 'silent' });
const NS = 'kubenova-system';
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kubenova-identity-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/**
 * A cluster whose API server records `username` (and the node `boundTo`) as the requester of
 * every request, as the real one does, with the operator's signer passing over it.
 */
function cluster(username: string, boundTo?: string) {
  const fake = new FakeCluster();
  const client = fake.client();
  const csrs = {
    ...client.csrs,
    create: (csr: Parameters<typeof client.csrs.create>[0]) =>
      client.csrs.create({
        ...csr,
        spec: { ...csr.spec, username, extra: boundTo ? { [NODE_NAME_EXTRA]: [boundTo] } : {} },
      }),
  };
  const rule = { serviceAccount: { namespace: NS, name: 'kubenova-node-agent' } };
  const signer = new AgentSigner(client.csrs, client.secrets, { namespace: NS, rule, validityMs: 3_600_000 }, log);
  let stopped = false;
  void (async () => {
    while (!stopped) {
      await signer.pass();
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return { fake, csrs, stop: () => (stopped = true) };
}

const AGENT = 'system:serviceaccount:kubenova-system:kubenova-node-agent';

describe('AgentIdentity', { timeout: 60_000 }, () => {
  it('asks for a certificate of its host, keeps it (key 0600) and a restart takes it from disk', async () => {
    const c = cluster(AGENT, 'node-a');
    const identity = new AgentIdentity({ host: 'node-a', dir, csrs: c.csrs, log, pollMs: 10 });
    const issued = await new Promise<Identity>((resolve) => identity.start(resolve));
    identity.stop();
    c.stop();

    expect(issued.notAfter.getTime() - issued.notBefore.getTime()).toBeGreaterThan(3_000_000);
    expect((await stat(join(dir, 'transfer.key'))).mode & 0o777).toBe(0o600);
    const again = new AgentIdentity({ host: 'node-a', dir, csrs: c.csrs, log });
    expect((await again.load())?.cert).toBe(issued.cert);
    // A certificate kept for another host is not taken.
    const other = new AgentIdentity({ host: 'node-b', dir, csrs: c.csrs, log });
    expect(await other.load()).toBeUndefined();
  });

  it('gets nothing when its request is denied, and asks again later', async () => {
    const c = cluster(AGENT, 'node-b');
    const identity = new AgentIdentity({ host: 'node-a', dir, csrs: c.csrs, log, pollMs: 10, retryMs: 50 });
    identity.start(() => {});
    const list = () => c.fake.client().csrs.list('compute.kubenova.io/agent-transfer');
    // Asked again after a denial: two requests, each of them answered (the second may still be
    // waiting for the signer when it first shows up).
    const denied = async () => {
      const requests = await list();
      return requests.length >= 2 && requests.every((r) => r.status?.conditions?.[0]?.type === 'Denied');
    };
    await expect.poll(denied, { timeout: 20_000 }).toBe(true);
    identity.stop();
    c.stop();

    expect(identity.current()).toBeUndefined();
  });

  it('ignores a kept certificate that is not signed by the CA it came with', async () => {
    const c = cluster(AGENT, 'node-a');
    const identity = new AgentIdentity({ host: 'node-a', dir, csrs: c.csrs, log, pollMs: 10 });
    await new Promise<Identity>((resolve) => identity.start(resolve));
    identity.stop();
    c.stop();
    const chain = await readFile(join(dir, 'transfer.crt'), 'utf8');
    const [leaf] = chain.split('-----END CERTIFICATE-----');
    // Another CA's certificate in place of the one that signed the leaf.
    const other = cluster(AGENT, 'node-a');
    const stranger = new AgentIdentity({ host: 'node-a', dir: join(dir, 'x'), csrs: other.csrs, log, pollMs: 10 });
    const foreign = await new Promise<Identity>((resolve) => stranger.start(resolve));
    stranger.stop();
    other.stop();
    await writeFile(join(dir, 'transfer.crt'), `${leaf}-----END CERTIFICATE-----\n${foreign.ca}\n`);

    expect(await new AgentIdentity({ host: 'node-a', dir, csrs: c.csrs, log }).load()).toBeUndefined();
  });
});
