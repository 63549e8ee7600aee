// The credential of one Migration's disk transfer: a Secret the operator creates in the
// release namespace (never a tenant's), named after the Migration's uid. It names the
// Migration, the only host that may send (source) and the only one that may receive
// (destination), and when it stops being valid; the token is what the source presents. The
// operator deletes it once the disk has arrived or the migration has ended, and sweeps up any
// that outlive their Migration or their expiry.
import type { V1Secret } from '@kubernetes/client-node';

export const TRANSFER_CREDENTIAL_LABEL = 'compute.kubenova.io/transfer-credential';
const PREFIX = 'compute.kubenova.io/';

export const transferCredentialName = (migrationUid: string): string => `kubenova-transfer-${migrationUid}`;

export interface TransferCredential {
  migration: { namespace: string; name: string; uid: string };
  source: string;
  destination: string;
  expiresAt: Date;
  token: string;
}

/** The Secret that carries `cred` in `namespace`. */
export function credentialSecret(
  namespace: string,
  cred: TransferCredential,
): V1Secret & { metadata: { name: string; namespace: string } } {
  return {
    metadata: {
      name: transferCredentialName(cred.migration.uid),
      namespace,
      labels: { 'app.kubernetes.io/part-of': 'kubenova', [TRANSFER_CREDENTIAL_LABEL]: 'true' },
      annotations: {
        [`${PREFIX}migration-namespace`]: cred.migration.namespace,
        [`${PREFIX}migration-name`]: cred.migration.name,
        [`${PREFIX}migration-uid`]: cred.migration.uid,
        [`${PREFIX}source-host`]: cred.source,
        [`${PREFIX}destination-host`]: cred.destination,
        [`${PREFIX}expires-at`]: cred.expiresAt.toISOString(),
      },
    },
    type: 'Opaque',
    stringData: { token: cred.token },
  };
}

/** The credential a Secret carries, or undefined when it is not a complete one. */
export function parseCredential(secret: V1Secret | undefined): TransferCredential | undefined {
  const a = secret?.metadata?.annotations ?? {};
  const get = (k: string): string | undefined => a[`${PREFIX}${k}`] || undefined;
  const namespace = get('migration-namespace');
  const name = get('migration-name');
  const uid = get('migration-uid');
  const source = get('source-host');
  const destination = get('destination-host');
  const expires = Date.parse(get('expires-at') ?? '');
  const raw = secret?.data?.token;
  const token = raw ? Buffer.from(raw, 'base64').toString('utf8') : undefined;
  if (!namespace || !name || !uid || !source || !destination || !Number.isFinite(expires) || !token) return undefined;
  return { migration: { namespace, name, uid }, source, destination, expiresAt: new Date(expires), token };
}
