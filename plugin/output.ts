// How commands print: tables in kubectl's style (upper-case headers, columns three spaces
// apart), ages as kubectl shows them, and -o json|yaml of the objects themselves (a List when
// there are several, as `kubectl get -o json` prints).
import { dumpYaml } from '@kubernetes/client-node';

export const OUTPUT_FORMATS = ['json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** A plain-text table; the last column is not padded. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** kubectl's age: 45s, 12m, 3h20m, 5d, 2y. */
export function age(since: string | Date | undefined, now: Date): string {
  if (!since) return '<unknown>';
  const seconds = Math.max(0, Math.floor((now.getTime() - new Date(since).getTime()) / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return `${minutes}m${seconds % 60 ? `${seconds % 60}s` : ''}`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return `${hours}h${minutes % 60 ? `${minutes % 60}m` : ''}`;
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (days < 365 * 2) return `${days}d`;
  return `${Math.floor(days / 365)}y`;
}

/** Objects as JSON or YAML: one object as itself, several as a v1 List. */
export function formatObjects(objects: readonly object[] | object, format: OutputFormat): string {
  const doc = Array.isArray(objects) ? { apiVersion: 'v1', kind: 'List', items: objects, metadata: {} } : objects;
  return format === 'json' ? JSON.stringify(doc, null, 4) + '\n' : dumpYaml(doc);
}

/** "-" for an empty cell, as kubectl's custom columns show <none>. */
export const cell = (v: string | number | boolean | undefined | null): string =>
  v === undefined || v === null || v === '' ? '-' : String(v);

/** Lines of `key: value`, values aligned at `width` (default: after the longest key). Undefined values are left out. */
export function fields(pairs: readonly (readonly [string, string | undefined])[], width?: number): string {
  const shown = pairs.filter(([, v]) => v !== undefined);
  const w = width ?? Math.max(0, ...shown.map(([k]) => k.length + 1));
  return shown.map(([k, v]) => `${`${k}:`.padEnd(w)}  ${v}`).join('\n') + (shown.length ? '\n' : '');
}
