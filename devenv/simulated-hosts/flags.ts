// The simulated-hosts launcher's own flags; every other flag is the node agent's
// (node-agent/config.ts), parsed by the node agent's parser.
import type { FlagSpec } from '../../common/config.js';

export const SIMULATION_FLAGS = {
  hosts: {
    type: 'number',
    env: 'KUBENOVA_SIMULATE_HOSTS',
    default: 1,
    min: 1,
    description: 'How many hosts this process poses as',
  },
  'host-offset': {
    type: 'number',
    env: 'KUBENOVA_SIMULATE_HOST_OFFSET',
    default: 0,
    min: 0,
    description: 'Index of the first host, so several processes can split one numbered range',
  },
  'host-prefix': {
    type: 'string',
    env: 'KUBENOVA_SIMULATE_HOST_PREFIX',
    default: 'sim',
    description: 'Host names are <prefix>-<index>',
  },
  'host-kubeconfig': {
    type: 'string',
    env: 'KUBENOVA_SIMULATE_HOST_KUBECONFIG',
    description:
      "Each host's own kubeconfig, {host} standing for its name (so the operator can tell which host asks for a " +
      'transfer certificate); default: --kubeconfig for every host',
  },
} as const satisfies Record<string, FlagSpec>;

/** Splits argv into this launcher's flags (all of which take a value) and the node agent's. */
export function splitArgs(argv: readonly string[]): { own: string[]; agent: string[] } {
  const own: string[] = [];
  const agent: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--([^=]+)(=.*)?$/.exec(arg);
    if (m && Object.hasOwn(SIMULATION_FLAGS, m[1]!)) {
      own.push(arg);
      if (m[2] === undefined && i + 1 < argv.length) own.push(argv[++i]!);
    } else {
      agent.push(arg);
    }
  }
  return { own, agent };
}
