/**
 * tiproxyctl's exit codes (docs/operations.md lists them): scripts branch on them, so each means one
 * thing.
 */
export const EXIT = {
  ok: 0,
  /** Bad command line: unknown command or option, bad value, missing argument. */
  usage: 1,
  /** No proxy (or etcd) could be reached. */
  unreachable: 2,
  /** A proxy refused: 4xx (no such backend or session, bad token, bad config, conflict). */
  refused: 3,
  /** `backends drain --wait` timed out with sessions left on the backend. */
  timeout: 4,
  /** A proxy failed to do it: 5xx (etcd could not be written, the change could not be applied). */
  failed: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure that ends tiproxyctl with `exitCode` after printing its message. */
export class CtlError extends Error {
  constructor(message: string, readonly exitCode: ExitCode) {
    super(message);
  }
}

/** The exit code for an HTTP status a proxy answered. */
export function exitCodeOfStatus(status: number): ExitCode {
  if (status < 400) return EXIT.ok;
  return status < 500 ? EXIT.refused : EXIT.failed;
}

/** The most serious of several outcomes (unreachable over refused over failed over ok). */
export function worstExit(codes: readonly ExitCode[]): ExitCode {
  const order: ExitCode[] = [EXIT.unreachable, EXIT.refused, EXIT.failed, EXIT.timeout, EXIT.usage];
  for (const code of order) if (codes.includes(code)) return code;
  return EXIT.ok;
}
