import { connect } from 'node:net';

/** PROXY protocol v2 header with the LOCAL command: "a health check from the proxy itself, no client address". */
const PROXY_V2_LOCAL = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00]);

export type ProbeResult = { ok: true; detail: string } | { ok: false; detail: string };

/**
 * Dials the SQL port and reads the server's first packet: a handshake (protocol 10) means the server
 * accepts connections; an ERR packet (too many connections, host blocked, shutting down), a closed
 * connection or no greeting within `timeoutMs` means it does not. The connection is closed right
 * after the greeting.
 */
export function probeSqlPort(host: string, port: number, timeoutMs: number, proxyProtocol: boolean): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    let buffered: Buffer = Buffer.alloc(0);
    const socket = connect({ host, port });
    const finish = (result: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, detail: `no greeting within ${timeoutMs} ms` }), timeoutMs);
    socket.setNoDelay(true);
    socket.once('connect', () => {
      if (proxyProtocol) socket.write(PROXY_V2_LOCAL);
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered.length < 5) return;
      const length = buffered.readUIntLE(0, 3);
      const first = buffered[4]!;
      if (first === 0x0a) {
        // Protocol 10 greeting: the server version follows, NUL-terminated.
        const end = buffered.indexOf(0, 5);
        const version = end > 5 ? buffered.subarray(5, end).toString('latin1') : '';
        return finish({ ok: true, detail: version ? `greeting from ${version}` : 'greeting' });
      }
      if (first === 0xff) {
        if (buffered.length < 4 + length) return; // an ERR packet is small: wait for all of it
        const payload = buffered.subarray(4, 4 + length);
        const code = payload.length >= 3 ? payload.readUInt16LE(1) : 0;
        let message = payload.subarray(3);
        if (message[0] === 0x23 /* # */) message = message.subarray(6);
        return finish({ ok: false, detail: `ERR ${code}: ${message.toString('utf8')}` });
      }
      finish({ ok: false, detail: `unexpected first packet 0x${first.toString(16)} (not a MySQL server?)` });
    });
    socket.once('error', (err) => finish({ ok: false, detail: err.message }));
    socket.once('close', () => finish({ ok: false, detail: 'closed before the greeting' }));
  });
}
