import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import type { JSONSchema } from '../common/api/schema.js';
import { render, repoRoot } from './gen-api.js';

describe('the API has one source of truth', () => {
  it.each([...render().keys()])(
    '%s matches common/api/schema.ts (run `npm run gen` after changing the schema)',
    (path) => {
      const committed = readFileSync(join(repoRoot, path), 'utf8');
      expect(committed).toBe(render().get(path));
    },
  );
});

/** Paths of the properties under `schema` that have no description, e.g. `spec.hard.vcpus`. */
function undescribed(schema: JSONSchema, path: string): string[] {
  const found: string[] = [];
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    const at = path ? `${path}.${key}` : key;
    if (!prop.description) found.push(at);
    found.push(...undescribed(prop, at));
  }
  if (schema.items) found.push(...undescribed(schema.items, `${path}[]`));
  if (schema.additionalProperties) found.push(...undescribed(schema.additionalProperties, `${path}{}`));
  return found;
}

/** The committed CRD files, and one of them as parsed. */
const crdFiles = readdirSync(join(repoRoot, 'crds')).filter((f) => f.endsWith('.yaml'));
const versionsIn = (file: string) =>
  (
    yaml.load(readFileSync(join(repoRoot, 'crds', file), 'utf8')) as {
      spec: { versions: { name: string; schema: { openAPIV3Schema: JSONSchema } }[] };
    }
  ).spec.versions;

describe('status is one unit for managed fields', () => {
  it.each(crdFiles)('crds/%s declares its status atomic, so a status write does not track every field', (file) => {
    for (const version of versionsIn(file)) {
      expect(version.schema.openAPIV3Schema.properties?.status?.['x-kubernetes-map-type']).toBe('atomic');
    }
  });
});

describe('kubectl explain has something to say about every field', () => {
  it.each(crdFiles)('every property in crds/%s has a description (apiVersion, kind and metadata aside)', (file) => {
    const versions = versionsIn(file);
    expect(versions.length).toBeGreaterThan(0);
    for (const version of versions) {
      const root = version.schema.openAPIV3Schema;
      const { apiVersion: _a, kind: _k, metadata: _m, ...own } = root.properties ?? {};
      expect(root.description, `${version.name}: the kind itself`).toBeTruthy();
      expect(
        undescribed({ ...root, properties: own }, ''),
        `${version.name}: properties without a description`,
      ).toEqual([]);
    }
  });
});
