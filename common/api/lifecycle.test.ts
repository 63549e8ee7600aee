import { describe, expect, it } from 'vitest';
import { oneHost } from '../../node-agent/testing.js';
import {
  MIGRATION_LIFECYCLE,
  MIGRATION_PHASES,
  MIGRATION_START,
  enterPhase,
  hasDeadline,
  isTerminal,
  ownersOf,
  type AgentRole,
  type FencedStandIn,
  type LivePhase,
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

const livePhases = (): LivePhase[] => MIGRATION_PHASES.filter((p): p is LivePhase => !isTerminal(p));

describe('the way back (rollback) and the stand-ins for a forced-down host', () => {
  it("gives every phase's way back a move the table allows from that phase, written by the way back's owner", () => {
    for (const p of MIGRATION_PHASES) {
      const back = rule(p).rollback;
      if (!back) continue;
      expect({ p, to: back.to, allowed: mayMove(p, back.to) }).toEqual({ p, to: back.to, allowed: true });
      expect({ p, mover: moverOf(p, back.to) }).toEqual({ p, mover: back.owner });
      expect({ p, owns: ownersOf(p).has(back.owner) }).toEqual({ p, owns: true });
    }
  });

  it('gives no terminal phase a way back or a stand-in', () => {
    for (const p of MIGRATION_PHASES.filter(isTerminal)) {
      expect({ p, rollback: rule(p).rollback, fenced: rule(p).fenced }).toEqual({ p });
    }
  });

  it('has a way back for every live phase except the two that carry out a decision (confirming, reverting)', () => {
    const without = livePhases().filter((p) => !rule(p).rollback);
    expect(without.sort()).toEqual(['confirming', 'reverting']);
  });

  it("moves a stand-in only to a phase in the phase's next", () => {
    for (const p of MIGRATION_PHASES) {
      for (const [role, standIn] of Object.entries(rule(p).fenced ?? {})) {
        if (!standIn.to) continue;
        expect({ p, role, to: standIn.to, allowed: mayMove(p, standIn.to) }).toEqual({
          p,
          role,
          to: standIn.to,
          allowed: true,
        });
      }
    }
  });

  it('makes every stand-in do something: move the migration, mark the step done, or strand the instance', () => {
    for (const p of MIGRATION_PHASES) {
      for (const [role, standIn] of Object.entries(rule(p).fenced ?? {})) {
        const acts = [standIn.to, standIn.marks, standIn.strands].filter((x) => x !== undefined);
        expect({ p, role, acts: acts.length > 0 }).toEqual({ p, role, acts: true });
      }
    }
  });

  it("marks for a fenced side only what that side's own step marks, in the phase or the one it moves to", () => {
    const marksOf = (p: MigrationPhase, role: AgentRole) =>
      rule(p)
        .steps.filter((st) => st.owner === role)
        .map((st) => st.marks);
    for (const p of MIGRATION_PHASES) {
      for (const [role, standIn] of Object.entries(rule(p).fenced ?? {}) as [AgentRole, FencedStandIn][]) {
        if (!standIn.marks) continue;
        const own = [...marksOf(p, role), ...(standIn.to ? marksOf(standIn.to, role) : [])];
        expect({ p, role, marks: standIn.marks, own: own.includes(standIn.marks) }).toEqual({
          p,
          role,
          marks: standIn.marks,
          own: true,
        });
      }
    }
  });
});

describe("the agents' give-ups agree with the table", () => {
  it("gives every way back an agent owns a give-up in that side's dispatch", async () => {
    const { hosts, host } = await oneHost();
    try {
      const sides: Record<AgentRole, { giveUp: object }> = {
        source: host.source.work,
        destination: host.destination.work,
      };
      for (const p of livePhases()) {
        const back = rule(p).rollback;
        if (!back || back.owner === 'operator') continue;
        const side = sides[back.owner as AgentRole];
        expect({ p, owner: back.owner, giveUp: p in side.giveUp }).toEqual({ p, owner: back.owner, giveUp: true });
      }
    } finally {
      await hosts.cleanup();
    }
  });

  it('gives an agent a give-up only in a phase where it has a step', async () => {
    const { hosts, host } = await oneHost();
    try {
      for (const [role, work] of [
        ['source', host.source.work],
        ['destination', host.destination.work],
      ] as const) {
        for (const p of Object.keys(work.giveUp) as LivePhase[]) {
          expect({ role, p, step: work.steps[p] !== null }).toEqual({ role, p, step: true });
          expect({ role, p, owner: ownersOf(p).has(role) }).toEqual({ role, p, owner: true });
        }
      }
    } finally {
      await hosts.cleanup();
    }
  });
});

describe('entering a phase', () => {
  const now = new Date('2030-01-01T00:00:00Z');

  it('writes the phase, its step deadline and clears the rollback request of the phase before', () => {
    expect(enterPhase('migrating', now, 300_000)).toEqual({
      status: 'migrating',
      stepDeadline: '2030-01-01T00:05:00.000Z',
      rollback: null,
    });
  });

  it('gives a phase waiting for a person (finished) and a terminal phase no deadline', () => {
    expect(enterPhase('finished', now, 300_000)).toEqual({ status: 'finished', stepDeadline: null, rollback: null });
    for (const p of MIGRATION_PHASES.filter(isTerminal)) {
      expect(enterPhase(p, now, 300_000)).toEqual({ status: p, stepDeadline: null, rollback: null });
    }
  });

  it('runs every live phase but finished against the deadline', () => {
    expect(livePhases().filter(hasDeadline).sort()).toEqual(
      ['confirming', 'migrating', 'post-migrating', 'pre-migrating', 'reverting'].sort(),
    );
  });
});
