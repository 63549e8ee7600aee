// Child processes that can never outlive the process that started them: each one is
// launched through `setpriv --pdeathsig`, so the kernel signals it when its parent dies,
// even when the parent is SIGKILLed and no exit handler runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Where its output goes, when it goes to a file. */
  readonly logFile?: string;
  /** Resolves with the exit code (or signal) when the process has ended. */
  readonly exited: Promise<number | NodeJS.Signals>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

export interface StartOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** File to append stdout and stderr to; when absent output is inherited. */
  logFile?: string;
  /** Pipe output to the caller instead (for npm start's readable log). */
  onOutput?: (chunk: Buffer) => void;
}

const SETPRIV = '/usr/bin/setpriv';

const live = new Set<ManagedProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of live) p.child.kill('SIGKILL');
  });
}

export function startProcess(opts: StartOptions): ManagedProcess {
  installExitHook();
  const useSetpriv = existsSync(SETPRIV);
  const command = useSetpriv ? SETPRIV : opts.command;
  const args = useSetpriv ? ['--pdeathsig', 'KILL', '--', opts.command, ...opts.args] : opts.args;
  let log: WriteStream | undefined;
  const child = spawn(command, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: [
      'ignore',
      opts.logFile || opts.onOutput ? 'pipe' : 'inherit',
      opts.logFile || opts.onOutput ? 'pipe' : 'inherit',
    ],
  });
  if (opts.logFile) {
    log = createWriteStream(opts.logFile, { flags: 'a' });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
  } else if (opts.onOutput) {
    child.stdout?.on('data', opts.onOutput);
    child.stderr?.on('data', opts.onOutput);
  }
  if (child.pid === undefined) throw new Error(`could not start ${opts.name} (${opts.command})`);
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(managed);
      log?.end();
      resolve(code ?? signal ?? 0);
    });
  });
  const managed: ManagedProcess = {
    name: opts.name,
    pid: child.pid,
    child,
    ...(opts.logFile ? { logFile: opts.logFile } : {}),
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000) {
      if (hasExited(managed)) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (hasExited(managed)) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
  live.add(managed);
  return managed;
}

/** Whether the process has ended, by exiting or by a signal. */
export function hasExited(p: ManagedProcess): boolean {
  return p.child.exitCode !== null || p.child.signalCode !== null;
}

/** The last `lines` lines of a process's log, for the error that says why it did not start. */
export function logTail(logFile: string, lines: number): string {
  return existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-lines).join('\n') : '';
}

/** How a process ended and the last `lines` of its log, for the error or warning that reports it. */
export function describeExit(p: ManagedProcess, lines: number): string {
  const code = p.child.exitCode ?? p.child.signalCode;
  return `${p.name} exited (${code}); its log (${p.logFile ?? 'none'}) ends:\n${p.logFile ? logTail(p.logFile, lines) : ''}`;
}

/** A loopback port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (typeof address !== 'object' || address === null) return reject(new Error('no port'));
      server.close(() => resolve(address.port));
    });
  });
}
