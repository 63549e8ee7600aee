// The certificates node agents use for the disk transfer (mutual TLS): each agent asks for one
// through the Kubernetes CertificateSigningRequest API with this signerName; the operator
// approves and signs it from its own CA (kept in the release namespace) only for an agent
// identity, with the agent's host name as the certificate's CN.
export const AGENT_SIGNER_NAME = 'compute.kubenova.io/agent-transfer';

/** The extra the API server binds into a pod's service-account token: the node the pod runs on. */
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

/** The Secret (release namespace) holding the CA's certificate and key. */
export const AGENT_CA_SECRET = 'kubenova-agent-transfer-ca';

/** The usages an agent asks for: the same certificate serves (destination) and connects (source). */
export const AGENT_CERT_USAGES = ['digital signature', 'key encipherment', 'server auth', 'client auth'] as const;

/** RFC 1123 subdomain: what a Kubernetes node (and so ComputeNode) name is. */
export const isHostName = (s: string): boolean => /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(s);
