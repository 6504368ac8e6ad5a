/**
 * Questions plugins ask every worker (WorkerGroup.askAll, e.g. a metrics scrape summed over workers).
 * A worker sends `ask` to the primary; the primary puts the `question` to every ready worker (the asker
 * included), collects their `answer`s until all answered or the asker's timeout, and sends the asker
 * the `answers`. Workers that die meanwhile, or have no answer, are left out.
 */
import type { WorkerGroupHost } from '../../kernel/plugins/worker-group.js';
import type { PrimaryMessage, WorkerMessage } from './messages.js';

interface OpenQuestion {
  asker: number;
  askId: number;
  waiting: Set<number>;
  values: unknown[];
  timer: NodeJS.Timeout;
}

/** The primary's side: relays questions between workers. */
export class QuestionRelay {
  private nextId = 1;
  private readonly open = new Map<number, OpenQuestion>();

  constructor(private readonly send: (workerId: number, message: PrimaryMessage) => void) {}

  ask(asker: number, message: Extract<WorkerMessage, { type: 'ask' }>, readyWorkers: readonly number[]): void {
    const id = this.nextId++;
    const question: OpenQuestion = {
      asker, askId: message.id, waiting: new Set(readyWorkers), values: [],
      timer: setTimeout(() => this.finish(id), message.timeoutMs),
    };
    question.timer.unref();
    this.open.set(id, question);
    if (question.waiting.size === 0) return this.finish(id);
    for (const worker of readyWorkers) this.send(worker, { type: 'question', id, topic: message.topic, payload: message.payload });
  }

  answer(worker: number, message: Extract<WorkerMessage, { type: 'answer' }>): void {
    const question = this.open.get(message.id);
    if (!question || !question.waiting.delete(worker)) return;
    if (message.error === undefined) question.values.push(message.value);
    if (question.waiting.size === 0) this.finish(message.id);
  }

  /** A worker exited: nobody waits for its answers any more. */
  workerGone(worker: number): void {
    for (const [id, question] of this.open) {
      if (question.asker === worker) {
        clearTimeout(question.timer);
        this.open.delete(id);
      } else if (question.waiting.delete(worker) && question.waiting.size === 0) this.finish(id);
    }
  }

  private finish(id: number): void {
    const question = this.open.get(id);
    if (!question) return;
    clearTimeout(question.timer);
    this.open.delete(id);
    this.send(question.asker, { type: 'answers', id: question.askId, values: question.values });
  }
}

/** The worker's side: its plugins' askAll goes through the primary, and it answers the primary's questions. */
export class WorkerQuestions {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (values: unknown[]) => void; timer: NodeJS.Timeout }>();

  constructor(private readonly group: WorkerGroupHost, private readonly send: (message: WorkerMessage) => void) {
    group.transport = (topic, timeoutMs, payload) => this.askAll(topic, timeoutMs, payload);
  }

  private askAll(topic: string, timeoutMs: number, payload: unknown): Promise<unknown[]> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      // The primary answers by the timeout; this one only covers a primary that is gone.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve([]);
      }, timeoutMs + 1000);
      timer.unref();
      this.pending.set(id, { resolve, timer });
      this.send({ type: 'ask', id, topic, timeoutMs, payload });
    });
  }

  onAnswers(message: Extract<PrimaryMessage, { type: 'answers' }>): void {
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    clearTimeout(waiter.timer);
    this.pending.delete(message.id);
    waiter.resolve(message.values);
  }

  onQuestion(message: Extract<PrimaryMessage, { type: 'question' }>): void {
    this.group.answerLocal(message.topic, message.payload).then(
      (value) => this.send({ type: 'answer', id: message.id, value }),
      (err: unknown) => this.send({ type: 'answer', id: message.id, error: err instanceof Error ? err.message : String(err) }),
    );
  }
}
