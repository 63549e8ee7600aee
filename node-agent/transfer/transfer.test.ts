import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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
import { TransferServer } from './server.js';

const REF: TransferRef = { namespace: 'tenant-a', name: 'resize-vm1', uid: '5f0c6c2e-8a7b-4c1d-9e2f-0a1b2c3d4e5f' };
const TOKEN = 'one-time-token-for-resize-vm1';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

interface Fixture {
  root: string;
  sourceDir: string;
  stagingRoot: string;
  server: TransferServer;
  port: number;
  /** The token tokenFor answers with; undefined means no Secret exists. */
  tokens: Map<string, string>;
  tokenLookups: number;
  failNextLookup: boolean;
  storedBytes: number[];
  files: Record<string, Buffer>;
}

let fx: Fixture;

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

  const partial: Omit<Fixture, 'server' | 'port'> = {
    root,
    sourceDir,
    stagingRoot,
    tokens: new Map([[REF.uid, TOKEN]]),
    tokenLookups: 0,
    failNextLookup: false,
    storedBytes: [],
    files,
  };
  const server = new TransferServer({
    stagingRoot,
    address: '127.0.0.1',
    port: 0,
    log: pino({ level: 'silent' }),
    tokenFor: async (ref) => {
      partial.tokenLookups++;
      if (partial.failNextLookup) {
        partial.failNextLookup = false;
        throw new Error('secrets "transfer-token" is forbidden');
      }
      return partial.tokens.get(ref.uid);
    },
    onBytes: (bytes) => partial.storedBytes.push(bytes),
  });
  const port = await server.start();
  // Mutations through fx must reach the closures above, so fx is the same object.
  fx = Object.assign(partial, { server, port });
});

afterEach(async () => {
  await fx.server.stop();
  await rm(fx.root, { recursive: true, force: true });
});

function sendOpts(overrides: Partial<SendOptions> = {}): SendOptions {
  return {
    endpoint: `127.0.0.1:${fx.port}`,
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

/** A request outside the client, to act as a misbehaving or malicious sender. */
function raw(method: string, urlPath: string, headers: Record<string, string>, body?: Buffer): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: fx.port, method, path: urlPath, headers, agent: false },
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
  opts: { sha?: string; token?: string; encodedPath?: string } = {},
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

const stagedFiles = (): string => path.join(fx.stagingRoot, REF.uid, 'files');
const stagedTmp = (): string => path.join(fx.stagingRoot, REF.uid, 'tmp');
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
    expect(fx.tokenLookups).toBe(1);
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

  it('retries when the destination cannot look up the token for a moment (503)', async () => {
    fx.failNextLookup = true;

    const result = await sendDirectory(sendOpts());

    expect(result.attempts).toBe(Object.keys(fx.files).length + 2);
    expect(await fx.server.completedDir(REF.uid)).toBeDefined();
  });

  it('a sender that runs again after its commit learns the transfer is done, and no new bytes are accepted', async () => {
    await sendDirectory(sendOpts());

    const again = await sendDirectory(sendOpts({ retries: 5, backoffMs: 60_000 }));

    // One refused upload (409 AlreadyCommitted) and no commit: the token cannot bring new bytes.
    expect(again.attempts).toBe(1);
    const reply = await put('domain.xml', fx.files['domain.xml'] as Buffer);
    expect(reply.status).toBe(409);
  });

  it('refuses file names that could leave the instance directory before sending anything', async () => {
    const failure = await expectFailure(sendDirectory(sendOpts({ files: ['../etc-passwd'] })));

    expect(failure.attempts).toBe(0);
    expect(fx.tokenLookups).toBe(0);
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
    expect(existsSync(path.join(fx.stagingRoot, REF.uid, 'x'))).toBe(false);
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

  it('answers 409 to any upload or commit after the commit, even with the right token', async () => {
    const xml = fx.files['domain.xml'] as Buffer;
    await put('domain.xml', xml);
    await commit(manifestOf({ 'domain.xml': xml }));

    const again = await put('domain.xml', Buffer.from('overwrite attempt'));
    const recommit = await commit(manifestOf({ 'domain.xml': xml }));

    expect(again.status).toBe(409);
    expect((again.json as ErrorBody).message).toBe('transfer already committed');
    expect(recommit.status).toBe(409);
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
      const req = http.request(
        {
          host: '127.0.0.1',
          port: fx.port,
          method: 'PUT',
          path: filePath(REF, 'chunked'),
          agent: false,
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
