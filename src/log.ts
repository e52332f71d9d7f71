import { createRequire } from 'node:module';
import pino, { type Logger, type DestinationStream } from 'pino';
import { isPhiKey, patientIdsIn, scrubIdsInText, scrubPhi, type IdMasker, type PhiMode } from './audit/phi-mask.js';

export type { Logger };

/** How ordinary logs treat patient data (`log_phi`); names are always dropped. */
export interface LogPhiOptions {
  phi: PhiMode;
  /** Turns an id into its token for 'masked' (the node's salted hash). */
  mask?: IdMasker;
}

/** Most recently seen patient ids, to find them inside message texts ("segmentation done for P1/2026-03"). */
const RECENT_IDS = 256;

/**
 * pino options that keep patient names out of the logs and mask or drop patient ids. Serializers
 * handle the top-level keys of log objects *and* of child bindings (pino resets the bindings
 * formatter for children, serializers it keeps); formatters.log handles nested objects; the
 * logMethod hook rewrites ids inside message texts.
 */
function phiOptions(o: LogPhiOptions): pino.LoggerOptions {
  const recent = new Map<string, string>();
  const token = (id: string) => (o.phi === 'none' ? '[patient]' : o.mask ? o.mask(id) : '[masked]');
  const remember = (id: string) => {
    if (o.phi === 'full' || recent.has(id)) return;
    recent.set(id, token(id));
    if (recent.size > RECENT_IDS) recent.delete(recent.keys().next().value as string);
  };
  const idSerializer = (v: unknown) => {
    if (typeof v !== 'string' || o.phi === 'full') return v;
    remember(v);
    return o.phi === 'none' ? undefined : recent.get(v);
  };
  const dropped = () => undefined;
  return {
    serializers: { patientId: idSerializer, patient_id: idSerializer, PatientID: idSerializer, patientName: dropped, patient_name: dropped, PatientName: dropped },
    // Top-level keys are the serializers' (they run after this formatter): only nested objects here.
    formatters: {
      log: (obj) => {
        let out: Record<string, unknown> | undefined;
        for (const [k, v] of Object.entries(obj)) {
          if (typeof v !== 'object' || v === null) continue;
          const s = scrubPhi(v, o.phi, o.mask, 1);
          if (s !== v) (out ??= { ...obj })[k] = s;
        }
        return out ?? obj;
      },
    },
    hooks: {
      logMethod(args, method) {
        if (o.phi !== 'full') {
          const replace = (text: string) => scrubIdsInText(text, recent.keys(), (id) => recent.get(id) ?? token(id));
          const first = args[0] as unknown;
          if (typeof first === 'object' && first !== null && !(first instanceof Error)) {
            for (const id of patientIdsIn(first)) remember(id);
            // Paths and labels carry ids too (output/<PatientID>/<CourseID>): top-level strings are scrubbed.
            let copy: Record<string, unknown> | undefined;
            for (const [k, v] of Object.entries(first)) {
              if (typeof v !== 'string' || recent.size === 0 || isPhiKey(k)) continue;
              const r = replace(v);
              if (r !== v) (copy ??= { ...(first as Record<string, unknown>) })[k] = r;
            }
            if (copy) (args as unknown[])[0] = copy;
          }
          const i = args.findIndex((a) => typeof a === 'string');
          if (i >= 0 && recent.size > 0) args[i] = replace(args[i] as string);
        }
        return method.apply(this, args as Parameters<typeof method>);
      },
    },
  };
}

/** One JSON event per line for machines (journald, Loki, files); readable lines on a terminal.
 *  pino-pretty runs in-process (sync) so a crash never loses the last lines to a transport thread;
 *  it is loaded only for a terminal (about 10 MB a headless node does not need). With `file`, every
 *  event also goes to that file as JSON (the batch command's --logs). `phi` applies `log_phi`. */
export function createLogger(opts: { level?: string; pretty?: boolean; name?: string; file?: string; phi?: LogPhiOptions } = {}): Logger {
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
  return pino({ level, base, timestamp: usePretty && !opts.file ? undefined : pino.stdTimeFunctions.isoTime, ...phiOptions(opts.phi ?? { phi: 'full' }) }, stream);
}
