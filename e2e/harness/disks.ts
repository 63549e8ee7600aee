// What is on a host's disk for an instance, for scenarios that follow the bytes.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function instanceDir(stateDir: string, host: string, uid: string): string {
  return join(stateDir, host, 'instances', uid);
}

export function backupDir(stateDir: string, host: string, uid: string): string {
  return join(stateDir, host, 'instances', `${uid}_resize`);
}

export function diskBytes(stateDir: string, host: string, uid: string): Buffer | undefined {
  const path = join(instanceDir(stateDir, host, uid), 'disk.img');
  return existsSync(path) ? readFileSync(path) : undefined;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
