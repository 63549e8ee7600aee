// What the operator's scheduler sees of a host. It decides from a watch-fed cache of
// ComputeNodes, and nothing it writes says which version of a ComputeNode it holds: a change
// an admin made (spec.disabled) is in the API at once, but in the scheduler's view only a
// little later. A scenario that needs the scheduler to act on the change asks the scheduler
// itself first, with probe instances.
import type { Instance } from '../../common/api/types.js';
import type { TestEnv } from './env.js';

let probes = 0;

/**
 * Resolves once the operator's scheduler keeps new instances off `host` because of a change to
 * its ComputeNode that is already in the API (spec.disabled, spec.forcedDown). `flavor` must be
 * one that only `host` can take and has been able to take since before the change (a
 * `node:<label>` extra spec matching a label `host` registered with). A probe of that flavor
 * then fails NoValidHost, ComputeFilter removing `host`, exactly when the scheduler's view of
 * `host` includes the change; a probe placed on `host` shows an older view, so it is deleted
 * and another is asked for. The cache only moves forward, so every later decision, and every
 * check the operator makes against the same cache (a Migration's targetHost), sees the change
 * too. The probes are deleted before this returns.
 */
export async function untilSchedulerAvoids(
  env: TestEnv,
  host: string,
  flavor: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const made: string[] = [];
  try {
    for (;;) {
      const name = `probe-${host}-${++probes}`;
      made.push(name);
      env.apply({
        apiVersion: 'compute.kubenova.io/v1alpha1',
        kind: 'Instance',
        metadata: { name },
        spec: { flavor, image: 'cirros' },
      });
      const probe: Instance = await env.waitForInstance(
        name,
        (i) => i.status?.vmState === 'error' || (i.status?.vmState === 'active' && i.status.taskState === ''),
        'placed or refused',
        Math.max(deadline - Date.now(), 1_000),
      );
      const fault = probe.status?.fault;
      if (fault?.reason === 'NoValidHost' && /ComputeFilter removed/.test(fault.message)) return;
      const older = probe.status?.host === host || fault?.reason === 'FlavorNotFound';
      if (!older) {
        throw new Error(
          `probe ${name} of flavor ${flavor} (meant to fit only ${host}) ended ${probe.status?.vmState} ` +
            `on ${probe.status?.host ?? 'no host'}${fault ? ` (${fault.reason}: ${fault.message})` : ''}`,
        );
      }
      // Placed on the host (or the flavor not yet seen): the scheduler's view is older than the change.
      if (Date.now() > deadline) throw new Error(`the scheduler still placed ${name} on ${host} after ${timeoutMs} ms`);
      env.kubectl(['delete', 'instance', name, '--wait=false']);
    }
  } finally {
    for (const name of made) env.kubectl(['delete', 'instance', name, '--wait=false', '--ignore-not-found']);
    await env.waitFor(
      `probes ${made.join(', ')} deleted`,
      async () => (await Promise.all(made.map((n) => env.instance(n)))).every((i) => i === undefined),
      60_000,
    );
  }
}
