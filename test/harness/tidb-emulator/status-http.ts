// TiDB's HTTP status port, the parts tiproxy reads:
//  * GET /status: 200 with {connections, version, git_hash} while serving; 500 while a graceful
//    shutdown waits (TiDB's graceful-wait-before-shutdown) — the SQL port still accepts then, and
//    proxies take the 500 as the signal to move sessions away;
//  * GET /config: the server's configuration as JSON; tiproxy looks at security.session-token-signing-
//    cert/-key (empty when the server has no signing cert, so tokens cannot be signed or checked).
// Everything else is 404.
import { createServer, type Server } from 'node:http';

export interface StatusSource {
  readonly serverVersion: string;
  readonly port: number;
  readonly statusPort: number;
  readonly hasSigningCert: boolean;
  readonly draining: boolean;
  sessionCount(): number;
}

/** Where the emulator claims its signing cert and key are; nothing reads these files. */
export const SIGNING_CERT_PATH = '/tidb-emulator/session-token/cert.pem';
export const SIGNING_KEY_PATH = '/tidb-emulator/session-token/key.pem';

export function createStatusServer(source: StatusSource): Server {
  return createServer((req, res) => {
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return send(405, { error: 'method not allowed' });
    if (path === '/status') {
      return send(source.draining ? 500 : 200, { connections: source.sessionCount(), version: source.serverVersion, git_hash: 'tidb-emulator' });
    }
    if (path === '/config') {
      return send(200, {
        host: '127.0.0.1', port: source.port, status: { 'report-status': true, 'status-port': source.statusPort },
        'graceful-wait-before-shutdown': 0,
        security: {
          'session-token-signing-cert': source.hasSigningCert ? SIGNING_CERT_PATH : '',
          'session-token-signing-key': source.hasSigningCert ? SIGNING_KEY_PATH : '',
        },
      });
    }
    send(404, { error: `not found: ${path}` });
  });
}
