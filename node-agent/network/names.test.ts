import { describe, expect, it } from 'vitest';
import { bridgeName, conventionalUplinkName, isNetworkBridge } from './names.js';

describe("a network's interface names", () => {
  it('fit in Linux 15 characters for any network name, and are the same on every host and run', () => {
    const long = `net-${'x'.repeat(240)}`;
    for (const n of ['a', 'net-a', long]) {
      expect(bridgeName(n)).toMatch(/^kn-[0-9a-f]{12}$/);
      expect(conventionalUplinkName(n)).toMatch(/^ku-[0-9a-f]{12}$/);
    }
    expect(bridgeName('net-a')).toBe(bridgeName('net-a'));
    expect(bridgeName('net-a')).not.toBe(bridgeName('net-b'));
    expect(conventionalUplinkName('net-a').slice(3)).toBe(bridgeName('net-a').slice(3));
  });

  it("tell kubenova's bridges from anything else on the host", () => {
    expect(isNetworkBridge(bridgeName('net-a'))).toBe(true);
    for (const other of ['cni0', 'eth0', 'kn-node-a', 'knbr-1234abcd', 'kn1234abcd-1', conventionalUplinkName('net-a')])
      expect(isNetworkBridge(other)).toBe(false);
  });
});
