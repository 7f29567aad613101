/**
 * A stack of shards in worker threads: the main thread is the control plane. It loads the config,
 * attaches each AF_XDP device's XDP program and keeps its maps, starts one worker per queue
 * (stack/shard/worker.ts), and then applies every change (VS, link, address, route, rule) to every
 * shard in the same order: shard 0 first (it validates), then the others. VS identities are issued
 * here and never reused. `show` merges the shards' answers (stack/shard/merge.ts); a trace writes
 * one capture per shard and merges them by time (stack/shard/capture.ts: a file when the trace
 * stops, a streamed trace as the records come). A ping runs in shard 0 (its echo identifiers are
 * shard 0's share: a reply another shard's queue received is handed to it).
 *
 * A shard that dies takes the whole stack down with a clear message: the other shards are
 * stopped, the XDP programs detached, and (by default) the process exits with status 1. No
 * half-alive stack serves on.
 */
import { Worker } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Ip6, IpAddr } from '../../protocols/ip/addr';
import { cloneConfig, loadConfig, StackConfig, validateConfig } from '../control/config';
import { describe, ValidationError } from '../control/validate';
import { ALL_SHARD_REQUESTS, CHANGE_REQUESTS, ControlServer, ControlTarget, listenControl, PingLike, Request, TraceLike, TraceRequest, traceWriter } from '../control/control';
import { TraceCounts, TraceFilter } from '../trace';
import type { PingEvents, PingOptions, PingStart, PingSummary } from '../ping';
import { CaptureMerger, mergeCaptures } from './capture';
import { MAX_SHARDS } from './flows';
import type { FlowTableSize } from './flows';
import type { RingSize } from './ring';
import { mergeAnswers, mergeShow } from './merge';
import { allocateMesh, MeshMemory } from './steer';
import type { ShardDeviceInfo } from './drivers';
import type { FromShard, ShardData, ToShard } from './messages';
import { serviceModules } from '../control/services';
import { changeFields, driverLog, Logger, LogOptions, stackLogger } from '../control/log';
import type { LimitRow } from '../limits';
import type { MetricsEndpoint, MetricsSnapshot } from '../control/metrics';
import { MetricsHost } from '../control/metrics-host';
import { readRss } from '../../driver/rss';
import type { ShowOptions } from '../stack';

/**
 * Logging as a single stack's (StackOptions): `logger`, or `log` (where the formatted lines go),
 * `logLevel`, `logFormat`. The shards' events arrive here with a `shard` field; runtime changes are
 * logged here, once for the group.
 */
export interface ShardedStackOptions extends LogOptions {
  /** Shards: a number, or 'auto' (the devices' receive queues, at most one per CPU). */
  shards: number | 'auto';
  /** Module run in every shard: `module.exports = (stack, { shard, shards }) => { ... }`. */
  app?: string;
  busyPoll?: boolean;
  /**
   * A shard died (its error in `msg`): after the stack was stopped and its XDP programs detached.
   * Default: the message on stderr and the process exits with status 1.
   */
  onFatal?: (msg: string) => void;
  /** Modules each worker loads first (service types they register). Default: those loaded with loadServiceModule(). */
  preload?: string[];
  flowSize?: FlowTableSize;
  ringSize?: RingSize;
  /** How long the shards may take to start (ms). Default 30 s. */
  startTimeoutMs?: number;
  /**
   * Opens the control socket once the shards run (see ControlOption in stack/stack.ts): true = the
   * config's `control.socket`, else the default path for the stack's name; a string = that path.
   */
  control?: boolean | string;
}

/**
 * ShardedStack.start()'s options, checked before anything starts: an object (with `shards`; its
 * range is resolveShards()'s), and the sizes and callbacks of the types they must have, each named.
 */
function checkShardedOptions(opts: unknown): void {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw new ValidationError(`ShardedStack.start: the options must be an object like { shards: 2 }, got ${describe(opts)}`);
  }
  const o = opts as Record<string, unknown>;
  const bad = (k: string, what: string) => new ValidationError(`ShardedStack.start: '${k}' must be ${what}, got ${describe(o[k])}`, k);
  if (o.shards === undefined) throw bad('shards', "a number of shards or 'auto'");
  const sizes = (k: string, keys: readonly string[]) => {
    const v = o[k] as Record<string, unknown> | undefined;
    if (v === undefined) return;
    const pow2 = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x > 0 && (x & (x - 1)) === 0;
    if (typeof v !== 'object' || v === null || !keys.every((x) => pow2(v[x]))) throw bad(k, `an object of powers of two { ${keys.join(', ')} }`);
  };
  sizes('flowSize', ['flowSlots', 'portSlots']);
  const ring = o.ringSize as Record<string, unknown> | undefined;
  if (ring !== undefined) {
    const s = ring?.slots;
    const fb = ring?.frameBytes;
    if (typeof ring !== 'object' || ring === null || typeof s !== 'number' || !Number.isInteger(s) || s < 2 || (s & (s - 1)) !== 0 ||
      typeof fb !== 'number' || !Number.isInteger(fb) || fb < 64) {
      throw bad('ringSize', 'an object { slots: a power of two, frameBytes: the largest frame }');
    }
  }
  if (o.startTimeoutMs !== undefined && (typeof o.startTimeoutMs !== 'number' || !Number.isFinite(o.startTimeoutMs) || o.startTimeoutMs <= 0)) throw bad('startTimeoutMs', 'a positive number of milliseconds');
  if (o.app !== undefined && (typeof o.app !== 'string' || o.app === '')) throw bad('app', 'a module path');
  if (o.preload !== undefined && (!Array.isArray(o.preload) || o.preload.some((x) => typeof x !== 'string'))) throw bad('preload', 'an array of module paths');
  if (o.onFatal !== undefined && typeof o.onFatal !== 'function') throw bad('onFatal', 'a function taking a message');
  if (o.busyPoll !== undefined && typeof o.busyPoll !== 'boolean') throw bad('busyPoll', 'true or false');
}

/** An attached AF_XDP device as the main thread keeps it. */
interface Attachment {
  info: ShardDeviceInfo;
  own(addr: IpAddr, vlan: number, add: boolean): void;
  ownMac(mac: Uint8Array, vlan: number, add: boolean): void;
  close(): void;
}

/** Receive queues of a kernel interface (its rx-N entries in sysfs); 1 when it cannot be read. */
export function rxQueues(ifname: string): number {
  try {
    return Math.max(1, fs.readdirSync(`/sys/class/net/${ifname}/queues`).filter((q) => /^rx-\d+$/.test(q)).length);
  } catch {
    return 1;
  }
}

/** The shard count a config runs with: checked (1..32), or 'auto' resolved. */
export function resolveShards(cfg: StackConfig, shards: number | 'auto'): number {
  if (shards === 'auto') {
    const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    const afxdp = cfg.devices.filter((d) => d.driver === 'afxdp');
    const queues = afxdp.length ? Math.min(...afxdp.map((d) => rxQueues(d.ifname ?? d.name))) : cpus;
    return Math.max(1, Math.min(queues, cpus, MAX_SHARDS));
  }
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) throw new RangeError(`shards must be 'auto' or an integer 1..${MAX_SHARDS}, got ${JSON.stringify(shards)}`);
  for (const d of cfg.devices) {
    if (d.queue !== undefined) throw new Error(`devices: '${d.name}' names queue ${d.queue}, but a stack of shards uses queues 0..${shards - 1} (one per shard): remove 'queue'`);
    if (d.driver === 'afxdp') {
      const q = rxQueues(d.ifname ?? d.name);
      if (shards > q) throw new Error(`devices: '${d.name}' has ${q} receive queue(s), fewer than the ${shards} shards (ethtool -L ${d.ifname ?? d.name} combined ${shards}, or fewer shards)`);
    }
  }
  return shards;
}

/** Omit over each member of a union. */
type DistOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

interface Pending { resolve(v: unknown): void; reject(e: Error): void }

export class ShardedStack implements ControlTarget {
  readonly name: string;
  private readonly workers: Worker[] = [];
  private readonly pending: Map<number, Pending>[] = [];
  private nextId = 1;
  private nextVsId: number;
  /** Changes run one after another (each on every shard) in the order they were asked. */
  private chain: Promise<unknown> = Promise.resolve();
  private closing = false;
  private dead = false;
  private controlServer: ControlServer | null = null;
  private nextTraceId = 1;
  /** Traces running (each one's stop). */
  private readonly traceStops = new Set<() => Promise<void>>();
  /** Streamed traces: the merger of each (by trace number). */
  private readonly traceStreams = new Map<number, CaptureMerger>();
  private nextPingId = 1;
  /** Pings running (shard 0), by number: their events. */
  private readonly pings = new Map<number, PingEvents>();
  private readonly log: (m: string) => void;
  readonly logger: Logger;
  private metricsHostView: MetricsHost | null = null;

  private constructor(readonly config: StackConfig, readonly shards: number, private readonly attachments: Map<string, Attachment>,
    private readonly opts: ShardedStackOptions & { logger: Logger }) {
    this.name = config.name ?? 'xdpstack';
    this.nextVsId = config.virtualServers.length + 1;
    this.logger = opts.logger;
    this.log = driverLog(this.logger);
  }

  /** Starts the shards; resolves once every shard runs its services and application. */
  static async start(config: StackConfig | string, opts: ShardedStackOptions): Promise<ShardedStack> {
    checkShardedOptions(opts);
    const cfg = typeof config === 'string' ? loadConfig(config) : validateConfig(cloneConfig(config), 'config');
    const n = resolveShards(cfg, opts.shards);
    const attachments = new Map<string, Attachment>();
    const logger = stackLogger(opts, cfg);
    let s: ShardedStack | null = null;
    try {
      for (const d of cfg.devices) if (d.driver === 'afxdp') attachments.set(d.name, attachDevice(d, n, driverLog(logger)));
      s = new ShardedStack(cfg, n, attachments, { ...opts, logger });
      // A ring slot holds the largest frame a device's pool can hold.
      const frameBytes = Math.max(2048, ...cfg.devices.map((d) => d.frameSize ?? 2048));
      await s.spawn(allocateMesh(n, randomBytes(16), { flowSize: opts.flowSize, ringSize: opts.ringSize ?? { slots: 512, frameBytes } }));
      if (opts.control !== undefined && opts.control !== false) await listenControl(s, opts.control);
      return s;
    } catch (e) {
      if (s) await s.shutdown();
      else for (const a of attachments.values()) try { a.close(); } catch { /* failing anyway */ }
      throw e;
    }
  }

  private async spawn(mesh: MeshMemory): Promise<void> {
    const devices: Record<string, ShardDeviceInfo> = {};
    for (const d of this.config.devices) devices[d.name] = this.attachments.get(d.name)?.info ?? { ownsInMain: false };
    const secret = randomBytes(16);
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.shards; i++) {
      const data: ShardData = {
        config: this.config, shard: i, shards: this.shards, mesh, secret: Uint8Array.from(secret), devices,
        app: this.opts.app, busyPoll: this.opts.busyPoll, preload: this.opts.preload ?? [...serviceModules()], logLevel: this.logger.level,
      };
      const w = new Worker(path.join(__dirname, 'worker.js'), { workerData: data });
      this.workers.push(w);
      this.pending.push(new Map());
      ready.push(new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`shard ${i} did not start within ${this.opts.startTimeoutMs ?? 30_000} ms`)), this.opts.startTimeoutMs ?? 30_000);
        const early = (msg: string) => { clearTimeout(timer); reject(new Error(`shard ${i} failed to start: ${msg}`)); };
        w.on('message', (m: FromShard) => {
          if (m.t === 'ready') { clearTimeout(timer); resolve(); return; }
          if (m.t === 'fatal' && !this.started) { early(m.msg); return; }
          this.onMessage(i, m);
        });
        w.on('error', (e) => (this.started ? this.fatal(i, e.stack ?? e.message) : early(e.stack ?? e.message)));
        w.on('exit', (code) => {
          if (!this.started) early(`exited with code ${code}`);
          else if (!this.closing) this.fatal(i, `exited with code ${code}`);
        });
      }));
    }
    await Promise.all(ready);
    this.started = true;
  }

  private started = false;

  private onMessage(shard: number, m: FromShard): void {
    switch (m.t) {
      case 'res': {
        const p = this.pending[shard]!.get(m.id);
        if (!p) return;
        this.pending[shard]!.delete(m.id);
        if (m.ok) p.resolve(m.data);
        else p.reject(new Error(m.error));
        return;
      }
      case 'own': {
        const a = this.attachments.get(m.dev);
        if (!a) return;
        try {
          if (m.mac) a.ownMac(m.mac, m.vlan, m.add);
          else if (m.addr !== undefined) a.own(typeof m.addr === 'number' ? m.addr : new Ip6(m.addr.w0, m.addr.w1, m.addr.w2, m.addr.w3), m.vlan, m.add);
        } catch (e) {
          this.log(`device '${m.dev}': XDP map update failed: ${(e as Error).message}`);
        }
        return;
      }
      case 'log':
        this.logger.log(m.level ?? 'warn', m.msg, { ...m.fields, shard });
        return;
      case 'traceData':
        this.traceStreams.get(m.trace)?.push(shard, m.data, m.watermark);
        return;
      case 'pingEvent': {
        const ev = this.pings.get(m.ping);
        if (!ev) return;
        if (m.kind === 'reply') ev.onReply?.(m.data);
        else if (m.kind === 'error') ev.onError?.(m.data.seq, m.data.error);
        else if (m.kind === 'unreachable') ev.onUnreachable?.(m.data);
        else { this.pings.delete(m.ping); ev.onDone?.(m.data); }
        return;
      }
      case 'fatal':
        this.fatal(shard, m.msg);
        return;
    }
  }

  /** Sends one message to shard `i` and resolves with its answer. */
  private ask(i: number, m: DistOmit<ToShard, 'id'>): Promise<unknown> {
    if (this.dead) return Promise.reject(new Error('the stack of shards has stopped'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending[i]!.set(id, { resolve, reject });
      this.workers[i]!.postMessage({ ...m, id });
    });
  }

  private all(m: DistOmit<ToShard, 'id'>): Promise<unknown[]> {
    return Promise.all(this.workers.map((_, i) => this.ask(i, m)));
  }

  /** ControlTarget: one request, answered for the whole group. */
  request(req: Request): Promise<unknown> {
    if (req.cmd === 'ping') return Promise.resolve({ name: this.name, pid: process.pid, shards: this.shards });
    if (req.cmd === 'show') {
      const { perShard, ...rest } = req;
      return this.all({ t: 'req', req: rest as Request }).then((parts) =>
        (perShard === true ? parts.map((data, shard) => ({ shard, data })) : mergeShow(String(req.kind), parts)));
    }
    if (ALL_SHARD_REQUESTS.has(req.cmd)) {
      // Every shard, in order with the changes (a flush after a 'link.add' finds the link in each).
      const run = async (): Promise<unknown> => mergeAnswers(req.cmd, await this.all({ t: 'req', req }));
      const p = this.chain.then(run, run);
      this.chain = p.catch(() => undefined);
      return p;
    }
    if (!CHANGE_REQUESTS.has(req.cmd)) return this.ask(0, { t: 'req', req }); // shard 0 gives the error
    const run = async (): Promise<unknown> => {
      const r = req.cmd === 'vs.add' ? { ...req, id: this.nextVsId } : req;
      const first = await this.ask(0, { t: 'req', req: r });
      if (req.cmd === 'vs.add') this.nextVsId++;
      // Shard 0 accepted it: the others hold the same state, so they accept it too.
      const rest = await Promise.allSettled(this.workers.slice(1).map((_, k) => this.ask(k + 1, { t: 'req', req: r })));
      const bad = rest.find((x) => x.status === 'rejected') as PromiseRejectedResult | undefined;
      if (bad) this.fatal(-1, `shards disagree on '${req.cmd}': ${(bad.reason as Error).message}`);
      // Logged once for the group (each shard logs its own copy at 'debug').
      else this.logger.info(req.cmd, changeFields({ ...req, ...(first !== null && typeof first === 'object' ? first as Record<string, unknown> : {}) }));
      return first;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** `show KIND` over all shards (merged), or each shard's own answer with `perShard`. */
  show(kind: string, opts: ShowOptions & { perShard?: boolean } = {}): Promise<unknown> {
    const { perShard, ...narrow } = opts;
    return this.request({ cmd: 'show', kind, ...narrow, ...(perShard ? { perShard: true } : {}) });
  }

  /**
   * ControlTarget: a trace of every shard, into the file `out` (one part per shard, merged by time
   * when it stops) or to the stream `stream` (merged as the records come). Several may run at once
   * (each shard keeps them by number); one that a shard refuses starts in none.
   */
  async startTrace(o: TraceRequest): Promise<TraceLike> {
    if (!o.stream && !o.out) throw new Error(`trace: give 'out' (a file) or a stream`);
    const trace = this.nextTraceId++;
    const filter = TraceFilter.parse(o.filter); // a clear error before any shard is asked
    const limit = o.count && o.count > 0 ? o.count : Infinity;
    const stream = o.stream;
    const parts = stream ? [] : this.workers.map((_, i) => `${o.out}.shard${i}`);
    // Streamed: the merged records go through one writer (header first) to the stream.
    let captured = 0;
    let dropped = 0;
    let out: ReturnType<typeof traceWriter> | null = null;
    let stop: () => Promise<void> = async () => {};
    if (stream) {
      out = traceWriter({ sink: (c) => stream.write(c) });
      const w = out.writer;
      const merger = new CaptureMerger(this.shards, (data, ts, orig) => {
        if (captured >= limit || w.isClosed) return;
        if (stream.full()) { dropped++; return; }
        w.write(data, 0, data.length, ts, orig);
        if (++captured >= limit) void stop();
      });
      this.traceStreams.set(trace, merger);
    }
    const started = await Promise.allSettled(this.workers.map((_, i) => this.ask(i, {
      t: 'trace', trace, ...(stream ? { stream: true } : { out: parts[i]! }), vs: o.vs, count: o.count, filter: filter.spec,
    })));
    const bad = started.find((x) => x.status === 'rejected') as PromiseRejectedResult | undefined;
    if (bad) {
      await Promise.allSettled(this.workers.map((_, i) => this.ask(i, { t: 'traceStop', trace })));
      this.traceStreams.delete(trace);
      for (const p of parts) try { fs.unlinkSync(p); } catch { /* never made */ }
      throw bad.reason;
    }
    const listeners: ((n: number, c: TraceCounts) => void)[] = [];
    let done = false;
    let finished = false;
    let counts: TraceCounts = { seen: 0, matched: 0, captured: 0, dropped: 0 };
    stop = async (): Promise<void> => {
      if (done) return;
      done = true;
      clearInterval(poll);
      this.traceStops.delete(stop);
      // Each shard's last records come before its answer (one message channel, in order).
      const res = await Promise.allSettled(this.workers.map((_, i) => this.ask(i, { t: 'traceStop', trace })));
      for (const r of res) {
        const c = r.status === 'fulfilled' ? r.value as TraceCounts | null : null;
        if (c) { counts.seen += c.seen; counts.matched += c.matched; counts.dropped += c.dropped; }
      }
      if (stream) {
        this.traceStreams.delete(trace);
        out!.writer.close();
        counts = { ...counts, captured, dropped: counts.dropped + dropped };
      } else {
        counts.captured = mergeCaptures(parts, o.out!, limit);
      }
      finished = true;
      for (const l of listeners) l(counts.captured, counts);
    };
    this.traceStops.add(stop);
    if (out) out.started((end) => listeners.push(end));
    // A file's count is the whole group's: the shards' progress is read a few times a second (a
    // stream counts what it merged).
    const poll = setInterval(() => {
      if (stream) return;
      void this.all({ t: 'traceFrames', trace }).then((n) => {
        if ((n as number[]).reduce((a, b) => a + b, 0) >= limit) void stop();
      }, () => undefined);
    }, 200);
    return {
      stop: () => { void stop(); },
      onDone: (cb) => { if (finished) cb(counts.captured, counts); else listeners.push(cb); },
    };
  }

  /** What a scrape of the metrics reads: `show counters`, `show limits` and `show vips`, merged over the shards. */
  async metricsSnapshot(): Promise<MetricsSnapshot> {
    const [counters, limits, vips] = await Promise.all([this.show('counters'), this.show('limits'), this.show('vips')]);
    return { counters: counters as MetricsSnapshot['counters'], limits: limits as LimitRow[], vips: vips as Record<string, unknown>[] };
  }

  private get metricsHost(): MetricsHost {
    return this.metricsHostView ??= new MetricsHost(this.name, () => this.metricsSnapshot(), this.logger, () => this.closing, 'the stack of shards has stopped');
  }

  /** The group's Prometheus metrics (text exposition format), the shards' figures summed as `show` sums them. */
  metrics(): Promise<string> {
    return this.metricsHost.text();
  }

  /** As Stack.serveMetrics: HTTP /metrics at `listen` (default: the config's `metrics.listen`), served by this (main) thread. */
  serveMetrics(listen: string | undefined = this.config.metrics?.listen): Promise<MetricsEndpoint> {
    return this.metricsHost.serve(listen);
  }

  /**
   * ControlTarget: a ping from virtual server `vs`, run by shard 0 (its echo identifiers are shard
   * 0's share, so a reply that reaches another shard's queue is handed to it).
   */
  async startPing(vs: string, target: string, opts: PingOptions, events: PingEvents): Promise<PingLike> {
    const ping = this.nextPingId++;
    this.pings.set(ping, events);
    let start: PingStart;
    try {
      start = await this.ask(0, { t: 'ping', ping, vs, target, opts }) as PingStart;
    } catch (e) {
      this.pings.delete(ping);
      throw e;
    }
    return { start, stop: () => { if (this.pings.has(ping)) void this.ask(0, { t: 'pingStop', ping }).catch(() => undefined); } };
  }

  /** A ping from virtual server `vs` (see startPing): its summary. */
  ping(vs: string, target: string, opts: PingOptions = {}, events: PingEvents = {}): Promise<PingSummary> {
    return new Promise((resolve, reject) => {
      this.startPing(vs, target, opts, { ...events, onDone: (s) => { events.onDone?.(s); resolve(s); } }).catch(reject);
    });
  }

  /** Stops every shard and detaches the devices (traces still running are stopped and merged first). */
  /** The control socket's path while it is open (the `control` option, listenControl()). */
  get controlSocket(): string | null { return this.controlServer?.socketPath ?? null; }

  /** @internal listenControl() hands the socket over; close() (or a shard's death) removes it. */
  adoptControl(c: ControlServer): void {
    if (this.closing) throw new Error('the stack of shards is closed');
    if (this.controlServer) throw new Error(`stack '${this.name}' already has a control socket (${this.controlServer.socketPath})`);
    this.controlServer = c;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // First, so no control request reaches shards that are going; the socket file is gone at once.
    void this.controlServer?.close();
    await Promise.allSettled([...this.traceStops].map((stop) => stop()));
    if (this.pings.size) await Promise.allSettled([...this.pings.keys()].map((ping) => this.ask(0, { t: 'pingStop', ping })));
    await Promise.race([
      Promise.allSettled(this.workers.map((_, i) => this.ask(i, { t: 'close' }))),
      new Promise((r) => setTimeout(r, 5000)),
    ]);
    await this.shutdown();
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    this.dead = true;
    await this.metricsHostView?.close();
    void this.controlServer?.close();
    // Traces end with the shards (their polls must not keep the process alive).
    for (const stop of [...this.traceStops]) void stop();
    await Promise.allSettled(this.workers.map((w) => w.terminate()));
    for (const a of this.attachments.values()) try { a.close(); } catch (e) { this.log(`detaching: ${(e as Error).message}`); }
    this.attachments.clear();
    for (const p of this.pending) { for (const x of p.values()) x.reject(new Error('the stack of shards has stopped')); p.clear(); }
  }

  /** A shard died: everything stops, then the process (by default). */
  private fatal(shard: number, msg: string): void {
    if (this.closing) return;
    const text = shard >= 0 ? `xdpstack: shard ${shard} of stack '${this.name}' died: ${msg}\nxdpstack: stopping every shard and detaching the devices`
      : `xdpstack: ${msg}\nxdpstack: stopping every shard and detaching the devices`;
    void this.shutdown().then(() => {
      if (this.opts.onFatal) this.opts.onFatal(text);
      else {
        process.stderr.write(`${text}\n`);
        process.exit(1);
      }
    });
  }
}

export { mergeCaptures } from './capture';

/**
 * A warning when a device has receive queues no shard serves: the XDP program redirects a frame to
 * the AF_XDP socket of its own queue, so the frames the NIC puts on queues past the shards pass to
 * the kernel, never reaching the stack. Null when every queue has its shard, or the device's RSS
 * table (when known) spreads over the shards' queues only.
 */
export function unservedQueues(dev: string, ifname: string, queues: number, shards: number, indir: readonly number[] | null): string | null {
  if (queues <= shards) return null;
  if (indir !== null && indir.length > 0 && indir.every((q) => q < shards)) return null;
  return `device '${dev}': ${queues} receive queues but ${shards} shard(s): the frames the NIC puts on queues ${shards}..${queues - 1} go to ` +
    `the kernel, not to the stack (ethtool -L ${ifname} combined ${shards}, or ethtool -X ${ifname} equal ${shards}, or more shards)`;
}

/** Attaches an AF_XDP device for `shards` queues (program and maps in this thread). */
function attachDevice(d: StackConfig['devices'][number], shards: number, log: (m: string) => void): Attachment {
  // Loaded lazily: memory-device groups never touch the native addon.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { attachAfxdpProgram } = require('../../driver/afxdp') as typeof import('../../driver/afxdp');
  const ifname = d.ifname ?? d.name;
  const a = attachAfxdpProgram({ ifname, mode: d.mode, police: d.police, queues: shards, log });
  // RSS steers the replies of the connections shards open to the opening shard's queue, when
  // the device's hash can be computed here (Toeplitz with a readable key and table).
  const why = { reason: '' };
  const r = readRss(ifname, why);
  const unserved = unservedQueues(d.name, ifname, rxQueues(ifname), shards, r?.indir ?? null);
  if (unserved) log(unserved);
  if (!r) log(`device '${d.name}': connections the shards open are not steered by RSS (${why.reason}): their stray frames are handed to the opening shard`);
  return {
    info: { ownsInMain: true, ifname, program: a.ref, ...(r ? { rss: { key: r.key, indir: r.indir, tcp4: r.tcp4, tcp6: r.tcp6 } } : {}) },
    own: (addr, vlan, add) => a.own(addr, Math.max(vlan, 0), add),
    ownMac: (mac, vlan, add) => a.ownMac(mac, Math.max(vlan, 0), add),
    close: () => a.close(),
  };
}
