import { deflateSync, inflateSync } from 'node:zlib';
import { COMPRESSED_HEADER_LENGTH, MAX_PACKET_PAYLOAD, MIN_COMPRESS_LENGTH } from './constants.js';
import { MalformedPacketError } from './payload-reader.js';

/**
 * The compressed protocol (CLIENT_COMPRESS, zlib) between a client and the proxy. The backend leg is
 * never compressed: on loopback or a LAN it only costs CPU, and it would hide packet boundaries from the
 * pump. Frames carry their own sequence, which restarts with each client command; the proxy's replies
 * continue from the client's last frame.
 */
export class CompressedFrameReader {
  private pending: Buffer | null = null;
  /** Sequence id of the last frame the client sent. */
  lastSeq = 0;

  /** Returns the decompressed packet bytes contained in complete frames of `chunk` (possibly empty). */
  read(chunk: Buffer, out: (packets: Buffer) => void): void {
    let buf = chunk;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let i = 0;
    while (buf.length - i >= COMPRESSED_HEADER_LENGTH) {
      const compressedLength = buf.readUIntLE(i, 3);
      const seq = buf[i + 3]!;
      const uncompressedLength = buf.readUIntLE(i + 4, 3);
      const end = i + COMPRESSED_HEADER_LENGTH + compressedLength;
      if (end > buf.length) break;
      const body = buf.subarray(i + COMPRESSED_HEADER_LENGTH, end);
      this.lastSeq = seq;
      if (uncompressedLength === 0) out(body);
      else {
        let inflated: Buffer;
        try {
          inflated = inflateSync(body);
        } catch (err) {
          throw new MalformedPacketError(`compressed frame does not inflate: ${(err as Error).message}`);
        }
        if (inflated.length !== uncompressedLength) {
          throw new MalformedPacketError(`compressed frame inflates to ${inflated.length} bytes, header says ${uncompressedLength}`);
        }
        out(inflated);
      }
      i = end;
    }
    if (i < buf.length) this.pending = Buffer.from(buf.subarray(i));
  }
}

/** Wraps outgoing packet bytes into compressed frames. */
export function compressFrames(packets: Buffer, firstSeq: number): { frames: Buffer[]; nextSeq: number } {
  const frames: Buffer[] = [];
  let seq = firstSeq;
  for (let off = 0; off < packets.length || (off === 0 && packets.length === 0); off += MAX_PACKET_PAYLOAD) {
    const piece = packets.subarray(off, Math.min(packets.length, off + MAX_PACKET_PAYLOAD));
    const header = Buffer.allocUnsafe(COMPRESSED_HEADER_LENGTH);
    let body = piece;
    let uncompressed = 0;
    if (piece.length >= MIN_COMPRESS_LENGTH) {
      const deflated = deflateSync(piece);
      if (deflated.length < piece.length) {
        body = deflated;
        uncompressed = piece.length;
      }
    }
    header.writeUIntLE(body.length, 0, 3);
    header[3] = seq & 0xff;
    header.writeUIntLE(uncompressed, 4, 3);
    seq = (seq + 1) & 0xff;
    frames.push(header, body);
    if (packets.length === 0) break;
  }
  return { frames, nextSeq: seq };
}
