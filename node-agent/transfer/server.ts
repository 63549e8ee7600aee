// The destination side of an instance-directory transfer: receives files into staging and
// declares the transfer complete only once every byte has been re-read and matched against
// the source's manifest. The wire protocol and the staging layout are described in
// protocol.ts.
//
// It speaks TLS only and requires a client certificate from the agents' CA (mutual TLS): a
// peer is the host its certificate's CN names. Each request is then admitted (admit(), see
// gate.ts) for one Migration, peer and credential, and held to that admission's size limits;
// peers whose requests keep failing, and addresses whose handshakes keep failing, are slowed
// down before anything is looked up.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { TLSSocket } from 'node:tls';
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
import { FailureLimiter } from './rate-limit.js';

/** The key, certificate chain and CA this agent serves and connects with. */
export interface TlsMaterial {
  key: string;
  /** The leaf first, then the CA. */
  cert: string;
  /** The agents' CA: the only issuer a peer's certificate may have. */
  ca: string;
}

/** Who asks, for what, with which token. */
export interface AdmissionRequest {
  ref: TransferRef;
  /** The CN of the peer's verified client certificate: the host it is. */
  peer: string;
  /** The bearer token presented, if any. */
  token: string | undefined;
}

/** What an admitted request may do. */
export interface Admission {
  /** Keys staging together with the migration uid: what one credential uploads is never mixed with another's. */
  credential: string;
  /** Bytes all files of this transfer may hold together. */
  maxBytes: number;
  maxFiles: number;
}

/** admit() refuses with one of these; 401 and 403 count against the peer's rate limit. */
export class Refusal extends Error {
  constructor(
    readonly status: 401 | 403 | 503,
    readonly reason: TransferErrorReason,
    message: string,
  ) {
    super(message);
  }
}

export interface TransferServerOptions {
  /** Where received transfers are staged: `${stagingRoot}/<migration uid>/<credential>/`. */
  stagingRoot: string;
  address: string;
  /** 0 = any free port. */
  port: number;
  /**
   * Whether this request may go on, and within which limits; throws a Refusal otherwise. Called
   * per request, after the TLS handshake verified the peer.
   */
  admit(request: AdmissionRequest): Promise<Admission>;
  /** Free bytes the staging filesystem keeps: a transfer that would leave less is refused. */
  headroomBytes?: number;
  log: Logger;
  /**
   * Called with the body bytes of each successfully stored file and of each accepted commit
   * (the manifest), so a counter fed by it counts what was received and kept, each byte once.
   */
  onBytes?(bytes: number): void;
  /** Failed requests a peer (and failed handshakes an address) may make at once, and per second after. */
  failureBurst?: number;
  failuresPerSecond?: number;
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

const CREDENTIAL_KEY = /^[0-9a-f]{16}$/;

export class TransferServer {
  private server: https.Server | undefined;
  /** Serialises, per uid, the steps that read or change what is stored against the commit. */
  private readonly locks = new Map<string, Promise<void>>();
  /** Uploads in progress: their staging directory, file and declared size. */
  private readonly inflight = new Map<symbol, { stage: string; file: string; bytes: number }>();
  private readonly peerFailures: FailureLimiter;
  private readonly addressFailures: FailureLimiter;

  constructor(private readonly opts: TransferServerOptions) {
    const burst = opts.failureBurst ?? 20;
    const rate = opts.failuresPerSecond ?? 2;
    this.peerFailures = new FailureLimiter(burst, rate);
    this.addressFailures = new FailureLimiter(burst, rate);
  }

  /** New key and certificate (a renewal): new handshakes use them, open connections keep theirs. */
  setTls(tls: TlsMaterial): void {
    this.server?.setSecureContext(tlsContext(tls));
  }

  async start(tls: TlsMaterial): Promise<number> {
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
    const server = https.createServer(
      {
        ...tlsContext(tls),
        requestTimeout: 0,
        // Mutual TLS: no client certificate of the agents' CA, no connection.
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.3',
      },
      (req, res) => void serve(req, res, false),
    );
    // Answering before `100 Continue` lets a sender with a bad token or a used-up transfer
    // learn so without pushing a whole disk image first.
    server.on('checkContinue', (req, res) => void serve(req, res, true));
    // A handshake that failed (no or a foreign certificate, plain HTTP) costs its address; an
    // address over its limit is cut before the handshake.
    server.on('tlsClientError', (err, socket) => {
      this.addressFailures.failed(socket.remoteAddress ?? '');
      this.opts.log.debug({ err: err.message, peer: socket.remoteAddress }, 'transfer handshake refused');
    });
    server.on('connection', (socket: import('node:net').Socket) => {
      if (this.addressFailures.blocked(socket.remoteAddress ?? '')) socket.destroy();
    });
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

  /** The verified files of `migrationUid`'s committed transfer, whichever credential sent them. */
  async completedDir(migrationUid: string): Promise<string | undefined> {
    const uidDir = this.uidDir(migrationUid);
    let keys: string[];
    try {
      keys = (await readdir(uidDir)).filter((k) => CREDENTIAL_KEY.test(k));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    for (const key of keys.sort()) {
      const stage = path.join(uidDir, key);
      if (await this.isCommitted(stage)) return path.join(stage, 'files');
    }
    return undefined;
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

  private stageDir(uid: string, credential: string): string {
    if (!CREDENTIAL_KEY.test(credential)) throw new Error(`invalid credential key ${JSON.stringify(credential)}`);
    return path.join(this.uidDir(uid), credential);
  }

  private async isCommitted(stage: string): Promise<boolean> {
    return (await this.committedManifest(stage)) !== undefined;
  }

  /** The manifest a committed stage was verified against, canonical (sorted by name); undefined before the commit. */
  private async committedManifest(stage: string): Promise<string | undefined> {
    try {
      return canonical(JSON.parse(await readFile(path.join(stage, 'complete'), 'utf8')) as Manifest);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
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
    const peer = peerName(req);
    try {
      if (this.peerFailures.blocked(peer)) {
        res.setHeader('retry-after', '1');
        throw new HttpError(429, 'TooManyRequests', `too many failed requests from ${peer}; slow down`);
      }
      const route = parseRoute(req.url ?? '/');
      const method = route.kind === 'file' ? 'PUT' : 'POST';
      if (req.method !== method) {
        res.setHeader('allow', method);
        throw new HttpError(405, 'MethodNotAllowed', `${req.method ?? ''} not allowed here, use ${method}`);
      }
      const { ref } = route;
      log = log.child({ migration: `${ref.namespace}/${ref.name}`, migrationUid: ref.uid, step: 'transfer', peer });
      const admission = await this.admit(ref, peer, req, log);
      const stage = this.stageDir(ref.uid, admission.credential);
      if (route.kind === 'file') {
        if (await this.isCommitted(stage)) throw alreadyCommitted();
        await this.receiveFile(ref, stage, admission, route.file, req, res, expectsContinue, log);
      } else {
        await this.commit(ref, stage, admission, req, res, expectsContinue, log);
      }
    } catch (err) {
      if (err instanceof HttpError && [401, 403, 404, 405].includes(err.status)) this.peerFailures.failed(peer);
      this.fail(req, res, err, log);
    }
  }

  private async admit(ref: TransferRef, peer: string, req: http.IncomingMessage, log: Logger): Promise<Admission> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    try {
      return await this.opts.admit({ ref, peer, token });
    } catch (err) {
      if (err instanceof Refusal) throw new HttpError(err.status, err.reason, err.message);
      log.warn({ err }, 'cannot check the transfer credential');
      throw new HttpError(503, 'Unavailable', 'cannot check the transfer credential right now');
    }
  }

  /**
   * Refuses (413) an upload that would take the transfer past its file count or size, and (507)
   * one that would leave the staging filesystem less free space than the headroom, counting
   * what uploads in progress will still write.
   */
  private async checkLimits(stage: string, file: string, bytes: number, admission: Admission): Promise<void> {
    const sizes = new Map<string, number>();
    const filesDir = path.join(stage, 'files');
    for (const name of await readdir(filesDir).catch(() => [] as string[]))
      sizes.set(name, (await stat(path.join(filesDir, name)).catch(() => undefined))?.size ?? 0);
    let pending = 0;
    for (const up of this.inflight.values()) {
      pending += up.bytes;
      if (up.stage === stage) sizes.set(up.file, Math.max(sizes.get(up.file) ?? 0, up.bytes));
    }
    sizes.set(file, bytes);
    if (sizes.size > admission.maxFiles)
      throw new HttpError(
        413,
        'PayloadTooLarge',
        `a transfer of this migration holds at most ${admission.maxFiles} files`,
      );
    const total = [...sizes.values()].reduce((a, b) => a + b, 0);
    if (total > admission.maxBytes)
      throw new HttpError(
        413,
        'PayloadTooLarge',
        `${file}: ${bytes} bytes would take this transfer to ${total} bytes, past its limit of ${admission.maxBytes}`,
      );
    const headroom = this.opts.headroomBytes ?? 0;
    const fs = await statfs(this.opts.stagingRoot);
    const free = Number(fs.bavail) * Number(fs.bsize);
    if (free - pending - bytes < headroom)
      throw new HttpError(
        507,
        'InsufficientStorage',
        `${file}: ${bytes} bytes would leave less than the ${headroom} bytes of free space this host keeps`,
      );
  }

  private async receiveFile(
    ref: TransferRef,
    stage: string,
    admission: Admission,
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
    await this.checkLimits(stage, file, length, admission);

    const tmpDir = path.join(stage, 'tmp');
    const filesDir = path.join(stage, 'files');
    await mkdir(tmpDir, { recursive: true });
    await mkdir(filesDir, { recursive: true });
    const tmp = path.join(tmpDir, randomUUID());
    let stored = false;
    const upload = Symbol(file);
    this.inflight.set(upload, { stage, file, bytes: length });
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
            // Counted as it streams: a body longer than it said is cut where it passes it.
            if (received > length)
              throw new HttpError(413, 'PayloadTooLarge', `${file}: body longer than its Content-Length ${length}`);
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
        if (await this.isCommitted(stage)) throw alreadyCommitted();
        await rename(tmp, path.join(filesDir, file));
      });
      stored = true;
      log.debug({ file, bytes: received }, 'stored transfer file');
      this.countBytes(received, log);
      crashPoint(`agent:transfer:received-${file}`);
      sendJson(res, 201, { name: file, size: received, sha256: digest });
    } finally {
      unguard();
      this.inflight.delete(upload);
      if (!stored) await rm(tmp, { force: true });
    }
  }

  private async commit(
    ref: TransferRef,
    stage: string,
    admission: Admission,
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
    const declaredTotal = manifest.files.reduce((sum, f) => sum + f.size, 0);
    if (manifest.files.length > admission.maxFiles || declaredTotal > admission.maxBytes)
      throw new HttpError(
        413,
        'PayloadTooLarge',
        `the manifest declares ${manifest.files.length} files of ${declaredTotal} bytes; ` +
          `this transfer may hold ${admission.maxFiles} files of ${admission.maxBytes} bytes`,
      );

    const filesDir = path.join(stage, 'files');
    const outcome = await this.locked(ref.uid, async () => {
      const committed = await this.committedManifest(stage);
      // A sender that lost the reply to its commit asks again: the same manifest is the same
      // transfer, already verified; any other is refused.
      if (committed === canonical(manifest)) return 'repeated' as const;
      if (committed !== undefined)
        throw new HttpError(409, 'AlreadyCommitted', 'transfer already committed with a different manifest');
      await mkdir(filesDir, { recursive: true });
      await verifyAgainst(manifest, filesDir);
      // Without these fsyncs a power cut could keep the marker but lose a rename it vouches for.
      await fsyncDir(filesDir);
      const marker = path.join(stage, 'complete');
      await writeFile(`${marker}.tmp`, JSON.stringify(manifest), { flush: true });
      await rename(`${marker}.tmp`, marker);
      await fsyncDir(stage);
      await rm(path.join(stage, 'tmp'), { recursive: true, force: true });
      return 'committed' as const;
    });
    const body = { files: manifest.files.length, bytes: declaredTotal, repeated: outcome === 'repeated' };
    if (outcome === 'repeated') {
      log.info(body, 'transfer commit repeated with the same manifest');
    } else {
      log.info(body, 'transfer committed');
      this.countBytes(bytes, log);
    }
    sendJson(res, 200, body);
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

/** A manifest as one string, independent of the order its files were listed in. */
function canonical(manifest: Manifest): string {
  const files = [...manifest.files]
    .map(({ name, size, sha256 }) => ({ name, size, sha256 }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return JSON.stringify(files);
}

/** The CN of the client certificate the handshake verified. */
function peerName(req: http.IncomingMessage): string {
  const cn = (req.socket as TLSSocket).getPeerCertificate?.()?.subject?.CN;
  return typeof cn === 'string' ? cn : '';
}

function tlsContext(tls: TlsMaterial): { key: string; cert: string; ca: string } {
  return { key: tls.key, cert: tls.cert, ca: tls.ca };
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
