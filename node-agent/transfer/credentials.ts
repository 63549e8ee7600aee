// The agent's view of transfer credentials (common/api/transfer-credential.ts): read from the
// release namespace only, one Secret get per credential, kept in a small cache so repeated
// requests of one transfer cost no API read (a missing one is remembered briefly too). Only
// requests that already passed the TLS handshake and the Migration check in the cache get here.
import {
  parseCredential,
  transferCredentialName,
  type TransferCredential,
} from '../../common/api/transfer-credential.js';
import type { SecretClient } from '../../common/kube/api.js';
import { apiMessage } from '../../common/kube/client.js';

interface Entry {
  cred: TransferCredential | undefined;
  until: number;
  readAt: number;
}

export interface CredentialCacheOptions {
  /** How long a credential read is reused (it never changes; a replaced one has new contents). */
  keepMs?: number;
  /** How long "there is none" is reused. */
  missingMs?: number;
  maxEntries?: number;
}

export class CredentialCache {
  private readonly entries = new Map<string, Entry>();
  private readonly reading = new Map<string, Promise<TransferCredential | undefined>>();
  private readonly keepMs: number;
  private readonly missingMs: number;
  private readonly maxEntries: number;

  constructor(
    private readonly secrets: SecretClient,
    /** The release namespace: the only one read. */
    readonly namespace: string,
    opts: CredentialCacheOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    this.keepMs = opts.keepMs ?? 30_000;
    this.missingMs = opts.missingMs ?? 2_000;
    this.maxEntries = opts.maxEntries ?? 256;
  }

  /**
   * The credential of the Migration with uid `migrationUid`, or undefined when there is none;
   * with `maxAgeMs`, read again when what is cached was read longer ago than that.
   */
  async get(migrationUid: string, maxAgeMs?: number): Promise<TransferCredential | undefined> {
    const hit = this.entries.get(migrationUid);
    const now = this.now();
    if (hit && hit.until > now && (maxAgeMs === undefined || now - hit.readAt <= maxAgeMs)) return hit.cred;
    let pending = this.reading.get(migrationUid);
    if (!pending) {
      pending = this.read(migrationUid).finally(() => this.reading.delete(migrationUid));
      this.reading.set(migrationUid, pending);
    }
    return pending;
  }

  private async read(migrationUid: string): Promise<TransferCredential | undefined> {
    let secret;
    try {
      secret = await this.secrets.get(this.namespace, transferCredentialName(migrationUid));
    } catch (err) {
      throw new Error(`reading the transfer credential: ${apiMessage(err)}`, { cause: err });
    }
    const cred = parseCredential(secret);
    const now = this.now();
    const until = cred ? Math.min(now + this.keepMs, cred.expiresAt.getTime()) : now + this.missingMs;
    this.entries.delete(migrationUid);
    this.entries.set(migrationUid, { cred, until, readAt: now });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    return cred;
  }
}
