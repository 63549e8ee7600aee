import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import pino from 'pino';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCa, createCsr, newPrivateKey, parseCsr, signLeaf } from '../../common/tls/x509.js';
import { sendDirectory, type SendOptions } from './client.js';
import {
  SHA256_HEADER,
  TransferFailed,
  commitPath,
  filePath,
  type ErrorBody,
  type Manifest,
  type TransferRef,
} from './protocol.js';
import { Refusal, TransferServer, type TlsMaterial } from './server.js';

const REF: TransferRef = { namespace: 'tenant-a', name: 'resize-vm1', uid: '5f0c6c2e-8a7b-4c1d-9e2f-0a1b2c3d4e5f' };
const TOKEN = 'one-time-token-for-resize-vm1';
/** The staging key admit() hands out for TOKEN's credential. */
const CRED = '00112233445566aa';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** node-a sends, node-b serves; `stranger` holds a certificate of another CA. */
let certs: { source: TlsMaterial; dest: TlsMaterial; other: TlsMaterial; stranger: TlsMaterial };

async function leaf(ca: { certPem: string; keyPem: string }, cn: string): Promise<TlsMaterial> {
  const key = await newPrivateKey();
  const cert = signLeaf(ca, parseCsr(createCsr(key, cn)).publicKeyPem, cn, new Date(Date.now() + 86_400_000));
  return { key, cert: `${cert}${ca.certPem}`, ca: ca.certPem };
}

beforeAll(async () => {
  const ca = await createCa('test agents CA', 1);
  const foreign = await createCa('someone else CA', 1);
  certs = {
    source: await leaf(ca, 'node-a'),
    dest: await leaf(ca, 'node-b'),
    other: await leaf(ca, 'node-c'),
    stranger: await leaf(foreign, 'node-a'),
  };
}, 60_000);

interface Fixture {
  root: string;
  sourceDir: string;
  stagingRoot: string;
  server: TransferServer;
  port: number;
  /** The token admit() expects per migration uid; none means no credential exists. */
  tokens: Map<string, string>;
  admissions: number;
  failNextLookup: boolean;
  /** How many more admissions answer "not yet migrating as this host sees it" (a lagging watch). */
  lagAnswers: number;
  maxBytes: number;
  maxFiles: number;
  storedBytes: number[];
  files: Record<string, Buffer>;
}

let fx: Fixture;

async function startServer(partial: Omit<Fixture, 'server' | 'port'>, headroomBytes = 0) {
  const server = new TransferServer({
    stagingRoot: partial.stagingRoot,
    address: '127.0.0.1',
    port: 0,
    log: pino({ level: 'silent' }),
    headroomBytes,
    failureBurst: 5,
    failuresPerSecond: 0.01,
    // What gate.ts decides, reduced to what these tests need: node-a may send, with the token.
    admit: async ({ ref, peer, token }) => {
      partial.admissions++;
      if (partial.failNextLookup) {
        partial.failNextLookup = false;
        throw new Error('secrets "kubenova-transfer-x" is forbidden');
      }
      if (partial.lagAnswers > 0) {
        partial.lagAnswers--;
        throw new Refusal(503, 'Unavailable', 'migration default/m is not yet migrating as node-b sees it; retry');
      }
      if (peer !== 'node-a') throw new Refusal(403, 'Forbidden', `nothing is migrating from ${peer}`);
      const expected = partial.tokens.get(ref.uid);
      if (!expected || token !== expected) throw new Refusal(401, 'Unauthorized', 'wrong transfer token');
      return { credential: CRED, maxBytes: partial.maxBytes, maxFiles: partial.maxFiles };
    },
    onBytes: (bytes) => partial.storedBytes.push(bytes),
  });
  const port = await server.start(certs.dest);
  // Mutations through fx must reach the closures above, so fx is the same object.
  fx = Object.assign(partial, { server, port });
}

beforeEach(async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kubenova-transfer-'));
  const sourceDir = path.join(root, 'source', 'instance-vm1');
  const stagingRoot = path.join(root, 'staging');
  await mkdir(sourceDir, { recursive: true });
  const files: Record<string, Buffer> = {
    disk: randomBytes(1024 * 1024 + 17),
    'domain.xml': Buffer.from('<domain type="kvm"><name>vm1</name></domain>\n'),
    'console.log': Buffer.alloc(0),
  };
  for (const [name, data] of Object.entries(files)) await writeFile(path.join(sourceDir, name), data);
  await startServer({
    root,
    sourceDir,
    stagingRoot,
    tokens: new Map([[REF.uid, TOKEN]]),
    admissions: 0,
    failNextLookup: false,
    lagAnswers: 0,
    maxBytes: 4 * 1024 * 1024,
    maxFiles: 8,
    storedBytes: [],
    files,
  });
});

afterEach(async () => {
  await fx.server.stop();
  await rm(fx.root, { recursive: true, force: true });
});

function sendOpts(overrides: Partial<SendOptions> = {}): SendOptions {
  return {
    endpoint: `127.0.0.1:${fx.port}`,
    destination: 'node-b',
    tls: certs.source,
    ref: REF,
    token: TOKEN,
    dir: fx.sourceDir,
    files: Object.keys(fx.files),
    backoffMs: 1,
    ...overrides,
  };
}

interface RawReply {
  status: number;
  json: unknown;
}

/** A request outside the client, to act as a misbehaving or malicious sender (node-a's certificate by default). */
function raw(
  method: string,
  urlPath: string,
  headers: Record<string, string>,
  body?: Buffer,
  as: TlsMaterial = certs.source,
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: fx.port,
        method,
        path: urlPath,
        headers,
        agent: false,
        key: as.key,
        cert: as.cert,
        ca: certs.dest.ca,
        checkServerIdentity: () => undefined,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as unknown) : undefined });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function put(
  name: string,
  body: Buffer,
  opts: { sha?: string; token?: string; encodedPath?: string; as?: TlsMaterial } = {},
): Promise<RawReply> {
  return raw(
    'PUT',
    opts.encodedPath ?? filePath(REF, name),
    {
      authorization: `Bearer ${opts.token ?? TOKEN}`,
      [SHA256_HEADER]: opts.sha ?? sha256(body),
      'content-length': String(body.length),
    },
    body,
    opts.as,
  );
}

function commit(manifest: Manifest): Promise<RawReply> {
  const body = Buffer.from(JSON.stringify(manifest));
  return raw(
    'POST',
    commitPath(REF),
    { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'content-length': String(body.length) },
    body,
  );
}

function manifestOf(files: Record<string, Buffer>): Manifest {
  return { files: Object.entries(files).map(([name, data]) => ({ name, size: data.length, sha256: sha256(data) })) };
}

async function expectFailure(promise: Promise<unknown>): Promise<TransferFailed> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TransferFailed);
  return err as TransferFailed;
}

/** Resolves with how a connection attempt ended: an error's code or message. */
function connectionError(start: (done: (outcome: string) => void) => void): Promise<string> {
  return new Promise((resolve) => start(resolve));
}

const stagedFiles = (): string => path.join(fx.stagingRoot, REF.uid, CRED, 'files');
const stagedTmp = (): string => path.join(fx.stagingRoot, REF.uid, CRED, 'tmp');
const listOrEmpty = async (dir: string): Promise<string[]> => (existsSync(dir) ? (await readdir(dir)).sort() : []);

describe('sendDirectory with TransferServer', () => {
  it('delivers every file byte-identical and commits exactly the manifest the source hashed', async () => {
    const result = await sendDirectory(sendOpts());

    expect(result.manifest).toEqual(manifestOf(fx.files));
    expect(result.bytes).toBe(Object.values(fx.files).reduce((n, b) => n + b.length, 0));
    expect(result.attempts).toBe(Object.keys(fx.files).length + 1);
    const dir = await fx.server.completedDir(REF.uid);
    expect(dir).toBeDefined();
    // Only the instance files: no manifest, marker or temp file mixed in.
    expect((await readdir(dir as string)).sort()).toEqual(Object.keys(fx.files).sort());
    for (const [name, data] of Object.entries(fx.files)) {
      expect((await readFile(path.join(dir as string, name))).equals(data), name).toBe(true);
    }
  });

  it('reports each stored file and the accepted commit to onBytes', async () => {
    const result = await sendDirectory(sendOpts());

    const manifestBytes = Buffer.byteLength(JSON.stringify(result.manifest));
    expect(fx.storedBytes.slice(0, -1).sort()).toEqual(
      Object.values(fx.files)
        .map((b) => b.length)
        .sort(),
    );
    expect(fx.storedBytes.at(-1)).toBe(manifestBytes);
  });

  it('fails at once on a wrong token, without retrying and without staging anything', async () => {
    const failure = await expectFailure(sendDirectory(sendOpts({ token: 'guessed', retries: 5, backoffMs: 60_000 })));

    expect(failure.attempts).toBe(1);
    expect(failure.message).toMatch(/401 Unauthorized/);
    expect(fx.admissions).toBe(1);
    expect(await listOrEmpty(stagedFiles())).toEqual([]);
  });

  it('fails at once when no token exists for the Migration', async () => {
    fx.tokens.clear();

    const failure = await expectFailure(sendDirectory(sendOpts({ retries: 5, backoffMs: 60_000 })));

    expect(failure.attempts).toBe(1);
    expect(failure.message).toMatch(/401/);
  });

  it('retries an upload whose connection broke mid-stream and the file still arrives intact', async () => {
    const broken: string[] = [];
    const result = await sendDirectory(
      sendOpts({
        breakAttempt: (file, attempt) => {
          const brk = file === 'disk' && attempt === 1;
          if (brk) broken.push(file);
          return brk;
        },
      }),
    );

    expect(broken).toEqual(['disk']);
    expect(result.attempts).toBe(Object.keys(fx.files).length + 2);
    const dir = (await fx.server.completedDir(REF.uid)) as string;
    expect((await readFile(path.join(dir, 'disk'))).equals(fx.files.disk as Buffer)).toBe(true);
    // The half-received body of the broken attempt is not left behind.
    expect(await listOrEmpty(stagedTmp())).toEqual([]);
  });

  it('gives up with TransferFailed after every attempt breaks, reporting how many were made', async () => {
    const failure = await expectFailure(
      sendDirectory(sendOpts({ retries: 4, breakAttempt: (file) => file === 'disk' })),
    );

    expect(failure.attempts).toBe(4);
    expect(failure.message).toMatch(/upload disk failed after 4 attempts/);
    expect(await fx.server.completedDir(REF.uid)).toBeUndefined();
    expect(await listOrEmpty(stagedFiles())).not.toContain('disk');
    // The server learns of each break asynchronously; its partial temp files must all go.
    await expect.poll(() => listOrEmpty(stagedTmp())).toEqual([]);
  });

  it('waits out a destination that cannot look up the token for a moment (503), spending no retry on it', async () => {
    fx.failNextLookup = true;

    const result = await sendDirectory(sendOpts());

    expect(result.attempts).toBe(Object.keys(fx.files).length + 1);
    expect(await fx.server.completedDir(REF.uid)).toBeDefined();
  });

  it('waits out a destination whose view lags the move to migrating for longer than its retries would last', async () => {
    fx.lagAnswers = 6;

    const result = await sendDirectory(sendOpts({ retries: 3 }));

    expect(fx.lagAnswers).toBe(0);
    expect(result.attempts).toBe(Object.keys(fx.files).length + 1);
    expect(await fx.server.completedDir(REF.uid)).toBeDefined();
  });

  it('a sender that runs again after its commit learns the transfer is done, and no new bytes are accepted', async () => {
    await sendDirectory(sendOpts());

    const again = await sendDirectory(sendOpts({ retries: 5, backoffMs: 60_000 }));

    // One refused upload (409 AlreadyCommitted), then the same manifest committed again (200):
    // the token cannot bring new bytes.
    expect(again.attempts).toBe(2);
    const reply = await put('domain.xml', fx.files['domain.xml'] as Buffer);
    expect(reply.status).toBe(409);
  });

  it('a sender whose files differ from the committed transfer fails: a 409 is never taken for success', async () => {
    await sendDirectory(sendOpts());
    await writeFile(path.join(fx.sourceDir, 'domain.xml'), '<domain>changed</domain>\n');

    const failure = await expectFailure(sendDirectory(sendOpts({ retries: 5, backoffMs: 60_000 })));

    expect(failure.message).toMatch(/committed with a different manifest/);
    const dir = (await fx.server.completedDir(REF.uid)) as string;
    expect((await readFile(path.join(dir, 'domain.xml'))).equals(fx.files['domain.xml'] as Buffer)).toBe(true);
  });

  it('refuses file names that could leave the instance directory before sending anything', async () => {
    const failure = await expectFailure(sendDirectory(sendOpts({ files: ['../etc-passwd'] })));

    expect(failure.attempts).toBe(0);
    expect(fx.admissions).toBe(0);
  });
});

describe('TransferServer protocol', () => {
  it('refuses an upload whose body does not match X-Content-SHA256 with 400 and stores nothing', async () => {
    const body = fx.files['domain.xml'] as Buffer;

    const reply = await put('domain.xml', body, { sha: sha256(Buffer.from('something else')) });

    expect(reply.status).toBe(400);
    expect((reply.json as ErrorBody).reason).toBe('ChecksumMismatch');
    expect(await listOrEmpty(stagedFiles())).toEqual([]);
    expect(await listOrEmpty(stagedTmp())).toEqual([]);
  });

  it('stores an upload whose digest matches and answers 201', async () => {
    const body = fx.files['domain.xml'] as Buffer;

    const reply = await put('domain.xml', body);

    expect(reply.status).toBe(201);
    expect((await readFile(path.join(stagedFiles(), 'domain.xml'))).equals(body)).toBe(true);
  });

  it.each([
    ['an encoded ../x', `${filePath(REF, 'placeholder').replace(/placeholder$/, '')}..%2Fx`],
    ['a literal ../x', `${filePath(REF, 'placeholder').replace(/placeholder$/, '')}../x`],
    ['a hidden name', filePath(REF, '.complete')],
    ['a bare ..', filePath(REF, '..')],
  ])('refuses %s as a file name with 400 and writes nothing outside staging', async (_label, urlPath) => {
    const body = Buffer.from('escape');

    const reply = await put('', body, { encodedPath: urlPath });

    expect(reply.status).toBe(400);
    expect((reply.json as ErrorBody).reason).toBe('InvalidName');
    expect(existsSync(path.join(fx.stagingRoot, REF.uid, CRED, 'x'))).toBe(false);
    expect(await listOrEmpty(stagedFiles())).toEqual([]);
  });

  it('refuses a commit whose manifest lists a file never stored, naming that file', async () => {
    await put('domain.xml', fx.files['domain.xml'] as Buffer);

    const reply = await commit(manifestOf(fx.files));

    expect(reply.status).toBe(400);
    expect((reply.json as ErrorBody).reason).toBe('ManifestMismatch');
    expect((reply.json as ErrorBody).message).toMatch(/^disk: in the manifest but never stored/);
    expect(await fx.server.completedDir(REF.uid)).toBeUndefined();
  });

  it('refuses a commit when a stored file is missing from the manifest, naming that file', async () => {
    await put('domain.xml', fx.files['domain.xml'] as Buffer);
    await put('stray', Buffer.from('not part of the instance'));

    const reply = await commit(manifestOf({ 'domain.xml': fx.files['domain.xml'] as Buffer }));

    expect(reply.status).toBe(400);
    expect((reply.json as ErrorBody).message).toMatch(/^stray: stored but not in the manifest/);
    expect(await fx.server.completedDir(REF.uid)).toBeUndefined();
  });

  it('refuses a commit whose digest for a stored file differs, naming that file', async () => {
    const xml = fx.files['domain.xml'] as Buffer;
    await put('domain.xml', xml);

    const reply = await commit({
      files: [{ name: 'domain.xml', size: xml.length, sha256: sha256(Buffer.from('other')) }],
    });

    expect(reply.status).toBe(400);
    expect((reply.json as ErrorBody).message).toMatch(/^domain\.xml: stored bytes hash to/);
  });

  it('has no completed directory before the commit, and the files directory after it', async () => {
    const xml = fx.files['domain.xml'] as Buffer;
    await put('domain.xml', xml);
    expect(await fx.server.completedDir(REF.uid)).toBeUndefined();

    const reply = await commit(manifestOf({ 'domain.xml': xml }));

    expect(reply.status).toBe(200);
    expect(await fx.server.completedDir(REF.uid)).toBe(stagedFiles());
  });

  it('after the commit answers 409 to any upload and to a commit of another manifest, 200 to the identical one', async () => {
    const xml = fx.files['domain.xml'] as Buffer;
    await put('domain.xml', xml);
    await commit(manifestOf({ 'domain.xml': xml }));

    const again = await put('domain.xml', Buffer.from('overwrite attempt'));
    const other = await commit(manifestOf({ 'domain.xml': Buffer.from('overwrite attempt') }));
    const recommit = await commit(manifestOf({ 'domain.xml': xml }));

    expect(again.status).toBe(409);
    expect((again.json as ErrorBody).message).toBe('transfer already committed');
    expect(other.status).toBe(409);
    expect((other.json as ErrorBody).message).toMatch(/different manifest/);
    expect(recommit.status).toBe(200);
    expect(recommit.json).toMatchObject({ repeated: true });
    expect((await readFile(path.join(stagedFiles(), 'domain.xml'))).equals(xml)).toBe(true);
  });

  it('answers 401 rather than 409 to a wrong token after the commit, revealing nothing', async () => {
    const xml = fx.files['domain.xml'] as Buffer;
    await put('domain.xml', xml);
    await commit(manifestOf({ 'domain.xml': xml }));

    const reply = await put('domain.xml', xml, { token: 'guessed' });

    expect(reply.status).toBe(401);
  });

  it('discard removes a completed transfer entirely and is safe to repeat', async () => {
    await sendDirectory(sendOpts());
    expect(await fx.server.completedDir(REF.uid)).toBeDefined();

    await fx.server.discard(REF.uid);
    await fx.server.discard(REF.uid);

    expect(await fx.server.completedDir(REF.uid)).toBeUndefined();
    expect(existsSync(path.join(fx.stagingRoot, REF.uid))).toBe(false);
  });

  it('requires Content-Length so a truncated body can always be detected', async () => {
    const body = Buffer.from('chunked');
    const reply = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: fx.port,
          method: 'PUT',
          path: filePath(REF, 'chunked'),
          agent: false,
          key: certs.source.key,
          cert: certs.source.cert,
          ca: certs.dest.ca,
          checkServerIdentity: () => undefined,
          headers: { authorization: `Bearer ${TOKEN}`, [SHA256_HEADER]: sha256(body), 'transfer-encoding': 'chunked' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(body);
    });

    expect(reply).toBe(411);
  });
});

describe('TransferServer: mutual TLS', () => {
  it('refuses plain HTTP on its port: no request gets an answer', async () => {
    const outcome = await connectionError((done) => {
      const req = http.request({ host: '127.0.0.1', port: fx.port, method: 'GET', path: '/', agent: false }, (res) =>
        done(`answered ${res.statusCode}`),
      );
      req.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
      req.end();
    });

    expect(outcome).not.toMatch(/^answered/);
    expect(fx.admissions).toBe(0);
  });

  it('refuses a TLS client without a certificate at the handshake', async () => {
    const outcome = await connectionError((done) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port: fx.port,
        ca: certs.dest.ca,
        checkServerIdentity: () => undefined,
      });
      socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
      socket.on('data', (d: Buffer) => done(`answered ${d.toString().split('\r\n')[0]}`));
      socket.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
      socket.on('close', () => done('closed'));
    });

    expect(outcome).not.toMatch(/^answered/);
    expect(fx.admissions).toBe(0);
  });

  it("refuses a client certificate of another CA, even one naming the migration's source", async () => {
    const err: unknown = await put('domain.xml', fx.files['domain.xml'] as Buffer, { as: certs.stranger }).catch(
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(Error);
    expect(fx.admissions).toBe(0);
  });

  it('refuses (403) a request from an agent that is not the source, before its token is looked at', async () => {
    const reply = await put('domain.xml', fx.files['domain.xml'] as Buffer, { as: certs.other });

    expect(reply.status).toBe(403);
    expect(await listOrEmpty(stagedFiles())).toEqual([]);
  });

  it('the client refuses a server whose certificate names another host than the destination it meant', async () => {
    const failure = await expectFailure(sendDirectory(sendOpts({ destination: 'node-c', retries: 1 })));

    expect(failure.message).toMatch(/is node-b, not node-c/);
    expect(fx.admissions).toBe(0);
  });

  it('slows down a peer whose requests keep failing: past its burst it gets 429 and nothing is looked up', async () => {
    for (let i = 0; i < 5; i++)
      expect((await put('domain.xml', Buffer.from('x'), { token: 'guess' })).status).toBe(401);
    const lookups = fx.admissions;

    const reply = await put('domain.xml', Buffer.from('x'), { token: 'guess' });

    expect(reply.status).toBe(429);
    expect(fx.admissions).toBe(lookups);
  });
});

describe('TransferServer: limits', () => {
  it('refuses (413) an upload declaring more than the transfer may hold, before reading its body', async () => {
    fx.maxBytes = 1024;
    const body = Buffer.alloc(4096, 1);

    const reply = await put('disk', body);

    expect(reply.status).toBe(413);
    expect((reply.json as ErrorBody).reason).toBe('PayloadTooLarge');
    expect(await listOrEmpty(stagedFiles())).toEqual([]);
    expect(await listOrEmpty(stagedTmp())).toEqual([]);
  });

  it('counts every file of the transfer: one that takes the total past the cap is refused, the earlier ones stay', async () => {
    fx.maxBytes = 1500;
    expect((await put('a', Buffer.alloc(1000, 1))).status).toBe(201);

    const reply = await put('b', Buffer.alloc(1000, 2));

    expect(reply.status).toBe(413);
    expect((reply.json as ErrorBody).message).toMatch(/past its limit of 1500/);
    expect(await listOrEmpty(stagedFiles())).toEqual(['a']);
  });

  it('cuts a sender that streams a body past the cap without waiting for 100 Continue, storing nothing', async () => {
    fx.maxBytes = 64 * 1024;
    const status = await new Promise<string>((resolve) => {
      const req = https.request({
        host: '127.0.0.1',
        port: fx.port,
        method: 'PUT',
        path: filePath(REF, 'disk'),
        agent: false,
        key: certs.source.key,
        cert: certs.source.cert,
        ca: certs.dest.ca,
        checkServerIdentity: () => undefined,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          [SHA256_HEADER]: 'a'.repeat(64),
          'content-length': String(64 << 20),
        },
      });
      req.on('response', (res) => resolve(String(res.statusCode)));
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      // 64 MiB pushed as fast as the socket takes it; the server must not read it all.
      const chunk = Buffer.alloc(1 << 20, 7);
      let sent = 0;
      const push = (): void => {
        while (sent < 64 && req.write(chunk)) sent++;
        if (sent < 64) req.once('drain', () => (sent++, push()));
        else req.end();
      };
      push();
    });

    expect(['413', 'ECONNRESET', 'EPIPE']).toContain(status);
    expect(await listOrEmpty(stagedFiles())).toEqual([]);
    await expect.poll(() => listOrEmpty(stagedTmp())).toEqual([]);
  });

  it('refuses (413) a file past the file count and a manifest declaring more than the cap', async () => {
    fx.maxFiles = 2;
    expect((await put('a', Buffer.from('a'))).status).toBe(201);
    expect((await put('b', Buffer.from('b'))).status).toBe(201);
    expect((await put('c', Buffer.from('c'))).status).toBe(413);

    fx.maxBytes = 10;
    const reply = await commit({ files: [{ name: 'a', size: 11, sha256: sha256(Buffer.from('a')) }] });

    expect(reply.status).toBe(413);
  });

  it('refuses (507) a transfer that would eat into the free space the host keeps', async () => {
    await fx.server.stop();
    await startServer({ ...fx, admissions: 0 }, Number.MAX_SAFE_INTEGER);

    const reply = await put('domain.xml', fx.files['domain.xml'] as Buffer);

    expect(reply.status).toBe(507);
    expect((reply.json as ErrorBody).message).toMatch(/free space this host keeps/);
  });

  it('keys staging by credential: files a credential stored are never committed with another', async () => {
    await put('domain.xml', fx.files['domain.xml'] as Buffer);
    expect(await readdir(path.join(fx.stagingRoot, REF.uid))).toEqual([CRED]);
  });
});
