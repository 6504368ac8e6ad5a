import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Logger } from 'pino';
import type { HttpHandler } from '../plugins/proxy-control.js';

/** The API port could not be opened (start-up fails with this one line). */
export class ApiListenError extends Error {
  constructor(readonly addr: string, readonly code: string | undefined, detail: string) {
    super(`cannot listen on ${addr} (api.addr): ${code === 'EADDRINUSE' ? 'address already in use' : detail}`);
    this.name = 'ApiListenError';
  }
}

/** How long close() lets requests in flight finish before dropping their connections. */
const CLOSE_GRACE_MS = 5000;

/**
 * The proxy's HTTP port, opened once per process. The socket is the kernel's; the answers come from a
 * handler the current plugin generation installs (the admin-api plugin), swapped on reload without
 * closing the port or the requests in flight.
 */
export class HttpListener {
  private server: Server | null = null;
  private bound: { host: string; port: number; tls: boolean } | null = null;

  /** `current` gives the handler of the current generation, looked up per request. */
  constructor(private readonly logger: Logger, private readonly current: () => HttpHandler | null) {}

  address(): { host: string; port: number; tls: boolean } | null {
    return this.bound;
  }

  get listening(): boolean {
    return this.server !== null;
  }

  async listen(addr: string, host: string, port: number, tls: { cert: string; key: string } | undefined): Promise<{ host: string; port: number }> {
    const dispatch = (req: IncomingMessage, res: ServerResponse): void => this.dispatch(req, res);
    let server: Server;
    try {
      server = tls ? createHttpsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, dispatch) : createHttpServer(dispatch);
    } catch (err) {
      throw new ApiListenError(addr, undefined, `api.tls: ${(err as Error).message}`);
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(new ApiListenError(addr, err.code, err.message)));
      server.listen({ host, port }, () => resolve());
    });
    server.removeAllListeners('error');
    server.on('error', (err) => this.logger.error({ err }, 'API listener error'));
    this.server = server;
    const a = server.address();
    this.bound = typeof a === 'object' && a ? { host: a.address, port: a.port, tls: Boolean(tls) } : { host, port, tls: Boolean(tls) };
    this.logger.info({ addr: `${this.bound.host}:${this.bound.port}`, tls: Boolean(tls) }, 'listening for HTTP API requests');
    return this.bound;
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    const handler = this.current();
    if (handler) return handler(req, res);
    res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ error: 'the admin API is turned off (plugin admin-api is disabled)' }));
  }

  /** Stops accepting, lets requests in flight finish (briefly), then drops what is left. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }
}
