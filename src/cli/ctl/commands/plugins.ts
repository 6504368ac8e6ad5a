import type { PluginsAnswer } from '../api-types.js';
import { answered, onEveryProxy, reportFailures } from '../fan-out.js';
import type { ExitCode } from '../exit-codes.js';
import { printRows } from '../output.js';
import type { Targets } from '../target-options.js';

/** `tiproxyctl plugins`: the generation, its plugins with versions and hook errors, the last compile error. */
export async function listPlugins(targets: Targets): Promise<ExitCode> {
  const outcomes = await onEveryProxy(targets.clients, (c) => c.json<PluginsAnswer>('GET', '/api/plugins'));
  const docs = answered(outcomes);
  if (targets.json) {
    process.stdout.write(`${JSON.stringify(docs.map(({ proxy, value }) => ({ proxy, ...value })), null, 2)}\n`);
    return reportFailures(outcomes);
  }
  const rows = docs.flatMap(({ proxy, value }) => value.plugins.map((p) => ({ proxy, row: { generation: value.generation.id, ...p } })));
  printRows(false, rows, ['GENERATION', 'PLUGIN', 'VERSION', 'ERRORS'], (p) => [String(p.generation), p.name, p.version, String(p.errors)]);
  for (const { proxy, value } of docs) {
    const e = value.last_compile_error;
    if (e) process.stdout.write(`${proxy}: last plugin-dir compile error: ${e.message}${e.file ? ` (${e.file}${e.line ? `:${e.line}` : ''})` : ''}\n`);
  }
  return reportFailures(outcomes);
}

/** `tiproxyctl plugins reload`: recompile plugin-dir and rebuild the generation on every proxy. */
export async function reloadPlugins(targets: Targets): Promise<ExitCode> {
  const outcomes = await onEveryProxy(targets.clients, (c) => c.json<{ generation: { id: number } }>('POST', '/api/plugins/reload'));
  printRows(targets.json, answered(outcomes).map(({ proxy, value }) => ({ proxy, row: value })), ['GENERATION'], (r) => [String(r.generation.id)], outcomes.some((o) => o.ok));
  return reportFailures(outcomes);
}
