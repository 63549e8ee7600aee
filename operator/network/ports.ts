// The Ports of an instance: made at boot, one per attached network, before a host is chosen
// (Nova's allocate_for_instance runs before the build is sent to a compute host), and deleted
// with the instance or when its boot ends in error. A Port is named <instance>-<network> and
// owned by the Instance, so every step is idempotent: asked again after a crash it finds the
// Port (or the address already held for it) instead of making a second one.
//
// Order is what keeps an address held by one Port at a time: the address is held (IPAllocation)
// before the Port that carries it is made, and the Port is deleted before its address is
// released.
import { createHash } from 'node:crypto';
import { EventReason } from '../../common/api/reasons.js';
import { API_VERSION, type AttachedNetwork, type Instance, type Network, type Port } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import { isConflict } from '../../common/kube/client.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { Logger } from '../../common/log.js';
import { allocationName, type IPAllocator, type PortRef } from './allocator.js';
import { newMac } from './mac.js';

export const INSTANCE_LABEL = 'compute.kubenova.io/instance';

/** <instance>-<network>, shortened with a hash when that would pass the 253 characters of a name. */
export function portName(instance: string, network: string): string {
  const name = `${instance}-${network}`;
  if (name.length <= 253) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 10);
  return `${instance.slice(0, 253 - network.length - 12)}-${network}-${hash}`;
}

export class Ports {
  /** MACs handed out by this process that the Port cache may not show yet. */
  private readonly recentMacs = new Set<string>();

  constructor(
    private readonly kube: Pick<KubeClient, 'ports' | 'ipAllocations'>,
    private readonly ports: ObjectCache<'Port'>,
    private readonly allocator: IPAllocator,
    private readonly events: EventRecorder,
    private readonly log: Logger,
  ) {}

  /** The instance's Ports in the cache (this instance's, not an earlier one's of the same name). */
  of(inst: Instance): Port[] {
    return this.ports
      .list(inst.metadata.namespace ?? 'default')
      .filter((p) => p.spec.instance === inst.metadata.name && ownedBy(p, inst));
  }

  /**
   * One Port per network, made if missing, with its address held first; returns what
   * status.networks records. A Fault (an exhausted network) leaves what was made so far for
   * release() to take back, as the boot's failure does.
   */
  async ensure(inst: Instance, networks: readonly Network[]): Promise<AttachedNetwork[]> {
    const attached: AttachedNetwork[] = [];
    for (const net of networks) attached.push(await this.ensureOne(inst, net));
    return attached;
  }

  private async ensureOne(inst: Instance, net: Network): Promise<AttachedNetwork> {
    const namespace = inst.metadata.namespace ?? 'default';
    const name = portName(inst.metadata.name, net.metadata.name);
    const existing = this.ports.get(name, namespace) ?? (await this.kube.ports.get({ namespace, name }));
    if (existing) {
      if (!ownedBy(existing, inst)) {
        // A Port left by an earlier instance of the same name: its deletion is on the way.
        throw new Error(`port ${namespace}/${name} still belongs to an earlier instance ${inst.metadata.name}`);
      }
      return attachment(existing);
    }
    const ref: PortRef = { namespace, name, instanceUID: inst.metadata.uid ?? '' };
    const ip = await this.allocator.allocate(net, ref);
    const macAddress = this.newMac();
    const port: Port = {
      apiVersion: API_VERSION,
      kind: 'Port',
      metadata: {
        name,
        namespace,
        labels: { [INSTANCE_LABEL]: inst.metadata.name },
        ownerReferences: [
          {
            apiVersion: API_VERSION,
            kind: 'Instance',
            name: inst.metadata.name,
            uid: inst.metadata.uid ?? '',
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      // No status: the API server drops it on create; the binding controller writes it.
      spec: { network: net.metadata.name, instance: inst.metadata.name, macAddress, fixedIP: ip },
    };
    try {
      const created = await this.kube.ports.create(port);
      this.recentMacs.add(macAddress);
      this.events.record(
        inst,
        'Normal',
        EventReason.PortCreated,
        `port ${name} on network ${net.metadata.name}: IP ${ip}, MAC ${macAddress}`,
      );
      this.log.info(
        { instance: `${namespace}/${inst.metadata.name}`, port: name, ip, mac: macAddress },
        'port created',
      );
      return attachment(created);
    } catch (err) {
      if (!isConflict(err)) throw err;
      // Made meanwhile by another worker or replica: that one is the Port.
      const winner = await this.kube.ports.get({ namespace, name });
      if (!winner) throw err;
      return attachment(winner);
    }
  }

  /**
   * Deletes the instance's Ports, then releases their addresses, and any address held for
   * it without a Port (a boot that stopped in between). `known` are ports the caller has just
   * made, which the cache may not show yet. Safe to repeat; resolves once all are gone.
   */
  async release(inst: Instance, known: readonly AttachedNetwork[] = []): Promise<number> {
    const namespace = inst.metadata.namespace ?? 'default';
    const uid = inst.metadata.uid ?? '';
    const names = new Set([
      ...this.of(inst).map((p) => p.metadata.name),
      ...(inst.status?.networks ?? []).map((n) => n.port),
      ...known.map((n) => n.port),
    ]);
    let released = 0;
    for (const name of names) {
      const port = this.ports.get(name, namespace) ?? (await this.kube.ports.get({ namespace, name }));
      if (!port || !ownedBy(port, inst)) continue;
      await this.kube.ports.delete({ namespace, name });
      await this.releaseAddress(port.spec.network, port.spec.fixedIP, uid);
      this.recentMacs.delete(port.spec.macAddress);
      released++;
    }
    for (const leftover of this.allocator.heldByInstance(uid)) {
      await this.releaseAddress(leftover.spec.network, leftover.spec.ip, uid);
    }
    if (released > 0) {
      this.events.record(
        inst,
        'Normal',
        EventReason.PortsReleased,
        `${released} port${released === 1 ? '' : 's'} deleted and ${released === 1 ? 'its address' : 'their addresses'} released`,
      );
    }
    return released;
  }

  /** Releases an address only if this instance holds it: never someone else's. */
  private async releaseAddress(network: string, ip: string, instanceUID: string): Promise<void> {
    const held = await this.kube.ipAllocations.get({ name: allocationName(network, ip) });
    if (!held || held.spec.port.instanceUID !== instanceUID) return;
    await this.allocator.release(network, ip);
  }

  /** Unique among all Ports, not only the network's (Neutron needs it per network; one guest may sit on two). */
  private newMac(): string {
    const taken = new Set(this.ports.list().map((p) => p.spec.macAddress));
    return newMac((mac) => taken.has(mac) || this.recentMacs.has(mac));
  }
}

function ownedBy(port: Port, inst: Instance): boolean {
  const owners = port.metadata.ownerReferences ?? [];
  return owners.some((o) => o.kind === 'Instance' && o.uid === inst.metadata.uid);
}

const attachment = (port: Port): AttachedNetwork => ({
  network: port.spec.network,
  port: port.metadata.name,
  ip: port.spec.fixedIP,
  mac: port.spec.macAddress,
});
