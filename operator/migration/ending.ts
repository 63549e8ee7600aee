// Ending a Migration before anything has landed on its destination (no host for it, a host
// forced down, a deadline, a cancel): the quota it reserved goes back, the instance is told
// why and stays where it is, and the Migration ends in error. The destination's agent frees
// its claim when it sees the error (its terminal step).
import { enterPhase } from '../../common/api/lifecycle.js';
import type { Fault } from '../../common/api/faults.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { FaultNotice, FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { MigrationQuota } from './quota.js';

export class MigrationEnding {
  constructor(
    private readonly kube: KubeClient,
    private readonly quota: MigrationQuota,
    private readonly faults: FaultRecorder,
    private readonly log: Logger,
  ) {}

  async fail(mig: Migration, inst: Instance | undefined, fault: Fault, step: string): Promise<ReconcileResult> {
    await this.quota.settle(mig, inst);
    const log = this.log.child({ migration: `${mig.metadata.namespace}/${mig.metadata.name}` });
    const notify: FaultNotice[] = [{ target: mig }];
    const holdsInstance = inst !== undefined && inst.status?.migration === mig.metadata.name;
    if (inst && !inst.metadata.deletionTimestamp) {
      notify.push({ target: inst, message: `Migration ${mig.metadata.name} failed: ${fault.message}` });
    }
    await this.faults.record(
      fault,
      async (status) => {
        if (holdsInstance && !inst.metadata.deletionTimestamp) {
          await this.kube.instances.patchStatus(inst, {
            taskState: '',
            migration: null,
            taskHosts: null,
            fault: status,
          });
        }
        await this.kube.migrations.patchStatus(mig, {
          ...enterPhase('error', new Date(), 0),
          fault: status,
          finishedAt: status.time,
          // A host only asked to be the destination lets the migration go; the destination
          // (destHost) keeps it in its view (common/api/placement.ts) for what it still holds.
          scheduling: { selectedHost: mig.status?.destHost ?? null },
        });
      },
      notify,
      log,
      step,
    );
    return {};
  }
}
