// A stand-in for `ip` over an in-memory set of links, for the data plane's unit tests: it
// answers the commands IpCommand sends as iproute2 would, errors included.
import { IpCommandError, type IpRunner, type LinkInfo } from './ip-command.js';

export class FakeIp {
  readonly links = new Map<string, LinkInfo>();
  readonly calls: string[] = [];

  constructor(initial: LinkInfo[] = []) {
    for (const l of initial) this.links.set(l.name, { ...l });
  }

  readonly run: IpRunner = (args) => {
    const line = args.join(' ');
    if (line !== '-j -d link show') this.calls.push(line);
    const fail = (stderr: string) => Promise.reject(new IpCommandError(args, stderr, `ip ${line}: ${stderr}`));
    const [a0, a1, a2, a3, a4, a5, a6, a7] = args;
    if (line === '-j -d link show') {
      const out = [...this.links.values()].map((l) => ({
        ifname: l.name,
        mtu: l.mtu,
        flags: l.up ? ['BROADCAST', 'UP'] : ['BROADCAST'],
        ...(l.master ? { master: l.master } : {}),
        ...(l.kind ? { linkinfo: { info_kind: l.kind } } : {}),
      }));
      return Promise.resolve(JSON.stringify(out));
    }
    if (a0 === 'link' && a1 === 'add' && a2 === 'name' && a4 === 'mtu' && a6 === 'type' && a7 === 'bridge') {
      if (this.links.has(a3!)) return fail('RTNETLINK answers: File exists');
      this.links.set(a3!, { name: a3!, kind: 'bridge', mtu: Number(a5), up: false });
      return Promise.resolve('');
    }
    if (a0 === 'link' && (a1 === 'set' || a1 === 'delete') && a2 === 'dev') {
      const link = this.links.get(a3!);
      if (!link) return fail(`Cannot find device "${a3}"`);
      if (a1 === 'delete') {
        this.links.delete(a3!);
        for (const l of this.links.values()) if (l.master === a3) delete l.master;
      } else if (a4 === 'mtu') link.mtu = Number(a5);
      else if (a4 === 'master') {
        if (!this.links.has(a5!)) return fail(`Cannot find device "${a5}"`);
        link.master = a5;
      } else if (a4 === 'up') link.up = true;
      else return fail(`unexpected: ${line}`);
      return Promise.resolve('');
    }
    return fail(`unexpected: ${line}`);
  };
}
