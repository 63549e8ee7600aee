// The local control plane the suites start: ports are chosen free, and a port another process
// takes before kube-apiserver binds it makes the start try again on other ports, a bounded number
// of times, and then fail naming the cause.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ControlPlane } from '../devenv/controlplane/controlplane.js';
import { localOnly } from './harness/mode.js';

const dir = mkdtempSync(join(process.env.KUBENOVA_TEST_TMP ?? tmpdir(), 'kubenova-controlplane-'));
let holder: Server | undefined;

afterAll(() => {
  holder?.close();
  rmSync(dir, { recursive: true, force: true });
});

localOnly('the local control plane', () => {
  it('gives up after a few fresh starts when its API port is always taken, saying so', async () => {
    holder = createServer();
    const port = await new Promise<number>((resolve) =>
      holder!.listen(0, '127.0.0.1', () => resolve((holder!.address() as { port: number }).port)),
    );
    // The flag after kubenova's own wins: kube-apiserver finds this port taken on every start.
    const start = ControlPlane.start({ dir: join(dir, 'controlplane'), apiserverFlags: [`--secure-port=${port}`] });
    await expect(start).rejects.toThrow(/kube-apiserver exited during start[\s\S]*address already in use/);
  });
});
