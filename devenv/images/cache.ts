// The image cache keeps a few builds of each kind, not every one: each code change makes a
// new 150 MB archive. The newest are kept (a cluster may still be importing the one before).
import { readdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';

/** The names among `entries` to delete: all that match `pattern` except the `keep` newest and `current`. */
export function namesToPrune(
  entries: readonly { name: string; mtimeMs: number }[],
  pattern: RegExp,
  keep: number,
  current: string,
): string[] {
  return entries
    .filter((e) => pattern.test(e.name) && e.name !== current)
    .sort((a, b) => b.mtimeMs - a.mtimeMs)
    .slice(Math.max(0, keep - 1))
    .map((e) => e.name);
}

/** Deletes older cache entries like `current` (a path in cacheDir), keeping `keep` in all. */
export async function pruneCache(cacheDir: string, pattern: RegExp, current: string, keep: number): Promise<void> {
  const entries: { name: string; mtimeMs: number }[] = [];
  for (const name of await readdir(cacheDir)) {
    if (!pattern.test(name)) continue;
    try {
      entries.push({ name, mtimeMs: (await stat(join(cacheDir, name))).mtimeMs });
    } catch {
      // Deleted by a concurrent build: nothing to prune.
    }
  }
  for (const name of namesToPrune(entries, pattern, keep, basename(current)))
    await rm(join(cacheDir, name), { recursive: true, force: true });
}
