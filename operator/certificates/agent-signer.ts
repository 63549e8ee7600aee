// The signer of the agents' transfer certificates (signerName compute.kubenova.io/agent-transfer):
// it approves a CertificateSigningRequest only when the requester is a node agent asking for a
// certificate of its own host, denies every other one saying why, and signs approved ones from
// its CA, which it keeps in a Secret of the release namespace (made on first start).
//
// The rule (judge): the request is for our signer, is a valid RSA request signed by its key,
// has exactly one subject field, CN = a host name, asks for no extension, and asks for the
// usages digital signature, key encipherment, server auth and client auth only; and the
// requester, as the API server recorded it in spec.username and spec.extra, is
//   - the agents' service account, with the node its token is bound to
//     (extra authentication.kubernetes.io/node-name) equal to the CN, or
//   - when a username prefix is configured (local environments whose agents authenticate with
//     client certificates), exactly `<prefix><CN>`.
import { X509Certificate } from 'node:crypto';
import {
  AGENT_CA_SECRET,
  AGENT_CERT_USAGES,
  AGENT_SIGNER_NAME,
  NODE_NAME_EXTRA,
  isHostName,
} from '../../common/api/agent-certificates.js';
import type { Csr, CsrClient, SecretClient } from '../../common/kube/api.js';
import { isConflict } from '../../common/kube/client.js';
import type { Logger } from '../../common/log.js';
import { createCa, parseCsr, signLeaf, type CertificateAuthority } from '../../common/tls/x509.js';

export interface AgentIdentityRule {
  /** The node agents' service account (the chart's); its tokens carry the node they are bound to. */
  serviceAccount?: { namespace: string; name: string };
  /** Accept the username `<prefix><CN>` (a local environment's per-agent client certificates). */
  usernamePrefix?: string;
}

export type Verdict = { approve: true; host: string } | { approve: false; message: string };

/** Whether `csr` is a node agent asking for the certificate of its own host. */
export function judge(csr: Csr, rule: AgentIdentityRule): Verdict {
  const deny = (message: string): Verdict => ({ approve: false, message });
  const spec = csr.spec;
  if (spec.signerName !== AGENT_SIGNER_NAME) return deny(`not for signer ${AGENT_SIGNER_NAME}`);
  let parsed;
  try {
    parsed = parseCsr(Buffer.from(spec.request, 'base64').toString('utf8'));
  } catch (err) {
    return deny(`the request cannot be read as an RSA certificate request: ${(err as Error).message}`);
  }
  if (!parsed.signatureValid) return deny('the request is not signed by the key it carries');
  const [cn, ...others] = parsed.subject;
  if (!cn || cn.name !== 'CN' || others.length > 0) return deny('the subject must be exactly one CN, the host name');
  const host = cn.value;
  if (!isHostName(host)) return deny(`CN ${JSON.stringify(host)} is not a host name`);
  if (parsed.hasExtensions) return deny('the request may not ask for extensions (subjectAltName or others)');
  const allowed = new Set<string>(AGENT_CERT_USAGES);
  const usages = spec.usages ?? [];
  if (usages.some((u) => !allowed.has(u)) || !usages.includes('client auth') || !usages.includes('server auth'))
    return deny(`usages must be a subset of ${AGENT_CERT_USAGES.join(', ')} including server auth and client auth`);
  const username = spec.username ?? '';
  const sa = rule.serviceAccount;
  if (sa && username === `system:serviceaccount:${sa.namespace}:${sa.name}`) {
    const nodes = spec.extra?.[NODE_NAME_EXTRA] ?? [];
    if (nodes.length === 1 && nodes[0] === host) return { approve: true, host };
    return deny(
      `${username} may ask only for the certificate of the node its token is bound to ` +
        `(${nodes.length ? nodes.join(', ') : 'none'}), not ${host}`,
    );
  }
  if (rule.usernamePrefix && username === `${rule.usernamePrefix}${host}`) return { approve: true, host };
  return deny(`${username || 'the requester'} is not the node agent of ${host}`);
}

export interface AgentSignerConfig {
  /** The release namespace: where the CA Secret lives. */
  namespace: string;
  rule: AgentIdentityRule;
  /** Lifetime of an issued certificate (a shorter spec.expirationSeconds wins, but never below 10 min). */
  validityMs: number;
}

const CA_VALID_DAYS = 3650;
const MIN_VALIDITY_MS = 600_000;

export class AgentSigner {
  private ca?: Promise<CertificateAuthority>;

  constructor(
    private readonly csrs: CsrClient,
    private readonly secrets: SecretClient,
    private readonly config: AgentSignerConfig,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** The CA: read from its Secret, or made and stored there on first start (one replica wins a race). */
  authority(): Promise<CertificateAuthority> {
    // One load at a time; a failed one is tried again by the next caller.
    this.ca ??= this.loadAuthority().catch((err: unknown) => {
      this.ca = undefined;
      throw err;
    });
    return this.ca;
  }

  private async loadAuthority(): Promise<CertificateAuthority> {
    const { namespace } = this.config;
    const read = async () => {
      const secret = await this.secrets.get(namespace, AGENT_CA_SECRET);
      const cert = secret?.data?.['tls.crt'];
      const key = secret?.data?.['tls.key'];
      if (!secret) return undefined;
      if (!cert || !key) throw new Error(`Secret ${namespace}/${AGENT_CA_SECRET} lacks tls.crt or tls.key`);
      return { certPem: Buffer.from(cert, 'base64').toString(), keyPem: Buffer.from(key, 'base64').toString() };
    };
    let ca = await read();
    if (!ca) {
      const made = await createCa('kubenova agent transfer CA', CA_VALID_DAYS, this.now());
      try {
        await this.secrets.create({
          metadata: {
            name: AGENT_CA_SECRET,
            namespace,
            labels: { 'app.kubernetes.io/part-of': 'kubenova' },
          },
          type: 'kubernetes.io/tls',
          stringData: { 'tls.crt': made.certPem, 'tls.key': made.keyPem },
        });
        this.log.info({ secret: `${namespace}/${AGENT_CA_SECRET}` }, 'created the agent transfer CA');
        ca = made;
      } catch (err) {
        if (!isConflict(err)) throw err;
        ca = await read();
      }
    }
    if (!ca) throw new Error(`Secret ${namespace}/${AGENT_CA_SECRET} vanished while it was being created`);
    return ca;
  }

  /** One pass over our signer's requests: decide the undecided, sign the approved. Safe to repeat. */
  async pass(): Promise<void> {
    for (const csr of await this.csrs.list(AGENT_SIGNER_NAME)) {
      try {
        await this.reconcile(csr);
      } catch (err) {
        if (isConflict(err)) continue; // changed meanwhile: the next pass sees it as it is
        this.log.warn({ csr: csr.metadata.name, err: (err as Error).message }, 'agent certificate request failed');
      }
    }
  }

  async reconcile(csr: Csr): Promise<void> {
    const conditions = csr.status?.conditions ?? [];
    const has = (type: string) => conditions.some((c) => c.type === type && c.status === 'True');
    if (has('Denied') || has('Failed') || csr.status?.certificate) return;
    const verdict = judge(csr, this.config.rule);
    const log = this.log.child({ csr: csr.metadata.name, requester: csr.spec.username });
    if (!has('Approved')) {
      if (!verdict.approve) {
        await this.csrs.decide(csr, 'Denied', 'NotAnAgentIdentity', verdict.message);
        log.warn({ reason: verdict.message }, 'denied an agent certificate request');
        return;
      }
      csr = await this.csrs.decide(csr, 'Approved', 'AgentIdentity', `node agent of ${verdict.host}`);
      log.info({ host: verdict.host }, 'approved an agent certificate request');
    }
    // Approved by someone else too: still signed only when it passes the rule.
    if (!verdict.approve) return;
    const ca = await this.authority();
    const now = this.now();
    const asked = csr.spec.expirationSeconds ? csr.spec.expirationSeconds * 1000 : this.config.validityMs;
    const validity = Math.max(MIN_VALIDITY_MS, Math.min(asked, this.config.validityMs));
    const publicKeyPem = parseCsr(Buffer.from(csr.spec.request, 'base64').toString('utf8')).publicKeyPem;
    const leaf = signLeaf(ca, publicKeyPem, verdict.host, new Date(now.getTime() + validity), now);
    await this.csrs.issue(csr, `${leaf}${ca.certPem}`);
    log.info({ host: verdict.host, notAfter: new X509Certificate(leaf).validTo }, 'issued an agent certificate');
  }
}
