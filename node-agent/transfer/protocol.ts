// Instance-directory transfer between node agents (DESIGN.md, "Data movement").
//
// The source agent pushes the files of an instance directory to the destination agent's
// transfer server; the destination stages them and only calls the transfer complete after it
// has re-read and verified every byte. The server speaks HTTPS only, with mutual TLS: both
// sides present the certificate the operator issued for their host (CN = host name) from the
// agents' CA; the server accepts only such client certificates, and the client only the
// certificate of the destination host it meant. All routes live under
// `/v1/transfers/<namespace>/<name>/<uid>/`, naming the Migration; every path segment is
// percent-encoded.
//
// A request is admitted only when the Migration exists (in the destination's cache) with that
// uid, is `migrating`, goes from the peer's host to this one, and the bearer token matches the
// Migration's transfer credential (release namespace), which must name the same source,
// destination and Migration and be unexpired.
//
//   PUT  /v1/transfers/<ns>/<name>/<uid>/files/<file name>
//        Authorization: Bearer <token>
//        X-Content-SHA256: <64 lowercase hex digits of the file's SHA-256>
//        Content-Length: <file size>            (required; chunked bodies are refused with 411)
//        Expect: 100-continue                    (optional; the server checks the credential, the
//                                                 limits and the commit state before accepting the
//                                                 body, so a rejected upload costs no bytes on the wire)
//        body: the raw file bytes
//     201  stored: the body hashed to X-Content-SHA256 and had exactly Content-Length bytes
//     400  ChecksumMismatch | SizeMismatch (nothing is stored; worth retrying),
//          InvalidName (not a plain name: contains '/' or '\', starts with '.', is empty),
//          InvalidRequest (bad digest header, malformed path)
//     401  Unauthorized: token missing or wrong, credential missing, expired or naming others
//     403  Forbidden: no such Migration migrating from the peer's host to this one
//     409  AlreadyCommitted: the transfer was committed; nothing more is stored
//     411  LengthRequired
//     413  PayloadTooLarge: past the transfer's file count, or its size (the flavor's disk as
//          the driver makes it, plus definition files), counted before and while streaming
//     429  TooManyRequests: the peer's requests failed too often; retry after a pause
//     507  InsufficientStorage: the upload would eat into the free space the host keeps
//     5xx  the destination could not store it (worth retrying)
//
//   POST /v1/transfers/<ns>/<name>/<uid>/commit
//        Authorization: Bearer <token>
//        Content-Type: application/json
//        body: Manifest, e.g. {"files":[{"name":"disk","size":1048576,"sha256":"…"}]}
//     200  every stored file was re-hashed and the set of files matches the manifest exactly;
//          the transfer is now complete. Asked again with the identical manifest (a sender
//          that lost the reply) also 200, with "repeated": true, and nothing changes
//     400  ManifestMismatch (names the file: missing, extra, wrong size or digest) or
//          InvalidManifest
//     409  AlreadyCommitted with a different manifest; 401, 403, 413 as above
//
// Error bodies are JSON `ErrorBody` so the client can tell a retryable 400 (a checksum
// mismatch caused by a corrupted stream) from a permanent one without parsing prose.
//
// Staging layout on the destination, per Migration uid and credential (a digest of its token):
//   <stagingRoot>/<uid>/<cred>/files/<name>  verified files, each renamed into place whole
//   <stagingRoot>/<uid>/<cred>/tmp/<random>  uploads in progress (outside files/ so a partial
//                                            upload is never mistaken for a stored file)
//   <stagingRoot>/<uid>/<cred>/complete      the verified manifest, written to complete.tmp,
//                                            flushed and renamed last: only a fully verified
//                                            transfer has it

import { Fault } from '../../common/api/faults.js';
import { FaultReason } from '../../common/api/reasons.js';

export interface TransferRef {
  namespace: string;
  name: string;
  uid: string;
}

export interface ManifestEntry {
  name: string;
  size: number;
  sha256: string;
}

export interface Manifest {
  files: ManifestEntry[];
}

/** `attempts` is how many times the request that failed was tried. */
export class TransferFailed extends Fault {
  constructor(
    message: string,
    readonly attempts: number,
  ) {
    super(FaultReason.TransferFailed, message);
  }
}

export const SHA256_HEADER = 'x-content-sha256';

export type TransferErrorReason =
  | 'ChecksumMismatch'
  | 'SizeMismatch'
  | 'InvalidName'
  | 'InvalidRequest'
  | 'InvalidManifest'
  | 'ManifestMismatch'
  | 'Unauthorized'
  | 'Forbidden'
  | 'TooManyRequests'
  | 'AlreadyCommitted'
  | 'LengthRequired'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'PayloadTooLarge'
  | 'InsufficientStorage'
  | 'Unavailable'
  | 'Internal';

export interface ErrorBody {
  reason: TransferErrorReason;
  message: string;
}

/** 400s that a fresh attempt can cure: the bytes were damaged on the way, not the request. */
export const RETRYABLE_REASONS: ReadonlySet<TransferErrorReason> = new Set(['ChecksumMismatch', 'SizeMismatch']);

const SHA256_HEX = /^[0-9a-f]{64}$/;
// A Kubernetes uid is a UUID; allowing only this keeps it safe to use as a directory name.
const UID = /^[A-Za-z0-9][A-Za-z0-9-]{0,127}$/;
// RFC 1123 subdomain, what Kubernetes accepts for namespaces and object names.
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function isSha256Hex(value: string): boolean {
  return SHA256_HEX.test(value);
}

export function isValidUid(uid: string): boolean {
  return UID.test(uid);
}

export function isValidRef(ref: TransferRef): boolean {
  return OBJECT_NAME.test(ref.namespace) && OBJECT_NAME.test(ref.name) && isValidUid(ref.uid);
}

/**
 * A name that stays inside the directory it is joined to: no separators, no '.'/'..', and no
 * hidden files, which the staging layout could otherwise confuse with its own bookkeeping.
 */
export function isPlainFileName(name: string): boolean {
  return (
    name.length > 0 &&
    Buffer.byteLength(name) <= 255 &&
    !name.startsWith('.') &&
    !name.includes('/') &&
    !name.includes('\\') &&
    !name.includes('\0')
  );
}

function refPath(ref: TransferRef): string {
  return `/v1/transfers/${encodeURIComponent(ref.namespace)}/${encodeURIComponent(ref.name)}/${encodeURIComponent(ref.uid)}`;
}

export function filePath(ref: TransferRef, file: string): string {
  return `${refPath(ref)}/files/${encodeURIComponent(file)}`;
}

export function commitPath(ref: TransferRef): string {
  return `${refPath(ref)}/commit`;
}

/** Checks the shape of an untrusted manifest; returns why it is unusable, or undefined. */
export function manifestProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || !Array.isArray((value as { files?: unknown }).files)) {
    return 'manifest must be an object with a "files" array';
  }
  const seen = new Set<string>();
  for (const entry of (value as { files: unknown[] }).files) {
    if (typeof entry !== 'object' || entry === null) return 'manifest entries must be objects';
    const { name, size, sha256 } = entry as Record<string, unknown>;
    if (typeof name !== 'string' || !isPlainFileName(name))
      return `manifest entry has an invalid name: ${JSON.stringify(name)}`;
    if (seen.has(name)) return `manifest lists "${name}" twice`;
    seen.add(name);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
      return `manifest entry "${name}" has an invalid size`;
    if (typeof sha256 !== 'string' || !isSha256Hex(sha256)) return `manifest entry "${name}" has an invalid sha256`;
  }
  return undefined;
}
