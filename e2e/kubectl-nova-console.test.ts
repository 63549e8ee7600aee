// `kubectl nova console` on a real guest: an agent with the libvirt driver, run as a local
// process as `npm start -- --driver libvirt` runs it, boots the tiny guest, whose init prints
// its report on the serial console. With no agent pod to exec into, --state-dir reads the log
// from the agents' state directory. Skipped, saying why, where libvirtd does not answer.
import { spawn } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../devenv/components.js';
import { ensureTinyImage } from '../node-agent/driver/libvirt-image.js';
import { TestEnv } from './harness/env.js';
import { libvirtUnavailable } from './harness/libvirt.js';
import { external } from './harness/mode.js';

const unavailable = libvirtUnavailable();
if (unavailable) console.warn(`e2e/kubectl-nova-console.test.ts skipped: ${unavailable}`);

let env: TestEnv;

/** `kubectl nova <args>` with bin/ on PATH; with `stopWhen`, interrupted once its output matches. */
function nova(args: string[], stopWhen?: RegExp): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const kubectl = env.cp.binaries.kubectl;
  return new Promise((resolve, reject) => {
    const child = spawn(kubectl, ['nova', ...args], {
      env: {
        ...process.env,
        PATH: [join(repoRoot, 'bin'), dirname(kubectl), process.env.PATH].join(delimiter),
        KUBECONFIG: env.kubeconfigPath,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stopWhen?.test(stdout)) child.kill('SIGINT');
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A follow that never sees what it waits for is stopped anyway, so the test fails instead of hanging.
    const stop = stopWhen && setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      if (stop) clearTimeout(stop);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(Boolean(unavailable) || external)('kubectl nova console on a real guest', () => {
  // Unique per run: agents of other runs may share this libvirtd.
  const host = `lv-con-${Math.random().toString(36).slice(2, 7)}`;

  beforeAll(async () => {
    const image = ensureTinyImage();
    env = await TestEnv.start({
      agents: [
        {
          name: host,
          vcpus: 2,
          memoryMiB: 1024,
          diskGiB: 10,
          extraArgs: ['--driver=libvirt', `--libvirt-images=tiny=${dirname(image.kernel)}`],
        },
      ],
    });
    // QEMU runs as libvirt's unprivileged user, which must pass through the state directories.
    chmodSync(dirname(env.stateDir), 0o711);
    env.apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Flavor',
      metadata: { name: 'g1' },
      spec: { vcpus: 1, memoryMiB: 128, rootDiskGiB: 1 },
    });
  }, 300_000);

  afterAll(async () => {
    if (env) {
      env.kubectl(['delete', 'instance', '--all', '--wait=true', '--timeout=120s']);
      await env.stop();
    }
  });

  it("prints the guest's serial console, and with -f follows it until interrupted", async () => {
    const boot = await nova(['boot', 'vm-1', '--flavor', 'g1', '--image', 'tiny', '--wait', '--timeout', '4m']);
    expect(boot.code).toBe(0);

    const once = await nova(['console', 'vm-1', '--state-dir', env.stateDir]);
    expect(once.code).toBe(0);
    expect(once.stdout).toMatch(/KUBENOVA-GUEST vcpus=1 memkib=\d+ diskbytes=1073741824 marker=[0-9a-f]{32}/);

    const followed = await nova(['console', 'vm-1', '-f', '--state-dir', env.stateDir], /KUBENOVA-GUEST [^\n]*\n/);
    expect(followed.stdout).toContain('KUBENOVA-GUEST vcpus=1');
    expect(followed.code).toBe(0); // Ctrl-C ends a follow, as kubectl logs -f
  });

  it('without a node agent pod to exec into, says so and how to read it instead', async () => {
    const r = await nova(['console', 'vm-1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: no running kubenova node agent pod on node ${host}`);
    expect(r.stderr).toContain('pass --state-dir');
  });
});
