// The `kubectl nova` command line (commander): every command, its arguments and options, and
// its help. Each action connects as kubectl would (session.ts) and hands over to the module
// that does the work.
import { Command, InvalidArgumentError, Option } from 'commander';
import { consoleLog, DEFAULT_AGENT_NAMESPACE } from './console.js';
import { drain } from './drain.js';
import { flavorCreate, flavorList, quotaShow } from './flavors.js';
import { hostDisable, hostEnable, hostList, hostShow } from './hosts.js';
import { boot, list, power, show } from './instances.js';
import { parseDuration, type IO } from './io.js';
import { decide, evacuate, migrate, resize } from './migrations.js';
import { OUTPUT_FORMATS, type OutputFormat } from './output.js';
import { connect, type GlobalOptions, type Session } from './session.js';
import { pluginVersion, version } from './version.js';

export interface ProgramDeps {
  io: IO;
  connect?: (opts: GlobalOptions) => Session;
}

const outputOption = () =>
  new Option('-o, --output <format>', 'print the objects instead of a table').choices(OUTPUT_FORMATS);

/** Where host-list and host-show read the agents' node Leases (their heartbeats). */
const leaseNamespaceOption = () =>
  new Option(
    '--agent-namespace <namespace>',
    'namespace of the node agents, where their node Leases (heartbeats) are',
  ).default(DEFAULT_AGENT_NAMESPACE);

const timeoutOption = (def: string) =>
  new Option('--timeout <duration>', 'how long --wait waits (e.g. 90s, 5m, 1h)').default(def).argParser((v) => {
    try {
      const ms = parseDuration(v);
      if (ms <= 0) throw new Error('must be positive');
      return v;
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  });

const ms = (duration: string) => parseDuration(duration);

const EXAMPLES = `
Examples:
  kubectl nova boot web-1 --flavor m1.small --image cirros --wait
  kubectl nova show web-1
  kubectl nova resize web-1 m1.large --wait && kubectl nova resize-confirm web-1
  kubectl nova migrate web-1 --wait
  kubectl nova host-disable node-a --reason "disk replacement"
  kubectl nova drain node-a

Every command takes kubectl's -n/--namespace, --kubeconfig and --context (and reads KUBECONFIG).`;

/** -n=ns and -o=json as kubectl accepts them; commander wants -n ns. */
export function normalizeArgs(args: readonly string[]): string[] {
  return args.flatMap((a) => {
    const m = /^-([no])=(.*)$/.exec(a);
    return m ? [`-${m[1]}`, m[2]!] : [a];
  });
}

export function buildProgram(deps: ProgramDeps): Command {
  const { io } = deps;
  const open = (cmd: Command): Session => (deps.connect ?? connect)(cmd.optsWithGlobals<GlobalOptions>());
  const program = new Command('kubectl nova')
    .description("OpenStack Nova's server commands for kubenova: boot, resize, migrate, drain, consoles and more")
    .option('-n, --namespace <namespace>', 'the namespace to act in (default: the context’s, else "default")')
    .option('--kubeconfig <path>', 'the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)')
    .option('--context <name>', 'the kubeconfig context to use')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError('(run with --help for usage)')
    // Throw instead of exiting (inherited by every command): main.ts turns it into the exit code.
    .exitOverride()
    .addHelpText('after', EXAMPLES);

  // Instances
  program
    .command('list')
    .description('list instances')
    .option('-A, --all-namespaces', 'list instances of every namespace')
    .option('--host <host>', 'only instances running on this host')
    .addOption(outputOption())
    .action(async (opts: { allNamespaces?: boolean; host?: string; output?: OutputFormat }, cmd: Command) =>
      list(open(cmd), io, opts),
    );

  program
    .command('show')
    .summary('show an instance: state, host, flavor, fault, last Events')
    .description(
      'show an instance: state, host, flavor, migration in progress (with its step deadline), fault (with what ' +
        'each scheduler filter removed) and its last Events',
    )
    .argument('<name>', 'instance name')
    .option('--events <count>', 'how many of the newest Events to show', (v) => positive('--events', v), 10)
    .addOption(outputOption())
    .action(async (name: string, opts: { output?: OutputFormat; events: number }, cmd: Command) =>
      show(open(cmd), io, name, opts),
    );

  program
    .command('boot')
    .description('create an instance (Nova server create)')
    .argument('<name>', 'instance name')
    .requiredOption('--flavor <flavor>', 'flavor (see flavor-list)')
    .requiredOption('--image <image>', 'image the driver boots (e.g. cirros; tiny with the libvirt driver)')
    .option('--az <zone>', 'availability zone: only hosts labelled topology.kubernetes.io/zone=<zone>')
    .option('--host <host>', 'forced host (admin): skips the scheduler filters, not the host’s claim')
    .option('--server-group <group>', 'server group (in this namespace) to join')
    .addOption(
      new Option('--evacuation-policy <policy>', 'Automatic: rebuilt elsewhere once its host is forced down').choices([
        'Manual',
        'Automatic',
      ]),
    )
    .option('--stopped', 'create it powered off')
    .option('--wait', 'wait until it is active (or stopped with --stopped); fail if it goes to error')
    .addOption(timeoutOption('5m'))
    .action(
      async (
        name: string,
        opts: {
          flavor: string;
          image: string;
          az?: string;
          host?: string;
          serverGroup?: string;
          evacuationPolicy?: 'Manual' | 'Automatic';
          stopped?: boolean;
          wait?: boolean;
          timeout: string;
        },
        cmd: Command,
      ) => boot(open(cmd), io, name, { ...opts, timeoutMs: ms(opts.timeout) }),
    );

  for (const action of ['start', 'stop'] as const) {
    program
      .command(action)
      .description(action === 'start' ? 'power an instance on' : 'power an instance off')
      .argument('<name>', 'instance name')
      .option('--wait', `wait until it is ${action === 'start' ? 'active' : 'stopped'}`)
      .addOption(timeoutOption('5m'))
      .action(async (name: string, opts: { wait?: boolean; timeout: string }, cmd: Command) =>
        power(open(cmd), io, name, action, { wait: opts.wait, timeoutMs: ms(opts.timeout) }),
      );
  }

  // Moves
  program
    .command('resize')
    .summary('resize an instance to another flavor')
    .description('resize an instance to another flavor (cold: it moves, then awaits resize-confirm or resize-revert)')
    .argument('<name>', 'instance name')
    .argument('<flavor>', 'the new flavor')
    .option('--wait', 'wait until it has finished (runs with the new flavor, awaiting the decision)')
    .addOption(timeoutOption('10m'))
    .action(async (name: string, flavor: string, opts: { wait?: boolean; timeout: string }, cmd: Command) =>
      resize(open(cmd), io, name, flavor, { wait: opts.wait, timeoutMs: ms(opts.timeout) }),
    );

  for (const [command, decision] of [
    ['resize-confirm', 'Confirm'],
    ['resize-revert', 'Revert'],
  ] as const) {
    program
      .command(command)
      .summary(
        decision === 'Confirm'
          ? "confirm an instance's finished resize or migration"
          : "revert an instance's finished resize or migration",
      )
      .description(
        decision === 'Confirm'
          ? "confirm an instance's finished resize or migration: the source copy and claim go"
          : "revert an instance's finished resize or migration: back on the source with the old flavor, byte for byte",
      )
      .argument('<name>', 'instance name (its current migration is found for you)')
      .option('--wait', `wait until the ${decision.toLowerCase()} is done`)
      .addOption(timeoutOption('10m'))
      .action(async (name: string, opts: { wait?: boolean; timeout: string }, cmd: Command) =>
        decide(open(cmd), io, name, decision, { wait: opts.wait, timeoutMs: ms(opts.timeout) }),
      );
  }

  program
    .command('migrate')
    .summary('cold-migrate an instance to another host')
    .description('cold-migrate an instance to another host, keeping its flavor (then resize-confirm or resize-revert)')
    .argument('<name>', 'instance name')
    .option('--host <host>', 'target host (admin); default: the scheduler chooses')
    .option('--confirm', 'confirm it as soon as it has finished')
    .option('--wait', 'wait until it has finished (with --confirm: until it is confirmed)')
    .addOption(timeoutOption('10m'))
    .action(
      async (name: string, opts: { host?: string; confirm?: boolean; wait?: boolean; timeout: string }, cmd: Command) =>
        migrate(open(cmd), io, name, { ...opts, timeoutMs: ms(opts.timeout) }),
    );

  program
    .command('evacuate')
    .summary('rebuild an instance off a forced-down host')
    .description('rebuild an instance from its image on another host once its host is forced down (its disk is lost)')
    .argument('<name>', 'instance name')
    .option('--host <host>', 'target host (admin); default: the scheduler chooses')
    .option('--wait', 'wait until it runs again')
    .addOption(timeoutOption('10m'))
    .action(async (name: string, opts: { host?: string; wait?: boolean; timeout: string }, cmd: Command) =>
      evacuate(open(cmd), io, name, { ...opts, timeoutMs: ms(opts.timeout) }),
    );

  program
    .command('console')
    .summary("print an instance's serial console log")
    .description("print an instance's serial console log (real guests only; read through the node agent on its host)")
    .argument('<name>', 'instance name')
    .option('-f, --follow', 'keep printing what the guest writes, until interrupted')
    .option('--agent-namespace <namespace>', 'namespace of the node agent pods (default: found by label)')
    .option('--state-dir <dir>', 'agents running as local processes (npm start): read their state directory here')
    .action(
      async (name: string, opts: { follow?: boolean; agentNamespace?: string; stateDir?: string }, cmd: Command) =>
        consoleLog(open(cmd), io, name, opts),
    );

  // Hosts
  program
    .command('host-list')
    .summary('list hosts')
    .description(
      "list hosts (ComputeNodes): enabled or disabled, up or down, the age of the agent's last heartbeat, allocated/allocatable",
    )
    .addOption(outputOption())
    .addOption(leaseNamespaceOption())
    .action(async (opts: { output?: OutputFormat; agentNamespace: string }, cmd: Command) =>
      hostList(open(cmd), io, opts),
    );

  program
    .command('host-show')
    .summary('show a host')
    .description('show a host: state, resources, claims, instances and migrations in progress')
    .argument('<name>', 'host (ComputeNode) name')
    .addOption(outputOption())
    .addOption(leaseNamespaceOption())
    .action(async (name: string, opts: { output?: OutputFormat; agentNamespace: string }, cmd: Command) =>
      hostShow(open(cmd), io, name, opts),
    );

  program
    .command('host-disable')
    .summary('disable a host')
    .description('disable a host: no new instance lands there (Nova compute service set --disable)')
    .argument('<name>', 'host (ComputeNode) name')
    .requiredOption('--reason <reason>', 'why, for the other admins')
    .action(async (name: string, opts: { reason: string }, cmd: Command) =>
      hostDisable(open(cmd), io, name, opts.reason),
    );

  program
    .command('host-enable')
    .description('enable a host again')
    .argument('<name>', 'host (ComputeNode) name')
    .action(async (name: string, _opts: object, cmd: Command) => hostEnable(open(cmd), io, name));

  program
    .command('drain')
    .summary('disable a host and cold-migrate every instance off it')
    .description(
      'disable a host, then cold-migrate every instance off it (all namespaces, or only -n’s), each confirmed once ' +
        'it has finished; server groups are respected (the scheduler applies them; two members never move at once)',
    )
    .argument('<host>', 'host (ComputeNode) name')
    .option('--reason <reason>', 'the reason the host is disabled with', 'drained with kubectl nova drain')
    .option('--concurrency <n>', 'migrations at a time', (v) => positive('--concurrency', v), 2)
    .option('--dry-run', 'only say what would move and what could not')
    .addOption(timeoutOption('10m').default('10m', 'per instance'))
    .action(
      async (
        host: string,
        opts: { reason: string; concurrency: number; dryRun?: boolean; timeout: string },
        cmd: Command,
      ) => drain(open(cmd), io, host, { ...opts, timeoutMs: ms(opts.timeout) }),
    );

  // Catalogue and limits
  program
    .command('flavor-list')
    .description('list flavors')
    .addOption(outputOption())
    .action(async (opts: { output?: OutputFormat }, cmd: Command) => flavorList(open(cmd), io, opts));

  program
    .command('flavor-create')
    .description('create a flavor (admin; flavors are immutable)')
    .argument('<name>', 'flavor name')
    .requiredOption('--vcpus <n>', 'virtual CPUs (at least 1)')
    .requiredOption('--memory-mib <n>', 'memory in MiB (at least 64)')
    .requiredOption('--disk <gib>', 'root disk in GiB (0: the image size)')
    .option('--ephemeral <gib>', 'ephemeral disk in GiB')
    .option(
      '--property <key=value>',
      'extra spec, repeatable (node:<label>=<value> places only on hosts with that label)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option('--disabled', 'create it disabled')
    .action(
      async (
        name: string,
        opts: {
          vcpus: string;
          memoryMib: string;
          disk: string;
          ephemeral?: string;
          property: string[];
          disabled?: boolean;
        },
        cmd: Command,
      ) => flavorCreate(open(cmd), io, name, opts),
    );

  program
    .command('quota-show')
    .summary("show the namespace's ComputeQuota")
    .description("show the namespace's ComputeQuota: used, reserved and limit per resource")
    .option('-A, --all-namespaces', 'every namespace')
    .addOption(outputOption())
    .action(async (opts: { output?: OutputFormat; allNamespaces?: boolean }, cmd: Command) =>
      quotaShow(open(cmd), io, opts),
    );

  program
    .command('version')
    .summary('print the plugin and server versions')
    .description('print the plugin version, the Kubernetes server version and the kubenova API it serves')
    .option('--client', 'only the plugin version (no server needed)')
    .addOption(outputOption())
    .action(async (opts: { client?: boolean; output?: OutputFormat }, cmd: Command) =>
      version(opts.client ? undefined : open(cmd), io, opts),
    );

  program.version(pluginVersion(), '--version', 'print the plugin version');
  return program;
}

function positive(option: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1)
    throw new InvalidArgumentError(`${option} must be a whole number of at least 1`);
  return Number(v);
}
