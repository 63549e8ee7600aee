// host-list, host-show, host-disable and host-enable: ComputeNodes as Nova's `compute service`
// and `hypervisor` commands show them.
import { CoordinationV1Api } from '@kubernetes/client-node';
import { NODE_LEASE_LABEL, nodeLeaseName } from '../common/api/node-lease.js';
import { ZONE_LABEL, type ComputeNode, type Instance, type Migration } from '../common/api/types.js';
import { UserError, describeError, httpStatus } from './errors.js';
import type { IO } from './io.js';
import { age, cell, fields, formatObjects, table, type OutputFormat } from './output.js';
import type { Session } from './session.js';

/** up: its agent posts heartbeats (Ready True); down otherwise; forced-down when an admin said it is dead. */
export function hostState(node: ComputeNode): 'up' | 'down' | 'forced-down' {
  if (node.spec?.forcedDown) return 'forced-down';
  return node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? 'up' : 'down';
}

export const hostStatus = (node: ComputeNode): string => (node.spec?.disabled ? 'disabled' : 'enabled');

/**
 * The node Leases of the agents' namespace, by host: their last renewal is each agent's last
 * heartbeat. A user who may not list Leases there still gets the rest of the listing.
 */
export type NodeLeasesView =
  { namespace: string; renewals: ReadonlyMap<string, string> } | { namespace: string; unreadable: string };

/**
 * The HEARTBEAT cell: the age of the host's node Lease renewal; with no Lease (an agent that
 * heartbeats by status) the age of its last status report; `?` when the Leases cannot be read.
 */
function heartbeatCell(node: ComputeNode, leases: NodeLeasesView | undefined, now: Date): string {
  if (leases && 'unreadable' in leases) return '?';
  const renewed = leases?.renewals.get(nodeLeaseName(node.metadata.name));
  if (renewed) return age(renewed, now);
  return node.status?.heartbeatTime ? age(node.status.heartbeatTime, now) : '-';
}

/** One row per host; VCPUS, MEMORY and DISK are allocated/allocatable as the agent summarises them. */
export function hostRows(nodes: readonly ComputeNode[], now: Date, leases?: NodeLeasesView): string {
  const rows = [...nodes]
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    .map((n) => {
      const u = n.status?.usage ?? {};
      return [
        n.metadata.name,
        cell(n.metadata.labels?.[ZONE_LABEL]),
        hostStatus(n),
        hostState(n),
        heartbeatCell(n, leases, now),
        cell(u.vcpus),
        cell(u.memory),
        cell(u.disk),
        String(n.status?.claims?.length ?? 0),
        cell(n.status?.driver),
        age(n.metadata.creationTimestamp, now),
      ];
    });
  return table(
    ['NAME', 'ZONE', 'STATUS', 'STATE', 'HEARTBEAT', 'VCPUS', 'MEMORY', 'DISK', 'CLAIMS', 'DRIVER', 'AGE'],
    rows,
  );
}

export async function getHost(session: Session, name: string): Promise<ComputeNode> {
  const node = await session.kube.computeNodes.get({ name });
  if (!node) throw new UserError(`host ${name} not found (see: kubectl nova host-list)`);
  return node;
}

export async function hostList(
  session: Session,
  io: IO,
  opts: { output?: OutputFormat; agentNamespace: string },
): Promise<void> {
  const nodes = (await session.kube.computeNodes.list()).items;
  if (opts.output) return io.out(formatObjects(nodes, opts.output));
  if (nodes.length === 0) return io.err('No hosts found: no node agent has registered.\n');
  const leases = await listNodeLeases(session, opts.agentNamespace);
  io.out(hostRows(nodes, io.now(), leases));
  if ('unreadable' in leases) {
    io.err(
      `HEARTBEAT unknown (?): cannot list the node Leases in namespace ${leases.namespace}: ${leases.unreadable} ` +
        '(--agent-namespace names where the node agents run)\n',
    );
  }
}

/** The node Leases (carrying the node-Lease label, as for the operator) of the agents' namespace. */
export async function listNodeLeases(session: Session, namespace: string): Promise<NodeLeasesView> {
  try {
    const list = await session.kc
      .makeApiClient(CoordinationV1Api)
      .listNamespacedLease({ namespace, labelSelector: NODE_LEASE_LABEL });
    const renewals = new Map<string, string>();
    for (const lease of list.items) {
      const renewed = lease.spec?.renewTime;
      if (lease.metadata?.name && renewed) renewals.set(lease.metadata.name, new Date(renewed).toISOString());
    }
    return { namespace, renewals };
  } catch (err) {
    return { namespace, unreadable: describeError(err) };
  }
}

/**
 * What the host's node Lease says about its agent's last heartbeat: the renewal, none (an agent
 * that reports by status only), or why it could not be read.
 */
export type NodeLeaseView =
  | { namespace: string; renewTime: string }
  | { namespace: string; missing: true }
  | { namespace: string; unreadable: string };

export interface HostShowInput {
  node: ComputeNode;
  instances: readonly Instance[];
  migrations: readonly Migration[];
  now: Date;
  lease?: NodeLeaseView;
}

/** The Heartbeat line: the Lease renewal when there is one, else why the status is all there is. */
function heartbeatLine(node: ComputeNode, lease: NodeLeaseView | undefined, now: Date): string | undefined {
  if (!lease) return undefined;
  const where = `${lease.namespace}/${nodeLeaseName(node.metadata.name)}`;
  if ('renewTime' in lease) return `${age(lease.renewTime, now)} ago (node Lease ${where})`;
  if ('missing' in lease) return `- (no node Lease ${where}: the agent heartbeats by status; see Reported)`;
  return `unknown (cannot read node Lease ${where}: ${lease.unreadable})`;
}

const RESOURCES = [
  ['vcpus', 'vcpus', 'cpu', ''],
  ['memoryMiB', 'memoryMiB', 'memory', ' MiB'],
  ['diskGiB', 'diskGiB', 'disk', ' GiB'],
] as const;

export function renderHost({ node, instances, migrations, now, lease }: HostShowInput): string {
  const spec = node.spec ?? {};
  const s = node.status ?? {};
  const ready = s.conditions?.find((c) => c.type === 'Ready');
  const heartbeat = heartbeatLine(node, lease, now);
  const out: string[] = [];
  const labels = Object.entries(node.metadata.labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  out.push(
    fields([
      ['Name', node.metadata.name],
      ['Zone', node.metadata.labels?.[ZONE_LABEL] ?? '-'],
      ['Status', spec.disabled ? `disabled${spec.disabledReason ? ` (${spec.disabledReason})` : ''}` : 'enabled'],
      [
        'State',
        `${hostState(node)}${ready ? ` (Ready ${ready.status} since ${age(ready.lastTransitionTime, now)} ago: ${ready.reason})` : ''}`,
      ],
      // The agent's heartbeats renew its node Lease; the status carries one at each report.
      ...(heartbeat === undefined ? [] : [['Heartbeat', heartbeat] as [string, string]]),
      ['Reported', s.heartbeatTime ? `${age(s.heartbeatTime, now)} ago` : '-'],
      ['Driver', s.driver ?? '-'],
      ['Labels', labels || '-'],
    ]).trimEnd(),
  );
  out.push('Resources:');
  const rows = RESOURCES.map(([key, reservedKey, ratioKey, unit]) => {
    const cap = s.capacity?.[key];
    const alloc = s.allocatable?.[key];
    const used = s.allocated?.[key] ?? 0;
    return [
      key,
      cap === undefined ? '-' : `${cap}${unit}`,
      `${spec.reserved?.[reservedKey] ?? (key === 'memoryMiB' ? 512 : 0)}${unit}`,
      String(spec.allocationRatio?.[ratioKey] ?? (key === 'vcpus' ? 4 : 1)),
      alloc === undefined ? '-' : `${alloc}${unit}`,
      `${used}${unit}`,
      alloc === undefined ? '-' : `${alloc - used}${unit}`,
    ];
  });
  out.push(indent(table(['RESOURCE', 'CAPACITY', 'RESERVED', 'RATIO', 'ALLOCATABLE', 'ALLOCATED', 'FREE'], rows)));
  out.push('Claims:');
  const claims = s.claims ?? [];
  out.push(
    claims.length
      ? indent(
          table(
            ['INSTANCE', 'KIND', 'VCPUS', 'MEMORY (MiB)', 'DISK (GiB)', 'AGE'],
            claims.map((c) => [
              c.instance ?? c.consumer,
              c.kind,
              String(c.vcpus),
              String(c.memoryMiB),
              String(c.diskGiB),
              c.createdAt ? age(c.createdAt, now) : '-',
            ]),
          ),
        )
      : '  <none>',
  );
  out.push(`Instances (${instances.length}):`);
  out.push(
    instances.length
      ? indent(
          table(
            ['NAMESPACE', 'NAME', 'STATUS', 'TASK', 'FLAVOR'],
            instances.map((i) => [
              i.metadata.namespace ?? '',
              i.metadata.name,
              i.status?.vmState ?? '-',
              cell(i.status?.taskState),
              i.status?.flavor?.name ?? i.spec.flavor,
            ]),
          ),
        )
      : '  <none>',
  );
  const moving = migrations.filter(
    (m) =>
      (m.status?.sourceHost === node.metadata.name || m.status?.destHost === node.metadata.name) &&
      !['confirmed', 'reverted', 'error'].includes(m.status?.status ?? ''),
  );
  if (moving.length) {
    out.push('Migrations in progress:');
    out.push(
      indent(
        table(
          ['NAMESPACE', 'NAME', 'INSTANCE', 'STATUS', 'SOURCE', 'DEST'],
          moving.map((m) => [
            m.metadata.namespace ?? '',
            m.metadata.name,
            m.spec.instance,
            m.status?.status ?? '-',
            cell(m.status?.sourceHost),
            cell(m.status?.destHost),
          ]),
        ),
      ),
    );
  }
  return out.join('\n').trimEnd() + '\n';
}

const indent = (text: string) =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');

/**
 * The host's node Lease in the agents' namespace. Only a Lease carrying the node-Lease label
 * counts, as for the operator; a user who may not read Leases there still gets the rest.
 */
export async function readNodeLease(session: Session, host: string, namespace: string): Promise<NodeLeaseView> {
  try {
    const lease = await session.kc
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: nodeLeaseName(host), namespace });
    const renewed = lease.spec?.renewTime;
    if (lease.metadata?.labels?.[NODE_LEASE_LABEL] === undefined || !renewed) return { namespace, missing: true };
    return { namespace, renewTime: new Date(renewed).toISOString() };
  } catch (err) {
    if (httpStatus(err) === 404) return { namespace, missing: true };
    return { namespace, unreadable: describeError(err) };
  }
}

export async function hostShow(
  session: Session,
  io: IO,
  name: string,
  opts: { output?: OutputFormat; agentNamespace: string },
): Promise<void> {
  const node = await getHost(session, name);
  if (opts.output) return io.out(formatObjects(node, opts.output));
  const [instances, migrations, lease] = await Promise.all([
    session.kube.instances.list().then((l) => l.items.filter((i) => i.status?.host === name)),
    session.kube.migrations.list().then((l) => l.items),
    readNodeLease(session, name, opts.agentNamespace),
  ]);
  io.out(renderHost({ node, instances, migrations, now: io.now(), lease }));
}

export async function hostDisable(session: Session, io: IO, name: string, reason: string): Promise<void> {
  if (!reason.trim()) throw new UserError('--reason must say why the host is disabled');
  await getHost(session, name);
  await session.kube.computeNodes.patch({ name }, { spec: { disabled: true, disabledReason: reason } });
  io.out(
    `host/${name} disabled (${reason}): no new instance lands there; the ones running stay ` +
      `(move them with: kubectl nova drain ${name})\n`,
  );
}

export async function hostEnable(session: Session, io: IO, name: string): Promise<void> {
  await getHost(session, name);
  await session.kube.computeNodes.patch({ name }, { spec: { disabled: false, disabledReason: null } });
  io.out(`host/${name} enabled\n`);
}
