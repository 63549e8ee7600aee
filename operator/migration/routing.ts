// A Migration's destination agent watches it through status.scheduling.selectedHost, which stays
// equal to destHost from the destination's claim to the end (common/api/placement.ts). A
// version that cleared selectedHost when a migration failed left the destination blind to it,
// and to the files it may keep for an admin; one write brings it back, before anything else.
import { unwatchedDestination } from '../../common/api/placement.js';
import type { Migration } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { Logger } from '../../common/log.js';

export class MigrationRouting {
  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
  ) {}

  /** `mig`, written first if its destination's agent could not see it. */
  async settle(mig: Migration): Promise<Migration> {
    const host = unwatchedDestination(mig);
    if (!host) return mig;
    const routed = await this.kube.migrations.patchStatus(mig, { scheduling: { selectedHost: host } });
    this.log.info(
      { migration: `${mig.metadata.namespace}/${mig.metadata.name}`, host },
      "routed the migration to its destination's watch (status.scheduling.selectedHost)",
    );
    return routed;
  }
}
