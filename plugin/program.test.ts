import { describe, expect, it } from 'vitest';
import { run } from './main.js';
import { normalizeArgs } from './program.js';
import { recordingIO } from './testing.js';

// Only what fails before any connection is tried: every request here is refused by the parser.
const COMMANDS = [
  'list',
  'show',
  'boot',
  'start',
  'stop',
  'resize',
  'resize-confirm',
  'resize-revert',
  'migrate',
  'evacuate',
  'console',
  'host-list',
  'host-show',
  'host-disable',
  'host-enable',
  'drain',
  'flavor-list',
  'flavor-create',
  'quota-show',
  'version',
];

describe('the kubectl nova command line', () => {
  it.each(COMMANDS)('%s has --help, naming the kubectl options every command takes, and exits 0', async (command) => {
    const io = recordingIO();
    expect(await run([command, '--help'], io)).toBe(0);
    expect(io.stdout).toContain(`Usage: kubectl nova ${command}`);
    for (const flag of ['-n, --namespace', '--kubeconfig', '--context']) expect(io.stdout).toContain(flag);
  });

  it('lists every command in its own help', async () => {
    const io = recordingIO();
    expect(await run(['--help'], io)).toBe(0);
    for (const command of COMMANDS) expect(io.stdout).toMatch(new RegExp(`\\n  ${command} `));
  });

  it.each([
    [['resize', 'web-1'], "error: missing required argument 'flavor'"],
    [['boot', 'web-1', '--image', 'cirros'], "error: required option '--flavor <flavor>' not specified"],
    [['host-disable', 'node-a'], "error: required option '--reason <reason>' not specified"],
    [
      ['list', '-o', 'xml'],
      "error: option '-o, --output <format>' argument 'xml' is invalid. Allowed choices are json, yaml.",
    ],
    [['show'], "error: missing required argument 'name'"],
    [['show', 'a', 'b'], 'error: too many arguments for'],
    [['frobnicate'], "error: unknown command 'frobnicate'"],
    [['list', '--bogus'], "error: unknown option '--bogus'"],
    [['drain', 'node-a', '--concurrency', '0'], '--concurrency must be a whole number of at least 1'],
    [['resize', 'web-1', 'm1.large', '--wait', '--timeout', 'soon'], '"soon" is not a duration'],
  ])('refuses %j with a clear message and a non-zero exit', async (args, message) => {
    const io = recordingIO();
    expect(await run(args, io)).not.toBe(0);
    expect(io.stderr).toContain(message);
  });

  it('accepts -n=ns and -o=json as kubectl does', () => {
    expect(normalizeArgs(['list', '-n=team', '-o=json'])).toEqual(['list', '-n', 'team', '-o', 'json']);
    expect(normalizeArgs(['boot', 'a', '--flavor=m1.small'])).toEqual(['boot', 'a', '--flavor=m1.small']);
  });

  it('says which kubeconfig or context is wrong before it connects, exit 1', async () => {
    const io = recordingIO();
    expect(await run(['list', '--kubeconfig', '/nonexistent/kubeconfig'], io)).toBe(1);
    expect(io.stderr).toBe('error: --kubeconfig /nonexistent/kubeconfig: no such file\n');
  });

  it('prints its version without a server', async () => {
    const io = recordingIO();
    expect(await run(['version', '--client'], io)).toBe(0);
    expect(io.stdout).toMatch(/^kubectl-nova: +\d+\.\d+\.\d+ \(Node\.js v/);
  });
});
