import { createRequire } from 'node:module';
import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** One JSON event per line for machines (journald, Loki, files); readable lines on a terminal.
 *  pino-pretty runs in-process (sync) so a crash never loses the last lines to a transport thread;
 *  it is loaded only for a terminal (about 10 MB a headless node does not need). With `file`, every
 *  event also goes to that file as JSON (the batch command's --logs). */
export function createLogger(opts: { level?: string; pretty?: boolean; name?: string; file?: string } = {}): Logger {
  const level = opts.level ?? process.env.RTPIPELINE_LOG_LEVEL ?? 'info';
  const usePretty = opts.pretty ?? (process.stdout.isTTY === true && process.env.RTPIPELINE_LOG_FORMAT !== 'json');
  const base = { name: opts.name ?? 'rtpipeline' };
  let console: DestinationStream;
  if (usePretty) {
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    console = pretty({ sync: true, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name' });
  } else {
    console = pino.destination({ sync: true });
  }
  const stream = opts.file
    ? pino.multistream([
        { level: level as pino.Level, stream: console },
        { level: level as pino.Level, stream: pino.destination({ dest: opts.file, sync: true, mkdir: true }) },
      ])
    : console;
  return pino({ level, base, timestamp: usePretty && !opts.file ? undefined : pino.stdTimeFunctions.isoTime }, stream);
}
