// A containerd of our own, to check images the way a node will use them: its own root, state
// and socket under one directory, so it neither sees nor disturbs any other containerd on the
// machine, and everything it leaves is removed with that directory. Needs root.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startProcess, type ManagedProcess } from '../controlplane/processes.js';
import { run, SETUP_HINT } from './exec.js';

/** The namespace the kubelet's CRI plugin uses: images imported there are the node's images. */
export const K8S_NAMESPACE = 'k8s.io';

/** containerd's config: everything under `dir`; no CRI plugin (no kubelet talks to this one). */
export function containerdConfig(dir: string): string {
  return [
    'version = 2',
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = ${JSON.stringify(join(dir, 'containerd.sock'))}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(join(dir, 'containerd.sock.ttrpc'))}`,
    '[debug]',
    `  address = ${JSON.stringify(join(dir, 'debug.sock'))}`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(join(dir, 'opt'))}`,
    '',
  ].join('\n');
}

/** Mount points at or below `dir` in a /proc/self/mountinfo text, deepest first. */
export function mountsBelow(mountinfo: string, dir: string): string[] {
  const unescape = (p: string): string =>
    p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map(unescape)
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

export interface RunOptions {
  privileged?: boolean;
}

export class PrivateContainerd {
  private constructor(
    readonly dir: string,
    private readonly process: ManagedProcess,
  ) {}

  get socket(): string {
    return join(this.dir, 'containerd.sock');
  }

  /** Starts containerd in `dir` (created; its log goes to dir/containerd.log) and waits until it answers. */
  static async start(dir: string): Promise<PrivateContainerd> {
    await mkdir(dir, { recursive: true });
    const config = join(dir, 'config.toml');
    await writeFile(config, containerdConfig(dir));
    const proc = startProcess({
      name: 'containerd',
      command: 'containerd',
      args: ['--config', config],
      logFile: join(dir, 'containerd.log'),
    });
    const ctd = new PrivateContainerd(dir, proc);
    for (let i = 0; ; i++) {
      try {
        await ctd.ctr(['version']);
        return ctd;
      } catch (err) {
        if (proc.child.exitCode !== null || i >= 100) {
          await ctd.stop();
          throw new Error(`containerd did not start (see ${join(dir, 'containerd.log')}): ${(err as Error).message}`, {
            cause: err,
          });
        }
        await sleep(200);
      }
    }
  }

  /** `ctr` against this containerd, in the k8s.io namespace. */
  ctr(args: readonly string[]): Promise<string> {
    return run('ctr', ['--address', this.socket, '--namespace', K8S_NAMESPACE, ...args], { hint: SETUP_HINT });
  }

  async importArchive(archive: string): Promise<void> {
    await this.ctr(['images', 'import', archive]);
  }

  /** The names of the images in the k8s.io namespace. */
  async imageNames(): Promise<string[]> {
    return (await this.ctr(['images', 'ls', '--quiet']))
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  }

  /**
   * Runs `command` in a new container of `ref` as the image's user and resolves with its
   * output. (`ctr tasks exec --user` is not offered: it mounts the running container's
   * snapshot a second time to look the user up, which breaks that container's overlay.)
   */
  runContainer(ref: string, id: string, command: readonly string[], opts: RunOptions = {}): Promise<string> {
    return this.ctr(['run', '--rm', ...(opts.privileged ? ['--privileged'] : []), ref, id, ...command]);
  }

  /** Stops every task, then containerd; unmounts what is left and removes the directory. */
  async stop(): Promise<void> {
    const list = async (what: string): Promise<string[]> =>
      (await this.ctr([what, 'ls', '--quiet']).catch(() => '')).split('\n').filter(Boolean);
    try {
      // A task's shim outlives containerd: each task is killed and deleted, which ends its shim.
      for (const t of await list('tasks')) {
        await this.ctr(['tasks', 'kill', '--signal', 'SIGKILL', t]).catch(() => undefined);
        await this.ctr(['tasks', 'delete', '--force', t]).catch(() => undefined);
      }
      for (const c of await list('containers')) await this.ctr(['containers', 'delete', c]).catch(() => undefined);
    } finally {
      await this.process.stop('SIGTERM', 10_000);
      for (const m of mountsBelow(await readFile('/proc/self/mountinfo', 'utf8'), this.dir))
        await run('umount', ['--lazy', m]).catch(() => undefined);
      await rm(this.dir, { recursive: true, force: true });
    }
  }
}
