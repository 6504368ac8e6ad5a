// A mutating relay between the proxy and a real MariaDB: the proxy dials it as its backend, it dials
// MariaDB, and it corrupts what MariaDB sends back — structure-aware, packet by packet: bits flipped,
// packets cut short, absurd lengths and column counts claimed, OK/EOF/ERR/LOCAL INFILE put where they
// don't belong, packets dropped, duplicated or given the wrong sequence id, the connection closed.
// Which connection gets which corruption comes from the client: a connection attribute `fuzz_case`
// (forwarded by the proxy in its HandshakeResponse) seeds the mutations, so a case replays exactly.
// Connections without one (health checks, the greeting probe) pass untouched. The greeting itself is
// never touched: mutations start with the first packet after the proxy's HandshakeResponse.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { parseHandshakeResponse } from '../../src/kernel/protocol/handshake-packets.js';
import { FuzzRandom } from './fuzz-random.js';

/** Connection attribute naming the case seed that drives a connection's mutations. */
export const FUZZ_CASE_ATTRIBUTE = 'fuzz_case';

const MUTATIONS = ['flip-bits', 'first-byte', 'absurd-length', 'truncate-and-close', 'column-count', 'inject-terminator', 'wrong-seq', 'drop',
  'duplicate', 'close'] as const;
export type Mutation = (typeof MUTATIONS)[number];

export class MutatingRelay {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  /** Open relayed connections: their case seed and the mutations applied so far (to tell what a leak was doing). */
  private readonly live = new Map<Socket, { seed: string; mutations: Mutation[] }>();
  /** Relayed connections so far, those with a fuzz case, and mutations applied by kind. */
  readonly stats = { connections: 0, fuzzed: 0, mutations: {} as Record<string, number> };

  constructor(private readonly upstream: { host: string; port: number }) {}

  /** Listens on a free 127.0.0.1 port; resolves with it. */
  async listen(): Promise<number> {
    const server = createServer((socket) => this.relay(socket));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as { port: number }).port;
  }

  /** Connections (both legs) still open. */
  get openSockets(): number {
    return this.sockets.size;
  }

  /** The fuzzed connections still open, with their case seed and mutations. */
  openConnections(): Array<{ seed: string; mutations: Mutation[] }> {
    return [...this.live.values()];
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private relay(down: Socket): void {
    this.stats.connections++;
    const up = connect(this.upstream);
    this.sockets.add(down);
    this.sockets.add(up);
    const end = (): void => {
      down.destroy();
      up.destroy();
    };
    for (const s of [down, up]) {
      s.setNoDelay(true);
      s.on('error', end);
      s.on('close', () => {
        this.sockets.delete(s);
        this.live.delete(down);
        end();
      });
    }
    let rng: FuzzRandom | null = null;
    let rate = 0;
    const applied: Mutation[] = [];
    let firstPacket: Buffer | null = Buffer.alloc(0);
    down.on('data', (chunk: Buffer) => {
      up.write(chunk);
      if (firstPacket === null) return;
      // The proxy's HandshakeResponse: does it carry a fuzz case?
      firstPacket = Buffer.concat([firstPacket, chunk]);
      if (firstPacket.length < 4 || firstPacket.length < 4 + firstPacket.readUIntLE(0, 3)) return;
      try {
        const seed = parseHandshakeResponse(firstPacket.subarray(4, 4 + firstPacket.readUIntLE(0, 3))).attributes.find(([k]) => k === FUZZ_CASE_ATTRIBUTE)?.[1];
        if (seed !== undefined) {
          rng = new FuzzRandom(Number(seed) ^ 0x5bd1e995);
          rate = rng.pick([0.02, 0.1, 0.3, 1]);
          this.stats.fuzzed++;
          if (!down.destroyed) this.live.set(down, { seed, mutations: applied });
        }
      } catch {
        // not a HandshakeResponse (an SSLRequest, junk): passed untouched
      }
      firstPacket = null;
    });
    let pending: Buffer = Buffer.alloc(0);
    up.on('data', (chunk: Buffer) => {
      if (!rng) {
        down.write(chunk);
        return;
      }
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      const out: Buffer[] = [];
      while (pending.length >= 4) {
        const length = pending.readUIntLE(0, 3);
        if (pending.length < 4 + length) break;
        const packet = pending.subarray(0, 4 + length);
        pending = pending.subarray(4 + length);
        if (!rng.chance(rate)) {
          out.push(packet);
          continue;
        }
        const mutation = rng.pick(MUTATIONS);
        this.stats.mutations[mutation] = (this.stats.mutations[mutation] ?? 0) + 1;
        applied.push(mutation);
        const kept = mutate(rng, mutation, Buffer.from(packet));
        out.push(...kept.packets);
        if (kept.close) {
          down.end(Buffer.concat(out));
          up.destroy();
          return;
        }
      }
      if (out.length > 0) down.write(Buffer.concat(out));
    });
  }
}

function header(length: number, seq: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(length, 0, 3);
  h[3] = seq;
  return h;
}

/** What goes to the proxy instead of `packet` (header included), and whether the connection then closes. */
function mutate(rng: FuzzRandom, mutation: Mutation, packet: Buffer): { packets: Buffer[]; close: boolean } {
  const seq = packet[3]!;
  const payloadLength = packet.length - 4;
  switch (mutation) {
    case 'flip-bits':
      for (let i = rng.int(1, 3); i > 0 && payloadLength > 0; i--) packet[4 + rng.int(0, payloadLength - 1)]! ^= 1 << rng.int(0, 7);
      return { packets: [packet], close: false };
    case 'first-byte':
      if (payloadLength > 0) packet[4] = rng.pick([0x00, 0xfe, 0xff, 0xfb, 0x01]);
      return { packets: [packet], close: false };
    case 'absurd-length':
      // The stream is out of step from here: the proxy must not wait on it forever once the client leaves.
      packet.writeUIntLE(rng.pick([0xffffff, 0xfffffe, payloadLength + rng.int(1, 1000), Math.max(0, payloadLength - rng.int(1, 10))]), 0, 3);
      return { packets: [packet], close: false };
    case 'truncate-and-close':
      return { packets: [packet.subarray(0, rng.int(0, packet.length - 1))], close: true };
    case 'column-count': {
      // A result set claiming 2^63 columns, 16 million, or a NULL column count.
      const count = rng.pick([[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], [0xfd, 0xff, 0xff, 0xff], [0xfc, 0xff, 0xff], [0xfb]]);
      return { packets: [Buffer.concat([header(count.length, seq), Buffer.from(count)])], close: false };
    }
    case 'inject-terminator': {
      const terminators = [
        Buffer.from([0xfe, 0, 0, 0x02, 0]), // EOF
        Buffer.from([0x00, 0, 0, 0x0a, 0, 0, 0]), // OK with MORE_RESULTS
        Buffer.from([0xfe, 0, 0, 0x02, 0, 0, 0]), // OK-as-EOF (DEPRECATE_EOF)
        Buffer.concat([Buffer.from([0xff, 0x28, 0x04]), Buffer.from('#HY000injected error')]), // ERR
      ];
      const extra = rng.pick(terminators);
      return { packets: [Buffer.concat([header(extra.length, seq), extra]), ...(rng.chance(0.5) ? [packet] : [])], close: false };
    }
    case 'wrong-seq':
      packet[3] = (seq + rng.int(1, 255)) & 0xff;
      return { packets: [packet], close: false };
    case 'drop':
      return { packets: [], close: false };
    case 'duplicate':
      return { packets: [packet, packet], close: false };
    case 'close':
      return { packets: [], close: true };
  }
}
