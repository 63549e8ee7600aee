// The guardian: a small process beside every cluster that removes the environment when the
// process that started it dies without doing so itself (SIGKILL, a crash). The node daemons
// die with their parent by pdeathsig, but containerd's shims and the containers detach from
// it on purpose; the guardian gets its own pdeathsig (SIGTERM) and runs the same teardown a
// normal stop runs.
//
//   node guardian.js <state-dir> <parent-pid>
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { environmentNames } from './plan.js';
import { teardownEnvironment } from './teardown.js';

/** Starts the guardian for this process. Not a ManagedProcess: it must outlive this process's exit hooks. */
export function startGuardian(stateDir: string, repoRoot: string): ChildProcess {
  const self = fileURLToPath(import.meta.url);
  // From the sources (tests) the guardian runs through tsx; from dist/ it is plain JavaScript.
  const nodeArgs = self.endsWith('.ts') ? ['--import', 'tsx', self] : [self];
  const child = spawn(
    '/usr/bin/setpriv',
    ['--pdeathsig', 'TERM', '--', process.execPath, ...nodeArgs, stateDir, String(process.pid)],
    { cwd: repoRoot, stdio: 'ignore', detached: true },
  );
  child.unref();
  return child;
}

async function main(): Promise<void> {
  const [stateDir, parentText] = process.argv.slice(2);
  const parent = Number(parentText);
  if (!stateDir || !Number.isInteger(parent)) throw new Error('usage: guardian <state-dir> <parent-pid>');
  let done = false;
  const teardown = async () => {
    if (done) return;
    done = true;
    try {
      await teardownEnvironment(environmentNames(stateDir));
    } catch (err) {
      process.stderr.write(`guardian: ${(err as Error).message}\n`);
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => void teardown());
  process.on('SIGHUP', () => void teardown());
  // Ctrl-C reaches the whole process group: the parent handles it and stops us itself.
  process.on('SIGINT', () => undefined);
  // pdeathsig fires only if the parent dies after it was set: check once, then now and then.
  const check = () => {
    if (process.ppid !== parent) void teardown();
  };
  check();
  setInterval(check, 2_000);
}

if (process.argv[1] && existsSync(process.argv[1]) && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`guardian: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
