// The source side of an instance-directory transfer: hashes each file, pushes it to the
// destination agent's transfer server and commits the manifest, retrying what a retry can
// cure. The wire protocol is described in protocol.ts.
import { createReadStream } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { hashFile } from './hashing.js';
import {
  RETRYABLE_REASONS,
  SHA256_HEADER,
  TransferFailed,
  commitPath,
  filePath,
  isPlainFileName,
  isValidRef,
  type ErrorBody,
  type Manifest,
  type ManifestEntry,
  type TransferErrorReason,
  type TransferRef,
} from './protocol.js';
import type { TlsMaterial } from './server.js';

export interface SendOptions {
  /** "host:port" of the destination agent's transfer server ("[v6addr]:port" for IPv6). */
  endpoint: string;
  /** The host the destination must prove to be: its certificate's CN (pinned; any other is refused). */
  destination: string;
  /** This agent's key, certificate and the agents' CA (the only issuer the destination's certificate may have). */
  tls: TlsMaterial;
  ref: TransferRef;
  token: string;
  /** Directory to read from. */
  dir: string;
  /** Plain names relative to dir. */
  files: string[];
  /** Attempts per request, default 3. */
  retries?: number;
  /** First backoff, doubles per attempt, default 200. */
  backoffMs?: number;
  /**
   * Test hook: return true to break this attempt mid-stream (destroy the request after about half
   * the bytes), as a broken connection would.
   */
  breakAttempt?(file: string, attempt: number): boolean;
  /** Aborting rejects with the signal's reason rather than TransferFailed: nothing failed, the caller stopped. */
  signal?: AbortSignal;
}

export interface SendResult {
  /** Payload bytes of the files sent (the manifest's total), not counting retried partial uploads. */
  bytes: number;
  manifest: Manifest;
  durationMs: number;
  /** HTTP requests made in all, uploads and commit, including retried ones. */
  attempts: number;
}

// Between chunks of a healthy upload the socket is never quiet this long.
const IDLE_TIMEOUT_MS = 120_000;
// The commit response waits while the destination re-hashes everything; allow for a slow disk
// (20 MiB/s) on top of the idle timeout rather than fail a large, healthy commit.
const COMMIT_HASH_BYTES_PER_MS = (20 * 1024 * 1024) / 1000;
// Error bodies are short JSON; cap what a misbehaving peer can make us buffer.
const MAX_REPLY_BYTES = 64 * 1024;

interface Target {
  host: string;
  port: number;
  agent: https.Agent;
  token: string;
  signal: AbortSignal | undefined;
}

interface Reply {
  status: number;
  body: Buffer;
}

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    readonly reason: TransferErrorReason | undefined,
    message: string,
  ) {
    super(message);
  }
}

class BrokenByHook extends Error {}

/** 409 AlreadyCommitted: on an upload, stop sending; on the commit, the manifests differ. */
class AlreadyCommitted extends Error {
  constructor(readonly attempts: number) {
    super('transfer already committed');
  }
}

/** How long a sender waits out a destination's "not yet" (503 Unavailable) in all, apart from its retries. */
export const NOT_YET_WAIT_MS = 30_000;

export async function sendDirectory(opts: SendOptions): Promise<SendResult> {
  const started = performance.now();
  const retries = opts.retries ?? 3;
  const backoffMs = opts.backoffMs ?? 200;
  if (!Number.isInteger(retries) || retries < 1)
    throw new RangeError(`retries must be a positive integer, got ${retries}`);
  if (!isValidRef(opts.ref)) throw new TransferFailed(`invalid migration reference ${JSON.stringify(opts.ref)}`, 0);
  const seen = new Set<string>();
  for (const name of opts.files) {
    // The server would refuse these too; failing here avoids sending the files before them.
    if (!isPlainFileName(name)) throw new TransferFailed(`${JSON.stringify(name)} is not a plain file name`, 0);
    if (seen.has(name)) throw new TransferFailed(`${name} is listed twice`, 0);
    seen.add(name);
  }
  const { host, port } = parseEndpoint(opts.endpoint);
  // No keep-alive: a transfer is a burst of large requests to a peer we rarely talk to again,
  // and lingering sockets would hold the agent's event loop open after it.
  const agent = new https.Agent({
    keepAlive: false,
    key: opts.tls.key,
    cert: opts.tls.cert,
    ca: opts.tls.ca,
    minVersion: 'TLSv1.3',
    // The chain must lead to the agents' CA (checked by TLS); the CN must be the host we meant.
    checkServerIdentity: (_address, cert) =>
      cert.subject?.CN === opts.destination
        ? undefined
        : new Error(
            `the transfer server at ${opts.endpoint} is ${cert.subject?.CN ?? 'nobody'}, not ${opts.destination}`,
          ),
  });
  const target: Target = { host, port, agent, token: opts.token, signal: opts.signal };

  const withRetries = async (what: string, attempt: (n: number) => Promise<void>): Promise<number> => {
    let waitedMs = 0;
    for (let n = 1; ; n++) {
      try {
        await attempt(n);
        return n;
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        const message = err instanceof Error ? err.message : String(err);
        if (err instanceof HttpFailure && err.status === 409 && err.reason === 'AlreadyCommitted')
          throw new AlreadyCommitted(n);
        // "Not yet" from the destination (its watch has not shown the move to migrating, or it
        // cannot check the credential right now) is no failed attempt: it is waited out, up to
        // a bound, without spending the retries meant for broken transfers. On a loaded cluster
        // that view can lag by more than the retries' backoff (seen at 500 hosts).
        if (err instanceof HttpFailure && err.status === 503 && err.reason === 'Unavailable') {
          const waitMs = Math.min(backoffMs * 2 ** Math.min(n - 1, 4), NOT_YET_WAIT_MS - waitedMs);
          if (waitMs > 0) {
            waitedMs += waitMs;
            n--;
            await sleep(waitMs, undefined, { signal: opts.signal }).catch(() => {
              throw opts.signal?.reason;
            });
            continue;
          }
        }
        if (!isRetryable(err)) throw new TransferFailed(`${what}: ${message}`, n);
        if (n >= retries) throw new TransferFailed(`${what} failed after ${n} attempts: ${message}`, n);
        await sleep(backoffMs * 2 ** (n - 1), undefined, { signal: opts.signal }).catch(() => {
          throw opts.signal?.reason;
        });
      }
    }
  };

  try {
    let attempts = 0;
    const entries: ManifestEntry[] = [];
    // A sender that crashed after its commit and runs again finds the transfer committed: it
    // sends no more files, and its commit of the manifest it hashed is accepted only when it
    // is the one the destination verified (the source sends from its immutable backup).
    let committedBefore = false;
    for (const name of opts.files) {
      const full = path.join(opts.dir, name);
      const entry = { name, ...(await hashSource(full, name, opts.signal)) };
      entries.push(entry);
      if (committedBefore) continue;
      try {
        attempts += await withRetries(`upload ${name}`, (n) =>
          putFile(target, full, entry, opts.ref, opts.breakAttempt?.(name, n) ?? false),
        );
      } catch (err) {
        if (!(err instanceof AlreadyCommitted)) throw err;
        attempts += err.attempts;
        committedBefore = true;
      }
    }
    const manifest: Manifest = { files: entries };
    const bytes = entries.reduce((sum, e) => sum + e.size, 0);
    try {
      attempts += await withRetries('commit', () =>
        postCommit(target, manifest, opts.ref, IDLE_TIMEOUT_MS + bytes / COMMIT_HASH_BYTES_PER_MS),
      );
    } catch (err) {
      if (!(err instanceof AlreadyCommitted)) throw err;
      throw new TransferFailed(
        'commit: the destination holds a transfer committed with a different manifest',
        err.attempts,
      );
    }
    return { bytes, manifest, durationMs: Math.round(performance.now() - started), attempts };
  } finally {
    agent.destroy();
  }
}

async function hashSource(
  full: string,
  name: string,
  signal: AbortSignal | undefined,
): Promise<{ size: number; sha256: string }> {
  try {
    return await hashFile(full, signal);
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw new TransferFailed(`cannot read ${name}: ${err instanceof Error ? err.message : String(err)}`, 0);
  }
}

function isRetryable(err: unknown): boolean {
  if (!(err instanceof HttpFailure)) return true; // network errors, timeouts, broken streams
  if (err.status >= 500 || err.status === 429) return true;
  return err.status === 400 && err.reason !== undefined && RETRYABLE_REASONS.has(err.reason);
}

async function putFile(
  target: Target,
  full: string,
  entry: ManifestEntry,
  ref: TransferRef,
  breakIt: boolean,
): Promise<void> {
  const headers = {
    [SHA256_HEADER]: entry.sha256,
    'content-type': 'application/octet-stream',
    'content-length': String(entry.size),
  };
  const reply = await exchange(target, 'PUT', filePath(ref, entry.name), headers, IDLE_TIMEOUT_MS, async (req) => {
    // Bounded by the hashed size so the body can never disagree with Content-Length by
    // growing; a shrunken file is caught below.
    const source = entry.size > 0 ? createReadStream(full, { start: 0, end: entry.size - 1 }) : Readable.from([]);
    const breakAt = breakIt ? Math.floor(entry.size / 2) : undefined;
    let sent = 0;
    await pipeline(
      source,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          if (breakAt !== undefined && sent + chunk.length >= breakAt) {
            if (breakAt > sent) yield chunk.subarray(0, breakAt - sent);
            throw new BrokenByHook(`connection to the destination broken while sending ${entry.name} (test hook)`);
          }
          sent += chunk.length;
          yield chunk;
        }
        if (breakAt !== undefined)
          throw new BrokenByHook(`connection to the destination broken while sending ${entry.name} (test hook)`);
        if (sent !== entry.size)
          throw new Error(`${entry.name} shrank while being sent: read ${sent} of ${entry.size} bytes`);
      },
      req,
    );
  });
  if (reply.status !== 201) throw failureOf(reply);
}

async function postCommit(target: Target, manifest: Manifest, ref: TransferRef, timeoutMs: number): Promise<void> {
  const body = Buffer.from(JSON.stringify(manifest));
  const headers = { 'content-type': 'application/json', 'content-length': String(body.length) };
  const reply = await exchange(target, 'POST', commitPath(ref), headers, timeoutMs, async (req) => {
    req.end(body);
  });
  // 200 also answers a repeated commit of the identical manifest (the reply to an earlier try
  // was lost after the destination had verified everything); a different one is a 409.
  if (reply.status !== 200) throw failureOf(reply);
}

/**
 * One request with `Expect: 100-continue`: the body is written only once the server has
 * accepted the headers (token, commit state), so a refusal arrives as a clean reply instead
 * of a reset in the middle of a large upload.
 */
function exchange(
  target: Target,
  method: string,
  urlPath: string,
  headers: Record<string, string>,
  timeoutMs: number,
  writeBody: (req: http.ClientRequest) => Promise<void>,
): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    let settled = false;
    const req = https.request({
      host: target.host,
      port: target.port,
      method,
      path: urlPath,
      agent: target.agent,
      signal: target.signal,
      headers: { ...headers, authorization: `Bearer ${target.token}`, expect: '100-continue' },
    });
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(err);
    };
    req.on('error', fail);
    req.setTimeout(timeoutMs, () =>
      fail(new Error(`no response from ${target.host}:${target.port} within ${timeoutMs} ms`)),
    );
    req.on('continue', () => writeBody(req).catch(fail));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_REPLY_BYTES) chunks.push(chunk);
      });
      res.on('error', fail);
      res.on('end', () => {
        if (settled) return;
        settled = true;
        // A refusal before `100 Continue` leaves the body unsent; the request is done either way.
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
      });
    });
    req.flushHeaders();
  });
}

function failureOf(reply: Reply): HttpFailure {
  const text = reply.body.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (
    typeof parsed === 'object' &&
    parsed !== null &&
    typeof (parsed as ErrorBody).message === 'string' &&
    typeof (parsed as ErrorBody).reason === 'string'
  ) {
    const body = parsed as ErrorBody;
    return new HttpFailure(reply.status, body.reason, `${reply.status} ${body.reason}: ${body.message}`);
  }
  return new HttpFailure(reply.status, undefined, `${reply.status}: ${text.slice(0, 500) || 'no message'}`);
}

function parseEndpoint(endpoint: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(endpoint);
  const port = Number(m?.[3]);
  const host = m?.[1] ?? m?.[2];
  if (!m || host === undefined || port < 1 || port > 65535)
    throw new TransferFailed(`invalid endpoint ${JSON.stringify(endpoint)}, want host:port`, 0);
  return { host, port };
}
