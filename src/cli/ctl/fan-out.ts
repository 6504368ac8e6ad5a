import type { ApiClient } from './api-client.js';
import { CtlError, EXIT, worstExit, type ExitCode } from './exit-codes.js';

/** One proxy's outcome of a call made to every addressed proxy. */
export type ProxyOutcome<T> = { proxy: string; ok: true; value: T } | { proxy: string; ok: false; error: CtlError };

/** Runs `call` against every proxy at once; failures are kept per proxy, not thrown. */
export async function onEveryProxy<T>(clients: readonly ApiClient[], call: (client: ApiClient) => Promise<T>): Promise<Array<ProxyOutcome<T>>> {
  return Promise.all(clients.map(async (client): Promise<ProxyOutcome<T>> => {
    try {
      return { proxy: client.target.name, ok: true, value: await call(client) };
    } catch (err) {
      const error = err instanceof CtlError ? err : new CtlError(`proxy ${client.target.name}: ${(err as Error).message}`, EXIT.failed);
      return { proxy: client.target.name, ok: false, error };
    }
  }));
}

/** Reports each failed proxy on stderr; the exit code the run ends with (0 when every proxy answered). */
export function reportFailures(outcomes: ReadonlyArray<ProxyOutcome<unknown>>): ExitCode {
  const codes: ExitCode[] = [];
  for (const o of outcomes) {
    if (o.ok) continue;
    process.stderr.write(`tiproxyctl: ${o.error.message}\n`);
    codes.push(o.error.exitCode);
  }
  return worstExit(codes);
}

/** The values of the proxies that answered. */
export function answered<T>(outcomes: ReadonlyArray<ProxyOutcome<T>>): Array<{ proxy: string; value: T }> {
  return outcomes.flatMap((o) => (o.ok ? [{ proxy: o.proxy, value: o.value }] : []));
}
