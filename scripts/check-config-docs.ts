/**
 * Exits 1 when docs/configuration.md differs from what gen-config-docs.ts would write now,
 * i.e. someone changed the schema without regenerating the reference.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { configDocsPath, readPluginSchemas, readSchema, renderConfigDocs, repositoryRoot } from './gen-config-docs.js';

const expected = renderConfigDocs(readSchema(), readPluginSchemas());
let actual: string | undefined;
try {
  actual = readFileSync(configDocsPath, 'utf8');
} catch {
  actual = undefined;
}

const shownPath = relative(repositoryRoot, configDocsPath);
if (actual === expected) {
  console.log(`${shownPath} is up to date`);
} else {
  console.error(
    actual === undefined
      ? `${shownPath} is missing; run "npm run docs:config"`
      : `${shownPath} is out of date with schemas/proxy.schema.json; run "npm run docs:config"`,
  );
  process.exitCode = 1;
}
