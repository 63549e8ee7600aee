// Where the scenarios run. By default each test file starts its own local control plane,
// operator and node agents. With KUBENOVA_E2E_KUBECONFIG set (e2e/kind/run.sh does), they
// run against that cluster instead, where kubenova was installed with its Helm chart: no
// local processes, no host state directories, and the node names are the cluster's.
import { describe } from 'vitest';

/** The kubeconfig of an external cluster, when the suite runs against one. */
export const externalKubeconfig: string | undefined = process.env.KUBENOVA_E2E_KUBECONFIG || undefined;

/** True when the suite runs against an external cluster (KUBENOVA_E2E_KUBECONFIG). */
export const external = externalKubeconfig !== undefined;

/**
 * `describe` for scenarios that need what only the local environment has: agents and the
 * operator as local processes (kill, restart, extra flags), their state directories, or
 * fixed node names. Skipped against an external cluster; a file whose every test is
 * skipped runs none of its hooks either, so its `TestEnv.start` never runs there.
 *
 *   localOnly('boot', () => { it(...) });
 */
export const localOnly = describe.skipIf(external);

/** `describe` for scenarios that make sense only against an external cluster. */
export const externalOnly = describe.runIf(external);
