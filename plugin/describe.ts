// `kubectl nova show`: an Instance as an operator reads it. State and task, host, flavor
// (and the old one while a resize awaits its decision), the migration in progress with its
// step deadline, the placement attempts, the fault with what each scheduler filter removed,
// the conditions and the last Events. Pure: the command fetches, this renders.
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Condition, Fault, FlavorSnapshot, Instance, Migration, ServerGroup } from '../common/api/types.js';
import { age, fields, table } from './output.js';

/** Where values start in `show`: after the longest label, "Wanted flavor:". */
const WIDTH = 14;
const label = (k: string) => `${`${k}:`.padEnd(WIDTH)}  `;

export interface FilterElimination {
  filter: string;
  removed: number;
  of: number;
}

/**
 * The scheduler's NoValidHost message says how many hosts each filter removed, in Nova's words
 * ("Filtering removed all hosts: ComputeFilter removed 1 of 3, RamFilter removed 2 of 2"). This
 * reads them back as a list, in the order the filters ran.
 */
export function filterEliminations(message: string): FilterElimination[] {
  const at = message.indexOf('Filtering removed all hosts:');
  if (at < 0) return [];
  const out: FilterElimination[] = [];
  for (const m of message.slice(at).matchAll(/([A-Za-z][\w-]*) removed (\d+) of (\d+)/g)) {
    out.push({ filter: m[1]!, removed: Number(m[2]), of: Number(m[3]) });
  }
  return out;
}

export function flavorText(f: FlavorSnapshot | undefined): string | undefined {
  if (!f) return undefined;
  const eph = f.ephemeralDiskGiB ? ` + ${f.ephemeralDiskGiB} GiB ephemeral` : '';
  return `${f.name} (${f.vcpus} vCPU${f.vcpus === 1 ? '' : 's'}, ${f.memoryMiB} MiB, ${f.rootDiskGiB} GiB disk${eph})`;
}

/** "active", "building/spawning", "resized": vmState and the task, when there is one. */
export function stateText(inst: Instance): string {
  const s = inst.status;
  if (!s?.vmState) return inst.metadata.deletionTimestamp ? 'deleting' : 'pending';
  const state = s.taskState ? `${s.vmState}/${s.taskState}` : s.vmState;
  return inst.metadata.deletionTimestamp && s.taskState !== 'deleting' ? `${state} (deleting)` : state;
}

export function faultLines(fault: Fault | undefined, indent = '  '): string[] {
  if (!fault) return [];
  const when = fault.time ? ` at ${fault.time}` : '';
  const lines = [`${fault.reason}${when}`];
  const eliminations = filterEliminations(fault.message);
  if (eliminations.length > 0) {
    lines.push(`${indent}${fault.message.slice(0, fault.message.indexOf('Filtering removed all hosts:')).trim()}`);
    lines.push(`${indent}Hosts removed by each scheduler filter, in the order they ran:`);
    const width = Math.max(...eliminations.map((e) => e.filter.length));
    for (const e of eliminations) lines.push(`${indent}  ${e.filter.padEnd(width)}  removed ${e.removed} of ${e.of}`);
  } else {
    lines.push(...fault.message.split('\n').map((l) => `${indent}${l}`));
  }
  return lines;
}

const time = (t: Date | string | undefined | null): Date | undefined => (t ? new Date(t) : undefined);

/** When an Event last happened (series, lastTimestamp, eventTime, or its creation). */
export function eventTime(e: CoreV1Event): Date | undefined {
  return (
    time(e.series?.lastObservedTime) ??
    time(e.lastTimestamp) ??
    time(e.eventTime) ??
    time(e.firstTimestamp) ??
    time(e.metadata?.creationTimestamp)
  );
}

/** The newest `limit` events, oldest first, as a table. */
export function eventsTable(events: readonly CoreV1Event[], now: Date, limit = 10): string {
  if (events.length === 0) return '  <none>\n';
  const sorted = [...events].sort((a, b) => (eventTime(a)?.getTime() ?? 0) - (eventTime(b)?.getTime() ?? 0));
  const rows = sorted.slice(-limit).map((e) => {
    const count = (e.series?.count ?? e.count ?? 1) > 1 ? ` (x${e.series?.count ?? e.count})` : '';
    return [
      age(eventTime(e), now),
      e.type ?? '',
      e.reason ?? '',
      `${e.involvedObject.kind ?? ''}/${e.involvedObject.name ?? ''}`,
      `${(e.message ?? '').replace(/\s+/g, ' ').trim()}${count}`,
    ];
  });
  return table(['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE'], rows)
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n');
}

function conditionsTable(conditions: readonly Condition[] | undefined, now: Date): string {
  if (!conditions?.length) return '  <none>\n';
  const rows = conditions.map((c) => [
    c.type,
    c.status,
    c.reason,
    age(c.lastTransitionTime, now),
    (c.message ?? '').replace(/\s+/g, ' '),
  ]);
  return table(['TYPE', 'STATUS', 'REASON', 'SINCE', 'MESSAGE'], rows)
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n');
}

/** What a user can do next about a migration, in plugin commands. */
export function migrationHint(mig: Migration, instance: string): string | undefined {
  const s = mig.status;
  if (s?.status === 'finished' && !mig.spec.decision)
    return `confirm with: kubectl nova resize-confirm ${instance}, or revert with: kubectl nova resize-revert ${instance}`;
  if (mig.spec.decision && s?.status && !['confirmed', 'reverted', 'error'].includes(s.status))
    return `${mig.spec.decision} requested`;
  return undefined;
}

export function migrationLine(mig: Migration): string {
  const s = mig.status ?? {};
  const route = s.sourceHost ? ` ${s.sourceHost} -> ${s.destHost ?? '?'}` : '';
  const flavors =
    s.type === 'resize' && s.oldFlavor && s.newFlavor ? `, ${s.oldFlavor.name} -> ${s.newFlavor.name}` : '';
  return `${mig.metadata.name} (${s.type ?? mig.spec.type ?? 'migration'} ${s.status ?? 'not started'}${route}${flavors})`;
}

export interface ShowInput {
  instance: Instance;
  migration?: Migration;
  group?: ServerGroup;
  events: readonly CoreV1Event[];
  now: Date;
  eventLimit?: number;
}

export function renderInstance({ instance: inst, migration, group, events, now, eventLimit = 10 }: ShowInput): string {
  const s = inst.status ?? {};
  const name = inst.metadata.name;
  const zone = inst.spec.availabilityZone;
  const scheduling = s.scheduling;
  const attempts = scheduling?.attempts
    ? `${scheduling.attempts} attempt${scheduling.attempts === 1 ? '' : 's'}` +
      (scheduling.triedHosts?.length ? `, tried ${scheduling.triedHosts.join(', ')}` : '')
    : undefined;
  const out: string[] = [];
  out.push(
    fields(
      [
        ['Name', name],
        ['Namespace', inst.metadata.namespace ?? 'default'],
        ['State', stateText(inst)],
        ['Power', `${s.powerState ?? '-'} (wanted ${inst.spec.powerState ?? 'Running'})`],
        ['Host', s.host ?? (inst.spec.host ? `- (forced host ${inst.spec.host})` : '-')],
        ['Zone', zone],
        ['Flavor', flavorText(s.flavor) ?? inst.spec.flavor + (s.flavor ? '' : ' (not applied yet)')],
        ['Wanted flavor', s.flavor && inst.spec.flavor !== s.flavor.name ? inst.spec.flavor : undefined],
        [
          'Old flavor',
          s.oldFlavor ? `${flavorText(s.oldFlavor)} (until the resize is confirmed or reverted)` : undefined,
        ],
        ['Image', inst.spec.image],
        [
          'Server group',
          inst.spec.serverGroup
            ? `${inst.spec.serverGroup}${group ? ` (${group.spec.policy})` : ' (not found)'}`
            : undefined,
        ],
        ['Evacuation', inst.spec.evacuationPolicy === 'Automatic' ? 'Automatic' : undefined],
        ['Launched', s.launchedAt ? `${s.launchedAt} (${age(s.launchedAt, now)} ago)` : undefined],
        ['Age', age(inst.metadata.creationTimestamp, now)],
        ['Scheduling', attempts],
      ],
      WIDTH,
    ).trimEnd(),
  );
  for (const f of scheduling?.failures ?? []) {
    out.push(`  attempt ${f.attempt} on ${f.host}: ${f.reason ?? 'ClaimFailed'}: ${f.message}`);
  }
  if (s.guest?.reportedAt) {
    const g = s.guest;
    out.push(
      `${label('Guest')}${g.vcpus ?? '?'} vCPUs, ${g.memoryKiB ?? '?'} KiB, disk ${g.diskBytes ?? '?'} bytes` +
        ` (reported ${age(g.reportedAt, now)} ago)`,
    );
  }
  if (migration) {
    out.push(`${label('Migration')}${migrationLine(migration)}`);
    const ms = migration.status ?? {};
    if (ms.stepDeadline) out.push(`  step deadline ${ms.stepDeadline} (in ${deadlineIn(ms.stepDeadline, now)})`);
    if (ms.confirmDeadline) out.push(`  confirmed automatically at ${ms.confirmDeadline}`);
    if (ms.rollback) out.push(`  rolling back: ${ms.rollback.reason}: ${ms.rollback.message}`);
    const hint = migrationHint(migration, name);
    if (hint) out.push(`  ${hint}`);
    if (ms.fault) out.push(`  fault: ${faultLines(ms.fault, '    ').join('\n')}`);
  } else if (s.migration) {
    out.push(`${label('Migration')}${s.migration} (not found)`);
  }
  if (s.fault) out.push(`${label('Fault')}${faultLines(s.fault).join('\n')}`);
  out.push('Conditions:');
  out.push(conditionsTable(s.conditions, now).trimEnd());
  out.push(`Events${events.length > eventLimit ? ` (last ${eventLimit} of ${events.length})` : ''}:`);
  out.push(eventsTable(events, now, eventLimit).trimEnd());
  return out.join('\n') + '\n';
}

function deadlineIn(deadline: string, now: Date): string {
  const ms = new Date(deadline).getTime() - now.getTime();
  return ms >= 0 ? age(new Date(now.getTime() - ms), now) : `passed ${age(deadline, now)} ago`;
}
