import { describe, expect, it } from 'vitest';
import { containerdConfig, mountsBelow } from './containerd.js';

describe('containerdConfig', () => {
  it('keeps every path of this containerd under its directory and leaves the CRI plugin out', () => {
    const config = containerdConfig('/x/ctd');
    expect(config).toContain('root = "/x/ctd/root"');
    expect(config).toContain('state = "/x/ctd/state"');
    expect(config).toContain('address = "/x/ctd/containerd.sock"');
    expect(config).toContain('path = "/x/ctd/opt"');
    expect(config).toContain('disabled_plugins = ["io.containerd.grpc.v1.cri"]');
  });
});

describe('mountsBelow', () => {
  const mountinfo = [
    '22 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '55 22 0:48 / /x/ctd/state/t1/rootfs rw - overlay overlay rw',
    '56 55 0:5 / /x/ctd/state/t1/rootfs/dev rw - tmpfs tmpfs rw',
    '57 22 0:49 / /x/ctd-other rw - tmpfs tmpfs rw',
    '58 22 0:50 / /x/ctd/with\\040space rw - tmpfs tmpfs rw',
  ].join('\n');

  it('lists the mounts inside the directory, deepest first, with escapes decoded', () => {
    expect(mountsBelow(mountinfo, '/x/ctd')).toEqual([
      '/x/ctd/state/t1/rootfs/dev',
      '/x/ctd/state/t1/rootfs',
      '/x/ctd/with space',
    ]);
  });
});
