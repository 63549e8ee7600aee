// The claim invariant checked while a scenario runs; shared with the benchmark, so it lives
// in devenv/invariants.ts.
export { checkNode, InvariantWatcher, type InvariantReport } from '../../devenv/invariants.js';
