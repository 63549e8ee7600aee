import { mkdir, mkdtemp, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson, hashTree, inputsTag, TAG_LENGTH } from './inputs.js';

describe('canonicalJson', () => {
  it('sorts keys at every depth and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: undefined } })).toBe(
      '{"a":{"d":[2,{"e":0,"f":1}]},"b":1}',
    );
  });
});

describe('inputsTag', () => {
  it('is the same for the same inputs in any key order', () => {
    const tag = inputsTag({ packages: ['a', 'b'], node: '24.1.0' });
    expect(tag).toMatch(new RegExp(`^[0-9a-f]{${TAG_LENGTH}}$`));
    expect(inputsTag({ node: '24.1.0', packages: ['a', 'b'] })).toBe(tag);
  });

  it('changes with any input', () => {
    const tag = inputsTag({ packages: ['a', 'b'], node: '24.1.0' });
    expect(inputsTag({ packages: ['b', 'a'], node: '24.1.0' })).not.toBe(tag);
    expect(inputsTag({ packages: ['a', 'b'], node: '24.1.1' })).not.toBe(tag);
  });
});

describe('hashTree', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hashtree-'));
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'sub', 'a.js'), 'a');
    await writeFile(join(dir, 'b.js'), 'b');
    await symlink('sub/a.js', join(dir, 'link'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('is stable, and follows content, names, modes and link targets', async () => {
    const first = await hashTree(dir);
    expect(await hashTree(dir)).toBe(first);

    await writeFile(join(dir, 'sub', 'a.js'), 'A');
    const content = await hashTree(dir);
    expect(content).not.toBe(first);

    await chmod(join(dir, 'b.js'), 0o755);
    const mode = await hashTree(dir);
    expect(mode).not.toBe(content);

    await rm(join(dir, 'link'));
    await symlink('b.js', join(dir, 'link'));
    expect(await hashTree(dir)).not.toBe(mode);
  });

  it('ignores modification times', async () => {
    const first = await hashTree(dir);
    await writeFile(join(dir, 'b.js'), 'b');
    expect(await hashTree(dir)).toBe(first);
  });
});
