// docs/reliability.md is the promise; the tests are the proof. Every crash point in the
// code and every bad request the suite sends must be listed there.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './gen-api.js';

const doc = readFileSync(join(repoRoot, 'docs', 'reliability.md'), 'utf8');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [path] : [];
  });
}

const crashPoints = ['operator', 'node-agent', 'common']
  .flatMap((d) => sources(join(repoRoot, d)))
  .flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/crashPoint\('([^']+)'\)/g)].map((m) => m[1]!));
const crashCases = [
  ...readFileSync(join(repoRoot, 'e2e', 'crash.test.ts'), 'utf8').matchAll(/'((?:agent|operator):[a-z-]+:[a-z.-]+)'/g),
].map((m) => m[1]!);
const badRequests = [
  ...readFileSync(join(repoRoot, 'e2e', 'bad-input.test.ts'), 'utf8').matchAll(/^\s{2,4}(?:\{ )?name: '([^']+)'/gm),
].map((m) => m[1]!);

describe('docs/reliability.md', () => {
  it('finds the crash points and bad requests it checks', () => {
    expect(crashPoints.length).toBeGreaterThan(10);
    expect(badRequests.length).toBeGreaterThanOrEqual(25);
  });

  it.each([...new Set([...crashPoints, ...crashCases])])('lists crash point %s', (point) => {
    expect(doc).toContain(`\`${point}\``);
  });

  it.each(badRequests)('lists the bad request "%s"', (name) => {
    expect(doc).toContain(`| ${name} |`);
  });
});
