// `npm start` is the main job: it must reach Ready: on a clean machine, give a working
// kubeconfig, let two environments run side by side, and leave nothing behind on Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { localOnly } from './harness/mode.js';
import { ensureBinaries } from '../devenv/controlplane/binaries.js';
import { distDir, repoRoot } from './harness/components.js';
import { execFileSync } from 'node:child_process';

const started: { child: ChildProcess; dir: string }[] = [];

function npmStart(stateDir: string): Promise<{ child: ChildProcess; readyLine: string }> {
  const child = spawn(process.execPath, [join(distDir, 'devenv', 'localenv', 'main.js'), '--state-dir', stateDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push({ child, dir: stateDir });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no Ready: line within 120 s; output:\n${out}`)), 120_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n').find((l) => l.startsWith('Ready:'));
      if (line) {
        clearTimeout(timer);
        resolve({ child, readyLine: line });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`npm start exited (${code}) before Ready:\n${out}`)));
  });
}

afterAll(() => {
  for (const s of started) {
    s.child.kill('SIGKILL');
    rmSync(s.dir, { recursive: true, force: true });
  }
});

localOnly('npm start', () => {
  it('reaches Ready:, serves kubectl with three Ready nodes, runs beside a second environment, and stops cleanly on Ctrl-C', async () => {
    const dirA = mkdtempSync(join(tmpdir(), 'kubenova-start-a-'));
    const dirB = mkdtempSync(join(tmpdir(), 'kubenova-start-b-'));
    const [a, b] = await Promise.all([npmStart(dirA), npmStart(dirB)]);
    expect(a.readyLine).toContain(join(dirA, 'kubeconfig'));
    const { kubectl } = ensureBinaries();
    for (const dir of [dirA, dirB]) {
      const out = execFileSync(
        kubectl,
        [
          '--kubeconfig',
          join(dir, 'kubeconfig'),
          'get',
          'cn',
          '-o',
          'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}',
        ],
        { encoding: 'utf8' },
      );
      expect(out.trim().split(' ').sort()).toEqual(['node-a=True', 'node-b=True', 'node-c=True']);
      const flavors = execFileSync(kubectl, ['--kubeconfig', join(dir, 'kubeconfig'), 'get', 'flv', '-o', 'name'], {
        encoding: 'utf8',
      });
      expect(flavors.trim().split('\n').sort()).toEqual([
        'flavor.compute.kubenova.io/m1.large',
        'flavor.compute.kubenova.io/m1.medium',
        'flavor.compute.kubenova.io/m1.small',
        'flavor.compute.kubenova.io/m1.tiny',
      ]);
    }
    // npm start boots instances: an applied Instance becomes active.
    execFileSync(kubectl, [
      '--kubeconfig',
      join(dirA, 'kubeconfig'),
      'apply',
      '-f',
      join(repoRoot, 'examples', 'instance.yaml'),
    ]);
    const waited = execFileSync(
      kubectl,
      ['--kubeconfig', join(dirA, 'kubeconfig'), 'wait', '--for=condition=Ready', 'instance/web-1', '--timeout=60s'],
      { encoding: 'utf8' },
    );
    expect(waited).toContain('condition met');
    const exits = [a, b].map(({ child }) => new Promise<number | null>((r) => child.once('exit', (code) => r(code))));
    a.child.kill('SIGINT');
    b.child.kill('SIGTERM');
    expect(await Promise.all(exits)).toEqual([0, 0]);
    const leftovers = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(dirA) || l.includes(dirB));
    expect(leftovers).toEqual([]);
  });
});
