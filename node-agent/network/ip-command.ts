// A small typed runner over iproute2's `ip`: the only way the agent touches the host's network.
// `ip -j` gives JSON, so links are read as data, not scraped; every failure names the command
// and what `ip` said.
import { execFile } from 'node:child_process';

/** What the agent reads of a link (`ip -j -d link show`). */
export interface LinkInfo {
  name: string;
  /** 'bridge', 'veth', 'tun' ...; undefined for a plain device. */
  kind?: string;
  /** The bridge it is enslaved to. */
  master?: string;
  mtu: number;
  /** Administratively up. */
  up: boolean;
}

export class IpCommandError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly stderr: string,
    message: string,
  ) {
    super(message);
    this.name = 'IpCommandError';
  }
}

/** Runs `ip <args>`, resolving with stdout. Injected so tests (and the fake driver's mode) never touch a host. */
export type IpRunner = (args: readonly string[]) => Promise<string>;

export function ipRunner(opts: { binary?: string; timeoutMs?: number; netns?: string } = {}): IpRunner {
  const binary = opts.binary ?? 'ip';
  const timeout = opts.timeoutMs ?? 30_000;
  // `ip -n` runs in a named namespace: tests use it to keep their bridges off the machine's own network.
  const prefix = opts.netns ? ['-n', opts.netns] : [];
  return (args) =>
    new Promise((resolve, reject) => {
      const all = [...prefix, ...args];
      execFile(
        binary,
        all,
        { timeout, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
        (err, stdout, stderr) => {
          if (!err) return resolve(stdout);
          const e = err as NodeJS.ErrnoException & { killed?: boolean };
          const why =
            e.code === 'ENOENT'
              ? `${binary} is not installed (iproute2)`
              : e.killed
                ? `no answer within ${timeout} ms`
                : stderr.trim() || err.message;
          reject(new IpCommandError(all, stderr, `\`ip ${all.join(' ')}\` failed: ${why}`));
        },
      );
    });
}

interface IpJsonLink {
  ifname?: string;
  mtu?: number;
  master?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string };
}

/** Reads `ip -j -d link show` output. */
export function parseLinks(json: string): LinkInfo[] {
  const raw = JSON.parse(json.trim() || '[]') as unknown;
  if (!Array.isArray(raw)) throw new Error('ip -j link show: expected a JSON array');
  const links: LinkInfo[] = [];
  for (const l of raw as IpJsonLink[]) {
    if (typeof l.ifname !== 'string') continue;
    const link: LinkInfo = { name: l.ifname, mtu: l.mtu ?? 0, up: (l.flags ?? []).includes('UP') };
    if (l.linkinfo?.info_kind) link.kind = l.linkinfo.info_kind;
    if (l.master) link.master = l.master;
    links.push(link);
  }
  return links;
}

/** Whether `ip` failed because what it was asked to create is already there. */
export function alreadyExists(err: unknown): boolean {
  return err instanceof IpCommandError && /File exists|already exists/i.test(err.stderr);
}

/** Whether `ip` failed because the device is not there. */
export function noSuchDevice(err: unknown): boolean {
  return err instanceof IpCommandError && /Cannot find device|does not exist|No such device/i.test(err.stderr);
}

/** The few `ip` commands the data plane needs, each one idempotent where `ip` allows it. */
export class IpCommand {
  constructor(private readonly run: IpRunner) {}

  async links(): Promise<LinkInfo[]> {
    return parseLinks(await this.run(['-j', '-d', 'link', 'show']));
  }

  /** A bridge with that MTU; an existing one is left for the caller to adjust. */
  async addBridge(name: string, mtu: number): Promise<void> {
    try {
      await this.run(['link', 'add', 'name', name, 'mtu', String(mtu), 'type', 'bridge']);
    } catch (err) {
      if (!alreadyExists(err)) throw err;
    }
  }

  async setMtu(name: string, mtu: number): Promise<void> {
    await this.run(['link', 'set', 'dev', name, 'mtu', String(mtu)]);
  }

  async setMaster(name: string, bridge: string): Promise<void> {
    await this.run(['link', 'set', 'dev', name, 'master', bridge]);
  }

  async setUp(name: string): Promise<void> {
    await this.run(['link', 'set', 'dev', name, 'up']);
  }

  /** Removes a link; one already gone is no error. */
  async delete(name: string): Promise<void> {
    try {
      await this.run(['link', 'delete', 'dev', name]);
    } catch (err) {
      if (!noSuchDevice(err)) throw err;
    }
  }
}
