import { defineConfig } from 'vitest/config';

// Unit tests are pure logic and run in parallel. Integration tests each start a real
// control plane and several processes; two at a time fit this kind of machine.
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
          pool: 'forks',
          maxWorkers: Number(process.env.KUBENOVA_TEST_WORKERS ?? 2),
          fileParallelism: true,
          sequence: { groupOrder: 1 },
          testTimeout: 180_000,
          hookTimeout: 300_000,
          globalSetup: ['e2e/harness/global-setup.ts'],
        },
      },
    ],
  },
});
