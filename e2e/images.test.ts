// The container images, built without Docker or a registry (devenv/images/) and checked the way
// a node uses them: imported into a containerd of our own (its own root, state and socket) with
// `ctr images import`, found by their localhost/ names, and run with runc. The kubenova image
// runs Node.js 24, virsh and qemu-img and holds the app and the guest image; its operator and
// agent load their dependencies; and, as the chart runs them, its own libvirtd and virtlogd boot
// the baked-in `tiny` guest from a domain the agent's code describes.
//
// Needs root, the image build tools (bash devenv/images/setup.sh) and dist/ (npm run build).
// The first build takes minutes (Debian packages, Node.js, npm ci); later ones come from the
// cache shared with `node dist/devenv/images/main.js`.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateContainerd } from '../devenv/images/containerd.js';
import { GUEST_IMAGE_PATH } from '../devenv/images/guest-image.js';
import { buildKubenovaImage } from '../devenv/images/kubenova.js';
import {
  imageRef,
  openArchive,
  REF_NAME_ANNOTATION,
  setConfig,
  writeArchive,
  type ImageArchive,
} from '../devenv/images/oci.js';
import { defaultCacheDir } from '../devenv/images/paths.js';
import { buildPauseImage } from '../devenv/images/pause.js';
import { parseGuestReport } from '../node-agent/driver/libvirt-xml.js';

const REPO = resolve(import.meta.dirname, '..');
const TOOLS = ['umoci', 'mmdebstrap', 'gcc', 'containerd', 'ctr', 'runc', 'tar', 'npm', 'apt-get', 'dpkg-deb', 'cpio'];

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'building and running images needs root';
  const missing = TOOLS.filter((t) => {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length) return `missing ${missing.join(', ')} (run: bash devenv/images/setup.sh, as root)`;
  return undefined;
}

const why = unavailable();
if (why) console.warn(`e2e/images.test.ts skipped: ${why}`);

const GIB = 1024 ** 3;
/** The first build installs Debian packages and fetches Node.js: minutes on two cores. */
const BUILD_TIMEOUT = 20 * 60_000;

/** index.json of an archive, as containerd will read it. */
function archiveIndex(archive: string): { manifests: { annotations?: Record<string, string> }[] } {
  return JSON.parse(execFileSync('tar', ['-xOf', archive, 'index.json'], { encoding: 'utf8' }));
}

describe.skipIf(why !== undefined)('container images', () => {
  const cacheDir = process.env.KUBENOVA_IMAGES_CACHE ?? defaultCacheDir();
  let work: string;
  let containerd: PrivateContainerd;
  let pause: ImageArchive;
  let kubenova: ImageArchive;
  /** The kubenova image with root as its user, as the chart runs libvirtd and virtlogd. */
  let asRoot: ImageArchive;

  beforeAll(async () => {
    pause = await buildPauseImage(cacheDir);
    kubenova = await buildKubenovaImage(cacheDir, REPO);
    work = await mkdtemp(join(tmpdir(), 'kubenova-images-'));
    // A variant in the test's own directory: same layers, only the config's user changed.
    // (`ctr run` has no --user.)
    const layout = join(work, 'as-root');
    await openArchive(kubenova.archive, layout);
    await setConfig(layout, { user: '0:0' });
    asRoot = { ref: imageRef('kubenova-as-root', 'test'), archive: join(work, 'as-root.oci.tar') };
    await writeArchive(layout, asRoot.ref, asRoot.archive);
    containerd = await PrivateContainerd.start(join(work, 'containerd'));
    for (const image of [pause, kubenova, asRoot]) await containerd.importArchive(image.archive);
  }, BUILD_TIMEOUT);

  afterAll(async () => {
    await containerd?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('names each image localhost/<name>:<hash of its inputs>, and nothing else', () => {
    expect(pause.ref).toMatch(/^localhost\/kubenova-pause:[0-9a-f]{12}$/);
    expect(kubenova.ref).toMatch(/^localhost\/kubenova:[0-9a-f]{12}$/);
    for (const image of [pause, kubenova]) {
      const { manifests } = archiveIndex(image.archive);
      expect(manifests).toHaveLength(1);
      expect(manifests[0]?.annotations).toEqual({ [REF_NAME_ANNOTATION]: image.ref });
    }
  });

  it('reuses the archive when nothing changed, in seconds', async () => {
    const started = Date.now();
    expect(await buildPauseImage(cacheDir)).toEqual(pause);
    expect(await buildKubenovaImage(cacheDir, REPO)).toEqual(kubenova);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('imports into containerd under exactly those names, which the CRI plugin resolves as they are', async () => {
    expect((await containerd.imageNames()).sort()).toEqual([asRoot.ref, kubenova.ref, pause.ref].sort());
  });

  it('runs Node.js 24, virsh and qemu-img as user 1000 in /app', async () => {
    const out = await containerd.runContainer(kubenova.ref, `t-${randomUUID().slice(0, 8)}`, [
      'sh',
      '-c',
      'node --version; virsh --version; qemu-img --version | head -n 1; id -u; id -g; pwd; echo "$NODE_ENV"',
    ]);
    const [node, virsh, qemuImg, uid, gid, cwd, nodeEnv] = out.trim().split('\n');
    expect(node).toMatch(/^v24\.\d+\.\d+$/);
    expect(virsh).toMatch(/^\d+\.\d+\.\d+$/);
    expect(qemuImg).toMatch(/^qemu-img version \d+\.\d+/);
    expect([uid, gid, cwd, nodeEnv]).toEqual(['1000', '1000', '/app', 'production']);
  });

  it('holds the app and the guest image, and its entry points load their dependencies', async () => {
    const out = await containerd.runContainer(kubenova.ref, `t-${randomUUID().slice(0, 8)}`, [
      'sh',
      '-c',
      [
        'ls /app/dist/node-agent/main.js /app/dist/operator/main.js /app/package.json /app/node_modules/pino',
        `cat ${GUEST_IMAGE_PATH}/image.json`,
        // An unknown flag: the entry point has imported everything and stops at its flags.
        'node dist/operator/main.js --no-such-flag 2>&1 | head -n 1',
        'node dist/node-agent/main.js --no-such-flag 2>&1 | head -n 1',
      ].join('; '),
    ]);
    expect(out).toContain('/app/dist/node-agent/main.js');
    const json = out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1);
    const image = JSON.parse(json) as { name: string; kernel: string; initrd: string };
    expect(image).toMatchObject({ name: 'tiny', kernel: 'vmlinuz', initrd: 'initrd.gz' });
    expect(out).toContain("operator: Unknown option '--no-such-flag'");
    expect(out).toContain("node-agent: Unknown option '--no-such-flag'");
    expect(out).not.toContain('ERR_MODULE_NOT_FOUND');
  });

  it('runs the pause program until SIGTERM, which ends it at once', async () => {
    const id = `p-${randomUUID().slice(0, 8)}`;
    const running = containerd.runContainer(pause.ref, id, []);
    for (let i = 0; i < 50; i++) {
      if ((await containerd.ctr(['tasks', 'ls'])).includes(id)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const started = Date.now();
    await containerd.ctr(['tasks', 'kill', '--signal', 'SIGTERM', id]);
    await running;
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("boots the tiny guest with the image's own libvirtd, virtlogd and QEMU", async () => {
    const uid = randomUUID();
    // The agent's own code (from the image) describes the domain, as it would on a node.
    const describeDomain = `
      import { writeFileSync } from 'node:fs';
      import { loadGuestImage } from '/app/dist/node-agent/driver/libvirt-image.js';
      import { buildDomainXml } from '/app/dist/node-agent/driver/libvirt-xml.js';
      const image = loadGuestImage('${GUEST_IMAGE_PATH}', 'tiny');
      const flavor = { name: 'img.tiny', vcpus: 1, memoryMiB: 128, rootDiskGiB: 1, ephemeralDiskGiB: 0 };
      writeFileSync('/tmp/kn/domain.xml', buildDomainXml({
        host: 'images-test', uid: '${uid}', name: 'default/images-test', image: 'tiny', flavor,
        kernel: image.kernel, initrd: image.initrd, cmdline: image.cmdline,
        disk: '/tmp/kn/disk.qcow2', consoleLog: '/tmp/kn/console.log',
      }));`;
    const script = [
      'set -e',
      'virtlogd --daemon',
      'libvirtd --daemon',
      'for i in $(seq 100); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done',
      'mkdir -p /tmp/kn',
      'qemu-img create -q -f qcow2 /tmp/kn/disk.qcow2 1G',
      `cat > /tmp/kn/describe.mjs <<'EOF'\n${describeDomain}\nEOF`,
      'node /tmp/kn/describe.mjs',
      'virsh -q -c qemu:///system create /tmp/kn/domain.xml',
      'for i in $(seq 150); do grep -q KUBENOVA-GUEST /tmp/kn/console.log 2>/dev/null && break; sleep 1; done',
      'cat /tmp/kn/console.log',
      'virsh -q -c qemu:///system destroy "$(virsh -q -c qemu:///system list --name)"',
    ].join('\n');
    const out = await containerd.runContainer(asRoot.ref, `lv-${uid.slice(0, 8)}`, ['sh', '-c', script], {
      privileged: true,
    });
    const report = parseGuestReport(out);
    expect(report, out.slice(-2000)).toBeDefined();
    expect(report?.vcpus).toBe(1);
    expect(report?.diskBytes).toBe(GIB);
  }, 300_000);
});
