import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { NO_LOG_EXIT, consoleExecCommand, execExitCode, pickAgentPod } from './console.js';

const UID = '0b7c6f1e-5d7a-4c1e-9a51-7d0f2b1c3e4f';
const dir = mkdtempSync(join(tmpdir(), 'kubectl-nova-console-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the command as the agent container would, with its state directory. */
function runInAgent(command: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(command[0]!, command.slice(1), {
      env: { PATH: process.env.PATH, KUBENOVA_STATE_DIR: dir },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('console through the agent pod', () => {
  it("prints the guest's console log from <state-dir>/<host>/console/<uid>.log, where the libvirt driver keeps it", () => {
    mkdirSync(join(dir, 'node-a', 'console'), { recursive: true });
    writeFileSync(join(dir, 'node-a', 'console', `${UID}.log`), 'KUBENOVA-GUEST vcpus=1\nlogin:\n');
    expect(runInAgent(consoleExecCommand('node-a', UID, false))).toEqual({
      code: 0,
      stdout: 'KUBENOVA-GUEST vcpus=1\nlogin:\n',
      stderr: '',
    });
  });

  it('exits with its own code when the guest has no log on that host', () => {
    const r = runInAgent(consoleExecCommand('node-b', UID, false));
    expect(r.code).toBe(NO_LOG_EXIT);
    expect(r.stderr).toContain(`node-b/console/${UID}.log`);
  });

  it('passes host and uid as arguments, never into the script, and refuses anything that is not a uid', () => {
    const cmd = consoleExecCommand('node-a', UID, true);
    expect(cmd.slice(0, 2)).toEqual(['sh', '-c']);
    expect(cmd.slice(3)).toEqual(['console', 'node-a', UID, 'follow']);
    expect(cmd[2]).not.toContain(UID);
    expect(() => consoleExecCommand('node-a', '$(reboot)', false)).toThrow('is not a uid');
    expect(() => consoleExecCommand('node a;x', UID, false)).toThrow('host name');
  });

  it("picks the newest running agent pod on the instance's node", () => {
    const pod = (name: string, node: string, phase: string, created: string): V1Pod => ({
      metadata: { name, namespace: 'kubenova-system', creationTimestamp: new Date(created) },
      spec: { nodeName: node, containers: [] },
      status: { phase },
    });
    const pods = [
      pod('old', 'node-a', 'Running', '2026-01-01T00:00:00Z'),
      pod('new', 'node-a', 'Running', '2026-01-01T01:00:00Z'),
      pod('pending', 'node-a', 'Pending', '2026-01-01T02:00:00Z'),
      pod('elsewhere', 'node-b', 'Running', '2026-01-01T03:00:00Z'),
    ];
    expect(pickAgentPod(pods, 'node-a')?.metadata?.name).toBe('new');
    expect(pickAgentPod(pods, 'node-c')).toBeUndefined();
  });

  it("reads the command's exit code from the exec status", () => {
    expect(execExitCode({ status: 'Success' })).toBe(0);
    expect(
      execExitCode({
        status: 'Failure',
        reason: 'NonZeroExitCode',
        details: { causes: [{ reason: 'ExitCode', message: '3' }] },
      }),
    ).toBe(3);
  });
});
