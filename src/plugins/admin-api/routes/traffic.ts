import type { TrafficCaptureService, TrafficCompression } from '../../../plugin.js';
import { errors, type RouteDeps } from '../admin-state.js';

const JOB_SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    status: { type: 'string', enum: ['running', 'done', 'canceled', 'failed'] },
    output: { type: 'string', description: 'Directory of the capture files (on the proxy\'s host).' },
    started_at: { type: 'string' },
    ended_at: { type: ['string', 'null'] },
    duration_seconds: { type: 'number' },
    elapsed_seconds: { type: 'number' },
    progress: { type: 'number', description: 'Elapsed over duration, 0..1.' },
    commands: { type: 'integer', description: 'Commands captured.' },
    dropped: { type: 'integer', description: 'Records dropped because the writer fell behind (memory bound).' },
    truncated: { type: 'integer', description: 'Commands recorded with only part of their payload (traffic-capture max-payload-kb).' },
    sessions: { type: 'integer' },
    files: { type: 'array', items: { type: 'string' } },
    compress: { type: 'string' },
    encrypted: { type: 'boolean' },
    result_digest: { type: 'boolean', description: 'Results carry a digest of their rows.' },
    error: { type: ['string', 'null'] },
    workers: {
      type: 'array', description: 'Each worker process\'s part (proxy.workers > 1: every worker captures its own sessions into its own files; the counts above total them).',
      items: {
        type: 'object',
        properties: {
          worker: { type: 'integer', description: 'Worker id (0 in a single process).' }, status: { type: 'string', enum: ['running', 'done', 'canceled', 'failed'] },
          commands: { type: 'integer' }, dropped: { type: 'integer' }, sessions: { type: 'integer' }, files: { type: 'array', items: { type: 'string' } },
          error: { type: ['string', 'null'] },
        },
      },
    },
  },
  required: ['id', 'status', 'output', 'commands', 'dropped', 'progress'],
} as const;

type Job = Awaited<ReturnType<TrafficCaptureService['jobs']>>[number];

const wire = (j: Job) => ({
  id: j.id, status: j.status, output: j.output, started_at: j.startedAt, ended_at: j.endedAt, duration_seconds: j.durationSeconds,
  elapsed_seconds: j.elapsedSeconds, progress: j.progress, commands: j.commands, dropped: j.dropped, truncated: j.truncated,
  sessions: j.sessions, files: j.files, compress: j.compress, encrypted: j.encrypted, result_digest: j.resultDigest, error: j.error,
  workers: j.workers.map((w) => ({ worker: w.worker, status: w.status, commands: w.commands, dropped: w.dropped, sessions: w.sessions, files: w.files, error: w.error })),
});

interface CaptureBody {
  output: string;
  duration: number;
  compress?: TrafficCompression;
  encryption_key_file?: string;
  result_digest?: boolean;
}

/** GET /api/traffic, POST /api/traffic/capture, POST /api/traffic/cancel (the traffic-capture plugin's jobs). */
export function trafficRoutes({ app, ctx }: RouteDeps): void {
  const capture = (): TrafficCaptureService => {
    const service = ctx.services.get('trafficCapture');
    if (!service) throw Object.assign(new Error('traffic capture is not available: the traffic-capture plugin is disabled'), { statusCode: 503 });
    return service;
  };

  app.get('/api/traffic', {
    schema: {
      tags: ['traffic'], summary: 'Traffic capture jobs with their progress',
      description: 'The running capture first, then finished ones (most recent first), each totalled over the proxy\'s worker processes (`workers` lists each one\'s part).',
      response: { 200: { type: 'array', items: JOB_SCHEMA }, ...errors(503) },
    },
  }, async () => (await capture().jobs()).map(wire));

  app.post<{ Body: CaptureBody }>('/api/traffic/capture', {
    schema: {
      tags: ['traffic'], summary: 'Start capturing traffic',
      description: 'Records every session\'s commands and outcomes into `output` (a directory on the proxy\'s host, created; it must not hold a capture) for `duration` seconds. Started on every worker process of the proxy (proxy.workers), each writing its own files into `output`; if any refuses, none captures. One capture at a time (409 otherwise). Replay the files with `tiproxyctl traffic replay` (docs/traffic.md).',
      body: {
        type: 'object', additionalProperties: false, required: ['output', 'duration'],
        properties: {
          output: { type: 'string', minLength: 1 },
          duration: { type: 'number', exclusiveMinimum: 0, description: 'Seconds.' },
          compress: { type: 'string', enum: ['gzip', 'zstd', 'none'], default: 'gzip', description: 'zstd only where the proxy runs on Node 22.15 or later (400 otherwise).' },
          encryption_key_file: { type: 'string', description: 'File on the proxy\'s host holding the AES-256-GCM key (32 bytes or 64 hex characters).' },
          result_digest: { type: 'boolean', default: false, description: 'Record a SHA-1 of each response\'s result rows, so a replay reports statements whose result differs (costs a hash over every row).' },
        },
      },
      response: { 201: JOB_SCHEMA, ...errors(400, 409, 503) },
    },
  }, async (req, reply) => {
    const service = capture();
    const running = (await service.jobs())[0];
    if (running?.status === 'running') return reply.code(409).send({ error: `a capture is already running (${running.id}): cancel it first` });
    try {
      const job = await service.start({
        output: req.body.output, durationSeconds: req.body.duration, compress: req.body.compress ?? 'gzip',
        ...(req.body.encryption_key_file ? { encryptionKeyFile: req.body.encryption_key_file } : {}), resultDigest: req.body.result_digest === true,
      });
      return reply.code(201).send(wire(job));
    } catch (err) {
      return reply.code(400).send({ error: (err as Error).message });
    }
  });

  app.post<{ Body: undefined }>('/api/traffic/cancel', {
    schema: {
      tags: ['traffic'], summary: 'Stop the running capture',
      description: 'Ends the running capture now on every worker process; the files written so far are closed and stay readable. 404 when none runs.',
      response: { 200: JOB_SCHEMA, ...errors(404, 503) },
    },
  }, async (_req, reply) => {
    const job = await capture().cancel();
    if (!job) return reply.code(404).send({ error: 'no capture is running' });
    return wire(job);
  });
}
