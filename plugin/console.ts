// `kubectl nova console NAME [-f]`: the guest's serial console log. The libvirt driver has
// virtlogd write every guest's serial port to <state-dir>/<host>/console/<uid>.log on the
// instance's host (node-agent/driver/libvirt.ts), restarted at each boot. The plugin reads it
// through the node agent's pod on that host with `exec` (the API server's pods/exec): the
// chart's agent container already mounts the state directory and runs as root, who may read
// the logs, so nothing new is opened on the node. The agent's metrics port, the other way in,
// is plain HTTP on the host network with no authentication; serving guest consoles there would
// need authentication and authorization the agent does not have, while exec goes through the
// API server's authentication, RBAC (pods/exec in the release namespace, cluster admins only)
// and audit log.
//
// Agents running as local processes (`npm start -- --driver libvirt`) have no pod: there,
// --state-dir reads the file from the agents' state directory on this machine. The fake driver
// simulates guests: they have no console, and the plugin says so.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Exec, type V1Pod, type V1Status } from '@kubernetes/client-node';
import { UserError, describeError, httpStatus } from './errors.js';
import type { IO } from './io.js';
import { getInstance } from './migrations.js';
import type { Session } from './session.js';

export const AGENT_POD_SELECTOR = 'app.kubernetes.io/part-of=kubenova,app.kubernetes.io/component=node-agent';
export const AGENT_CONTAINER = 'node-agent';
export const DEFAULT_AGENT_NAMESPACE = 'kubenova-system';
const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HOST = /^[A-Za-z0-9.-]+$/;

/** Exit code of the in-pod command when there is no console log (yet). */
export const NO_LOG_EXIT = 3;

/**
 * The command run in the agent's container: prints (or follows, surviving the file being
 * recreated at the next boot) the console log of instance `uid` on `host`. The state directory
 * comes from the container's own environment (the chart's nodeAgent.stateDir).
 */
export function consoleExecCommand(host: string, uid: string, follow: boolean): string[] {
  if (!UID.test(uid)) throw new UserError(`instance uid ${JSON.stringify(uid)} is not a uid`);
  if (!HOST.test(host)) throw new UserError(`host name ${JSON.stringify(host)} is not valid`);
  const script = [
    'f="${KUBENOVA_STATE_DIR:-/var/lib/kubenova}/$1/console/$2.log"',
    `if [ "$3" = follow ]; then exec tail -n +1 -F "$f" 2>/dev/null; fi`,
    `[ -e "$f" ] || { echo "no console log at $f" >&2; exit ${NO_LOG_EXIT}; }`,
    'exec cat "$f"',
  ].join('\n');
  return ['sh', '-c', script, 'console', host, uid, follow ? 'follow' : 'once'];
}

/** The agent pod serving `host`: on that node, running, the newest if several. */
export function pickAgentPod(pods: readonly V1Pod[], host: string): V1Pod | undefined {
  return pods
    .filter((p) => p.spec?.nodeName === host && p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp)
    .sort(
      (a, b) =>
        new Date(b.metadata?.creationTimestamp ?? 0).getTime() - new Date(a.metadata?.creationTimestamp ?? 0).getTime(),
    )[0];
}

/** The exit code a finished exec reports (0 on Success). */
export function execExitCode(status: V1Status | undefined): number {
  if (!status || status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  return cause?.message ? Number(cause.message) : 1;
}

export interface ConsoleOptions {
  follow?: boolean;
  /** Agents running as local processes: their --state-dir on this machine. */
  stateDir?: string;
  agentNamespace?: string;
}

export async function consoleLog(session: Session, io: IO, name: string, opts: ConsoleOptions): Promise<void> {
  const inst = await getInstance(session, name);
  const host = inst.status?.host;
  const uid = inst.metadata.uid ?? '';
  if (!host) throw new UserError(`instance ${name} has no host yet: there is no console to read`);
  const node = await session.kube.computeNodes.get({ name: host }).catch(() => undefined);
  if (node?.status?.driver === 'fake')
    throw new UserError(
      `instance ${name} runs on host ${host}, whose agent uses the fake driver: its guests are simulated and ` +
        `have no serial console, so there is nothing to show. Real guests (the libvirt driver) have one.`,
    );
  // Following ends on Ctrl-C (SIGINT) or SIGTERM, as kubectl logs -f does, with exit code 0.
  const stop = { requested: false, hook: () => {} };
  const onSignal = () => {
    stop.requested = true;
    stop.hook();
  };
  if (opts.follow) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, onSignal);
  try {
    if (opts.stateDir)
      return await localConsole(io, join(opts.stateDir, host, 'console', `${uid}.log`), name, opts.follow, stop);
    return await execConsole(
      session,
      io,
      { name, host, uid, follow: Boolean(opts.follow), agentNamespace: opts.agentNamespace },
      stop,
    );
  } finally {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.off(sig, onSignal);
  }
}

interface Stop {
  requested: boolean;
  hook: () => void;
}

async function execConsole(
  session: Session,
  io: IO,
  target: { name: string; host: string; uid: string; follow: boolean; agentNamespace?: string },
  stop: Stop,
): Promise<void> {
  const { name, host, uid } = target;
  const pod = await findAgentPod(session, host, target.agentNamespace);
  const command = consoleExecCommand(host, uid, target.follow);
  const stderr: string[] = [];
  const code = await new Promise<number>((resolve, reject) => {
    const out = new Writable({
      write(chunk: Buffer, _enc, done) {
        io.out(chunk.toString('utf8'));
        done();
      },
    });
    const err = new Writable({
      write(chunk: Buffer, _enc, done) {
        stderr.push(chunk.toString('utf8'));
        done();
      },
    });
    new Exec(session.kc)
      .exec(pod.namespace, pod.name, AGENT_CONTAINER, command, out, err, null, false, (status) =>
        resolve(execExitCode(status)),
      )
      .then((ws) => {
        stop.hook = () => ws.close();
        if (stop.requested) ws.close();
        ws.on('close', () => resolve(0));
        ws.on('error', (e: Error) => reject(e));
      })
      .catch((e: unknown) => {
        if (httpStatus(e) === 403 || /403/.test(String((e as Error)?.message)))
          reject(
            new UserError(
              `reading a console execs into the node agent's pod ${pod.namespace}/${pod.name}, which needs ` +
                `permission to create pods/exec in namespace ${pod.namespace} (cluster admins have it)`,
            ),
          );
        else reject(e);
      });
  });
  if (code === NO_LOG_EXIT)
    throw new UserError(
      `instance ${name} has no console log on ${host} yet: the guest has not been started there (is it stopped?)`,
    );
  if (code !== 0)
    throw new UserError(`reading the console on ${host} failed (exit ${code}): ${stderr.join('').trim()}`);
}

async function findAgentPod(
  session: Session,
  host: string,
  agentNamespace?: string,
): Promise<{ namespace: string; name: string }> {
  const fieldSelector = `spec.nodeName=${host}`;
  let pods: V1Pod[];
  try {
    pods = agentNamespace
      ? (
          await session.core.listNamespacedPod({
            namespace: agentNamespace,
            labelSelector: AGENT_POD_SELECTOR,
            fieldSelector,
          })
        ).items
      : (await session.core.listPodForAllNamespaces({ labelSelector: AGENT_POD_SELECTOR, fieldSelector })).items;
  } catch (err) {
    if (httpStatus(err) !== 403) throw err;
    if (agentNamespace) throw forbidden(agentNamespace, err);
    // Not allowed to list pods cluster-wide: try the chart's usual release namespace.
    try {
      pods = (
        await session.core.listNamespacedPod({
          namespace: DEFAULT_AGENT_NAMESPACE,
          labelSelector: AGENT_POD_SELECTOR,
          fieldSelector,
        })
      ).items;
    } catch (err2) {
      if (httpStatus(err2) === 403) throw forbidden(DEFAULT_AGENT_NAMESPACE, err2);
      throw err2;
    }
  }
  const pod = pickAgentPod(pods, host);
  if (!pod?.metadata?.name || !pod.metadata.namespace)
    throw new UserError(
      `no running kubenova node agent pod on node ${host}${agentNamespace ? ` in namespace ${agentNamespace}` : ''}. ` +
        'The console is read through the agent pod the Helm chart runs on each node; for agents run as local ' +
        'processes (npm start), pass --state-dir with their state directory.',
    );
  return { namespace: pod.metadata.namespace, name: pod.metadata.name };
}

function forbidden(namespace: string, err: unknown): UserError {
  return new UserError(
    `reading a console execs into the node agent's pod, which needs permission to list pods and create ` +
      `pods/exec in its namespace (${namespace}; --agent-namespace names another); cluster admins have it. ` +
      `The API server said: ${describeError(err)}`,
  );
}

/** Prints a console log file; with follow, keeps printing what is appended (and starts over when it is recreated). */
async function localConsole(
  io: IO,
  path: string,
  name: string,
  follow: boolean | undefined,
  stop: Stop,
): Promise<void> {
  if (!follow && !existsSync(path))
    throw new UserError(`instance ${name} has no console log at ${path}: the guest has not been started on that host`);
  let offset = 0;
  let inode = -1;
  while (true) {
    if (existsSync(path)) {
      const st = statSync(path);
      if (st.ino !== inode || st.size < offset) {
        inode = st.ino;
        offset = 0;
      }
      if (st.size > offset) {
        const fd = openSync(path, 'r');
        try {
          const buf = Buffer.alloc(st.size - offset);
          const n = readSync(fd, buf, 0, buf.length, offset);
          offset += n;
          io.out(buf.subarray(0, n).toString('utf8'));
        } finally {
          closeSync(fd);
        }
      }
    }
    if (!follow || stop.requested) return;
    await io.sleep(500);
  }
}
