// The one writer of Port status: keeps each Port's binding where desiredBinding() says its
// instance is, and tells it in an Event on the Port and on the Instance at every change.
// Level-triggered: it compares and writes (guarded by the Port's resourceVersion), so a missed
// event or a crash only delays the binding until the next change or resync.
import { EventReason } from '../../common/api/reasons.js';
import type { Instance, Port } from '../../common/api/types.js';
import type { KubeClient, WatchedCache } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { Logger } from '../../common/log.js';
import { objectKey, splitKey, type ReconcileResult, type Reconciler } from '../../common/runtime/controller.js';
import { desiredBinding, sameBinding, type Binding } from './binding.js';

export class PortBindingController implements Reconciler {
  constructor(
    private readonly kube: Pick<KubeClient, 'ports'>,
    private readonly ports: WatchedCache<'Port'>,
    private readonly instances: WatchedCache<'Instance'>,
    private readonly migrations: WatchedCache<'Migration'>,
    private readonly events: EventRecorder,
    private readonly log: Logger,
  ) {}

  /** A Port is looked at when it appears and whenever its instance or the instance's Migration changes. */
  watch(enqueue: (key: string) => void): void {
    this.ports.on('add', (p) => enqueue(objectKey(p)));
    const portsOf = (namespace: string | undefined, instance: string) => {
      for (const p of this.ports.list(namespace)) if (p.spec.instance === instance) enqueue(objectKey(p));
    };
    this.instances.on('add', (i) => portsOf(i.metadata.namespace, i.metadata.name));
    this.instances.on('update', (i) => portsOf(i.metadata.namespace, i.metadata.name));
    this.migrations.on('add', (m) => portsOf(m.metadata.namespace, m.spec.instance));
    this.migrations.on('update', (m) => portsOf(m.metadata.namespace, m.spec.instance));
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const port = this.ports.get(name, namespace);
    if (!port) return {};
    const inst = this.instances.get(port.spec.instance, namespace);
    // An instance being replaced by one of the same name: its ports are on their way out.
    if (!inst || !port.metadata.ownerReferences?.some((o) => o.uid === inst.metadata.uid)) return {};
    const active = inst.status?.migration ? this.migrations.get(inst.status.migration, namespace) : undefined;
    const want = desiredBinding(inst, active);
    const have: Binding = {
      host: port.status?.bindingHost ?? '',
      state: port.status?.bindingState ?? 'unbound',
      migratingTo: port.status?.migratingTo ?? '',
    };
    if (sameBinding(want, have)) return {};
    await this.kube.ports.patchStatus(port, {
      bindingHost: want.host || null,
      bindingState: want.state,
      migratingTo: want.migratingTo || null,
    });
    this.announce(port, inst, have, want);
    return {};
  }

  private announce(port: Port, inst: Instance, from: Binding, to: Binding): void {
    const what = `port ${port.metadata.name} (${port.spec.fixedIP}, ${port.spec.macAddress})`;
    const was = from.host ? ` (was ${from.host}${from.migratingTo ? `, migrating to ${from.migratingTo}` : ''})` : '';
    const [reason, message] =
      to.state === 'bound'
        ? [EventReason.PortBound, `${what} bound to ${to.host}${was}`]
        : to.state === 'migrating'
          ? [EventReason.PortBindingMigrating, `${what} bound to ${to.host}, being set up on ${to.migratingTo}${was}`]
          : [EventReason.PortUnbound, `${what} unbound${was}`];
    this.events.record(port, 'Normal', reason, message);
    this.events.record(inst, 'Normal', reason, message);
    this.log.info(
      {
        instance: `${inst.metadata.namespace}/${inst.metadata.name}`,
        port: port.metadata.name,
        ...to,
        step: 'binding',
      },
      message,
    );
  }
}
