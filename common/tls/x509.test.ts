import { X509Certificate, createPrivateKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { commonNameOf, createCa, createCsr, newPrivateKey, parseCsr, signLeaf } from './x509.js';

describe('x509', () => {
  it('a request made here reads back with its CN and a valid signature, and the leaf signed from it chains to the CA', async () => {
    const ca = await createCa('kubenova agent transfer CA', 3650);
    const key = await newPrivateKey();
    const csr = parseCsr(createCsr(key, 'node-a'));
    expect(csr.subject).toEqual([{ name: 'CN', value: 'node-a' }]);
    expect(csr.signatureValid).toBe(true);
    expect(csr.hasExtensions).toBe(false);
    const leaf = new X509Certificate(signLeaf(ca, csr.publicKeyPem, 'node-a', new Date(Date.now() + 86_400_000)));
    const caCert = new X509Certificate(ca.certPem);
    expect(commonNameOf(leaf)).toBe('node-a');
    expect(leaf.verify(caCert.publicKey)).toBe(true);
    expect(leaf.checkIssued(caCert)).toBe(true);
    expect(leaf.checkPrivateKey(createPrivateKey(key))).toBe(true);
    expect(caCert.ca).toBe(true);
    expect(leaf.ca).toBe(false);
  });
});
