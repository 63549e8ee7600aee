// The claim invariant checked while a scenario runs; shared with the benchmark, so it lives
// in devenv/invariants.ts. A scenario checks `(await watcher.stop()).violations` is empty:
// that fails on a violated invariant, and on a watcher that took no sample or whose samples
// failed.
export { checkNode, InvariantWatcher, watcherProblems, type InvariantReport } from '../../devenv/invariants.js';
