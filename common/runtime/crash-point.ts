// Fault injection for the crash suite: KUBENOVA_TEST_CRASH_AT=<point> makes the process
// SIGKILL itself the first time it reaches that point — between two writes that a real
// crash could separate — so tests can prove each step resumes. Unset, it costs one compare.
const target = process.env.KUBENOVA_TEST_CRASH_AT;

export function crashPoint(name: string): void {
  if (target !== undefined && target === name) {
    process.stderr.write(`crash point ${name} reached: killing this process (test hook)\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
