// No servers: docs/api.md must be what scripts/gen-api-docs.ts renders from the admin API's route
// schemas now (run "npm run docs:api" after changing a route).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../../../local-cluster/paths.js';

describe('the admin API reference', () => {
  it('docs/api.md is generated from the current route schemas', () => {
    const output = execFileSync(process.execPath, ['--import', 'tsx', join('scripts', 'check-api-docs.ts')], { cwd: repoRoot, encoding: 'utf8' });
    assert.match(output, /docs\/api\.md is up to date/);
  });
});
