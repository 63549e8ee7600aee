// The kubelet sets a few machine-wide kernel settings at start (vm.overcommit_memory=1,
// kernel.panic=10, kernel.panic_on_oops=1). They are not the environment's to keep: the
// first environment to start records the values the machine had, and the last kubelet to
// go puts them back. The record is shared by every environment on this machine.
import { readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { listProcesses } from './processes.js';

const KEYS = ['vm/overcommit_memory', 'kernel/panic', 'kernel/panic_on_oops'];
const RECORD = '/run/kubenova/kernel-tunables.json';

/** Records the machine's values unless an earlier environment already did (its record holds the originals). */
export function recordKernelTunables(): void {
  mkdirSync('/run/kubenova', { recursive: true });
  const values: Record<string, string> = {};
  for (const key of KEYS) values[key] = readFileSync(`/proc/sys/${key}`, 'utf8').trim();
  try {
    writeFileSync(RECORD, JSON.stringify(values), { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** Restores the recorded values once no kubelet runs on this machine any more. */
export function restoreKernelTunables(): void {
  if (listProcesses().some((p) => p.comm === 'kubelet')) return;
  let values: Record<string, string>;
  try {
    values = JSON.parse(readFileSync(RECORD, 'utf8')) as Record<string, string>;
  } catch {
    return;
  }
  for (const key of KEYS) {
    const value = values[key];
    if (value !== undefined) writeFileSync(`/proc/sys/${key}`, value);
  }
  rmSync(RECORD, { force: true });
}
