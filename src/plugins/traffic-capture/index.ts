import { existsSync, readdirSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { definePlugin, type TrafficCaptureJob, type TrafficCaptureRequest, type TrafficCaptureService } from '../../plugin.js';
import schema from '../../../schemas/plugins/traffic-capture.schema.json' with { type: 'json' };
import { CaptureJob } from './capture-job.js';
import { readKeyFile } from './traffic-encryption.js';
import { isCaptureFile } from './traffic-record.js';
import { TOPIC_CANCEL, TOPIC_JOBS, TOPIC_START, workerCaptureService, type LocalCaptures, type StartOrder } from './worker-captures.js';
import { zstdAvailable, zstdUnavailable } from './zstd-codec.js';

declare module '../../plugin.js' {
  interface TiproxyServices {
    trafficCapture: TrafficCaptureService;
  }
}

export interface TrafficCaptureConfig {
  'rotate-size-mb': number;
  'rotate-interval': number;
  'max-buffer-mb': number;
  'max-payload-kb': number;
  'max-duration': number;
  'allowed-output-root'?: string;
}

/** Captures kept across generations: a reload neither stops a running capture nor forgets finished ones. */
interface CaptureRegistry {
  current: CaptureJob | null;
  finished: TrafficCaptureJob[];
}

const KEEP_FINISHED = 20;

/**
 * Traffic capture (docs/traffic.md): idle until started; then every session's commands and outcomes go
 * to rotated, compressed, optionally encrypted files through hooks.observeCommand / observeResult,
 * which the kernel calls only while ctx.traffic observation is on.
 */
export default definePlugin<TrafficCaptureConfig>({
  name: 'traffic-capture',
  version: '1.0.0',
  configSchema: schema,
  apply(ctx) {
    const { hooks, config, traffic } = ctx;
    const registry = ctx.keep<CaptureRegistry>('captures', () => ({ current: null, finished: [] }));

    // Every generation that has the plugin taps; all of them feed the one running job.
    hooks.observeCommand.tap('traffic-capture', (c) => registry.current?.command(c));
    hooks.observeResult.tap('traffic-capture', (r) => registry.current?.result(r));
    hooks.close.tap('traffic-capture', (c) => registry.current?.sessionClosed(c.session));

    /** The request checked and resolved against this plugin's settings (throws the reason for the operator). */
    const resolveRequest = (request: TrafficCaptureRequest) => {
      if (!request.output) throw new Error('output: a directory is required');
      if (!(request.durationSeconds > 0)) throw new Error('duration: must be a positive number of seconds');
      if (request.durationSeconds > config['max-duration']) throw new Error(`duration: at most ${config['max-duration']} seconds (traffic-capture max-duration)`);
      if (request.compress === 'zstd' && !zstdAvailable()) throw new Error(zstdUnavailable('compress: zstd') + ': use gzip');
      const output = resolve(request.output);
      const root = config['allowed-output-root'];
      if (root !== undefined) {
        const rel = relative(resolve(root), output);
        if (rel.startsWith('..') || isAbsolute(rel)) throw new Error(`output: must be under ${root} (traffic-capture allowed-output-root)`);
      }
      const key = request.encryptionKeyFile ? readKeyFile(request.encryptionKeyFile) : null;
      return { output, key };
    };
    const runningError = () => `a capture is already running (${registry.current!.id}, into ${registry.current!.settings.output}): cancel it first`;

    const local: LocalCaptures = {
      validate(request) {
        if (registry.current?.running) throw new Error(runningError());
        const { output } = resolveRequest(request);
        // Checked once here, for the whole directory: each worker then checks only its own file names.
        const leftover = existsSync(output) ? readdirSync(output).find(isCaptureFile) : undefined;
        if (leftover) throw new Error(`output directory ${output} already holds a capture (${leftover}): use an empty directory`);
      },
      start({ request, id, startedAt }) {
        if (registry.current?.running) return { error: runningError() };
        let job: CaptureJob;
        try {
          const { output, key } = resolveRequest(request);
          job = new CaptureJob({
            output, durationSeconds: request.durationSeconds, compress: request.compress ?? 'gzip', key, resultDigest: request.resultDigest === true,
            rotateBytes: config['rotate-size-mb'] * 1024 * 1024, rotateSeconds: config['rotate-interval'],
            maxBufferBytes: config['max-buffer-mb'] * 1024 * 1024, maxPayloadBytes: Math.floor(config['max-payload-kb'] * 1024),
            worker: ctx.workers.id, id, startedAt,
          }, traffic, (done) => {
            if (registry.current === done) registry.current = null;
            registry.finished.unshift(done.describe());
            registry.finished.length = Math.min(registry.finished.length, KEEP_FINISHED);
            ctx.logger.info(done.describe(), 'traffic capture ended');
          });
        } catch (err) {
          return { error: (err as Error).message };
        }
        registry.current = job;
        traffic.setObserving(true, { wholePayloadUpTo: Math.floor(config['max-payload-kb'] * 1024), resultDigest: request.resultDigest === true });
        ctx.logger.info({ id: job.id, output: job.settings.output, durationSeconds: request.durationSeconds }, 'traffic capture started');
        return { job: job.describe() };
      },
      async cancel(id) {
        const job = registry.current;
        if (!job || (id !== null && job.id !== id)) return null;
        await job.stop('canceled');
        return job.describe();
      },
      jobs() {
        return [...(registry.current ? [registry.current.describe()] : []), ...registry.finished];
      },
    };
    // Every worker answers the orders; whichever worker the admin API runs in puts them to all.
    ctx.workers.answer(TOPIC_START, (order) => local.start(order as StartOrder));
    ctx.workers.answer(TOPIC_CANCEL, (id) => local.cancel(typeof id === 'string' ? id : null));
    ctx.workers.answer(TOPIC_JOBS, () => local.jobs());
    const service = workerCaptureService(ctx.workers, local);
    ctx.services.provide('trafficCapture', service);
    hooks.lifecycle.shutdown.tapPromise('traffic-capture', async () => {
      await registry.current?.stop('canceled', 'the proxy shut down');
    });
  },
});
