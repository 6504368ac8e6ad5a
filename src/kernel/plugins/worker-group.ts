import type { WorkerGroup } from './plugin-definition.js';

/** Carries a question to every worker process and brings back their answers (see src/cli/workers/). */
export type AskAllTransport = (topic: string, timeoutMs: number, payload: unknown) => Promise<unknown[]>;

const DEFAULT_ASK_TIMEOUT_MS = 5000;

/**
 * This process's side of the WorkerGroup plugins see: the answers its plugins registered by topic,
 * and, in a worker of proxy.workers > 1, the transport that asks the others through the primary.
 */
export class WorkerGroupHost {
  private readonly answerers = new Map<string, (payload: unknown) => unknown>();
  /** Set by the worker process once it can talk to the primary; null in a single process. */
  transport: AskAllTransport | null = null;

  constructor(readonly id: number, readonly count: number) {}

  /** This process's answer to `topic` given the asker's `payload`; throws when no plugin answers it here. */
  async answerLocal(topic: string, payload?: unknown): Promise<unknown> {
    const fn = this.answerers.get(topic);
    if (!fn) throw new Error(`no plugin answers "${topic}" in this process`);
    return await fn(payload);
  }

  async askAll(topic: string, timeoutMs = DEFAULT_ASK_TIMEOUT_MS, payload?: unknown): Promise<unknown[]> {
    if (this.transport) return this.transport(topic, timeoutMs, payload);
    return this.answerers.has(topic) ? [await this.answerLocal(topic, payload)] : [];
  }

  /** The group as one plugin sees it; its answers are withdrawn when its generation is disposed. */
  forPlugin(onDispose: (fn: () => void) => void): WorkerGroup {
    return {
      id: this.id,
      count: this.count,
      answer: (topic, fn) => {
        this.answerers.set(topic, fn);
        onDispose(() => {
          if (this.answerers.get(topic) === fn) this.answerers.delete(topic);
        });
      },
      askAll: (topic, timeoutMs, payload) => this.askAll(topic, timeoutMs, payload),
    };
  }
}
