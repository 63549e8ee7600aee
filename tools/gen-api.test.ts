import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { render, repoRoot } from './gen-api.js';

describe('the API has one source of truth', () => {
  it.each([...render().keys()])(
    '%s matches common/api/schema.ts (run `npm run gen` after changing the schema)',
    (path) => {
      const committed = readFileSync(join(repoRoot, path), 'utf8');
      expect(committed).toBe(render().get(path));
    },
  );
});
