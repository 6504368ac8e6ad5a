import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { CompressedFrameReader, compressFrames } from '../protocol/compression.js';
import { framePackets } from '../protocol/payload-writer.js';
import { parseProxyV2 } from '../protocol/proxy-protocol.js';

/**
 * The client's side of a session: the socket (plain, then maybe TLS), the optional inbound PROXY v2
 * header, and the compressed protocol. Everything the client sends reaches `sink` as plain packet
 * bytes; everything written goes out compressed when the client asked for it.
 */
export class ClientConnection {
  socket: Socket | TLSSocket;
  remoteAddress: string;
  remotePort: number;
  tls = false;
  tlsCipher = '';
  private compressed = false;
  private readonly frames = new CompressedFrameReader();
  private compressSeq = 0;
  private proxyHeaderPending: boolean;
  private proxyBytes: Buffer | null = null;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);
  /** Where the client's (decompressed) bytes go. */
  sink: (bytes: Buffer) => void = () => {};
  /** The client stream is unreadable (bad PROXY header, bad compressed frame). */
  onProtocolError: (err: Error) => void = () => {};

  constructor(private readonly accepted: Socket, acceptProxyProtocol: boolean) {
    const socket = accepted;
    this.socket = socket;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    this.proxyHeaderPending = acceptProxyProtocol;
    socket.setNoDelay(true);
    socket.on('data', this.onData);
  }

  /**
   * The proxy's own address of this connection, read on first use: it costs a getsockname() system
   * call, and most sessions never need it (only a PROXY v2 header to the backend or a connect tap does).
   */
  get localAddress(): string {
    return (this.local ??= this.readLocal()).address;
  }

  get localPort(): number {
    return (this.local ??= this.readLocal()).port;
  }

  private local: { address: string; port: number } | null = null;

  private readLocal(): { address: string; port: number } {
    // The accepted socket, not a TLSSocket over it: that is where the address lives.
    const s = this.accepted;
    return { address: s.localAddress ?? '', port: s.localPort ?? 0 };
  }

  private receive(chunk: Buffer): void {
    if (this.proxyHeaderPending) {
      const bytes: Buffer = this.proxyBytes ? Buffer.concat([this.proxyBytes, chunk]) : chunk;
      let parsed;
      try {
        parsed = parseProxyV2(bytes);
      } catch (err) {
        this.onProtocolError(err as Error);
        return;
      }
      if (parsed.kind === 'incomplete') {
        this.proxyBytes = bytes;
        return;
      }
      this.proxyHeaderPending = false;
      this.proxyBytes = null;
      if (parsed.kind === 'header') {
        if (parsed.address) {
          this.remoteAddress = parsed.address.sourceAddress;
          this.remotePort = parsed.address.sourcePort;
        }
        chunk = bytes.subarray(parsed.length);
        if (chunk.length === 0) return;
      } else chunk = bytes;
    }
    if (!this.compressed) {
      this.sink(chunk);
      return;
    }
    try {
      this.frames.read(chunk, this.sink);
      this.compressSeq = (this.frames.lastSeq + 1) & 0xff;
    } catch (err) {
      this.onProtocolError(err as Error);
    }
  }

  /**
   * Starts TLS as the server on the same socket (after the client's SSLRequest). `early` is what the
   * client sent right behind the SSLRequest (usually its TLS ClientHello, often in the same TCP read):
   * it goes back into the socket so the TLS layer reads it first.
   */
  async startTls(context: SecureContext, requestCert: boolean, timeoutMs: number, early: Buffer = Buffer.alloc(0)): Promise<void> {
    const raw = this.socket;
    raw.off('data', this.onData);
    if (early.length > 0) {
      // Paused, so the bytes stay buffered until the TLSSocket reads them (an unread flowing stream would drop them).
      raw.pause();
      raw.unshift(early);
    }
    const secure = new TLSSocket(raw, { isServer: true, secureContext: context, requestCert, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`TLS handshake timed out after ${timeoutMs} ms`)), timeoutMs);
      secure.once('secure', () => {
        clearTimeout(timer);
        resolve();
      });
      secure.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    secure.on('data', this.onData);
    this.socket = secure;
    this.tls = true;
    this.tlsCipher = secure.getCipher()?.name ?? '';
  }

  /** From the next byte on, both directions use the compressed protocol. */
  enableCompression(): void {
    this.compressed = true;
  }

  get isCompressed(): boolean {
    return this.compressed;
  }

  /** Writes raw packet bytes; false when the socket buffer is full (the caller should pause its source). */
  write(bytes: Buffer): boolean {
    if (!this.compressed) return this.socket.write(bytes);
    const { frames, nextSeq } = compressFrames(bytes, this.compressSeq);
    this.compressSeq = nextSeq;
    let ok = true;
    this.socket.cork(); // header and body of each frame leave in one write
    for (const f of frames) ok = this.socket.write(f) && ok;
    this.socket.uncork();
    return ok;
  }

  writePacket(payload: Buffer, seq: number): boolean {
    return this.write(framePackets(payload, seq).packet);
  }

  get writable(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Flushes what was written, then closes; destroys if the client does not go away in time. */
  end(): void {
    if (this.socket.destroyed) return;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
