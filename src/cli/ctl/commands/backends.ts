import type { BackendRow, DrainAnswer } from '../api-types.js';
import { answered, onEveryProxy, reportFailures } from '../fan-out.js';
import { CtlError, EXIT, worstExit, type ExitCode } from '../exit-codes.js';
import { labelText, printRows } from '../output.js';
import type { Targets } from '../target-options.js';
import { waitForDrain } from './drain-wait.js';

const path = (addr: string, action: string) => `/api/backends/${encodeURIComponent(addr)}/${action}`;

/** `tiproxyctl backends`: every backend of every addressed proxy. */
export async function listBackends(targets: Targets): Promise<ExitCode> {
  const outcomes = await onEveryProxy(targets.clients, (c) => c.json<BackendRow[]>('GET', '/api/backends'));
  const rows = answered(outcomes).flatMap(({ proxy, value }) => value.map((row) => ({ proxy, row })));
  printRows(targets.json, rows, ['BACKEND', 'HEALTH', 'DRAINING', 'SESSIONS', 'QPS', 'P99_MS', 'LABELS'], (b) => [
    b.addr,
    b.healthy ? 'healthy' : `unhealthy${b.health_reason ? `: ${b.health_reason}` : ''}`,
    b.draining ? (b.drain_mark ? `yes (fleet, by ${b.drain_mark.by || '?'})` : 'yes') : 'no',
    String(b.sessions),
    String(b.qps),
    b.p99_ms === null ? '-' : String(b.p99_ms),
    labelText(b.labels),
  ], outcomes.some((o) => o.ok));
  return reportFailures(outcomes);
}

export interface DrainFlags {
  wait?: boolean;
  timeout: number;
}

/**
 * `tiproxyctl backends drain|undrain ADDR`: asked of every addressed proxy (each writes or deletes the
 * same fleet mark when it runs with etcd; without etcd each drains its own view). A proxy that does
 * not know the backend has nothing to drain; none knowing it is an error.
 */
export async function setDraining(targets: Targets, addr: string, draining: boolean, flags: DrainFlags | null): Promise<ExitCode> {
  const action = draining ? 'drain' : 'undrain';
  const outcomes = await onEveryProxy(targets.clients, (c) => c.request('POST', path(addr, action), { accept: [404] }));
  const known = answered(outcomes).filter((o) => o.value.status < 400);
  const failures = reportFailures(outcomes);
  if (known.length === 0) {
    if (failures !== EXIT.ok) return failures;
    throw new CtlError(`no addressed proxy knows backend ${addr} (tiproxyctl backends lists them)`, EXIT.refused);
  }
  const rows = known.map(({ proxy, value }) => ({ proxy, row: value.body as DrainAnswer }));
  const fleet = rows.some((r) => r.row.fleet === true);
  if (!flags?.wait) {
    printRows(targets.json, rows, ['BACKEND', 'DRAINING', 'SESSIONS', 'FLEET_MARK'], (d) => [
      d.addr, d.draining ? 'yes' : 'no', String(d.sessions), d.fleet ? (draining ? `written (by ${d.marked_by ?? '?'})` : 'deleted') : '-',
    ]);
    if (!targets.json && !fleet) process.stderr.write(`tiproxyctl: no etcd on ${rows.map((r) => r.proxy).join(', ')}: the ${action} applies to the proxies addressed only\n`);
    return failures;
  }
  const waited = await waitForDrain(targets, addr, flags.timeout);
  return worstExit([failures, waited]);
}
