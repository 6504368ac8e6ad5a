import type { ApiClient } from '../api-client.js';
import type { MigrationsAnswer, SessionRow } from '../api-types.js';
import { CtlError, EXIT, type ExitCode } from '../exit-codes.js';
import { renderTable } from '../table.js';
import type { Targets } from '../target-options.js';

const POLL_MS = 500;

/** One proxy's view of the drain in one round. */
interface ProxyProgress {
  proxy: string;
  /** Sessions still on the backend; null when the proxy did not answer. */
  left: SessionRow[] | null;
  moved: number;
  /** Vetoed or failed moves away from the backend since the drain started, by reason. */
  refused: Map<string, number>;
  /** Last veto or failure per session. */
  lastRefusal: Map<number, string>;
  waitingFor: Map<number, string>;
  error: string | null;
}

async function progressOf(client: ApiClient, addr: string, since: number): Promise<ProxyProgress> {
  const progress: ProxyProgress = { proxy: client.target.name, left: null, moved: 0, refused: new Map(), lastRefusal: new Map(), waitingFor: new Map(), error: null };
  try {
    const [sessions, migrations] = await Promise.all([
      client.json<SessionRow[]>('GET', `/api/sessions?backend=${encodeURIComponent(addr)}`),
      client.json<MigrationsAnswer>('GET', '/api/migrations'),
    ]);
    progress.left = sessions;
    // Newest first: the first refusal seen for a session is its latest.
    for (const m of migrations.recent) {
      if (m.from !== addr || Date.parse(m.at) < since) continue;
      if (m.result === 'succeeded') progress.moved++;
      else {
        const why = `${m.result}: ${m.error ?? 'no reason given'}`;
        progress.refused.set(why, (progress.refused.get(why) ?? 0) + 1);
        if (!progress.lastRefusal.has(m.session)) progress.lastRefusal.set(m.session, why);
      }
    }
    for (const p of migrations.pending) if (p.waiting_for) progress.waitingFor.set(p.session, p.waiting_for);
  } catch (err) {
    progress.error = err instanceof CtlError ? err.message : (err as Error).message;
  }
  return progress;
}

/** Why a session is still on the backend, as precisely as the API says. */
function stuckReason(s: SessionRow, p: ProxyProgress): string {
  if (s.not_migratable_reason) return s.not_migratable_reason;
  const refusal = p.lastRefusal.get(s.id);
  if (refusal) return `migration ${refusal}`;
  if (s.migration) return `migration ${s.migration}${p.waitingFor.has(s.id) ? `, waiting for: ${p.waitingFor.get(s.id)}` : ''}`;
  return 'no migration requested yet (is migration configured: credentials and a migrate-* plugin?)';
}

function progressLines(addr: string, rounds: readonly ProxyProgress[], elapsedS: number): string[] {
  const lines = [`draining ${addr}: ${elapsedS.toFixed(0)} s`];
  for (const p of rounds) {
    if (p.left === null) {
      lines.push(`  ${p.proxy}: no answer (${p.error})`);
      continue;
    }
    const refused = [...p.refused].map(([why, n]) => `${n}× ${why}`).join('; ');
    lines.push(`  ${p.proxy}: ${p.left.length} left, ${p.moved} moved${p.refused.size ? `, refused: ${refused}` : ''}`);
  }
  return lines;
}

/**
 * Polls every proxy until none has a session on `addr` (exit 0) or `timeoutS` passes (exit 4, each stuck
 * session listed with why). Live progress on a terminal; one line per change otherwise; with --json a
 * single document at the end.
 */
export async function waitForDrain(targets: Targets, addr: string, timeoutS: number): Promise<ExitCode> {
  const since = Date.now() - 1000;
  const deadline = Date.now() + timeoutS * 1000;
  const live = process.stdout.isTTY === true && !targets.json;
  let drawn = 0;
  let lastText = '';
  let rounds: ProxyProgress[] = [];
  for (;;) {
    rounds = await Promise.all(targets.clients.map((c) => progressOf(c, addr, since)));
    const done = rounds.every((p) => p.left !== null && p.left.length === 0);
    if (!targets.json) {
      const lines = progressLines(addr, rounds, (Date.now() - since - 1000) / 1000);
      if (live) {
        // Redraw the block in place.
        process.stdout.write(`${drawn ? `\x1b[${drawn}A` : ''}${lines.map((l) => `\x1b[2K${l}`).join('\n')}\n`);
        drawn = lines.length;
      } else {
        const text = lines.slice(1).join('\n');
        if (text !== lastText) process.stdout.write(`${lines.join('\n')}\n`);
        lastText = text;
      }
    }
    if (done || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))));
  }
  const stuck = rounds.flatMap((p) => (p.left ?? []).map((s) => ({ proxy: p.proxy, session: s, reason: stuckReason(s, p) })));
  const silent = rounds.filter((p) => p.left === null);
  const drained = stuck.length === 0 && silent.length === 0;
  const moved = rounds.reduce((n, p) => n + p.moved, 0);
  if (targets.json) {
    process.stdout.write(`${JSON.stringify({
      backend: addr, drained, seconds: Math.round((Date.now() - since - 1000) / 100) / 10,
      proxies: rounds.map((p) => ({ proxy: p.proxy, sessions_left: p.left?.length ?? null, moved: p.moved, refused: Object.fromEntries(p.refused), error: p.error })),
      stuck: stuck.map(({ proxy, session, reason }) => ({ proxy, session: session.id, user: session.user, client: session.client, reason })),
    }, null, 2)}\n`);
  } else if (drained) {
    process.stdout.write(`${addr} is drained: no session left on ${rounds.length} ${rounds.length === 1 ? 'proxy' : 'proxies'} (${moved} moved)\n`);
  } else {
    process.stdout.write(`timed out after ${timeoutS} s: ${addr} still has ${stuck.length} session${stuck.length === 1 ? '' : 's'}${silent.length ? `, and ${silent.map((p) => p.proxy).join(', ')} did not answer` : ''}\n`);
    if (stuck.length) {
      process.stdout.write(renderTable(['PROXY', 'SESSION', 'USER', 'CLIENT', 'WHY IT STAYS'], stuck.map(({ proxy, session, reason }) => [proxy, String(session.id), session.user, session.client, reason])));
    }
  }
  if (drained) return EXIT.ok;
  return stuck.length === 0 ? EXIT.unreachable : EXIT.timeout;
}
