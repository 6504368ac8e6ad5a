import { COM_CHANGE_USER, COM_INIT_DB, COM_QUERY, COM_QUIT, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_FETCH, COM_STMT_PREPARE, COM_STMT_RESET, COM_STMT_SEND_LONG_DATA } from '../../kernel/protocol/constants.js';
import { readCapture } from '../../plugins/traffic-capture/traffic-file-reader.js';
import type { BootRecord, CommandRecord, TrafficRecord } from '../../plugins/traffic-capture/traffic-record.js';
import { ReplayConnection, type ReplayOutcome } from './replay-connection.js';
import { ReplayReportBuilder, type ReplayReport, type ReplayUserSummary } from './replay-report.js';
import { isLoadData, isReadOnlyStatement } from './statement-digest.js';

export interface ReplayOptions {
  input: string;
  target: string;
  /** The login of sessions whose user has no entry in `credentials` (all sessions without `credentials`); without it they are skipped. */
  user?: string;
  password?: string;
  /** Captured user -> password: each session logs in as the user it was captured as (--credentials-file). */
  credentials?: ReadonlyMap<string, string>;
  /** 1 = captured pace; 2 = twice as fast. */
  speed: number;
  readOnly: boolean;
  /** Replay only sessions with id % count === index (several replayers share a capture). */
  shard: { index: number; count: number } | null;
  key: Buffer | null;
  connectTimeoutMs: number;
  /** Called about once a second with progress. */
  onProgress?(p: ReplayProgress): void;
}

export interface ReplayProgress {
  replayed: number;
  total: number;
  differences: number;
  sessionsDone: number;
  sessions: number;
  elapsedSeconds: number;
}

/** Commands naming a statement id in their first four bytes after the command byte. */
const STATEMENT_COMMANDS = new Set([COM_STMT_EXECUTE, COM_STMT_CLOSE, COM_STMT_RESET, COM_STMT_FETCH, COM_STMT_SEND_LONG_DATA]);
const NO_RESPONSE = new Set([COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA]);

interface CapturedSession {
  id: number;
  boot: BootRecord | null;
  commands: CommandRecord[];
}

type SkipReason = 'read-only writes' | 'LOAD DATA' | 'truncated payload' | 'unknown statement id' | 'COM_CHANGE_USER' | 'after session failure';

/** How a session logs in to the target: as its captured user (credentials file) or as the fallback --user. */
interface Login {
  user: string;
  password: string;
  how: ReplayUserSummary['login'];
}

function loginFor(captured: string, opts: ReplayOptions): Login | null {
  const own = opts.credentials?.get(captured);
  if (own !== undefined) return { user: captured, password: own, how: 'own' };
  if (opts.user !== undefined) return { user: opts.user, password: opts.password ?? '', how: opts.credentials ? 'fallback' : 'replay-user' };
  return null;
}

/** Replays a capture directory against a target and builds the report (docs/traffic.md). */
export async function replayTraffic(opts: ReplayOptions): Promise<ReplayReport> {
  const capture = readCapture(opts.input, opts.key);
  const sessions = groupSessions(capture.records, opts.shard);
  // The capture digested result rows: the target's are digested alike and compared.
  const digests = capture.meta?.resultDigest === true;
  const total = sessions.reduce((n, s) => n + s.commands.length, 0);
  const report = new ReplayReportBuilder();
  const skipped: Record<SkipReason | 'bootstrap statements failed' | 'sessions without credentials', number> = {
    'read-only writes': 0, 'LOAD DATA': 0, 'truncated payload': 0, 'unknown statement id': 0, COM_CHANGE_USER: 0, 'after session failure': 0,
    'bootstrap statements failed': 0, 'sessions without credentials': 0,
  };
  const sessionErrors: Array<{ session: number; error: string }> = [];
  const users = new Map<string, ReplayUserSummary>();
  let replayed = 0;
  let differences = 0;
  let sessionsDone = 0;
  const firstTs = Math.min(...sessions.map((s) => s.boot?.ts ?? s.commands[0]?.ts ?? 0), Infinity);
  const origin = Number.isFinite(firstTs) ? firstTs : 0;
  const startedAt = new Date();
  const t0 = performance.now();
  /** Waits until the captured moment `ts`, scaled by the speed. */
  const until = async (ts: number) => {
    const due = t0 + (ts - origin) / opts.speed;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  };
  const progress = opts.onProgress ? setInterval(() => opts.onProgress!({
    replayed, total, differences, sessionsDone, sessions: sessions.length, elapsedSeconds: Math.round((performance.now() - t0) / 100) / 10,
  }), 1000) : null;

  const replaySession = async (s: CapturedSession): Promise<void> => {
    const boot = s.boot;
    const captured = boot?.user ?? '';
    const login = loginFor(captured, opts);
    let perUser = users.get(captured);
    if (!perUser) users.set(captured, (perUser = { user: captured, login: login?.how ?? 'none', sessions: 0, commands: 0, replayed: 0, differing: 0 }));
    perUser.sessions++;
    perUser.commands += s.commands.length;
    if (!login) {
      skipped['sessions without credentials'] += s.commands.length;
      sessionsDone++;
      return;
    }
    if (boot) await until(boot.ts);
    else if (s.commands[0]) await until(s.commands[0].ts);
    let conn: ReplayConnection;
    try {
      conn = await ReplayConnection.open(opts.target, login.user, login.password, boot?.db ?? '', opts.connectTimeoutMs, digests);
    } catch (err) {
      sessionErrors.push({ session: s.id, error: `cannot log in to ${opts.target} as ${login.user}: ${(err as Error).message}` });
      skipped['after session failure'] += s.commands.length;
      sessionsDone++;
      return;
    }
    /** Captured statement id -> the target's, and the statement's SQL (for digests and read-only checks). */
    const statements = new Map<number, { id: number; sql: string }>();
    try {
      if (boot) {
        for (const sql of [...boot.sets, ...boot.prepares]) {
          if ((await conn.run(query(sql))).err !== 0) skipped['bootstrap statements failed']++;
        }
        for (const st of boot.stmts) {
          const o = await conn.run(Buffer.concat([Buffer.from([COM_STMT_PREPARE]), Buffer.from(st.sql, 'utf8')]));
          if (o.err === 0) statements.set(st.id, { id: o.stmt, sql: st.sql });
          else {
            // Prepared on the source before the capture: a statement the target refuses is a difference.
            skipped['bootstrap statements failed']++;
            if (report.add(s.id, COM_STMT_PREPARE, `PREPARE ${st.sql}`, { err: 0, aff: 0, rows: 0, ms: o.ms }, o)) perUser.differing++;
          }
        }
      }
      for (let k = 0; k < s.commands.length; k++) {
        const cmd = s.commands[k]!;
        await until(cmd.ts);
        const payload = cmd.p;
        const skip = (why: SkipReason) => void skipped[why]++;
        if (payload.length < cmd.len) {
          skip('truncated payload');
          continue;
        }
        const command = payload[0]!;
        if (command === COM_QUIT) break;
        if (command === COM_CHANGE_USER) {
          skip('COM_CHANGE_USER');
          continue;
        }
        let sql = '';
        if (command === COM_QUERY || command === COM_STMT_PREPARE) sql = payload.toString('utf8', 1);
        if (command === COM_QUERY && isLoadData(sql)) {
          skip('LOAD DATA');
          continue;
        }
        if (command === COM_QUERY && opts.readOnly && !isReadOnlyStatement(sql)) {
          skip('read-only writes');
          continue;
        }
        if (STATEMENT_COMMANDS.has(command)) {
          const st = payload.length >= 5 ? statements.get(payload.readUInt32LE(1)) : undefined;
          if (!st) {
            skip('unknown statement id');
            continue;
          }
          if (command === COM_STMT_EXECUTE && opts.readOnly && !isReadOnlyStatement(st.sql)) {
            skip('read-only writes');
            continue;
          }
          if (command === COM_STMT_CLOSE) statements.delete(payload.readUInt32LE(1));
          payload.writeUInt32LE(st.id, 1);
          sql = st.sql;
        }
        if (NO_RESPONSE.has(command)) {
          conn.sendOnly(payload);
          replayed++;
          perUser.replayed++;
          continue;
        }
        const outcome: ReplayOutcome = await conn.run(payload);
        replayed++;
        if (command === COM_STMT_PREPARE && outcome.err === 0 && cmd.r?.stmt !== undefined) statements.set(cmd.r.stmt, { id: outcome.stmt, sql });
        if (command === COM_INIT_DB) sql = '';
        perUser.replayed++;
        if (report.add(s.id, command, command === COM_STMT_PREPARE ? `PREPARE ${sql}` : sql, cmd.r, outcome)) perUser.differing++;
        if (cmd.r && (cmd.r.err === 0) !== (outcome.err === 0)) differences++;
      }
    } catch (err) {
      sessionErrors.push({ session: s.id, error: (err as Error).message });
    } finally {
      conn.close();
      sessionsDone++;
    }
  };

  await Promise.all(sessions.map(replaySession));
  if (progress) clearInterval(progress);
  const seconds = Math.round((performance.now() - t0) / 10) / 100;
  const statements = report.statements();
  const differing = statements.filter((d) => d.differing > 0);
  return {
    summary: {
      input: opts.input, target: opts.target, speed: opts.speed, readOnly: opts.readOnly, shard: opts.shard ? `${opts.shard.index}/${opts.shard.count}` : null,
      startedAt: startedAt.toISOString(), seconds, sessions: sessions.length, commands: total, replayed,
      commandsPerSecond: seconds > 0 ? Math.round(replayed / seconds) : replayed, statements: statements.length,
      differingStatements: differing.length, differences: differing.reduce((n, d) => n + d.differing, 0), skipped, sessionErrors,
      users: [...users.values()].sort((a, b) => a.user.localeCompare(b.user)),
      captureDropped: capture.meta?.dropped ?? 0,
    },
    statements,
  };
}

function query(sql: string): Buffer {
  return Buffer.concat([Buffer.from([COM_QUERY]), Buffer.from(sql, 'utf8')]);
}

/** Records by session, commands in their captured order; sessions outside the shard left out. */
function groupSessions(records: readonly TrafficRecord[], shard: ReplayOptions['shard']): CapturedSession[] {
  const byId = new Map<number, CapturedSession>();
  for (const r of records) {
    if (shard && r.s % shard.count !== shard.index) continue;
    let s = byId.get(r.s);
    if (!s) byId.set(r.s, (s = { id: r.s, boot: null, commands: [] }));
    if (r.t === 'boot') s.boot ??= r;
    else if (r.t === 'cmd') s.commands.push(r);
  }
  for (const s of byId.values()) s.commands.sort((a, b) => a.i - b.i);
  return [...byId.values()];
}
