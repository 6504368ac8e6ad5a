// Unit tests (no real components): the command reader fed synthetic client byte streams, whole, one
// byte at a time and cut in two at every position.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  COMMAND_PREFIX_LENGTH, CommandReader, FORWARD, INTERCEPT, type CommandAction, type CommandOwner,
} from '../../../src/kernel/protocol/command-reader.js';

const MAX = 0xffffff;
const COM_QUIT = 0x01;
const COM_QUERY = 0x03;
const COM_PING = 0x0e;
const COM_STMT_PREPARE = 0x16;

/** Frames a payload as packets (splitting at 0xFFFFFF), sequence ids from `seq`. */
function frame(payload: Buffer, seq = 0): Buffer {
  const parts: Buffer[] = [];
  let off = 0;
  for (;;) {
    const n = Math.min(MAX, payload.length - off);
    const h = Buffer.alloc(4);
    h.writeUIntLE(n, 0, 3);
    h[3] = seq++ & 0xff;
    parts.push(h, payload.subarray(off, off + n));
    off += n;
    if (n < MAX) return Buffer.concat(parts);
  }
}

const query = (sql: string) => frame(Buffer.concat([Buffer.from([COM_QUERY]), Buffer.from(sql)]));
const prepare = (sql: string) => frame(Buffer.concat([Buffer.from([COM_STMT_PREPARE]), Buffer.from(sql)]));

type Log = Array<{ kind: 'forward'; bytes: Buffer } | { kind: 'intercept'; payload: Buffer; seq: number } | { kind: 'upload-finished' } |
  { kind: 'action'; command: number; prefix: Buffer; length: number }>;

class Owner implements CommandOwner {
  log: Log = [];
  /** Commands to intercept (by first payload byte). */
  intercept = new Set<number>([COM_STMT_PREPARE]);
  /** Return value of onInterceptedCommand (false pauses). */
  handled = true;
  commandAction(buf: Buffer, off: number, avail: number, length: number): CommandAction {
    this.log.push({ kind: 'action', command: buf[off]!, prefix: Buffer.from(buf.subarray(off, off + avail)), length });
    return this.intercept.has(buf[off]!) ? INTERCEPT : FORWARD;
  }
  onInterceptedCommand(payload: Buffer, seq: number): boolean {
    this.log.push({ kind: 'intercept', payload: Buffer.from(payload), seq });
    return this.handled;
  }
  forward(bytes: Buffer): void {
    this.log.push({ kind: 'forward', bytes });
  }
  onUploadFinished(): void {
    this.log.push({ kind: 'upload-finished' });
  }
  /** The log with adjacent forwards joined (chunking must not matter) and actions dropped. */
  normalized(): Array<string> {
    const out: string[] = [];
    let pending: Buffer[] = [];
    const flush = () => {
      if (pending.length) out.push(`forward ${Buffer.concat(pending).toString('hex')}`);
      pending = [];
    };
    for (const e of this.log) {
      if (e.kind === 'forward') pending.push(e.bytes);
      else if (e.kind === 'action') continue;
      else {
        flush();
        out.push(e.kind === 'intercept' ? `intercept seq=${e.seq} ${e.payload.toString('hex')}` : e.kind);
      }
    }
    flush();
    return out;
  }
  actions(): string[] {
    return this.log.flatMap((e) => (e.kind === 'action' ? [`${e.command}:${e.length}:${e.prefix.toString('hex')}`] : []));
  }
}

function* bytewise(stream: Buffer): Iterable<Buffer> {
  for (let i = 0; i < stream.length; i++) yield stream.subarray(i, i + 1);
}

/** Feeds the stream whole, byte by byte and split at every position; all must give the same log. */
function checkAllSplits(stream: Buffer, setup: (owner: Owner, reader: CommandReader) => void = () => {}): { owner: Owner; reader: CommandReader } {
  const run = (chunks: Iterable<Buffer>) => {
    const owner = new Owner();
    const reader = new CommandReader(owner);
    setup(owner, reader);
    for (const c of chunks) reader.feed(c);
    return { owner, reader };
  };
  const reference = run([stream]);
  const expected = reference.owner.normalized();
  const expectedActions = reference.owner.actions();
  const b = run(bytewise(stream));
  assert.deepEqual(b.owner.normalized(), expected, 'one byte at a time');
  assert.deepEqual(b.owner.actions(), expectedActions, 'one byte at a time: actions');
  for (let at = 1; at < stream.length; at++) {
    const c = run([stream.subarray(0, at), stream.subarray(at)]);
    assert.deepEqual(c.owner.normalized(), expected, `split at ${at}`);
    assert.deepEqual(c.owner.actions(), expectedActions, `split at ${at}: actions`);
  }
  return reference;
}

describe('CommandReader', () => {
  it('forwards a chunk of whole commands as the same Buffer object when nothing is intercepted', () => {
    const owner = new Owner();
    const reader = new CommandReader(owner);
    const chunk = Buffer.concat([query('SELECT 1'), frame(Buffer.from([COM_PING])), query('SELECT 2')]);
    reader.feed(chunk);
    const forwards = owner.log.filter((e) => e.kind === 'forward');
    assert.equal(forwards.length, 1);
    assert.ok(forwards[0]!.kind === 'forward' && forwards[0]!.bytes === chunk, 'the very same Buffer, not a copy or a slice');
    assert.deepEqual(owner.actions(), [`3:9:${Buffer.from('\x03SELECT 1').toString('hex')}`, '14:1:0e', `3:9:${Buffer.from('\x03SELECT 2').toString('hex')}`]);
    assert.equal(reader.atPacketBoundary, true);
  });

  it('forwards the middle of a large payload as the same Buffer object', () => {
    const owner = new Owner();
    const reader = new CommandReader(owner);
    const stream = query('SELECT ' + 'x'.repeat(100_000));
    const first = stream.subarray(0, 1000);
    const middle = stream.subarray(1000, 50_000);
    const last = stream.subarray(50_000);
    reader.feed(first);
    assert.equal(reader.atPacketBoundary, false);
    reader.feed(middle);
    reader.feed(last);
    const forwards = owner.log.flatMap((e) => (e.kind === 'forward' ? [e.bytes] : []));
    assert.deepEqual(forwards.length, 3);
    assert.ok(forwards[0] === first && forwards[1] === middle && forwards[2] === last);
    assert.equal(owner.actions().length, 1, 'one decision per command');
    assert.equal(reader.atPacketBoundary, true);
  });

  it(`shows the owner the first ${COMMAND_PREFIX_LENGTH} payload bytes and the length`, () => {
    const sql = 'SELECT ' + 'y'.repeat(200);
    const { owner } = checkAllSplits(query(sql));
    const payload = Buffer.concat([Buffer.from([COM_QUERY]), Buffer.from(sql)]);
    assert.deepEqual(owner.actions(), [`3:${payload.length}:${payload.subarray(0, COMMAND_PREFIX_LENGTH).toString('hex')}`]);
  });

  it('intercepts a command wherever the chunks split it, forwarding what is around it in order', () => {
    const a = query('SELECT 1');
    const b = prepare('SELECT ? FROM t WHERE a = ?');
    const c = query('SELECT 3');
    const { owner } = checkAllSplits(Buffer.concat([a, b, c]));
    assert.deepEqual(owner.normalized(), [
      `forward ${a.toString('hex')}`,
      `intercept seq=0 ${b.subarray(4).toString('hex')}`,
      `forward ${c.toString('hex')}`,
    ]);
  });

  it('intercepts back-to-back commands and a command with a non-zero sequence id', () => {
    const b1 = prepare('SELECT 1');
    const b2 = frame(Buffer.from([COM_STMT_PREPARE, 0x41]), 3);
    const { owner } = checkAllSplits(Buffer.concat([b1, b2]));
    assert.deepEqual(owner.normalized(), [
      `intercept seq=0 ${b1.subarray(4).toString('hex')}`,
      `intercept seq=3 ${b2.subarray(4).toString('hex')}`,
    ]);
  });

  it('captures an intercepted command of more than 16 MiB whole (continuation packets joined)', () => {
    const payload = Buffer.alloc(MAX + 1000, 0x61);
    payload[0] = COM_STMT_PREPARE;
    payload[MAX] = COM_STMT_PREPARE; // the continuation packet's first byte must not be taken for a command
    const stream = Buffer.concat([frame(payload), query('SELECT 9')]);
    for (const chunks of [[stream], [stream.subarray(0, 10), stream.subarray(10, MAX + 6), stream.subarray(MAX + 6)]]) {
      const owner = new Owner();
      const reader = new CommandReader(owner);
      for (const c of chunks) reader.feed(c);
      const intercepted = owner.log.filter((e) => e.kind === 'intercept');
      assert.equal(intercepted.length, 1);
      assert.ok(intercepted[0]!.kind === 'intercept' && intercepted[0]!.payload.equals(payload));
      assert.deepEqual(owner.normalized().slice(1), [`forward ${query('SELECT 9').toString('hex')}`]);
      assert.equal(owner.actions().length, 2);
    }
  });

  it('forwards a command of exactly 0xFFFFFF bytes and its empty continuation with one decision', () => {
    const payload = Buffer.alloc(MAX, 0x20);
    payload[0] = COM_QUERY;
    const stream = Buffer.concat([frame(payload), frame(Buffer.from([COM_PING]))]);
    assert.equal(stream.length, 4 + MAX + 4 + 4 + 1);
    const owner = new Owner();
    const reader = new CommandReader(owner);
    reader.feed(stream.subarray(0, MAX + 4 + 2)); // split inside the empty continuation's header
    reader.feed(stream.subarray(MAX + 4 + 2));
    assert.deepEqual(owner.actions().map((a) => a.split(':').slice(0, 2).join(':')), [`3:${MAX}`, '14:1']);
    assert.ok(Buffer.concat(owner.log.flatMap((e) => (e.kind === 'forward' ? [e.bytes] : []))).equals(stream));
  });

  it('pause/resume: bytes that arrive while an intercepted command is handled keep their order', () => {
    const a = query('SELECT 1');
    const b = prepare('SELECT ?');
    const c = query('SELECT 3');
    const d = frame(Buffer.from([COM_PING]));
    const e = prepare('SELECT 5');
    const stream = Buffer.concat([a, b, c, d, e]);
    const cut = [1, a.length + 2, a.length + b.length + 3, stream.length - 2];
    for (let variant = 0; variant <= cut.length; variant++) {
      const owner = new Owner();
      owner.handled = false; // every intercepted command is handled "asynchronously"
      const reader = new CommandReader(owner);
      const points = [0, ...cut.slice(0, variant), stream.length];
      for (let k = 0; k + 1 < points.length; k++) reader.feed(stream.subarray(points[k], points[k + 1]));
      // b is captured and the reader paused: nothing after it may have been forwarded.
      assert.deepEqual(owner.normalized(), [`forward ${a.toString('hex')}`, `intercept seq=0 ${b.subarray(4).toString('hex')}`], `variant ${variant}`);
      assert.equal(reader.isPaused, true);
      assert.equal(reader.atPacketBoundary, false, 'paused is not a safe point');
      // The owner answers b (e.g. forwards a rewritten packet) and resumes: c, d, then e is captured.
      owner.forward(Buffer.from('B'));
      reader.resume();
      assert.deepEqual(owner.normalized(), [
        `forward ${a.toString('hex')}`,
        `intercept seq=0 ${b.subarray(4).toString('hex')}`,
        `forward ${Buffer.concat([Buffer.from('B'), c, d]).toString('hex')}`,
        `intercept seq=0 ${e.subarray(4).toString('hex')}`,
      ], `variant ${variant}`);
      assert.equal(reader.isPaused, true);
      reader.feed(query('SELECT 6'));
      owner.handled = true;
      reader.resume();
      assert.equal(reader.isPaused, false);
      assert.equal(owner.normalized().at(-1), `forward ${query('SELECT 6').toString('hex')}`);
      assert.equal(reader.atPacketBoundary, true);
    }
  });

  it('LOCAL INFILE upload: packets are data (never decided on) until the empty packet', () => {
    // File data whose packets start with bytes that look like intercepted commands (PREPARE, QUIT).
    const data1 = frame(Buffer.concat([Buffer.from([COM_STMT_PREPARE]), Buffer.from('1,one\n')]), 2);
    const data2 = frame(Buffer.concat([Buffer.from([COM_QUIT]), Buffer.from('2,two\n')]), 3);
    const end = frame(Buffer.alloc(0), 4);
    const next = prepare('SELECT 1'); // the next command (after the server's OK) is a command again
    const stream = Buffer.concat([data1, data2, end, next]);
    const { owner, reader } = checkAllSplits(stream, (_o, r) => { r.uploading = true; });
    assert.deepEqual(owner.normalized(), [
      `forward ${Buffer.concat([data1, data2, end]).toString('hex')}`,
      'upload-finished',
      `intercept seq=0 ${next.subarray(4).toString('hex')}`,
    ]);
    assert.deepEqual(owner.actions(), [`22:9:${next.subarray(4).toString('hex')}`], 'only the command after the upload was decided on');
    assert.equal(reader.uploading, false);
  });

  it('LOCAL INFILE upload: a data packet of exactly 0xFFFFFF bytes is followed by its continuation, not the end', () => {
    const big = frame(Buffer.alloc(MAX, 0x31), 2); // packet (MAX) + empty continuation (seq 3)
    const end = frame(Buffer.alloc(0), 4);
    const owner = new Owner();
    const reader = new CommandReader(owner);
    reader.uploading = true;
    reader.feed(big);
    assert.equal(reader.uploading, true, 'the empty continuation does not end the upload');
    assert.deepEqual(owner.normalized(), [`forward ${big.toString('hex')}`]);
    reader.feed(end);
    assert.equal(reader.uploading, false);
    assert.equal(owner.normalized().at(-1), 'upload-finished');
  });

  it('an empty packet outside an upload is forwarded without a decision', () => {
    const { owner } = checkAllSplits(Buffer.concat([frame(Buffer.alloc(0)), query('SELECT 1')]));
    assert.equal(owner.actions().length, 1);
  });
});
