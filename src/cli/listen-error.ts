import { createServer } from 'node:net';

/** The line a failed listen on the SQL address prints, whichever process tried (single, worker, primary). */
export function cannotListen(addr: string, err: NodeJS.ErrnoException): string {
  return `cannot listen on ${addr}: ${err.code === 'EADDRINUSE' ? 'address already in use' : err.message}`;
}

/**
 * Checks that `addr` can be listened on, before anything else starts (plugins log as they apply), so
 * a port in use is the one line the operator sees. A port taken in the short gap after this check is
 * still reported by the real listen.
 */
export async function preflightListen(addr: string, host: string, port: number, key: string): Promise<string | null> {
  if (port === 0) return null;
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, resolve);
    });
  } catch (err) {
    const line = cannotListen(addr, err as NodeJS.ErrnoException);
    return key === 'proxy.addr' ? line : line.replace(`cannot listen on ${addr}`, `cannot listen on ${addr} (${key})`);
  }
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return null;
}
