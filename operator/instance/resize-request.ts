// `kubectl patch instance web-1 -p '{"spec":{"flavor":"m1.large"}}'` becomes a Migration
// named <instance>-resize-<generation>, owned by the Instance. Each generation of the spec
// is acted on once (observedGeneration), so a refused request is not retried in a loop. The
// generation that asked for a Migration is recorded by the migration controller's first write
// to the instance (resize_prep), not here: two writers of one instance milliseconds apart would
// make one of them a 409 and a second write.
import { Fault } from '../../common/api/faults.js';
import { checkInstanceState } from '../../common/api/instance-actions.js';
import { isTerminal } from '../../common/api/lifecycle.js';
import { FaultReason } from '../../common/api/reasons.js';
import type { Instance } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import { isConflict } from '../../common/kube/client.js';
import type { FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import { snapshotOf } from '../../common/api/flavor.js';
import type { QuotaService } from '../quota/quota-service.js';
import { resizeIncrease } from '../quota/quota-service.js';
import { ownedMigration, resizeMigrationName } from '../migration/owned-migration.js';
import { checkResizeFlavor } from '../migration/resize-checks.js';

export class ResizeRequests {
  constructor(
    private readonly kube: KubeClient,
    private readonly flavors: ObjectCache<'Flavor'>,
    private readonly migrations: ObjectCache<'Migration'>,
    private readonly quota: QuotaService,
    private readonly faults: FaultRecorder,
    private readonly log: Logger,
  ) {}

  async reconcile(inst: Instance): Promise<ReconcileResult> {
    const s = inst.status ?? {};
    const generation = inst.metadata.generation ?? 1;
    if (s.observedGeneration === generation) return {};
    // A task or a resize awaiting its decision is running: the new spec waits for it.
    if (!s.flavor || s.taskState || s.migration) return {};
    if (inst.spec.flavor === s.flavor.name) return this.observe(inst);
    const allowed = checkInstanceState(inst, 'resize');
    if (!allowed.ok) return this.refuse(inst, allowed.message);
    const check = checkResizeFlavor(s.flavor, inst.spec.flavor, this.flavors.get(inst.spec.flavor));
    if (!check.ok) return this.refuse(inst, check.message);
    // A resize over quota is refused before anything is created (the Migration reserves for real).
    const overs = this.quota.wouldExceed(
      inst.metadata.namespace ?? 'default',
      resizeIncrease(s.flavor, snapshotOf(this.flavors.get(inst.spec.flavor)!)),
    );
    if (overs.length) return this.refuse(inst, `quota exceeded: ${overs.join('; ')}`, FaultReason.QuotaExceeded);
    const name = resizeMigrationName(inst);
    // Made before: once it has ended (refused, most likely) this generation has had its answer;
    // until then its start records it.
    const made = this.migrations.get(name, inst.metadata.namespace);
    if (made) return isTerminal(made.status?.status) ? this.observe(inst) : {};
    try {
      await this.kube.migrations.create(ownedMigration(inst, name, { flavor: inst.spec.flavor }));
    } catch (err) {
      if (!isConflict(err)) throw err;
      return this.observe(inst);
    }
    this.log.info(
      { instance: `${inst.metadata.namespace}/${inst.metadata.name}`, migration: name, step: 'resize_prep' },
      `resize to ${inst.spec.flavor} requested`,
    );
    return {};
  }

  private async observe(inst: Instance): Promise<ReconcileResult> {
    await this.kube.instances.patchStatus(inst, { observedGeneration: inst.metadata.generation ?? 1 });
    return {};
  }

  private async refuse(
    inst: Instance,
    message: string,
    reason: FaultReason = FaultReason.ResizeRefused,
  ): Promise<ReconcileResult> {
    await this.faults.record(
      new Fault(reason, message),
      (fault) => this.kube.instances.patchStatus(inst, { observedGeneration: inst.metadata.generation ?? 1, fault }),
      [{ target: inst, message: `resize to ${inst.spec.flavor} refused: ${message}` }],
      this.log.child({ instance: `${inst.metadata.namespace}/${inst.metadata.name}` }),
      'resize_prep',
    );
    return {};
  }
}
