// list, show, boot, start and stop: the Instance itself.
import type { CoreV1Event } from '@kubernetes/client-node';
import { checkInstanceState } from '../common/api/instance-actions.js';
import { API_VERSION, type Instance, type Migration, type ServerGroup } from '../common/api/types.js';
import { renderInstance, stateText } from './describe.js';
import { UserError, httpStatus, notFound } from './errors.js';
import type { IO } from './io.js';
import { findCurrentMigration, getInstance } from './migrations.js';
import { age, cell, formatObjects, table, type OutputFormat } from './output.js';
import type { Session } from './session.js';

const ready = (inst: Instance) => inst.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown';

export function instanceRows(items: readonly Instance[], now: Date, withNamespace: boolean): string {
  const headers = ['NAME', 'STATUS', 'TASK', 'FLAVOR', 'HOST', 'POWER', 'READY', 'AGE'];
  const rows = [...items]
    .sort(
      (a, b) =>
        (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') ||
        a.metadata.name.localeCompare(b.metadata.name),
    )
    .map((i) => {
      const s = i.status ?? {};
      const flavor = s.flavor && s.flavor.name !== i.spec.flavor ? `${s.flavor.name}->${i.spec.flavor}` : i.spec.flavor;
      const row = [
        i.metadata.name,
        s.vmState ?? 'pending',
        cell(s.taskState),
        flavor,
        cell(s.host),
        cell(s.powerState),
        ready(i),
        age(i.metadata.creationTimestamp, now),
      ];
      return withNamespace ? [i.metadata.namespace ?? '', ...row] : row;
    });
  return table(withNamespace ? ['NAMESPACE', ...headers] : headers, rows);
}

export interface ListOptions {
  allNamespaces?: boolean;
  output?: OutputFormat;
  host?: string;
}

export async function list(session: Session, io: IO, opts: ListOptions): Promise<void> {
  const namespace = opts.allNamespaces ? undefined : session.namespace;
  let items = (await session.kube.instances.list(namespace)).items;
  if (opts.host) items = items.filter((i) => i.status?.host === opts.host);
  if (opts.output) return io.out(formatObjects(items, opts.output));
  if (items.length === 0) {
    io.err(opts.allNamespaces ? 'No instances found.\n' : `No instances found in namespace ${session.namespace}.\n`);
    return;
  }
  io.out(instanceRows(items, io.now(), Boolean(opts.allNamespaces)));
}

async function eventsAbout(session: Session, namespace: string, kind: string, name: string, uid?: string) {
  const res = await session.core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}`,
  });
  return res.items.filter((e) => !uid || !e.involvedObject.uid || e.involvedObject.uid === uid);
}

export interface ShowOptions {
  output?: OutputFormat;
  events?: number;
}

export async function show(session: Session, io: IO, name: string, opts: ShowOptions): Promise<void> {
  const ns = session.namespace;
  const inst = await getInstance(session, name);
  if (opts.output) return io.out(formatObjects(inst, opts.output));
  const migrations = (await session.kube.migrations.list(ns)).items;
  const migration: Migration | undefined = findCurrentMigration(inst, migrations);
  let group: ServerGroup | undefined;
  if (inst.spec.serverGroup)
    group = await session.kube.serverGroups.get({ namespace: ns, name: inst.spec.serverGroup });
  let events: CoreV1Event[] = [];
  try {
    events = await eventsAbout(session, ns, 'Instance', name, inst.metadata.uid);
    if (migration)
      events.push(...(await eventsAbout(session, ns, 'Migration', migration.metadata.name, migration.metadata.uid)));
  } catch (err) {
    if (httpStatus(err) !== 403) throw err;
    io.err(`warning: not allowed to list Events in namespace ${ns}; showing none\n`);
  }
  io.out(renderInstance({ instance: inst, migration, group, events, now: io.now(), eventLimit: opts.events ?? 10 }));
}

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A Kubernetes object name check with a message users can act on. */
export function checkName(what: string, name: string): void {
  if (name.length > 253 || !NAME.test(name))
    throw new UserError(
      `${what} name ${JSON.stringify(name)} is not valid: lower-case letters, digits, "-" and ".", starting and ending with a letter or digit`,
    );
}

export interface BootOptions {
  flavor: string;
  image: string;
  az?: string;
  host?: string;
  serverGroup?: string;
  stopped?: boolean;
  evacuationPolicy?: 'Manual' | 'Automatic';
  wait?: boolean;
  timeoutMs: number;
}

export function instanceObject(namespace: string, name: string, opts: BootOptions): Instance {
  return {
    apiVersion: API_VERSION,
    kind: 'Instance',
    metadata: { name, namespace },
    spec: {
      flavor: opts.flavor,
      image: opts.image,
      powerState: opts.stopped ? 'Stopped' : 'Running',
      ...(opts.az ? { availabilityZone: opts.az } : {}),
      ...(opts.host ? { host: opts.host } : {}),
      ...(opts.serverGroup ? { serverGroup: opts.serverGroup } : {}),
      ...(opts.evacuationPolicy ? { evacuationPolicy: opts.evacuationPolicy } : {}),
    },
  };
}

export async function boot(session: Session, io: IO, name: string, opts: BootOptions): Promise<void> {
  const ns = session.namespace;
  checkName('instance', name);
  checkName('flavor', opts.flavor);
  if (!opts.image.trim()) throw new UserError('--image must not be empty');
  const flavor = await session.kube.flavors.get({ name: opts.flavor }).catch((err: unknown) => {
    if (notFound(err)) return undefined;
    return null; // not allowed to read Flavors: the operator checks it
  });
  if (flavor === undefined) throw new UserError(`flavor ${opts.flavor} does not exist (see: kubectl nova flavor-list)`);
  if (flavor?.spec.disabled) throw new UserError(`flavor ${opts.flavor} is disabled: no new instances may use it`);
  if (opts.serverGroup && !(await session.kube.serverGroups.get({ namespace: ns, name: opts.serverGroup })))
    throw new UserError(`server group ${opts.serverGroup} not found in namespace ${ns}`);
  try {
    await session.kube.instances.create(instanceObject(ns, name, opts));
  } catch (err) {
    if (httpStatus(err) === 409) throw new UserError(`instance ${name} already exists in namespace ${ns}`);
    throw err;
  }
  io.out(`instance/${name} created\n`);
  if (!opts.wait) return;
  const target = opts.stopped ? 'stopped' : 'active';
  const inst = await followInstance(session, io, name, (i) => i.status?.vmState === target && !i.status.taskState, {
    timeoutMs: opts.timeoutMs,
    what: target,
  });
  io.out(`instance/${name} ${target} on ${inst.status?.host ?? '?'}\n`);
}

/**
 * Polls an Instance until `done`, printing each state it passes through. An instance in error,
 * or a fault newer than `since`, ends the wait as a failure.
 */
export async function followInstance(
  session: Session,
  io: IO,
  name: string,
  done: (i: Instance) => boolean,
  opts: { timeoutMs: number; what: string; since?: Date; intervalMs?: number },
): Promise<Instance> {
  const deadline = io.now().getTime() + opts.timeoutMs;
  let last = '';
  while (true) {
    const inst = await getInstance(session, name);
    const s = inst.status ?? {};
    const line = `${stateText(inst)}${s.host ? ` on ${s.host}` : ''}`;
    if (line !== last) {
      io.out(`instance/${name}: ${line}\n`);
      last = line;
    }
    if (done(inst)) return inst;
    const fault = s.fault;
    const freshFault = fault && (!opts.since || (fault.time && new Date(fault.time) >= opts.since));
    if (s.vmState === 'error' || (freshFault && !s.taskState && opts.since)) {
      throw new UserError(
        `instance ${name} did not become ${opts.what}${fault ? `: ${fault.reason}: ${fault.message}` : ` (it is ${stateText(inst)})`}` +
          `\nsee: kubectl nova show ${name}`,
      );
    }
    if (io.now().getTime() >= deadline)
      throw new UserError(
        `timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for instance ${name} to be ${opts.what} (it is ${stateText(inst)})`,
      );
    await io.sleep(opts.intervalMs ?? 500);
  }
}

export interface PowerOptions {
  wait?: boolean;
  timeoutMs: number;
}

/** start / stop: the desired power state; the agent of the instance's host carries it out. */
export async function power(
  session: Session,
  io: IO,
  name: string,
  action: 'start' | 'stop',
  opts: PowerOptions,
): Promise<void> {
  const ns = session.namespace;
  const inst = await getInstance(session, name);
  const wanted = action === 'start' ? 'Running' : 'Stopped';
  const target = action === 'start' ? 'active' : 'stopped';
  const s = inst.status ?? {};
  if ((inst.spec.powerState ?? 'Running') === wanted && s.vmState === target && !s.taskState) {
    io.out(`instance/${name} is already ${target}\n`);
    return;
  }
  if ((inst.spec.powerState ?? 'Running') !== wanted) {
    const allowed = checkInstanceState(inst, action);
    // Busy with a task: the new desired state waits for it. Any other refusal is final.
    if (!allowed.ok && !s.taskState && !s.migration) throw new UserError(allowed.message);
    const since = new Date(io.now().getTime() - 1000);
    await session.kube.instances.patch({ namespace: ns, name }, { spec: { powerState: wanted } });
    io.out(`instance/${name}: ${action} requested${allowed.ok ? '' : ` (${allowed.message})`}\n`);
    if (!opts.wait) return;
    await followInstance(session, io, name, (i) => i.status?.vmState === target && !i.status.taskState, {
      timeoutMs: opts.timeoutMs,
      what: target,
      since,
    });
  } else {
    io.out(`instance/${name}: ${action} already requested\n`);
    if (!opts.wait) return;
    await followInstance(session, io, name, (i) => i.status?.vmState === target && !i.status.taskState, {
      timeoutMs: opts.timeoutMs,
      what: target,
    });
  }
  io.out(`instance/${name} ${target}\n`);
}
