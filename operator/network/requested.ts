// Which Networks an instance attaches, checked before anything is held for it. Nova refuses a
// boot on a network that does not exist (NetworkNotFound) at the API; here the instance goes to
// error with a fault naming the network and what to do, since spec.networks cannot change.
//
// spec.networks omitted: the default Network (the oldest valid one marked spec.default), or
// none when the admin marked none. spec.networks: []: no network, even when there is a default
// (Nova's --nic none). Once the boot has recorded its ports (status.networks), those networks
// are the answer, so an admin moving the default mid-boot does not give the instance a second port.
import { Fault } from '../../common/api/faults.js';
import { FaultReason } from '../../common/api/reasons.js';
import type { Instance, Network } from '../../common/api/types.js';
import type { ObjectCache } from '../../common/kube/api.js';
import { defaultNetwork, judge } from './validity.js';

export function requestedNames(inst: Instance, networks: readonly Network[]): string[] {
  const recorded = inst.status?.networks;
  if (recorded && recorded.length > 0) return recorded.map((n) => n.network);
  if (inst.spec.networks) return inst.spec.networks.map((n) => n.network);
  const fallback = defaultNetwork(networks);
  return fallback ? [fallback.metadata.name] : [];
}

/** The Networks the instance attaches, each existing and valid; else the Fault that refuses the boot. */
export function requestedNetworks(inst: Instance, cache: ObjectCache<'Network'>): Network[] | Fault {
  const all = cache.list();
  const out: Network[] = [];
  for (const name of requestedNames(inst, all)) {
    const net = cache.get(name);
    if (!net || net.metadata.deletionTimestamp) {
      return new Fault(
        FaultReason.NetworkNotFound,
        `network ${name} does not exist (kubectl get networks lists those that do); ` +
          `spec.networks cannot change, so delete this instance and create it again with an existing network, or ask an admin to create ${name}`,
      );
    }
    const verdict = judge(net, all);
    if (!verdict.valid) {
      return new Fault(
        FaultReason.NetworkInvalid,
        `network ${name} cannot hand out addresses (${verdict.reason}): ${verdict.message}`,
      );
    }
    out.push(net);
  }
  return out;
}
