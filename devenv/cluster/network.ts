// The environment's network on this machine: a bridge of its own with this machine's
// address, one network namespace per node joined to it by a veth pair, and routes so that
// pods of every node reach each other and this machine reaches every pod. Nothing routes
// beyond the environment: the namespaces have no default route.
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { processAlive } from './processes.js';
import { inNetns, run, sleep, tryRun } from './exec.js';
import { conventionalUplinkName } from '../../node-agent/network/names.js';
import { chooseSlot, cidrsOverlap, type EnvironmentNames, type EnvironmentPlan, type NodePlan } from './plan.js';

const IP_HINT = 'run devenv/cluster/setup.sh as root; creating namespaces and links needs root';

interface IpRoute {
  dst?: string;
  dev?: string;
}
interface IpAddr {
  ifname?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

/** Every IPv4 network this machine already routes or holds, except the default route and the given bridge. */
async function usedNetworks(ownBridge: string): Promise<string[]> {
  const routes = JSON.parse(await run('ip', ['-4', '-j', 'route', 'show', 'table', 'all'])) as IpRoute[];
  const addrs = JSON.parse(await run('ip', ['-4', '-j', 'addr', 'show'])) as IpAddr[];
  const used: string[] = [];
  for (const r of routes) {
    if (!r.dst || r.dst === 'default' || r.dev === ownBridge) continue;
    used.push(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
  }
  for (const a of addrs) {
    if (a.ifname === ownBridge) continue;
    for (const info of a.addr_info ?? [])
      if (info.family === 'inet' && info.local) used.push(`${info.local}/${info.prefixlen ?? 32}`);
  }
  return used;
}

/**
 * One environment at a time chooses its slot and takes it (creates its bridge), so two
 * starting together cannot pick the same one. The lock is a directory holding the owner's
 * pid; a lock whose owner died is taken over.
 */
async function withNetworkLock<T>(fn: () => Promise<T>): Promise<T> {
  const dir = '/run/kubenova';
  const lock = `${dir}/network.lock`;
  mkdirSync(dir, { recursive: true });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(`${lock}/pid`, String(process.pid));
      break;
    } catch (err) {
      // The last environment to stop removes an empty /run/kubenova: make it again.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        mkdirSync(dir, { recursive: true });
        continue;
      }
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = 0;
      try {
        owner = Number(readFileSync(`${lock}/pid`, 'utf8'));
      } catch {
        // Just created, pid not written yet; a lock that stays like this for long is stale.
        if (Date.now() - statSync(lock).mtimeMs > 10_000) owner = -1;
      }
      if (owner === -1 || (owner > 0 && !processAlive(owner))) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > deadline)
        throw new Error(`${lock} is held by pid ${owner} for more than 60 s; if that process is gone, remove ${lock}`, {
          cause: err,
        });
      else await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Chooses the environment's address slot (planned lazily by `plan(slot)`) and creates its
 * bridge with this machine's address on it.
 */
export async function createBridge(
  names: EnvironmentNames,
  plan: (slot: number) => EnvironmentPlan,
): Promise<EnvironmentPlan> {
  return withNetworkLock(async () => {
    const used = await usedNetworks(names.bridge);
    const slot = chooseSlot(names.id, (cidr) => used.some((u) => cidrsOverlap(u, cidr)));
    const env = plan(slot);
    await run('ip', ['link', 'add', env.bridge, 'type', 'bridge'], { hint: IP_HINT });
    await run('ip', ['addr', 'add', `${env.hostIp}/24`, 'dev', env.bridge]);
    await run('ip', ['link', 'set', env.bridge, 'up']);
    // Frames between nodes cross this bridge; with bridge netfilter on they pass this
    // machine's FORWARD chain, which may drop by default.
    for (const dir of ['-i', '-o'])
      await run('iptables', [
        '-w',
        '-I',
        'FORWARD',
        dir,
        env.bridge,
        '-m',
        'comment',
        '--comment',
        env.ruleComment,
        '-j',
        'ACCEPT',
      ]);
    return env;
  });
}

/** Writes a sysctl of a node's namespace: /proc/sys/net belongs to the namespace of whoever writes it. */
async function netnsSysctl(node: NodePlan, key: string, value: string): Promise<void> {
  const path = `/proc/sys/${key.replaceAll('.', '/')}`;
  const cmd = inNetns(node.netnsPath, 'sh', ['-c', `echo ${value} > ${path}`]);
  await run(cmd.command, cmd.args);
}

/** A node's namespace: its address on the bridge, loopback, forwarding for its pods. */
export async function createNodeNetwork(env: EnvironmentPlan, node: NodePlan): Promise<void> {
  await run('ip', ['netns', 'add', node.netns], { hint: IP_HINT });
  await run('ip', ['link', 'add', node.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.netns]);
  await run('ip', ['link', 'set', node.hostVeth, 'master', env.bridge, 'up']);
  const ipn = (...args: string[]) => run('ip', ['-n', node.netns, ...args]);
  await ipn('link', 'set', 'lo', 'up');
  await ipn('addr', 'add', `${node.ip}/24`, 'dev', 'eth0');
  await ipn('link', 'set', 'eth0', 'up');
  // Processes on the node itself (the kubelet, host-network pods) reach Services through
  // kube-proxy's OUTPUT rules, which apply only once a route to the ClusterIP exists.
  await ipn('route', 'add', env.serviceCidr, 'via', env.hostIp);
  await netnsSysctl(node, 'net.ipv4.ip_forward', '1');
}

/** Routes between nodes' pod networks, and from this machine to every pod. */
export async function addPodRoutes(env: EnvironmentPlan): Promise<void> {
  for (const node of env.nodes) {
    await run('ip', ['route', 'add', node.podCidr, 'via', node.ip, 'dev', env.bridge]);
    for (const other of env.nodes)
      if (other !== node) await run('ip', ['-n', node.netns, 'route', 'add', other.podCidr, 'via', other.ip]);
  }
}

/**
 * The guest network (a kubenova Network named `network`): a bridge here carrying its gateway
 * address, and for every node a veth whose other end is in the node's namespace under the name
 * the node agent takes as the network's uplink (conventionalUplinkName), which the agent
 * enslaves into its own bridge for the network. A guest's address is then one bridge hop from
 * this machine, whichever node runs it. Named with the environment's veth prefix, so the
 * teardown and the leftover check find them like the node links.
 */
export async function createGuestNetwork(env: EnvironmentPlan, network: string): Promise<void> {
  await run('ip', ['link', 'add', env.guestBridge, 'type', 'bridge'], { hint: IP_HINT });
  await run('ip', ['addr', 'add', `${env.guestGateway}/24`, 'dev', env.guestBridge]);
  await run('ip', ['link', 'set', env.guestBridge, 'up']);
  // As for the environment bridge: bridged frames may pass this machine's FORWARD chain.
  for (const dir of ['-i', '-o'])
    await run('iptables', [
      ...['-w', '-I', 'FORWARD', dir, env.guestBridge],
      ...['-m', 'comment', '--comment', env.ruleComment, '-j', 'ACCEPT'],
    ]);
  const uplink = conventionalUplinkName(network);
  for (const node of env.nodes) {
    await run('ip', ['link', 'add', node.guestVeth, 'type', 'veth', 'peer', 'name', uplink, 'netns', node.netns]);
    await run('ip', ['link', 'set', node.guestVeth, 'master', env.guestBridge, 'up']);
    // The node itself (its kubelet, host-network pods) reaches guests through this machine,
    // whose gateway address the guests route back through. The node's own bridge for the
    // network carries no address: every address of the network is the Network's to hand out.
    await run('ip', ['-n', node.netns, 'route', 'add', env.guestCidr, 'via', env.hostIp]);
  }
  // Forwarding between the environment's two bridges (recorded and put back by machine-state.ts).
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
}

/** Removes the environment's namespaces, links and iptables rules; finds them by name, so it needs no record. */
export async function teardownNetwork(names: EnvironmentNames): Promise<void> {
  for (const netns of await environmentNetns(names)) await tryRun('ip', ['netns', 'delete', netns]);
  for (const link of await environmentLinks(names)) await tryRun('ip', ['link', 'delete', link]);
  await deleteCommentedRules(names.ruleComment);
}

async function environmentNetns(names: EnvironmentNames): Promise<string[]> {
  return (await run('ip', ['netns', 'list']).catch(() => ''))
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(names.netnsPrefix));
}

async function environmentLinks(names: EnvironmentNames): Promise<string[]> {
  const links = JSON.parse((await run('ip', ['-j', 'link', 'show']).catch(() => '[]')) || '[]') as IpAddr[];
  return links.map((l) => l.ifname ?? '').filter((name) => name === names.bridge || name.startsWith(names.vethPrefix));
}

/** Deletes every rule of this machine's filter and nat tables that carries the comment. */
async function deleteCommentedRules(comment: string): Promise<void> {
  for (const table of ['filter', 'nat']) {
    const rules = (await run('iptables', ['-w', '-t', table, '-S']).catch(() => ''))
      .split('\n')
      .filter((r) => r.startsWith('-A ') && r.includes(`--comment ${comment}`));
    for (const rule of rules) {
      // `-S` prints each rule as the arguments that add it; the same with -D deletes it.
      const args = rule.slice(3).split(' ');
      await tryRun('iptables', ['-w', '-t', table, '-D', ...args]);
    }
  }
}

/** This machine's namespaces, links and rules of the environment still present (for the tests' cleanliness check). */
export async function leftoverNetwork(names: EnvironmentNames): Promise<string[]> {
  const left = [
    ...(await environmentNetns(names)).map((n) => `netns ${n}`),
    ...(await environmentLinks(names)).map((l) => `link ${l}`),
  ];
  for (const table of ['filter', 'nat']) {
    const rules = await run('iptables', ['-w', '-t', table, '-S']).catch(() => '');
    // kube-proxy's and the CNI plugins' chains belong in the nodes' namespaces, never here.
    for (const r of rules.split('\n'))
      if (r.includes(names.ruleComment) || /KUBE-|CNI-/.test(r)) left.push(`iptables -t ${table} ${r}`);
  }
  return left;
}
