// The libvirt driver's `tiny` guest image, baked into the kubenova image so that a node needs
// nothing but the image: built (or found in its cache) by the driver's own build script.
import { cp, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';

/** Where the image holds it; the chart passes `--libvirt-images tiny=<this>` to the agent. */
export const GUEST_IMAGE_PATH = '/usr/share/kubenova/guest-images/tiny';
const BUILD_SCRIPT = join('node-agent', 'driver', 'guest-image', 'build.sh');

/** The directory (vmlinuz, initrd.gz, image.json) of the tiny image for the repo's build script. */
export async function ensureGuestImage(repoRoot: string): Promise<string> {
  const out = await run('bash', [join(repoRoot, BUILD_SCRIPT)], {
    cwd: repoRoot,
    hint: `the guest image build (${BUILD_SCRIPT}) needs apt-get, dpkg-deb and cpio: run \`bash devenv/libvirt/setup.sh\` as root`,
  });
  const dir = out.trim().split('\n').pop() ?? '';
  if (!dir || !existsSync(join(dir, 'image.json')))
    throw new Error(`${BUILD_SCRIPT} printed ${JSON.stringify(dir)}, which holds no image.json`);
  return dir;
}

/** Copies the guest image to GUEST_IMAGE_PATH under `root`. */
export async function stageGuestImage(dir: string, root: string): Promise<void> {
  const target = join(root, GUEST_IMAGE_PATH);
  await mkdir(target, { recursive: true });
  await cp(dir, target, { recursive: true });
}
