// The test harness starts kubenova's components the way `npm start` and the benchmark do:
// the code lives in devenv/components.ts.
export {
  applySampleFlavors,
  distDir,
  installCrds,
  installFinalizerPolicy,
  waitForFinalizerPolicy,
  repoRoot,
  startAgent,
  startOperator,
  type AgentSpec,
  type ComponentOutput,
} from '../../devenv/components.js';
