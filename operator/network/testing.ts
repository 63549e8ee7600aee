// Builders for the networking unit tests.
import { API_VERSION, type Network, type NetworkSpec } from '../../common/api/types.js';

export function aNetwork(name: string, spec: Partial<NetworkSpec> = {}, created = '2026-01-01T00:00:00Z'): Network {
  return {
    apiVersion: API_VERSION,
    kind: 'Network',
    metadata: { name, creationTimestamp: new Date(created) },
    spec: { cidr: '10.251.0.0/24', gateway: '10.251.0.1', mtu: 1500, default: false, ...spec },
  };
}
