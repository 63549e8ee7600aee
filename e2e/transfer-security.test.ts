// The disk transfer between agents, attacked: the transfer port speaks mutual TLS with
// certificates of the agents' CA only; a transfer is bound to one migration, its source and
// destination, through a credential kept in the release namespace; a forged credential in a
// tenant's namespace is never even read; a used credential cannot be replayed; an upload past
// the size cap is cut; failing peers are slowed down before anything is looked up. Migrations
// still work end to end. The API server's audit log (Secrets only) shows who read which Secret.
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AGENT_CA_SECRET } from '../common/api/agent-certificates.js';
import { parseCredential, transferCredentialName } from '../common/api/transfer-credential.js';
import type { Instance, Migration, MigrationPhase } from '../common/api/types.js';
import { createCa, createCsr, newPrivateKey, parseCsr, signLeaf } from '../common/tls/x509.js';
import { filePath, commitPath, SHA256_HEADER, type TransferRef } from '../node-agent/transfer/protocol.js';
import { RELEASE_NAMESPACE } from '../devenv/components.js';
import { TestEnv } from './harness/env.js';
import { localOnly } from './harness/mode.js';

const TENANT = 'tenant-x';
let env: TestEnv;
let auditDir: string;

interface Peer {
  key: string;
  cert: string;
  ca: string;
}

beforeAll(async () => {
  auditDir = mkdtempSync(join(tmpdir(), 'kubenova-audit-'));
  writeFileSync(
    join(auditDir, 'policy.yaml'),
    [
      'apiVersion: audit.k8s.io/v1',
      'kind: Policy',
      'omitStages: [RequestReceived]',
      'rules:',
      '- level: Metadata',
      '  resources: [{group: "", resources: [secrets]}]',
      '- level: None',
      '',
    ].join('\n'),
  );
  env = await TestEnv.start({
    agents: [{ name: 'node-a' }, { name: 'node-b' }],
    // The source of the held migration below retries its failing step instead of giving up.
    agentArgs: ['--step-retries=1000'],
    apiserverFlags: [
      `--audit-policy-file=${join(auditDir, 'policy.yaml')}`,
      `--audit-log-path=${join(auditDir, 'audit.log')}`,
    ],
  });
  env.kubectl(['create', 'namespace', TENANT]);
}, 180_000);

afterAll(async () => {
  await env?.stop();
  rmSync(auditDir, { recursive: true, force: true });
});

const active = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';

async function boot(name: string, host: string, namespace = 'default', flavor = 'm1.tiny'): Promise<Instance> {
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name, namespace },
    spec: { flavor, image: 'cirros', host },
  });
  return env.waitForInstance(name, active, 'active', 60_000, namespace);
}

function migrate(name: string, instance: string, namespace = 'default'): void {
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Migration',
    metadata: { name, namespace },
    spec: { instance, targetHost: 'node-b' },
  });
}

async function phase(name: string, wanted: MigrationPhase, namespace = 'default'): Promise<Migration> {
  return env.waitFor(
    `migration ${namespace}/${name} ${wanted}`,
    async () => {
      const m = await env.migration(name, namespace);
      return m?.status?.status === wanted ? m : undefined;
    },
    60_000,
    50,
  );
}

/** The agents' CA, as the operator keeps it (read here as the cluster admin). */
async function agentCa(): Promise<{ certPem: string; keyPem: string }> {
  const secret = await env.kube.core.readNamespacedSecret({ namespace: RELEASE_NAMESPACE, name: AGENT_CA_SECRET });
  const pem = (k: string) => Buffer.from(secret.data?.[k] ?? '', 'base64').toString();
  return { certPem: pem('tls.crt'), keyPem: pem('tls.key') };
}

/** A certificate for `cn` from `ca`: what an attacker holding that CA's key, or another CA, could present. */
async function certificate(ca: { certPem: string; keyPem: string }, cn: string): Promise<Peer> {
  const key = await newPrivateKey();
  const cert = signLeaf(ca, parseCsr(createCsr(key, cn)).publicKeyPem, cn, new Date(Date.now() + 3_600_000));
  return { key, cert: `${cert}${ca.certPem}`, ca: ca.certPem };
}

async function endpointOf(host: string): Promise<{ host: string; port: number }> {
  const endpoint = await env.waitFor(`${host} publishes its transfer endpoint`, async () => {
    return (await env.computeNode(host))?.status?.migrationEndpoint;
  });
  const [address = '', port = '0'] = endpoint.split(':');
  return { host: address, port: Number(port) };
}

interface Reply {
  status: number;
  body: string;
}

/** One request to `host`'s transfer server as `peer`; resolves with the reply or the error that ended it. */
async function request(
  host: string,
  peer: Peer,
  method: string,
  urlPath: string,
  headers: Record<string, string>,
  body?: Buffer | (() => AsyncIterable<Buffer>),
): Promise<Reply | string> {
  const { host: address, port } = await endpointOf(host);
  const agentsCa = (await agentCa()).certPem;
  return new Promise((resolve) => {
    const req = https.request({
      host: address,
      port,
      method,
      path: urlPath,
      headers,
      agent: false,
      key: peer.key,
      cert: peer.cert,
      ca: agentsCa,
      checkServerIdentity: () => undefined,
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    if (typeof body === 'function') {
      void (async () => {
        try {
          for await (const chunk of body()) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
          req.end();
        } catch {
          // The server cut us off.
        }
      })();
    } else {
      req.end(body);
    }
  });
}

function put(host: string, peer: Peer, ref: TransferRef, file: string, token: string, body: Buffer) {
  return request(
    host,
    peer,
    'PUT',
    filePath(ref, file),
    {
      authorization: `Bearer ${token}`,
      [SHA256_HEADER]: createHash('sha256').update(body).digest('hex'),
      'content-length': String(body.length),
    },
    body,
  );
}

const statusOf = (r: Reply | string) => (typeof r === 'string' ? r : r.status);

interface AuditEvent {
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; namespace?: string; name?: string };
}

/** Every Secret request the API server audited, oldest first. */
function secretRequests(): AuditEvent[] {
  const file = join(auditDir, 'audit.log');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditEvent)
    .filter((e) => e.objectRef?.resource === 'secrets');
}

const byAgents = (events: AuditEvent[]) => events.filter((e) => e.user.username.startsWith('kubenova:agent:'));

/** The credential of migration `uid`, read as soon as the operator makes it. */
async function credentialToken(uid: string): Promise<string> {
  return env.waitFor(
    `the transfer credential of ${uid}`,
    async () => {
      const secret = await env.kube.core
        .readNamespacedSecret({ namespace: RELEASE_NAMESPACE, name: transferCredentialName(uid) })
        .catch(() => undefined);
      return parseCredential(secret)?.token;
    },
    30_000,
    20,
  );
}

localOnly('disk transfer security', () => {
  it("completes a TLS handshake only with a client certificate of the agents' CA; plain HTTP gets no answer", async () => {
    const { host, port } = await endpointOf('node-b');
    const plain = await new Promise<string>((resolve) => {
      const req = http.request({ host, port, method: 'GET', path: '/', agent: false }, (res) =>
        resolve(`answered ${res.statusCode}`),
      );
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.end();
    });
    const noCertificate = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host, port, rejectUnauthorized: false });
      socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
      socket.on('data', (d: Buffer) => resolve(`answered ${d.toString().split('\r\n')[0]}`));
      socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      socket.on('close', () => resolve('closed'));
    });
    const foreign = await certificate(await createCa('not the agents CA', 1), 'node-a');
    const ref = { namespace: 'default', name: 'nothing', uid: '00000000-0000-0000-0000-000000000000' };
    const otherCa = await put('node-b', foreign, ref, 'disk.img', 'x', Buffer.from('x'));

    expect(plain).not.toMatch(/^answered/);
    expect(noCertificate).not.toMatch(/^answered/);
    expect(typeof otherCa).toBe('string'); // the handshake failed: no HTTP status at all
    // The server's own certificate is the agents' CA's, for node-b.
    const served = await new Promise<X509Certificate>((resolve, reject) => {
      const socket = tls.connect({ host, port, rejectUnauthorized: false }, () => {
        resolve(socket.getPeerX509Certificate() as X509Certificate);
        socket.destroy();
      });
      socket.on('error', reject);
    });
    expect(served.subject).toBe('CN=node-b');
    expect(served.checkIssued(new X509Certificate((await agentCa()).certPem))).toBe(true);
  });

  it('migrates end to end over mutual TLS; the credential lives in the release namespace only and a used one cannot be replayed', async () => {
    const inst = await boot('web-1', 'node-a');
    migrate('web-1-move', 'web-1');
    const started = await env.waitFor('migration uid', async () => (await env.migration('web-1-move'))?.metadata.uid);
    const token = await credentialToken(started);
    const done = await phase('web-1-move', 'finished');
    expect(done.status).toMatchObject({ sourceHost: 'node-a', destHost: 'node-b' });
    expect(done.status?.transfer?.attempts).toBeGreaterThan(0);
    env.kubectl(['patch', 'migration', 'web-1-move', '--type', 'merge', '-p', '{"spec":{"decision":"Confirm"}}']);
    await phase('web-1-move', 'confirmed');
    const moved = await env.waitForInstance('web-1', active, 'active on node-b');
    expect(moved.status?.host).toBe('node-b');
    expect(moved.metadata.uid).toBe(inst.metadata.uid);

    // Nothing of the transfer in the tenant's namespace; the credential is gone once the disk arrived.
    const tenantSecrets = await env.kube.core.listNamespacedSecret({ namespace: 'default' });
    expect(tenantSecrets.items.map((s) => s.metadata?.name)).toEqual([]);
    await env.waitFor('the credential dropped', async () =>
      env.kube.core
        .readNamespacedSecret({ namespace: RELEASE_NAMESPACE, name: transferCredentialName(started) })
        .then(() => false)
        .catch(() => true),
    );

    // Replaying it, even as the source itself: the migration is no longer migrating to node-b.
    const asSource = await certificate(await agentCa(), 'node-a');
    const ref = { namespace: 'default', name: 'web-1-move', uid: started };
    const replayed = await put('node-b', asSource, ref, 'disk.img', token, Buffer.from('replayed bytes'));
    const recommit = await request(
      'node-b',
      asSource,
      'POST',
      commitPath(ref),
      {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'content-length': '12',
      },
      Buffer.from('{"files":[]}'),
    );
    expect(statusOf(replayed)).toBe(403);
    expect(statusOf(recommit)).toBe(403);
    expect(existsSync(join(env.stateDir, 'node-b', 'incoming', started))).toBe(false);
  });

  it("never reads a forged credential Secret in a tenant's namespace, and refuses the upload it was made for", async () => {
    const inst = await boot('victim', 'node-a', TENANT);
    migrate('victim-move', 'victim', TENANT);
    const uid = await env.waitFor(
      'migration uid',
      async () => (await env.migration('victim-move', TENANT))?.metadata.uid,
    );
    // The tenant plants Secrets under every name a transfer credential ever had, with a token of its own.
    for (const name of ['victim-move-transfer', transferCredentialName(uid)]) {
      env.apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, namespace: TENANT, annotations: { 'compute.kubenova.io/migration-uid': uid } },
        stringData: { token: 'forged' },
      });
    }
    await phase('victim-move', 'finished', TENANT);
    const moved = await env.waitForInstance('victim', (i) => i.status?.host === 'node-b', 'on node-b', 30_000, TENANT);
    expect(moved.metadata.uid).toBe(inst.metadata.uid);

    // Even with an agent's certificate, the forged token opens nothing.
    const asSource = await certificate(await agentCa(), 'node-a');
    const forged = await put(
      'node-b',
      asSource,
      { namespace: TENANT, name: 'victim-move', uid },
      'disk.img',
      'forged',
      Buffer.from('x'),
    );
    expect([401, 403]).toContain(statusOf(forged));

    const reads = byAgents(secretRequests());
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.filter((e) => e.objectRef?.namespace !== RELEASE_NAMESPACE)).toEqual([]);
    // Gets of transfer credentials only: never a list, never the agents' CA.
    expect(reads.filter((e) => e.verb !== 'get' || !e.objectRef?.name?.startsWith('kubenova-transfer-'))).toEqual([]);
  });

  it('cuts an upload past the size cap mid-stream, even with the right credential and certificate', async () => {
    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Instance',
      metadata: { name: 'held', annotations: { 'fake.kubenova.io/fail': 'migrate-out@node-a' } },
      spec: { flavor: 'm1.tiny', image: 'cirros', host: 'node-a' },
    });
    await env.waitForInstance('held', active, 'active');
    migrate('held-move', 'held');
    const uid = await env.waitFor('migration uid', async () => (await env.migration('held-move'))?.metadata.uid);
    const token = await credentialToken(uid);
    // The source's migrate-out keeps failing: the migration stays migrating to node-b.
    await phase('held-move', 'migrating');
    const asSource = await certificate(await agentCa(), 'node-a');
    const ref = { namespace: 'default', name: 'held-move', uid };
    const staged = join(env.stateDir, 'node-b', 'incoming', uid);

    // m1.tiny is 1 GiB: 64 KiB of fake disk plus room for the definition. 64 MiB are pushed
    // without waiting for 100 Continue; the server answers and stops reading.
    const chunk = Buffer.alloc(1 << 20, 7);
    const sent = { bytes: 0 };
    const big = await request(
      'node-b',
      asSource,
      'PUT',
      filePath(ref, 'disk.img'),
      { authorization: `Bearer ${token}`, [SHA256_HEADER]: 'a'.repeat(64), 'content-length': String(64 << 20) },
      async function* () {
        for (let i = 0; i < 64; i++) {
          sent.bytes += chunk.length;
          yield chunk;
        }
      },
    );
    expect([413, 'ECONNRESET', 'EPIPE']).toContain(statusOf(big));
    if (typeof big !== 'string') expect(big.body).toMatch(/past its limit/);
    const files = existsSync(staged) ? readdirSync(staged, { recursive: true }).map(String) : [];
    expect(files.filter((f) => f.endsWith('disk.img'))).toEqual([]);

    // Within the cap the same credential and certificate are admitted: the refusal was the size.
    const small = await put('node-b', asSource, ref, 'probe', token, Buffer.from('fits'));
    expect(statusOf(small)).toBe(201);

    env.kubectl(['delete', 'migration', 'held-move', '--wait=false']);
    await env.waitFor('held-move gone', async () => (await env.migration('held-move')) === undefined, 60_000);
  });

  it('slows down a peer whose requests keep failing, at no cost to the API server', async () => {
    const before = byAgents(secretRequests()).length;
    const asPeer = await certificate(await agentCa(), 'node-a');
    const ref = { namespace: TENANT, name: 'no-such-migration', uid: '11111111-1111-1111-1111-111111111111' };
    const outcomes: (number | string)[] = [];
    const started = Date.now();
    for (let i = 0; i < 30; i++)
      outcomes.push(statusOf(await put('node-b', asPeer, ref, 'disk.img', 'guess', Buffer.from('x'))));
    const seconds = (Date.now() - started) / 1000;

    expect(outcomes.slice(0, 10).every((s) => s === 403)).toBe(true);
    // A burst of 20 failures, then 2 a second (the server's defaults): every other request is
    // refused with 429 before it is judged. Counted against the time the requests took, not
    // their order, so a slow machine's refill is allowed for.
    expect(outcomes).toContain(429);
    expect(outcomes.filter((s) => s === 403).length).toBeLessThanOrEqual(20 + Math.ceil(2 * seconds));
    // Give the audit log a moment: nothing may have been read for any of these.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(byAgents(secretRequests()).length).toBe(before);
  });
});
