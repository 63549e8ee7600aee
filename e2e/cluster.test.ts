// `npm run cluster`'s promise: real Kubernetes nodes on this machine without Docker. Two
// nodes come up Ready on containerd, the scheduler places a pod on each, pods reach each
// other across nodes and reach the API server through the `kubernetes` Service with their
// own service-account credentials, `kubectl logs` and `exec` work, and stop() leaves
// nothing of the environment behind. Needs root and devenv/cluster/setup.sh; skipped,
// saying what is missing, elsewhere.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterLeftovers, startCluster, type Cluster } from '../devenv/cluster/cluster.js';
import { missingPrerequisites } from '../devenv/cluster/preflight.js';
import { listProcesses } from '../devenv/cluster/processes.js';
import { external } from './harness/mode.js';

// Against an external cluster (KUBENOVA_E2E_KUBECONFIG) the suite tests that cluster, not this one.
const missing = external ? [] : missingPrerequisites();
const title = external
  ? 'a cluster of real nodes (skipped: the suite runs against an external cluster)'
  : missing.length === 0
    ? 'a cluster of real nodes (npm run cluster)'
    : `a cluster of real nodes (skipped: this machine lacks ${missing.join('; ')})`;

/** The kernel settings the kubelet changes machine-wide. */
const TUNABLES = ['vm/overcommit_memory', 'kernel/panic', 'kernel/panic_on_oops'];
const readTunables = () => TUNABLES.map((k) => readFileSync(`/proc/sys/${k}`, 'utf8').trim());

/** Files in fixed places that the nodes' containerds and libcni write and a teardown must remove. */
function sharedLeftoverDirs(): Map<string, Set<string>> {
  const list = (dir: string) => new Set(existsSync(dir) ? readdirSync(dir) : []);
  return new Map([
    ['/run/containerd/s', list('/run/containerd/s')],
    ['/var/lib/cni/results', list('/var/lib/cni/results')],
  ]);
}

describe.skipIf(external || missing.length > 0)(title, () => {
  let stateDir = '';
  let cluster: Cluster;
  let besideDir = '';
  let beside: Cluster;
  let startSeconds = 0;
  let before: Map<string, Set<string>>;
  let tunablesBefore: string[] = [];
  const podIps = new Map<string, string>();
  /** Whether both environments started; a failed start's logs stay for a post-mortem. */
  let bothStarted = false;

  const kubectl = (...args: string[]) => cluster.kubectl(['--request-timeout=30s', ...args]);

  /** The pid of a pod's first container, whose network namespace is the pod's. */
  function podPid(pod: string): number {
    const nodeName = kubectl('get', 'pod', pod, '-o', 'jsonpath={.spec.nodeName}').trim();
    const node = cluster.nodes.find((n) => n.name === nodeName);
    if (!node) throw new Error(`pod ${pod} is on ${nodeName}, not a node of this cluster`);
    const id = kubectl('get', 'pod', pod, '-o', 'jsonpath={.status.containerStatuses[0].containerID}')
      .trim()
      .replace('containerd://', '');
    const tasks = execFileSync('ctr', ['--address', node.containerdSocket, '-n', 'k8s.io', 'tasks', 'ls'], {
      encoding: 'utf8',
    });
    const pid = tasks
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .find(([task]) => task === id)?.[1];
    if (!pid) throw new Error(`no task for container ${id} of pod ${pod} in ${node.name}'s containerd:\n${tasks}`);
    return Number(pid);
  }

  /** Runs a Node.js script inside a pod's network namespace (the pause image has no tools of its own). */
  function inPodNetwork(pod: string, script: string, timeoutMs = 15_000): string {
    return execFileSync(
      'nsenter',
      [`--net=/proc/${podPid(pod)}/ns/net`, '--', process.execPath, '--input-type=module', '-e', script],
      { encoding: 'utf8', timeout: timeoutMs },
    );
  }

  beforeAll(async () => {
    const tmp = process.env.KUBENOVA_TEST_TMP ?? tmpdir();
    stateDir = mkdtempSync(join(tmp, 'kubenova-cluster-'));
    besideDir = mkdtempSync(join(tmp, 'kubenova-cluster-beside-'));
    before = sharedLeftoverDirs();
    tunablesBefore = readTunables();
    const keepState = process.env.KUBENOVA_KEEP_TEST_DIRS === '1';
    const started = Date.now();
    // A second, one-node environment starts at the same moment: they must not collide.
    // Both starts are awaited, so that one which failed leaves the other to afterAll to stop.
    const [first, second] = await Promise.allSettled([
      startCluster({ nodes: 2, stateDir, keepState, log: (line) => process.stdout.write(`[cluster] ${line}\n`) }),
      startCluster({ nodes: 1, stateDir: besideDir, keepState, log: (l) => process.stdout.write(`[beside] ${l}\n`) }),
    ]);
    if (first.status === 'fulfilled') cluster = first.value;
    if (second.status === 'fulfilled') beside = second.value;
    for (const start of [first, second]) if (start.status === 'rejected') throw start.reason;
    startSeconds = (Date.now() - started) / 1000;
    bothStarted = true;
  }, 900_000);

  afterAll(async () => {
    // Normally the tests have stopped them already; stop() runs once.
    await Promise.all([cluster?.stop(), beside?.stop()]);
    if (bothStarted && process.env.KUBENOVA_KEEP_TEST_DIRS !== '1')
      for (const dir of [stateDir, besideDir]) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('every node is Ready on the containerd runtime, at its own address', () => {
    const out = execFileSync(cluster.kubectlPath, ['get', 'nodes', '-o', 'wide', '--no-headers'], {
      encoding: 'utf8',
      env: { ...process.env, ...cluster.env },
    });
    const rows = out
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/));
    expect(rows.map(([name, status]) => [name, status])).toEqual([
      ['node-1', 'Ready'],
      ['node-2', 'Ready'],
    ]);
    for (const row of rows) {
      expect(row[5]).toBe(cluster.nodes.find((n) => n.name === row[0])?.ip);
      expect(row.at(-1)).toMatch(/^containerd:\/\//);
    }
    const memory = cluster.memory();
    process.stdout.write(
      `[cluster] started in ${startSeconds.toFixed(1)} s ${JSON.stringify(cluster.timings)}; node daemons' RSS: ${memory
        .map(
          (m) =>
            `${m.node} ${(m.total / 1024).toFixed(0)} MiB (kubelet ${(m.kubelet / 1024).toFixed(0)}, containerd ${(m.containerd / 1024).toFixed(0)}, kube-proxy ${(m.kubeProxy / 1024).toFixed(0)})`,
        )
        .join('; ')}\n`,
    );
  });

  it('a second environment beside it has its own bridge, addresses and nodes, and its stop leaves the first alone', async () => {
    const ours = new Set(cluster.nodes.map((n) => n.ip));
    expect(beside.server).not.toBe(cluster.server);
    expect(beside.nodes.map((n) => n.ip).filter((ip) => ours.has(ip))).toEqual([]);
    expect(beside.nodes[0]?.netns).not.toBe(cluster.nodes[0]?.netns);
    const ready = beside.kubectl([
      'get',
      'nodes',
      '-o',
      'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}',
    ]);
    expect(ready).toBe('True');
    await beside.stop();
    expect(await clusterLeftovers(besideDir)).toEqual([]);
    // The first environment is untouched: every node still Ready (the pods below run on it).
    const still = kubectl('get', 'nodes', '-o', 'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}');
    expect(still).toBe('True True');
    for (const node of cluster.nodes) expect(existsSync(node.netns)).toBe(true);
  });

  it('the scheduler places a pod on each node; kubectl logs and exec reach its containers', () => {
    const image = cluster.pauseImage.ref;
    for (const node of cluster.nodes) {
      // The pause image is the workload too: `/pause -v` prints its name and exits (the
      // init container's log), `/pause` runs until stopped.
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `on-${node.name}` },
        spec: {
          nodeSelector: { 'kubernetes.io/hostname': node.name },
          initContainers: [{ name: 'hello', image, imagePullPolicy: 'Never', command: ['/pause', '-v'] }],
          containers: [{ name: 'main', image, imagePullPolicy: 'Never' }],
        },
      };
      cluster.kubectl(['apply', '-f', '-'], JSON.stringify(pod));
    }
    kubectl('wait', '--for=condition=Ready', 'pod/on-node-1', 'pod/on-node-2', '--timeout=120s');
    for (const node of cluster.nodes) {
      const pod = `on-${node.name}`;
      const [onNode, ip] = kubectl('get', 'pod', pod, '-o', 'jsonpath={.spec.nodeName} {.status.podIP}').split(' ');
      expect(onNode).toBe(node.name);
      expect(ip?.startsWith(node.podCidr.replace(/0\/24$/, ''))).toBe(true);
      podIps.set(pod, ip ?? '');
      expect(kubectl('logs', pod, '-c', 'hello').trim()).toBe('kubenova-pause');
      expect(kubectl('exec', pod, '-c', 'main', '--', '/pause', '-v').trim()).toBe('kubenova-pause');
    }
  });

  it('pods on different nodes reach each other, and this machine reaches them', async () => {
    const target = podIps.get('on-node-2');
    expect(target).toBeTruthy();
    // A server inside the pod on node-2, for as long as this test needs it.
    const pid = podPid('on-node-2');
    const server = spawn(
      'nsenter',
      [
        `--net=/proc/${pid}/ns/net`,
        '--',
        process.execPath,
        '-e',
        "require('node:net').createServer((s) => s.end('hello from node-2\\n')).listen(8080, () => console.log('listening'));" +
          'setTimeout(() => process.exit(0), 60000);',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the server in pod on-node-2 did not start in 15 s')), 15_000);
        server.stdout?.once('data', () => {
          clearTimeout(timer);
          resolve();
        });
        server.once('exit', (code) => reject(new Error(`the server in pod on-node-2 exited (${code})`)));
      });
      const client = `
        import { connect } from 'node:net';
        const s = connect(8080, ${JSON.stringify(target)});
        s.setTimeout(5000, () => { console.log('timeout'); process.exit(1); });
        s.on('data', (d) => process.stdout.write(String(d)));
        s.on('error', (e) => { console.log(e.message); process.exit(1); });`;
      expect(inPodNetwork('on-node-1', client).trim()).toBe('hello from node-2');
      const fromHost = execFileSync(process.execPath, ['--input-type=module', '-e', client], {
        encoding: 'utf8',
        timeout: 15_000,
      });
      expect(fromHost.trim()).toBe('hello from node-2');
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('a pod reaches the API server through the kubernetes Service with its own service-account credentials', () => {
    const clusterIp = kubectl('get', 'service', 'kubernetes', '-o', 'jsonpath={.spec.clusterIP}').trim();
    // What the container sees at /var/run/secrets/kubernetes.io/serviceaccount, read where the kubelet keeps it.
    const uid = kubectl('get', 'pod', 'on-node-1', '-o', 'jsonpath={.metadata.uid}').trim();
    const volumes = join(stateDir, 'nodes', 'node-1', 'kubelet', 'pods', uid, 'volumes', 'kubernetes.io~projected');
    const access = readdirSync(volumes).find((d) => d.startsWith('kube-api-access-'));
    if (!access) throw new Error(`no kube-api-access volume in ${volumes}`);
    const token = readFileSync(join(volumes, access, 'token'), 'utf8');
    const ca = readFileSync(join(volumes, access, 'ca.crt'), 'utf8');
    // In-cluster config: https://$KUBERNETES_SERVICE_HOST:443, verified against the pod's CA.
    const review = `
      import { request } from 'node:https';
      const req = request({
        host: ${JSON.stringify(clusterIp)}, port: 443, method: 'POST', timeout: 5000,
        path: '/apis/authentication.k8s.io/v1/selfsubjectreviews',
        ca: ${JSON.stringify(ca)},
        headers: { authorization: 'Bearer ' + ${JSON.stringify(token)}, 'content-type': 'application/json' },
      }, (res) => { let body = ''; res.on('data', (d) => (body += d)); res.on('end', () => console.log(body)); });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => { console.log(e.message); process.exit(1); });
      req.end(JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }));`;
    const answer = JSON.parse(inPodNetwork('on-node-1', review)) as { status?: { userInfo?: { username?: string } } };
    expect(answer.status?.userInfo?.username).toBe('system:serviceaccount:default:default');
  });

  it('stop() leaves no process, mount, namespace, link, cgroup, iptables rule or file of the environment', async () => {
    await cluster.stop();
    expect(await clusterLeftovers(stateDir)).toEqual([]);
    for (const [dir, had] of before) {
      const now = existsSync(dir) ? readdirSync(dir) : [];
      expect(
        now.filter((f) => !had.has(f)),
        `new files left in ${dir}`,
      ).toEqual([]);
    }
    const links = existsSync('/var/log/containers') ? readdirSync('/var/log/containers') : [];
    expect(links.filter((l) => l.startsWith('on-node-'))).toEqual([]);
    const mentions = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(stateDir));
    expect(mentions).toEqual([]);
    if (process.env.KUBENOVA_KEEP_TEST_DIRS !== '1') expect(readdirSync(stateDir)).toEqual([]);
    // The last kubelet gone, the machine has its own kernel settings back (unless another
    // environment started meanwhile: then it is that one's to restore).
    if (!listProcesses().some((p) => p.comm === 'kubelet')) expect(readTunables()).toEqual(tunablesBefore);
  });
});
