// docs/security.md maps each threat to its defence and to the test that proves it. The tests
// it names must exist, and every attempt of the hostile-tenant suite must be in it.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './gen-api.js';

const doc = readFileSync(join(repoRoot, 'docs', 'security.md'), 'utf8');

/** The suites the doc names by a short label. */
const LABELS: Record<string, string> = {
  'hostile-tenant': 'e2e/hostile-tenant.test.ts',
  'helm-install': 'e2e/helm-install.test.ts',
  'helm-chart': 'e2e/helm-chart.test.ts',
};

/** Every "<label or `file`>: *test name*, *…*" of the doc's tables, as [file, name] pairs. */
function namedTests(): [string, string][] {
  const out: [string, string][] = [];
  for (const line of doc.split('\n').filter((l) => l.startsWith('|'))) {
    for (const segment of line.split(/;|\|/)) {
      const m = /^\s*(?:([a-z-]+):|`([^`]+\.test\.ts)`)\s*(.*)$/.exec(segment);
      const file = m ? (m[1] ? LABELS[m[1]] : m[2]) : undefined;
      if (!file || !m) continue;
      for (const name of m[3]!.matchAll(/\*([^*]+)\*/g)) out.push([file, name[1]!]);
    }
  }
  return out;
}

const attempts = [
  ...readFileSync(join(repoRoot, 'e2e', 'hostile-tenant.test.ts'), 'utf8').matchAll(
    /^\s+name: (?:'([^']+)'|"([^"]+)"),$/gm,
  ),
].map((m) => m[1] ?? m[2]!);

describe('docs/security.md', () => {
  it('finds the tests it names and the attempts of the hostile-tenant suite', () => {
    expect(namedTests().length).toBeGreaterThan(30);
    expect(attempts.length).toBeGreaterThanOrEqual(20);
  });

  it.each(namedTests().filter(([, name]) => !name.startsWith('to confirm')))(
    'names a test of %s that exists: "%s"',
    (file, name) => {
      // Work still in progress is marked "to confirm"; every other file must be there.
      if (!existsSync(join(repoRoot, file))) {
        expect(doc, `${file} is missing but not marked "to confirm"`).toMatch(
          new RegExp(`\`${file.replace(/[.]/g, '\\.')}\` \\(\\*to confirm`),
        );
        return;
      }
      const source = readFileSync(join(repoRoot, file), 'utf8');
      for (const part of name
        .split('…')
        .map((p) => p.trim().replace(/^:\s*/, ''))
        .filter(Boolean)) {
        expect(source, `${file} has no test named like "${name}"`).toContain(part);
      }
    },
  );

  it.each(attempts)('lists the hostile-tenant attempt "%s"', (name) => {
    expect(doc).toContain(`*${name}*`);
  });
});
