import { MAX_PACKET_PAYLOAD, PACKET_HEADER_LENGTH } from './constants.js';
import { framePackets } from './payload-writer.js';

/**
 * Reads the client's byte stream in command phase. Packets are forwarded to the backend as the raw
 * bytes they arrived in (whole chunks when nothing in them needs the proxy's attention); a command the
 * owner wants to inspect — because a plugin tapped it, or the kernel must rewrite or answer it — is
 * captured whole and handed over instead of forwarded.
 */

/** First payload bytes shown to the owner to decide about a command. */
export const COMMAND_PREFIX_LENGTH = 64;

/**
 * onInterceptedCommand's "send it on unchanged": the reader forwards the packet's original bytes (no
 * copy when the packet sat in one chunk). The owner has done its bookkeeping (and may have rewritten
 * bytes of `payload` in place).
 */
export const PASS_THROUGH = 2;
export const FORWARD = 0;
export const INTERCEPT = 1;
export type CommandAction = typeof FORWARD | typeof INTERCEPT;

export interface CommandOwner {
  /**
   * A command packet starts: `buf[off .. off+avail)` are its first payload bytes (command byte first),
   * `length` its payload length. FORWARD lets it through (the owner records what response to expect);
   * INTERCEPT captures it for onInterceptedCommand.
   */
  commandAction(buf: Buffer, off: number, avail: number, length: number): CommandAction;
  /**
   * The whole payload of an intercepted command. Return false to pause reading until resume() — the
   * owner handles it asynchronously; bytes that arrive meanwhile are kept in order.
   */
  onInterceptedCommand(payload: Buffer, seq: number): boolean | typeof PASS_THROUGH;
  /** Raw bytes to pass to the backend. */
  forward(bytes: Buffer): void;
  /** The empty packet that ends a LOCAL INFILE upload went by. */
  onUploadFinished(): void;
}

export class CommandReader {
  /** A packet header (plus command prefix) split across chunks, kept until the rest arrives. */
  private carry: Buffer | null = null;
  private inPayload = false;
  private remaining = 0;
  private nextIsContinuation = false;
  private capturing = false;
  private captureParts: Buffer[] = [];
  private captureSeq = 0;
  /** Offset of the captured packet's header in the current chunk; -1 when it began in an earlier chunk. */
  private captureStart = -1;
  private uploadEndsWithThisPacket = false;
  private paused = false;
  private backlog: Buffer[] = [];

  /** Set while the client uploads a LOCAL INFILE: its packets are data, not commands. */
  uploading = false;

  constructor(private readonly owner: CommandOwner) {}

  get isPaused(): boolean {
    return this.paused;
  }

  /** True when no command packet is partially read (a safe point for the client side). */
  get atPacketBoundary(): boolean {
    return !this.inPayload && this.carry === null && !this.paused;
  }

  feed(chunk: Buffer): void {
    if (this.paused) {
      this.backlog.push(chunk);
      return;
    }
    this.scan(chunk);
  }

  /** Continues after an intercepted command was handled asynchronously. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    while (!this.paused && this.backlog.length > 0) this.scan(this.backlog.shift()!);
  }

  private scan(input: Buffer): void {
    let chunk = input;
    if (this.carry !== null) {
      chunk = Buffer.concat([this.carry, input]);
      this.carry = null;
    }
    const n = chunk.length;
    let i = 0;
    let forwardFrom = 0;
    if (this.capturing) this.captureStart = -1;
    while (i < n) {
      if (!this.inPayload) {
        if (n - i < PACKET_HEADER_LENGTH) return this.stash(chunk, forwardFrom, i);
        const length = chunk[i]! | (chunk[i + 1]! << 8) | (chunk[i + 2]! << 16);
        const continuation = this.nextIsContinuation;
        if (continuation) {
          // Part of a large packet: follows its first packet's fate (captured or forwarded).
        } else if (this.uploading) {
          if (length === 0) this.uploadEndsWithThisPacket = true;
        } else {
          const want = Math.min(length, COMMAND_PREFIX_LENGTH);
          if (n - i - PACKET_HEADER_LENGTH < want) return this.stash(chunk, forwardFrom, i);
          const action = length === 0 ? FORWARD : this.owner.commandAction(chunk, i + PACKET_HEADER_LENGTH, want, length);
          if (action === INTERCEPT) {
            this.capturing = true;
            this.captureParts = [];
            this.captureSeq = chunk[i + 3]!;
            this.captureStart = i;
          }
        }
        this.nextIsContinuation = length === MAX_PACKET_PAYLOAD;
        i += PACKET_HEADER_LENGTH;
        this.remaining = length;
        this.inPayload = true;
      }
      const take = Math.min(this.remaining, n - i);
      if (this.capturing && take > 0) this.captureParts.push(chunk.subarray(i, i + take));
      i += take;
      this.remaining -= take;
      if (this.remaining > 0) break;
      this.inPayload = false;
      if (this.uploadEndsWithThisPacket) {
        this.uploadEndsWithThisPacket = false;
        this.uploading = false;
        if (i > forwardFrom) this.owner.forward(chunk.subarray(forwardFrom, i));
        forwardFrom = i;
        this.owner.onUploadFinished();
        continue;
      }
      if (this.capturing) {
        if (this.nextIsContinuation) continue;
        this.capturing = false;
        const parts = this.captureParts;
        this.captureParts = [];
        const payload = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
        const inThisChunk = this.captureStart !== -1 && parts.length === 1;
        // Commands before this one reach the backend first, whatever the owner does with it.
        if (this.captureStart !== -1) {
          if (this.captureStart > forwardFrom) this.owner.forward(chunk.subarray(forwardFrom, this.captureStart));
          forwardFrom = this.captureStart;
        }
        const verdict = this.owner.onInterceptedCommand(payload, this.captureSeq);
        // Passed through and wholly in this chunk: its original bytes stay in the forward range.
        if (verdict === PASS_THROUGH && inThisChunk) continue;
        forwardFrom = i;
        if (verdict === PASS_THROUGH) this.owner.forward(framePackets(payload, this.captureSeq).packet);
        else if (!verdict) {
          this.paused = true;
          if (i < n) this.backlog.unshift(chunk.subarray(i));
          return;
        }
      }
    }
    if (this.capturing) {
      // The captured packet continues in the next chunk: send what came before it, hold the rest.
      if (this.captureStart > forwardFrom) this.owner.forward(chunk.subarray(forwardFrom, this.captureStart));
      return;
    }
    if (forwardFrom === 0) this.owner.forward(chunk);
    else if (n > forwardFrom) this.owner.forward(chunk.subarray(forwardFrom, n));
  }

  /** Keeps an incomplete header/prefix for the next chunk, forwarding what came before it (never captured bytes). */
  private stash(chunk: Buffer, forwardFrom: number, at: number): void {
    const end = !this.capturing ? at : this.captureStart === -1 ? forwardFrom : this.captureStart;
    if (end > forwardFrom) this.owner.forward(chunk.subarray(forwardFrom, end));
    this.carry = Buffer.from(chunk.subarray(at));
  }
}
