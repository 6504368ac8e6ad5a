import { request } from 'node:http';

export type StatusResult = { state: 'ok' } | { state: 'draining' } | { state: 'failed'; detail: string };

/**
 * TiDB's HTTP status endpoint: `GET /status` answers 200 while the server is up and 500 during a
 * graceful shutdown (graceful-wait-before-shutdown), while its SQL port still accepts — the signal to
 * stop sending new sessions and move the existing ones away.
 */
export function probeStatusPort(host: string, port: number, timeoutMs: number): Promise<StatusResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: StatusResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    };
    const req = request({ host, port, path: '/status', method: 'GET', agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      if (res.statusCode === 200) finish({ state: 'ok' });
      else if (res.statusCode === 500) finish({ state: 'draining' });
      else finish({ state: 'failed', detail: `status port answered HTTP ${res.statusCode}` });
    });
    const timer = setTimeout(() => finish({ state: 'failed', detail: `status port: no answer within ${timeoutMs} ms` }), timeoutMs);
    req.once('error', (err) => finish({ state: 'failed', detail: `status port: ${err.message}` }));
    req.end();
  });
}
