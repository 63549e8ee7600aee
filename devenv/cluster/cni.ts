// A node's CNI configuration: pods on a bridge inside the node's namespace, addresses from
// the node's pod CIDR, host ports through portmap. containerd adds loopback itself. The
// node routes its pods' traffic without masquerading, so a pod is seen by its own address
// everywhere in the environment.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodePlan } from './plan.js';

export const CNI_BIN_DIR = '/usr/lib/cni';

export interface CniPaths {
  confDir: string;
  /** host-local's leases; by default they would go to /var/lib/cni, shared by all nodes. */
  ipamDir: string;
}

/** The network's name: libcni caches results under it in /var/lib/cni, so it carries the environment's id. */
export function cniNetworkName(id: string, node: NodePlan): string {
  return `kubenova-${id}-${node.name}`;
}

export function writeCniConfig(id: string, node: NodePlan, nodeDir: string): CniPaths {
  const paths = { confDir: join(nodeDir, 'cni', 'net.d'), ipamDir: join(nodeDir, 'cni', 'ipam') };
  mkdirSync(paths.confDir, { recursive: true });
  mkdirSync(paths.ipamDir, { recursive: true });
  const conf = {
    cniVersion: '1.0.0',
    name: cniNetworkName(id, node),
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        // A pod reaching a Service that leads back to itself goes out and in the same port.
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: node.podCidr }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: paths.ipamDir,
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  writeFileSync(join(paths.confDir, '10-kubenova.conflist'), `${JSON.stringify(conf, null, 2)}\n`);
  return paths;
}
