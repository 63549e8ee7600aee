import { describe, expect, it } from 'vitest';
import type { Instance, Network } from '../../common/api/types.js';
import { instanceNics, NetworkUnknown } from './instance-nics.js';
import { bridgeName } from './names.js';

const network = (name: string, spec: Partial<Network['spec']> = {}): Network => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Network',
  metadata: { name },
  spec: { cidr: '10.20.0.0/24', gateway: '10.20.0.1', ...spec },
});
const inst = (networks?: NonNullable<Instance['status']>['networks']): Instance => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Instance',
  metadata: { name: 'vm-1', namespace: 'default', uid: 'u1' },
  spec: { flavor: 'small', image: 'tiny' },
  status: networks ? { networks } : {},
});

describe("an instance's NICs on this host", () => {
  const nets = new Map([
    ['net-a', network('net-a', { mtu: 1450 })],
    ['net-b', network('net-b', { cidr: '10.30.0.0/16', gateway: '10.30.0.1' })],
  ]);
  const lookup = (name: string) => nets.get(name);

  it("are its ports with their networks' prefix, gateway and MTU, on this host's bridge for each network", () => {
    const nics = instanceNics(
      inst([
        { network: 'net-a', port: 'vm-1-net-a', ip: '10.20.0.5', mac: '52:54:00:AA:00:01' },
        { network: 'net-b', port: 'vm-1-net-b', ip: '10.30.4.9', mac: '52:54:00:aa:00:02' },
      ]),
      lookup,
    );
    expect(nics).toEqual([
      {
        port: 'vm-1-net-a',
        network: 'net-a',
        mac: '52:54:00:aa:00:01',
        ip: '10.20.0.5',
        prefixLength: 24,
        gateway: '10.20.0.1',
        mtu: 1450,
        bridge: bridgeName('net-a'),
      },
      {
        port: 'vm-1-net-b',
        network: 'net-b',
        mac: '52:54:00:aa:00:02',
        ip: '10.30.4.9',
        prefixLength: 16,
        gateway: '10.30.0.1',
        mtu: 1500,
        bridge: bridgeName('net-b'),
      },
    ]);
  });

  it("are none for an instance with an empty list, and unknown (keep the domain's) without one", () => {
    expect(instanceNics(inst([]), lookup)).toEqual([]);
    expect(instanceNics(inst(), lookup)).toBeUndefined();
  });

  it('wait for a Network this host cannot read yet, naming it', () => {
    const attached = [{ network: 'net-x', port: 'vm-1-net-x', ip: '10.9.0.2', mac: '52:54:00:00:00:09' }];
    expect(() => instanceNics(inst(attached), lookup)).toThrow(NetworkUnknown);
    expect(() => instanceNics(inst(attached), lookup)).toThrow(
      'network net-x of port vm-1-net-x is not known on this host (yet)',
    );
  });
});
