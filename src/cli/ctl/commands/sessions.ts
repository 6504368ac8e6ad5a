import type { ApiClient } from '../api-client.js';
import type { SessionRow } from '../api-types.js';
import { answered, onEveryProxy, reportFailures } from '../fan-out.js';
import { CtlError, EXIT, type ExitCode } from '../exit-codes.js';
import { printRows } from '../output.js';
import type { Targets } from '../target-options.js';

export interface SessionFilter {
  backend?: string;
  user?: string;
}

/** `tiproxyctl sessions [--backend ADDR] [--user U]`. */
export async function listSessions(targets: Targets, filter: SessionFilter): Promise<ExitCode> {
  const query = new URLSearchParams();
  if (filter.backend) query.set('backend', filter.backend);
  if (filter.user) query.set('user', filter.user);
  const qs = query.size ? `?${query}` : '';
  const outcomes = await onEveryProxy(targets.clients, (c) => c.json<SessionRow[]>('GET', `/api/sessions${qs}`));
  const rows = answered(outcomes).flatMap(({ proxy, value }) => value.map((row) => ({ proxy, row })));
  printRows(targets.json, rows, ['ID', 'USER', 'CLIENT', 'DB', 'BACKEND', 'AGE_S', 'TXN', 'MIGRATABLE'], (s) => [
    String(s.id), s.user, s.client, s.database || '-', s.backend ?? '-', String(s.age_seconds), s.in_transaction ? 'yes' : 'no',
    s.migration ? `migration ${s.migration}` : s.migratable ? 'yes' : `no: ${s.not_migratable_reason ?? 'not on a backend'}`,
  ], outcomes.some((o) => o.ok));
  return reportFailures(outcomes);
}

/**
 * The one proxy holding session `id`: ids are per proxy, so with several proxies addressed the id must
 * exist on exactly one of them.
 */
async function ownerOf(targets: Targets, id: number): Promise<ApiClient> {
  if (targets.clients.length === 1) return targets.clients[0]!;
  const outcomes = await onEveryProxy(targets.clients, async (c) => (await c.json<SessionRow[]>('GET', '/api/sessions')).some((s) => s.id === id));
  const failures = reportFailures(outcomes);
  const holders = answered(outcomes).filter((o) => o.value).map((o) => o.proxy);
  if (holders.length === 0) throw new CtlError(`no addressed proxy has session ${id}`, failures === EXIT.ok ? EXIT.refused : failures);
  if (holders.length > 1) throw new CtlError(`session ${id} exists on ${holders.join(' and ')}: address one with --api`, EXIT.usage);
  return targets.clients.find((c) => c.target.name === holders[0])!;
}

/** `tiproxyctl sessions migrate ID [--to ADDR]`: waits up to `waitS` for the outcome. */
export async function migrateSession(targets: Targets, id: number, to: string | undefined, waitS: number): Promise<ExitCode> {
  const client = await ownerOf(targets, id);
  const answer = await client.request('POST', `/api/sessions/${id}/migrate?wait=${waitS}`, { body: JSON.stringify(to ? { to } : {}) });
  const body = answer.body as { status: string; from?: string; to?: string };
  if (targets.json) process.stdout.write(`${JSON.stringify({ proxy: client.target.name, ...body }, null, 2)}\n`);
  else if (answer.status === 202) process.stdout.write(`session ${id} on ${client.target.name}: migration requested, still pending after ${waitS} s\n`);
  else process.stdout.write(`session ${id} on ${client.target.name}: moved from ${body.from} to ${body.to}\n`);
  return answer.status === 202 ? EXIT.timeout : EXIT.ok;
}

/** `tiproxyctl sessions kill ID`. */
export async function killSession(targets: Targets, id: number): Promise<ExitCode> {
  const client = await ownerOf(targets, id);
  await client.request('DELETE', `/api/sessions/${id}`);
  if (targets.json) process.stdout.write(`${JSON.stringify({ proxy: client.target.name, closed: id })}\n`);
  else process.stdout.write(`session ${id} on ${client.target.name}: closed\n`);
  return EXIT.ok;
}
