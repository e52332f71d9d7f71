import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';

export type { Logger };

/** One JSON event per line for machines (journald, Loki, files); readable lines on a terminal.
 *  pino-pretty runs in-process (sync) so a crash never loses the last lines to a transport thread;
 *  it is loaded only for a terminal (about 10 MB a headless node does not need). */
export function createLogger(opts: { level?: string; pretty?: boolean; name?: string } = {}): Logger {
  const level = opts.level ?? process.env.RTPIPELINE_LOG_LEVEL ?? 'info';
  const usePretty = opts.pretty ?? (process.stdout.isTTY === true && process.env.RTPIPELINE_LOG_FORMAT !== 'json');
  const base = { name: opts.name ?? 'rtpipeline' };
  if (usePretty) {
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    return pino({ level, base }, pretty({ sync: true, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name' }));
  }
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ sync: true }));
}
