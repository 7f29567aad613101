/**
 * The library entry point: `createStack(config | path)` opens the configured devices, builds the
 * engine and runtime, creates the virtual servers and starts the services.
 *
 *   const stack = createStack('demo.json');
 *   const sock = stack.vs('a').createSocket('udp4');
 *   sock.bind(9000);
 *   stack.start();          // real time (AF_XDP); pcap/memory devices can use runVirtual()
 *   ...
 *   stack.close();          // closes sockets and drivers (AF_XDP: detaches the XDP program)
 *
 * Every driver is wrapped in a tap, so a running stack can mirror the frames of some links into
 * a pcap file on request (control socket `trace`). With no trace active, a tap costs one length
 * test per burst.
 */
import type { Driver } from '../driver/types';
import { macToString } from '../driver/types';
import { openPcapDriver, PcapWriter } from '../driver/pcap';
import { createMemoryLink, MemoryEndpoint } from '../driver/memory';
import { DeviceSpec, Engine, EngineOptions } from './engine';
import { Runtime, epochOffsetUs, monotonicUs } from './runtime';
import { VsHandle } from './api/vs-handle';
import { TapDriver, Trace, TraceFilter } from './trace';
import type { VirtualServer } from './vs';
import { tcpState } from './transport/tcp';
import { udpPorts } from './transport/udp';
import { addressRow, hostPort, linkAddressTexts, neighborRow, neighborStateName, routeRow, ruleRow } from './show';
import { connectionRows, parseStateFilter, tcpCounterRow } from './connections';
import { cloneConfig, DeviceConfig, fileErrorText, LinkConfig, loadConfig, StackConfig, validateConfig } from './control/config';
import { Service, ServiceConfig, serviceKind } from './control/services';
import { Counters, dropsView } from './counters';
import { checkLink, describe, enforce, join, LinkFacts, parseAddrText, ValidationError, ValidationState, vsNameProblem } from './control/validate';
import { vsConfig } from './control/running';
import { addrEq, addrToString, IpAddr, parseAddr } from '../protocols/ip/addr';
import { Drop, dropName } from '../protocols/drop';
import { checkVsLimits, LimitRow, LimitWatch, VsLimits } from './limits';
import { changeFields, driverLog, Logger, LogLevel, LogOptions, stackLogger } from './control/log';
import type { MetricsEndpoint, MetricsSnapshot } from './control/metrics';
import { MetricsHost } from './control/metrics-host';
import type { Steering } from './shard/steer';

/**
 * Logging (stack/control/log.ts): `logger`, or `log` (where the formatted lines go; default
 * standard error), `logLevel` and `logFormat` (default: the config's `logLevel`/`logFormat`, else
 * 'info' and 'text').
 */
export interface StackOptions extends LogOptions {
  /** Use these drivers instead of opening the configured ones (by device name). */
  drivers?: Record<string, Driver>;
  /** Start time (µs) of the engine; virtual-time users pass their first timestamp. */
  now?: number;
  /** Busy-poll the runtime loop (real time). */
  busyPoll?: boolean;
  /**
   * Shards (stack/shard): this stack is one shard of a group; flows of other shards are handed to
   * them through `steer`. Every shard of a group has the same `secret` (SYN cookies and flow
   * hashes must agree whichever shard a segment reaches).
   */
  steer?: Steering;
  secret?: Uint8Array;
}

export type ShowKind = 'vs' | 'links' | 'addresses' | 'routes' | 'rules' | 'neighbors' | 'counters' | 'pool' | 'limits' | 'connections' | 'vips' | 'config';
export const SHOW_KINDS: readonly ShowKind[] = ['vs', 'links', 'addresses', 'routes', 'rules', 'neighbors', 'counters', 'pool', 'limits', 'connections', 'vips', 'config'];

/**
 * What `show` narrows to: one VS; for `connections` also states (ss's state filter names, as
 * `parseStateFilter` takes them) and a port (local or remote).
 */
export interface ShowOptions {
  vs?: string;
  state?: string;
  port?: number;
}

export { TapDriver, Trace, TraceFilter } from './trace';
export { VsHandle } from './api/vs-handle';

// ---------------------------------------------------------------------------------------------
// Stack

export class Stack {
  readonly engine: Engine;
  readonly runtime: Runtime;
  readonly name: string;
  /** The drivers as the runtime sees them (taps around the real ones). */
  readonly taps: TapDriver[] = [];
  readonly services: Service[] = [];
  private readonly peers = new Map<string, MemoryEndpoint>();
  private readonly handles = new Map<VirtualServer, VsHandle>();
  private readonly activeTraces = new Set<Trace>();
  /** Where the stack's events go (stack/control/log.ts). */
  readonly logger: Logger;
  /** Runtime changes are logged at 'info'; those a config builds, and a shard's own (the control plane logs them), at 'debug'. */
  private changeLevel: LogLevel = 'debug';
  private readonly shardChangeLevel: LogLevel;
  private readonly limitWatch = new LimitWatch();
  private nextLimitCheck = 0;
  private housekeepingTimer: NodeJS.Timeout | null = null;
  private metricsHostView: MetricsHost | null = null;
  private running = false;
  private closed = false;
  private control: OwnedControl | null = null;

  /** @internal use createStack() */
  constructor(readonly config: StackConfig, opts: StackOptions = {}) {
    this.name = config.name ?? 'xdpstack';
    this.logger = stackLogger(opts, config);
    const log = driverLog(this.logger);
    this.shardChangeLevel = opts.steer ? 'debug' : 'info';
    const drivers: Driver[] = [];
    try {
      for (const d of config.devices) drivers.push(opts.drivers?.[d.name] ?? this.openDriver(d, log));
    } catch (e) {
      for (const d of drivers) try { d.close(); } catch { /* already failing */ }
      throw e;
    }
    let runtime: Runtime | null = null;
    const { dadTransmits, ...engineOpts } = config.engine ?? {};
    const eo: EngineOptions = {
      ...engineOpts, limits: config.limits, now: opts.now ?? 0, onOutput: () => runtime?.engineKick(),
      log: (m, level = 'error') => this.logger.log(level, m),
      ...(opts.secret ? { secret: opts.secret } : {}),
      ...(dadTransmits !== undefined ? { ndp: { dadTransmits } } : {}),
    };
    this.engine = new Engine(eo);
    if (opts.steer) this.engine.steer = opts.steer;
    try {
      config.devices.forEach((d, i) => {
        const drv = drivers[i]!;
        this.engine.addDevice({ name: d.name, pool: drv.pool, mac: drv.mac, mtu: drv.mtu, ...ownership(drv) });
        this.taps.push(new TapDriver(drv, i));
      });
      runtime = new Runtime(this.engine, this.taps, { busyPoll: opts.busyPoll });
      this.runtime = runtime;
      runtime.onStep = (now) => this.housekeeping(now);
      for (const [i, v] of config.virtualServers.entries()) {
        // Shards: the config's VSes have the identities the control plane counts from.
        const h = this.createVs(v.name, [], v.limits, opts.steer ? i + 1 : undefined);
        for (const l of v.links) h.addLink(l);
        for (const r of v.rules ?? []) h.addRule(r);
        for (const r of v.routes ?? []) h.addRoute(r);
        for (const a of v.vips ?? []) h.addVip(a);
        if (v.decap) h.setDecap(v.decap);
      }
      for (const s of config.services ?? []) this.startService(s);
      this.changeLevel = this.shardChangeLevel;
    } catch (e) {
      for (const d of drivers) try { d.close(); } catch { /* already failing */ }
      throw e;
    }
  }

  private openDriver(d: DeviceConfig, log: (m: string, level?: LogLevel) => void): Driver {
    switch (d.driver) {
      case 'afxdp': {
        // Loaded lazily: pcap/memory stacks never touch the native addon.
        // eslint-disable-next-line @typescript-eslint/no-var-requires
        const { openAfxdp } = require('../driver/afxdp') as typeof import('../driver/afxdp');
        return openAfxdp({
          ifname: d.ifname ?? d.name, queue: d.queue, frameSize: d.frameSize, frameCount: d.frameCount, mode: d.mode,
          zeroCopy: d.zeroCopy, busyPoll: d.busyPoll, ringSize: d.ringSize, police: d.police, log,
        });
      }
      case 'pcap':
        try {
          return openPcapDriver({ name: d.name, input: d.input, output: d.output, mac: d.mac, mtu: d.mtu, frameSize: d.frameSize, frameCount: d.frameCount });
        } catch (e) {
          // Which device, which file, and why (a capture's own problem says where in it).
          const err = e as NodeJS.ErrnoException;
          const file = err.code ? (err.path ?? '') : d.input ?? '';
          throw new Error(`device '${d.name}': ${err.code ? `cannot open ${file}: ${fileErrorText(e)}` : `${file}: ${err.message}`}`);
        }
      case 'memory': {
        const l = createMemoryLink({ nameA: d.name, nameB: `${d.name}-peer`, macA: d.mac, mtu: d.mtu, frameSize: d.frameSize, frameCount: d.frameCount, seed: d.seed });
        this.peers.set(d.name, l.b);
        return l.a;
      }
      default:
        throw new Error(`unknown driver ${JSON.stringify((d as DeviceConfig).driver)}`);
    }
  }

  private startService(s: ServiceConfig): void {
    const kind = serviceKind(s.type);
    if (!kind) throw new Error(`unknown service type ${JSON.stringify(s.type)}`);
    const port = s.port ?? kind.defaultPort;
    if (port === undefined) throw new Error(`service ${s.type} in virtual server '${s.vs}': no port`);
    const svc = kind.start(this.vs(s.vs), { ...s, port }, { log: (m) => this.logger.info(m, { service: s.type, vs: s.vs }) });
    this.serviceVs.set(svc, s.vs);
    this.serviceConfigs.set(svc, s);
    this.services.push(svc);
  }

  /** Each running service's config (`show config`). */
  private readonly serviceConfigs = new Map<Service, ServiceConfig>();

  /**
   * @internal An address (or VIP) of VS `vs` that a running service listens on cannot be removed:
   * the service would be left on an address the VS no longer has, and `show config` would write
   * a configuration `run` refuses. Throws naming the service.
   */
  refuseIfServed(vs: string, addrText: string, what: string): void {
    let a: IpAddr;
    try { a = parseAddr(addrText); } catch { return; } // the removal itself reports the bad text
    for (const svc of this.services) {
      const c = this.serviceConfigs.get(svc);
      if (!c || c.vs !== vs || c.address === undefined) continue;
      let b: IpAddr;
      try { b = parseAddr(c.address); } catch { continue; }
      if (addrEq(a, b)) throw new Error(`virtual server '${vs}': ${what} ${addrToString(a)} is where service '${c.type}' (port ${c.port ?? 'default'}) listens: it stays while the service runs`);
    }
  }

  /** Which VS each service runs in (services of a destroyed VS are closed and forgotten). */
  private readonly serviceVs = new Map<Service, string>();

  /** The other end of a 'memory' device (tests and simulations drive it). */
  peer(device: string): MemoryEndpoint {
    const p = this.peers.get(device);
    if (!p) throw new Error(`device '${device}' is not a memory device`);
    return p;
  }

  vs(name: string): VsHandle {
    const raw = this.engine.vs(name);
    let h = this.handles.get(raw);
    if (!h) { h = new VsHandle(this, raw); this.handles.set(raw, h); }
    return h;
  }

  /**
   * Creates a virtual server with `links` (each with its addresses). Everything is checked by the
   * validator against the running state first (a VLAN + MAC or an address another VS uses is
   * refused): a refused VS is not created. Links can also come later (`vs(name).addLink()`).
   */
  createVs(name: string, links: LinkConfig[] = [], limits?: VsLimits, id?: number): VsHandle {
    if (this.closed) throw new Error('stack is closed');
    // Shards: a VS's identity keys its flows and ports in the shared table, so it is the same in
    // every shard and only the control plane issues it; one this shard took itself would also be
    // the next one the control plane issues (its 'vs.add' then refused for good).
    if (this.engine.steer !== null && id === undefined) {
      throw new Error(`virtual server '${name}': in a stack of shards, virtual servers are added through the control plane (request 'vs.add'), which gives each one identity in every shard`);
    }
    enforce('virtual server', (c) => {
      const bad = vsNameProblem(name);
      if (bad) c.fail('name', bad);
      else if (this.engine.vsByName.has(name)) c.fail('', `virtual server '${name}' already exists`);
      if (limits !== undefined) {
        try { checkVsLimits(limits); } catch (e) { c.fail('limits', (e as Error).message); }
      }
      if (!Array.isArray(links)) { c.fail('links', `must be an array, got ${describe(links)}`); return; }
      const siblings: LinkFacts[] = [];
      const state = this.engine.state;
      // Links of one request must not collide with each other either: record them as they pass.
      const view: ValidationState = {
        device: (d) => state.device(d), deviceNames: () => state.deviceNames(), links: () => siblings, hasRulePriority: () => false,
        macUser: (d, v, m) => state.macUser(d, v, m) ?? (siblings.find((x) => x.device === d && x.vlan === v && x.mac === m) ? 'another link of this request' : undefined),
        addressUser: (d, v, a) => state.addressUser(d, v, a) ?? (siblings.find((x) => x.device === d && x.vlan === v && x.addrs.some((y) => addrEq(y.addr, a))) ? 'another link of this request' : undefined),
      };
      for (let i = 0; i < links.length; i++) { const f = checkLink(c, links[i], join('links', i), view, name, i, siblings); if (f) siblings.push(f); }
    });
    const raw = this.engine.createVs(name, limits, id);
    const h = new VsHandle(this, raw, limits ? structuredClone(limits) : undefined);
    this.handles.set(raw, h);
    try {
      for (const l of links) h.addLinkQuietly(l);
    } catch (e) {
      this.destroyVsQuietly(name);
      throw e;
    }
    this.logChange('vs.add', { name, links, limits });
    return h;
  }

  destroyVs(name: string): void {
    if (this.closed) throw new Error('stack is closed');
    this.destroyVsQuietly(name);
    this.logChange('vs.del', { name });
  }

  private destroyVsQuietly(name: string): void {
    const raw = this.engine.vs(name);
    for (let i = this.services.length - 1; i >= 0; i--) {
      const svc = this.services[i]!;
      if (this.serviceVs.get(svc) !== name) continue;
      try { svc.close(); } catch { /* its sockets go with the VS anyway */ }
      this.services.splice(i, 1);
      this.serviceVs.delete(svc);
      this.serviceConfigs.delete(svc);
    }
    this.engine.destroyVs(name);
    this.handles.delete(raw);
  }

  /** Real-time loop (returns at once; the event loop runs it). */
  start(): void {
    if (this.closed) throw new Error('stack is closed');
    if (this.running) return;
    this.running = true;
    this.engine.now = monotonicUs();
    // Trace times: µs since the epoch on the monotonic clock (the same in every thread).
    const offset = epochOffsetUs();
    for (const t of this.taps) {
      if (!t.onReadable) t.pollUs = 1000;
      t.clock = monotonicUs;
      t.epochOffset = offset;
    }
    this.runtime.start();
    // An idle loop may not step for a long time: the housekeeping also runs on its own.
    this.housekeepingTimer = setInterval(() => this.housekeeping(monotonicUs()), LIMIT_CHECK_US / 1000);
    this.housekeepingTimer.unref();
  }

  /** @internal Logs a runtime change once it is made (VsHandle, createVs, destroyVs). */
  logChange(cmd: string, fields: Record<string, unknown>): void {
    if (this.logger.enabled(this.changeLevel)) this.logger.log(this.changeLevel, cmd, changeFields(fields));
  }

  /**
   * After every step, at most once a second of stack time: limits reached since the last look, or
   * clear again, are logged (once each, never per packet).
   */
  private housekeeping(now: number): void {
    if (now < this.nextLimitCheck || this.closed) return;
    this.nextLimitCheck = now + LIMIT_CHECK_US;
    for (const ev of this.limitWatch.observe(limitRows(this.engine, [...this.engine.vsByName.values()], true))) {
      // reached: the times since the last look; cleared: the times in the whole episode.
      const r = ev.row;
      if (ev.kind === 'reached') this.logger.warn('limit.reached', { vs: r.vs, scope: r.scope, limit: r.limit, max: r.max, hits: ev.hits });
      else this.logger.info('limit.cleared', { vs: r.vs, scope: r.scope, limit: r.limit, used: r.used, max: r.max, hits: ev.hits });
    }
  }

  /** What a scrape of the metrics reads: `show counters`, `show limits` and `show vips`. */
  metricsSnapshot(): MetricsSnapshot {
    return { counters: this.show('counters') as MetricsSnapshot['counters'], limits: this.show('limits') as LimitRow[], vips: this.show('vips') as Record<string, unknown>[] };
  }

  private get metricsHost(): MetricsHost {
    return this.metricsHostView ??= new MetricsHost(this.name, () => this.metricsSnapshot(), this.logger, () => this.closed, 'stack is closed');
  }

  /** The stack's Prometheus metrics (text exposition format) as of now. */
  metrics(): Promise<string> {
    return this.metricsHost.text();
  }

  /**
   * Serves the metrics over HTTP at `listen` ("127.0.0.1:9464", "[::1]:9464"; default: the
   * config's `metrics.listen`), on the host's own network, at /metrics. Rejects with a clear error
   * (bad address, address in use). The endpoint closes with the stack.
   */
  serveMetrics(listen: string | undefined = this.config.metrics?.listen): Promise<MetricsEndpoint> {
    return this.metricsHost.serve(listen);
  }

  /** Virtual time (pcap and memory devices): runs from `start` until nothing is due or `until`. */
  runVirtual(start = this.engine.now, until = Infinity): number {
    if (this.running) throw new Error('stack runs in real time; runVirtual() is for stacks that were not started');
    for (const t of this.taps) { t.pollUs = 0; t.clock = null; t.epochOffset = 0; }
    return this.runtime.runVirtual(start, until);
  }

  /**
   * Mirrors the frames of `vs`'s links (or of every device) that pass `filter` into `writer`, up to
   * `count` frames. `full`: a streamed capture's reader is behind (frames are dropped, counted).
   */
  trace(opts: { vs?: string; count?: number; writer: PcapWriter; filter?: TraceFilter; full?: () => boolean }): Trace {
    if (this.closed) throw new Error('stack is closed');
    enforce('trace', (c) => {
      if (!c.isObject(opts, '')) return;
      const w = (opts as { writer?: unknown }).writer as { write?: unknown; close?: unknown } | undefined;
      if (typeof w !== 'object' || w === null || typeof w.write !== 'function' || typeof w.close !== 'function') c.fail('writer', `must be a PcapWriter (new PcapWriter(path)), got ${describe(w)}`);
      c.string(opts, 'vs', '', false);
      c.int(opts, 'count', '', false, 0, Number.MAX_SAFE_INTEGER);
      if (opts.filter !== undefined && !(opts.filter instanceof TraceFilter)) c.fail('filter', `must be a TraceFilter (TraceFilter.parse({ port: 80 })), got ${describe(opts.filter)}`);
      if (opts.full !== undefined && typeof opts.full !== 'function') c.fail('full', `must be a function, got ${describe(opts.full)}`);
    });
    const match = new Map<number, Set<number> | null>();
    if (opts.vs !== undefined) {
      const raw = this.engine.vs(opts.vs);
      for (const l of raw.links) {
        const s = match.get(l.dev) ?? new Set<number>();
        s.add(l.vlan);
        match.set(l.dev, s);
      }
    } else {
      this.taps.forEach((_, i) => match.set(i, null));
    }
    const t = new Trace(opts.writer, match, opts.count && opts.count > 0 ? opts.count : Infinity, opts.filter ?? TraceFilter.parse({}), (x) => {
      this.activeTraces.delete(x);
      for (const tap of this.taps) tap.traces = tap.traces.filter((y) => y !== x);
    }, opts.full ?? null);
    this.activeTraces.add(t);
    for (const [dev] of match) { const tap = this.taps[dev]!; tap.traces = [...tap.traces, t]; }
    return t;
  }

  /** The control socket's path while it is open (createStack's `control` option, listenControl()). */
  get controlSocket(): string | null { return this.control?.socketPath ?? null; }

  /** @internal listenControl() (stack/control/control.ts) hands the socket over; close() closes it. */
  adoptControl(c: OwnedControl): void {
    if (this.closed) throw new Error('stack is closed');
    if (this.control) throw new Error(`stack '${this.name}' already has a control socket (${this.control.socketPath})`);
    this.control = c;
  }

  /** Stops the loop, the services, the traces, and closes every driver (and the control socket). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // First, so no control request reaches a half-closed stack; the socket file is gone at once.
    void this.control?.close();
    this.running = false;
    this.runtime.stop();
    if (this.housekeepingTimer) clearInterval(this.housekeepingTimer);
    void this.metricsHostView?.close();
    for (const s of this.services) try { s.close(); } catch { /* closing anyway */ }
    // A trace whose writer fails must not keep the drivers open (their XDP programs attached).
    for (const t of [...this.activeTraces]) try { t.stop(); } catch { /* closing anyway */ }
    // Flush what is queued (e.g. last replies) before the drivers go.
    try { this.runtime.step(this.engine.now); } catch { /* closing anyway */ }
    const errors: string[] = [];
    for (const d of this.taps) {
      try { d.close(); } catch (e) { errors.push(`${d.name}: ${(e as Error).message}`); }
    }
    for (const p of this.peers.values()) p.close();
    if (errors.length) throw new Error(`closing drivers: ${errors.join('; ')}`);
  }

  get isClosed(): boolean { return this.closed; }

  /** The stack's clock in µs: real (monotonic) once started, else the engine's (virtual) time. */
  nowUs(): number { return this.running ? monotonicUs() : this.engine.now; }

  /** 'up', or 'lost' while a driver that watches its device (AF_XDP) has lost it. */
  deviceState(dev: number): 'up' | 'lost' {
    return (this.taps[dev]?.inner as { deviceState?: 'up' | 'lost' } | undefined)?.deviceState ?? 'up';
  }

  /**
   * Frame pool totals per device: every frame is free, in the kernel's rings (fill and RX),
   * on the TX ring until its completion, or held (by the engine, sockets, zero-copy readers);
   * `queued` counts the held frames waiting in the engine's output queue for the driver.
   */
  poolRows(): { device: string; total: number; free: number; kernel: number; tx: number; held: number; queued: number }[] {
    return this.engine.devices.map((d) => {
      const p = d.pool.counts();
      return { device: d.name, total: p.total, free: p.free, kernel: p.kernel, tx: p.tx, held: p.held, queued: d.out.n };
    });
  }

  /**
   * The running configuration in the shape of a config file's (stack/control/running.ts): the
   * config as given, with the virtual servers as they are now and the services still running.
   */
  runningConfig(): StackConfig {
    const cfg = structuredClone(this.config);
    const devices = this.engine.devices;
    cfg.virtualServers = [...this.engine.vsByName.values()].map((v) => vsConfig(v, devices, this.handles.get(v)?.limits));
    if (cfg.services !== undefined) cfg.services = this.services.map((svc) => structuredClone(this.serviceConfigs.get(svc)!));
    return cfg;
  }

  /** What the driver of device `dev` counted since the last `clearCounters()` (its drops, losses and XDP statistics). */
  private driverCounts(dev: number): DriverCounts {
    const raw = this.driverRaw(dev);
    const base = this.driverBase[dev];
    if (!base) return raw;
    return { drops: since(raw.drops, base.drops), losses: raw.losses >= base.losses ? raw.losses - base.losses : raw.losses, ...(raw.xdp ? { xdp: since(raw.xdp, base.xdp ?? {}) } : {}) };
  }

  /** The driver's own counts of device `dev` (they only grow, unless the driver started over). */
  private driverRaw(dev: number): DriverCounts {
    const st = this.taps[dev]!.stats();
    const xdp = st.xdp && typeof st.xdp === 'object' ? st.xdp as Record<string, number> : undefined;
    return { drops: { ...st.drops }, losses: typeof st.losses === 'number' ? st.losses : 0, ...(xdp ? { xdp: { ...xdp } } : {}) };
  }

  /** Per device: the driver's own counts when counters were last cleared. */
  private readonly driverBase: (DriverCounts | undefined)[] = [];

  /**
   * Zeroes the packet, byte and drop counters (`xdpstack clear counters`, request `counters.clear`):
   * of every device (with what its driver counted), link and VS, the engine's own, the TCP counters of
   * each VS, the TCP open counts and the shard hand-over counts; with `vs`, only that VS's and its links'. Gauges stay
   * (connections, sockets, neighbor entries, frame pools, limits in use), and so do the limit hits
   * of `show limits`, which count from the start. Returns what was cleared.
   */
  clearCounters(vs?: string): { devices: number; vs: number; links: number } {
    const e = this.engine;
    const vss = vs !== undefined ? [e.vs(vs)] : [...e.vsByName.values()];
    let links = 0;
    for (const v of vss) {
      v.own.reset();
      tcpState(v).counters.reset();
      for (const l of v.links) { l.counters.reset(); links++; }
    }
    if (vs !== undefined) return { devices: 0, vs: 1, links };
    for (let i = 0; i < e.devices.length; i++) {
      e.devices[i]!.counters.reset();
      this.driverBase[i] = this.driverRaw(i);
    }
    e.counters.reset();
    e.tcp.passiveOpens = 0;
    e.tcp.activeOpens = 0;
    if (e.steer !== null) {
      const sc = e.steer.counters;
      sc.forwarded.fill(0);
      sc.forwardedIn = 0;
      sc.neighborShared = 0;
      sc.ringFull = 0;
      sc.heldBack = 0;
    }
    return { devices: e.devices.length, vs: vss.length, links };
  }

  /**
   * Removes the neighbor (ARP and NDP) entries of `vs` (`xdpstack neighbor flush`, request
   * `neighbor.flush`), as `ip neigh flush` does: on one link or all, every entry or only `address`'s.
   * Frames waiting for an entry being resolved are dropped as when resolution fails (their
   * connections told the host is unreachable). Every entry is learned: the stack has no static ones.
   * Returns the entries removed.
   */
  flushNeighbors(vs: string, opts: { link?: string; address?: string } = {}): { vs: string; link: string; address: string; state: string }[] {
    if (typeof opts !== 'object' || opts === null) throw new ValidationError(`neighbor flush: the options must be an object like { link: 'eth0.10', address: '10.1.1.2' }, got ${describe(opts)}`);
    for (const k of ['link', 'address'] as const) {
      if (opts[k] !== undefined && typeof opts[k] !== 'string') throw new ValidationError(`neighbor flush: ${k}: must be a string, got ${describe(opts[k])}`);
    }
    const v = this.engine.vs(vs);
    let links = v.links;
    if (opts.link !== undefined) {
      const l = v.link(opts.link);
      if (!l) throw new Error(`virtual server '${vs}' has no link '${opts.link}' (links: ${v.links.map((x) => x.name).join(', ') || 'none'})`);
      links = [l];
    }
    let only: IpAddr | undefined;
    if (opts.address !== undefined) {
      try {
        only = parseAddrText(opts.address);
      } catch (err) {
        throw new Error(`neighbor flush: ${(err as Error).message}`);
      }
    }
    const out: { vs: string; link: string; address: string; state: string }[] = [];
    for (const l of links) {
      for (const n of [...l.neigh.entries.values()]) {
        if (only !== undefined && !addrEq(n.ip, only)) continue;
        out.push({ vs: v.name, link: l.name, address: addrToString(n.ip), state: neighborStateName(n.state) });
        l.neigh.forget(n);
      }
    }
    return out;
  }

  /**
   * Data for `xdpstack show KIND [--vs NAME]`: rows of plain values (or, for counters, sections).
   * `state` and `port` narrow `connections` (a bad value, or either given for another kind, throws).
   */
  show(kind: ShowKind | string, opts: ShowOptions = {}): unknown {
    const e = this.engine;
    if (kind !== 'connections' && (opts.state !== undefined || opts.port !== undefined)) {
      throw new Error(`'${opts.state !== undefined ? 'state' : 'port'}' narrows 'show connections' only, not 'show ${kind}'`);
    }
    const all = [...e.vsByName.values()];
    const vss = opts.vs !== undefined ? [e.vs(opts.vs)] : all;
    const vlanText = (v: number) => (v >= 0 ? v : null);
    switch (kind) {
      case 'vs':
        return vss.map((v) => ({
          name: v.name, id: v.id, links: v.links.length,
          addresses: v.links.reduce((n, l) => n + l.addrs.length, 0),
          routes: [...v.tables.values()].reduce((n, t) => n + t.size, 0),
          udpSockets: [...udpPorts(v).values()].reduce((n, l) => n + l.length, 0),
          tcpListeners: [...tcpState(v).listeners.values()].reduce((n, l) => n + l.length, 0),
          tcpConnections: countChain(v),
          ...((c) => ({ rxPackets: c.rxPackets, txPackets: c.txPackets, drops: c.dropsView() }))(v.counters),
        }));
      case 'links':
        return vss.flatMap((v) => v.links.map((l) => ({
          vs: v.name, link: l.name, device: l.devName, vlan: vlanText(l.vlan), mac: macToString(l.mac), mtu: l.mtu,
          addresses: linkAddressTexts(l.addrs),
          state: this.deviceState(l.dev),
        })));
      case 'addresses':
        return vss.flatMap((v) => v.links.flatMap((l) => l.addrs.map((a) => addressRow(v.name, l.name, a))));
      case 'routes':
        return vss.flatMap((v) => [...v.tables.values()].sort((a, b) => a.id - b.id).flatMap((t) => t.routes().map((r) =>
          routeRow(v.name, t.id, r, v.links[r.link]?.name ?? null))));
      case 'rules':
        return vss.flatMap((v) => v.rules.list().map((r) => ruleRow(v.name, r)));
      case 'neighbors':
        return vss.flatMap((v) => v.links.flatMap((l) => [...l.neigh.entries.values()].map((n) => neighborRow(v.name, l.name, n))));
      case 'counters': {
        const c = (x: Counters) => x.toJSON();
        return {
          devices: opts.vs !== undefined ? [] : e.devices.map((d, i) => {
            const st = this.driverCounts(i);
            return {
              device: d.name, driver: this.taps[i]!.kind, state: this.deviceState(i), losses: st.losses,
              ...c(d.counters), driverDrops: dropsView(st.drops), ...(st.xdp ? { xdp: st.xdp } : {}),
            };
          }),
          vs: vss.map((v) => ({ vs: v.name, ...c(v.counters), tcp: tcpCounterRow(v) })),
          links: vss.flatMap((v) => v.links.map((l) => ({ vs: v.name, link: l.name, ...c(l.counters) }))),
          pool: opts.vs !== undefined ? [] : this.poolRows(),
          // Shards: what this shard handed to others and took from them, and the flows it owns.
          ...(e.steer !== null && opts.vs === undefined ? { shards: [{
            shard: e.steer.self, tcpConnections: e.tcp.connCount, passiveOpens: e.tcp.passiveOpens, activeOpens: e.tcp.activeOpens, forwarded: [...e.steer.counters.forwarded], forwardedIn: e.steer.counters.forwardedIn,
            neighborShared: e.steer.counters.neighborShared, ringFull: e.steer.counters.ringFull, heldBack: e.steer.counters.heldBack,
          }] } : {}),
        };
      }
      case 'vips':
        // The VSes with VIPs or load balancers (a VS asked for by name: also without).
        return vss.filter((v) => v.vips !== null || opts.vs !== undefined).map(vipRow);
      case 'pool':
        return this.poolRows();
      case 'limits':
        return limitRows(e, vss, opts.vs === undefined);
      case 'config':
        if (opts.vs !== undefined) throw new Error("show config: the running configuration is the whole stack's (no 'vs')");
        return this.runningConfig();
      case 'connections': {
        const port = opts.port;
        if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
          throw new Error(`'port' must be a port number (1-65535), got ${JSON.stringify(port)}`);
        }
        return connectionRows(vss, { states: opts.state !== undefined ? parseStateFilter(opts.state) : null, port: port ?? null });
      }
      default:
        throw new Error(`unknown show kind '${kind}' (one of ${SHOW_KINDS.join(', ')})`);
    }
  }
}

/**
 * `show vips`: a VS's VIPs, the load balancers it takes encapsulated traffic from and the bytes
 * their encapsulation adds (`overhead`; `overheadDefault`: not configured), then what came
 * encapsulated: `decapsulated` (taken in to a VIP), `refusedSource` (from a source not in `from`),
 * `refusedVip` (inner destination not a VIP) and every decapsulation drop by reason.
 */
function vipRow(v: VirtualServer): Record<string, unknown> {
  const st = v.vips;
  const c = v.counters;
  const reasons: Record<string, number> = {};
  let total = 0;
  for (const d of DECAP_DROPS) {
    const n = c.drops[d]!;
    if (n) { reasons[dropName(d)] = n; total += n; }
  }
  return {
    vs: v.name,
    vips: st ? st.list.map(addrToString) : [],
    from: st ? st.from.map((f) => `${addrToString(f.addr)}/${f.prefixLen}`) : [],
    overhead: st ? st.overhead : 20,
    overheadDefault: !st || st.configuredOverhead === undefined,
    decapsulated: c.decapsulated,
    refusedSource: c.drops[Drop.DecapSourceRefused]!,
    refusedVip: c.drops[Drop.DecapNotVip]!,
    drops: { total, reasons },
  };
}

const DECAP_DROPS: readonly Drop[] = [Drop.DecapSourceRefused, Drop.DecapNotVip, Drop.DecapNested, Drop.DecapFragmented, Drop.DecapBadInner, Drop.DecapLinkScoped];

/** A driver's counts that `show counters` reports. */
interface DriverCounts { drops: Record<string, number>; losses: number; xdp?: Record<string, number> }

/**
 * `cur - base` per key; a count below its base started over since (a driver reopened after its
 * device came back) and is taken as it is.
 */
function since(cur: Record<string, number>, base: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(cur)) {
    if (typeof v !== 'number') continue;
    const b = base[k] ?? 0;
    out[k] = v >= b ? v - b : v;
  }
  return out;
}

export type { LimitRow };

/** How often limits are looked at for the log (µs of stack time). */
const LIMIT_CHECK_US = 1_000_000;

/**
 * `show limits`: the stack-wide limits (with `all`), then per VS its connections, each listener's
 * SYN queue and each link's neighbor table.
 */
function limitRows(e: Engine, vss: VirtualServer[], all: boolean): LimitRow[] {
  const L = e.limits;
  const t = e.tcp;
  const r = e.reasm;
  const rows: LimitRow[] = [];
  if (all) {
    rows.push(
      { vs: null, scope: 'stack', limit: 'tcpConnections', used: t.activeCount, max: L.tcpConnections, hits: t.connLimitHits },
      { vs: null, scope: 'stack', limit: 'tcpTimeWait', used: t.timeWaitCount, max: t.maxTimeWait, hits: t.timeWaitRecycled },
      { vs: null, scope: 'stack', limit: 'tcpReorderMemory', used: t.reorderBytes, max: L.tcpReorderMemory, hits: t.reorderLimitHits },
      { vs: null, scope: 'stack', limit: 'reassemblyDatagrams', used: r.pending, max: r.maxDatagrams, hits: r.datagramsFull },
      { vs: null, scope: 'stack', limit: 'reassemblyMemory', used: r.heldBytes, max: r.maxBytes, hits: r.memoryFull },
    );
  }
  for (const v of vss) {
    const ts = tcpState(v);
    rows.push({ vs: v.name, scope: 'vs', limit: 'tcpConnections', used: ts.active, max: v.maxTcpConns, hits: ts.limitHits });
    for (const list of tcpState(v).listeners.values()) {
      for (const l of list) {
        rows.push({
          vs: v.name, scope: `listener ${l.wildcard ? `*:${l.port}` : hostPort(l.addr, l.port)}`, limit: 'tcpSynQueue',
          used: l.synQueue, max: Math.min(l.opts.synBacklog, v.maxSynQueue), hits: l.synCookiesSent,
        });
      }
    }
    for (const l of v.links) {
      rows.push({ vs: v.name, scope: `link ${l.name}`, limit: 'neighbors', used: l.neigh.size, max: l.neigh.params.maxEntries, hits: l.neigh.tableFull });
    }
  }
  return rows;
}

/** Ownership callbacks for drivers that filter in the kernel (AF_XDP: fills the XDP maps). */
/** TCP connections of a VS (all states, TIME_WAIT included): the demux chains, counted. */
function countChain(v: VirtualServer): number {
  let n = 0;
  for (const head of tcpState(v).conns.values()) for (let e: { next: unknown } | null = head; e; e = e.next as { next: unknown } | null) n++;
  return n;
}

/** XDP map hooks for a driver that has them (AF_XDP): the engine's ownership calls, VLAN -1 → 0. */
export function ownership(drv: Driver): Pick<DeviceSpec, 'ownMac' | 'own'> {
  const { ownMac, own } = drv;
  if (typeof ownMac !== 'function' || typeof own !== 'function') return {};
  // The engine says -1 for untagged; the XDP maps say 0.
  return {
    ownMac: (mac, vlan, add) => ownMac.call(drv, mac, Math.max(vlan, 0), add),
    own: (addr, vlan, add) => own.call(drv, addr, Math.max(vlan, 0), add),
  };
}

/**
 * Builds a stack from a config object or a JSON file path (validated first; a ConfigError names
 * the file, the field and the problem). The package's entry (stack/index.ts) also takes `shards`.
 */
export function createStack(config: StackConfig | string, opts: StackOptions = {}): Stack {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw new ValidationError(`createStack: the options must be an object, got ${describe(opts)}`);
  const cfg = typeof config === 'string' ? loadConfig(config) : validateConfig(cloneConfig(config), 'config');
  return new Stack(cfg, opts);
}


/** A control socket a stack owns (stack/control/control.ts ControlServer). */
export interface OwnedControl {
  readonly socketPath: string;
  close(): Promise<void>;
}
