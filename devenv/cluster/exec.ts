// Running the system tools a node is made of (ip, iptables, nsenter, ctr, mount), each call
// with a deadline and an error that names the command and what it printed.
import { execFile } from 'node:child_process';

export interface RunOptions {
  /** Milliseconds before the command is killed and the call fails (default 60 s). */
  timeoutMs?: number;
  input?: string;
  /** What to tell the user when the command fails or is missing. */
  hint?: string;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
    message: string,
  ) {
    super(message);
  }
}

/** Runs a command and resolves with its stdout; rejects naming the command, its stderr and the hint. */
export function run(command: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const timeout = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { timeout, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const line = [command, ...args].join(' ');
        const code = err as NodeJS.ErrnoException & { killed?: boolean };
        const why =
          code.code === 'ENOENT'
            ? `${command} is not installed`
            : code.killed
              ? `no answer within ${timeout} ms`
              : stderr.trim() || err.message;
        const hint = opts.hint ? `\n${opts.hint}` : '';
        reject(new CommandError(line, stderr, `\`${line}\` failed: ${why}${hint}`));
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like run, but a failure is only returned, for steps that may find nothing to do (idempotent teardown). */
export async function tryRun(command: string, args: string[], opts: RunOptions = {}): Promise<boolean> {
  try {
    await run(command, args, opts);
    return true;
  } catch {
    return false;
  }
}

/**
 * The prefix that runs a command inside a node's network namespace and nothing else: unlike
 * `ip netns exec`, nsenter leaves /sys alone, so the kubelet still sees the cgroup mounts.
 */
export function inNetns(netnsPath: string, command: string, args: string[]): { command: string; args: string[] } {
  return { command: 'nsenter', args: [`--net=${netnsPath}`, '--', command, ...args] };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Thrown by a waitFor check when waiting longer cannot help (a daemon it waits for has exited). */
export class GiveUp extends Error {}

/**
 * Polls until check() returns a value, or fails after timeoutMs naming what it waited for and
 * the last error; a GiveUp from check() fails it at once.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 500,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      if (err instanceof GiveUp) throw new Error(`${what}: ${err.message}`, { cause: err });
      last = (err as Error).message;
    }
    await sleep(intervalMs);
  }
  throw new Error(`${what}: not done after ${Math.round(timeoutMs / 1000)} s${last ? ` (last error: ${last})` : ''}`);
}
