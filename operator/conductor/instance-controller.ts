// Routes each Instance to the conductor step that owns its current state.
import type { Instance } from '../../common/api/types.js';
import type { Informer } from '../../common/kube/informer.js';
import { splitKey, type ReconcileResult } from '../../common/runtime/controller.js';
import type { BootConductor } from './boot.js';
import type { DeletionConductor } from './deletion.js';
import type { QuotaService } from '../quota/quota-service.js';
import type { ResizeRequests } from './resize-request.js';

export class InstanceReconciler {
  constructor(
    private readonly instances: Informer<'Instance'>,
    private readonly migrations: Informer<'Migration'>,
    private readonly boot: BootConductor,
    private readonly resize: ResizeRequests,
    private readonly deletion: DeletionConductor,
    private readonly quota: QuotaService,
  ) {}

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const inst = this.instances.get(name, namespace);
    if (!inst) return {};
    if (inst.metadata.deletionTimestamp) return this.deletion.reconcile(inst, this.consumersOf(inst));
    if (await this.deletion.ensureFinalizer(inst)) return {};
    if (!inst.status?.vmState || inst.status.vmState === 'building') return this.boot.reconcile(inst);
    await this.settleBootQuota(inst);
    return this.resize.reconcile(inst);
  }

  /** A boot's reservation becomes usage once the instance runs, and is given back if it failed. */
  private async settleBootQuota(inst: Instance): Promise<void> {
    const namespace = inst.metadata.namespace ?? 'default';
    const held = this.quota.allocation(namespace, inst.metadata.uid ?? '');
    if (held?.state !== 'reserved') return;
    if (inst.status?.vmState === 'error') await this.quota.release(namespace, (a) => a.consumer === inst.metadata.uid);
    else await this.quota.commit(namespace, inst.metadata.uid ?? '');
  }

  /** Claims an instance may hold anywhere: its own, and those of its Migrations. */
  consumersOf(inst: Instance): string[] {
    const migrationUids = this.migrations
      .list(inst.metadata.namespace)
      .filter((m) => m.spec.instance === inst.metadata.name)
      .map((m) => m.metadata.uid ?? '');
    return [inst.metadata.uid ?? '', ...migrationUids].filter(Boolean);
  }
}
