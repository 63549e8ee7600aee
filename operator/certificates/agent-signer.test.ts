import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_CA_SECRET,
  AGENT_CERT_USAGES,
  AGENT_SIGNER_NAME,
  NODE_NAME_EXTRA,
} from '../../common/api/agent-certificates.js';
import type { Csr } from '../../common/kube/api.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { createLogger } from '../../common/log.js';
import { commonNameOf, createCsr, newPrivateKey } from '../../common/tls/x509.js';
import { checkIdentity } from '../../node-agent/transfer/identity.js';
import { AgentSigner, judge, type AgentIdentityRule } from './agent-signer.js';

const NS = 'kubenova-system';
const AGENT_SA = 'system:serviceaccount:kubenova-system:kubenova-node-agent';
const RULE: AgentIdentityRule = {
  serviceAccount: { namespace: 'kubenova-system', name: 'kubenova-node-agent' },
};
const log = createLogger({ component: 'test', level: 'silent' });

let key: string;
beforeAll(async () => {
  key = await newPrivateKey();
});

/** A request for `cn` as the API server would store it for `username` with `extra`. */
function request(
  cn: string,
  username: string,
  extra: Record<string, string[]> = {},
  overrides: Partial<Csr['spec']> = {},
): Csr {
  return {
    metadata: { name: `req-${cn}-${Math.random().toString(16).slice(2, 8)}` },
    spec: {
      signerName: AGENT_SIGNER_NAME,
      request: Buffer.from(createCsr(key, cn)).toString('base64'),
      usages: [...AGENT_CERT_USAGES],
      username,
      extra,
      ...overrides,
    },
  };
}

describe('judge: who gets an agent transfer certificate', () => {
  it("approves the agents' service account for the node its token is bound to, with that node as CN", () => {
    expect(judge(request('node-a', AGENT_SA, { [NODE_NAME_EXTRA]: ['node-a'] }), RULE)).toEqual({
      approve: true,
      host: 'node-a',
    });
  });

  it("denies the agents' service account asking for another node's certificate, or with no node bound", () => {
    const other = judge(request('node-b', AGENT_SA, { [NODE_NAME_EXTRA]: ['node-a'] }), RULE);
    const unbound = judge(request('node-a', AGENT_SA), RULE);

    expect(other).toMatchObject({ approve: false, message: expect.stringMatching(/bound to \(node-a\), not node-b/) });
    expect(unbound).toMatchObject({ approve: false, message: expect.stringMatching(/\(none\)/) });
  });

  it('denies any other identity: another service account, a tenant, an admin', () => {
    for (const user of ['system:serviceaccount:tenant:default', 'alice', 'admin']) {
      expect(judge(request('node-a', user, { [NODE_NAME_EXTRA]: ['node-a'] }), RULE)).toMatchObject({
        approve: false,
        message: `${user} is not the node agent of node-a`,
      });
    }
  });

  it('approves the username <prefix><CN> only when a prefix is configured, and only for that CN', () => {
    const local: AgentIdentityRule = { usernamePrefix: 'kubenova:agent:' };

    expect(judge(request('node-a', 'kubenova:agent:node-a'), local)).toEqual({ approve: true, host: 'node-a' });
    expect(judge(request('node-b', 'kubenova:agent:node-a'), local)).toMatchObject({ approve: false });
    expect(judge(request('node-a', 'kubenova:agent:node-a'), RULE)).toMatchObject({ approve: false });
  });

  it('denies requests for other usages, another signer or a subject that is not a host name', () => {
    const extra = { [NODE_NAME_EXTRA]: ['node-a'] };
    expect(judge(request('node-a', AGENT_SA, extra, { usages: ['client auth', 'cert sign'] }), RULE)).toMatchObject({
      approve: false,
    });
    expect(judge(request('node-a', AGENT_SA, extra, { usages: ['client auth'] }), RULE)).toMatchObject({
      approve: false,
    });
    expect(
      judge(request('node-a', AGENT_SA, extra, { signerName: 'kubernetes.io/kube-apiserver-client' }), RULE),
    ).toMatchObject({ approve: false });
    expect(judge(request('Node_A', AGENT_SA, { [NODE_NAME_EXTRA]: ['Node_A'] }), RULE)).toMatchObject({
      approve: false,
    });
    expect(
      judge(request('node-a', AGENT_SA, extra, { request: Buffer.from('garbage').toString('base64') }), RULE),
    ).toMatchObject({ approve: false });
  });
});

describe('AgentSigner', () => {
  it('creates its CA in the release namespace once, approves and signs an agent request, denies a stranger', async () => {
    const cluster = new FakeCluster();
    const kube = cluster.client();
    const signer = new AgentSigner(kube.csrs, kube.secrets, { namespace: NS, rule: RULE, validityMs: 86_400_000 }, log);
    const agent = await kube.csrs.create(request('node-a', AGENT_SA, { [NODE_NAME_EXTRA]: ['node-a'] }));
    const stranger = await kube.csrs.create(request('node-a', 'alice'));

    await signer.pass();
    await signer.pass();

    const issued = cluster.csr(agent.metadata.name)!;
    expect(issued.status?.conditions?.map((c) => c.type)).toEqual(['Approved']);
    const chain = Buffer.from(issued.status?.certificate ?? '', 'base64').toString();
    const identity = checkIdentity(key, chain, 'node-a', new Date());
    expect(typeof identity).toBe('object');
    const ca = cluster.secret(NS, AGENT_CA_SECRET);
    const caPem = Buffer.from(ca?.data?.['tls.crt'] ?? '', 'base64').toString();
    expect(new X509Certificate(caPem).fingerprint256).toBe(
      new X509Certificate(typeof identity === 'object' ? identity.ca : '').fingerprint256,
    );
    const leaf = new X509Certificate(chain);
    expect(commonNameOf(leaf)).toBe('node-a');
    expect(leaf.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));

    const denied = cluster.csr(stranger.metadata.name)!;
    expect(denied.status?.conditions).toEqual([
      expect.objectContaining({
        type: 'Denied',
        reason: 'NotAnAgentIdentity',
        message: 'alice is not the node agent of node-a',
      }),
    ]);
    expect(denied.status?.certificate).toBeUndefined();
    expect(cluster.writes.filter((w) => w.kind === 'Secret' && w.verb === 'create')).toHaveLength(1);
  });

  it('never signs a request someone else approved if it breaks the rule', async () => {
    const cluster = new FakeCluster();
    const kube = cluster.client();
    const signer = new AgentSigner(kube.csrs, kube.secrets, { namespace: NS, rule: RULE, validityMs: 86_400_000 }, log);
    const forged = await kube.csrs.create(request('node-b', 'admin'));
    await kube.csrs.decide(forged, 'Approved', 'ByHand', 'an admin approved it');

    await signer.pass();

    expect(cluster.csr(forged.metadata.name)?.status?.certificate).toBeUndefined();
  });
});
