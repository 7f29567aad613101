/**
 * The stack's logger: one line per event, with its time (ISO 8601, UTC, milliseconds) and level,
 * then the event and its fields:
 *
 *   2026-12-02T15:04:05.123Z info  vs.add name=c links=1
 *   2026-12-02T15:04:06.001Z warn  limit.reached vs=c scope=vs limit=tcpConnections used=100 max=100
 *
 * or, with format 'json', one JSON object per line ({"time","level","msg", ...fields}).
 *
 * Events are logged once (a runtime change, a device lost or back, a limit reached or cleared),
 * never per packet. Levels, most severe first: error, warn, info, debug; a logger writes the lines
 * at its level and above.
 */
import type { LogFn, LogLevel } from '../../driver/types';

export type { LogFn, LogLevel };

export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = typeof LOG_FORMATS[number];

export type LogValue = string | number | boolean | null | undefined;
/** Fields of an event; null and undefined ones are left out. */
export type LogFields = Record<string, LogValue>;

export interface Logger {
  readonly level: LogLevel;
  /** Whether a line of `level` would be written (to skip building costly fields). */
  enabled(level: LogLevel): boolean;
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  /** Lines of this level and more severe are written. Default 'info'. */
  level?: LogLevel;
  /** 'text' (default) or 'json'. */
  format?: LogFormat;
  /** Where each line goes (without its newline). Default: standard error. */
  write?: (line: string) => void;
  /** The time of a line. Default: now. */
  clock?: () => Date;
}

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** Why `v` is not a log level (null when it is one). */
export function logLevelProblem(v: unknown): string | null {
  return typeof v === 'string' && v in RANK ? null : `must be one of ${LOG_LEVELS.join(', ')}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`;
}

/** Why `v` is not a log format (null when it is one). */
export function logFormatProblem(v: unknown): string | null {
  return (LOG_FORMATS as readonly unknown[]).includes(v) ? null : `must be one of ${LOG_FORMATS.join(', ')}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`;
}

/** A field value as logfmt writes it: bare when it can be, else quoted as a JSON string. */
function textValue(v: string | number | boolean): string {
  const s = String(v);
  return s !== '' && /^[^\s"=\\]+$/.test(s) ? s : JSON.stringify(s);
}

/** The line of one event (exported for tests and for sinks that add their own fields). */
export function formatLine(format: LogFormat, time: Date, level: LogLevel, msg: string, fields?: LogFields): string {
  if (format === 'json') {
    const o: Record<string, unknown> = { time: time.toISOString(), level, msg };
    if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null && !(k in o)) o[k] = v;
    return JSON.stringify(o);
  }
  let line = `${time.toISOString()} ${level.padEnd(5)} ${msg}`;
  if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) line += ` ${k}=${textValue(v)}`;
  return line;
}

class LineLogger implements Logger {
  private readonly rank: number;
  constructor(readonly level: LogLevel, private readonly format: LogFormat, private readonly write: (line: string) => void,
    private readonly clock: () => Date) {
    this.rank = RANK[level];
  }

  enabled(level: LogLevel): boolean { return RANK[level] <= this.rank; }

  log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (RANK[level] > this.rank) return;
    try {
      this.write(formatLine(this.format, this.clock(), level, msg, fields));
    } catch { /* a failing sink must not take the stack down */ }
  }

  error(msg: string, fields?: LogFields): void { this.log('error', msg, fields); }
  warn(msg: string, fields?: LogFields): void { this.log('warn', msg, fields); }
  info(msg: string, fields?: LogFields): void { this.log('info', msg, fields); }
  debug(msg: string, fields?: LogFields): void { this.log('debug', msg, fields); }
}

/** A logger; throws a RangeError naming a bad level or format. */
export function createLogger(o: LoggerOptions = {}): Logger {
  const level = o.level ?? 'info';
  const format = o.format ?? 'text';
  let why = logLevelProblem(level);
  if (why) throw new RangeError(`log level ${why}`);
  why = logFormatProblem(format);
  if (why) throw new RangeError(`log format ${why}`);
  return new LineLogger(level, format, o.write ?? ((line) => { process.stderr.write(`${line}\n`); }), o.clock ?? (() => new Date()));
}

/**
 * A logger that hands every event it would write to `emit` (level, message and fields, before
 * formatting): a shard's worker posts them to the main thread, whose logger writes them.
 */
export function forwardingLogger(level: LogLevel, emit: (level: LogLevel, msg: string, fields?: LogFields) => void): Logger {
  const rank = RANK[level];
  const log = (l: LogLevel, msg: string, fields?: LogFields): void => { if (RANK[l] <= rank) emit(l, msg, fields); };
  return {
    level, enabled: (l) => RANK[l] <= rank, log,
    error: (m, f) => log('error', m, f), warn: (m, f) => log('warn', m, f), info: (m, f) => log('info', m, f), debug: (m, f) => log('debug', m, f),
  };
}

/** What a stack's options may say about logging (StackOptions, ShardedStackOptions). */
export interface LogOptions {
  /** A logger to use (shared with the caller); the other options are then ignored. */
  logger?: Logger;
  /** Where the formatted lines go. Default: standard error. */
  log?: (line: string) => void;
  /** Overrides the config's `logLevel`. Default 'info'. */
  logLevel?: LogLevel;
  /** Overrides the config's `logFormat`. Default 'text'. */
  logFormat?: LogFormat;
}

/** The logger of a stack: the given one, else one made from the options and the config's keys. */
export function stackLogger(opts: LogOptions, config: { logLevel?: LogLevel; logFormat?: LogFormat }): Logger {
  if (opts.logger) return opts.logger;
  return createLogger({ level: opts.logLevel ?? config.logLevel, format: opts.logFormat ?? config.logFormat, write: opts.log });
}

/** A driver's notice callback writing to `logger` ('warn' unless the driver says otherwise). */
export function driverLog(logger: Logger): LogFn {
  return (msg, level = 'warn') => logger.log(level, msg);
}

/**
 * The fields of a runtime change as the log line shows them, from a control request or the API
 * call's equivalent: the virtual server and name first, lists of objects (links) and empty lists as
 * their count, lists of texts joined with commas, objects (limits) as `key.sub=value`.
 */
export function changeFields(req: Record<string, unknown>): LogFields {
  const out: LogFields = {};
  const put = (k: string, v: unknown): void => {
    if (v === undefined || v === null) return;
    if (Array.isArray(v)) {
      out[k] = v.length && v.every((x) => typeof x !== 'object' || x === null) ? v.join(',') : v.length;
    } else if (typeof v === 'object') {
      for (const [s, x] of Object.entries(v as Record<string, unknown>)) put(`${k}.${s}`, x);
    } else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
      out[k] = v;
    }
  };
  for (const k of ['vs', 'name']) put(k, req[k]);
  for (const [k, v] of Object.entries(req)) if (k !== 'cmd' && k !== 'id' && k !== 'vs' && k !== 'name') put(k, v);
  return out;
}
