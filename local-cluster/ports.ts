// Free TCP ports on 127.0.0.1, asked from the kernel rather than guessed.
import { createServer } from 'node:net';

// Ports already handed out by this process: the kernel may offer a just-closed port again before the
// first caller's server has bound it (e.g. startMariaDBs asking for several at once).
const handedOut = new Set<number>();

function listenOnce(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('freePort: listener has no TCP address'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** A port that was free a moment ago and not returned before by this process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await listenOnce();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: kernel kept offering ports this process already handed out');
}
