/** The line a failed listen on the SQL address prints, whichever process tried (single, worker, primary). */
export function cannotListen(addr: string, err: NodeJS.ErrnoException): string {
  return `cannot listen on ${addr}: ${err.code === 'EADDRINUSE' ? 'address already in use' : err.message}`;
}
