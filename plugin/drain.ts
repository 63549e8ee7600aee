// `kubectl nova drain HOST`: disable the host, then cold-migrate every instance off it, each
// migration confirmed as soon as it finishes (Nova's host-servers-migrate followed by
// resize-confirm). The scheduler picks each destination with its filters, server-group
// (anti-)affinity included; drain never moves two members of one server group at the same
// time, so each placement sees where the member before it went.
import { checkInstanceState } from '../common/api/instance-actions.js';
import type { Instance, Migration } from '../common/api/types.js';
import { UserError } from './errors.js';
import { getHost } from './hosts.js';
import type { IO } from './io.js';
import { followMigration, migrationObject, waitInstanceSettled, type WaitOptions } from './migrations.js';
import type { Session } from './session.js';

export interface DrainPlan {
  /** Instances to move, in order (namespace, then name). */
  move: Instance[];
  /** Instances left where they are, and why. */
  skip: { instance: Instance; why: string }[];
}

const key = (i: Instance) => `${i.metadata.namespace ?? 'default'}/${i.metadata.name}`;
const TERMINAL = ['confirmed', 'reverted', 'error'];

/** Which instances a drain of `host` moves, and which it cannot, saying why (pure). */
export function planDrain(host: string, instances: readonly Instance[], migrations: readonly Migration[]): DrainPlan {
  const plan: DrainPlan = { move: [], skip: [] };
  const sorted = [...instances].sort((a, b) => key(a).localeCompare(key(b)));
  for (const inst of sorted) {
    const s = inst.status ?? {};
    const ns = inst.metadata.namespace ?? 'default';
    const live = migrations.find(
      (m) =>
        (m.metadata.namespace ?? 'default') === ns &&
        m.spec.instance === inst.metadata.name &&
        !TERMINAL.includes(m.status?.status ?? '') &&
        (m.status?.sourceHost === host || m.status?.destHost === host || s.host === host),
    );
    if (s.host !== host) {
      // Not on the host yet, but on its way there: the drain cannot stop it.
      if (live && live.status?.destHost === host)
        plan.skip.push({
          instance: inst,
          why: `migration ${live.metadata.name} is moving it here (${live.status?.status}); revert it or drain again after it ends`,
        });
      continue;
    }
    if (inst.metadata.deletionTimestamp) {
      plan.skip.push({ instance: inst, why: 'it is being deleted' });
      continue;
    }
    const allowed = checkInstanceState(inst, 'migrate');
    if (!allowed.ok) {
      plan.skip.push({ instance: inst, why: allowed.message });
      continue;
    }
    plan.move.push(inst);
  }
  return plan;
}

/** The server group an instance belongs to, as a key unique across namespaces. */
export const groupOf = (i: Instance): string | undefined =>
  i.spec.serverGroup ? `${i.metadata.namespace ?? 'default'}/${i.spec.serverGroup}` : undefined;

/**
 * The index of the next instance that may start: the first whose server group has no member
 * moving now. -1 when every waiting instance has a group member in flight.
 */
export function nextToStart(queue: readonly Instance[], busyGroups: ReadonlySet<string>): number {
  return queue.findIndex((i) => {
    const g = groupOf(i);
    return g === undefined || !busyGroups.has(g);
  });
}

export interface DrainOptions extends WaitOptions {
  reason?: string;
  concurrency: number;
  dryRun?: boolean;
}

export async function drain(session: Session, io: IO, host: string, opts: DrainOptions): Promise<void> {
  if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1)
    throw new UserError('--concurrency must be a whole number of at least 1');
  const node = await getHost(session, host);
  // All namespaces: a host carries every tenant's instances. -n limits it to one namespace.
  const namespace = session.namespaceGiven ? session.namespace : undefined;
  const where = namespace ? ` in namespace ${namespace}` : '';
  const [instances, migrations] = await Promise.all([
    session.kube.instances.list(namespace).then((l) => l.items),
    session.kube.migrations.list(namespace).then((l) => l.items),
  ]);
  const plan = planDrain(host, instances, migrations);
  if (opts.dryRun) {
    io.out(`drain ${host}${where} would disable it and move ${plan.move.length} instance(s):\n`);
    for (const i of plan.move)
      io.out(`  ${key(i)} (${i.status?.vmState}, ${i.status?.flavor?.name ?? i.spec.flavor})\n`);
    for (const s of plan.skip) io.out(`  ${key(s.instance)} would stay: ${s.why}\n`);
    return;
  }
  if (!node.spec?.disabled) {
    const reason = opts.reason ?? 'drained with kubectl nova drain';
    await session.kube.computeNodes.patch({ name: host }, { spec: { disabled: true, disabledReason: reason } });
    io.out(`host/${host} disabled (${reason})\n`);
  } else {
    io.out(`host/${host} is already disabled${node.spec.disabledReason ? ` (${node.spec.disabledReason})` : ''}\n`);
  }
  for (const s of plan.skip) io.out(`${key(s.instance)}: not moved: ${s.why}\n`);
  const total = plan.move.length;
  io.out(`moving ${total} instance(s) off ${host}${where}, ${opts.concurrency} at a time\n`);

  const queue = [...plan.move];
  const busy = new Set<string>();
  const failed: string[] = [];
  let moved = 0;
  let started = 0;
  const running = new Set<Promise<void>>();
  const move = async (inst: Instance, n: number): Promise<void> => {
    const prefix = `[${n}/${total}] ${key(inst)}: `;
    const ns = inst.metadata.namespace ?? 'default';
    try {
      const mig = await session.kube.migrations.create(
        migrationObject(ns, inst.metadata.name, 'drain', { confirm: true }),
      );
      io.out(`${prefix}migration/${mig.metadata.name} created\n`);
      const done = await followMigration(session, io, { namespace: ns, name: mig.metadata.name }, 'ended', {
        ...opts,
        prefix,
      });
      const settled = await waitInstanceSettled(session, io, done, opts);
      moved++;
      io.out(`${prefix}now on ${settled.status?.host ?? '?'}\n`);
    } catch (err) {
      failed.push(key(inst));
      io.out(`${prefix}FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  };
  while (queue.length > 0 || running.size > 0) {
    let i: number;
    while (running.size < opts.concurrency && (i = nextToStart(queue, busy)) >= 0) {
      const inst = queue.splice(i, 1)[0]!;
      const group = groupOf(inst);
      if (group) busy.add(group);
      const p: Promise<void> = move(inst, ++started).finally(() => {
        if (group) busy.delete(group);
        running.delete(p);
      });
      running.add(p);
    }
    if (running.size > 0) await Promise.race(running);
  }

  const left = (await session.kube.instances.list(namespace)).items.filter((i) => i.status?.host === host);
  io.out(
    `drain ${host}: ${moved} moved, ${failed.length} failed, ${plan.skip.length} not movable; ` +
      `${left.length} instance(s)${where} still on it\n`,
  );
  if (failed.length > 0 || left.length > 0)
    throw new UserError(
      `host ${host} is not drained: ${left.map(key).join(', ') || failed.join(', ')} ` +
        `${left.length === 1 ? 'is' : 'are'} still there (see: kubectl nova host-show ${host})`,
    );
  io.out(`host/${host} drained\n`);
}
