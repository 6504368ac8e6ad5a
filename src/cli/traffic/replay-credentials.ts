import { readPrivateFile } from '../../kernel/config/private-file.js';

/**
 * `--credentials-file`: the password of each captured user, so every replayed session logs in as the
 * user it was captured as. One `user:password` per line; the user name ends at the first colon and the
 * rest of the line is the password, verbatim (colons and spaces included); empty lines and lines
 * starting with # are ignored. The file holds passwords: refused when group or others may read it.
 */
export function readCredentialsFile(path: string): Map<string, string> {
  const credentials = new Map<string, string>();
  const lines = readPrivateFile(path, '--credentials-file').split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    // The line is not echoed: it may hold a password.
    if (colon <= 0) throw new Error(`--credentials-file: ${path} line ${index + 1} is not user:password`);
    const user = line.slice(0, colon);
    if (credentials.has(user)) throw new Error(`--credentials-file: ${path} line ${index + 1} repeats user ${JSON.stringify(user)}`);
    credentials.set(user, line.slice(colon + 1));
  }
  return credentials;
}
