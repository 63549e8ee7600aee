// Command-line flags with environment-variable fallbacks (the Helm chart sets env), each
// validated at start with an error that names the flag and the value expected.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

type Kind = 'string' | 'number' | 'boolean';
export interface FlagSpec<K extends Kind = Kind> {
  type: K;
  env?: string;
  default?: K extends 'string' ? string : K extends 'number' ? number : boolean;
  description: string;
  min?: number;
  choices?: readonly string[];
}

type ValueOf<S extends FlagSpec> = S['type'] extends 'string' ? string : S['type'] extends 'number' ? number : boolean;
export type Parsed<T extends Record<string, FlagSpec>> = {
  [K in keyof T]: T[K] extends { default: unknown } ? ValueOf<T[K]> : ValueOf<T[K]> | undefined;
};

export class ConfigError extends Error {}

/** `--help` or `-h` was given: the usage is the message, and it is not an error. */
export class HelpRequested extends ConfigError {}

/**
 * How a process ends when it cannot start: `--help` prints the usage and exits 0, a bad flag
 * says what is wrong and exits 2, anything else prints its stack and exits 1.
 */
export function exitOnError(program: string): (err: unknown) => void {
  return (err) => {
    if (err instanceof HelpRequested) {
      process.stdout.write(`usage: ${program} [flags]\n${err.message}\n`);
      process.exit(0);
    }
    const message = err instanceof ConfigError ? err.message : ((err as Error).stack ?? String(err));
    process.stderr.write(`${program}: ${message}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  };
}

/** Where every component serves /metrics, /healthz and /readyz. */
export const METRICS_FLAGS = {
  'metrics-port': {
    type: 'number',
    env: 'KUBENOVA_METRICS_PORT',
    default: 0,
    min: 0,
    description: 'Port for /metrics, /healthz, /readyz (0 = any free port)',
  },
  'metrics-address': {
    type: 'string',
    env: 'KUBENOVA_METRICS_ADDRESS',
    default: '127.0.0.1',
    description: 'Address for the metrics server',
  },
} as const satisfies Record<string, FlagSpec>;

/** How long a migration phase may take, for whoever starts one (operator or agent). */
export const STEP_FLAGS = {
  'step-timeout': {
    type: 'number',
    env: 'KUBENOVA_STEP_TIMEOUT',
    default: 300,
    min: 1,
    description:
      'Seconds a migration phase may take before it is rolled back onto the source (KubeVirt gives a stuck migration 5 minutes)',
  },
} as const satisfies Record<string, FlagSpec>;

/** The namespace kubenova is installed in: transfer credentials and the agents' CA live there only. */
export const RELEASE_FLAGS = {
  'release-namespace': {
    type: 'string',
    env: 'KUBENOVA_RELEASE_NAMESPACE',
    description:
      "Namespace kubenova is installed in, where transfer credentials and the agents' CA live (the chart sets the " +
      "pod's namespace); default: the service account's namespace in a pod, else kubenova-system",
  },
} as const satisfies Record<string, FlagSpec>;

const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** --release-namespace, else the pod's own namespace, else kubenova-system. */
export function releaseNamespace(flag: string | undefined, namespaceFile = SERVICE_ACCOUNT_NAMESPACE_FILE): string {
  if (flag) return flag;
  try {
    const fromPod = readFileSync(namespaceFile, 'utf8').trim();
    if (fromPod) return fromPod;
  } catch {
    // Not in a pod.
  }
  return 'kubenova-system';
}

/** The flags every component logs by. */
export const LOG_FLAGS = {
  'log-level': {
    type: 'string',
    env: 'LOG_LEVEL',
    default: 'info',
    choices: ['trace', 'debug', 'info', 'warn', 'error', 'silent'],
    description: 'Log level',
  },
  'log-format': {
    type: 'string',
    env: 'LOG_FORMAT',
    default: 'json',
    choices: ['json', 'pretty'],
    description: 'Log format',
  },
} as const satisfies Record<string, FlagSpec>;

export function parseFlags<T extends Record<string, FlagSpec>>(
  specs: T,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Parsed<T> {
  const options = Object.fromEntries(
    Object.entries(specs).map(([name, s]) => [
      name,
      { type: s.type === 'boolean' ? ('boolean' as const) : ('string' as const) },
    ]),
  );
  if (argv.includes('--help') || argv.includes('-h'))
    throw new HelpRequested(`flags (each also read from its env):\n${usage(specs)}`);
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | undefined
    >;
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n${usage(specs)}`);
  }
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const [name, spec] of Object.entries(specs)) {
    let raw: string | boolean | undefined = values[name];
    if (raw === undefined && spec.env && env[spec.env] !== undefined && env[spec.env] !== '') raw = env[spec.env];
    if (raw === undefined) {
      out[name] = spec.default;
      continue;
    }
    if (spec.type === 'number') {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new ConfigError(`--${name}: expected a number, got "${raw}"`);
      if (spec.min !== undefined && n < spec.min) throw new ConfigError(`--${name}: must be >= ${spec.min}, got ${n}`);
      out[name] = n;
    } else if (spec.type === 'boolean') {
      out[name] = raw === true || raw === 'true' || raw === '1';
    } else {
      const s = String(raw);
      if (spec.choices && !spec.choices.includes(s))
        throw new ConfigError(`--${name}: must be one of ${spec.choices.join(', ')}, got "${s}"`);
      out[name] = s;
    }
  }
  return out as Parsed<T>;
}

export function usage(specs: Record<string, FlagSpec>): string {
  return Object.entries(specs)
    .map(
      ([name, s]) =>
        `  --${name}${s.type === 'boolean' ? '' : ' <' + s.type + '>'}  ${s.description}${s.env ? ` [env ${s.env}]` : ''}${s.default !== undefined ? ` (default ${String(s.default)})` : ''}`,
    )
    .join('\n');
}

export function parseLabels(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (s ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const i = pair.indexOf('=');
    if (i <= 0) throw new ConfigError(`label "${pair}" must look like key=value`);
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}
