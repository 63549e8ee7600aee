// Objects for the plugin's unit tests, with only the fields a test cares about.
import type { CoreV1Event } from '@kubernetes/client-node';
import type { ComputeNode, Instance, Migration } from '../common/api/types.js';
import type { IO } from './io.js';

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export function anInstance(
  name: string,
  status: Instance['status'] = {},
  spec: Partial<Instance['spec']> = {},
  ns = 'default',
): Instance {
  return {
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name, namespace: ns, uid: `uid-${name}`, creationTimestamp: new Date('2026-01-01T00:00:00Z') },
    spec: { flavor: 'm1.small', image: 'cirros', ...spec },
    status,
  };
}

export function aMigration(
  name: string,
  instance: string,
  status: Migration['status'] = {},
  spec: Partial<Migration['spec']> = {},
  created = '2026-01-01T00:00:00Z',
): Migration {
  return {
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Migration',
    metadata: { name, namespace: 'default', uid: `uid-${name}`, creationTimestamp: new Date(created) },
    spec: { instance, ...spec },
    status,
  };
}

export function aNode(
  name: string,
  spec: ComputeNode['spec'] = {},
  status: DeepPartial<ComputeNode['status']> = {},
): ComputeNode {
  return {
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'ComputeNode',
    metadata: {
      name,
      labels: { 'topology.kubernetes.io/zone': 'az1' },
      creationTimestamp: new Date('2026-01-01T00:00:00Z'),
    },
    spec,
    status: status as ComputeNode['status'],
  };
}

export function anEvent(reason: string, message: string, at: string, kind = 'Instance', name = 'web-1'): CoreV1Event {
  return {
    metadata: { name: `${name}.${reason}` },
    involvedObject: { kind, name },
    reason,
    message,
    type: 'Normal',
    lastTimestamp: new Date(at),
  };
}

/** An IO that records what is printed and whose clock moves only when slept. */
export function recordingIO(start = new Date('2026-01-01T00:10:00Z')): IO & { stdout: string; stderr: string } {
  let now = start.getTime();
  const io = {
    stdout: '',
    stderr: '',
    out(text: string) {
      io.stdout += text;
    },
    err(text: string) {
      io.stderr += text;
    },
    now: () => new Date(now),
    sleep: async (ms: number) => {
      now += ms;
    },
  };
  return io;
}
