// Every write of an Instance's status.host names the same host in status.scheduling.selectedHost,
// the one field its host's agent watches (common/api/placement.ts). An instance placed by a
// version that did not may run on a host that cannot see it: one moved by a migration still
// names the host it booted on. One write brings it back under its host's watch, before anything
// else is done for it, since its deletion, too, needs the agent of the host it runs on.
import { unwatchedHost } from '../../common/api/placement.js';
import type { Instance } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { Logger } from '../../common/log.js';

export class InstanceRouting {
  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
  ) {}

  /** `inst`, written first if its host's agent could not see it. */
  async settle(inst: Instance): Promise<Instance> {
    const host = unwatchedHost(inst);
    if (!host) return inst;
    const routed = await this.kube.instances.patchStatus(inst, { scheduling: { selectedHost: host } });
    this.log.info(
      {
        instance: `${inst.metadata.namespace}/${inst.metadata.name}`,
        host,
        was: inst.status?.scheduling?.selectedHost,
      },
      "routed the instance to its host's watch (status.scheduling.selectedHost)",
    );
    return routed;
  }
}
