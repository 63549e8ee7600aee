import { describe, expect, it } from 'vitest';
import { parseDuration } from './io.js';
import { age, formatObjects, table } from './output.js';
import { flavorObject, parseProperties, renderQuota } from './flavors.js';
import { hostRows, hostState, renderHost } from './hosts.js';
import { aNode, anInstance } from './testing.js';

const now = new Date('2026-01-01T12:00:00Z');
const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000);

describe('output', () => {
  it('aligns table columns three spaces apart, as kubectl does', () => {
    expect(
      table(
        ['NAME', 'HOST'],
        [
          ['web-1', 'node-a'],
          ['a', '-'],
        ],
      ),
    ).toBe('NAME    HOST\nweb-1   node-a\na       -\n');
  });

  it("shows ages in kubectl's form", () => {
    expect([5, 119, 150, 600, 3 * 3600 + 120, 20 * 3600, 3 * 86400].map((s) => age(ago(s), now))).toEqual([
      '5s',
      '119s',
      '2m30s',
      '10m',
      '3h2m',
      '20h',
      '3d',
    ]);
  });

  it('prints one object as itself and several as a v1 List, in JSON or YAML', () => {
    expect(JSON.parse(formatObjects({ kind: 'Instance' }, 'json'))).toEqual({ kind: 'Instance' });
    expect(JSON.parse(formatObjects([{ kind: 'Instance' }], 'json'))).toMatchObject({ kind: 'List', items: [{}] });
    expect(formatObjects([], 'yaml')).toContain('kind: List');
  });

  it('reads durations as kubectl does and refuses anything else', () => {
    expect(['90s', '5m', '1h30m', '120', '500ms'].map(parseDuration)).toEqual([
      90_000, 300_000, 5_400_000, 120_000, 500,
    ]);
    expect(() => parseDuration('5 minutes')).toThrow('is not a duration');
  });
});

describe('flavors and quotas', () => {
  it('builds a Flavor from flavor-create options and refuses numbers out of range, naming the option', () => {
    expect(
      flavorObject('gpu.small', { vcpus: '2', memoryMib: '4096', disk: '40', property: ['node:gpu=true'] }).spec,
    ).toEqual({ vcpus: 2, memoryMiB: 4096, rootDiskGiB: 40, extraSpecs: { 'node:gpu': 'true' } });
    expect(() => flavorObject('f', { vcpus: '0', memoryMib: '64', disk: '1', property: [] })).toThrow(
      '--vcpus must be a whole number of at least 1, not "0"',
    );
    expect(() => flavorObject('f', { vcpus: '1', memoryMib: '32', disk: '1', property: [] })).toThrow('--memory-mib');
    expect(() => flavorObject('F!', { vcpus: '1', memoryMib: '64', disk: '1', property: [] })).toThrow('not valid');
    expect(() => parseProperties(['novalue'])).toThrow('must be key=value');
  });

  it('shows used, reserved, limit and what is free per resource, unlimited where no limit is set', () => {
    const text = renderQuota({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'ComputeQuota',
      metadata: { name: 'quota', namespace: 'team' },
      spec: { hard: { instances: 10, vcpus: 8 } },
      status: { used: { instances: 2, vcpus: 2 }, reserved: { vcpus: 4 } },
    });
    expect(text).toMatch(/instances +2 +0 +10 +8\n/);
    expect(text).toMatch(/vcpus +2 +4 +8 +2\n/);
    expect(text).toMatch(/memory \(MiB\) +0 +0 +unlimited +-\n/);
  });
});

describe('hosts', () => {
  const ready = {
    conditions: [
      { type: 'Ready', status: 'True' as const, reason: 'NodeAgentReady', lastTransitionTime: ago(60).toISOString() },
    ],
  };

  it('is up while its agent is Ready, down otherwise, forced-down when an admin said so', () => {
    expect(hostState(aNode('a', {}, ready))).toBe('up');
    expect(hostState(aNode('a', {}, {}))).toBe('down');
    expect(hostState(aNode('a', { forcedDown: true }, ready))).toBe('forced-down');
  });

  it('shows status with its reason, resources with what is free, claims and the instances on it', () => {
    const node = aNode(
      'node-a',
      { disabled: true, disabledReason: 'disk replacement' },
      {
        ...ready,
        capacity: { vcpus: 8, memoryMiB: 16384, diskGiB: 200 },
        allocatable: { vcpus: 32, memoryMiB: 15872, diskGiB: 200 },
        allocated: { vcpus: 1, memoryMiB: 2048, diskGiB: 20 },
        claims: [
          {
            consumer: 'uid-web-1',
            kind: 'instance',
            instance: 'default/web-1',
            vcpus: 1,
            memoryMiB: 2048,
            diskGiB: 20,
          },
        ],
        driver: 'fake',
      },
    );
    const text = renderHost({
      node,
      instances: [anInstance('web-1', { vmState: 'active', host: 'node-a', taskState: '' })],
      migrations: [],
      now,
    });
    expect(text).toMatch(/Status: +disabled \(disk replacement\)/);
    expect(text).toMatch(/memoryMiB +16384 MiB +512 MiB +1 +15872 MiB +2048 MiB +13824 MiB/);
    expect(text).toMatch(/default\/web-1 +instance +1 +2048 +20/);
    expect(text).toMatch(/Instances \(1\):\n +NAMESPACE +NAME.*\n +default +web-1 +active/);
  });

  it("shows the agent's last heartbeat from its node Lease beside the last status report", () => {
    const node = aNode('node-a', {}, { ...ready, heartbeatTime: ago(45).toISOString() });
    const show = (lease: Parameters<typeof renderHost>[0]['lease']) =>
      renderHost({ node, instances: [], migrations: [], now, lease });
    const renewed = show({ namespace: 'kubenova-system', renewTime: ago(3).toISOString() });
    expect(renewed).toMatch(/Heartbeat: +3s ago \(node Lease kubenova-system\/node-a\)/);
    expect(renewed).toMatch(/Reported: +45s ago/);
    expect(show({ namespace: 'kubenova-system', missing: true })).toMatch(
      /Heartbeat: +- \(no node Lease kubenova-system\/node-a: the agent heartbeats by status; see Reported\)/,
    );
    expect(show({ namespace: 'kubenova-system', unreadable: 'forbidden' })).toMatch(
      /Heartbeat: +unknown \(cannot read node Lease kubenova-system\/node-a: forbidden\)/,
    );
    expect(show(undefined)).not.toContain('Heartbeat');
  });

  it("lists each host's last heartbeat: its node Lease renewal, else its last status report, '?' when Leases cannot be read", () => {
    const leased = aNode('node-a', {}, { ...ready, heartbeatTime: ago(45).toISOString() });
    const byStatus = aNode('node-b', {}, { ...ready, heartbeatTime: ago(7).toISOString() });
    const column = (text: string, host: string) =>
      new RegExp(`^${host} +\\S+ +\\S+ +\\S+ +(\\S+) `, 'm').exec(text)?.[1];
    const listed = hostRows([byStatus, leased], now, {
      namespace: 'kubenova-system',
      renewals: new Map([['node-a', ago(3).toISOString()]]),
    });
    expect(listed.split('\n')[0]).toMatch(/^NAME +ZONE +STATUS +STATE +HEARTBEAT +VCPUS/);
    expect(column(listed, 'node-a')).toBe('3s');
    expect(column(listed, 'node-b')).toBe('7s');
    const unreadable = hostRows([leased], now, { namespace: 'kubenova-system', unreadable: 'forbidden' });
    expect(column(unreadable, 'node-a')).toBe('?');
  });
});
