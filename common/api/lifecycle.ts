// The Migration lifecycle, stated once. Nova's RPC casts become status writes: whoever owns
// the next step of a phase acts and writes the next phase. The operator, both agent sides,
// the audit and the metrics read this table; each reconciler dispatches through a
// `Record<MigrationPhase, ...>` so the compiler proves every phase is handled, and a unit test
// proves the dispatch tables agree with the owners listed here.
import { MIGRATION_STATUSES } from './schema.js';
import type { MergePatch } from './patch.js';
import type { Migration, MigrationPhase, MigrationStatus, TaskState } from './types.js';

/** Who acts: the operator (conductor) or the agent of the source or destination host. */
export type MigrationRole = 'operator' | 'source' | 'destination';

/** A condition a step sets when done, so the next owner of the same phase knows it may act. */
export const StepDone = {
  SourceCleaned: 'SourceCleaned',
  DestinationCleaned: 'DestinationCleaned',
} as const;
export type StepDone = (typeof StepDone)[keyof typeof StepDone];

export interface PhaseStep {
  owner: MigrationRole;
  /** What the owner does, in Nova's words where there are some. */
  does: string;
  /** The step runs once this earlier step of the same phase has set its condition. */
  after?: StepDone;
  /** The condition this step sets when it is done (when the phase does not change). */
  marks?: StepDone;
}

export interface PhaseRule {
  /** The Instance's taskState while a migration is in this phase ('' once it is over). */
  taskState: TaskState | '';
  terminal: boolean;
  /**
   * Where the user's decision stands: too early (it waits, with an Event), open (acted on now),
   * being carried out, or closed. The instance runs on the destination from 'open' on.
   */
  decision: 'early' | 'open' | 'acting' | 'closed';
  /** The steps of this phase in order; a terminal phase lists the clean-up each side does. */
  steps: readonly PhaseStep[];
  /** The phases it may go to, and who writes each move. */
  next: Partial<Record<MigrationPhase, MigrationRole>>;
  /**
   * The way back when this phase cannot go on (its owner's retry budget or the step deadline
   * runs out, the Migration is deleted, a host is lost): who acts, what they do, and the phase
   * they write. A live phase without one has only forward moves left (it retries, then strands
   * the instance in error with a fault an admin can act on).
   */
  rollback?: { owner: MigrationRole; does: string; to: MigrationPhase };
  /**
   * What the operator does in the place of an agent whose host an admin has forced down
   * (fenced, Nova's forced_down): that host will never act, and whatever it held is cleaned up
   * when its agent returns. A side not listed needs no stand-in in this phase.
   */
  fenced?: Partial<Record<AgentRole, FencedStandIn>>;
}

export type AgentRole = Exclude<MigrationRole, 'operator'>;

export interface FencedStandIn {
  does: string;
  /** The phase the operator writes; the rollback request says HostLost. */
  to?: MigrationPhase;
  /** The mark the operator sets for the fenced side. */
  marks?: StepDone;
  /** The instance goes to error: no copy can be brought back. */
  strands?: true;
}

/** Every phase, in the order the API lists them (the CRD's enum). */
export const MIGRATION_PHASES: readonly MigrationPhase[] = MIGRATION_STATUSES;

// A Migration with no status yet is validated by the operator: it either starts
// (pre-migrating) or is refused (error). It has no taskState because nothing has started.
export const MIGRATION_START = {
  steps: [{ owner: 'operator', does: 'validate the request, reserve quota, mark the instance resize_prep' }],
  next: { 'pre-migrating': 'operator', error: 'operator' },
} as const satisfies Pick<PhaseRule, 'steps' | 'next'>;

export const MIGRATION_LIFECYCLE = {
  'pre-migrating': {
    taskState: 'resize_prep',
    terminal: false,
    decision: 'early',
    steps: [
      { owner: 'operator', does: 'choose a destination (select_destinations), retrying up to maxAttempts' },
      { owner: 'destination', does: 'claim the new flavor (resize_claim) or report the failed claim' },
      { owner: 'source', does: 'take the task once the destination holds its claim' },
      { owner: 'operator', does: 'for an evacuation, take the task in the place of the fenced source' },
    ],
    // An evacuation has no source to take the task: the destination rebuilds at once.
    next: { migrating: 'source', 'post-migrating': 'operator', error: 'operator' },
    rollback: { owner: 'operator', does: 'end it; the destination frees its claim', to: 'error' },
    fenced: {
      source: { does: 'end it (an evacuation goes on: its source is fenced by definition)', to: 'error' },
      destination: { does: 'end it; nothing has moved', to: 'error' },
    },
  },
  migrating: {
    taskState: 'resize_migrating',
    terminal: false,
    decision: 'early',
    steps: [{ owner: 'source', does: 'power off, keep <uid>_resize, send the directory (migrate_disk_and_power_off)' }],
    next: { 'post-migrating': 'source', error: 'source' },
    rollback: { owner: 'source', does: 'drop <uid>_resize, run the guest again on the source', to: 'error' },
    fenced: { source: { does: 'end it: nothing has landed on the destination', to: 'error' } },
  },
  'post-migrating': {
    taskState: 'resize_migrated',
    terminal: false,
    decision: 'early',
    steps: [
      {
        owner: 'destination',
        does: 'apply the new flavor, grow the disk, start the guest (finish_resize); an evacuation rebuilds from the image',
      },
    ],
    next: { finished: 'destination', confirmed: 'destination', reverting: 'destination' },
    rollback: {
      owner: 'destination',
      does: 'hand over to the revert steps; the source restores <uid>_resize and ends in error',
      to: 'reverting',
    },
    fenced: {
      destination: { does: 'roll back onto the source for it', to: 'reverting', marks: StepDone.DestinationCleaned },
    },
  },
  finished: {
    taskState: '',
    terminal: false,
    decision: 'open',
    steps: [{ owner: 'operator', does: 'wait for Confirm or Revert, or confirm once resizeConfirmWindow passes' }],
    next: { confirming: 'operator', reverting: 'operator' },
    rollback: { owner: 'operator', does: 'revert, as if the user had asked for it (a cancel)', to: 'reverting' },
    fenced: {
      destination: { does: 'roll back onto the source for it', to: 'reverting', marks: StepDone.DestinationCleaned },
    },
  },
  confirming: {
    taskState: 'resize_confirming',
    terminal: false,
    decision: 'acting',
    steps: [
      { owner: 'source', does: 'drop <uid>_resize and the old claim (confirm_resize)', marks: StepDone.SourceCleaned },
      { owner: 'destination', does: 'turn the migration claim into the instance claim', after: StepDone.SourceCleaned },
    ],
    next: { confirmed: 'destination' },
    fenced: { source: { does: 'mark the source cleaned for it', marks: StepDone.SourceCleaned } },
  },
  reverting: {
    taskState: 'resize_reverting',
    terminal: false,
    decision: 'acting',
    steps: [
      {
        owner: 'destination',
        does: 'destroy its copy and free the migration claim (revert_resize)',
        marks: StepDone.DestinationCleaned,
      },
      {
        owner: 'source',
        does: 'restore <uid>_resize byte for byte with the old flavor (finish_revert_resize)',
        after: StepDone.DestinationCleaned,
      },
    ],
    next: { reverted: 'source', error: 'source' },
    fenced: {
      destination: { does: 'mark the destination cleaned for it', marks: StepDone.DestinationCleaned },
      source: { does: 'end it: the copy to restore is on the fenced host; evacuate the instance', strands: true },
    },
  },
  confirmed: {
    taskState: '',
    terminal: true,
    decision: 'closed',
    steps: [{ owner: 'operator', does: 'fold the resize quota into the instance, drop the transfer token' }],
    next: {},
  },
  reverted: {
    taskState: '',
    terminal: true,
    decision: 'closed',
    steps: [{ owner: 'operator', does: 'give back the resize quota, set spec.flavor back, drop the transfer token' }],
    next: {},
  },
  error: {
    taskState: '',
    terminal: true,
    decision: 'closed',
    steps: [
      { owner: 'operator', does: 'give back the resize quota, drop the transfer token' },
      { owner: 'destination', does: 'free the migration claim and anything staged' },
    ],
    next: {},
  },
} as const satisfies Record<MigrationPhase, PhaseRule>;

/** Whether a phase runs against the step deadline ('finished' waits for a person instead). */
export function hasDeadline(phase: MigrationPhase): boolean {
  return !MIGRATION_LIFECYCLE[phase].terminal && MIGRATION_LIFECYCLE[phase].decision !== 'open';
}

/**
 * The status patch that moves a Migration into `phase`, with the deadline its step runs
 * against. A rollback request belongs to the phase it names, so it is cleared; a move that is
 * itself part of a rollback sets it again in the same patch.
 */
export function enterPhase(phase: MigrationPhase, now: Date, stepTimeoutMs: number): MergePatch<MigrationStatus> {
  const deadline = hasDeadline(phase) ? new Date(now.getTime() + stepTimeoutMs).toISOString() : null;
  return { status: phase, stepDeadline: deadline, rollback: null };
}

export function isTerminal(phase: MigrationPhase | undefined): phase is TerminalPhase {
  return phase !== undefined && MIGRATION_LIFECYCLE[phase].terminal;
}

/** Whether the step that marks `done` has run (a condition on the Migration). */
export function stepDone(mig: Migration, done: StepDone): boolean {
  return (mig.status?.conditions ?? []).some((c) => c.type === done && c.status === 'True');
}

/** The roles that have a step in a phase (the start counts as the operator's). */
export function ownersOf(phase: MigrationPhase | 'start'): ReadonlySet<MigrationRole> {
  const rule = phase === 'start' ? MIGRATION_START : MIGRATION_LIFECYCLE[phase];
  return new Set(rule.steps.map((s: PhaseStep) => s.owner));
}

type Lifecycle = typeof MIGRATION_LIFECYCLE;
export type TerminalPhase = {
  [P in MigrationPhase]: Lifecycle[P]['terminal'] extends true ? P : never;
}[MigrationPhase];
export type LivePhase = Exclude<MigrationPhase, TerminalPhase>;

/**
 * A reconciler's dispatch table: one entry per phase, `null` where this role has no step; a
 * live phase's step has the type `Live`, a terminal phase's clean-up the type `End`. A full
 * mapped type, so adding a phase breaks the build until every role says what it does there.
 */
export type PhaseDispatch<Live, End = Live> = { [P in MigrationPhase]: (P extends TerminalPhase ? End : Live) | null };
