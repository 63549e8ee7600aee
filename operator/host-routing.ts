// Each host's agent finds the objects it acts on through one routing field per kind
// (common/api/placement.ts): an Instance's status.scheduling.selectedHost, which every write
// that places it on a host names too, and a Migration's, which stays equal to destHost from the
// destination's claim to the end. Objects written by a version that did not keep them so may
// sit outside the watch of the host that must act on them (an instance moved by a migration
// still names its boot host; a failed migration's destination lost it). One write brings each
// back, before anything else is done for it, its deletion included.
import { unwatchedDestination, unwatchedHost } from '../common/api/placement.js';
import type { Instance, Migration } from '../common/api/types.js';
import type { KubeClient } from '../common/kube/api.js';
import type { Logger } from '../common/log.js';

export class HostRouting {
  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
  ) {}

  /** `inst`, written first if the agent of the host it runs on could not see it. */
  instance(inst: Instance): Promise<Instance> {
    return this.route('instance', inst, unwatchedHost(inst), (selectedHost) =>
      this.kube.instances.patchStatus(inst, { scheduling: { selectedHost } }),
    );
  }

  /** `mig`, written first if its destination's agent could not see it. */
  migration(mig: Migration): Promise<Migration> {
    return this.route('migration', mig, unwatchedDestination(mig), (selectedHost) =>
      this.kube.migrations.patchStatus(mig, { scheduling: { selectedHost } }),
    );
  }

  private async route<T extends Instance | Migration>(
    kind: 'instance' | 'migration',
    obj: T,
    host: string | undefined,
    write: (host: string) => Promise<T>,
  ): Promise<T> {
    if (!host) return obj;
    const routed = await write(host);
    this.log.info(
      { [kind]: `${obj.metadata.namespace}/${obj.metadata.name}`, host, was: obj.status?.scheduling?.selectedHost },
      `routed the ${kind} to its host's watch (status.scheduling.selectedHost)`,
    );
    return routed;
  }
}
