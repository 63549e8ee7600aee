// The e2e suite against an external cluster (e2e/kind/run.sh sets KUBENOVA_E2E_KUBECONFIG):
// no global setup, since nothing needs the local control-plane build, and one file at a
// time, since every file shares the one cluster.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['e2e/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
