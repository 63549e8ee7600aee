import { describe, expect, it } from 'vitest';
import {
  MIGRATION_LIFECYCLE,
  MIGRATION_PHASES,
  MIGRATION_START,
  isTerminal,
  ownersOf,
  type PhaseRule,
} from './lifecycle.js';
import type { MigrationPhase } from './types.js';
import { MIGRATION_STATUSES } from './schema.js';

const rule = (p: MigrationPhase): PhaseRule => MIGRATION_LIFECYCLE[p];
/** Who writes the move from one phase to the next, as the table says; undefined when it has no such move. */
const moverOf = (from: MigrationPhase | undefined, to: MigrationPhase) =>
  (from === undefined ? (MIGRATION_START.next as PhaseRule['next']) : rule(from).next)[to];
const mayMove = (from: MigrationPhase | undefined, to: MigrationPhase) => moverOf(from, to) !== undefined;
const nextOf = (p: MigrationPhase | undefined): MigrationPhase[] =>
  Object.keys(p === undefined ? MIGRATION_START.next : rule(p).next) as MigrationPhase[];

describe('the Migration lifecycle table', () => {
  it('names every phase the API allows, and no other', () => {
    expect([...MIGRATION_PHASES].sort()).toEqual([...MIGRATION_STATUSES].sort());
  });

  it('gives terminal phases no way out and every other phase at least one', () => {
    for (const p of MIGRATION_PHASES) expect(nextOf(p).length === 0, p).toBe(isTerminal(p));
  });

  it('reaches every phase from the start, and a terminal phase from every phase', () => {
    const reached = new Set<MigrationPhase>();
    const walk = (from: MigrationPhase | undefined) => {
      for (const n of nextOf(from)) {
        if (reached.has(n)) continue;
        reached.add(n);
        walk(n);
      }
    };
    walk(undefined);
    expect([...reached].sort()).toEqual([...MIGRATION_PHASES].sort());
    const endsFrom = (p: MigrationPhase, seen = new Set<MigrationPhase>()): boolean =>
      isTerminal(p) || nextOf(p).some((n) => !seen.has(n) && endsFrom(n, new Set([...seen, p])));
    for (const p of MIGRATION_PHASES) expect(endsFrom(p), p).toBe(true);
  });

  it('lets only a role with a step in a phase move the migration out of it', () => {
    for (const p of MIGRATION_PHASES) {
      for (const n of nextOf(p)) expect(ownersOf(p).has(moverOf(p, n)!), `${p} -> ${n} by ${moverOf(p, n)}`).toBe(true);
    }
  });

  it('orders the steps of a phase: a step waits only for a mark an earlier step sets', () => {
    for (const p of MIGRATION_PHASES) {
      const marked = new Set<string>();
      for (const step of rule(p).steps) {
        if (step.after) expect(marked.has(step.after), `${p}: ${step.does}`).toBe(true);
        if (step.marks) marked.add(step.marks);
      }
    }
  });

  it('clears the instance task once a migration is over or waits for the decision', () => {
    for (const p of MIGRATION_PHASES) if (isTerminal(p) || p === 'finished') expect(rule(p).taskState, p).toBe('');
  });

  it('allows the moves of the design and refuses the rest', () => {
    expect(mayMove(undefined, 'pre-migrating')).toBe(true);
    expect(mayMove('migrating', 'error')).toBe(true);
    expect(mayMove('finished', 'confirming')).toBe(true);
    expect(mayMove('confirmed', 'reverting')).toBe(false);
    expect(mayMove('pre-migrating', 'finished')).toBe(false);
    expect(moverOf('reverting', 'reverted')).toBe('source');
    expect(moverOf('confirming', 'confirmed')).toBe('destination');
  });
});
