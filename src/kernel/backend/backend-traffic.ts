import type { Socket } from 'node:net';

/**
 * Bytes between this process and one backend, from the sockets' own counters (read when a connection
 * closes, or when asked for the open ones): nothing is counted per packet.
 */
export class BackendTrafficCounter {
  private closedReceived = 0;
  private closedSent = 0;
  private readonly open = new Set<Socket>();

  /** Counts `socket` (the TCP socket: TLS bytes as on the wire) from now until it closes. */
  track(socket: Socket): void {
    this.open.add(socket);
    socket.once('close', () => {
      this.closedReceived += socket.bytesRead;
      this.closedSent += socket.bytesWritten;
      this.open.delete(socket);
    });
  }

  get received(): number {
    let n = this.closedReceived;
    for (const s of this.open) n += s.bytesRead;
    return n;
  }

  get sent(): number {
    let n = this.closedSent;
    for (const s of this.open) n += s.bytesWritten;
    return n;
  }
}
