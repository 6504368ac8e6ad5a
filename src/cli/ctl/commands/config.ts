import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { answered, onEveryProxy, reportFailures } from '../fan-out.js';
import { CtlError, EXIT, type ExitCode } from '../exit-codes.js';
import { printRows } from '../output.js';
import type { Targets } from '../target-options.js';

/** `tiproxyctl config get`: the running config (YAML; JSON with --json), one document per proxy. */
export async function getConfig(targets: Targets): Promise<ExitCode> {
  const format = targets.json ? 'json' : 'yaml';
  const outcomes = await onEveryProxy(targets.clients, async (c) => (await c.request('GET', `/api/admin/config?format=${format}`)).body);
  const docs = answered(outcomes);
  if (targets.json) process.stdout.write(`${JSON.stringify(docs.map(({ proxy, value }) => ({ proxy, config: value })), null, 2)}\n`);
  else for (const { proxy, value } of docs) process.stdout.write(`${docs.length > 1 ? `# proxy ${proxy}\n` : ''}${String(value)}${docs.length > 1 ? '---\n' : ''}`);
  return reportFailures(outcomes);
}

/**
 * `tiproxyctl config set FILE`: a partial config (YAML, or JSON for .json files) merged into each
 * proxy's running config and applied as a new generation; in memory only (see docs/api.md).
 */
export async function setConfig(targets: Targets, file: string): Promise<ExitCode> {
  let body: string;
  try {
    body = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CtlError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EXIT.usage);
  }
  const contentType = extname(file).toLowerCase() === '.json' ? 'application/json' : 'application/yaml';
  const outcomes = await onEveryProxy(targets.clients, (c) => c.json<{ generation: number; config_checksum: number }>('PUT', '/api/admin/config', { body, contentType }));
  printRows(targets.json, answered(outcomes).map(({ proxy, value }) => ({ proxy, row: value })), ['GENERATION', 'CONFIG_CHECKSUM'], (r) => [String(r.generation), String(r.config_checksum)], outcomes.some((o) => o.ok));
  return reportFailures(outcomes);
}
