// Unit tests (no real components): the response tracker fed synthetic server byte streams, whole, one
// byte at a time, and (for small streams) cut in two at every position. The packets are built here with
// local helpers, not with the kernel's builders, so a framing mistake in both cannot cancel out.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CLIENT_DEPRECATE_EOF, COM_FIELD_LIST, COM_INIT_DB, COM_PING, COM_QUERY, COM_RESET_CONNECTION, COM_SET_OPTION,
  COM_STATISTICS, COM_STMT_BULK_EXECUTE, COM_STMT_EXECUTE, COM_STMT_FETCH, COM_STMT_PREPARE, COM_STMT_RESET,
} from '../../../src/kernel/protocol/constants.js';
import { ResponseTracker, type ResponseListener, type RowSink } from '../../../src/kernel/protocol/response-tracker.js';

const MAX = 0xffffff;
const AUTOCOMMIT = 0x0002;
const IN_TRANS = 0x0001;
const MORE = 0x0008;
const CURSOR = 0x0040;
const LAST_ROW = 0x0080;

// ---- packet builders (independent of src/kernel) ---------------------------------------------------

function lenenc(v: number): Buffer {
  if (v < 0xfb) return Buffer.from([v]);
  if (v <= 0xffff) return Buffer.from([0xfc, v & 0xff, v >> 8]);
  if (v <= 0xffffff) return Buffer.from([0xfd, v & 0xff, (v >> 8) & 0xff, v >> 16]);
  const b = Buffer.alloc(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(BigInt(v), 1);
  return b;
}

function lenencStr(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([lenenc(b.length), b]);
}

function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
}

/** Frames one logical payload as packets starting at `seq` (splitting at 0xFFFFFF). */
class Stream {
  private parts: Buffer[] = [];
  seq = 1;
  packet(payload: Buffer): this {
    let off = 0;
    for (;;) {
      const n = Math.min(MAX, payload.length - off);
      const h = Buffer.alloc(4);
      h.writeUIntLE(n, 0, 3);
      h[3] = this.seq++ & 0xff;
      this.parts.push(h, payload.subarray(off, off + n));
      off += n;
      if (n < MAX) return this;
    }
  }
  ok(status: number, opts: { affected?: number; insertId?: number; info?: string; header?: number } = {}): this {
    return this.packet(Buffer.concat([Buffer.from([opts.header ?? 0x00]), lenenc(opts.affected ?? 0), lenenc(opts.insertId ?? 0),
      u16(status), u16(0), Buffer.from(opts.info ?? '')]));
  }
  /** The 0xFE OK that ends a result set with CLIENT_DEPRECATE_EOF. */
  okEof(status: number): this {
    return this.ok(status, { header: 0xfe });
  }
  eof(status: number, warnings = 0): this {
    return this.packet(Buffer.concat([Buffer.from([0xfe]), u16(warnings), u16(status)]));
  }
  /** EOF when DEPRECATE_EOF is off, else the 0xFE OK replacing it. */
  end(deprecateEof: boolean, status: number): this {
    return deprecateEof ? this.okEof(status) : this.eof(status);
  }
  err(code: number, message: string): this {
    return this.packet(Buffer.concat([Buffer.from([0xff]), u16(code), Buffer.from(`#HY000${message}`)]));
  }
  /**
   * A MariaDB progress report (MARIADB_CLIENT_PROGRESS): 0xFF, code 0xFFFF, 1, stage, max stage,
   * progress (u24, thousandths of a percent), lenenc info.
   */
  progress(stage: number, maxStage: number, permille: number, info: string): this {
    const p = Buffer.alloc(3);
    p.writeUIntLE(permille, 0, 3);
    return this.packet(Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 1, stage, maxStage]), p, lenencStr(info)]));
  }
  column(name: string): this {
    return this.packet(Buffer.concat([lenencStr('def'), lenencStr('test'), lenencStr('t'), lenencStr('t'), lenencStr(name), lenencStr(name),
      Buffer.from([0x0c]), u16(45), Buffer.from([0, 1, 0, 0]), Buffer.from([0xfd]), u16(0), Buffer.from([0]), u16(0)]));
  }
  /** Column count + definitions (+ EOF when DEPRECATE_EOF is off). */
  header(deprecateEof: boolean, names: string[], eofStatus = AUTOCOMMIT): this {
    this.packet(lenenc(names.length));
    for (const n of names) this.column(n);
    return deprecateEof ? this : this.eof(eofStatus);
  }
  row(...values: Array<string | Buffer | null>): this {
    return this.packet(Buffer.concat(values.map((v) => (v === null ? Buffer.from([0xfb]) : lenencStr(v)))));
  }
  raw(payload: Buffer): this {
    return this.packet(payload);
  }
  prepareOk(id: number, columns: number, params: number): this {
    const b = Buffer.alloc(12);
    b.writeUInt32LE(id, 1);
    b.writeUInt16LE(columns, 5);
    b.writeUInt16LE(params, 7);
    return this.packet(b);
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

// ---- driving the tracker ---------------------------------------------------------------------------

interface Step {
  command: number;
  response: Buffer;
}

type Event = string;

class Recorder implements ResponseListener {
  events: Event[] = [];
  /** Bytes fed so far (before the chunk being scanned) — with 1-byte feeding, the exact offset. */
  fed = 0;
  offsets: number[] = [];
  tracker!: ResponseTracker;
  onResponseComplete(command: number, status: number, isError: boolean): void {
    this.events.push(`complete ${command} status=${status} error=${isError}`);
    this.offsets.push(this.fed);
  }
  onLocalInfileRequest(): void {
    this.events.push('infile');
    this.offsets.push(this.fed);
  }
  onStatementPrepared(id: number, params: number, columns: number): void {
    this.events.push(`prepared id=${id} params=${params} columns=${columns}`);
    this.offsets.push(this.fed);
  }
  onUnsolicitedPacket(first: number): void {
    this.events.push(`unsolicited ${first}`);
    this.offsets.push(this.fed);
  }
}

/** Expects every command (pipelined), then feeds the concatenated responses in `cuts`. */
function drive(steps: Step[], capabilities: number, chunks: (stream: Buffer) => Iterable<Buffer>): { rec: Recorder; tracker: ResponseTracker } {
  const rec = new Recorder();
  const tracker = new ResponseTracker(rec, capabilities);
  rec.tracker = tracker;
  for (const s of steps) assert.equal(tracker.expect(s.command), true);
  const stream = Buffer.concat(steps.map((s) => s.response));
  for (const c of chunks(stream)) {
    tracker.scan(c);
    rec.fed += c.length;
  }
  return { rec, tracker };
}

function* whole(stream: Buffer): Iterable<Buffer> {
  yield stream;
}

function* bytewise(stream: Buffer): Iterable<Buffer> {
  for (let i = 0; i < stream.length; i++) yield stream.subarray(i, i + 1);
}

function splitAt(at: number): (stream: Buffer) => Iterable<Buffer> {
  return function* (stream) {
    yield stream.subarray(0, at);
    yield stream.subarray(at);
  };
}

/**
 * Runs the steps whole, byte by byte and (when small) split in two at every position; asserts the
 * events are `expected` every time, that nothing is pending afterwards, and — byte by byte — that each
 * response completes exactly on its last byte.
 */
function check(steps: Step[], capabilities: number, expected: Event[]): void {
  const a = drive(steps, capabilities, whole);
  assert.deepEqual(a.rec.events, expected, 'whole stream');
  assert.equal(a.tracker.pending, 0);
  assert.equal(a.tracker.midPacket, false);

  const b = drive(steps, capabilities, bytewise);
  assert.deepEqual(b.rec.events, expected, 'one byte at a time');
  assert.equal(b.tracker.pending, 0);
  // Completion fires while scanning the response's last byte: `fed` is then end - 1.
  let end = 0;
  const ends = steps.map((s) => (end += s.response.length) - 1);
  const completions = b.rec.events.map((e, i) => [e, b.rec.offsets[i]!] as const).filter(([e]) => e.startsWith('complete')).map(([, o]) => o);
  assert.deepEqual(completions, ends, 'each response completes on its last byte');

  const total = steps.reduce((n, s) => n + s.response.length, 0);
  if (total <= 4096) {
    for (let at = 1; at < total; at++) {
      const c = drive(steps, capabilities, splitAt(at));
      assert.deepEqual(c.rec.events, expected, `split at byte ${at}`);
      assert.equal(c.tracker.pending, 0, `split at byte ${at}`);
    }
  }
}

const complete = (command: number, status: number, error = false): Event => `complete ${command} status=${status} error=${error}`;

const MODES = [
  { name: 'EOF packets', caps: 0, deprecateEof: false },
  { name: 'CLIENT_DEPRECATE_EOF', caps: CLIENT_DEPRECATE_EOF, deprecateEof: true },
] as const;

// ---- tests -----------------------------------------------------------------------------------------

describe('ResponseTracker', () => {
  it('OK and ERR end a response', () => {
    check([{ command: COM_QUERY, response: new Stream().ok(AUTOCOMMIT | IN_TRANS, { affected: 3, info: 'Rows matched: 3' }).bytes() }], 0,
      [complete(COM_QUERY, AUTOCOMMIT | IN_TRANS)]);
    check([{ command: COM_QUERY, response: new Stream().err(1064, 'You have an error in your SQL syntax').bytes() }], 0,
      [complete(COM_QUERY, -1, true)]);
  });

  it('reads the status of an OK with 9-byte affected-rows and insert-id fields', () => {
    const response = new Stream().ok(AUTOCOMMIT | 0x4000, { affected: 2 ** 40, insertId: 2 ** 41 + 5, info: 'x'.repeat(100) }).bytes();
    check([{ command: COM_QUERY, response }], 0, [complete(COM_QUERY, AUTOCOMMIT | 0x4000)]);
  });

  for (const mode of MODES) {
    describe(mode.name, () => {
      it('a result set ends at its terminator, not at rows that look like one', () => {
        const s = new Stream().header(mode.deprecateEof, ['a', 'b'])
          .row('1', 'x')
          .row(null, 'NULL first: 0xFB') // a row starting 0xFB is not a LOCAL INFILE request mid-rows
          .raw(Buffer.from([0x00, 0x01, 0x02])) // a row starting 0x00 (an empty string) is not an OK
          .row('', 'y')
          .end(mode.deprecateEof, AUTOCOMMIT | IN_TRANS);
        check([{ command: COM_QUERY, response: s.bytes() }], mode.caps, [complete(COM_QUERY, AUTOCOMMIT | IN_TRANS)]);
      });

      it('an empty result set (columns, no rows)', () => {
        const s = new Stream().header(mode.deprecateEof, ['only']).end(mode.deprecateEof, AUTOCOMMIT);
        check([{ command: COM_QUERY, response: s.bytes() }], mode.caps, [complete(COM_QUERY, AUTOCOMMIT)]);
      });

      it('multiple results: one completion after the last (MORE_RESULTS cleared)', () => {
        const s = new Stream()
          .header(mode.deprecateEof, ['a'], AUTOCOMMIT | MORE).row('1').end(mode.deprecateEof, AUTOCOMMIT | MORE)
          .ok(AUTOCOMMIT | MORE, { affected: 1 })
          .header(mode.deprecateEof, ['b', 'c'], AUTOCOMMIT | MORE).row('2', '3').row('4', '5').end(mode.deprecateEof, AUTOCOMMIT | MORE)
          .ok(AUTOCOMMIT | IN_TRANS);
        check([{ command: COM_QUERY, response: s.bytes() }], mode.caps, [complete(COM_QUERY, AUTOCOMMIT | IN_TRANS)]);
      });

      it('a stored procedure via COM_STMT_EXECUTE: binary rows (0x00 first byte), then the final OK', () => {
        const s = new Stream()
          .header(mode.deprecateEof, ['a'], AUTOCOMMIT | MORE).raw(Buffer.from([0x00, 0x00, 0x01, 0x07])).end(mode.deprecateEof, AUTOCOMMIT | MORE)
          .ok(AUTOCOMMIT);
        check([{ command: COM_STMT_EXECUTE, response: s.bytes() }], mode.caps, [complete(COM_STMT_EXECUTE, AUTOCOMMIT)]);
      });

      it('an ERR mid-rows ends the response as an error', () => {
        const s = new Stream().header(mode.deprecateEof, ['a', 'b'], AUTOCOMMIT).row('1', '1').row('2', '2')
          .err(1242, 'Subquery returns more than 1 row');
        check([{ command: COM_QUERY, response: s.bytes() }], mode.caps, [complete(COM_QUERY, mode.deprecateEof ? -1 : AUTOCOMMIT, true)]);
      });

      it('an ERR after the first result of several', () => {
        const s = new Stream().header(mode.deprecateEof, ['a'], AUTOCOMMIT | MORE).row('1').end(mode.deprecateEof, AUTOCOMMIT | MORE)
          .err(1146, "Table 'test.nope' doesn't exist");
        check([{ command: COM_QUERY, response: s.bytes() }], mode.caps, [complete(COM_QUERY, AUTOCOMMIT | MORE, true)]);
      });

      it('COM_STMT_PREPARE: params and columns blocks', () => {
        const eofs = (s: Stream) => (mode.deprecateEof ? s : s.eof(AUTOCOMMIT));
        let s = new Stream().prepareOk(7, 2, 3).column('?').column('?').column('?');
        s = eofs(s).column('a').column('b');
        s = eofs(s);
        check([{ command: COM_STMT_PREPARE, response: s.bytes() }], mode.caps,
          ['prepared id=7 params=3 columns=2', complete(COM_STMT_PREPARE, -1)]);

        check([{ command: COM_STMT_PREPARE, response: new Stream().prepareOk(8, 0, 0).bytes() }], mode.caps,
          ['prepared id=8 params=0 columns=0', complete(COM_STMT_PREPARE, -1)]);

        const onlyParams = eofs(new Stream().prepareOk(9, 0, 1).column('?'));
        check([{ command: COM_STMT_PREPARE, response: onlyParams.bytes() }], mode.caps,
          ['prepared id=9 params=1 columns=0', complete(COM_STMT_PREPARE, -1)]);

        const onlyColumns = eofs(new Stream().prepareOk(10, 2, 0).column('x').column('y'));
        check([{ command: COM_STMT_PREPARE, response: onlyColumns.bytes() }], mode.caps,
          ['prepared id=10 params=0 columns=2', complete(COM_STMT_PREPARE, -1)]);

        check([{ command: COM_STMT_PREPARE, response: new Stream().err(1064, 'syntax').bytes() }], mode.caps,
          [complete(COM_STMT_PREPARE, -1, true)]);
      });

      it('a cursor: EXECUTE ends after the column definitions (CURSOR_EXISTS), FETCH ends at its terminator', () => {
        const exec = new Stream().packet(lenenc(2)).column('a').column('b').end(mode.deprecateEof, AUTOCOMMIT | CURSOR);
        const bin = (v: number) => Buffer.from([0x00, 0x00, v, 0, 0, 0, 1, 0x41]);
        const fetch1 = new Stream().raw(bin(1)).raw(bin(2)).end(mode.deprecateEof, AUTOCOMMIT | CURSOR);
        const fetch2 = new Stream().raw(bin(3)).end(mode.deprecateEof, AUTOCOMMIT | CURSOR | LAST_ROW);
        check([
          { command: COM_STMT_EXECUTE, response: exec.bytes() },
          { command: COM_STMT_FETCH, response: fetch1.bytes() },
          { command: COM_STMT_FETCH, response: fetch2.bytes() },
          { command: COM_STMT_FETCH, response: new Stream().err(1421, 'The statement (1) has no open cursor.').bytes() },
        ], mode.caps, [
          complete(COM_STMT_EXECUTE, AUTOCOMMIT | CURSOR),
          complete(COM_STMT_FETCH, AUTOCOMMIT | CURSOR),
          complete(COM_STMT_FETCH, AUTOCOMMIT | CURSOR | LAST_ROW),
          complete(COM_STMT_FETCH, -1, true),
        ]);
      });

      it('COM_FIELD_LIST: column definitions until the terminator', () => {
        const s = new Stream().column('a').column('b').column('c').end(mode.deprecateEof, AUTOCOMMIT);
        check([{ command: COM_FIELD_LIST, response: s.bytes() }], mode.caps, [complete(COM_FIELD_LIST, AUTOCOMMIT)]);
      });

      it('LOCAL INFILE: the request, then one OK after the upload', () => {
        const s = new Stream().raw(Buffer.concat([Buffer.from([0xfb]), Buffer.from('/tmp/data.csv')]));
        s.seq = 5; // the client's file packets and empty packet used 2..4
        s.ok(AUTOCOMMIT, { affected: 3, info: 'Records: 3  Deleted: 0  Skipped: 0  Warnings: 0' });
        check([{ command: COM_QUERY, response: s.bytes() }], mode.caps, ['infile', complete(COM_QUERY, AUTOCOMMIT)]);

        const refused = new Stream().raw(Buffer.from([0xfb, 0x66]));
        refused.seq = 3;
        refused.err(1148, 'The used command is not allowed with this MariaDB version');
        check([{ command: COM_QUERY, response: refused.bytes() }], mode.caps, ['infile', complete(COM_QUERY, -1, true)]);
      });

      it('LOCAL INFILE inside a multi-statement: the results after it are followed', () => {
        const s = new Stream().raw(Buffer.concat([Buffer.from([0xfb]), Buffer.from('f')]));
        s.seq = 3;
        s.ok(AUTOCOMMIT | MORE, { affected: 2 }).header(mode.deprecateEof, ['n']).row('2').end(mode.deprecateEof, AUTOCOMMIT);
        check([{ command: COM_QUERY, response: s.bytes() }], mode.caps, ['infile', complete(COM_QUERY, AUTOCOMMIT)]);
      });

      it('rows of 16 MiB and more (continuation packets), including one starting with 0xFE', () => {
        // A string this long needs the 9-byte length (0xFE first byte); fill it so that the
        // continuation packets start with bytes that look like EOF and ERR headers.
        const big = Buffer.alloc(2 * MAX - 2, 0xfe); // payload 2*0xFFFFFF + 7: the last continuation is 7 bytes, 0xFE first
        big[MAX - 9] = 0xff; // first byte of the second packet (payload offset 0xFFFFFF: 9-byte length prefix shifts it)
        const exact = Buffer.alloc(MAX - 4, 0x00); // row payload of exactly 0xFFFFFF bytes: an empty continuation follows
        const s = new Stream().header(mode.deprecateEof, ['blob'])
          .row(big)
          .row(exact)
          .row('small')
          .end(mode.deprecateEof, AUTOCOMMIT);
        check([{ command: COM_QUERY, response: s.bytes() }, { command: COM_PING, response: new Stream().ok(AUTOCOMMIT).bytes() }],
          mode.caps, [complete(COM_QUERY, AUTOCOMMIT), complete(COM_PING, AUTOCOMMIT)]);
      });

      it('pipelined commands complete in order', () => {
        const steps: Step[] = [
          { command: COM_QUERY, response: new Stream().header(mode.deprecateEof, ['a']).row('1').end(mode.deprecateEof, AUTOCOMMIT | IN_TRANS).bytes() },
          { command: COM_PING, response: new Stream().ok(AUTOCOMMIT | IN_TRANS).bytes() },
          { command: COM_STMT_PREPARE, response: (mode.deprecateEof ? new Stream().prepareOk(1, 1, 0).column('a') : new Stream().prepareOk(1, 1, 0).column('a').eof(AUTOCOMMIT)).bytes() },
          { command: COM_INIT_DB, response: new Stream().err(1049, "Unknown database 'nope'").bytes() },
          { command: COM_STATISTICS, response: new Stream().raw(Buffer.from('Uptime: 5  Threads: 1  Questions: 9')).bytes() },
          { command: COM_SET_OPTION, response: new Stream().end(mode.deprecateEof, AUTOCOMMIT).bytes() },
          { command: COM_STMT_RESET, response: new Stream().ok(AUTOCOMMIT).bytes() },
          { command: COM_RESET_CONNECTION, response: new Stream().ok(AUTOCOMMIT).bytes() },
          { command: COM_QUERY, response: new Stream().ok(AUTOCOMMIT).bytes() },
        ];
        check(steps, mode.caps, [
          complete(COM_QUERY, AUTOCOMMIT | IN_TRANS),
          complete(COM_PING, AUTOCOMMIT | IN_TRANS),
          'prepared id=1 params=0 columns=1',
          complete(COM_STMT_PREPARE, -1),
          complete(COM_INIT_DB, -1, true),
          complete(COM_STATISTICS, -1),
          complete(COM_SET_OPTION, AUTOCOMMIT),
          complete(COM_STMT_RESET, AUTOCOMMIT),
          complete(COM_RESET_CONNECTION, AUTOCOMMIT),
          complete(COM_QUERY, AUTOCOMMIT),
        ]);
      });
    });
  }

  it('more than 256 pipelined commands are all followed (clients such as the mariadb connector pipeline freely)', () => {
    const n = 1000;
    const rec = new Recorder();
    const tracker = new ResponseTracker(rec, CLIENT_DEPRECATE_EOF);
    for (let k = 0; k < n; k++) assert.equal(tracker.expect(k % 2 ? COM_PING : COM_QUERY), true);
    assert.equal(tracker.pending, n);
    // Half the responses, then more commands (the ring wraps while growing), then the rest.
    const ok = new Stream().ok(AUTOCOMMIT).bytes();
    const rows = new Stream().header(true, ['a']).row('1').okEof(AUTOCOMMIT).bytes();
    for (let k = 0; k < n / 2; k++) tracker.scan(k % 2 ? ok : rows);
    for (let k = 0; k < 300; k++) tracker.expect(COM_PING);
    for (let k = n / 2; k < n; k++) tracker.scan(k % 2 ? ok : rows);
    for (let k = 0; k < 300; k++) tracker.scan(ok);
    assert.equal(tracker.pending, 0);
    assert.equal(rec.events.length, n + 300);
    assert.deepEqual(rec.events.slice(0, 2), [complete(COM_QUERY, AUTOCOMMIT), complete(COM_PING, AUTOCOMMIT)]);
    assert.ok(rec.events.every((e) => e.startsWith('complete')), 'no packet taken for unsolicited');
  });

  describe('MariaDB extensions', () => {
    for (const mode of MODES) {
      it(`progress reports during a command end nothing; the final OK, ERR or result does (${mode.name})`, () => {
        const alter = new Stream().progress(1, 2, 12_345, 'copy to tmp table').progress(1, 2, 99_000, 'copy to tmp table')
          .progress(2, 2, 500, 'enable keys').ok(AUTOCOMMIT).bytes();
        const failing = new Stream().progress(1, 1, 5_000, 'copy to tmp table').err(1062, "Duplicate entry '1' for key 'PRIMARY'").bytes();
        const select = new Stream().progress(1, 1, 70_000, '').header(mode.deprecateEof, ['a']).row('1').end(mode.deprecateEof, AUTOCOMMIT).bytes();
        const execute = new Stream().progress(1, 1, 1, 'x').ok(AUTOCOMMIT | IN_TRANS).bytes();
        check([
          { command: COM_QUERY, response: alter },
          { command: COM_QUERY, response: failing },
          { command: COM_QUERY, response: select },
          { command: COM_STMT_EXECUTE, response: execute },
        ], mode.caps, [
          complete(COM_QUERY, AUTOCOMMIT),
          complete(COM_QUERY, -1, true),
          complete(COM_QUERY, AUTOCOMMIT),
          complete(COM_STMT_EXECUTE, AUTOCOMMIT | IN_TRANS),
        ]);
      });

      it(`a progress report is not counted as the command's error (${mode.name})`, () => {
        const rec = new Recorder();
        const tracker = new ResponseTracker(rec, mode.caps);
        tracker.expect(COM_QUERY);
        tracker.scan(new Stream().progress(1, 1, 50_000, 'copy').ok(AUTOCOMMIT, { affected: 7 }).bytes());
        assert.equal(tracker.completedErrorCode, 0);
        assert.equal(tracker.completedAffectedRows, 7);
      });

      it(`COM_STMT_BULK_EXECUTE is answered by one OK or ERR, or by result sets (RETURNING) (${mode.name})`, () => {
        check([
          { command: COM_STMT_BULK_EXECUTE, response: new Stream().ok(AUTOCOMMIT, { affected: 1000, insertId: 1 }).bytes() },
          { command: COM_STMT_BULK_EXECUTE, response: new Stream().err(1062, "Duplicate entry '5' for key 'PRIMARY'").bytes() },
          {
            command: COM_STMT_BULK_EXECUTE,
            response: new Stream().header(mode.deprecateEof, ['id']).row('1').row('2').row('3').end(mode.deprecateEof, AUTOCOMMIT).bytes(),
          },
          { command: COM_STMT_BULK_EXECUTE, response: new Stream().progress(1, 1, 20_000, '').ok(AUTOCOMMIT | IN_TRANS, { affected: 2 }).bytes() },
        ], mode.caps, [
          complete(COM_STMT_BULK_EXECUTE, AUTOCOMMIT),
          complete(COM_STMT_BULK_EXECUTE, -1, true),
          complete(COM_STMT_BULK_EXECUTE, AUTOCOMMIT),
          complete(COM_STMT_BULK_EXECUTE, AUTOCOMMIT | IN_TRANS),
        ]);
      });
    }
  });

  it('a packet with no command outstanding is reported as unsolicited', () => {
    const r = drive([], 0, whole);
    r.tracker.scan(new Stream().err(1927, 'Connection was killed').bytes());
    assert.deepEqual(r.rec.events, ['unsolicited 255']);
  });

  it('tells whether it is mid-packet and which sequence id an added packet needs', () => {
    const rec = new Recorder();
    const tracker = new ResponseTracker(rec, 0);
    tracker.expect(COM_QUERY);
    assert.equal(tracker.nextSeq, 1, 'nothing received yet');
    const s = new Stream().header(false, ['a']).row('1').bytes();
    tracker.scan(s.subarray(0, s.length - 1));
    assert.equal(tracker.midPacket, true);
    tracker.scan(s.subarray(s.length - 1));
    assert.equal(tracker.midPacket, false);
    assert.equal(tracker.pending, 1);
    assert.equal(tracker.nextSeq, 5, 'count, column, EOF, row were seq 1..4');
    tracker.reset();
    assert.equal(tracker.pending, 0);
  });

  it('hands a row sink exactly the payload bytes of result rows (no definitions, no terminators), however the stream is cut', () => {
    for (const m of MODES) {
      const rowPayload = (...values: string[]) => Buffer.concat(values.map((v) => lenencStr(v)));
      const long = 'y'.repeat(100); // longer than the prefix the tracker classifies by
      const query = new Stream().header(m.deprecateEof, ['a', 'b']).row('1', 'x').row('2', long).end(m.deprecateEof, AUTOCOMMIT | MORE);
      query.header(m.deprecateEof, ['c']).row('3').end(m.deprecateEof, AUTOCOMMIT);
      const steps: Step[] = [
        { command: COM_QUERY, response: query.bytes() },
        { command: COM_QUERY, response: new Stream().ok(AUTOCOMMIT, { affected: 1 }).bytes() },
        { command: COM_STMT_PREPARE, response: prepareResponse(m.deprecateEof) },
      ];
      const expected = [Buffer.concat([rowPayload('1', 'x'), rowPayload('2', long), rowPayload('3')]).toString('hex'), '', ''];
      for (const chunks of [whole, bytewise, splitAt(7), splitAt(40), splitAt(123)]) {
        const rec = new Recorder();
        const tracker = new ResponseTracker(rec, m.caps);
        const perResponse: string[] = [];
        let current: Buffer[] = [];
        const sink: RowSink = { rowBytes: (buf, start, end) => void current.push(Buffer.from(buf.subarray(start, end))) };
        tracker.rowSink = sink;
        rec.onResponseComplete = () => {
          perResponse.push(Buffer.concat(current).toString('hex'));
          current = [];
        };
        for (const st of steps) tracker.expect(st.command);
        for (const c of chunks(Buffer.concat(steps.map((st) => st.response)))) tracker.scan(c);
        assert.deepEqual(perResponse, expected, `${m.name}`);
      }
    }
  });
});

/** A COM_STMT_PREPARE answer with one column definition (and its EOF without DEPRECATE_EOF). */
function prepareResponse(deprecateEof: boolean): Buffer {
  const s = new Stream().prepareOk(7, 1, 0).column('a');
  return (deprecateEof ? s : s.eof(AUTOCOMMIT)).bytes();
}
