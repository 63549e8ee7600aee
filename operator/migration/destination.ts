// select_destinations for a Migration: PlacementAttempts chooses the destination and retries
// after a failed claim; when no host can take it, the instance stays where it is, with the
// reason, and the Migration ends in error.
import { resourcesOf } from '../../common/api/flavor.js';
import type { Fault } from '../../common/api/faults.js';
import { EventReason } from '../../common/api/reasons.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { PlacementAttempts } from '../scheduler/attempts.js';
import type { ServerGroups } from '../servergroups/membership.js';
import type { MigrationQuota } from './quota.js';
import type { TransferTokens } from './transfer-token.js';

export class DestinationPlacement {
  constructor(
    private readonly kube: KubeClient,
    private readonly attempts: PlacementAttempts,
    private readonly groups: ServerGroups,
    private readonly quota: MigrationQuota,
    private readonly tokens: TransferTokens,
    private readonly events: EventRecorder,
    private readonly faults: FaultRecorder,
    private readonly config: { allowResizeToSameHost: boolean },
    private readonly log: Logger,
  ) {}

  async reconcile(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    await this.tokens.ensure(mig);
    const s = mig.status ?? {};
    if (s.destHost) return {};
    if (!inst || inst.metadata.deletionTimestamp) return {};
    const flavor = s.newFlavor!;
    return this.attempts.step({
      what: 'migration',
      consumer: mig.metadata.uid ?? '',
      instance: inst,
      scheduling: s.scheduling,
      forcedHost: mig.spec.targetHost,
      request: (tried) => {
        const ignore = this.config.allowResizeToSameHost ? tried : [...tried, s.sourceHost ?? ''];
        return {
          instance: `${inst.metadata.namespace}/${inst.metadata.name}`,
          flavor,
          resources: resourcesOf(flavor),
          availabilityZone: inst.spec.availabilityZone,
          forcedHost: mig.spec.targetHost,
          ignoreHosts: ignore.filter(Boolean),
          group: this.groups.requestFor(inst).group,
        };
      },
      recordAttempt: async (scheduling) => {
        await this.kube.migrations.patchStatus(mig, { scheduling: { ...scheduling, claimFailure: null } });
      },
      announce: (kind, message) => {
        this.events.record(
          mig,
          'Normal',
          kind === 'scheduled' ? EventReason.Scheduled : EventReason.Rescheduled,
          message,
        );
      },
      fail: (fault) => this.fail(mig, inst, fault),
    });
  }

  private async fail(mig: Migration, inst: Instance, fault: Fault): Promise<ReconcileResult> {
    await this.quota.settle(mig, inst);
    const log = this.log.child({ migration: `${mig.metadata.namespace}/${mig.metadata.name}` });
    await this.faults.record(
      fault,
      async (status) => {
        // The instance never left its host: it goes back to where it was, with the reason.
        if (inst.status?.migration === mig.metadata.name) {
          await this.kube.instances.patchStatus(inst, { taskState: '', migration: null, fault: status });
        }
        await this.kube.migrations.patchStatus(mig, {
          status: 'error',
          fault: status,
          finishedAt: status.time,
          scheduling: { selectedHost: null },
        });
      },
      [{ target: mig }, { target: inst, message: `Migration ${mig.metadata.name} failed: ${fault.message}` }],
      log,
      'pre-migrating',
    );
    return {};
  }
}
