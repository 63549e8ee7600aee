import { defineConfig } from 'vitest/config';

// Unit tests are pure logic and run in parallel. Integration tests each start a real
// control plane and several processes; two at a time fit this kind of machine. The real-node
// suites come last, one at a time: they share machine-wide places (containerd's shim socket
// directory, CNI caches, kernel settings) and each proves it leaves nothing behind there.
const REAL_NODES = ['e2e/cluster.test.ts', 'e2e/images.test.ts', 'e2e/real-nodes.test.ts'];
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: [
            'common/**/*.test.ts',
            'operator/**/*.test.ts',
            'node-agent/**/*.test.ts',
            'plugin/**/*.test.ts',
            'devenv/**/*.test.ts',
            'tools/**/*.test.ts',
          ],
          pool: 'threads',
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['e2e/**/*.test.ts'],
          exclude: REAL_NODES,
          pool: 'forks',
          maxWorkers: Number(process.env.KUBENOVA_TEST_WORKERS ?? 2),
          fileParallelism: true,
          sequence: { groupOrder: 1 },
          testTimeout: 180_000,
          hookTimeout: 300_000,
          globalSetup: ['e2e/harness/global-setup.ts'],
        },
      },
      {
        test: {
          name: 'real-nodes',
          include: REAL_NODES,
          pool: 'forks',
          maxWorkers: 1,
          fileParallelism: false,
          sequence: { groupOrder: 2 },
          testTimeout: 600_000,
          hookTimeout: 1_800_000,
          globalSetup: ['e2e/harness/global-setup.ts'],
        },
      },
    ],
  },
});
