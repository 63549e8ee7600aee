// Kubeconfigs for the node components: the environment's API server, its CA, and a static
// token the control plane accepts for that identity.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { StaticToken } from '../controlplane/controlplane.js';

export function newToken(user: string, groups: string[]): StaticToken {
  return { token: randomBytes(24).toString('hex'), user, uid: user, groups };
}

export function writeTokenKubeconfig(path: string, server: string, caPath: string, token: string): void {
  const ca = readFileSync(caPath).toString('base64');
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: kubenova',
      '  cluster:',
      `    server: ${server}`,
      `    certificate-authority-data: ${ca}`,
      'users:',
      '- name: node',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: kubenova',
      '  context: {cluster: kubenova, user: node}',
      'current-context: kubenova',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
}
