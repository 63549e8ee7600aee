// select_destinations for a Migration: PlacementAttempts chooses the destination and retries
// after a failed claim; when no host can take it, the instance stays where it is, with the
// reason, and the Migration ends in error. For an evacuation the operator then takes the
// task in the place of the fenced source and hands it to the destination.
import { resourcesOf } from '../../common/api/flavor.js';
import { EventReason } from '../../common/api/reasons.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import { enterPhase } from '../../common/api/lifecycle.js';
import type { Logger } from '../../common/log.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { PlacementAttempts } from '../scheduler/attempts.js';
import type { ServerGroups } from '../servergroups/membership.js';
import type { MigrationEnding } from './ending.js';
import type { TransferTokens } from './transfer-token.js';

export class DestinationPlacement {
  constructor(
    private readonly kube: KubeClient,
    private readonly attempts: PlacementAttempts,
    private readonly groups: ServerGroups,
    private readonly ending: MigrationEnding,
    private readonly tokens: TransferTokens,
    private readonly events: EventRecorder,
    private readonly config: { allowResizeToSameHost: boolean; stepTimeoutMs: number },
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async reconcile(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    const evacuation = s.type === 'evacuation';
    // An evacuation rebuilds from the image: there is no disk to send, so no credential. A
    // resize's names the host that holds (or is asked for) the destination claim; only the
    // destination's own destHost may replace one here (selectedHost may be a stale view).
    const chosen = s.destHost ?? s.scheduling?.selectedHost;
    if (!evacuation && chosen) await this.tokens.ensure(mig, chosen, s.destHost !== undefined);
    if (!inst || inst.metadata.deletionTimestamp) return {};
    if (s.destHost) return evacuation ? this.handToDestination(mig, inst) : {};
    const flavor = s.newFlavor!;
    return this.attempts.step({
      what: 'migration',
      consumer: mig.metadata.uid ?? '',
      instance: inst,
      scheduling: s.scheduling,
      forcedHost: mig.spec.targetHost,
      request: (tried) => {
        const sameHostAllowed = this.config.allowResizeToSameHost && !evacuation;
        const ignore = sameHostAllowed ? tried : [...tried, s.sourceHost ?? ''];
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
        // Before the host is asked, a credential exists; once the request went through (this
        // view was current), it names that host.
        if (!evacuation) await this.tokens.ensure(mig, scheduling.selectedHost, false);
        await this.kube.migrations.patchStatus(mig, { scheduling: { ...scheduling, claimFailure: null } });
        if (!evacuation) await this.tokens.ensure(mig, scheduling.selectedHost);
      },
      announce: (kind, message, _host, attempt) => {
        // As for a boot: a first choice is in status.scheduling; Events tell of the retries.
        if (kind === 'scheduled' && attempt === 1) return;
        this.events.record(
          mig,
          'Normal',
          kind === 'scheduled' ? EventReason.Scheduled : EventReason.Rescheduled,
          message,
        );
      },
      fail: (fault) => this.ending.fail(mig, inst, fault, 'pre-migrating'),
    });
  }

  /** The fenced source cannot take the task: the operator does, and the destination rebuilds. */
  private async handToDestination(mig: Migration, inst: Instance): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    const hosts = [s.sourceHost ?? '', s.destHost ?? ''];
    await this.kube.instances.patchStatus(inst, { taskState: 'resize_migrated', taskHosts: hosts });
    await this.kube.migrations.patchStatus(mig, enterPhase('post-migrating', this.now(), this.config.stepTimeoutMs));
    const key = `${mig.metadata.namespace}/${mig.metadata.name}`;
    this.log.info({ migration: key, step: 'pre-migrating' }, `evacuation handed to ${s.destHost}`);
    return {};
  }
}
