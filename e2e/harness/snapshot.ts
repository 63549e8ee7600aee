// Everything a request could change, read at once, so a scenario can prove a request changed
// exactly what it should and nothing else: every kubenova object in every namespace (the
// claims on each ComputeNode, Instances, Migrations, ComputeQuota and ServerGroup status,
// Flavors), the Secrets of the given namespaces, and every file under each host's state
// directory (domains, backups, staged transfers) by SHA-256.
//
// Left out, because they change without anyone asking: resourceVersion and managedFields,
// a ComputeNode's heartbeatTime and its conditions' times.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KINDS } from '../../common/api/schema.js';
import type { KindName } from '../../common/kube/api.js';
import type { TestEnv } from './env.js';

/** "Kind namespace/name" (or "Kind name", or "File host/path") -> what it holds. */
export type Snapshot = Map<string, unknown>;

export interface SnapshotOptions {
  /** Namespaces whose Secrets are part of the picture (transfer tokens live there). */
  secretNamespaces: string[];
}

interface Meta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  managedFields?: unknown;
}

function keyOf(kind: string, meta: Meta): string {
  return `${kind} ${meta.namespace ? `${meta.namespace}/` : ''}${meta.name}`;
}

function clean(kind: string, obj: { metadata?: Meta; status?: Record<string, unknown> }): unknown {
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = obj.metadata ?? {};
  const out: Record<string, unknown> = { ...obj, metadata };
  if (kind === 'ComputeNode' && obj.status) {
    const { heartbeatTime: _hb, conditions, ...status } = obj.status;
    out.status = {
      ...status,
      ...(Array.isArray(conditions)
        ? {
            conditions: (conditions as Record<string, unknown>[]).map(
              ({ lastTransitionTime: _t, lastHeartbeatTime: _h, ...c }) => c,
            ),
          }
        : {}),
    };
  }
  return out;
}

function filesUnder(dir: string, prefix = ''): [string, string][] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((name): [string, string][] => {
      const path = join(dir, name);
      let isDir: boolean;
      try {
        isDir = statSync(path).isDirectory();
        if (!isDir) return [[`${prefix}${name}`, createHash('sha256').update(readFileSync(path)).digest('hex')]];
      } catch {
        return []; // removed while being read: it is not there
      }
      return filesUnder(path, `${prefix}${name}/`);
    });
}

export async function takeSnapshot(env: TestEnv, opts: SnapshotOptions): Promise<Snapshot> {
  const snap: Snapshot = new Map();
  for (const { kind } of KINDS) {
    for (const obj of (await env.kube.resource(kind as KindName).list()).items) {
      snap.set(keyOf(kind, obj.metadata as Meta), clean(kind, obj as never));
    }
  }
  for (const namespace of opts.secretNamespaces) {
    for (const secret of (await env.kube.core.listNamespacedSecret({ namespace })).items) {
      const data = Object.fromEntries(
        Object.entries(secret.data ?? {}).map(([k, v]) => [k, createHash('sha256').update(v).digest('hex')]),
      );
      snap.set(keyOf('Secret', secret.metadata as Meta), { ...(clean('Secret', secret as never) as object), data });
    }
  }
  const stateDir = env.stateDir;
  for (const host of existsSync(stateDir) ? readdirSync(stateDir).sort() : []) {
    for (const [path, sha] of filesUnder(join(stateDir, host))) snap.set(`File ${host}/${path}`, sha);
  }
  return snap;
}

/**
 * A snapshot taken once nothing moves: two in a row, `intervalMs` apart, that do not differ.
 * Resolves with the last one read when that does not happen within `timeoutMs`, and the
 * comparison that follows shows what kept moving.
 */
export async function settledSnapshot(
  env: TestEnv,
  opts: SnapshotOptions,
  intervalMs = 400,
  timeoutMs = 15_000,
): Promise<Snapshot> {
  const deadline = Date.now() + timeoutMs;
  let last = await takeSnapshot(env, opts);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, intervalMs));
    const next = await takeSnapshot(env, opts);
    if (diffSnapshots(last, next).length === 0) return next;
    last = next;
  }
  return last;
}

/** Leaf paths of a value; list items are named by their type, consumer, uid or name where they have one. */
function leaves(value: unknown, path: string, out: Map<string, string>): void {
  if (Array.isArray(value)) {
    if (value.length === 0) out.set(path, '[]');
    value.forEach((item, i) => {
      const o = item as Record<string, unknown> | null;
      const id = o && typeof o === 'object' ? (o.type ?? o.consumer ?? o.uid ?? o.name) : undefined;
      leaves(item, `${path}[${typeof id === 'string' ? id : i}]`, out);
    });
  } else if (value && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) out.set(path, '{}');
    for (const [k, v] of entries) leaves(v, path ? `${path}.${k}` : k, out);
  } else {
    out.set(path, JSON.stringify(value));
  }
}

/**
 * What differs between two snapshots, one line each, sorted: "+key" for what appeared,
 * "-key" for what went, "key: path" for each leaf that changed. UIDs in paths and in
 * file names are replaced by the object they belong to ("<Instance default/web>").
 */
export function diffSnapshots(before: Snapshot, after: Snapshot): string[] {
  const names = new Map<string, string>();
  for (const snap of [before, after]) {
    for (const [key, obj] of snap) {
      const uid = (obj as { metadata?: Meta } | undefined)?.metadata?.uid;
      if (uid) names.set(uid, `<${key}>`);
    }
  }
  const readable = (s: string) =>
    s.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, (u) => names.get(u) ?? u);
  const out: string[] = [];
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    if (!before.has(key)) out.push(`+${readable(key)}`);
    else if (!after.has(key)) out.push(`-${readable(key)}`);
    else {
      const a = new Map<string, string>();
      const b = new Map<string, string>();
      leaves(before.get(key), '', a);
      leaves(after.get(key), '', b);
      for (const path of new Set([...a.keys(), ...b.keys()])) {
        if (a.get(path) !== b.get(path)) out.push(`${readable(key)}${path ? `: ${readable(path)}` : ''}`);
      }
    }
  }
  return out.sort();
}

/**
 * Compares a diff with the changes a request was expected to make, each a line of the diff
 * or the start of one at a path boundary ("Instance default/web: status.fault" covers
 * "Instance default/web: status.fault.message"). Returns what changed unasked and what was
 * expected but did not change; both empty means exactly the expected changes were made.
 */
export function unexpectedChanges(diff: string[], expected: string[]): { unexpected: string[]; missing: string[] } {
  const covers = (want: string, line: string) =>
    line === want || line.startsWith(`${want}.`) || line.startsWith(`${want}[`) || line.startsWith(`${want}/`);
  return {
    unexpected: diff.filter((line) => !expected.some((want) => covers(want, line))),
    missing: expected.filter((want) => !diff.some((line) => covers(want, line))),
  };
}
