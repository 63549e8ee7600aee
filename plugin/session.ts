// Connecting as kubectl does: the kubeconfig from --kubeconfig, else KUBECONFIG (several files
// merged), else ~/.kube/config (or the in-cluster service account); the context from --context,
// else the kubeconfig's current one; the namespace from -n/--namespace, else the context's,
// else "default".
import { existsSync } from 'node:fs';
import { delimiter } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { Kube } from '../common/kube/client.js';
import { UserError } from './errors.js';

/** The options every command takes, as kubectl names them. */
export interface GlobalOptions {
  namespace?: string;
  kubeconfig?: string;
  context?: string;
}

export interface Session {
  readonly kc: KubeConfig;
  readonly kube: Kube;
  readonly core: CoreV1Api;
  /** The namespace commands act in. */
  readonly namespace: string;
  /** True when -n/--namespace was given (not taken from the context or the default). */
  readonly namespaceGiven: boolean;
  /** The API server's URL, for messages. */
  readonly server: string;
}

/** The user agent's field manager: writes by the plugin show up as kubectl-nova in managedFields. */
export const FIELD_MANAGER = 'kubectl-nova';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * KUBECONFIG's files merged as kubectl merges them: files that do not exist are skipped, the
 * first cluster, user or context of a name wins, and so does the first current-context set.
 */
export function loadKubeconfigFiles(paths: readonly string[]): KubeConfig {
  const existing = paths.filter((p) => existsSync(p));
  if (existing.length === 0) throw new UserError(`KUBECONFIG names no file that exists: ${paths.join(', ')}`);
  const kc = new KubeConfig();
  kc.loadFromFile(existing[0]!);
  for (const path of existing.slice(1)) {
    const more = new KubeConfig();
    more.loadFromFile(path);
    for (const c of more.getClusters()) if (!kc.getCluster(c.name)) kc.addCluster(c);
    for (const u of more.getUsers()) if (!kc.getUser(u.name)) kc.addUser(u);
    for (const c of more.getContexts()) if (!kc.getContextObject(c.name)) kc.addContext(c);
    if (!kc.getCurrentContext() && more.getCurrentContext()) kc.setCurrentContext(more.getCurrentContext());
  }
  return kc;
}

/** Loads the kubeconfig and picks the context; throws a UserError naming what is wrong. */
export function loadConfig(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  let kc: KubeConfig;
  if (opts.kubeconfig !== undefined) {
    if (!opts.kubeconfig) throw new UserError('--kubeconfig needs a path');
    if (!existsSync(opts.kubeconfig)) throw new UserError(`--kubeconfig ${opts.kubeconfig}: no such file`);
    kc = new KubeConfig();
    kc.loadFromFile(opts.kubeconfig);
  } else if (env.KUBECONFIG) {
    kc = loadKubeconfigFiles(env.KUBECONFIG.split(delimiter).filter(Boolean));
  } else {
    // ~/.kube/config, else the in-cluster service account.
    kc = new KubeConfig();
    kc.loadFromDefault();
  }
  if (opts.context !== undefined) {
    if (!kc.getContextObject(opts.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new UserError(
        `context ${JSON.stringify(opts.context)} is not in the kubeconfig${known.length ? ` (contexts: ${known.join(', ')})` : ''}`,
      );
    }
    kc.setCurrentContext(opts.context);
  }
  return kc;
}

/** The namespace to act in: -n, else the current context's, else default. */
export function pickNamespace(kc: KubeConfig, opts: GlobalOptions): { namespace: string; given: boolean } {
  if (opts.namespace !== undefined) {
    if (!DNS_LABEL.test(opts.namespace))
      throw new UserError(
        `-n/--namespace ${JSON.stringify(opts.namespace)} is not a valid namespace name (lower-case letters, digits and "-")`,
      );
    return { namespace: opts.namespace, given: true };
  }
  const fromContext = kc.getContextObject(kc.getCurrentContext())?.namespace;
  return { namespace: fromContext || 'default', given: false };
}

export function connect(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): Session {
  const kc = loadConfig(opts, env);
  const { namespace, given } = pickNamespace(kc, opts);
  const server = kc.getCurrentCluster()?.server ?? '';
  return {
    kc,
    kube: new Kube(kc, FIELD_MANAGER),
    core: kc.makeApiClient(CoreV1Api),
    namespace,
    namespaceGiven: given,
    server,
  };
}
