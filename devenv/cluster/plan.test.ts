import { describe, expect, it } from 'vitest';
import { chooseSlot, cidrsOverlap, environmentNames, planEnvironment, preferredSlot, slotCidr, SLOTS } from './plan.js';

describe('environment plan', () => {
  it('derives every name from the state directory, within the kernel limit of 15 characters for links', () => {
    const a = environmentNames('/tmp/env-a');
    const b = environmentNames('/tmp/env-b');
    expect(a.id).toMatch(/^[0-9a-f]{8}$/);
    expect(a.id).not.toBe(b.id);
    expect(environmentNames('/tmp/env-a')).toEqual(a);
    const plan = planEnvironment('/tmp/env-a', 100, 3);
    for (const name of [plan.bridge, ...plan.nodes.map((n) => n.hostVeth)]) expect(name.length).toBeLessThanOrEqual(15);
  });

  it('gives each node its own address on the bridge and its own pod range, apart from Services', () => {
    const plan = planEnvironment('/tmp/env-a', 3, 5);
    expect(plan.hostIp).toBe('10.229.0.1');
    expect(plan.serviceCidr).toBe('10.229.1.0/24');
    expect(plan.nodes.map((n) => [n.name, n.ip, n.podCidr])).toEqual([
      ['node-1', '10.229.0.10', '10.229.128.0/24'],
      ['node-2', '10.229.0.11', '10.229.129.0/24'],
      ['node-3', '10.229.0.12', '10.229.130.0/24'],
    ]);
    for (const n of plan.nodes) {
      expect(cidrsOverlap(n.podCidr, plan.clusterCidr)).toBe(true);
      expect(cidrsOverlap(n.podCidr, plan.serviceCidr)).toBe(false);
      expect(cidrsOverlap(n.podCidr, plan.bridgeCidr)).toBe(false);
    }
    expect(new Set(plan.nodes.map((n) => n.cgroupRoot)).size).toBe(3);
  });

  it('refuses a node count it cannot address', () => {
    expect(() => planEnvironment('/tmp/env-a', 0, 0)).toThrow(/--nodes 0/);
    expect(() => planEnvironment('/tmp/env-a', 101, 0)).toThrow(/1 to 100/);
  });

  it('takes the slot its id points at, or the next one not used on this machine', () => {
    const id = environmentNames('/tmp/env-a').id;
    const own = preferredSlot(id);
    expect(chooseSlot(id, () => false)).toBe(own);
    const used = [slotCidr(own), slotCidr((own + 1) % SLOTS)];
    expect(chooseSlot(id, (cidr) => used.includes(cidr))).toBe((own + 2) % SLOTS);
    expect(() => chooseSlot(id, () => true)).toThrow(/every address slot/);
  });

  it('tells overlapping networks from disjoint ones', () => {
    expect(cidrsOverlap('10.224.0.0/16', '10.224.5.0/24')).toBe(true);
    expect(cidrsOverlap('10.0.0.0/8', '10.250.0.0/16')).toBe(true);
    expect(cidrsOverlap('10.224.0.0/16', '10.225.0.0/16')).toBe(false);
    expect(cidrsOverlap('192.0.2.0/24', '10.224.0.0/11')).toBe(false);
    expect(() => cidrsOverlap('10.1.2/24', '10.0.0.0/8')).toThrow(/not an IPv4/);
  });
});
