// This agent's transfer certificate (mutual TLS between agents): a key made here and a
// certificate for its host (CN = host name) that the operator signs from the agents' CA,
// asked for through a CertificateSigningRequest with signerName compute.kubenova.io/agent-transfer.
// Kept in <dir> (key 0600) so that a restarted agent serves at once; renewed, with a new key,
// once two thirds of its lifetime have passed. The CA is the last certificate of the chain the
// signer returns; a certificate whose CN is not this host or that the CA did not sign is never used.
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AGENT_CERT_USAGES, AGENT_SIGNER_NAME } from '../../common/api/agent-certificates.js';
import type { CsrClient } from '../../common/kube/api.js';
import { apiMessage } from '../../common/kube/client.js';
import type { Logger } from '../../common/log.js';
import { commonNameOf, createCsr, newPrivateKey, splitPem } from '../../common/tls/x509.js';
import type { TlsMaterial } from './server.js';

export interface Identity extends TlsMaterial {
  notBefore: Date;
  notAfter: Date;
}

export interface AgentIdentityOptions {
  host: string;
  /** Where the key and certificate are kept. */
  dir: string;
  csrs: CsrClient;
  log: Logger;
  now?: () => Date;
  /** First wait between looks at a pending request (doubles up to 5 s). */
  pollMs?: number;
  /** Wait after a refused or failed request before asking again. */
  retryMs?: number;
}

/** The key, chain and CA if the chain is a valid certificate of `host` signed by its CA, now. */
export function checkIdentity(key: string, chain: string, host: string, now: Date): Identity | string {
  const pems = splitPem(chain);
  if (pems.length < 2) return 'the certificate chain must hold the certificate and its CA';
  const leaf = new X509Certificate(pems[0] as string);
  const caPem = pems[pems.length - 1] as string;
  const ca = new X509Certificate(caPem);
  if (commonNameOf(leaf) !== host) return `the certificate is for ${commonNameOf(leaf) ?? 'no CN'}, not ${host}`;
  if (!ca.ca || !leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return 'the certificate is not signed by its CA';
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now >= notAfter) return `the certificate expired at ${notAfter.toISOString()}`;
  return { key, cert: `${pems[0]}\n${caPem}\n`, ca: caPem, notBefore, notAfter };
}

export class AgentIdentity {
  private identity?: Identity;
  private stopped = false;
  private readonly abort = new AbortController();
  private readonly now: () => Date;

  constructor(private readonly opts: AgentIdentityOptions) {
    this.now = opts.now ?? (() => new Date());
  }

  /** The key and certificate to use now, if there is one yet. */
  current(): Identity | undefined {
    return this.identity;
  }

  /** Takes the key and certificate kept on disk when they are still good; returns them. */
  async load(): Promise<Identity | undefined> {
    try {
      const key = await readFile(join(this.opts.dir, 'transfer.key'), 'utf8');
      const chain = await readFile(join(this.opts.dir, 'transfer.crt'), 'utf8');
      const checked = checkIdentity(key, chain, this.opts.host, this.now());
      if (typeof checked === 'string') {
        this.opts.log.warn({ reason: checked }, 'ignoring the transfer certificate kept on disk');
        return undefined;
      }
      return (this.identity = checked);
    } catch {
      return undefined;
    }
  }

  /**
   * Keeps a certificate: asks for one when there is none, and a new one when two thirds of the
   * current one's lifetime have passed; `onChange` hears of each. Returns at once.
   */
  start(onChange: (identity: Identity) => void): void {
    void this.loop(onChange);
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  private async loop(onChange: (identity: Identity) => void): Promise<void> {
    while (!this.stopped) {
      const id = this.identity;
      const renewAt = id ? id.notBefore.getTime() + ((id.notAfter.getTime() - id.notBefore.getTime()) * 2) / 3 : 0;
      const wait = renewAt - this.now().getTime();
      if (wait > 0) {
        // Timers cap at ~24.8 days; a long certificate is looked at again meanwhile.
        if (!(await this.pause(Math.min(wait, 86_400_000)))) return;
        continue;
      }
      try {
        const fresh = await this.request();
        if (this.stopped) return;
        await this.save(fresh);
        this.identity = fresh;
        this.opts.log.info({ notAfter: fresh.notAfter.toISOString() }, 'transfer certificate issued');
        onChange(fresh);
      } catch (err) {
        if (this.stopped) return;
        this.opts.log.warn({ err: apiMessage(err) }, 'cannot get a transfer certificate yet; asking again');
        if (!(await this.pause(this.opts.retryMs ?? 5_000))) return;
      }
    }
  }

  /** False once stopped. */
  private async pause(ms: number): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal: this.abort.signal });
      return true;
    } catch {
      return false;
    }
  }

  /** One CertificateSigningRequest, waited for until it is issued, denied or failed. */
  private async request(): Promise<Identity> {
    const { host, csrs } = this.opts;
    const key = await newPrivateKey();
    const name = `kubenova-agent-${host}-${randomBytes(4).toString('hex')}`.slice(0, 253);
    await csrs.create({
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name, labels: { 'app.kubernetes.io/part-of': 'kubenova' } },
      spec: {
        signerName: AGENT_SIGNER_NAME,
        request: Buffer.from(createCsr(key, host)).toString('base64'),
        usages: [...AGENT_CERT_USAGES],
      },
    });
    this.opts.log.info({ csr: name }, 'asked for a transfer certificate');
    let pollMs = this.opts.pollMs ?? 250;
    for (;;) {
      if (!(await this.pause(pollMs))) throw new Error('stopped');
      pollMs = Math.min(pollMs * 2, 5_000);
      const csr = await csrs.get(name);
      if (!csr) throw new Error(`CertificateSigningRequest ${name} vanished`);
      const refused = csr.status?.conditions?.find(
        (c) => (c.type === 'Denied' || c.type === 'Failed') && c.status === 'True',
      );
      if (refused)
        throw new Error(`CertificateSigningRequest ${name} ${refused.type.toLowerCase()}: ${refused.message ?? ''}`);
      if (!csr.status?.certificate) continue;
      const chain = Buffer.from(csr.status.certificate, 'base64').toString('utf8');
      const checked = checkIdentity(key, chain, host, this.now());
      if (typeof checked === 'string') throw new Error(`CertificateSigningRequest ${name}: ${checked}`);
      return checked;
    }
  }

  private async save(id: Identity): Promise<void> {
    const { dir } = this.opts;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const [file, data, mode] of [
      ['transfer.key', id.key, 0o600],
      ['transfer.crt', id.cert, 0o644],
    ] as const) {
      const tmp = join(dir, `${file}.tmp`);
      await writeFile(tmp, data, { mode, flush: true });
      await rename(tmp, join(dir, file));
    }
  }
}
