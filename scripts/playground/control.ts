// The playground's control endpoint: a JSON-over-HTTP listener on 127.0.0.1 through which the
// `scale-out` / `scale-in` commands (separate processes) ask the running playground to start, deregister
// or stop a backend. The playground owns every process it started, so they all stop with it.
import { createServer, type IncomingMessage, type Server } from 'node:http';

export type ControlHandler = (params: string[]) => Promise<unknown>;

export interface ControlRoute {
  method: 'GET' | 'POST' | 'DELETE';
  /** Path with `:param` segments, e.g. /backends/:addr/deregister. */
  path: string;
  handler: ControlHandler;
}

function match(route: ControlRoute, method: string, path: string): string[] | undefined {
  if (route.method !== method) return undefined;
  const want = route.path.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return undefined;
  const params: string[] = [];
  for (let i = 0; i < want.length; i++) {
    if (want[i]!.startsWith(':')) params.push(decodeURIComponent(got[i]!));
    else if (want[i] !== got[i]) return undefined;
  }
  return params;
}

/** Listens on 127.0.0.1 (a free port); requests run one at a time, in order. */
export async function startControlServer(routes: readonly ControlRoute[]): Promise<{ server: Server; addr: string }> {
  let queue: Promise<unknown> = Promise.resolve();
  const server = createServer((req: IncomingMessage, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const found = routes.map((r) => ({ r, params: match(r, req.method ?? '', path) })).find((m) => m.params);
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (!found) return reply(404, { error: `no such control request: ${req.method} ${path}` });
    req.resume();
    const run = queue.then(() => found.r.handler(found.params!));
    queue = run.catch(() => undefined);
    run.then((body) => reply(200, body ?? {}), (err: unknown) => reply(400, { error: err instanceof Error ? err.message : String(err) }));
  });
  // Requests such as scale-out wait for a Galera node to sync: no idle or request timeout.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('control server has no TCP address');
  return { server, addr: `127.0.0.1:${address.port}` };
}

/** Sends one control request to the running playground; rejects with the playground's error message. */
export async function callControl<T>(control: string, method: ControlRoute['method'], path: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`http://${control}${path}`, { method });
  } catch (err) {
    throw new Error(`cannot reach the playground's control endpoint ${control}: ${(err as Error).message}`);
  }
  const body = (await res.json()) as T & { error?: string };
  if (!res.ok) throw new Error(body.error ?? `control request ${method} ${path} failed with HTTP ${res.status}`);
  return body;
}
