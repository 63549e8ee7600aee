import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MIGRATION_LIFECYCLE, MIGRATION_PHASES } from '../common/api/lifecycle.js';
import { ARCHITECTURE_DOC, lifecycleDiagram, renderArchitectureDoc, repoRoot } from './gen-docs.js';

describe('the architecture doc tells the lifecycle the code runs', () => {
  it('shows the state diagram and table generated from common/api/lifecycle.ts (run `npm run gen` after changing it)', () => {
    const committed = readFileSync(join(repoRoot, ARCHITECTURE_DOC), 'utf8');
    expect(committed).toBe(renderArchitectureDoc(committed));
  });

  it('draws every phase and every move of the table, with who makes it', () => {
    const diagram = lifecycleDiagram();
    const id = (phase: string) => phase.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    for (const phase of MIGRATION_PHASES) {
      expect(diagram).toContain(`state "${phase}" as ${id(phase)}`);
      for (const [to, who] of Object.entries(MIGRATION_LIFECYCLE[phase].next)) {
        expect(diagram).toContain(`${id(phase)} --> ${id(to)}: ${who}`);
      }
    }
  });
});
