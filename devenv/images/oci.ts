// OCI image archives without Docker or a registry: layers are tarred from directories and
// added with umoci (an OCI image layout on disk), the runtime config is set with `umoci
// config`, and the layout is tarred into an archive that `ctr images import` reads.
//
// containerd names an imported image after the `org.opencontainers.image.ref.name` annotation
// of its index entry, and the CRI plugin finds a pod's image only by that full name. umoci
// accepts nothing but a bare tag there, so the index is rewritten at the end to hold exactly one
// manifest named `localhost/<name>:<tag>`: a stray bare tag would be imported under a made-up
// `import-<date>` name that no pod spec can refer to.
import { copyFile, link, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { run } from './exec.js';
import { TAG_LENGTH } from './inputs.js';

/** What a built image is: its full reference and the archive that `ctr images import` takes. */
export interface ImageArchive {
  ref: string;
  archive: string;
}

/** The container runtime config of an image (the OCI image config's `config` object). */
export interface ImageConfig {
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  /** `uid:gid`, numeric so that Kubernetes' runAsNonRoot can verify it. */
  user?: string;
  env?: Record<string, string>;
}

/** A directory whose contents become one layer, laid over the image's root. */
export interface LayerSource {
  dir: string;
  /** The layer's history entry: what put these files there. */
  createdBy: string;
  /** Paths relative to `dir` (tar patterns, e.g. `dev/*`) left out of the layer. */
  exclude?: string[];
  /**
   * For files we staged ourselves: owner root, time zero and everything readable, so the same
   * content gives the same layer digest (which containerd then stores once) whatever the umask
   * and clock of the build were. A Debian root filesystem keeps its packages' owners and modes.
   */
  normalize?: boolean;
}

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
/** umoci's own name for the image while it is being built; never leaves the build directory. */
const WORK_TAG = 'build';

const NAME_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** `localhost/<name>:<tag>`: a name the CRI plugin takes as is, with no registry to pull from. */
export function imageRef(name: string, tag: string): string {
  if (!NAME_RE.test(name)) throw new Error(`image name ${JSON.stringify(name)}: lower-case letters, digits, . _ -`);
  if (!TAG_RE.test(tag)) throw new Error(`image tag ${JSON.stringify(tag)}: letters, digits, . _ - (at most 128)`);
  return `localhost/${name}:${tag}`;
}

/** Where the archive of `ref` lives in a cache directory. */
export function archivePath(cacheDir: string, ref: string): string {
  const m = /^localhost\/([^:]+):(.+)$/.exec(ref);
  if (!m) throw new Error(`archivePath: ${ref} is not a localhost/<name>:<tag> reference`);
  return join(cacheDir, `${m[1]}-${m[2]}.oci.tar`);
}

/** Matches the archive names archivePath gives the builds of image `name`. */
export function archivePattern(name: string): RegExp {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped}-[0-9a-f]{${TAG_LENGTH}}\\.oci\\.tar$`);
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface OciIndex {
  schemaVersion: number;
  manifests: Descriptor[];
  [key: string]: unknown;
}

function isDescriptor(v: unknown): v is Descriptor {
  if (typeof v !== 'object' || v === null) return false;
  const d = v as Record<string, unknown>;
  return typeof d.mediaType === 'string' && typeof d.digest === 'string' && typeof d.size === 'number';
}

/**
 * The layout's index with its one manifest named `ref` and nothing else: every other annotation
 * of the entry (umoci's work tag) is dropped. More than one manifest is refused, because each
 * would be imported as an image of its own.
 */
export function namedIndex(index: unknown, ref: string): OciIndex {
  if (typeof index !== 'object' || index === null) throw new Error('index.json: not a JSON object');
  const { manifests, ...rest } = index as Record<string, unknown>;
  if (!Array.isArray(manifests) || !manifests.every(isDescriptor))
    throw new Error('index.json: "manifests" is not a list of descriptors');
  if (manifests.length !== 1) throw new Error(`index.json: expected exactly one manifest, found ${manifests.length}`);
  const [manifest] = manifests as [Descriptor];
  return {
    ...rest,
    schemaVersion: 2,
    manifests: [{ ...manifest, annotations: { [REF_NAME_ANNOTATION]: ref } }],
  };
}

/** umoci config's flags for a runtime config. */
export function configArgs(config: ImageConfig): string[] {
  const args: string[] = [];
  for (const e of config.entrypoint ?? []) args.push('--config.entrypoint', e);
  for (const c of config.cmd ?? []) args.push('--config.cmd', c);
  if (config.workingDir !== undefined) args.push('--config.workingdir', config.workingDir);
  if (config.user !== undefined) args.push('--config.user', config.user);
  for (const [k, v] of Object.entries(config.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`image env: ${JSON.stringify(k)} is not a variable name`);
    args.push('--config.env', `${k}=${v}`);
  }
  return [...args, '--os', 'linux', '--architecture', 'amd64'];
}

const image = (layout: string): string => `${layout}:${WORK_TAG}`;

/** A new OCI layout holding one empty image. */
export async function newLayout(layout: string): Promise<void> {
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', image(layout)]);
}

/**
 * A copy of `from` at `to` that umoci may change without touching `from`: blobs never change
 * once written (their name is their digest), so they are hard links; index.json is a copy.
 */
export async function copyLayout(from: string, to: string): Promise<void> {
  await mkdir(join(to, 'blobs', 'sha256'), { recursive: true });
  await copyFile(join(from, 'oci-layout'), join(to, 'oci-layout'));
  await copyFile(join(from, 'index.json'), join(to, 'index.json'));
  for (const blob of await readdir(join(from, 'blobs', 'sha256')))
    await link(join(from, 'blobs', 'sha256', blob), join(to, 'blobs', 'sha256', blob));
}

/** GNU tar's arguments for a layer of the entries `names` (the top level of `source.dir`). */
export function layerTarArgs(source: LayerSource, names: readonly string[], tarFile: string): string[] {
  return [
    '--sort=name',
    '--numeric-owner',
    '--format=gnu',
    ...(source.normalize ? ['--owner=0', '--group=0', '--mtime=@0', '--mode=go+rX,go-w'] : []),
    // Anchored: `dev/*` is the root's dev/, not every dev/ below it.
    ...(source.exclude ?? []).flatMap((p) => ['--anchored', `--exclude=${p}`]),
    '-C',
    source.dir,
    '-cf',
    tarFile,
    '--',
    ...names,
  ];
}

/**
 * Adds `source.dir` as the image's next layer. The tar is made by GNU tar, not by `umoci
 * insert`, whose layers (umoci 0.4.7) end without tar's end-of-archive blocks, which
 * containerd refuses to unpack. The entries are the directory's contents, not the directory
 * itself: an entry for `./` would set the mode of the container's `/` to the build
 * directory's.
 */
export async function addLayer(layout: string, source: LayerSource): Promise<void> {
  const names = (await readdir(source.dir)).sort();
  if (names.length === 0) throw new Error(`addLayer: ${source.dir} is empty`);
  const tarFile = join(dirname(layout), `${basename(layout)}.layer.tar`);
  try {
    await run('tar', layerTarArgs(source, names, tarFile));
    await run('umoci', [
      'raw',
      'add-layer',
      '--image',
      image(layout),
      '--history.created_by',
      source.createdBy,
      tarFile,
    ]);
  } finally {
    await rm(tarFile, { force: true });
  }
}

export async function setConfig(layout: string, config: ImageConfig): Promise<void> {
  await run('umoci', ['config', '--image', image(layout), ...configArgs(config), '--history.created_by', 'config']);
}

/** Drops unreferenced blobs, names the image `ref` and writes the layout as a tar at `archive`. */
export async function writeArchive(layout: string, ref: string, archive: string): Promise<void> {
  await run('umoci', ['gc', '--layout', layout]);
  const indexPath = join(layout, 'index.json');
  const index = namedIndex(JSON.parse(await readFile(indexPath, 'utf8')), ref);
  await writeFile(indexPath, `${JSON.stringify(index)}\n`);
  await mkdir(dirname(archive), { recursive: true });
  const tmp = `${archive}.tmp-${process.pid}`;
  try {
    await run('tar', [
      '--sort=name',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--mtime=@0',
      '--format=gnu',
      '-C',
      layout,
      '-cf',
      tmp,
      'oci-layout',
      'index.json',
      'blobs',
    ]);
    // A rename, so that a reader never sees half an archive and an interrupted build leaves none.
    await rename(tmp, archive);
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Unpacks an image archive into a layout at `layout`, its image renamed to umoci's work tag:
 * ready for addLayer, setConfig and writeArchive under a new name (a variant of an image).
 */
export async function openArchive(archive: string, layout: string): Promise<void> {
  await mkdir(layout, { recursive: true });
  await run('tar', ['-xf', archive, '-C', layout]);
  const indexPath = join(layout, 'index.json');
  const index = namedIndex(JSON.parse(await readFile(indexPath, 'utf8')), WORK_TAG);
  await writeFile(indexPath, `${JSON.stringify(index)}\n`);
}

/** A scratch directory beside the cache (same file system: renames and hard links work). */
export async function workDir(cacheDir: string, what: string): Promise<string> {
  await mkdir(cacheDir, { recursive: true });
  return mkdtemp(join(cacheDir, `.build-${what}-`));
}
