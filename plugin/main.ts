// kubectl-nova's entry point (bin/kubectl-nova runs it): parse, run one command, and exit 0,
// or print `error: <what went wrong>` and exit non-zero.
import { CommanderError } from 'commander';
import { describeError, UserError } from './errors.js';
import { processIO, type IO } from './io.js';
import { buildProgram, normalizeArgs } from './program.js';
import { connect, type GlobalOptions, type Session } from './session.js';

/** Runs one command line (argv without node and the script); resolves with the exit code. */
export async function run(args: readonly string[], io: IO = processIO): Promise<number> {
  let session: Session | undefined;
  const program = buildProgram({
    io,
    connect: (opts: GlobalOptions) => (session = connect(opts)),
  });
  try {
    await program.parseAsync(normalizeArgs(args), { from: 'user' });
    return 0;
  } catch (err) {
    // commander has printed its own message (usage errors) or the help/version (exit 0).
    if (err instanceof CommanderError) return err.exitCode;
    io.err(`error: ${describeError(err, session?.server)}\n`);
    return err instanceof UserError ? err.exitCode : 1;
  }
}

export async function main(): Promise<void> {
  const code = await run(process.argv.slice(2));
  // Watches and keep-alive sockets must not hold the process open.
  process.stdout.write('', () => process.exit(code));
}
