// flavor-list, flavor-create, quota-show: the catalogue and the namespace's limits.
import { API_VERSION, type ComputeQuota, type Flavor } from '../common/api/types.js';
import { UserError, httpStatus } from './errors.js';
import { checkName } from './instances.js';
import type { IO } from './io.js';
import { age, formatObjects, table, type OutputFormat } from './output.js';
import type { Session } from './session.js';

export function flavorRows(flavors: readonly Flavor[], now: Date): string {
  const rows = [...flavors]
    .sort(
      (a, b) =>
        a.spec.vcpus - b.spec.vcpus ||
        a.spec.memoryMiB - b.spec.memoryMiB ||
        a.metadata.name.localeCompare(b.metadata.name),
    )
    .map((f) => [
      f.metadata.name,
      String(f.spec.vcpus),
      String(f.spec.memoryMiB),
      String(f.spec.rootDiskGiB),
      String(f.spec.ephemeralDiskGiB ?? 0),
      f.spec.disabled ? 'yes' : 'no',
      Object.entries(f.spec.extraSpecs ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(',') || '-',
      age(f.metadata.creationTimestamp, now),
    ]);
  return table(
    ['NAME', 'VCPUS', 'MEMORY (MiB)', 'DISK (GiB)', 'EPHEMERAL (GiB)', 'DISABLED', 'EXTRA SPECS', 'AGE'],
    rows,
  );
}

export async function flavorList(session: Session, io: IO, opts: { output?: OutputFormat }): Promise<void> {
  const flavors = (await session.kube.flavors.list()).items;
  if (opts.output) return io.out(formatObjects(flavors, opts.output));
  if (flavors.length === 0) return io.err('No flavors found: create one with kubectl nova flavor-create.\n');
  io.out(flavorRows(flavors, io.now()));
}

/** A whole number option at least `min`, or a UserError naming the option. */
export function wholeNumber(option: string, text: string | undefined, min: number): number {
  if (text === undefined) throw new UserError(`${option} is required`);
  if (!/^\d+$/.test(text.trim()) || Number(text) < min)
    throw new UserError(`${option} must be a whole number of at least ${min}, not ${JSON.stringify(text)}`);
  return Number(text);
}

/** key=value pairs (repeatable --property), as Nova's flavor properties. */
export function parseProperties(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UserError(`--property ${JSON.stringify(p)} must be key=value (e.g. node:gpu=true)`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

export interface FlavorCreateOptions {
  vcpus?: string;
  memoryMib?: string;
  disk?: string;
  ephemeral?: string;
  property: string[];
  disabled?: boolean;
}

export function flavorObject(name: string, opts: FlavorCreateOptions): Flavor {
  checkName('flavor', name);
  const ephemeral = opts.ephemeral === undefined ? 0 : wholeNumber('--ephemeral', opts.ephemeral, 0);
  const extraSpecs = parseProperties(opts.property);
  return {
    apiVersion: API_VERSION,
    kind: 'Flavor',
    metadata: { name },
    spec: {
      vcpus: wholeNumber('--vcpus', opts.vcpus, 1),
      memoryMiB: wholeNumber('--memory-mib', opts.memoryMib, 64),
      rootDiskGiB: wholeNumber('--disk', opts.disk, 0),
      ...(ephemeral ? { ephemeralDiskGiB: ephemeral } : {}),
      ...(Object.keys(extraSpecs).length ? { extraSpecs } : {}),
      ...(opts.disabled ? { disabled: true } : {}),
    },
  };
}

export async function flavorCreate(session: Session, io: IO, name: string, opts: FlavorCreateOptions): Promise<void> {
  const flavor = flavorObject(name, opts);
  try {
    await session.kube.flavors.create(flavor);
  } catch (err) {
    if (httpStatus(err) === 409) throw new UserError(`flavor ${name} already exists (flavors are immutable)`);
    throw err;
  }
  io.out(`flavor/${name} created\n`);
}

const QUOTA_KEYS = [
  ['instances', 'instances'],
  ['vcpus', 'vcpus'],
  ['memoryMiB', 'memory (MiB)'],
  ['diskGiB', 'disk (GiB)'],
] as const;

export function renderQuota(q: ComputeQuota): string {
  const hard = q.spec.hard ?? {};
  const used = q.status?.used ?? {};
  const reserved = q.status?.reserved ?? {};
  const rows = QUOTA_KEYS.map(([k, label]) => {
    const h = hard[k];
    const u = used[k] ?? 0;
    const r = reserved[k] ?? 0;
    return [
      label,
      String(u),
      String(r),
      h === undefined ? 'unlimited' : String(h),
      h === undefined ? '-' : String(h - u - r),
    ];
  });
  return (
    `ComputeQuota ${q.metadata.namespace ?? 'default'}/${q.metadata.name}:\n` +
    table(['RESOURCE', 'USED', 'RESERVED', 'LIMIT', 'FREE'], rows)
      .trimEnd()
      .split('\n')
      .map((l) => `  ${l}`)
      .join('\n') +
    '\n'
  );
}

export async function quotaShow(
  session: Session,
  io: IO,
  opts: { output?: OutputFormat; allNamespaces?: boolean },
): Promise<void> {
  const namespace = opts.allNamespaces ? undefined : session.namespace;
  const quotas = (await session.kube.quotas.list(namespace)).items;
  if (opts.output) return io.out(formatObjects(quotas, opts.output));
  if (quotas.length === 0) {
    io.out(
      opts.allNamespaces
        ? 'No ComputeQuota in any namespace: instances are limited only by host capacity.\n'
        : `No ComputeQuota in namespace ${session.namespace}: its instances are limited only by host capacity.\n`,
    );
    return;
  }
  io.out(quotas.map(renderQuota).join('\n'));
}
