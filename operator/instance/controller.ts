// The instance controller: routes each Instance to the step that owns its current state —
// deletion behind the finalizer, boot while building, then resize requests — and registers
// the watches that bring an Instance back to it.
import { isTerminal } from '../../common/api/lifecycle.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { WatchedCache } from '../../common/kube/api.js';
import { objectKey, splitKey, type ReconcileResult, type Reconciler } from '../../common/runtime/controller.js';
import type { InstanceNetworks } from '../network/instance-networks.js';
import type { QuotaService } from '../quota/quota-service.js';
import type { HostRouting } from '../host-routing.js';
import type { BootConductor } from './boot.js';
import type { DeletionConductor } from './deletion.js';
import type { ResizeRequests } from './resize-request.js';

export class InstanceController implements Reconciler {
  constructor(
    private readonly instances: WatchedCache<'Instance'>,
    private readonly migrations: WatchedCache<'Migration'>,
    private readonly boot: BootConductor,
    private readonly resize: ResizeRequests,
    private readonly deletion: DeletionConductor,
    private readonly quota: QuotaService,
    private readonly networks: InstanceNetworks,
    private readonly routing: HostRouting,
  ) {}

  /**
   * Every change of an Instance, and of a Migration its deletion or an unobserved flavor change
   * waits for, enqueues the Instance.
   */
  watch(enqueue: (key: string) => void): void {
    this.instances.on('add', (inst) => enqueue(objectKey(inst)));
    this.instances.on('update', (inst) => enqueue(objectKey(inst)));
    const instanceOf = (mig: Migration) => {
      const inst = this.instances.get(mig.spec.instance, mig.metadata.namespace);
      if (!inst) return;
      // An instance being deleted waits for its migrations' claims too; a flavor change whose
      // Migration ended without starting (refused) is recorded as acted on once it has ended.
      const unobserved = inst.status?.observedGeneration !== inst.metadata.generation;
      if (inst.metadata.deletionTimestamp || (unobserved && isTerminal(mig.status?.status))) enqueue(objectKey(inst));
    };
    this.migrations.on('add', instanceOf);
    this.migrations.on('update', instanceOf);
    this.migrations.on('delete', instanceOf);
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const cached = this.instances.get(name, namespace);
    if (!cached) return {};
    const inst = await this.routing.instance(cached);
    if (inst.metadata.deletionTimestamp) return this.deletion.reconcile(inst, this.consumersOf(inst));
    // The finalizer and then the boot's first status write in the same pass: no round trip between.
    const held = await this.deletion.ensureFinalizer(inst);
    if (!held.status?.vmState || held.status.vmState === 'building') return this.boot.reconcile(held);
    await this.settleBootQuota(held);
    await this.networks.settleFailedBoot(held);
    return this.resize.reconcile(held);
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
  private consumersOf(inst: Instance): string[] {
    const migrationUids = this.migrations
      .list(inst.metadata.namespace)
      .filter((m) => m.spec.instance === inst.metadata.name)
      .map((m) => m.metadata.uid ?? '');
    return [inst.metadata.uid ?? '', ...migrationUids].filter(Boolean);
  }
}
