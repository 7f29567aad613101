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
import type { Burst, Driver, DriverStats } from '../driver/types';
import { macToString, parseMac } from '../driver/types';
import * as fs from 'node:fs';
import { LINKTYPE_ETHERNET, openPcapDriver, PcapWriter, readCapture } from '../driver/pcap';
import { createMemoryLink, MemoryEndpoint } from '../driver/memory';
import { DeviceSpec, Engine, EngineOptions, RouteSpec, RuleSpec } from './engine';
import { Runtime, monotonicUs } from './runtime';
import { UdpSocket } from './api/dgram';
import { createServer as netCreateServer, netModule, NetContext, NetModule, Server as NetServer, ServerOptions, Socket as NetSocket, TcpSocketConnectOpts } from './api/net';
import type { Link, VirtualServer } from './vs';
import { tcpState } from './transport/tcp';
import { udpPorts } from './transport/udp';
import { addressRow, hostPort, linkAddressTexts, neighborRow, routeRow, ruleRow } from './show';
import { DeviceConfig, LinkConfig, loadConfig, RouteConfig, RuleConfig, StackConfig, validateConfig } from './control/config';
import { Service, ServiceConfig, serviceKind } from './control/services';
import type { Counters } from './counters';
import { checkLink, describe, enforce, join, LinkFacts, parseCidrText, splitScopedVia, ValidationState, vsNameProblem } from './control/validate';
import { AddrMap, addrEq, IpAddr } from '../protocols/ip/addr';
import type { VsLimits } from './limits';
import type { Steering } from './shard/steer';

export interface StackOptions {
  /** Use these drivers instead of opening the configured ones (by device name). */
  drivers?: Record<string, Driver>;
  /** Start time (µs) of the engine; virtual-time users pass their first timestamp. */
  now?: number;
  /** Busy-poll the runtime loop (real time). */
  busyPoll?: boolean;
  /** Where driver notices go. Default console.warn. */
  log?: (msg: string) => void;
  /**
   * Shards (stack/shard): this stack is one shard of a group; flows of other shards are handed to
   * them through `steer`. Every shard of a group has the same `secret` (SYN cookies and flow
   * hashes must agree whichever shard a segment reaches).
   */
  steer?: Steering;
  secret?: Uint8Array;
}

export type ShowKind = 'vs' | 'links' | 'addresses' | 'routes' | 'rules' | 'neighbors' | 'counters' | 'pool' | 'limits';
export const SHOW_KINDS: readonly ShowKind[] = ['vs', 'links', 'addresses', 'routes', 'rules', 'neighbors', 'counters', 'pool', 'limits'];

// ---------------------------------------------------------------------------------------------
// Taps (trace)

/** One active trace: which (device, VLAN) pairs it mirrors and where to. */
export class Trace {
  frames = 0;
  done = false;
  private readonly listeners: ((frames: number) => void)[] = [];
  constructor(
    readonly writer: PcapWriter,
    /** Per device index: VLAN ids to mirror (-1 = untagged), or null for all frames. */
    readonly match: Map<number, Set<number> | null>,
    readonly limit: number,
    private readonly clockOffset: () => number,
    private readonly detach: (t: Trace) => void,
  ) {}

  /** @internal */
  record(dev: number, bytes: Uint8Array, off: number, len: number, now: number): void {
    if (this.done) return;
    const m = this.match.get(dev);
    if (m === undefined) return;
    if (m !== null) {
      let vlan = -1;
      if (len >= 18 && bytes[off + 12] === 0x81 && bytes[off + 13] === 0x00) vlan = ((bytes[off + 14]! & 0x0f) << 8) | bytes[off + 15]!;
      if (!m.has(vlan)) return;
    }
    this.writer.write(bytes, off, len, now + this.clockOffset());
    this.frames++;
    if (this.frames >= this.limit) this.stop();
  }

  onDone(cb: (frames: number) => void): void {
    if (this.done) cb(this.frames);
    else this.listeners.push(cb);
  }

  /** Stops mirroring and closes the file. */
  stop(): void {
    if (this.done) return;
    this.done = true;
    this.detach(this);
    this.writer.close();
    for (const l of this.listeners) l(this.frames);
  }
}

/** A transparent driver wrapper feeding the active traces. */
export class TapDriver implements Driver {
  readonly kind: string;
  traces: Trace[] = [];
  /**
   * Real time with a driver that cannot signal readiness (memory): poll it every `pollUs`
   * even when the engine's next timer is far away. 0 = off (virtual time, AF_XDP).
   */
  pollUs = 0;
  private lastNow = 0;

  constructor(readonly inner: Driver, readonly dev: number) {
    this.kind = inner.kind;
    if (inner.onReadable) this.onReadable = (cb) => inner.onReadable!(cb);
  }

  get name(): string { return this.inner.name; }
  get pool() { return this.inner.pool; }
  get mac(): Uint8Array { return this.inner.mac; }
  get mtu(): number { return this.inner.mtu; }
  onReadable?: (cb: () => void) => boolean;

  rx(out: Burst, now: number): number {
    const start = out.n;
    const n = this.inner.rx(out, now);
    if (n > 0 && this.traces.length) {
      const ts = this.traces;
      const bytes = this.inner.pool.bytes;
      for (const t of ts) for (let i = start; i < start + n; i++) t.record(this.dev, bytes, out.off[i]!, out.len[i]!, now);
    }
    return n;
  }

  tx(b: Burst, now: number): number {
    if (!this.traces.length) return this.inner.tx(b, now);
    const k = this.inner.tx(b, now);
    // The caller's burst is left as it is and accepted frames are not reused before the next
    // allocation: the first k entries still describe intact bytes.
    const bytes = this.inner.pool.bytes;
    const ts = this.traces;
    for (const t of ts) for (let i = 0; i < k; i++) t.record(this.dev, bytes, b.off[i]!, b.len[i]!, now);
    return k;
  }

  service(now: number): void {
    this.lastNow = now;
    this.inner.service(now);
  }

  nextDeadline(): number {
    const d = this.inner.nextDeadline();
    return this.pollUs ? Math.min(d, this.lastNow + this.pollUs) : d;
  }
  stats(): DriverStats { return this.inner.stats(); }
  close(): void { this.inner.close(); }
}

// ---------------------------------------------------------------------------------------------
// Virtual server handle

export class VsHandle {
  constructor(private readonly stack: Stack, readonly raw: VirtualServer) {}

  get name(): string { return this.raw.name; }

  private get engine(): Engine { return this.stack.engine; }

  private linkName(link?: string): string {
    if (link !== undefined) return link;
    if (this.raw.links.length === 1) return this.raw.links[0]!.name;
    throw new Error(`virtual server '${this.name}' has ${this.raw.links.length} links: name one`);
  }

  /** Adds a link (with its addresses), all checked first by the validator: nothing is added when one is refused. */
  addLink(spec: LinkConfig): Link {
    enforce(`virtual server '${this.name}': link`, (c) => checkLink(c, spec, '', this.engine.state, this.name, this.raw.links.length));
    const link = this.engine.addLink(this.raw, {
      name: spec.name, device: spec.device, vlan: spec.vlan, mac: spec.mac ? parseMac(spec.mac) : undefined, mtu: spec.mtu,
    });
    for (const a of spec.addresses ?? []) this.engine.addAddress(this.raw, link.name, a);
    return link;
  }

  removeLink(name: string): void { this.engine.removeLink(this.raw, name); }
  addAddress(cidr: string, link?: string): void { this.engine.addAddress(this.raw, this.linkName(link), cidr); }
  removeAddress(cidr: string, link?: string): void { this.engine.removeAddress(this.raw, this.linkName(link), cidr); }
  /** Adds a route; a scoped gateway `fe80::1%LINK` is its `via` plus its `link`. */
  addRoute(spec: RouteConfig | RouteSpec): void { this.engine.addRoute(this.raw, splitScopedVia(spec)); }
  removeRoute(spec: RouteConfig | RouteSpec): number { return this.engine.removeRoute(this.raw, splitScopedVia(spec)); }
  addRule(spec: RuleConfig | RuleSpec): void { this.engine.addRule(this.raw, spec); }
  /** Removes the policy rules of `priority`; throws when there is none. */
  removeRule(priority: number): number {
    const n = this.raw.rules.remove(priority);
    if (!n) throw new Error(`virtual server '${this.name}' has no rule of priority ${priority}`);
    return n;
  }

  /**
   * A dgram-like socket inside this virtual server, as dgram.createSocket(type | options[, listener]):
   * 'udp4', or 'udp6' (bound to :: it also hears IPv4 peers, as ::ffff:a.b.c.d, unless `ipv6Only`).
   */
  createSocket(type: 'udp4' | 'udp6' | { type: 'udp4' | 'udp6'; ipv6Only?: boolean }, listener?: (msg: Buffer, rinfo: unknown) => void): UdpSocket {
    const t = typeof type === 'string' ? type : type?.type;
    if (t !== 'udp4' && t !== 'udp6') {
      throw Object.assign(new TypeError(`Bad socket type specified. Valid types are: udp4, udp6 (got ${JSON.stringify(t)})`), { code: 'ERR_SOCKET_BAD_TYPE' });
    }
    const s = this.engine.createUdpSocket(this.raw, { type: t, ipv6Only: typeof type === 'object' && !!type.ipv6Only });
    if (listener) s.on('message', listener);
    return s;
  }

  /** Context for the `net`-shaped TCP API: this VS, with the stack's clock (real or virtual). */
  get netContext(): NetContext {
    return { engine: this.engine, vs: this.raw, now: () => this.stack.nowUs() };
  }

  /**
   * This virtual server's `net` module: connect/createConnection, createServer, `new Socket()`,
   * `new Server()` as Node's `net` has them, in this VS (code written for Node's `net` takes it).
   */
  get net(): NetModule {
    return (this.netMod ??= netModule(this.netContext));
  }

  private netMod: NetModule | undefined;

  /** A TCP server in this virtual server, like net.createServer([options][, connectionListener]). */
  createServer(options?: ServerOptions, connectionListener?: (socket: NetSocket) => void): NetServer;
  createServer(connectionListener?: (socket: NetSocket) => void): NetServer;
  createServer(opts?: ServerOptions | ((s: NetSocket) => void), listener?: (s: NetSocket) => void): NetServer {
    return netCreateServer(this.netContext, opts, listener);
  }

  /** A TCP connection from this virtual server, like net.connect(options | port[, host][, connectListener]). */
  connect(options: TcpSocketConnectOpts, connectionListener?: () => void): NetSocket;
  connect(port: number, host?: string, connectionListener?: () => void): NetSocket;
  connect(port: number, connectionListener?: () => void): NetSocket;
  connect(a0: TcpSocketConnectOpts | number, a1?: string | (() => void), a2?: () => void): NetSocket {
    const args: unknown[] = [a0, a1, a2];
    while (args.length > 1 && args[args.length - 1] === undefined) args.pop();
    return (this.net.connect as (...a: unknown[]) => NetSocket)(...args);
  }
}

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
  private clockOffset = 0;
  private readonly log: (msg: string) => void;
  private running = false;
  private closed = false;

  /** @internal use createStack() */
  constructor(readonly config: StackConfig, opts: StackOptions = {}) {
    this.name = config.name ?? 'xdpstack';
    const log = opts.log ?? ((m: string) => console.warn(m));
    this.log = log;
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
      for (const [i, v] of config.virtualServers.entries()) {
        // Shards: the config's VSes have the identities the control plane counts from.
        const h = this.createVs(v.name, [], v.limits, opts.steer ? i + 1 : undefined);
        for (const l of v.links) h.addLink(l);
        for (const r of v.rules ?? []) h.addRule(r);
        for (const r of v.routes ?? []) h.addRoute(r);
      }
      for (const s of config.services ?? []) this.startService(s);
    } catch (e) {
      for (const d of drivers) try { d.close(); } catch { /* already failing */ }
      throw e;
    }
  }

  private openDriver(d: DeviceConfig, log: (m: string) => void): Driver {
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
        return openPcapDriver({ name: d.name, input: d.input, output: d.output, mac: d.mac, mtu: d.mtu, frameSize: d.frameSize, frameCount: d.frameCount });
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
    const svc = kind.start(this.vs(s.vs), { ...s, port }, { log: this.log });
    this.serviceVs.set(svc, s.vs);
    this.services.push(svc);
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
    const h = new VsHandle(this, raw);
    this.handles.set(raw, h);
    try {
      for (const l of links) h.addLink(l);
    } catch (e) {
      this.destroyVs(name);
      throw e;
    }
    return h;
  }

  destroyVs(name: string): void {
    const raw = this.engine.vs(name);
    for (let i = this.services.length - 1; i >= 0; i--) {
      const svc = this.services[i]!;
      if (this.serviceVs.get(svc) !== name) continue;
      try { svc.close(); } catch { /* its sockets go with the VS anyway */ }
      this.services.splice(i, 1);
      this.serviceVs.delete(svc);
    }
    this.engine.destroyVs(name);
    this.handles.delete(raw);
  }

  /** Real-time loop (returns at once; the event loop runs it). */
  start(): void {
    if (this.closed) throw new Error('stack is closed');
    if (this.running) return;
    this.running = true;
    this.clockOffset = Date.now() * 1000 - monotonicUs();
    this.engine.now = monotonicUs();
    for (const t of this.taps) if (!t.onReadable) t.pollUs = 1000;
    this.runtime.start();
  }

  /** Virtual time (pcap and memory devices): runs from `start` until nothing is due or `until`. */
  runVirtual(start = this.engine.now, until = Infinity): number {
    if (this.running) throw new Error('stack runs in real time; runVirtual() is for stacks that were not started');
    this.clockOffset = 0;
    for (const t of this.taps) t.pollUs = 0;
    return this.runtime.runVirtual(start, until);
  }

  /** Mirrors the frames of `vs`'s links (or of every device) into `writer`, up to `count` frames. */
  trace(opts: { vs?: string; count?: number; writer: PcapWriter }): Trace {
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
    const t = new Trace(opts.writer, match, opts.count && opts.count > 0 ? opts.count : Infinity, () => this.clockOffset, (x) => {
      this.activeTraces.delete(x);
      for (const tap of this.taps) tap.traces = tap.traces.filter((y) => y !== x);
    });
    this.activeTraces.add(t);
    for (const [dev] of match) { const tap = this.taps[dev]!; tap.traces = [...tap.traces, t]; }
    return t;
  }

  /** Stops the loop, the services, the traces, and closes every driver. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.running = false;
    this.runtime.stop();
    for (const s of this.services) try { s.close(); } catch { /* closing anyway */ }
    for (const t of [...this.activeTraces]) t.stop();
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

  /** Data for `xdpstack show KIND [--vs NAME]`: rows of plain values (or, for counters, sections). */
  show(kind: ShowKind | string, opts: { vs?: string } = {}): unknown {
    const e = this.engine;
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
          ...((c) => ({ rxPackets: c.rxPackets, txPackets: c.txPackets, drops: c.dropTotal }))(v.counters),
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
            const st = this.taps[i]!.stats();
            return {
              device: d.name, driver: this.taps[i]!.kind, state: this.deviceState(i), losses: typeof st.losses === 'number' ? st.losses : 0,
              ...c(d.counters), driverDrops: st.drops, ...(st.xdp ? { xdp: st.xdp } : {}),
            };
          }),
          vs: vss.map((v) => ({ vs: v.name, ...c(v.counters) })),
          links: vss.flatMap((v) => v.links.map((l) => ({ vs: v.name, link: l.name, ...c(l.counters) }))),
          pool: opts.vs !== undefined ? [] : this.poolRows(),
          // Shards: what this shard handed to others and took from them, and the flows it owns.
          ...(e.steer !== null && opts.vs === undefined ? { shards: [{
            shard: e.steer.self, tcpConnections: e.tcp.connCount, passiveOpens: e.tcp.passiveOpens, activeOpens: e.tcp.activeOpens, forwarded: [...e.steer.counters.forwarded], forwardedIn: e.steer.counters.forwardedIn,
            neighborShared: e.steer.counters.neighborShared, ringFull: e.steer.counters.ringFull, heldBack: e.steer.counters.heldBack,
          }] } : {}),
        };
      }
      case 'pool':
        return this.poolRows();
      case 'limits':
        return limitRows(e, vss, opts.vs === undefined);
      default:
        throw new Error(`unknown show kind '${kind}' (one of ${SHOW_KINDS.join(', ')})`);
    }
  }
}

/** One row of `show limits`: what is limited where, its use, the limit and how often it was reached. */
export interface LimitRow { vs: string | null; scope: string; limit: string; used: number; max: number; hits: number }

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
  const cfg = typeof config === 'string' ? loadConfig(config) : validateConfig(structuredClone(config), 'config');
  return new Stack(cfg, opts);
}


// ---------------------------------------------------------------------------------------------
// Replay

export interface ReplayResult {
  /** Frames read from the capture and given to the stack. */
  input: number;
  /** Records skipped because their link type is not Ethernet. */
  skippedNonEthernet: number;
  /** Frames the stack sent (written to the output). */
  output: number;
  /** The MAC the replayed device had. */
  mac: string;
  /** Virtual time span covered (µs). */
  startUs: number;
  endUs: number;
  counters: unknown;
  frames: { total: number; free: number; held: number };
}

/** Addresses (both families) of the links on `device` that use the device's MAC (links with their own MAC excluded). */
function addressesOn(cfg: StackConfig, device: string): AddrMap<true> {
  const out = new AddrMap<true>();
  for (const v of cfg.virtualServers) {
    for (const l of v.links) {
      if (l.device !== device || l.mac !== undefined) continue;
      for (const a of l.addresses ?? []) out.set(parseCidrText(a).addr, true);
    }
  }
  return out;
}

/**
 * The unicast destination MAC most used by the capture's frames to one of `addrs` (IPv4 or IPv6
 * to the address, or an ARP reply to it), through up to two VLAN tags; null when there is none.
 */
export function captureMacFor(recs: { data: Uint8Array }[], addrs: { has(a: number): boolean; get6At?(b: Uint8Array, off: number): unknown }): string | null {
  const votes = new Map<string, number>();
  for (const { data: b } of recs) {
    if (b.length < 14 || (b[0]! & 1)) continue;
    let off = 12;
    let type = (b[off]! << 8) | b[off + 1]!;
    for (let tags = 0; tags < 2 && (type === 0x8100 || type === 0x88a8) && b.length >= off + 6; tags++) {
      off += 4;
      type = (b[off]! << 8) | b[off + 1]!;
    }
    off += 2;
    let target = -1;
    if (type === 0x0800 && b.length >= off + 20) target = ((b[off + 16]! << 24) | (b[off + 17]! << 16) | (b[off + 18]! << 8) | b[off + 19]!) >>> 0;
    else if (type === 0x0806 && b.length >= off + 28 && b[off + 7] === 2) target = ((b[off + 24]! << 24) | (b[off + 25]! << 16) | (b[off + 26]! << 8) | b[off + 27]!) >>> 0;
    if (type === 0x86dd && b.length >= off + 40) {
      // IPv6 (and NDP, whose unicast advertisements go to the address too): the destination address.
      if (addrs.get6At?.(b, off + 24) === undefined) continue;
    } else if (target < 0 || !addrs.has(target)) continue;
    const m = macToString(b.subarray(0, 6));
    votes.set(m, (votes.get(m) ?? 0) + 1);
  }
  let best: string | null = null;
  let n = 0;
  for (const [m, k] of votes) if (k > n) { best = m; n = k; }
  return best;
}

/**
 * Runs the stack of `config` with its single device replaced by a pcap driver reading `input`
 * under virtual time (the capture's timestamps), writing what it sends to `output`. Same input,
 * same output, byte for byte. `lingerUs` (default 5 s) lets timers (ARP retries, reassembly)
 * run after the last input frame.
 */
export function replayCapture(config: StackConfig | string, input: string | Uint8Array, output: string | PcapWriter,
  opts: { device?: string; mac?: string; lingerUs?: number } = {}): ReplayResult {
  const cfg = typeof config === 'string' ? loadConfig(config) : validateConfig(structuredClone(config), 'config');
  let dev: DeviceConfig | undefined;
  if (opts.device !== undefined) {
    dev = cfg.devices.find((d) => d.name === opts.device);
    if (!dev) throw new Error(`replay: the config has no device '${opts.device}' (devices: ${cfg.devices.map((d) => d.name).join(', ')})`);
  } else if (cfg.devices.length === 1) {
    dev = cfg.devices[0]!;
  } else {
    throw new Error(`replay: the config has ${cfg.devices.length} devices; choose the one the capture feeds with --device`);
  }
  const recs = readCapture(input);
  const eth = recs.filter((r) => r.linkType === LINKTYPE_ETHERNET);
  let bytes: Uint8Array;
  if (eth.length === recs.length) {
    bytes = typeof input === 'string' ? fs.readFileSync(input) : input;
  } else {
    const w = new PcapWriter();
    for (const r of eth) w.write(r.data, 0, r.data.length, r.tsUs, r.origLen);
    bytes = w.toBuffer();
  }
  const start = eth.length ? eth[0]!.tsUs : 0;
  const end = eth.length ? eth[eth.length - 1]!.tsUs : 0;
  // The device's MAC: given, else the config's, else the one the capture's traffic to the config's
  // addresses was sent to (an AF_XDP device takes its interface's MAC, which the config does not say).
  const mac = opts.mac ?? dev.mac ?? captureMacFor(eth, addressesOn(cfg, dev.name)) ?? '02:00:00:00:00:01';
  const mtu = dev.driver === 'afxdp' ? 1500 : dev.mtu;
  const writer = typeof output === 'string' ? new PcapWriter(output) : output;
  const pcap = openPcapDriver({ name: dev.name, input: bytes, output: writer, mac, mtu, frameSize: dev.frameSize, frameCount: dev.frameCount ?? 1024 });
  const others: Record<string, Driver> = { [dev.name]: pcap };
  // Other devices of the config see no traffic.
  for (const d of cfg.devices) if (d !== dev) others[d.name] = openPcapDriver({ name: d.name, mac: d.mac, mtu: d.driver === 'afxdp' ? 1500 : d.mtu });
  cfg.control = false;
  let stack: Stack;
  try {
    stack = new Stack(cfg, { drivers: others, now: start });
  } catch (e) {
    pcap.close();
    if (typeof output === 'string') writer.close();
    throw e;
  }
  let final: number;
  try {
    final = stack.runVirtual(start, end + (opts.lingerUs ?? 5_000_000));
  } finally {
    stack.close();
    if (typeof output === 'string') writer.close();
  }
  const pool = stack.engine.devices[cfg.devices.indexOf(dev)]!.pool.check();
  return {
    input: eth.length, skippedNonEthernet: recs.length - eth.length, output: pcap.stats().txPackets, mac: mac.toLowerCase(),
    startUs: start, endUs: final, counters: stack.show('counters'),
    frames: { total: pool.total, free: pool.free, held: pool.held },
  };
}
