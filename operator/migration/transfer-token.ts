// The one-time token of a Migration's disk transfer: a Secret the operator creates (owned by
// the Migration) when the destination is being chosen and deletes once the disk has arrived.
import { randomBytes } from 'node:crypto';
import { MIGRATION_UID_ANNOTATION, transferSecretName } from '../../common/api/transfer-secret.js';
import type { Migration } from '../../common/api/types.js';
import type { SecretClient } from '../../common/kube/api.js';
import { isConflict } from '../../common/kube/client.js';

export class TransferTokens {
  constructor(private readonly secrets: SecretClient) {}

  async ensure(mig: Migration): Promise<void> {
    const namespace = mig.metadata.namespace ?? 'default';
    const name = transferSecretName(mig.metadata.name);
    if (await this.secrets.get(namespace, name)) return;
    try {
      await this.secrets.create({
        metadata: {
          name,
          namespace,
          labels: { 'app.kubernetes.io/part-of': 'kubenova', 'compute.kubenova.io/migration': mig.metadata.name },
          annotations: { [MIGRATION_UID_ANNOTATION]: mig.metadata.uid ?? '' },
          ownerReferences: [
            { apiVersion: mig.apiVersion, kind: 'Migration', name: mig.metadata.name, uid: mig.metadata.uid ?? '' },
          ],
        },
        type: 'Opaque',
        stringData: { token: randomBytes(32).toString('hex') },
      });
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }

  /** The disk has arrived (or never will): the token has done its one job. */
  async drop(mig: Migration): Promise<void> {
    await this.secrets.delete(mig.metadata.namespace ?? 'default', transferSecretName(mig.metadata.name));
  }
}
