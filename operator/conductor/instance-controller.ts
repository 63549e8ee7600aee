// Routes each Instance to the conductor step that owns its current state.
import type { Instance } from '../../common/api/types.js';
import type { Informer } from '../../common/kube/informer.js';
import { splitKey, type ReconcileResult } from '../../common/runtime/controller.js';
import type { BootConductor } from './boot.js';
import type { DeletionConductor } from './deletion.js';

export class InstanceReconciler {
  constructor(
    private readonly instances: Informer<'Instance'>,
    private readonly boot: BootConductor,
    private readonly deletion: DeletionConductor,
  ) {}

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const inst = this.instances.get(name, namespace);
    if (!inst) return {};
    if (inst.metadata.deletionTimestamp) return this.deletion.reconcile(inst, consumersOf(inst));
    if (await this.deletion.ensureFinalizer(inst)) return {};
    return this.boot.reconcile(inst);
  }
}

/** Claims an instance may hold: its own, and those of its Migrations. */
export function consumersOf(inst: Instance): string[] {
  return [inst.metadata.uid ?? ''].filter(Boolean);
}
