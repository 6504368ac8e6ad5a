// Real components: a MariaDB 10.11 (mariadbd, max_allowed_packet 512M), bin/tiproxy as a child
// process (its RSS and descriptors read from /proc), the bench's lean client and raw node:net sockets
// as clients, mysql2 as the client that must keep being served.
//
// Bounded resources (issue 14): a client that stops reading a 200 MB result makes the proxy stop
// reading the backend; a 256 MiB packet from a client is streamed through, not buffered; thousands of
// clients dribbling their handshake are cut at the handshake timeout while others are served.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { LeanConnection } from '../../../bench/lean-client.js';
import { ensureBuilt } from '../../../local-cluster/build.js';
import { ROOT_PASSWORD, ROOT_USER, startMariaDB, TEST_DATABASE, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import {
  CLIENT_LONG_PASSWORD, CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, COM_QUERY,
  MAX_PACKET_PAYLOAD,
} from '../../../src/kernel/protocol/constants.js';
import { buildHandshakeResponse } from '../../../src/kernel/protocol/handshake-packets.js';
import { framePackets } from '../../../src/kernel/protocol/payload-writer.js';
import { ClientPool } from '../../harness/clients.js';
import { startProxyProcess, type ProxyProcess } from '../../harness/proxy.js';

const MIB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const clients = new ClientPool();

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

function fds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Samples `pid`'s RSS every 100 ms until stopped; returns the peak. */
function rssSampler(pid: number): { stop(): number } {
  let peak = rssMb(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 100);
  return { stop: () => (clearInterval(timer), Math.max(peak, rssMb(pid))) };
}

async function loggedInSocket(port: number): Promise<Socket> {
  const conn = await LeanConnection.open({ host: '127.0.0.1', port, user: ROOT_USER, password: ROOT_PASSWORD, database: TEST_DATABASE, timeoutMs: 20_000 });
  const socket = conn.takeSocket();
  socket.on('error', () => {});
  return socket;
}

/** Resolves once `socket` has been quiet for `quietMs` (or closed); returns the bytes received meanwhile. */
function readUntilQuiet(socket: Socket, quietMs: number, onData?: (chunk: Buffer) => void): Promise<number> {
  return new Promise((resolve) => {
    let total = 0;
    let timer = setTimeout(done, quietMs);
    function done(): void {
      socket.off('data', data);
      resolve(total);
    }
    function data(chunk: Buffer): void {
      total += chunk.length;
      onData?.(chunk);
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    }
    socket.on('data', data);
    socket.once('close', () => {
      clearTimeout(timer);
      done();
    });
  });
}

describe('bounded resources', { timeout: 600_000 }, () => {
  let db: MariaDBInstance;
  let proxy: ProxyProcess;
  let pid: number;

  before(async () => {
    ensureBuilt();
    db = await startMariaDB({ name: 'bounded', config: { max_allowed_packet: '512M' } });
    proxy = await startProxyProcess(['--backend', `127.0.0.1:${db.port}`, '--log-level', 'warn'], { startTimeoutMs: 60_000 });
    pid = proxy.child.pid!;
    const warm = await clients.connect(proxy);
    await warm.query('SELECT 1');
    await clients.closeAll();
  });
  after(async () => {
    await clients.closeAll(false);
    await proxy?.stop('SIGKILL');
    await db?.destroy();
  });

  it('stops reading the backend while a client does not read a 200 MB result, holding memory flat, and delivers all of it once the client reads', async () => {
    const rows = 200_000;
    const socket = await loggedInSocket(proxy.port);
    socket.pause();
    const before = rssMb(pid);
    const sampler = rssSampler(pid);
    socket.write(framePackets(Buffer.from(`\x03SELECT REPEAT('x', 1000) FROM seq_1_to_${rows}`, 'latin1'), 0).packet);
    await sleep(4000);
    // The server is held up writing the result (the proxy stopped reading it), not finished.
    const running = await db.query<Array<{ n: number }>>(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT REPEAT%'`);
    assert.equal(Number(running[0]!.n), 1, 'the query still runs on the backend while nobody reads');
    const peakWhileStalled = sampler.stop();
    assert.ok(peakWhileStalled - before < 48, `proxy RSS ${Math.round(before)} -> ${Math.round(peakWhileStalled)} MiB while the client did not read`);
    const reading = rssSampler(pid);
    const received = readUntilQuiet(socket, 2000);
    socket.resume();
    const total = await received;
    const peakReading = reading.stop();
    assert.ok(total > rows * 1000, `received ${total} bytes of a ${rows}-row result`);
    // Streaming 200 MB at full speed leaves garbage the GC reclaims later (later still on Node 24): a looser
    // bound than while stalled, where nothing moves and memory must stay flat.
    assert.ok(peakReading - before < 96, `proxy RSS ${Math.round(before)} -> ${Math.round(peakReading)} MiB while streaming 200 MB`);
    socket.destroy();
    console.log(`backpressure: RSS before ${before.toFixed(1)} MiB, peak while the client stalled ${peakWhileStalled.toFixed(1)} MiB, peak while reading ${peakReading.toFixed(1)} MiB, ${(total / MIB).toFixed(0)} MiB delivered`);
  });

  it('streams a 256 MiB packet from a client to the backend without buffering it', { timeout: 120_000 }, async () => {
    const socket = await loggedInSocket(proxy.port);
    const size = 256 * MIB;
    const head = Buffer.from(`${String.fromCharCode(COM_QUERY)}SELECT LENGTH('`, 'latin1');
    const tail = Buffer.from(`') AS n`, 'latin1');
    const filler = Buffer.alloc(MIB, 'y');
    const before = rssMb(pid);
    const sampler = rssSampler(pid);
    // The logical packet: head, (size - head - tail) bytes of 'y', tail; cut into 16 MiB - 1 packets.
    const payload = head.length + size + tail.length;
    let sent = 0;
    let seq = 0;
    const write = async (bytes: Buffer): Promise<void> => {
      if (!socket.write(bytes)) await new Promise((r) => socket.once('drain', r));
    };
    let text = '';
    let closed = false;
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.once('close', () => (closed = true));
    while (sent <= payload) {
      const length = Math.min(MAX_PACKET_PAYLOAD, payload - sent);
      const header = Buffer.alloc(4);
      header.writeUIntLE(length, 0, 3);
      header[3] = seq++ & 0xff;
      await write(header);
      let left = length;
      while (left > 0) {
        const at = sent + (length - left);
        if (at < head.length) {
          const part = head.subarray(at, Math.min(head.length, at + left));
          await write(part);
          left -= part.length;
        } else if (at >= head.length + size) {
          const part = tail.subarray(at - head.length - size, Math.min(tail.length, at - head.length - size + left));
          await write(part);
          left -= part.length;
        } else {
          const part = filler.subarray(0, Math.min(filler.length, left, head.length + size - at));
          await write(part);
          left -= part.length;
        }
      }
      sent += length;
      if (length < MAX_PACKET_PAYLOAD) break;
    }
    for (let i = 0; i < 600 && !closed && !text.includes(String(size)) && !text.includes('#'); i++) await sleep(100);
    const peak = sampler.stop();
    assert.ok(text.includes(String(size)), `the server saw all ${size} bytes (answer: ${JSON.stringify(text.slice(0, 200))}, closed: ${closed})`);
    // Buffering the packet would add 256 MiB. The client leg's reads (a 64 KiB buffer each) leave garbage
    // the GC reclaims later, later still on Node 24 (+75 MiB there when this test starts from a small heap;
    // +25 when the previous test had already grown it to the same peak): the bound is the streaming one above.
    assert.ok(peak - before < 96, `proxy RSS ${Math.round(before)} -> ${Math.round(peak)} MiB while relaying a 256 MiB packet`);
    socket.destroy();
    console.log(`big packet: RSS before ${before.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB while relaying ${size / MIB} MiB`);
  });

  it('cuts thousands of clients that dribble their handshake at the handshake timeout while other clients are served', { timeout: 180_000 }, async () => {
    // Each dribbler costs two descriptors here and one in the proxy: size the crowd to the limit.
    const limit = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
    const crowd = limit >= 12_000 ? 5000 : 2000;
    const dir = mkdtempSync(join(tmpdir(), 'tiproxy-dribble-'));
    writeFileSync(`${dir}/proxy.yaml`, 'proxy:\n  handshake-timeout: 2\nlog:\n  level: error\n');
    const p = await startProxyProcess(['--config', `${dir}/proxy.yaml`, '--backend', `127.0.0.1:${db.port}`], { startTimeoutMs: 60_000 });
    try {
      const ppid = p.child.pid!;
      const warm = await clients.connect(p);
      await warm.query('SELECT 1');
      await clients.closeAll();
      await sleep(200);
      const fdBefore = fds(ppid);
      const rssBefore = rssMb(ppid);
      const login = framePackets(buildHandshakeResponse({
        capabilities: CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
        maxPacketSize: 1 << 24, charset: 33, user: ROOT_USER, authResponse: Buffer.alloc(20, 1), database: '', authPlugin: 'mysql_native_password', attributes: [],
      }), 1).packet;
      const sockets: Array<{ s: Socket; bytes: Buffer; closedAt: number }> = [];
      const started = Date.now();
      for (let i = 0; i < crowd; i += 250) {
        await Promise.all(Array.from({ length: Math.min(250, crowd - i) }, () => new Promise<void>((resolve) => {
          const entry = { s: connect({ host: '127.0.0.1', port: p.port }), bytes: Buffer.alloc(0), closedAt: 0 };
          entry.s.on('data', (c: Buffer) => (entry.bytes = Buffer.concat([entry.bytes, c])));
          entry.s.on('close', () => (entry.closedAt = Date.now()));
          entry.s.on('error', () => {});
          entry.s.once('connect', () => resolve());
          sockets.push(entry);
        })));
      }
      const connectedMs = Date.now() - started;
      // One byte of a valid HandshakeResponse every 250 ms from each: never finishing in time.
      let offset = 0;
      const dribble = setInterval(() => {
        if (offset >= login.length - 1) return;
        for (const e of sockets) if (!e.s.destroyed) e.s.write(login.subarray(offset, offset + 1));
        offset++;
      }, 250);
      // Meanwhile, ordinary clients log in and query, one after another.
      const latencies: number[] = [];
      const served = (async () => {
        while (sockets.some((e) => e.closedAt === 0) && Date.now() - started < 60_000) {
          const t0 = performance.now();
          const c = await clients.connect(p);
          await c.query('SELECT 1');
          await clients.end(c);
          latencies.push(performance.now() - t0);
        }
      })();
      const deadline = Date.now() + 30_000;
      while (sockets.some((e) => e.closedAt === 0) && Date.now() < deadline) await sleep(100);
      clearInterval(dribble);
      await served;
      const open = sockets.filter((e) => e.closedAt === 0).length;
      assert.equal(open, 0, `${open} of ${crowd} dribbling clients still connected 30 s later`);
      // Each was told why, once its 2 s were up (plus the time to connect the crowd on a busy machine).
      const told = sockets.filter((e) => e.bytes.includes(Buffer.from('handshake not completed within 2 s'))).length;
      assert.equal(told, crowd, `${told} of ${crowd} dribblers got ERR 1043 "handshake not completed within 2 s"`);
      const lastClose = Math.max(...sockets.map((e) => e.closedAt)) - started;
      assert.ok(lastClose < connectedMs + 2000 + 8000, `the last dribbler was cut ${lastClose} ms after the first connected (connecting took ${connectedMs} ms)`);
      assert.ok(latencies.length >= 3, `ordinary clients served meanwhile: ${latencies.length}`);
      const worst = Math.max(...latencies);
      // Served, not starved until the crowd is gone (a busy 2-core machine makes a login slow under this load).
      assert.ok(worst < 15_000, `slowest ordinary login + query meanwhile: ${Math.round(worst)} ms`);
      for (const e of sockets) e.s.destroy();
      let fdAfter = fds(ppid);
      for (let i = 0; i < 50 && fdAfter > fdBefore + 2; i++) {
        await sleep(100);
        fdAfter = fds(ppid);
      }
      assert.ok(fdAfter <= fdBefore + 2, `proxy descriptors ${fdBefore} -> ${fdAfter}`);
      console.log(`dribblers: ${crowd} (ulimit -n ${limit}) connected in ${connectedMs} ms, all cut by ${lastClose} ms; ${latencies.length} ordinary clients served meanwhile, slowest ${Math.round(worst)} ms; proxy RSS ${rssBefore.toFixed(0)} -> ${rssMb(ppid).toFixed(0)} MiB, fds ${fdBefore} -> ${fdAfter}`);
    } finally {
      await p.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
