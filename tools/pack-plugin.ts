// `npm run plugin:pack -- --uri URL [--homepage URL]`: the release archive of the `kubectl nova`
// plugin and its krew manifest. The archive mirrors the repository's layout, so the launcher
// finds the compiled plugin as it does in a checkout: bin/kubectl-nova, dist/plugin and
// dist/common (compiled JavaScript, after `npm run build`), package.json and the production
// node_modules (npm ci --omit=dev, as the Dockerfile installs them). It is byte-for-byte
// reproducible from the same inputs (sorted entries, fixed times and owners, gzip without a
// name or time). The manifest (plugin/krew/nova.yaml) gets the version, the archive's address
// and its sha256.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as yaml from 'js-yaml';
import { NPM_CI_ARGS, PRUNE_FIND_ARGS } from '../devenv/images/app-bundle.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface KrewRelease {
  version: string;
  uri: string;
  sha256: string;
  homepage?: string;
}

interface KrewPlatform {
  selector?: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] };
  uri?: string;
  sha256?: string;
  bin?: string;
}

interface KrewManifest {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string };
  spec?: {
    version?: string;
    homepage?: string;
    shortDescription?: string;
    description?: string;
    platforms?: KrewPlatform[];
  };
}

/** What krew (and its index's validation) requires of a manifest; an empty list when it is fine. */
export function krewProblems(m: KrewManifest): string[] {
  const problems: string[] = [];
  if (m.apiVersion !== 'krew.googlecontainertools.github.com/v1alpha2')
    problems.push('apiVersion must be krew v1alpha2');
  if (m.kind !== 'Plugin') problems.push('kind must be Plugin');
  if (!m.metadata?.name || !/^[a-z0-9][a-z0-9-]*$/.test(m.metadata.name)) problems.push('metadata.name is invalid');
  const s = m.spec;
  if (!s) return [...problems, 'spec is missing'];
  if (!s.version || !/^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(s.version)) problems.push('spec.version must be vX.Y.Z');
  if (!s.shortDescription) problems.push('spec.shortDescription is missing');
  if (!s.homepage) problems.push('spec.homepage is missing');
  if (!s.platforms?.length) problems.push('spec.platforms is empty');
  for (const [i, p] of (s.platforms ?? []).entries()) {
    if (!p.selector) problems.push(`platforms[${i}].selector is missing`);
    if (!p.uri || !/^https?:\/\//.test(p.uri)) problems.push(`platforms[${i}].uri must be an http(s) URL`);
    if (!p.sha256 || !/^[0-9a-f]{64}$/.test(p.sha256)) problems.push(`platforms[${i}].sha256 must be 64 hex digits`);
    if (!p.bin) problems.push(`platforms[${i}].bin is missing`);
  }
  return problems;
}

/** The release manifest: the template with the version, every platform's uri and sha256, and the homepage if given. */
export function fillManifest(template: string, release: KrewRelease): string {
  const m = yaml.load(template) as KrewManifest;
  if (!m.spec?.platforms?.length) throw new Error('the manifest template has no platforms');
  m.spec.version = `v${release.version}`;
  if (release.homepage) m.spec.homepage = release.homepage;
  for (const p of m.spec.platforms) {
    p.uri = release.uri;
    p.sha256 = release.sha256;
  }
  const problems = krewProblems(m);
  if (problems.length) throw new Error(`the krew manifest would be invalid: ${problems.join('; ')}`);
  return yaml.dump(m, { lineWidth: 100 });
}

function main(): void {
  const { values } = parseArgs({
    options: { uri: { type: 'string' }, homepage: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || !values.uri) {
    process.stdout.write(
      'usage: npm run plugin:pack -- --uri <URL where the archive will be published> [--homepage <URL>]\n' +
        'writes dist/kubectl-nova-<version>.tar.gz and dist/krew/nova.yaml (run npm run build first)\n',
    );
    process.exit(values.help ? 0 : 2);
  }
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  if (!existsSync(join(root, 'dist', 'plugin', 'main.js')))
    throw new Error('dist/plugin is missing: run npm run build');
  const stage = join(root, 'dist', 'kubectl-nova-stage');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'bin'), { recursive: true });
  cpSync(join(root, 'bin', 'kubectl-nova'), join(stage, 'bin', 'kubectl-nova'));
  const js = (src: string) => !src.endsWith('.map') && !src.endsWith('.test.js') && !src.endsWith('testing.js');
  cpSync(join(root, 'dist', 'plugin'), join(stage, 'dist', 'plugin'), { recursive: true, filter: js });
  cpSync(join(root, 'dist', 'common'), join(stage, 'dist', 'common'), { recursive: true, filter: js });
  for (const f of ['package.json', 'package-lock.json']) cpSync(join(root, f), join(stage, f));
  // The same production install and pruning as the image's app bundle.
  execFileSync('npm', NPM_CI_ARGS, { cwd: stage, stdio: 'inherit' });
  execFileSync('find', ['node_modules', ...PRUNE_FIND_ARGS], { cwd: stage });
  rmSync(join(stage, 'node_modules', '.package-lock.json'), { force: true });
  // krew unpacks regular files and directories only: no symlinks (npm's .bin links are for scripts).
  execFileSync('find', ['node_modules', '-type', 'd', '-name', '.bin', '-prune', '-exec', 'rm', '-rf', '{}', '+'], {
    cwd: stage,
  });
  const links = execFileSync('find', ['.', '-type', 'l'], { cwd: stage, encoding: 'utf8' }).trim();
  if (links) throw new Error(`the archive would hold symlinks, which krew cannot unpack:\n${links}`);
  const archive = join(root, 'dist', `kubectl-nova-${pkg.version}.tar.gz`);
  const tar = execFileSync(
    'tar',
    [
      '--sort=name',
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--mode=u+rw,go-w,go+r',
      '-cf',
      '-',
      '.',
    ],
    { cwd: stage, maxBuffer: 1 << 30 },
  );
  const gz = execFileSync('gzip', ['-n', '-9'], { input: tar, maxBuffer: 1 << 30 });
  writeFileSync(archive, gz);
  const sha256 = createHash('sha256').update(gz).digest('hex');
  const manifest = fillManifest(readFileSync(join(root, 'plugin', 'krew', 'nova.yaml'), 'utf8'), {
    version: pkg.version,
    uri: values.uri,
    sha256,
    homepage: values.homepage,
  });
  mkdirSync(join(root, 'dist', 'krew'), { recursive: true });
  writeFileSync(join(root, 'dist', 'krew', 'nova.yaml'), manifest);
  rmSync(stage, { recursive: true, force: true });
  process.stdout.write(
    `${relative(root, archive)} (${(gz.length / 1048576).toFixed(1)} MiB, sha256 ${sha256})\n` +
      `dist/krew/nova.yaml\n` +
      `try it: kubectl krew install --manifest=dist/krew/nova.yaml --archive=${relative(root, archive)}\n`,
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
