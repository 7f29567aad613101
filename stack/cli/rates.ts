/**
 * `xdpstack show KIND --interval S [--count N]`: rates per second, as `ip -s`, `sar` and `vppctl show
 * runtime` give them. A first sample is the baseline; then every S seconds the counters of the new
 * sample minus those of the previous one, divided by the time measured between the two samples
 * (not the S asked for: a loaded host or a slow answer stretches it). Gauges (connections, sockets,
 * frame pools, limits in use) are shown as they are in the new sample.
 *
 * A counter smaller than in the previous sample was cleared (`clear counters`) or belongs to a row
 * made anew (a VS destroyed and added again): it counts from zero, as Prometheus' rate() reads a
 * counter reset. A row absent from the previous sample is new: its counters count from zero too.
 */
import { UsageError } from './args';

type Row = Record<string, unknown>;

/** The kinds that have counters, and how their rows are matched between samples and which fields are gauges. */
interface SectionSpec { key(r: Row): string; gauges: ReadonlySet<string> }

const none: ReadonlySet<string> = new Set();
/** Any row: identified by its text fields (names), its numbers being counters. */
const generic: SectionSpec = { key: (r) => Object.entries(r).filter(([, v]) => typeof v === 'string').map(([k, v]) => `${k}=${v}`).join('|'), gauges: none };

const COUNTER_SECTIONS: Record<string, SectionSpec> = {
  devices: { key: (r) => String(r.device), gauges: none },
  // A VS's TCP counters carry one gauge: CurrEstab (RFC 1213 tcpCurrEstab, connections now open).
  vs: { key: (r) => String(r.vs), gauges: new Set(['tcp.currEstab']) },
  links: { key: (r) => `${r.vs}|${r.link}`, gauges: none },
  // The frame pool is all gauges (frames where they are now).
  pool: { key: (r) => `${r.shard ?? ''}|${r.device}`, gauges: new Set(['shard', 'total', 'free', 'kernel', 'tx', 'held', 'queued']) },
  shards: { key: (r) => String(r.shard), gauges: new Set(['shard', 'tcpConnections']) },
};

const ROW_KINDS: Record<string, SectionSpec> = {
  vs: { key: (r) => String(r.name), gauges: new Set(['id', 'links', 'addresses', 'routes', 'udpSockets', 'tcpListeners', 'tcpConnections']) },
  limits: { key: (r) => `${r.vs}|${r.scope}|${r.limit}`, gauges: new Set(['used', 'max']) },
  // The VIPs and load balancers are lists of names; the overhead is a setting, not a count.
  vips: { key: (r) => String(r.vs), gauges: new Set(['overhead']) },
};

/** The `show` kinds that have counters to rate. */
export const RATE_KINDS: readonly string[] = ['counters', ...Object.keys(ROW_KINDS)];

function isPlain(v: unknown): v is Row {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Increase of a counter from `prev` to `cur`; a decrease is a reset (counts from zero). */
function increase(cur: number, prev: unknown): number {
  if (typeof prev !== 'number') return cur;
  return cur >= prev ? cur - prev : cur;
}

/**
 * The per-second rate of a value: numbers and arrays of numbers are counters; objects recurse; the
 * rest stays. `gauges` names the fields inside objects that are gauges, by path (`tcp.currEstab`).
 */
function rateOf(cur: unknown, prev: unknown, dt: number, gauges: ReadonlySet<string> = none, path = ''): unknown {
  if (typeof cur === 'number') return increase(cur, prev) / dt;
  if (Array.isArray(cur)) {
    const p = Array.isArray(prev) ? prev : [];
    return cur.map((x, i) => (typeof x === 'number' ? increase(x, p[i]) / dt : x));
  }
  if (isPlain(cur)) {
    // Drops ({ total, reasons }), XDP statistics: every number a counter; a reason new since the
    // previous sample counts from zero.
    const p = isPlain(prev) ? prev : {};
    const out: Row = {};
    for (const [k, v] of Object.entries(cur)) {
      const at = `${path}.${k}`;
      out[k] = gauges.has(at) ? v : rateOf(v, p[k], dt, gauges, at);
    }
    return out;
  }
  return cur;
}

function rateRows(cur: unknown, prev: unknown, dt: number, spec: SectionSpec): unknown {
  if (!Array.isArray(cur)) return cur;
  const before = new Map<string, Row>();
  if (Array.isArray(prev)) for (const r of prev as Row[]) before.set(spec.key(r), r);
  return (cur as Row[]).map((r) => {
    const p = before.get(spec.key(r));
    const out: Row = {};
    for (const [k, v] of Object.entries(r)) out[k] = spec.gauges.has(k) ? v : rateOf(v, p?.[k], dt, spec.gauges, k);
    return out;
  });
}

/**
 * Rates per second of `show KIND` data between two samples `dt` seconds apart: the same shape as
 * the data, every counter replaced by its rate, gauges and names as in `cur`. Per-shard answers
 * (`[{ shard, data }]`) are rated shard by shard.
 */
export function computeRates(kind: string, prev: unknown, cur: unknown, dt: number): unknown {
  if (!(dt > 0)) throw new RangeError(`rates need a positive interval, got ${dt}`);
  if (Array.isArray(cur) && cur.length && isPlain(cur[0]) && typeof cur[0].shard === 'number' && 'data' in cur[0]) {
    const p = new Map<number, unknown>();
    if (Array.isArray(prev)) for (const x of prev as { shard: number; data: unknown }[]) p.set(x.shard, x.data);
    return (cur as { shard: number; data: unknown }[]).map((x) => ({ shard: x.shard, data: computeRates(kind, p.get(x.shard), x.data, dt) }));
  }
  if (kind === 'counters') {
    if (!isPlain(cur)) return cur;
    const p = isPlain(prev) ? prev : {};
    const out: Row = {};
    for (const [section, rows] of Object.entries(cur)) out[section] = rateRows(rows, p[section], dt, COUNTER_SECTIONS[section] ?? generic);
    return out;
  }
  const spec = ROW_KINDS[kind];
  if (!spec) throw new Error(`'${kind}' has no counters to rate (rates are for ${RATE_KINDS.join(', ')})`);
  return rateRows(cur, prev, dt, spec);
}

/** Every number of `v` rounded to `digits` decimals (rates print as 1234.5, not 1234.4999999). */
export function roundNumbers(v: unknown, digits: number): unknown {
  const f = 10 ** digits;
  if (typeof v === 'number') return Math.round(v * f) / f;
  if (Array.isArray(v)) return v.map((x) => roundNumbers(x, digits));
  if (isPlain(v)) {
    const out: Row = {};
    for (const [k, x] of Object.entries(v)) out[k] = roundNumbers(x, digits);
    return out;
  }
  return v;
}

export const MIN_INTERVAL_S = 0.1;
export const MAX_INTERVAL_S = 3600;

/** `--interval S`: seconds, a positive decimal number in 0.1..3600; anything else is a UsageError. */
export function parseInterval(v: string, usage?: string): number {
  const bad = (why: string) => new UsageError(`option '--interval' expects seconds from ${MIN_INTERVAL_S} to ${MAX_INTERVAL_S} (like 1 or 0.5), got '${v}'${why}`, usage);
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(v)) throw bad('');
  const s = Number(v);
  if (s < MIN_INTERVAL_S) throw bad(': too short');
  if (s > MAX_INTERVAL_S) throw bad(': too long');
  return s;
}

/** One rates line of `--json`: the kind, the measured interval (seconds), when, and the rates. */
export interface RateSample { kind: string; time: string; interval: number; rates: unknown }

export interface WatchOptions {
  kind: string;
  /** One `show KIND` answer. */
  sample(): Promise<unknown>;
  /** Seconds between samples. */
  interval: number;
  /** Rate lines to print (default: until `signal`). */
  count?: number;
  /** Called with each rates line. */
  emit(r: RateSample): void;
  /** Ends the loop (Ctrl-C); the answer in flight is dropped. */
  signal?: AbortSignal;
  /** Clock in seconds (monotonic), and the wait; injectable for tests. */
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

function defaultNow(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) { resolve(); return; }
    const t = setTimeout(done, ms);
    function done() { clearTimeout(t); signal?.removeEventListener('abort', done); resolve(); }
    signal?.addEventListener('abort', done);
  });
}

/**
 * Samples every `interval` seconds (on a fixed schedule from the first sample, so that slow answers
 * do not make the interval drift) and emits the rates between consecutive samples, timed at the
 * middle of each request (the error is at most half its round trip). Returns the lines emitted.
 */
export async function watchRates(o: WatchOptions): Promise<number> {
  const now = o.now ?? defaultNow;
  const sleep = o.sleep ?? defaultSleep;
  const take = async (): Promise<{ t: number; data: unknown }> => {
    const t0 = now();
    const data = await o.sample();
    return { t: (t0 + now()) / 2, data };
  };
  let prev = await take();
  const start = prev.t;
  let emitted = 0;
  for (let k = 1; o.count === undefined || emitted < o.count; k++) {
    if (o.signal?.aborted) break;
    const wait = start + k * o.interval - now();
    if (wait > 0) await sleep(wait * 1000, o.signal);
    else k = Math.ceil((now() - start) / o.interval); // a sample took longer than an interval: skip ahead
    if (o.signal?.aborted) break;
    const cur = await take();
    if (o.signal?.aborted) break;
    const dt = cur.t - prev.t;
    if (dt <= 0) continue;
    o.emit({ kind: o.kind, time: new Date().toISOString(), interval: Math.round(dt * 1e6) / 1e6, rates: computeRates(o.kind, prev.data, cur.data, dt) });
    emitted++;
    prev = cur;
  }
  return emitted;
}
