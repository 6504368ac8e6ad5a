import type { HealthAnswer } from '../api-types.js';
import { answered, onEveryProxy, reportFailures } from '../fan-out.js';
import type { ExitCode } from '../exit-codes.js';
import { printRows } from '../output.js';
import type { Targets } from '../target-options.js';

/**
 * `tiproxyctl health [set --unhealthy REASON | clear]`: what /api/debug/health answers load
 * balancers (502 is an answer here, not a failure).
 */
export async function health(targets: Targets, change: { unhealthy: string } | 'clear' | null): Promise<ExitCode> {
  const outcomes = await onEveryProxy(targets.clients, async (c) => {
    const opts = { accept: [502] };
    if (change === null) return (await c.request('GET', '/api/debug/health', opts)).body as HealthAnswer;
    if (change === 'clear') return (await c.request('DELETE', '/api/debug/health', opts)).body as HealthAnswer;
    return (await c.request('PUT', '/api/debug/health', { ...opts, body: JSON.stringify({ healthy: false, reason: change.unhealthy }) })).body as HealthAnswer;
  });
  const rows = answered(outcomes).map(({ proxy, value }) => ({ proxy, row: { healthy: value.unhealthy_reason === undefined, ...value } }));
  printRows(targets.json, rows, ['HEALTH', 'CONFIG_CHECKSUM'], (h) => [h.healthy ? 'healthy' : `unhealthy: ${h.unhealthy_reason}`, String(h.config_checksum)], outcomes.some((o) => o.ok));
  return reportFailures(outcomes);
}
