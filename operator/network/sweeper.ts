// Gives back addresses no Port holds any more: left by a Port the garbage collector deleted
// with its Instance (an admin who removed the instance finalizer by hand), or by a boot that
// held an address and stopped for good before making its Port. An address is only swept when
// it is older than the grace period, no Port of its name carries it (asked of the API server,
// not only the cache), and its instance is not one this operator knows (a boot resuming after
// a crash finds the address it held instead).
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import type { Logger } from '../../common/log.js';

export class AllocationSweeper {
  constructor(
    private readonly kube: Pick<KubeClient, 'ports' | 'ipAllocations'>,
    private readonly allocations: ObjectCache<'IPAllocation'>,
    private readonly ports: ObjectCache<'Port'>,
    private readonly instances: ObjectCache<'Instance'>,
    private readonly log: Logger,
    private readonly graceMs = 60_000,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** One pass; returns how many addresses it released. */
  async pass(): Promise<number> {
    const known = new Set(this.instances.list().map((i) => i.metadata.uid));
    let released = 0;
    for (const a of this.allocations.list()) {
      const age = this.now() - new Date(a.metadata.creationTimestamp ?? this.now()).getTime();
      if (age < this.graceMs || a.metadata.deletionTimestamp || known.has(a.spec.port.instanceUID)) continue;
      const ref = { namespace: a.spec.port.namespace, name: a.spec.port.name };
      const holds = (p: { spec: { network: string; fixedIP: string } } | undefined) =>
        p !== undefined && p.spec.network === a.spec.network && p.spec.fixedIP === a.spec.ip;
      if (holds(this.ports.get(ref.name, ref.namespace)) || holds(await this.kube.ports.get(ref))) continue;
      await this.kube.ipAllocations.delete({ name: a.metadata.name });
      this.log.info(
        { network: a.spec.network, ip: a.spec.ip, port: `${ref.namespace}/${ref.name}` },
        'address released: no port holds it any more',
      );
      released++;
    }
    return released;
  }
}
