// The destination side of an instance-directory transfer: receives files into staging and
// declares the transfer complete only once every byte has been re-read and matched against
// the source's manifest. The wire protocol and the staging layout are described in
// protocol.ts.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../../common/log.js';
import { hashFile } from './hashing.js';
import {
  SHA256_HEADER,
  isPlainFileName,
  isSha256Hex,
  isValidRef,
  isValidUid,
  manifestProblem,
  type ErrorBody,
  type Manifest,
  type TransferErrorReason,
  type TransferRef,
} from './protocol.js';

export interface TransferServerOptions {
  /** Where received transfers are staged: `${stagingRoot}/<migration uid>/`. */
  stagingRoot: string;
  address: string;
  /** 0 = any free port. */
  port: number;
  /**
   * Returns the expected token for that Migration, or undefined when none exists (then 401). Called
   * per request; may read a Kubernetes Secret.
   */
  tokenFor(ref: TransferRef): Promise<string | undefined>;
  log: Logger;
  /**
   * Called with the body bytes of each successfully stored file and of each accepted commit
   * (the manifest), so a counter fed by it counts what was received and kept, each byte once.
   */
  onBytes?(bytes: number): void;
}

// A stalled sender must not pin a socket and a temp file forever; a healthy one always has
// bytes in flight well within this.
const BODY_IDLE_TIMEOUT_MS = 120_000;
// A manifest entry is ~150 bytes; this allows thousands of files and bounds memory per request.
const MAX_MANIFEST_BYTES = 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: TransferErrorReason,
    message: string,
  ) {
    super(message);
  }
}

type Route = { kind: 'file'; ref: TransferRef; file: string } | { kind: 'commit'; ref: TransferRef };

export class TransferServer {
  private server: http.Server | undefined;
  /** Serialises, per uid, the steps that read or change what is stored against the commit. */
  private readonly locks = new Map<string, Promise<void>>();

  constructor(private readonly opts: TransferServerOptions) {}

  async start(): Promise<number> {
    if (this.server) throw new Error('transfer server already started');
    await mkdir(this.opts.stagingRoot, { recursive: true });
    // requestTimeout would otherwise cut any upload that takes longer than five minutes, which
    // a disk image easily does; stalls are caught by the per-body idle timeout instead.
    // A failure while answering must never take the agent (and every host it serves) down.
    const serve = (req: http.IncomingMessage, res: http.ServerResponse, expectContinue: boolean) =>
      this.handle(req, res, expectContinue).catch((err: unknown) => {
        this.opts.log.warn({ err: (err as Error).message, url: req.url }, 'transfer request failed');
        res.destroy();
      });
    const server = http.createServer({ requestTimeout: 0 }, (req, res) => void serve(req, res, false));
    // Answering before `100 Continue` lets a sender with a bad token or a used-up transfer
    // learn so without pushing a whole disk image first.
    server.on('checkContinue', (req, res) => void serve(req, res, true));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const port = (server.address() as AddressInfo).port;
    this.opts.log.info({ address: this.opts.address, port }, 'transfer server listening');
    return port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      // In-flight uploads are abandoned; their temp files are removed as their streams fail.
      server.closeAllConnections();
    });
  }

  async completedDir(migrationUid: string): Promise<string | undefined> {
    return (await this.isCommitted(this.uidDir(migrationUid))) ? this.filesDir(migrationUid) : undefined;
  }

  async discard(migrationUid: string): Promise<void> {
    const dir = this.uidDir(migrationUid);
    await this.locked(migrationUid, () => rm(dir, { recursive: true, force: true }));
  }

  private uidDir(uid: string): string {
    // Guards the rm in discard as much as the request paths.
    if (!isValidUid(uid)) throw new Error(`invalid migration uid ${JSON.stringify(uid)}`);
    return path.join(this.opts.stagingRoot, uid);
  }

  private filesDir(uid: string): string {
    return path.join(this.uidDir(uid), 'files');
  }

  private async isCommitted(uidDir: string): Promise<boolean> {
    try {
      await access(path.join(uidDir, 'complete'));
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw err;
    }
  }

  private async locked<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.locks.get(uid) ?? Promise.resolve()).then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(uid, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(uid) === tail) this.locks.delete(uid);
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, expectsContinue: boolean): Promise<void> {
    let log = this.opts.log;
    try {
      const route = parseRoute(req.url ?? '/');
      const method = route.kind === 'file' ? 'PUT' : 'POST';
      if (req.method !== method) {
        res.setHeader('allow', method);
        throw new HttpError(405, 'MethodNotAllowed', `${req.method ?? ''} not allowed here, use ${method}`);
      }
      const { ref } = route;
      log = log.child({ migration: `${ref.namespace}/${ref.name}`, migrationUid: ref.uid, step: 'transfer' });
      await this.authorize(ref, req, log);
      if (await this.isCommitted(this.uidDir(ref.uid))) throw alreadyCommitted();
      if (route.kind === 'file') await this.receiveFile(ref, route.file, req, res, expectsContinue, log);
      else await this.commit(ref, req, res, expectsContinue, log);
    } catch (err) {
      this.fail(req, res, err, log);
    }
  }

  private async authorize(ref: TransferRef, req: http.IncomingMessage, log: Logger): Promise<void> {
    const presented = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    let expected: string | undefined;
    try {
      expected = await this.opts.tokenFor(ref);
    } catch (err) {
      log.warn({ err }, 'cannot look up the transfer token');
      throw new HttpError(503, 'Unavailable', 'cannot look up the transfer token right now');
    }
    // An empty expected token would let an empty Authorization through; treat it as none.
    if (!expected || presented === undefined || !tokensEqual(presented, expected)) {
      throw new HttpError(401, 'Unauthorized', 'missing or wrong transfer token');
    }
  }

  private async receiveFile(
    ref: TransferRef,
    file: string,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    expectsContinue: boolean,
    log: Logger,
  ): Promise<void> {
    const declared = headerValue(req, SHA256_HEADER)?.toLowerCase();
    if (declared === undefined || !isSha256Hex(declared)) {
      throw new HttpError(400, 'InvalidRequest', `${SHA256_HEADER} must be the 64 hex digits of the file's SHA-256`);
    }
    const length = contentLength(req);

    const uidDir = this.uidDir(ref.uid);
    const tmpDir = path.join(uidDir, 'tmp');
    await mkdir(tmpDir, { recursive: true });
    await mkdir(this.filesDir(ref.uid), { recursive: true });
    const tmp = path.join(tmpDir, randomUUID());
    let stored = false;
    const unguard = guardIdle(req, 'upload stalled');
    try {
      if (expectsContinue) res.writeContinue();
      const hash = createHash('sha256');
      let received = 0;
      await pipeline(
        req,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            hash.update(chunk);
            received += chunk.length;
            yield chunk;
          }
        },
        // flush: the commit marker may only become durable after the data it vouches for.
        createWriteStream(tmp, { flush: true }),
      );
      unguard();

      if (received !== length) {
        throw new HttpError(
          400,
          'SizeMismatch',
          `${file}: received ${received} bytes but Content-Length was ${length}; nothing stored`,
        );
      }
      const digest = hash.digest('hex');
      if (digest !== declared) {
        throw new HttpError(
          400,
          'ChecksumMismatch',
          `${file}: body hashes to ${digest} but ${SHA256_HEADER} was ${declared}; nothing stored`,
        );
      }
      await this.locked(ref.uid, async () => {
        // The commit may have landed while this body was streaming.
        if (await this.isCommitted(uidDir)) throw alreadyCommitted();
        await rename(tmp, path.join(this.filesDir(ref.uid), file));
      });
      stored = true;
      log.debug({ file, bytes: received }, 'stored transfer file');
      this.countBytes(received, log);
      crashPoint(`agent:transfer:received-${file}`);
      sendJson(res, 201, { name: file, size: received, sha256: digest });
    } finally {
      unguard();
      if (!stored) await rm(tmp, { force: true });
    }
  }

  private async commit(
    ref: TransferRef,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    expectsContinue: boolean,
    log: Logger,
  ): Promise<void> {
    const declaredLength = req.headers['content-length'] === undefined ? undefined : contentLength(req);
    if (declaredLength !== undefined && declaredLength > MAX_MANIFEST_BYTES) {
      throw new HttpError(413, 'PayloadTooLarge', `manifest larger than ${MAX_MANIFEST_BYTES} bytes`);
    }
    if (expectsContinue) res.writeContinue();
    const { value, bytes } = await readJson(req);
    const problem = manifestProblem(value);
    if (problem) throw new HttpError(400, 'InvalidManifest', problem);
    const manifest = value as Manifest;

    const uidDir = this.uidDir(ref.uid);
    const filesDir = this.filesDir(ref.uid);
    const total = await this.locked(ref.uid, async () => {
      if (await this.isCommitted(uidDir)) throw alreadyCommitted();
      await mkdir(filesDir, { recursive: true });
      await verifyAgainst(manifest, filesDir);
      // Without these fsyncs a power cut could keep the marker but lose a rename it vouches for.
      await fsyncDir(filesDir);
      const marker = path.join(uidDir, 'complete');
      await writeFile(`${marker}.tmp`, JSON.stringify(manifest), { flush: true });
      await rename(`${marker}.tmp`, marker);
      await fsyncDir(uidDir);
      await rm(path.join(uidDir, 'tmp'), { recursive: true, force: true });
      return manifest.files.reduce((sum, f) => sum + f.size, 0);
    });
    log.info({ files: manifest.files.length, bytes: total }, 'transfer committed');
    this.countBytes(bytes, log);
    sendJson(res, 200, { files: manifest.files.length, bytes: total });
  }

  private countBytes(bytes: number, log: Logger): void {
    try {
      this.opts.onBytes?.(bytes);
    } catch (err) {
      // A metrics bug must not turn a stored file into a failed request the sender retries.
      log.warn({ err }, 'onBytes callback failed');
    }
  }

  private fail(req: http.IncomingMessage, res: http.ServerResponse, err: unknown, log: Logger): void {
    // The socket is already detached (null) when the sender went away: nobody to answer.
    if (res.headersSent || !req.socket || req.socket.destroyed) {
      // The sender went away mid-body (or we already answered); there is no one to tell.
      log.warn({ err, url: req.url }, 'transfer request interrupted');
      res.destroy();
      return;
    }
    let httpErr: HttpError;
    if (err instanceof HttpError) {
      httpErr = err;
    } else if (errnoCode(err) === 'ENOSPC' || errnoCode(err) === 'EDQUOT') {
      httpErr = new HttpError(507, 'InsufficientStorage', 'no space left in the staging directory');
    } else {
      httpErr = new HttpError(500, 'Internal', 'internal error while handling the transfer');
    }
    const level = httpErr.status >= 500 ? 'error' : 'warn';
    log[level](
      { err: httpErr.status >= 500 ? err : undefined, status: httpErr.status, reason: httpErr.reason, url: req.url },
      httpErr.message,
    );
    // Closing stops the parser from draining an unread body that may be gigabytes long.
    sendJson(res, httpErr.status, { reason: httpErr.reason, message: httpErr.message } satisfies ErrorBody, true);
  }
}

async function verifyAgainst(manifest: Manifest, filesDir: string): Promise<void> {
  const expected = new Map(manifest.files.map((f) => [f.name, f]));
  const present = await readdir(filesDir, { withFileTypes: true });
  for (const entry of present) {
    if (!expected.has(entry.name) || !entry.isFile()) {
      throw new HttpError(400, 'ManifestMismatch', `${entry.name}: stored but not in the manifest`);
    }
  }
  const presentNames = new Set(present.map((e) => e.name));
  for (const f of manifest.files) {
    if (!presentNames.has(f.name))
      throw new HttpError(400, 'ManifestMismatch', `${f.name}: in the manifest but never stored`);
  }
  // Re-reading rather than trusting the upload-time digest catches anything that went wrong
  // between the socket and the disk, and files changed in staging since.
  for (const f of manifest.files) {
    const actual = await hashFile(path.join(filesDir, f.name));
    if (actual.size !== f.size) {
      throw new HttpError(
        400,
        'ManifestMismatch',
        `${f.name}: stored ${actual.size} bytes but the manifest says ${f.size}`,
      );
    }
    if (actual.sha256 !== f.sha256) {
      throw new HttpError(
        400,
        'ManifestMismatch',
        `${f.name}: stored bytes hash to ${actual.sha256} but the manifest says ${f.sha256}`,
      );
    }
  }
}

function parseRoute(url: string): Route {
  const rawPath = url.split('?', 1)[0] ?? '';
  // Split before decoding so an encoded '/' stays inside its segment and is caught as part of
  // a file name rather than silently changing the route; no dot-segment normalisation either.
  const parts = rawPath.split('/');
  const [empty, v1, transfers, namespace, name, uid, action, ...rest] = parts.map(decodeSegment);
  if (
    empty !== '' ||
    v1 !== 'v1' ||
    transfers !== 'transfers' ||
    namespace === undefined ||
    name === undefined ||
    uid === undefined
  ) {
    throw new HttpError(404, 'NotFound', 'no such route');
  }
  const ref = { namespace, name, uid };
  if (action === 'commit' && rest.length === 0) {
    if (!isValidRef(ref)) throw invalidRef(ref);
    return { kind: 'commit', ref };
  }
  if (action === 'files' && rest.length > 0) {
    if (!isValidRef(ref)) throw invalidRef(ref);
    const file = rest.join('/');
    if (!isPlainFileName(file)) {
      throw new HttpError(
        400,
        'InvalidName',
        `${JSON.stringify(file)} is not a plain file name (no '/', no '..', no leading '.')`,
      );
    }
    return { kind: 'file', ref, file };
  }
  throw new HttpError(404, 'NotFound', 'no such route');
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'InvalidRequest', 'malformed percent-encoding in the path');
  }
}

function invalidRef(ref: TransferRef): HttpError {
  return new HttpError(400, 'InvalidRequest', `invalid migration reference ${ref.namespace}/${ref.name}/${ref.uid}`);
}

function alreadyCommitted(): HttpError {
  return new HttpError(409, 'AlreadyCommitted', 'transfer already committed');
}

function tokensEqual(presented: string, expected: string): boolean {
  // Hashing first gives equal-length inputs, so neither the length nor the content of the
  // expected token leaks through timing.
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function headerValue(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function contentLength(req: http.IncomingMessage): number {
  const raw = req.headers['content-length'];
  if (raw === undefined)
    throw new HttpError(411, 'LengthRequired', 'Content-Length is required so truncation can be detected');
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n))
    throw new HttpError(400, 'InvalidRequest', 'invalid Content-Length');
  return n;
}

async function readJson(req: http.IncomingMessage): Promise<{ value: unknown; bytes: number }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const unguard = guardIdle(req, 'manifest upload stalled');
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > MAX_MANIFEST_BYTES)
        throw new HttpError(413, 'PayloadTooLarge', `manifest larger than ${MAX_MANIFEST_BYTES} bytes`);
      chunks.push(chunk);
    }
  } finally {
    // Re-hashing a large disk can take minutes with nothing on the wire.
    unguard();
  }
  try {
    return { value: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown, bytes };
  } catch {
    throw new HttpError(400, 'InvalidManifest', 'manifest is not valid JSON');
  }
}

/** Destroys the request if its body stops arriving; returns the undo, safe to call twice. */
function guardIdle(req: http.IncomingMessage, why: string): () => void {
  const socket = req.socket;
  const onTimeout = (): void => void req.destroy(new Error(why));
  socket.setTimeout(BODY_IDLE_TIMEOUT_MS);
  socket.on('timeout', onTimeout);
  return () => {
    socket.setTimeout(0);
    socket.off('timeout', onTimeout);
  };
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function sendJson(res: http.ServerResponse, status: number, body: object, close = false): void {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(data),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(data);
}

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}
