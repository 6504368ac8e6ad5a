import { CtlError, EXIT, exitCodeOfStatus } from './exit-codes.js';

/** One proxy's admin API, as tiproxyctl addresses it. */
export interface ProxyTarget {
  /** What the proxy column shows: its registered SQL address (--pd-addrs) or the API address (--api). */
  readonly name: string;
  /** "http://host:port" or "https://host:port". */
  readonly base: string;
}

export interface ApiAnswer {
  readonly status: number;
  /** Parsed JSON, or the text for other content types. */
  readonly body: unknown;
}

export interface RequestOptions {
  body?: string;
  contentType?: string;
  /** Statuses returned instead of thrown (e.g. 404 when asking every proxy for one session). */
  accept?: readonly number[];
}

/** Calls a proxy's admin API with Node's fetch; failures become CtlErrors with the matching exit code. */
export class ApiClient {
  constructor(readonly target: ProxyTarget, private readonly token: string, private readonly timeoutMs: number) {}

  async request(method: string, path: string, opts: RequestOptions = {}): Promise<ApiAnswer> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    if (opts.body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.target.base}${path}`, { method, headers, body: opts.body ?? null, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const detail = cause?.code ?? cause?.message ?? (err as Error).message;
      // fetch refuses ports browsers block (6000, 6665-6669, …) without trying.
      const why = (err as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs / 1000} s`
        : detail === 'bad port' ? 'Node\'s fetch refuses to connect to this port (a port browsers block): serve the API on another one' : detail;
      throw new CtlError(`proxy ${this.target.name}: cannot reach its API at ${this.target.base}: ${why}`, EXIT.unreachable);
    }
    const text = await response.text();
    let body: unknown = text;
    if ((response.headers.get('content-type') ?? '').includes('json')) {
      try {
        body = JSON.parse(text);
      } catch {
        // left as text
      }
    }
    if (response.status >= 400 && !(opts.accept ?? []).includes(response.status)) {
      const message = typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string' ? (body as { error: string }).error : text.slice(0, 300);
      throw new CtlError(`proxy ${this.target.name}: ${method} ${path} answered ${response.status}: ${message}`, exitCodeOfStatus(response.status));
    }
    return { status: response.status, body };
  }

  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    return (await this.request(method, path, opts)).body as T;
  }
}
