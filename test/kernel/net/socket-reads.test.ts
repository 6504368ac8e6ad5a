// Real components: TCP sockets on 127.0.0.1 (first part); one MariaDB, the proxy in-process and mysql2
// streaming a large result to a slow consumer (second part).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, TEST_DATABASE, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { OWN_READ_BYTES, SocketReads } from '../../../src/kernel/net/socket-reads.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server whose one accepted connection the test writes to, and a client socket read through a SocketReads. */
async function pair(): Promise<{ server: Server; peer: Socket; socket: Socket; reads: SocketReads }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const reads = new SocketReads();
  const { port } = server.address() as { port: number };
  const socket = connect({ host: '127.0.0.1', port, onread: reads.onread });
  await new Promise((r) => socket.once('connect', r));
  return { server, peer: await accepted, socket, reads };
}

function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return (async () => {
    while (!check()) {
      if (Date.now() > deadline) throw new Error('timed out');
      await sleep(10);
    }
  })();
}

describe('reading a socket with onread (socket-reads.ts)', () => {
  it('lends a large transfer in views of a buffer of its own and copies small reads out of the shared one', async () => {
    const { server, peer, socket, reads } = await pair();
    const views: boolean[] = [];
    const got: Buffer[] = [];
    reads.lend((chunk) => {
      // Not chunk.buffer's size: Node 24's Buffer pool is 64 KiB too, so a pooled copy looks the same.
      views.push(reads.lendsViews && chunk.buffer.byteLength === OWN_READ_BYTES);
      got.push(Buffer.from(chunk));
    }, new PassThrough());
    peer.write('hello');
    await until(() => got.length === 1);
    assert.equal(views[0], false, 'a small read is a copy, not a view of a read buffer');
    const big = randomBytes(600 * 1024);
    peer.write(big);
    await until(() => got.reduce((n, c) => n + c.length, 0) === 5 + big.length);
    assert.ok(Buffer.concat(got).equals(Buffer.concat([Buffer.from('hello'), big])), 'the bytes arrive whole and in order');
    assert.ok(views.includes(true), 'a large transfer is lent as views of the connection\'s own 64 KiB buffer');
    for (const small of ['a', 'b']) {
      got.length = 0;
      views.length = 0;
      peer.write(small);
      await until(() => got.length === 1);
      await sleep(20);
    }
    assert.equal(views[0], false, 'after a small read the connection reads into the shared buffer again');
    socket.destroy();
    peer.destroy();
    server.close();
  });

  it('gives connections reading into the shared buffer each their own bytes, even when the reader keeps them', async () => {
    const a = await pair();
    const b = await pair();
    const kept = { a: [] as Buffer[], b: [] as Buffer[] };
    a.reads.lend((c) => kept.a.push(c), new PassThrough());
    b.reads.lend((c) => kept.b.push(c), new PassThrough());
    const sent = { a: [] as Buffer[], b: [] as Buffer[] };
    for (let k = 0; k < 20; k++) {
      for (const [name, p] of [['a', a], ['b', b]] as const) {
        const piece = randomBytes(300 + k);
        sent[name].push(piece);
        p.peer.write(piece);
        await until(() => kept[name].reduce((n, c) => n + c.length, 0) === sent[name].reduce((n, c) => n + c.length, 0));
      }
    }
    assert.ok(Buffer.concat(kept.a).equals(Buffer.concat(sent.a)), 'connection a kept its bytes');
    assert.ok(Buffer.concat(kept.b).equals(Buffer.concat(sent.b)), 'connection b kept its bytes');
    for (const p of [a, b]) {
      p.socket.destroy();
      p.peer.destroy();
      p.server.close();
    }
  });

  it('never overwrites bytes that a write queued on the sink still holds', async () => {
    const { server, peer, socket, reads } = await pair();
    // The sink queues what is written to it (corked): each write holds a view of a read buffer, as a
    // client socket whose kernel buffer is full does while it stays under its high-water mark.
    const sinkServer = createServer();
    await new Promise<void>((r) => sinkServer.listen(0, '127.0.0.1', r));
    const sinkPeer = new Promise<Socket>((r) => sinkServer.once('connection', r));
    const sink = connect({ host: '127.0.0.1', port: (sinkServer.address() as { port: number }).port });
    await new Promise((r) => sink.once('connect', r));
    const reader = await sinkPeer;
    sink.cork();
    let readCount = 0;
    reads.lend((chunk) => {
      readCount++;
      sink.write(chunk);
    }, sink);
    // The first piece fills the shared buffer, so the rest are read into the connection's own (lent) buffer.
    const pieces = [randomBytes(40 * 1024), ...Array.from({ length: 10 }, () => randomBytes(8000))];
    let total = 0;
    for (const piece of pieces) {
      peer.write(piece);
      total += piece.length;
      await until(() => sink.writableLength >= total);
    }
    const received: Buffer[] = [];
    reader.on('data', (c: Buffer) => received.push(c));
    sink.uncork();
    await until(() => received.reduce((n, c) => n + c.length, 0) === total);
    assert.ok(readCount >= 11, `each piece came in its own read (${readCount} reads) while earlier ones were still queued`);
    assert.ok(Buffer.concat(received).equals(Buffer.concat(pieces)), 'every byte arrives as sent');
    for (const s of [socket, peer, sink, reader]) s.destroy();
    server.close();
    sinkServer.close();
  });

  it('keeps what arrives while nobody reads and hands it to the next reader first', async () => {
    const { server, peer, socket, reads } = await pair();
    const first: Buffer[] = [];
    const channel = (c: Buffer): number => first.push(c);
    reads.copyTo(channel);
    peer.write('one');
    await until(() => first.length > 0);
    reads.release(channel);
    peer.write('two');
    await sleep(100);
    const next: Buffer[] = [];
    reads.lend((c) => next.push(Buffer.from(c)), new PassThrough());
    peer.write('three');
    await until(() => Buffer.concat(next).toString() === 'twothree');
    assert.equal(Buffer.concat(first).toString(), 'one');
    socket.destroy();
    peer.destroy();
    server.close();
  });
  it('lets a reader that was already replaced let go without taking the reads from its successor', async () => {
    const { server, peer, socket, reads } = await pair();
    const stale = (_c: Buffer): void => {};
    reads.copyTo(stale);
    const pump: Buffer[] = [];
    const pumpReads = (c: Buffer): number => pump.push(Buffer.from(c));
    reads.lend(pumpReads, new PassThrough());
    reads.release(stale);
    peer.write('still mine');
    await until(() => Buffer.concat(pump).toString() === 'still mine');
    // And the other way: a channel took over, then the pump's late release leaves it reading.
    const channel: Buffer[] = [];
    reads.copyTo((c) => channel.push(c));
    reads.release(pumpReads);
    peer.write('the channel\'s');
    await until(() => Buffer.concat(channel).toString() === 'the channel\'s');
    assert.equal(Buffer.concat(pump).toString(), 'still mine', 'the replaced pump got nothing more');
    socket.destroy();
    peer.destroy();
    server.close();
  });
});

describe('a session reads its backend with onread', { timeout: 120_000 }, () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;
  before(async () => {
    db = await startMariaDB({ name: 'socket-reads' });
    proxy = await startProxy({ backends: [`127.0.0.1:${db.port}`], logLevel: 'warn' });
  });
  after(async () => {
    await proxy?.stop();
    await db?.destroy();
  });

  it('streams a large result to a client that reads slowly with every row intact', async () => {
    const rows = 60_000;
    const c = mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, database: TEST_DATABASE });
    await new Promise<void>((resolve, reject) => c.connect((err) => (err ? reject(err) : resolve())));
    const session = proxy.kernel.sessions.get(c.threadId!);
    assert.ok(session?.link.conn?.reads, 'the session\'s plain backend connection is read with onread');
    let seen = 0;
    let bad = 0;
    await new Promise<void>((resolve, reject) => {
      const stream = c.query(`SELECT seq, MD5(seq) AS h, REPEAT(CHAR(65 + seq % 26 USING latin1), 200) AS pad FROM seq_1_to_${rows}`).stream({ highWaterMark: 16 });
      stream.on('data', (row: { seq: number; h: string; pad: string }) => {
        seen++;
        if (Number(row.seq) !== seen || row.h !== createHash('md5').update(String(row.seq)).digest('hex') || row.pad !== String.fromCharCode(65 + (row.seq % 26)).repeat(200)) bad++;
        // A slow consumer now and then: mysql2 stops reading, the proxy's writes to it queue.
        if (seen % 5000 === 0) {
          stream.pause();
          setTimeout(() => stream.resume(), 150);
        }
      });
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    assert.equal(seen, rows);
    assert.equal(bad, 0, 'no row was corrupted');
    const [check] = await c.promise().query('SELECT 1 + 1 AS two');
    assert.deepEqual(check, [{ two: 2 }]);
    c.end();
  });
});
