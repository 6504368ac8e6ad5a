// A tiny authoritative DNS server on 127.0.0.1 (UDP) whose answers tests set: A and SRV records,
// NXDOMAIN for unknown names, SERVFAIL on demand. Enough for node:dns Resolver.setServers().
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

export interface SrvAnswer {
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

export interface Zone {
  /** name (no trailing dot, lowercase) → IPv4 addresses */
  a?: Record<string, string[]>;
  srv?: Record<string, SrvAnswer[]>;
  /** names answered with SERVFAIL */
  fail?: string[];
}

export interface DnsServer {
  readonly port: number;
  /** "127.0.0.1:<port>", for a resolver's server list. */
  readonly server: string;
  set(zone: Zone): void;
  /** Queries answered so far, by "TYPE name". */
  queries(): string[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_SRV = 33;

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter((p) => p !== '');
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'ascii')])), Buffer.from([0])]);
}

/** Reads the question: name (no compression in queries), type, end offset. */
function readQuestion(msg: Buffer): { name: string; type: number; end: number } | undefined {
  let offset = 12;
  const labels: string[] = [];
  while (offset < msg.length) {
    const len = msg[offset]!;
    offset++;
    if (len === 0) break;
    labels.push(msg.subarray(offset, offset + len).toString('ascii'));
    offset += len;
  }
  if (offset + 4 > msg.length) return undefined;
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(offset), end: offset + 4 };
}

function answer(type: number, rdata: Buffer): Buffer {
  const rr = Buffer.alloc(12);
  rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
  rr.writeUInt16BE(type, 2);
  rr.writeUInt16BE(1, 4); // IN
  rr.writeUInt32BE(1, 6); // TTL 1 s
  rr.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([rr, rdata]);
}

export async function startDnsServer(initial: Zone = {}): Promise<DnsServer> {
  let zone = initial;
  const seen: string[] = [];
  const socket: Socket = createSocket('udp4');
  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    const q = readQuestion(msg);
    if (!q) return;
    seen.push(`${q.type === TYPE_SRV ? 'SRV' : q.type === TYPE_A ? 'A' : q.type} ${q.name}`);
    const answers: Buffer[] = [];
    let rcode = 0;
    const known = zone.a?.[q.name] !== undefined || zone.srv?.[q.name] !== undefined;
    if (zone.fail?.includes(q.name)) rcode = 2; // SERVFAIL
    else if (!known) rcode = 3; // NXDOMAIN
    else if (q.type === TYPE_A) {
      for (const ip of zone.a?.[q.name] ?? []) answers.push(answer(TYPE_A, Buffer.from(ip.split('.').map(Number))));
    } else if (q.type === TYPE_SRV) {
      for (const s of zone.srv?.[q.name] ?? []) {
        const head = Buffer.alloc(6);
        head.writeUInt16BE(s.priority ?? 0, 0);
        head.writeUInt16BE(s.weight ?? 0, 2);
        head.writeUInt16BE(s.port, 4);
        answers.push(answer(TYPE_SRV, Buffer.concat([head, encodeName(s.target)])));
      }
    }
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | rcode, 2); // QR, AA, RD echoed, rcode
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    socket.send(Buffer.concat([header, msg.subarray(12, q.end), ...answers]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  return {
    port,
    server: `127.0.0.1:${port}`,
    set: (z) => void (zone = z),
    queries: () => [...seen],
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
