// The credential of a Migration's disk transfer (common/api/transfer-credential.ts): a Secret
// in the release namespace, created before the destination is handed the migration (so it
// always exists when the source starts sending) and naming the source, that destination and an
// expiry; replaced when another destination is chosen; deleted once the disk has arrived or the
// migration has ended. A Secret in another namespace cannot be owned by the Migration, so the
// operator cleans up after itself: drop() at each end, and sweep() for any left behind.
import { randomBytes } from 'node:crypto';
import {
  TRANSFER_CREDENTIAL_LABEL,
  credentialSecret,
  parseCredential,
  transferCredentialName,
} from '../../common/api/transfer-credential.js';
import { isTerminal } from '../../common/api/lifecycle.js';
import type { Migration } from '../../common/api/types.js';
import type { ObjectCache, SecretClient } from '../../common/kube/api.js';
import { isConflict } from '../../common/kube/client.js';

export interface TransferTokenConfig {
  /** Where credentials live: the release namespace. */
  namespace: string;
  /** How long a phase may take; the credential outlives pre-migrating by at most one migrating phase. */
  stepTimeoutMs: number;
  /** A fixed lifetime instead (0: derived from the deadlines). */
  ttlMs?: number;
}

export class TransferTokens {
  /**
   * Migrations whose credential this process deleted while they had not yet ended: a Migration
   * waiting in `finished` for its decision passes decide() on every reconcile, and each pass
   * would send another DELETE for a Secret long gone. Forgotten when the Migration settles, so
   * it holds only migrations under way (after a restart, one DELETE more: a 404, harmless).
   */
  private readonly dropped = new Set<string>();

  constructor(
    private readonly secrets: SecretClient,
    private readonly config: TransferTokenConfig,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * A credential for sending `mig`'s disk from its source to `destination`, created unless one
   * naming that destination exists; one naming another destination is replaced only when
   * `replace` (the caller knows `destination` from a write of its own that went through, or from
   * the destination's, never from a view that may be stale). It expires when the migrating phase
   * that uses it must have ended: the pre-migrating deadline plus one step timeout (or after
   * the configured ttl).
   */
  async ensure(mig: Migration, destination: string, replace = true): Promise<void> {
    const { namespace } = this.config;
    const uid = mig.metadata.uid ?? '';
    const name = transferCredentialName(uid);
    const secret = await this.secrets.get(namespace, name);
    const existing = parseCredential(secret);
    if (existing?.destination === destination && existing.migration.uid === uid) return;
    if (secret && !replace) return;
    if (secret) await this.secrets.delete(namespace, name);
    this.dropped.delete(uid);
    const now = this.now().getTime();
    const deadline = Date.parse(mig.status?.stepDeadline ?? '');
    const phaseEnd = Number.isFinite(deadline) && deadline > now ? deadline : now + this.config.stepTimeoutMs;
    const expiresAt = new Date(this.config.ttlMs ? now + this.config.ttlMs : phaseEnd + this.config.stepTimeoutMs);
    try {
      await this.secrets.create(
        credentialSecret(namespace, {
          migration: { namespace: mig.metadata.namespace ?? 'default', name: mig.metadata.name, uid },
          source: mig.status?.sourceHost ?? '',
          destination,
          expiresAt,
          token: randomBytes(32).toString('hex'),
        }),
      );
    } catch (err) {
      // Another pass made it meanwhile; the next pass checks what it names.
      if (!isConflict(err)) throw err;
    }
  }

  /**
   * The disk has arrived (or never will): the credential has done its one job. `settled`: the
   * Migration has ended, and this is the last drop it gets.
   */
  async drop(mig: Migration, settled = false): Promise<void> {
    const uid = mig.metadata.uid ?? '';
    if (this.dropped.has(uid)) {
      if (settled) this.dropped.delete(uid);
      return;
    }
    await this.secrets.delete(this.config.namespace, transferCredentialName(uid));
    if (!settled) this.dropped.add(uid);
  }

  /**
   * Deletes every credential that is expired, unreadable, or whose Migration is gone, was
   * replaced (another uid) or has ended; returns how many went.
   */
  async sweep(migrations: ObjectCache<'Migration'>): Promise<number> {
    const { namespace } = this.config;
    let dropped = 0;
    for (const secret of await this.secrets.listLabelled(namespace, TRANSFER_CREDENTIAL_LABEL)) {
      const cred = parseCredential(secret);
      const mig = cred && migrations.get(cred.migration.name, cred.migration.namespace);
      const phase = mig?.status?.status;
      const live =
        cred !== undefined &&
        cred.expiresAt.getTime() > this.now().getTime() &&
        mig?.metadata.uid === cred.migration.uid &&
        !(phase && isTerminal(phase));
      if (live || !secret.metadata?.name) continue;
      await this.secrets.delete(namespace, secret.metadata.name);
      dropped++;
    }
    return dropped;
  }
}
