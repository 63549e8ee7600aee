// A real local Kubernetes control plane — etcd, kube-apiserver and kube-controller-manager
// as processes on free loopback ports — started the way envtest does for Go operators.
// RBAC is on; the admin identity is a static token in system:masters. With `nodes` it also
// serves real kubelets (devenv/cluster/): kube-scheduler, the Node authorizer, the
// controllers nodes and pods need, and an API server bound where the nodes reach it.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { ensureBinaries, ensureNodeBinaries, type Binaries } from './binaries.js';
import { describeExit, freePort, hasExited, logTail, startProcess, type ManagedProcess } from './processes.js';

/** An identity the API server accepts as a bearer token (its --token-auth-file). */
export interface StaticToken {
  token: string;
  user: string;
  uid: string;
  groups: string[];
}

/** What real nodes need from the control plane. */
export interface NodeSupport {
  /** Credentials of the kubelets (user system:node:<name>, group system:nodes) and kube-proxies. */
  tokens: StaticToken[];
}

export interface ControlPlaneOptions {
  /** Directory for data, certificates, logs and the kubeconfig; created if missing. */
  dir: string;
  /** Extra kube-apiserver flags (e.g. for benchmarks). */
  apiserverFlags?: string[];
  /** Stream server logs here instead of files (npm start shows them only on failure). */
  quiet?: boolean;
  /**
   * The address kube-apiserver binds to and advertises (default 127.0.0.1). Real nodes live in
   * other network namespaces and cannot reach this machine's loopback: give an address of
   * theirs, such as the environment bridge's.
   */
  bindAddress?: string;
  /** The Service ClusterIP range (default 10.0.0.0/24); its first address is the `kubernetes` Service. */
  serviceCidr?: string;
  /** Serve real kubelets: see NodeSupport. Builds kube-scheduler on first use. */
  nodes?: NodeSupport;
}

const DEFAULT_SERVICE_CIDR = '10.0.0.0/24';

export class ControlPlane {
  readonly server: string;
  readonly kubeconfigPath: string;
  readonly caPath: string;
  readonly adminToken: string;
  readonly bindAddress: string;
  readonly serviceCidr: string;
  private etcd?: ManagedProcess;
  private apiserver?: ManagedProcess;
  private controllerManager?: ManagedProcess;
  private scheduler?: ManagedProcess;

  private constructor(
    readonly dir: string,
    readonly binaries: Binaries,
    private readonly ports: { etcdClient: number; etcdPeer: number; apiserver: number },
    private readonly apiserverFlags: string[],
    private readonly opts: ControlPlaneOptions,
  ) {
    this.bindAddress = opts.bindAddress ?? '127.0.0.1';
    this.serviceCidr = opts.serviceCidr ?? DEFAULT_SERVICE_CIDR;
    this.server = `https://${this.bindAddress}:${ports.apiserver}`;
    this.kubeconfigPath = join(dir, 'kubeconfig');
    this.caPath = join(dir, 'pki', 'ca.crt');
    this.adminToken = randomBytes(24).toString('hex');
  }

  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    // A free port is only free until someone binds it: a test running beside this one may take
    // it before etcd or kube-apiserver does. Then it starts again, afresh, on other ports.
    for (let attempt = 1; ; attempt++) {
      try {
        return await ControlPlane.startOnce(opts);
      } catch (err) {
        if (!(err instanceof PortTaken) || attempt >= PORT_ATTEMPTS) throw err;
        rmSync(opts.dir, { recursive: true, force: true });
      }
    }
  }

  private static async startOnce(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const binaries = ensureBinaries();
    mkdirSync(opts.dir, { recursive: true });
    const ports = { etcdClient: await freePort(), etcdPeer: await freePort(), apiserver: await freePort() };
    const cp = new ControlPlane(opts.dir, binaries, ports, opts.apiserverFlags ?? [], opts);
    cp.writePki();
    cp.writeKubeconfig();
    try {
      await cp.startEtcd();
      await cp.startApiserver();
      await cp.startControllerManager();
      if (opts.nodes) await cp.startScheduler();
    } catch (err) {
      await cp.stop();
      throw err;
    }
    return cp;
  }

  private path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  private writePki(): void {
    const pki = this.path('pki');
    mkdirSync(pki, { recursive: true });
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '3650',
      '-subj',
      '/CN=kubenova-local-ca',
      '-keyout',
      join(pki, 'ca.key'),
      '-out',
      join(pki, 'ca.crt'),
    );
    openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=kube-apiserver',
      '-keyout',
      join(pki, 'apiserver.key'),
      '-out',
      join(pki, 'apiserver.csr'),
    );
    // Pods with in-cluster config reach the API server through the `kubernetes` Service's
    // ClusterIP and verify it by that address.
    const sans = new Set(['IP:127.0.0.1', `IP:${this.bindAddress}`, `IP:${firstAddress(this.serviceCidr)}`]);
    writeFileSync(
      join(pki, 'san.ext'),
      `subjectAltName=${[...sans].join(',')},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n` +
        'extendedKeyUsage=serverAuth\n',
    );
    openssl(
      'x509',
      '-req',
      '-in',
      join(pki, 'apiserver.csr'),
      '-CA',
      join(pki, 'ca.crt'),
      '-CAkey',
      join(pki, 'ca.key'),
      '-CAcreateserial',
      '-days',
      '3650',
      '-extfile',
      join(pki, 'san.ext'),
      '-out',
      join(pki, 'apiserver.crt'),
    );
    const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(pki, 'sa.key'), sa.privateKey.export({ type: 'pkcs1', format: 'pem' }));
    writeFileSync(join(pki, 'sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));
    const tokens: StaticToken[] = [
      { token: this.adminToken, user: 'admin', uid: 'admin-uid', groups: ['system:masters'] },
      ...(this.opts.nodes?.tokens ?? []),
    ];
    writeFileSync(
      join(pki, 'tokens.csv'),
      tokens.map((t) => `${t.token},${t.user},${t.uid}${t.groups.length ? `,"${t.groups.join(',')}"` : ''}\n`).join(''),
      { mode: 0o600 },
    );
    if (this.opts.nodes) {
      // The API server's identity towards kubelets (logs, exec, port-forward): kubelets trust
      // this CA for client certificates, and system:masters passes their authorization webhook.
      openssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/O=system:masters/CN=kube-apiserver-kubelet-client',
        '-keyout',
        join(pki, 'kubelet-client.key'),
        '-out',
        join(pki, 'kubelet-client.csr'),
      );
      writeFileSync(join(pki, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
      openssl(
        'x509',
        '-req',
        '-in',
        join(pki, 'kubelet-client.csr'),
        '-CA',
        join(pki, 'ca.crt'),
        '-CAkey',
        join(pki, 'ca.key'),
        '-CAcreateserial',
        '-days',
        '3650',
        '-extfile',
        join(pki, 'client.ext'),
        '-out',
        join(pki, 'kubelet-client.crt'),
      );
    }
  }

  private writeKubeconfig(): void {
    const ca = readFileSync(this.caPath).toString('base64');
    writeFileSync(
      this.kubeconfigPath,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: kubenova-local',
        '  cluster:',
        `    server: ${this.server}`,
        `    certificate-authority-data: ${ca}`,
        'users:',
        '- name: admin',
        '  user:',
        `    token: ${this.adminToken}`,
        'contexts:',
        '- name: kubenova-local',
        '  context: {cluster: kubenova-local, user: admin, namespace: default}',
        'current-context: kubenova-local',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
  }

  private async startEtcd(): Promise<void> {
    const client = `http://127.0.0.1:${this.ports.etcdClient}`;
    const peer = `http://127.0.0.1:${this.ports.etcdPeer}`;
    this.etcd = startProcess({
      name: 'etcd',
      command: this.binaries.etcd,
      args: [
        `--data-dir=${this.path('etcd')}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=default=${peer}`,
        '--name=default',
        // Test data need not survive a power cut; fsync dominates etcd latency on shared disks.
        '--unsafe-no-fsync',
        '--quota-backend-bytes=4294967296',
        '--log-level=warn',
      ],
      logFile: this.path('etcd.log'),
    });
    await waitUntil(
      'etcd',
      this.etcd,
      async () => (await httpGet(`${client}/health`)).includes('"health":"true"'),
      30_000,
    );
  }

  async startApiserver(): Promise<void> {
    const pki = this.path('pki');
    const nodeFlags = this.opts.nodes
      ? [
          // Kubelets are authorized for their own node and its pods only, as on a real cluster.
          '--authorization-mode=Node,RBAC',
          '--enable-admission-plugins=NodeRestriction',
          // Nodes are reached by the address they registered; they have no resolvable name.
          '--kubelet-preferred-address-types=InternalIP',
          `--kubelet-client-certificate=${join(pki, 'kubelet-client.crt')}`,
          `--kubelet-client-key=${join(pki, 'kubelet-client.key')}`,
        ]
      : [
          '--authorization-mode=RBAC',
          // Pods never run here (no kubelet): skip the admission that waits for their service account.
          '--disable-admission-plugins=ServiceAccount',
        ];
    this.apiserver = startProcess({
      name: 'kube-apiserver',
      command: this.binaries.kubeApiserver,
      args: [
        `--etcd-servers=http://127.0.0.1:${this.ports.etcdClient}`,
        `--secure-port=${this.ports.apiserver}`,
        `--bind-address=${this.bindAddress}`,
        `--advertise-address=${this.bindAddress}`,
        `--cert-dir=${pki}`,
        `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
        `--client-ca-file=${join(pki, 'ca.crt')}`,
        `--token-auth-file=${join(pki, 'tokens.csv')}`,
        `--service-cluster-ip-range=${this.serviceCidr}`,
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${join(pki, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
        '--allow-privileged=true',
        '--enable-priority-and-fairness=false',
        // The chart's instance-finalizer policy is a MutatingAdmissionPolicy: GA from 1.36, beta
        // and off by default in the pinned release.
        '--feature-gates=MutatingAdmissionPolicy=true',
        '--runtime-config=admissionregistration.k8s.io/v1beta1=true',
        ...nodeFlags,
        '--v=1',
        ...this.apiserverFlags,
      ],
      logFile: this.path('kube-apiserver.log'),
    });
    await waitUntil('kube-apiserver', this.apiserver, async () => (await this.get('/readyz')) === 'ok', 120_000);
  }

  private async startControllerManager(): Promise<void> {
    const pki = this.path('pki');
    const logFile = this.path('kube-controller-manager.log');
    const controllers = this.opts.nodes
      ? [
          // Everything a real cluster runs by default: node lifecycle (it lifts the not-ready
          // taint), service-account tokens, kube-root-ca.crt for projected volumes, workloads
          // (Deployments, DaemonSets), EndpointSlices and certificate signing.
          '--controllers=*',
          `--cluster-signing-cert-file=${join(pki, 'ca.crt')}`,
          `--cluster-signing-key-file=${join(pki, 'ca.key')}`,
          // Its volume controllers would otherwise create /usr/libexec/kubernetes on this machine.
          `--flex-volume-plugin-dir=${this.path('flex-volume')}`,
        ]
      : [
          // Namespace deletion, ownerReference garbage collection, service-account tokens and
          // aggregated ClusterRoles (view, edit and admin pick up kubenova's user roles) behave
          // as on a real cluster; nothing here runs pods.
          '--controllers=namespace,garbagecollector,serviceaccount,serviceaccount-token,clusterrole-aggregation',
        ];
    // On a loaded machine it can exit at start while the API server is still settling its
    // post-start hooks; a short retry is what a kubelet restarting it would do.
    for (let attempt = 1; ; attempt++) {
      this.controllerManager = startProcess({
        name: 'kube-controller-manager',
        command: this.binaries.kubeControllerManager,
        args: [
          `--kubeconfig=${this.kubeconfigPath}`,
          ...controllers,
          `--service-account-private-key-file=${join(pki, 'sa.key')}`,
          `--root-ca-file=${join(pki, 'ca.crt')}`,
          '--leader-elect=false',
          '--secure-port=0',
          '--concurrent-gc-syncs=5',
          '--v=1',
        ],
        logFile,
      });
      // The controller manager has no port here; it is up when its process stays up.
      await new Promise((r) => setTimeout(r, 1_000));
      if (this.controllerManager.child.exitCode === null) return;
      const tail = logTail(logFile, 3);
      if (attempt >= 3)
        throw new Error(`kube-controller-manager exited at start (${attempt} tries); its log ends:\n${tail}`);
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }

  /** kube-scheduler, for real nodes: it has no port here either, so it is up when it stays up. */
  private async startScheduler(): Promise<void> {
    const logFile = this.path('kube-scheduler.log');
    this.scheduler = startProcess({
      name: 'kube-scheduler',
      command: ensureNodeBinaries().kubeScheduler,
      args: [`--kubeconfig=${this.kubeconfigPath}`, '--leader-elect=false', '--secure-port=0', '--v=1'],
      logFile,
    });
    await new Promise((r) => setTimeout(r, 1_000));
    if (hasExited(this.scheduler)) throw new Error(describeExit(this.scheduler, 3));
  }

  /** Stops kube-apiserver only (etcd keeps the data), for restart tests. */
  async stopApiserver(): Promise<void> {
    await this.apiserver?.stop('SIGTERM', 15_000);
  }

  /** GET a path on the API server as admin; resolves with the body. */
  async get(path: string): Promise<string> {
    return httpGet(`${this.server}${path}`, { ca: readFileSync(this.caPath), token: this.adminToken });
  }

  /**
   * A kubeconfig authenticating as `user` (in `groups`) with a client certificate from the
   * control plane's CA, made once per user under <dir>/users/. Local node agents use one each,
   * so the API server (and so the operator's certificate signer) knows which host asks.
   */
  userKubeconfig(user: string, groups: string[] = []): string {
    const dir = this.path('users');
    const base = join(dir, user.replace(/[^A-Za-z0-9.-]/g, '_'));
    const path = `${base}.kubeconfig`;
    if (existsSync(path)) return path;
    mkdirSync(dir, { recursive: true });
    const pki = this.path('pki');
    const subject = [...groups.map((g) => `/O=${g}`), `/CN=${user}`].join('');
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', `${base}.key`, '-out', `${base}.csr`);
    writeFileSync(`${base}.ext`, 'extendedKeyUsage=clientAuth\n');
    openssl(
      'x509',
      '-req',
      '-in',
      `${base}.csr`,
      '-CA',
      join(pki, 'ca.crt'),
      '-CAkey',
      join(pki, 'ca.key'),
      '-CAcreateserial',
      '-days',
      '3650',
      '-extfile',
      `${base}.ext`,
      '-out',
      `${base}.crt`,
    );
    const b64 = (file: string) => readFileSync(file).toString('base64');
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: kubenova-local',
        '  cluster:',
        `    server: ${this.server}`,
        `    certificate-authority-data: ${b64(this.caPath)}`,
        'users:',
        `- name: ${JSON.stringify(user)}`,
        '  user:',
        `    client-certificate-data: ${b64(`${base}.crt`)}`,
        `    client-key-data: ${b64(`${base}.key`)}`,
        'contexts:',
        `- name: kubenova-local`,
        `  context: {cluster: kubenova-local, user: ${JSON.stringify(user)}, namespace: default}`,
        'current-context: kubenova-local',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    return path;
  }

  kubectl(args: string[], input?: string): string {
    return execFileSync(this.binaries.kubectl, ['--kubeconfig', this.kubeconfigPath, ...args], {
      input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  }

  async stop(): Promise<void> {
    await this.scheduler?.stop();
    await this.controllerManager?.stop();
    await this.apiserver?.stop('SIGTERM', 15_000);
    await this.etcd?.stop();
  }
}

/** The first host address of an IPv4 CIDR (10.0.0.0/24 -> 10.0.0.1): the `kubernetes` Service's ClusterIP. */
export function firstAddress(cidr: string): string {
  const [base = ''] = cidr.split('/');
  const octets = base.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255))
    throw new Error(`${cidr}: not an IPv4 CIDR`);
  const n = (((octets[0] ?? 0) << 24) | ((octets[1] ?? 0) << 16) | ((octets[2] ?? 0) << 8) | (octets[3] ?? 0)) >>> 0;
  const first = n + 1;
  return [first >>> 24, (first >>> 16) & 255, (first >>> 8) & 255, first & 255].join('.');
}

/** How often a control plane is started afresh when one of its ports was taken meanwhile. */
const PORT_ATTEMPTS = 3;

/** A component could not bind the port chosen for it: another process took it first. */
class PortTaken extends Error {}

async function waitUntil(
  name: string,
  proc: ManagedProcess,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (hasExited(proc)) {
      const logFile = proc.logFile ?? '';
      const tail = logTail(logFile, 5);
      const message = `${name} exited during start (code ${proc.child.exitCode ?? proc.child.signalCode}); its log (${logFile}) ends:\n${tail}`;
      throw /address already in use/.test(tail) ? new PortTaken(message) : new Error(message);
    }
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${name} not ready after ${timeoutMs} ms: ${lastError}`);
}

function httpGet(url: string, auth?: { ca: Buffer; token: string }): Promise<string> {
  if (url.startsWith('http://')) {
    return fetch(url).then((r) => r.text());
  }
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        agent: new Agent({ ca: auth?.ca, keepAlive: false }),
        headers: auth ? { Authorization: `Bearer ${auth.token}` } : {},
        timeout: 5_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}
