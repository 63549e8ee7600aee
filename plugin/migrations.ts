// resize, resize-confirm, resize-revert, migrate and evacuate: Nova's server actions as the
// kubenova API takes them (a new spec.flavor, a Migration, a decision on it), and waiting for
// what the user asked to wait for, printing each phase as the Migration reaches it.
import { checkInstanceState } from '../common/api/instance-actions.js';
import { API_VERSION, type Instance, type Migration, type MigrationPhase } from '../common/api/types.js';
import { flavorText, migrationLine } from './describe.js';
import { UserError, notFound } from './errors.js';
import type { IO } from './io.js';
import type { Session } from './session.js';

export type Decision = 'Confirm' | 'Revert';
const TERMINAL: readonly MigrationPhase[] = ['confirmed', 'reverted', 'error'];
export const INSTANCE_LABEL = 'compute.kubenova.io/instance';

const created = (m: Migration) => new Date(m.metadata.creationTimestamp ?? 0).getTime();

/**
 * The Migration a confirm or revert is about: the one the instance names as its current
 * migration (status.migration), else the newest of its Migrations that has finished and awaits
 * a decision.
 */
export function findCurrentMigration(inst: Instance, migrations: readonly Migration[]): Migration | undefined {
  const own = migrations.filter((m) => m.spec.instance === inst.metadata.name);
  const named = inst.status?.migration;
  if (named) {
    const current = own.find((m) => m.metadata.name === named);
    if (current) return current;
  }
  return own
    .filter((m) => m.status?.status === 'finished' && !m.spec.decision && !m.metadata.deletionTimestamp)
    .sort((a, b) => created(b) - created(a))[0];
}

export type DecisionCheck = { ok: true; already?: boolean; note?: string } | { ok: false; message: string };

/** Whether `decision` may be written on `mig` now, as the API (a decision is final) and the lifecycle allow. */
export function checkDecision(mig: Migration, decision: Decision): DecisionCheck {
  const phase = mig.status?.status;
  const name = mig.metadata.name;
  if (mig.spec.decision === decision) return { ok: true, already: true };
  if (mig.spec.decision)
    return { ok: false, message: `migration ${name} is already decided (${mig.spec.decision}); a decision is final` };
  if (mig.metadata.deletionTimestamp)
    return { ok: false, message: `migration ${name} is being cancelled (deleted); it rolls back by itself` };
  if (phase && TERMINAL.includes(phase))
    return { ok: false, message: `migration ${name} has already ended (${phase})` };
  if (phase !== 'finished')
    return {
      ok: true,
      note: `migration ${name} is ${phase ?? 'not started yet'}: the ${decision.toLowerCase()} takes effect once it has finished`,
    };
  return { ok: true };
}

/** What waiting can be for: the operator taking the request, the move done (awaiting a decision), or the end. */
export type WaitGoal = 'started' | 'finished' | 'ended';

export type Outcome =
  { state: 'waiting' } | { state: 'done'; phase: MigrationPhase } | { state: 'failed'; message: string };

const conditionTrue = (m: Migration, type: string) =>
  (m.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');

/** Where a Migration stands against a goal. A Failed condition or the error phase is a failure whatever the goal. */
export function migrationOutcome(mig: Migration, goal: WaitGoal): Outcome {
  const phase = mig.status?.status;
  if (phase === 'error' || conditionTrue(mig, 'Failed')) {
    const f = mig.status?.fault;
    return {
      state: 'failed',
      message: `migration ${mig.metadata.name} failed${f ? `: ${f.reason}: ${f.message}` : ''}`,
    };
  }
  if (!phase) return { state: 'waiting' };
  if (TERMINAL.includes(phase) || conditionTrue(mig, 'Complete')) return { state: 'done', phase };
  if (goal === 'started') return { state: 'done', phase };
  if (goal === 'finished' && phase === 'finished') return { state: 'done', phase };
  return { state: 'waiting' };
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Put before each progress line (drain numbers its instances). */
  prefix?: string;
}

/**
 * Polls a Migration until it reaches `goal`, printing each phase it enters. Resolves with the
 * Migration; a failure or a timeout is a UserError saying where it stands.
 */
export async function followMigration(
  session: Session,
  io: IO,
  ref: { namespace: string; name: string },
  goal: WaitGoal,
  opts: WaitOptions,
): Promise<Migration> {
  const deadline = io.now().getTime() + opts.timeoutMs;
  let last = '';
  let mig: Migration | undefined;
  while (true) {
    mig = await session.kube.migrations.get(ref);
    if (!mig) throw new UserError(`migration ${ref.name} is gone (deleted, or its instance was)`);
    const line = migrationLine(mig);
    if (mig.status?.status && line !== last) {
      io.out(`${opts.prefix ?? ''}${line}\n`);
      last = line;
    }
    const outcome = migrationOutcome(mig, goal);
    if (outcome.state === 'failed') throw new UserError(outcome.message);
    if (outcome.state === 'done') return mig;
    if (io.now().getTime() >= deadline) {
      throw new UserError(
        `timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for migration ${ref.name} ` +
          `(now ${mig.status?.status ?? 'not started'}); it goes on: kubectl nova show ${mig.spec.instance}`,
      );
    }
    await io.sleep(opts.intervalMs ?? 500);
  }
}

/**
 * Whether an instance shows the outcome of its migration: the Migration's phase is written
 * first, then the instance's task ends (finished: resized, still naming the migration; an end:
 * the migration no longer named). After a revert the operator also sets spec.flavor back when
 * it settles the Migration; that is bookkeeping, not waited for.
 */
export function instanceSettled(inst: Instance, mig: Migration): boolean {
  const s = inst.status ?? {};
  if (s.taskState) return false;
  if (mig.status?.status === 'finished') return s.migration === mig.metadata.name && s.vmState === 'resized';
  return s.migration !== mig.metadata.name;
}

/** Waits until the instance shows what its migration did (see instanceSettled). */
export async function waitInstanceSettled(
  session: Session,
  io: IO,
  mig: Migration,
  opts: WaitOptions,
): Promise<Instance> {
  const deadline = io.now().getTime() + opts.timeoutMs;
  while (true) {
    const inst = await getInstance(session, mig.spec.instance, mig.metadata.namespace ?? session.namespace);
    if (instanceSettled(inst, mig)) return inst;
    if (io.now().getTime() >= deadline)
      throw new UserError(
        `timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for instance ${mig.spec.instance} to settle ` +
          `after migration ${mig.metadata.name} (${mig.status?.status})`,
      );
    await io.sleep(opts.intervalMs ?? 300);
  }
}

export async function getInstance(session: Session, name: string, namespace = session.namespace): Promise<Instance> {
  const inst = await session.kube.instances.get({ namespace, name });
  if (!inst) throw new UserError(`instance ${name} not found in namespace ${namespace}`);
  return inst;
}

async function listMigrations(session: Session, namespace: string): Promise<Migration[]> {
  return (await session.kube.migrations.list(namespace)).items;
}

export interface ResizeOptions extends WaitOptions {
  wait?: boolean;
}

/** Sets spec.flavor; the operator turns it into Migration <instance>-resize-<generation>, or refuses it. */
export async function resize(
  session: Session,
  io: IO,
  name: string,
  flavor: string,
  opts: ResizeOptions,
): Promise<void> {
  const ns = session.namespace;
  const inst = await getInstance(session, name);
  if (inst.status?.flavor?.name === flavor && !inst.status.migration)
    throw new UserError(`instance ${name} already has flavor ${flavor}`);
  const wanted = await session.kube.flavors.get({ name: flavor }).catch((err: unknown) => {
    if (notFound(err)) return undefined;
    return null; // not allowed to read Flavors: the operator checks it
  });
  if (wanted === undefined) throw new UserError(`flavor ${flavor} does not exist (see: kubectl nova flavor-list)`);
  if (wanted?.spec.disabled) throw new UserError(`flavor ${flavor} is disabled: it cannot be resized to`);
  const allowed = checkInstanceState(inst, 'resize');
  if (!allowed.ok) throw new UserError(allowed.message);
  const patched = await session.kube.instances.patch(
    { namespace: ns, name },
    // The API server refuses a flavor change while a task runs (a CEL rule), whatever was read above.
    { spec: { flavor } },
  );
  const generation = patched.metadata.generation ?? 1;
  const migName = `${name}-resize-${generation}`;
  io.out(`instance/${name}: resize to ${flavor} requested (Migration ${migName})\n`);
  // The operator either creates the Migration or records why it refused, for this generation.
  const deadline = io.now().getTime() + opts.timeoutMs;
  while (true) {
    if (await session.kube.migrations.get({ namespace: ns, name: migName })) break;
    const now = await getInstance(session, name);
    if ((now.status?.observedGeneration ?? 0) >= generation) {
      if (await session.kube.migrations.get({ namespace: ns, name: migName })) break;
      if (now.status?.flavor?.name === flavor) throw new UserError(`instance ${name} already has flavor ${flavor}`);
      const f = now.status?.fault;
      throw new UserError(`resize of ${name} to ${flavor} refused${f ? `: ${f.reason}: ${f.message}` : ''}`);
    }
    if (io.now().getTime() >= deadline)
      throw new UserError(
        `timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for the operator to take the resize of ${name}; is it running?`,
      );
    await io.sleep(opts.intervalMs ?? 500);
  }
  const mig = await followMigration(
    session,
    io,
    { namespace: ns, name: migName },
    opts.wait ? 'finished' : 'started',
    opts,
  );
  if (opts.wait) await waitInstanceSettled(session, io, mig, opts);
  reportMove(io, name, mig, opts.wait ?? false);
}

function reportMove(io: IO, instance: string, mig: Migration, waited: boolean): void {
  const s = mig.status ?? {};
  const what = s.type === 'resize' ? `resized to ${s.newFlavor?.name ?? mig.spec.flavor}` : 'migrated';
  if (!waited) {
    io.out(`follow it with: kubectl nova show ${instance}\n`);
    return;
  }
  if (s.status === 'finished')
    io.out(
      `instance/${instance} ${what}: runs on ${s.destHost} with ${flavorText(s.newFlavor) ?? '?'}; ` +
        `${s.sourceHost} keeps the old copy until you decide.\n` +
        `confirm with: kubectl nova resize-confirm ${instance}, or revert with: kubectl nova resize-revert ${instance}\n`,
    );
  else if (s.status === 'confirmed')
    io.out(
      `instance/${instance} ${what} and confirmed: runs on ${s.destHost} with ${flavorText(s.newFlavor) ?? '?'}\n`,
    );
  else io.out(`instance/${instance}: migration ${mig.metadata.name} ended ${s.status}\n`);
}

export interface DecideOptions extends WaitOptions {
  wait?: boolean;
}

/** resize-confirm / resize-revert: the decision on the instance's current migration. */
export async function decide(
  session: Session,
  io: IO,
  name: string,
  decision: Decision,
  opts: DecideOptions,
): Promise<void> {
  const ns = session.namespace;
  const inst = await getInstance(session, name);
  const mig = findCurrentMigration(inst, await listMigrations(session, ns));
  if (!mig)
    throw new UserError(
      `instance ${name} has no migration awaiting a decision (it is ${inst.status?.vmState ?? 'pending'}` +
        `${inst.status?.taskState ? `/${inst.status.taskState}` : ''}); resize or migrate it first`,
    );
  const check = checkDecision(mig, decision);
  if (!check.ok) throw new UserError(check.message);
  const verb = decision === 'Confirm' ? 'confirm' : 'revert';
  if (check.already) io.out(`migration/${mig.metadata.name}: ${verb} was already requested\n`);
  else {
    await session.kube.migrations.patch(
      { namespace: ns, name: mig.metadata.name },
      // A decision is final (a CEL rule): a concurrent different one is refused by the API server.
      { spec: { decision } },
    );
    io.out(`migration/${mig.metadata.name}: ${verb} requested\n`);
  }
  if (check.ok && check.note) io.out(`${check.note}\n`);
  if (!opts.wait) return;
  const done = await followMigration(session, io, { namespace: ns, name: mig.metadata.name }, 'ended', opts);
  await waitInstanceSettled(session, io, done, opts);
  const s = done.status ?? {};
  if (s.status === 'confirmed')
    io.out(`instance/${name}: confirmed; runs on ${s.destHost} with ${s.newFlavor?.name ?? '?'}\n`);
  else if (s.status === 'reverted')
    io.out(`instance/${name}: reverted; runs on ${s.sourceHost} with ${s.oldFlavor?.name ?? '?'} again\n`);
}

export interface MigrateOptions extends WaitOptions {
  host?: string;
  wait?: boolean;
  confirm?: boolean;
}

/** A new Migration for the instance, keeping its flavor (Nova's cold migrate). */
export function migrationObject(
  namespace: string,
  instance: string,
  kind: 'migrate' | 'evacuate' | 'drain',
  opts: { host?: string; confirm?: boolean },
): Migration {
  return {
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name: '', generateName: `${instance}-${kind}-`, namespace, labels: { [INSTANCE_LABEL]: instance } },
    spec: {
      instance,
      ...(opts.host ? { targetHost: opts.host } : {}),
      ...(kind === 'evacuate' ? { type: 'Evacuation' as const } : {}),
      ...(opts.confirm ? { decision: 'Confirm' as const } : {}),
    },
  };
}

async function checkTargetHost(session: Session, host: string, inst: Instance): Promise<void> {
  const node = await session.kube.computeNodes.get({ name: host }).catch((err: unknown) => {
    if (notFound(err)) return undefined;
    return null; // cannot read ComputeNodes: the operator checks it
  });
  if (node === undefined) throw new UserError(`host ${host} does not exist (see: kubectl nova host-list)`);
  if (host === inst.status?.host) throw new UserError(`instance ${inst.metadata.name} already runs on ${host}`);
  if (node?.spec?.disabled)
    throw new UserError(`host ${host} is disabled${node.spec.disabledReason ? ` (${node.spec.disabledReason})` : ''}`);
}

export async function migrate(session: Session, io: IO, name: string, opts: MigrateOptions): Promise<void> {
  const ns = session.namespace;
  const inst = await getInstance(session, name);
  const allowed = checkInstanceState(inst, 'migrate');
  if (!allowed.ok) throw new UserError(allowed.message);
  if (opts.host) await checkTargetHost(session, opts.host, inst);
  const mig = await session.kube.migrations.create(migrationObject(ns, name, 'migrate', opts));
  io.out(`migration/${mig.metadata.name} created: instance ${name} leaves ${inst.status?.host ?? '?'}\n`);
  const goal: WaitGoal = opts.wait ? (opts.confirm ? 'ended' : 'finished') : 'started';
  const done = await followMigration(session, io, { namespace: ns, name: mig.metadata.name }, goal, opts);
  if (opts.wait) await waitInstanceSettled(session, io, done, opts);
  reportMove(io, name, done, opts.wait ?? false);
}

export interface EvacuateOptions extends WaitOptions {
  host?: string;
  wait?: boolean;
}

/** An Evacuation: rebuilt from its image on another host, allowed once its host is forced down. */
export async function evacuate(session: Session, io: IO, name: string, opts: EvacuateOptions): Promise<void> {
  const ns = session.namespace;
  const inst = await getInstance(session, name);
  const host = inst.status?.host;
  if (!host) throw new UserError(`instance ${name} has no host; only an instance placed on a host can be evacuated`);
  const node = await session.kube.computeNodes.get({ name: host }).catch(() => null);
  if (node && !node.spec?.forcedDown)
    throw new UserError(
      `host ${host} of instance ${name} is not forced down. Evacuation rebuilds the instance from its image and ` +
        `loses its disk, so it is allowed only off a dead host: once ${host} is fenced (powered off), run ` +
        `kubectl patch cn ${host} --type merge -p '{"spec":{"forcedDown":true}}'; while it is up, use kubectl nova migrate ${name}`,
    );
  const allowed = checkInstanceState(inst, 'evacuate');
  if (!allowed.ok) throw new UserError(allowed.message);
  if (opts.host) await checkTargetHost(session, opts.host, inst);
  const mig = await session.kube.migrations.create(migrationObject(ns, name, 'evacuate', opts));
  io.out(
    `migration/${mig.metadata.name} created: instance ${name} is rebuilt off ${host} from image ${inst.spec.image}\n`,
  );
  const done = await followMigration(
    session,
    io,
    { namespace: ns, name: mig.metadata.name },
    opts.wait ? 'ended' : 'started',
    opts,
  );
  if (!opts.wait) return;
  const settled = await waitInstanceSettled(session, io, done, opts);
  io.out(`instance/${name} evacuated: runs on ${settled.status?.host ?? '?'}\n`);
}
