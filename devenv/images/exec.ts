// Runs the build's tools (umoci, mmdebstrap, gcc, npm, tar) as child processes and turns a
// failure into one error that says what failed and what to do about it, instead of a bare
// exit code far away from the tool's own message.
import { spawn } from 'node:child_process';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** What to do when the command fails, appended to the error (e.g. which setup script to run). */
  hint?: string;
  /** Called with each chunk of stderr, for long steps whose progress is worth showing. */
  onStderr?: (chunk: string) => void;
}

export const SETUP_HINT = 'run `bash devenv/images/setup.sh` as root to install the image build tools';

/** How much of a failed command's stderr goes into the error: the end holds the cause. */
const STDERR_TAIL = 4000;

export class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

function describe(cmd: string, args: readonly string[]): string {
  const shown = [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  return shown.length > 300 ? `${shown.slice(0, 300)}...` : shown;
}

/** Runs `cmd args` to completion and resolves with its stdout; rejects with a CommandError. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      const s = c.toString('utf8');
      err = (err + s).slice(-STDERR_TAIL);
      opts.onStderr?.(s);
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'ENOENT' ? `${cmd} is not installed` : e.message;
      reject(new CommandError(`${describe(cmd, args)}: ${why}; ${opts.hint ?? SETUP_HINT}`, null, err));
    });
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(Buffer.concat(out).toString('utf8'));
      let message = `${describe(cmd, args)} failed (${signal ? `killed by ${signal}` : `exit ${code}`})`;
      if (err.trim()) message += `:\n${err.trim()}`;
      if (opts.hint) message += `\n${opts.hint}`;
      reject(new CommandError(message, code, err));
    });
  });
}
