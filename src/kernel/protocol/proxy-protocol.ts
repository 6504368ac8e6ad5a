import { isIP, SocketAddress } from 'node:net';

/**
 * PROXY protocol v2 (the binary form HAProxy defines): a 16-byte header plus addresses, sent by a load
 * balancer before any other byte. Inbound it is detected by its 12-byte signature; outbound the proxy
 * sends it to backends so they see the real client address (MariaDB: proxy_protocol_networks).
 */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const PROXY_V2_HEADER_LENGTH = 16;
const CMD_LOCAL = 0x20;
const CMD_PROXY = 0x21;
const AF_INET_STREAM = 0x11;
const AF_INET6_STREAM = 0x21;
/** Address family and transport bytes the spec defines (UNSPEC, INET, INET6, UNIX × UNSPEC, STREAM, DGRAM). */
const KNOWN_FAMILIES = new Set([0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32]);
/** Address block sizes the spec gives each family: a PROXY command announcing fewer bytes is malformed. */
const MIN_ADDRESS_LENGTH = new Map([[0x11, 12], [0x12, 12], [0x21, 36], [0x22, 36], [0x31, 216], [0x32, 216]]);

export interface ProxiedAddress {
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
}

export type ProxyHeaderParse =
  | { kind: 'none' } // the stream does not start with the signature
  | { kind: 'incomplete' } // need more bytes to decide
  | { kind: 'header'; length: number; address: ProxiedAddress | null }; // null: LOCAL command or unknown family

export function parseProxyV2(buf: Buffer): ProxyHeaderParse {
  const cmp = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  if (buf.subarray(0, cmp).compare(PROXY_V2_SIGNATURE.subarray(0, cmp)) !== 0) return { kind: 'none' };
  // Each field is checked as soon as it has arrived: junk after the signature is refused at once
  // rather than waited on (up to 64 KiB of "address" a bogus length would announce).
  if (buf.length > 12) {
    const verCmd = buf[12]!;
    if ((verCmd & 0xf0) !== 0x20) throw new Error(`PROXY protocol: unsupported version ${verCmd >> 4}`);
    if (verCmd !== CMD_LOCAL && verCmd !== CMD_PROXY) throw new Error(`PROXY protocol: unsupported command ${verCmd & 0x0f}`);
  }
  if (buf.length > 13 && buf[12] === CMD_PROXY && !KNOWN_FAMILIES.has(buf[13]!)) {
    throw new Error(`PROXY protocol: unknown address family 0x${buf[13]!.toString(16)}`);
  }
  if (buf.length < PROXY_V2_HEADER_LENGTH) return { kind: 'incomplete' };
  const verCmd = buf[12]!;
  const family = buf[13]!;
  const addrLength = buf.readUInt16BE(14);
  if (verCmd === CMD_PROXY && addrLength < (MIN_ADDRESS_LENGTH.get(family) ?? 0)) {
    throw new Error(`PROXY protocol: ${addrLength} address bytes are too few for family 0x${family.toString(16)}`);
  }
  const length = PROXY_V2_HEADER_LENGTH + addrLength;
  if (buf.length < length) return { kind: 'incomplete' };
  if (verCmd === CMD_LOCAL) return { kind: 'header', length, address: null };
  const a = PROXY_V2_HEADER_LENGTH;
  if (family === AF_INET_STREAM && addrLength >= 12) {
    return {
      kind: 'header', length,
      address: {
        sourceAddress: Array.from(buf.subarray(a, a + 4)).join('.'),
        destinationAddress: Array.from(buf.subarray(a + 4, a + 8)).join('.'),
        sourcePort: buf.readUInt16BE(a + 8), destinationPort: buf.readUInt16BE(a + 10),
      },
    };
  }
  if (family === AF_INET6_STREAM && addrLength >= 36) {
    // Canonical text (2001:db8::1, ::ffff:10.1.2.3), the form Node gives socket.remoteAddress.
    const v6 = (off: number) => new SocketAddress({
      family: 'ipv6', address: Array.from({ length: 8 }, (_, k) => buf.readUInt16BE(off + k * 2).toString(16)).join(':'),
    }).address;
    return {
      kind: 'header', length,
      address: { sourceAddress: v6(a), destinationAddress: v6(a + 16), sourcePort: buf.readUInt16BE(a + 32), destinationPort: buf.readUInt16BE(a + 34) },
    };
  }
  return { kind: 'header', length, address: null };
}

function ipv4Bytes(ip: string): number[] {
  return ip.split('.').map((p) => Number(p));
}

function ipv6Bytes(ip: string): number[] {
  // A dotted IPv4 tail (::ffff:10.1.2.3) stands for the last two groups.
  const lastColon = ip.lastIndexOf(':');
  if (ip.includes('.', lastColon)) {
    const [a = 0, b = 0, c = 0, d = 0] = ipv4Bytes(ip.slice(lastColon + 1));
    ip = `${ip.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, ''];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const v = parseInt(g, 16);
    return [v >> 8, v & 0xff];
  });
}

/** Builds a v2 header for a TCP connection from `source` to `destination`. */
export function buildProxyV2(address: ProxiedAddress): Buffer {
  const strip = (ip: string) => (ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip);
  const src = strip(address.sourceAddress);
  const dst = strip(address.destinationAddress);
  const v4 = isIP(src) === 4 && isIP(dst) === 4;
  const body = v4
    ? [...ipv4Bytes(src), ...ipv4Bytes(dst)]
    : [...ipv6Bytes(isIP(src) === 4 ? `::ffff:${src}` : src), ...ipv6Bytes(isIP(dst) === 4 ? `::ffff:${dst}` : dst)];
  const out = Buffer.alloc(PROXY_V2_HEADER_LENGTH + body.length + 4);
  PROXY_V2_SIGNATURE.copy(out, 0);
  out[12] = CMD_PROXY;
  out[13] = v4 ? AF_INET_STREAM : AF_INET6_STREAM;
  out.writeUInt16BE(body.length + 4, 14);
  Buffer.from(body).copy(out, PROXY_V2_HEADER_LENGTH);
  out.writeUInt16BE(address.sourcePort, PROXY_V2_HEADER_LENGTH + body.length);
  out.writeUInt16BE(address.destinationPort, PROXY_V2_HEADER_LENGTH + body.length + 2);
  return out;
}
