// The agent's side of a Migration's one-time transfer token: the operator keeps it in a
// Secret named after the Migration and bound to its uid; the source sends it, the destination's
// transfer server checks it.
import { MIGRATION_UID_ANNOTATION, transferSecretName } from '../../common/api/transfer-secret.js';
import type { SecretClient } from '../../common/kube/api.js';
import { apiMessage } from '../../common/kube/client.js';
import type { TransferRef } from './protocol.js';

/** The token of the Migration `ref` names, or undefined when there is none for that uid. */
export async function readTransferToken(secrets: SecretClient, ref: TransferRef): Promise<string | undefined> {
  let secret;
  try {
    secret = await secrets.get(ref.namespace, transferSecretName(ref.name));
  } catch (err) {
    throw new Error(`reading the transfer token: ${apiMessage(err)}`, { cause: err });
  }
  if (!secret || secret.metadata?.annotations?.[MIGRATION_UID_ANNOTATION] !== ref.uid) return undefined;
  const token = secret.data?.token;
  return token ? Buffer.from(token, 'base64').toString('utf8') : undefined;
}
