// The floor: the cheapest TCP relay Node can be with public APIs, nothing MySQL about it. Whatever a
// Node proxy does per query costs at least this much; the bench runs it next to HAProxy and tiproxy so
// "tiproxy minus floor" is what tiproxy itself adds and "floor minus HAProxy" is what Node costs.
//   node bench/floor-relay.ts --port P --backend-port B [--mode onread|pipe] [--tls-cert F --tls-key F]
// (Node 20 runs it via `--import tsx`; it only uses type-erasable syntax.)
//   pipe:   client.pipe(backend).pipe(client) — Node's stream machinery both ways.
//   onread: backend sockets (net.connect) read into a reused buffer with the `onread` option and write
//           straight to the client; client sockets (accepted: `onread` is not offered for them) use
//           plain 'data' events. Backpressure both ways, as a real proxy needs.
//   --tls-cert/--tls-key (onread only): clients use TLS to the relay, the backend leg stays plain, as
//           with tiproxy-tls in the memory suite. The least MySQL a TLS relay needs: the backend's
//           greeting gets the CLIENT_SSL flag, the client's SSLRequest is answered by a TLS handshake
//           instead of being relayed, and its HandshakeResponse (sequence 2 over TLS) goes to the
//           backend as sequence 1 without CLIENT_SSL. Nothing else is parsed.
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' }, 'backend-port': { type: 'string' }, mode: { type: 'string', default: 'onread' },
    'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' },
  },
});
const port = Number(values.port);
const backendPort = Number(values['backend-port']);
const READ_BUFFER = 64 * 1024;

function relayPipe(client: Socket): void {
  const backend = connect({ port: backendPort, host: '127.0.0.1', noDelay: true });
  client.pipe(backend).pipe(client);
  client.on('error', () => backend.destroy());
  backend.on('error', () => client.destroy());
}

const CLIENT_SSL = 0x800;
const SSL_REQUEST_PACKET = 4 + 32;
const tlsContext: SecureContext | null = values['tls-cert'] && values['tls-key']
  ? createSecureContext({ cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) })
  : null;

/** Sets CLIENT_SSL in a greeting packet (header included): the backend need not offer TLS itself. */
function offerTls(packet: Uint8Array): void {
  // Header (4), protocol version (1), server version up to its NUL, connection id (4), salt part 1 (8),
  // filler (1), then the low two capability bytes, little-endian.
  const capsAt = packet.indexOf(0, 5) + 1 + 4 + 8 + 1;
  packet[capsAt + 1]! |= CLIENT_SSL >> 8;
}

function relayOnread(accepted: Socket): void {
  // The buffer is reused for every read unless a write still holds it (the client's socket queued
  // the bytes instead of sending them at once): then the next read gets a fresh one.
  let buffer = Buffer.allocUnsafeSlow(READ_BUFFER);
  let lent = false;
  let client: Socket = accepted;
  let greeted = tlsContext === null;
  const backend: Socket = connect({
    port: backendPort, host: '127.0.0.1', noDelay: true,
    onread: {
      buffer: () => {
        if (lent) {
          buffer = Buffer.allocUnsafeSlow(READ_BUFFER);
          lent = false;
        }
        return buffer;
      },
      callback: (n: number, buf: Uint8Array): boolean => {
        if (!greeted) {
          greeted = true;
          offerTls(buf);
        }
        const ok = client.write(buf.subarray(0, n));
        if (client.writableLength > 0) lent = true;
        if (!ok) client.once('drain', () => backend.resume());
        return ok;
      },
    },
  });
  const onData = (chunk: Buffer): void => {
    if (!backend.write(chunk)) {
      client.pause();
      backend.once('drain', () => client.resume());
    }
  };
  if (tlsContext) {
    accepted.once('data', (sslRequest: Buffer) => {
      // The TLS ClientHello may follow the SSLRequest in the same read: hand it back to the socket.
      if (sslRequest.length > SSL_REQUEST_PACKET) {
        accepted.pause();
        accepted.unshift(sslRequest.subarray(SSL_REQUEST_PACKET));
      }
      const secure = new TLSSocket(accepted, { isServer: true, secureContext: tlsContext });
      client = secure;
      secure.once('data', (response: Buffer) => {
        response[3] = 1;
        response[4 + 1]! &= ~(CLIENT_SSL >> 8);
        onData(response);
        secure.on('data', onData);
      });
      secure.on('end', () => backend.end());
      secure.on('error', () => backend.destroy());
      secure.on('close', () => backend.destroy());
    });
  } else client.on('data', onData);
  client.on('end', () => backend.end());
  backend.on('end', () => client.end());
  client.on('error', () => backend.destroy());
  backend.on('error', () => client.destroy());
  client.on('close', () => backend.destroy());
  backend.on('close', () => client.destroy());
}

const relay = values.mode === 'pipe' ? relayPipe : relayOnread;
createServer({ noDelay: true }, relay).listen(port, '127.0.0.1');
