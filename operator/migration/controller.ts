// The operator's migration controller (Nova's conductor for resize, cold migration and
// evacuation). It dispatches on the lifecycle table: the operator's steps are starting a
// Migration, choosing its destination, turning the user's decision into confirming/reverting,
// and settling it once it has ended. The agents of the source and destination own every step
// in between; the step guard keeps any live phase from waiting forever, and a delete cancels.
import { MIGRATION_LIFECYCLE, isTerminal, type PhaseDispatch } from '../../common/api/lifecycle.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { WatchedCache } from '../../common/kube/api.js';
import { objectKey, splitKey, type ReconcileResult, type Reconciler } from '../../common/runtime/controller.js';
import type { HostRouting } from '../host-routing.js';
import type { MigrationCancel } from './cancel.js';
import type { Decisions } from './decision.js';
import type { DestinationPlacement } from './destination.js';
import type { MigrationSettlement } from './settle.js';
import type { MigrationStart } from './start.js';
import type { StepGuard } from './step-guard.js';

type Step = (mig: Migration, inst: Instance | undefined) => Promise<ReconcileResult>;

export class MigrationController implements Reconciler {
  /** The operator's step in each phase; null where an agent owns it. */
  readonly steps: PhaseDispatch<Step>;

  constructor(
    private readonly migrations: WatchedCache<'Migration'>,
    private readonly instances: WatchedCache<'Instance'>,
    private readonly nodes: WatchedCache<'ComputeNode'>,
    private readonly start: MigrationStart,
    destination: DestinationPlacement,
    private readonly decisions: Decisions,
    settlement: MigrationSettlement,
    private readonly guard: StepGuard,
    private readonly cancel: MigrationCancel,
    private readonly routing: HostRouting,
  ) {
    const settle: Step = (m, i) => settlement.reconcile(m, i);
    this.steps = {
      'pre-migrating': (m, i) => destination.reconcile(m, i),
      migrating: null,
      'post-migrating': null,
      finished: (m, i) => decisions.decide(m, i),
      confirming: null,
      reverting: null,
      confirmed: settle,
      reverted: settle,
      error: settle,
    };
  }

  watch(enqueue: (key: string) => void): void {
    const onMigration = (mig: Migration) => enqueue(objectKey(mig));
    this.migrations.on('add', onMigration);
    this.migrations.on('update', onMigration);
    this.migrations.on('delete', onMigration);
    // A finished migration may be waiting for its instance to settle, and a new one for it to be idle.
    this.instances.on('update', (inst) => {
      const name = inst.status?.migration;
      if (name) enqueue(`${inst.metadata.namespace}/${name}`);
    });
    // A deleted instance ends its migrations; a host forced down needs the operator in its place.
    this.instances.on('delete', (inst) => {
      const name = inst.status?.migration;
      if (name) enqueue(`${inst.metadata.namespace}/${name}`);
    });
    this.nodes.on('update', (node) => {
      if (!node.spec.forcedDown) return;
      for (const mig of this.migrations.list()) {
        const s = mig.status;
        if (s && !isTerminal(s.status) && (s.sourceHost === node.metadata.name || s.destHost === node.metadata.name)) {
          enqueue(`${mig.metadata.namespace}/${mig.metadata.name}`);
        }
      }
    });
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const cached = this.migrations.get(name, namespace);
    if (!cached) return {};
    const mig = await this.routing.migration(cached);
    const inst = this.instances.get(mig.spec.instance, mig.metadata.namespace ?? 'default');
    if (mig.metadata.deletionTimestamp) {
      const cancelled = await this.cancel.reconcile(mig, inst);
      if (cancelled) return cancelled;
    }
    const phase = mig.status?.status;
    if (!phase) return this.start.reconcile(mig, inst);
    if (!isTerminal(phase)) {
      const guarded = await this.guard.check(mig, inst, phase);
      if (guarded) return guarded;
    }
    const current = MIGRATION_LIFECYCLE[phase].decision === 'early' ? await this.decisions.noteEarly(mig) : mig;
    const result = (await this.steps[phase]?.(current, inst)) ?? {};
    // Nothing may wait past its deadline: look again then, whatever else happens meanwhile.
    const left = this.guard.untilDeadline(this.migrations.get(name, namespace) ?? current);
    if (left === undefined) return result;
    return { requeueAfterMs: Math.min(result.requeueAfterMs ?? Infinity, left + 100) };
  }
}
