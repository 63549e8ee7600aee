// Scenarios for the migration sides' unit tests: a resize started the way the operator starts
// it, and the work of each side run step by step. Where a test needs the result of a disk
// transfer between two hosts, the source's half is done here directly on the drivers (the
// transfer itself is covered by node-agent/transfer's own tests).
import { cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FlavorSnapshot, Instance, Migration } from '../../common/api/types.js';
import type { FakeCluster } from '../../common/kube/fake.js';
import { MEDIUM, SMALL, bootOn, startResize, type TestHost } from '../testing.js';

export const MIG = 'web-1-resize-2';
export const MIG_KEY = `default/${MIG}`;
export const INST_KEY = 'default/web-1';

export interface Resize {
  inst: Instance;
  mig: Migration;
  uid: string;
  migUid: string;
}

/** web-1 runs on `source` with m1.small; Migration web-1-resize-2 asks for `flavor` on `dest`. */
export async function resizeStarted(
  cluster: FakeCluster,
  source: TestHost,
  dest: TestHost,
  flavor: FlavorSnapshot = MEDIUM,
  name = MIG,
): Promise<Resize> {
  const booted = cluster.get('Instance', 'web-1') ?? (await bootOn(source, cluster, 'web-1', SMALL));
  const mig = await startResize(cluster, booted, name, dest.name, flavor);
  return { inst: cluster.get('Instance', 'web-1')!, mig, uid: booted.metadata.uid!, migUid: mig.metadata.uid! };
}

/** Both sides' steps of a same-host resize up to `finished` (claim, send, finish). */
export async function sameHostToFinished(host: TestHost, key = MIG_KEY): Promise<void> {
  await host.destination.reconcile(key); // pre-migrating: claim, destHost
  await host.source.reconcile(key); // pre-migrating -> migrating -> post-migrating
  await host.destination.reconcile(key); // post-migrating -> finished
}

/**
 * A cross-host resize up to `finished`: the destination claims (its real step); the source's
 * half (power off, keep the backup, a verified transfer staged on the destination, the
 * post-migrating write) is done here directly; the destination finishes (its real step).
 */
export async function crossHostToFinished(
  cluster: FakeCluster,
  source: TestHost,
  dest: TestHost,
  r: Resize,
): Promise<void> {
  await dest.destination.reconcile(MIG_KEY);
  await stageTransfer(cluster, source, dest, r);
  await dest.destination.reconcile(MIG_KEY);
}

/** What a successful send leaves: the source powered off with its backup, the copy verified in staging. */
export async function stageTransfer(cluster: FakeCluster, source: TestHost, dest: TestHost, r: Resize): Promise<void> {
  const exported = await source.driver.migrateOut(r.uid);
  // <staging>/<migration uid>/<credential>/ (node-agent/transfer/protocol.ts)
  const staged = join(dest.stagingDir, r.migUid, '0123456789abcdef');
  await cp(exported.dir, join(staged, 'files'), { recursive: true });
  await writeFile(join(staged, 'complete'), '{"files":[]}\n');
  const kube = cluster.client();
  await kube.instances.patchStatus(cluster.get('Instance', 'web-1')!, {
    taskState: 'resize_migrated',
    taskHosts: [source.name, dest.name],
  });
  await kube.migrations.patchStatus(cluster.get('Migration', MIG)!, { status: 'post-migrating' });
}
