/**
 * Exits 1 when docs/api.md differs from what gen-api-docs.ts would write now, i.e. someone changed a
 * route schema of the admin API without regenerating the reference.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { apiDocsPath, buildApiDocument, renderApiDocs } from './gen-api-docs.js';
import { repositoryRoot } from './gen-config-docs.js';

const expected = renderApiDocs(await buildApiDocument());
let actual: string | undefined;
try {
  actual = readFileSync(apiDocsPath, 'utf8');
} catch {
  actual = undefined;
}
const shown = relative(repositoryRoot, apiDocsPath);
if (actual === expected) console.log(`${shown} is up to date`);
else {
  console.error(actual === undefined ? `${shown} is missing; run "npm run docs:api"` : `${shown} is out of date with the admin API's route schemas; run "npm run docs:api"`);
  process.exitCode = 1;
}
