// Where a churned connection's main-thread CPU goes, by login stage, from a V8 .cpuprofile of tiproxy
// under connect → SELECT 1 → quit loops (bench/profile.ts --workload churn prints it). Each sample is
// charged to the innermost tiproxy function on its stack that names a stage (an async function resumed
// after an await shows up under its own name, so its continuation is charged to it too); samples with
// none are charged by the Node frame they run under (accept, socket set-up, reads, teardown). Within a
// stage, self time in tiproxy's own code (src/) is told apart from Node, V8 and system calls.

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Stage rules, innermost first wins: [stage, file pattern, function names]. */
const OUR_STAGES: ReadonlyArray<readonly [string, RegExp, ReadonlySet<string>]> = [
  ['backend selection (selectBackend taps)', /\/kernel\/session\/backend-link\.ts$/, new Set(['select', 'selectMigrationTarget'])],
  ['backend selection (selectBackend taps)', /\/plugins\/balance\//, new Set<string>()],
  ['dial + backend greeting', /\/kernel\/session\/backend-link\.ts$/, new Set(['dial', 'connect'])],
  ['dial + backend greeting', /\/kernel\/session\/backend-connection\.ts$/, new Set(['dial'])],
  ['backend login (auth relay)', /\/kernel\/session\/(backend-link|auth-relay|backend-login)\.ts$/, new Set(['login', 'relayAuthentication', 'write', 'relayOptions', 'capabilitiesFor', 'extendedCapabilitiesFor'])],
  ['client greeting + handshake parse + onHandshake', /\/kernel\/session\/client-login\.ts$/, new Set<string>()],
  ['session start (OK parsed, attach, registration)', /\/kernel\/session\/session\.ts$/, new Set(['loginBackend'])],
  ['connect hook + handshake timer', /\/kernel\/session\/session\.ts$/, new Set(['run'])],
  ['close (session, kernel bookkeeping, close taps)', /\/kernel\/session\/session\.ts$/, new Set(['close', 'fail', 'onClientClose', 'onClientError'])],
  ['close (session, kernel bookkeeping, close taps)', /\/kernel\/kernel\.ts$/, new Set(['sessionClosed'])],
  ['commands: SELECT 1 and COM_QUIT through the pump', /\/kernel\/(session\/command-pump|session\/command-bookkeeping|session\/command-taps|session\/intercepted|session\/kill|session\/observed|protocol\/response-tracker|protocol\/command-reader)/, new Set(['onBackendData', 'forward', 'feed', 'scan', 'onCommand', 'onResult', 'commandStarted', 'responseEnded'])],
  ['accept + session objects', /\/kernel\/kernel\.ts$/, new Set(['accept'])],
  ['accept + session objects', /\/kernel\/session\/session\.ts$/, new Set(['Session'])],
];

/**
 * tiproxy's I/O helpers (client socket, packet queues and channels, the pump's byte entry point): not a
 * stage themselves — a write is charged to the stage that made it — but a read the socket delivered
 * (no stage frame above) is charged here.
 */
const OUR_IO = /\/kernel\/(net\/packet-|session\/client-connection|session\/command-pump|protocol\/payload-)/;
const OUR_IO_STAGE = 'socket reads into our queues (login packets, command bytes)';

/** Node frames (no tiproxy frame above them). */
const NODE_STAGES: ReadonlyArray<readonly [string, (url: string, name: string) => boolean]> = [
  // Node defers the connect() of net.connect to the next tick: no frame of ours above it.
  ['Node: connect() system call of the backend dial', (u, n) => u === 'node:net' && n === 'internalConnect'],
  ['Node: accept (socket objects for accepted connections)', (u, n) => u === 'node:net' && n === 'onconnection'],
  ['Node: outgoing connect completion', (u, n) => u === 'node:net' && n === 'afterConnect'],
  ['Node: socket reads without a listener of ours on the stack', (u, n) => u === 'node:internal/stream_base_commons' && n === 'onStreamRead'],
  ['Node: socket teardown (end, close, destroy)', (u, n) => /node:(net|internal\/streams\/destroy|internal\/streams\/end-of-stream)/.test(u) && /destroy|close|Close|onReadableStreamEnd|_final|emitCloseNT|finish/.test(n)],
  ['Node: timers (setTimeout callbacks)', (u, n) => u === 'node:internal/timers' && n === 'listOnTimeout'],
];

const OURS = /\/(src|dist)\/(kernel|plugins)\//;
const STARTUP = /^node:internal\/modules\/|\/node_modules\/tsx\//;

/** Stages given by a frame's position rather than by the work it does: an inner stage frame overrides them. */
const isFallback = (stage: string): boolean => stage === OUR_IO_STAGE || stage.startsWith('Node:');

export interface StageRow {
  stage: string;
  samples: number;
  ourSelf: number;
}

export interface StageBreakdown {
  rows: StageRow[];
  /** Samples in the load window (busy: not idle). */
  busy: number;
  /** Microseconds per sample (mean sampling interval). */
  usPerSample: number;
}

/**
 * Charges every busy sample between the first and the last one inside a tiproxy stage (start-up and
 * shutdown are outside) to a stage.
 */
export function stageBreakdown(profile: CpuProfile): StageBreakdown {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stageOf = new Map<number, string>();
  // Module loading (start-up, and modules loaded on first use) is not a connection's cost: a frame under it is excluded whatever it is.
  const startupOf = new Map<number, boolean>();
  const startup = (id: number): boolean => {
    let known = startupOf.get(id);
    if (known === undefined) {
      const up = parent.get(id);
      known = STARTUP.test(byId.get(id)!.callFrame.url) || (up !== undefined && startup(up));
      startupOf.set(id, known);
    }
    return known;
  };
  const classify = (id: number): string => {
    const known = stageOf.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id)!;
    const { url, functionName: name } = node.callFrame;
    let stage: string | null = null;
    if (startup(id)) stage = '(start-up)';
    else if (name === '(idle)') stage = '(idle)';
    else if (name === '(garbage collector)') stage = 'V8 garbage collector';
    else if (name === '(program)') stage = 'V8/Node native, no JS stack ((program))';
    else {
      for (const [s, file, names] of OUR_STAGES) {
        if (file.test(url) && (names.size === 0 || names.has(name))) {
          stage = s;
          break;
        }
      }
      if (stage === null) {
        const up = parent.get(id);
        const above = up === undefined ? null : classify(up);
        if (above !== null && above !== '(none)' && !isFallback(above)) stage = above;
        else if (OURS.test(url) && OUR_IO.test(url)) stage = OUR_IO_STAGE;
        else stage = NODE_STAGES.find(([, test]) => test(url, name))?.[0] ?? above;
      }
    }
    const result = stage ?? '(none)';
    stageOf.set(id, result);
    return result;
  };
  // The load window: from the first sample in a tiproxy stage to the last.
  const inStage = (id: number): boolean => {
    const s = classify(id);
    return !s.startsWith('(') && !s.startsWith('V8') && !s.startsWith('Node');
  };
  const first = profile.samples.findIndex(inStage);
  let last = profile.samples.length - 1;
  while (last > first && !inStage(profile.samples[last]!)) last--;
  const rows = new Map<string, StageRow>();
  let busy = 0;
  let us = 0;
  for (let i = Math.max(first, 0); i <= last; i++) {
    const id = profile.samples[i]!;
    us += profile.timeDeltas[i] ?? 0;
    const stage = classify(id);
    if (stage === '(idle)' || stage === '(start-up)') continue;
    busy++;
    const name = stage === '(none)' ? 'other Node/V8 (no stage frame on the stack)' : stage;
    let row = rows.get(name);
    if (!row) rows.set(name, (row = { stage: name, samples: 0, ourSelf: 0 }));
    row.samples++;
    if (OURS.test(byId.get(id)!.callFrame.url)) row.ourSelf++;
  }
  const span = last - Math.max(first, 0) + 1;
  return { rows: [...rows.values()].sort((a, b) => b.samples - a.samples), busy, usPerSample: span > 0 ? us / span : 0 };
}

/** Markdown: per stage, µs of main-thread CPU per connection and the share of it in tiproxy's own code. */
export function stageTable(b: StageBreakdown, connections: number): string {
  const perConn = (samples: number): string => ((samples * b.usPerSample) / connections).toFixed(0);
  const lines = ['| stage | µs per connection | share of busy | of which tiproxy code (self) |', '|---|---|---|---|'];
  for (const r of b.rows) {
    lines.push(`| ${r.stage} | ${perConn(r.samples)} | ${((100 * r.samples) / b.busy).toFixed(1)}% | ${r.samples ? ((100 * r.ourSelf) / r.samples).toFixed(0) : 0}% |`);
  }
  const ours = b.rows.reduce((n, r) => n + r.ourSelf, 0);
  lines.push(`| **total** | ${perConn(b.busy)} | 100% | ${((100 * ours) / b.busy).toFixed(0)}% |`);
  return lines.join('\n');
}
