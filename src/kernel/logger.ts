import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { FrozenConfig } from './config/proxy-config.js';

/**
 * The root logger. "console" is for people (pino-pretty, synchronous so nothing is lost on exit);
 * "json" is for log shippers. Sessions and plugins log through child loggers of this one.
 */
export function createLogger(log: FrozenConfig['log'], destination: NodeJS.WritableStream = process.stdout): Logger {
  const options = { level: log.level, base: { pid: process.pid } };
  if (log.format === 'json') return pino(options, pino.destination({ fd: destination === process.stderr ? 2 : 1, sync: true }));
  return pino(options, pretty({
    destination, sync: true, colorize: Boolean((destination as { isTTY?: boolean }).isTTY),
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname',
  }));
}
