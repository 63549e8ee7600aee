// Whether this machine can run real guests (libvirtd with QEMU), and why not.
import { execFileSync } from 'node:child_process';

export const LIBVIRT_URI = 'qemu:///system';

/** Why the suite cannot run here, or undefined when libvirtd answers. */
export function libvirtUnavailable(): string | undefined {
  for (const tool of ['virsh', 'qemu-img']) {
    try {
      execFileSync('which', [tool], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (run: bash devenv/libvirt/setup.sh, as root)`;
    }
  }
  try {
    execFileSync('virsh', ['-q', '-c', LIBVIRT_URI, 'list', '--name'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 20_000,
      encoding: 'utf8',
    });
  } catch (err) {
    const msg = ((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n')[0];
    return `libvirtd does not answer at ${LIBVIRT_URI}: ${msg} (run: bash devenv/libvirt/setup.sh, as root)`;
  }
  return undefined;
}
