// The floor: the cheapest TCP relay Node can be with public APIs, nothing MySQL about it. Whatever a
// Node proxy does per query costs at least this much; the bench runs it next to HAProxy and tiproxy so
// "tiproxy minus floor" is what tiproxy itself adds and "floor minus HAProxy" is what Node costs.
//   node bench/floor-relay.ts --port P --backend-port B [--mode onread|pipe]
// (Node 20 runs it via `--import tsx`; it only uses type-erasable syntax.)
//   pipe:   client.pipe(backend).pipe(client) — Node's stream machinery both ways.
//   onread: backend sockets (net.connect) read into a reused buffer with the `onread` option and write
//           straight to the client; client sockets (accepted: `onread` is not offered for them) use
//           plain 'data' events. Backpressure both ways, as a real proxy needs.
import { connect, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { port: { type: 'string' }, 'backend-port': { type: 'string' }, mode: { type: 'string', default: 'onread' } },
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

function relayOnread(client: Socket): void {
  // The buffer is reused for every read unless a write still holds it (the client's socket queued
  // the bytes instead of sending them at once): then the next read gets a fresh one.
  let buffer = Buffer.allocUnsafeSlow(READ_BUFFER);
  let lent = false;
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
        const ok = client.write(buf.subarray(0, n));
        if (client.writableLength > 0) lent = true;
        if (!ok) client.once('drain', () => backend.resume());
        return ok;
      },
    },
  });
  client.on('data', (chunk: Buffer) => {
    if (!backend.write(chunk)) {
      client.pause();
      backend.once('drain', () => client.resume());
    }
  });
  client.on('end', () => backend.end());
  backend.on('end', () => client.end());
  client.on('error', () => backend.destroy());
  backend.on('error', () => client.destroy());
  client.on('close', () => backend.destroy());
  backend.on('close', () => client.destroy());
}

const relay = values.mode === 'pipe' ? relayPipe : relayOnread;
createServer({ noDelay: true }, relay).listen(port, '127.0.0.1');
