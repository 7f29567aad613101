/**
 * TCP in the engine: per-VS demux of segments to connections (hash on the 4-tuple) and listeners
 * (hash on the port), SYN and accept queues, SYN cookies when the SYN queue is full, stateless RSTs,
 * and the TcpHost the sans-IO connections call back into (segment output, timers, events).
 *
 * Socket-layer events are queued and delivered by `flushEvents()` after each burst, so user code
 * never runs in the middle of packet processing.
 */
import { Drop } from '../../protocols/drop';
import { TcpHeader, tcpHeaderLen, writeTcp } from '../../protocols/tcp';
import {
  TcpCounters, TcpError, TcpHost, TcpOptions, TcpSegmentIn, TcpSegmentOut, TcpState, TcpTuple, TH_ACK, TH_FIN, TH_RST, TH_SYN,
} from '../../protocols/tcp/types';
import { TcpConnection } from '../../protocols/tcp/connection';
import { rstFor } from '../../protocols/tcp/rst';
import { clampMss, resolveOptions } from '../../protocols/tcp/options';
import * as synCookie from '../../protocols/tcp/syncookie';
import { IPPROTO_TCP } from '../../protocols/ipv4';
import { addrEq, addrToString, ANY6, IpAddr, isIp6, isLinkLocal6, localOverlap } from '../../protocols/ip/addr';
import type { Timer, TimerWheel } from '../timers';
import type { Link, VirtualServer } from '../vs';
import { FramePool, OWNER_ENGINE } from '../../umem/pool';
import { DEFAULT_LIMITS, Limits } from '../limits';

/**
 * What an ICMP or ICMPv6 error means for a connection (the engine maps each family's type/code):
 * `Mtu` the path MTU dropped (IPv4 "fragmentation needed", ICMPv6 Packet Too Big), `Refused` a hard
 * error while opening (port/protocol unreachable; ICMPv6 port unreachable), `Soft` the others.
 */
export const enum IcmpKind {
  /** A host unreachable (or time exceeded): a soft error, EHOSTUNREACH if the connection times out. */
  Soft = 0,
  Mtu = 1,
  Refused = 2,
  /** A net unreachable (no route): a soft error, ENETUNREACH if the connection times out. */
  SoftNet = 3,
}

/** The TCP state of one VS: its demux tables and counts (kept here, opaque to the VS itself). */
export class TcpVs {
  /** Connections by (remote address, remote port) hash, chained on collisions. */
  readonly conns = new Map<number, TcpEntry>();
  /** Listeners by local port. */
  readonly listeners = new Map<number, TcpListener[]>();
  /** Local ports used by active opens (count of connections). */
  readonly localPorts = new Map<number, number>();
  /** Next ephemeral port to try. */
  ephemeral = 32768;
  /** Connections not in TIME_WAIT (counted against the VS's maxTcpConns). */
  active = 0;
  /** Connections refused because maxTcpConns was reached (SYNs dropped, connect() failed). */
  limitHits = 0;
  /** TCP event counters of the VS (`show counters`), bumped by its connections and by the demux. */
  readonly counters = new TcpCounters();
}

/** The TCP state of `vs` (made on first use). */
export function tcpState(vs: VirtualServer): TcpVs {
  return (vs.tcp ??= new TcpVs()) as TcpVs;
}

/** Bytes of IP + TCP header without options: the MSS is the MTU less this (RFC 9293 3.7.1; RFC 8200 8.3). */
export function tcpOverhead(a: IpAddr): number {
  return typeof a === 'number' ? 40 : 60;
}

/** What the TCP layer needs from the engine. */
export interface TcpEngine {
  readonly wheel: TimerWheel;
  now: number;
  /** The current time for a call from the application (moves `now` up to the clock). */
  time(): number;
  /** A timer was armed (the runtime must learn its deadline when it came from an application call). */
  timerArmed(): void;
  /** The outer family (4, 6) of the segment being handled when it came encapsulated to a VIP, else 0. */
  readonly rxDecapOuter: number;
  /**
   * Routes and sends one TCP segment: `build(b, l4Off)` writes the TCP header + payload at
   * `l4Off` in the frame and returns the L4 length. Reflection (`viaLink`+`viaMac`) for stateless
   * replies; otherwise the VS's routing. Returns false when it could not be sent (counted).
   */
  tcpEmit(vs: VirtualServer, viaLink: Link | null, viaMac: Uint8Array | null, src: IpAddr, dst: IpAddr, l4Max: number,
    build: (b: Uint8Array, l4Off: number) => number, mark: number): boolean;
  /** Path MTU / link MTU toward `dst` from `vs` (for the MSS). */
  mtuTo(vs: VirtualServer, dst: IpAddr, src?: IpAddr, mark?: number): number;
  /** A validated "packet too big" (next-hop MTU `mtu`) for the path to `dst`: returns the path MTU now in use. */
  pmtuUpdate(vs: VirtualServer, dst: IpAddr, mtu: number, src?: IpAddr, mark?: number): number;
  dropOn(link: Link, reason: Drop): void;
  /** An exception thrown by application code in a socket callback. */
  callbackError(err: unknown): void;
  /** An exception thrown by the stack's own code (counted, reported once). */
  internalError(err: unknown): void;
  /**
   * Shards (stack/shard): the segment being received matches no connection here; true when it
   * was handed to (or counted for) the shard that owns its flow or has a listener on its port.
   */
  steerTcp(vs: VirtualServer, local: IpAddr, localPort: number, remote: IpAddr, remotePort: number, listening: boolean): boolean;
  /**
   * Shards: takes the flow of `tuple` for this shard before a connection is made. Returns its slot
   * (≥ 0; release it when the connection goes), -1 when there are no shards, or -2 when another
   * shard owns it (the segment being received, if any, was handed to it).
   */
  claimTcp(vs: VirtualServer, tuple: TcpTuple): number;
  releaseTcp(slot: number): void;
  /** Shards: records a listener (or its end) on `port`, so SYNs reaching a shard without one find it. */
  listenPort(vs: VirtualServer, port: number, add: boolean): void;
  /** Shards: whether another shard has a listener on `port`. */
  listenedElsewhere(vs: VirtualServer, port: number): boolean;
  /**
   * Shards: the local port to try first for an active open whose ephemeral port is `dflt` (the
   * port whose return traffic the device steers to this shard's queue, when known); `dflt` otherwise.
   */
  tcpPortFor(vs: VirtualServer, tuple: TcpTuple, dflt: number): number;
}

/** Events a socket receives (queued, delivered after the burst). */
export interface TcpSocketSink {
  tcpEstablished(): void;
  tcpData(chunk: Buffer): void;
  tcpWritable(): void;
  tcpRemoteClose(): void;
  tcpClosed(err: TcpError | null): void;
  /**
   * Bytes received that the application has not read, given `unread`: those the connection counts
   * as not consumed (waiting for delivery, held by the socket or by a zero-copy reader). A socket
   * with a stream buffer of its own counts what is in it instead of what it holds back.
   */
  tcpReadQueue?(unread: number): number;
  /** Zero-copy mode: in-order payload as a view into a held UMEM frame; release() returns it. */
  tcpZeroCopy?(chunk: ZeroCopyChunk): void;
}

/**
 * Received bytes still in their UMEM frame. `bytes` is valid until `release()`, which frees the frame
 * and reopens the receive window. Unreleased chunks hold frames (visible in the pool's totals).
 */
export class ZeroCopyChunk {
  private done = false;
  private view: Uint8Array | null;
  /**
   * `src` is the frame pool's bytes (with `pool`/`frame` set) or a standalone copy (pool null);
   * the chunk is `src[off, off + length)`.
   */
  constructor(private readonly src: Uint8Array, readonly offset: number, readonly length: number,
    private readonly pool: FramePool | null, private readonly frame: number,
    private readonly entry: TcpEntry | null, private readonly layer: TcpLayer) {
    this.view = pool ? null : src;
  }
  get released(): boolean { return this.done; }
  /** The bytes: a view into the UMEM frame (valid until release()). */
  get bytes(): Uint8Array {
    return (this.view ??= this.src.subarray(this.offset, this.offset + this.length));
  }
  /** Copies the bytes out (when the application must keep them longer). */
  copy(): Buffer { return Buffer.from(this.bytes); }
  /** Copies the bytes into `target` at `pos` without creating a view. */
  copyTo(target: Buffer, pos: number): void {
    if (!this.pool) target.set(this.src, pos);
    else this.layer.poolBuffer(this.pool).copy(target, pos, this.offset, this.offset + this.length);
  }
  release(): void {
    if (this.done) return;
    this.releaseFrame();
    if (this.entry && !this.entry.released) this.entry.conn.consumed(this.length, this.layer.clock());
  }
  /** Returns the frame without touching the receive window (the bytes were copied elsewhere). */
  releaseFrame(): void {
    if (this.done) return;
    this.done = true;
    if (this.pool) this.pool.free(this.frame);
  }
}

/** Remembers (or refreshes) the way back to a passive connection's peer. */
function setReturnPath(e: TcpEntry, link: Link, mac: Uint8Array): void {
  e.via = link;
  const m = (e.viaMac ??= new Uint8Array(6));
  for (let i = 0; i < 6; i++) m[i] = mac[i]!;
}

/** Owner id of frames held by zero-copy readers. */
export const OWNER_ZEROCOPY = 2;

/** Per-connection record kept by the engine (conn.user). */
export class TcpEntry {
  next: TcpEntry | null = null;
  /** Set right after creation (the connection is built with this entry as its `user`). */
  conn!: TcpConnection;
  /** Counted in its listener's SYN queue (SYN_RECEIVED from a normal passive open). */
  inSynQueue = false;
  /** In the SYN queue and its SYN-ACK not retransmitted yet (Linux's "young" request). */
  young = false;
  /** ACK number of the last ACK actually sent (-1: none yet). */
  lastAck = -1;
  /** A pure ACK was held back to be sent once at the end of the receive burst. */
  ackDeferred = false;
  /** Counted in the TIME_WAIT table. */
  inTimeWait = false;
  timer: Timer;
  sink: TcpSocketSink | null = null;
  listener: TcpListener | null = null;
  /** Queued events for the sink. */
  events: number = 0;
  /** Received data in order: copies, or views into held frames (zero-copy mode). */
  data: (Buffer | ZeroCopyChunk)[] = [];
  /** Zero-copy mode (the socket reads views into frames). */
  zeroCopy = false;
  closeErr: TcpError | null = null;
  queued = false;
  released = false;
  mark = 0;
  /** Shards: the flow table slot this connection holds (-1: none). */
  flowSlot = -1;
  /**
   * A passively opened connection answers through the link and to the MAC its peer's segments come
   * from (traffic reflection); null for active opens, which the VS's routing sends.
   */
  via: Link | null = null;
  viaMac: Uint8Array | null = null;
  constructor(readonly vs: VirtualServer, wheel: TimerWheel, layer: TcpLayer) {
    this.timer = wheel.create((now) => layer.onConnTimer(this, now));
  }
}

/**
 * At most this many bytes are acknowledged by one coalesced ACK: a sender whose window is about a
 * burst wide must not wait a whole burst for its next ACK (Linux GRO stops at 64 KB too).
 */
const ACK_COALESCE_BYTES = 65536;

const EV_ESTABLISHED = 1;
const EV_WRITABLE = 2;
const EV_REMOTE_CLOSE = 4;
const EV_CLOSED = 8;

export interface ListenerOptions {
  backlog: number;
  synBacklog: number;
  tcp: Partial<TcpOptions>;
  /** Called (from flushEvents) with each new established connection. */
  onConnection: (entry: TcpEntry) => void;
  /** Called when the listener is closed by its VS going away (not by the owner's own unlisten). */
  onVsDestroyed?: () => void;
}

export class TcpListener {
  synQueue = 0;
  /** Entries of the SYN queue whose SYN-ACK was not retransmitted yet. */
  synYoung = 0;
  /** SYN_RECEIVED entries given up early because the SYN queue was under pressure. */
  synQueuePruned = 0;
  readonly accept: TcpEntry[] = [];
  pendingAccept: TcpEntry[] = [];
  closed = false;
  synCookiesSent = 0;
  synCookiesAccepted = 0;
  overflowDrops = 0;
  /**
   * `addr`: the local address listened on; 0 is 0.0.0.0 (IPv4 only), ANY6 is :: (both families,
   * IPv4 peers seen as ::ffff:a.b.c.d, unless `v6Only`), as for a Node server.
   */
  constructor(readonly vs: VirtualServer, readonly addr: IpAddr, readonly port: number, readonly opts: ListenerOptions,
    readonly v6Only = false) {}

  /** Whether a segment to local address `dst` belongs to this listener's address. */
  hears(dst: IpAddr): boolean {
    const a = this.addr;
    if (a === 0) return typeof dst === 'number';
    if (a === ANY6) return isIp6(dst) || !this.v6Only;
    return addrEq(a, dst);
  }

  /** Whether this listener is bound to a wildcard address (0.0.0.0 or ::). */
  get wildcard(): boolean {
    return this.addr === 0 || this.addr === ANY6;
  }
}

/** Demux key of a connection: its remote address and port (IPv6: the address's hash). */
function tupleKey(remoteAddr: IpAddr, remotePort: number): number {
  return (typeof remoteAddr === 'number' ? remoteAddr : remoteAddr.hash) * 65536 + remotePort;
}

export class TcpLayer implements TcpHost {
  private readonly hdr = new TcpHeader();
  private readonly rstOut = new TcpSegmentOut();
  private readonly ready: TcpEntry[] = [];
  private readonly readyListeners: TcpListener[] = [];
  /** Connections per VS (all states, TIME_WAIT included). */
  connCount = 0;
  /** Connections in TIME_WAIT (all VSes), oldest first; bounded by maxTimeWait. */
  timeWaitCount = 0;
  private readonly timeWaitQueue: TcpEntry[] = [];
  private timeWaitHead = 0;
  /** TIME_WAIT entries dropped early because the table was full, and reused by a new SYN. */
  timeWaitRecycled = 0;
  timeWaitReused = 0;
  /** Connections opened: by a SYN (or a SYN cookie's ACK) to a listener, and by connect(). */
  passiveOpens = 0;
  activeOpens = 0;

  /** Connections not in TIME_WAIT, all VSes (counted against limits.tcpConnections). */
  activeCount = 0;
  /** Connections refused because the stack-wide limit was reached. */
  connLimitHits = 0;
  /** Bytes of reorder buffers held by connections, and out-of-order segments refused for lack of it. */
  reorderBytes = 0;
  reorderLimitHits = 0;

  constructor(private readonly eng: TcpEngine, private readonly secret: Uint8Array, readonly defaults: Partial<TcpOptions> = {},
    readonly maxTimeWait = 65536, readonly limits: Pick<Limits, 'tcpConnections' | 'tcpReorderMemory'> = DEFAULT_LIMITS) {
    resolveOptions(defaults); // bad defaults are a configuration error now, not an exception per SYN later
  }

  /**
   * The MSS of a connection from `vs` to `dst`: the path MTU less 40 (brought into range: a tiny
   * link or path MTU must not make the receive path throw), lowered by an `mss` option. What it
   * offers, and the most it sends.
   */
  private mssFor(vs: VirtualServer, dst: IpAddr, src: IpAddr, mark: number, opt: number | undefined): number {
    return Math.min(opt ?? this.defaults.mss ?? Infinity, clampMss(this.eng.mtuTo(vs, dst, src, mark) - tcpOverhead(dst)));
  }

  /**
   * The options of a connection whose local end is `local`, with MSS `mss`: on a VIP the MSS
   * offered leaves room for the load balancer's encapsulation, in which the peer's segments come
   * (its outer header: the configured overhead, else that of the segment being handled, else the
   * default), while ours leave direct, up to `mss`. `rx`: the link the peer's segments come in on
   * (the load balancer's, known for a passive open): the offer fits its MTU too, header included,
   * whatever the MTU of the path replies are routed by.
   */
  private withMss(vs: VirtualServer, local: IpAddr, mss: number, opts: Partial<TcpOptions>, rx: Link | null = null): Partial<TcpOptions> {
    const v = vs.vips;
    if (v === null || !v.has(local)) return { ...opts, mss };
    const room = rx !== null ? Math.min(mss, rx.mtu - tcpOverhead(local)) : mss;
    return { ...opts, mss, advMss: clampMss(room - v.overheadFor(this.eng.rxDecapOuter)) };
  }

  /**
   * Whether `vs` may have one more connection: false (counted as a hit of the limit reached) when
   * the VS or the whole stack is at its connection limit.
   */
  private admit(vs: VirtualServer): boolean {
    const st = tcpState(vs);
    if (st.active >= vs.maxTcpConns) { st.limitHits++; return false; }
    if (this.activeCount >= this.limits.tcpConnections) { this.connLimitHits++; return false; }
    return true;
  }

  // ------------------------------------------------------------ demux tables (per VS)

  private table(vs: VirtualServer): Map<number, TcpEntry> {
    return tcpState(vs).conns;
  }

  /**
   * The connection of a 4-tuple in `vs`. A link-local peer (fe80::/10) is only unique on its link
   * (RFC 4007 6: the zone is part of the address): with `link` given, the connection must be the one
   * on that link (two VLAN links of a VS share their link-local address, as they share the MAC).
   */
  find(vs: VirtualServer, localAddr: IpAddr, localPort: number, remoteAddr: IpAddr, remotePort: number, link: Link | null = null): TcpEntry | null {
    let e = tcpState(vs).conns.get(tupleKey(remoteAddr, remotePort)) ?? null;
    const scoped = link !== null && typeof remoteAddr !== 'number' && isLinkLocal6(remoteAddr);
    while (e) {
      const t = e.conn.tuple;
      if (t.localPort === localPort && t.remotePort === remotePort && addrEq(t.localAddr, localAddr) && addrEq(t.remoteAddr, remoteAddr) &&
        (!scoped || e.via === null || e.via === link)) return e;
      e = e.next;
    }
    return null;
  }

  private insert(e: TcpEntry): void {
    const t = e.conn.tuple;
    const m = this.table(e.vs);
    const k = tupleKey(t.remoteAddr, t.remotePort);
    e.next = m.get(k) ?? null;
    m.set(k, e);
    this.connCount++;
    this.activeCount++;
    tcpState(e.vs).active++;
  }

  /** Removes `e` from the demux; `timeWait`: it was counted in TIME_WAIT rather than as active. */
  private remove(e: TcpEntry, timeWait: boolean): void {
    const t = e.conn.tuple;
    const m = this.table(e.vs);
    const k = tupleKey(t.remoteAddr, t.remotePort);
    let p = m.get(k) ?? null;
    let prev: TcpEntry | null = null;
    while (p && p !== e) { prev = p; p = p.next; }
    if (!p) return;
    if (prev) prev.next = e.next;
    else if (e.next) m.set(k, e.next);
    else m.delete(k);
    e.next = null;
    if (e.flowSlot >= 0) { this.eng.releaseTcp(e.flowSlot); e.flowSlot = -1; }
    this.connCount--;
    if (!timeWait) { this.activeCount--; tcpState(e.vs).active--; }
  }

  listen(vs: VirtualServer, addr: IpAddr, port: number, opts: ListenerOptions, v6Only = false): TcpListener {
    // The listener's options are checked now (a clear error for listen()) rather than at each SYN.
    resolveOptions({ ...this.defaults, ...opts.tcp });
    const listeners = tcpState(vs).listeners;
    const list = listeners.get(port) ?? [];
    if (list.some((l) => localOverlap(l.addr, l.v6Only, addr, v6Only))) {
      const text = isIp6(addr) ? `${addrToString(addr)}` : addrToString(addr);
      const e = new Error(`listen EADDRINUSE: address already in use ${isIp6(addr) ? `[${text}]` : text}:${port}`) as Error & { code: string; errno: number; syscall: string; address: string; port: number };
      e.code = 'EADDRINUSE'; e.errno = -98; e.syscall = 'listen'; e.address = text; e.port = port;
      throw e;
    }
    const l = new TcpListener(vs, addr, port, opts, v6Only);
    list.push(l);
    listeners.set(port, list);
    this.eng.listenPort(vs, port, true);
    return l;
  }

  unlisten(l: TcpListener): void {
    l.closed = true;
    const listeners = tcpState(l.vs).listeners;
    const list = listeners.get(l.port);
    if (list) {
      const rest = list.filter((x) => x !== l);
      if (rest.length !== list.length) this.eng.listenPort(l.vs, l.port, false);
      if (rest.length) listeners.set(l.port, rest);
      else listeners.delete(l.port);
    }
    // Connections not yet accepted (queued, or still in the handshake) are reset.
    const now = this.clock();
    for (const e of [...l.accept, ...l.pendingAccept]) if (!e.sink) e.conn.abort(now);
    l.accept.length = 0;
    l.pendingAccept.length = 0;
    if (l.synQueue > 0) {
      for (const head of [...tcpState(l.vs).conns.values()]) {
        for (let e: TcpEntry | null = head; e; ) {
          const next: TcpEntry | null = e.next;
          if (e.listener === l && !e.sink && !e.released) e.conn.abort(now);
          e = next;
        }
      }
    }
  }

  /** The listener for a segment to `addr`:`port`: one bound to that address first, else a wildcard one. */
  private findListener(vs: VirtualServer, addr: IpAddr, port: number): TcpListener | null {
    const list = tcpState(vs).listeners.get(port);
    if (!list) return null;
    let any: TcpListener | null = null;
    for (let i = 0; i < list.length; i++) {
      const l = list[i]!;
      if (l.wildcard) { if (l.hears(addr)) any = l; }
      else if (addrEq(l.addr, addr)) return l;
    }
    return any;
  }

  portInUse(vs: VirtualServer, port: number): boolean {
    const st = tcpState(vs);
    if (st.listeners.has(port)) return true;
    return st.localPorts.has(port);
  }

  /** The next ephemeral port of `vs` not in use, or -1 when none is left. */
  ephemeralPort(vs: VirtualServer): number {
    const st = tcpState(vs);
    for (let tries = 0; tries < 28232; tries++) {
      const p = st.ephemeral;
      st.ephemeral = p >= 60999 ? 32768 : p + 1;
      if (!this.portInUse(vs, p)) return p;
    }
    return -1;
  }

  /** Active open from `vs`. The caller chose addresses and port. */
  connect(vs: VirtualServer, tuple: TcpTuple, opts: Partial<TcpOptions>, sink: TcpSocketSink, mark: number, via: Link | null = null, ephemeral = false): TcpEntry {
    // A full connection table fails the call as a full descriptor table does in a kernel: EMFILE
    // for the VS's own limit (like a process's RLIMIT_NOFILE), ENFILE for the stack's (like the
    // system-wide file table); Node programs already treat both as "out of sockets, retry later".
    if (!this.admit(vs)) {
      const active = tcpState(vs).active;
      const own = active >= vs.maxTcpConns;
      const code = own ? 'EMFILE' : 'ENFILE';
      const where = `${addrToString(tuple.remoteAddr)}:${tuple.remotePort}`;
      const e = new Error(own
        ? `connect EMFILE ${where}: virtual server '${vs.name}' has ${active} TCP connections, its limit (limits.tcpConnections)`
        : `connect ENFILE ${where}: the stack has ${this.activeCount} TCP connections, its limit (limits.tcpConnections)`) as Error & { code: string; errno: number; syscall: string; address: string; port: number };
      e.code = code; e.errno = own ? -24 : -23; e.syscall = 'connect'; e.address = addrToString(tuple.remoteAddr); e.port = tuple.remotePort;
      throw e;
    }
    // MSS we offer: the route's (path) MTU less the IP and TCP headers, as a kernel does; an
    // `mss` option only lowers it.
    const slot = this.claimConnect(vs, tuple, ephemeral, via);
    const e = new TcpEntry(vs, this.eng.wheel, this);
    e.sink = sink;
    e.mark = mark;
    e.via = via; // a link-local peer: through its link (its MAC from the neighbor cache)
    // Bad options (RangeError): the flow taken above goes back.
    e.conn = this.slotGuard(slot, () => new TcpConnection(this, tuple, this.withMss(vs, tuple.localAddr, this.mssFor(vs, tuple.remoteAddr, tuple.localAddr, mark, opts.mss), { ...this.defaults, ...opts }), this.secret, e));
    e.flowSlot = slot;
    this.insert(e);
    this.activeOpens++;
    tcpState(vs).counters.activeOpens++;
    const lp = tcpState(vs).localPorts;
    lp.set(tuple.localPort, (lp.get(tuple.localPort) ?? 0) + 1);
    e.conn.connect(this.clock());
    return e;
  }

  /**
   * Shards: builds a connection for the flow slot just taken; when building throws, the slot goes
   * back (else it would stay this shard's for good and steer every later flow hashing to it here).
   */
  private slotGuard(slot: number, build: () => TcpConnection): TcpConnection {
    try {
      return build();
    } catch (err) {
      if (slot >= 0) this.eng.releaseTcp(slot);
      throw err;
    }
  }

  /**
   * Shards: an active open takes its flow for this shard. With an ephemeral local port the port is
   * the one whose return traffic the device steers to this shard's queue when that can be known
   * (RSS), and is exchanged for another when another shard's flow holds the slot; a port the
   * application chose is refused (EADDRINUSE) in that case. Returns the slot (or -1 without shards).
   */
  private claimConnect(vs: VirtualServer, tuple: TcpTuple, ephemeral: boolean, via: Link | null): number {
    if (!ephemeral) {
      const slot = this.eng.claimTcp(vs, tuple);
      if (slot !== -2) return slot;
    } else {
      const first = tuple.localPort;
      for (let tries = 0; tries < 256; tries++) {
        const p = tries === 0 ? this.eng.tcpPortFor(vs, tuple, first) : this.ephemeralPort(vs);
        if (p < 0) break;
        if (p !== first && (this.portInUse(vs, p) || this.find(vs, tuple.localAddr, p, tuple.remoteAddr, tuple.remotePort, via))) continue;
        tuple.localPort = p;
        const slot = this.eng.claimTcp(vs, tuple);
        if (slot !== -2) return slot;
      }
    }
    const e = new Error(`connect EADDRINUSE ${addrToString(tuple.localAddr)}:${tuple.localPort}: the flow belongs to another shard`) as Error & { code: string; errno: number; syscall: string };
    e.code = 'EADDRINUSE'; e.errno = -98; e.syscall = 'connect';
    throw e;
  }

  // ------------------------------------------------------------ receive

  /** Link of the segment being processed (to count drops decided inside the connection). */
  private curLink: Link | null = null;

  /** Inside a receive burst: pure ACKs that only advance the acknowledged point are coalesced. */
  private inBurst = false;
  private readonly ackQueue: TcpEntry[] = [];
  /** ACKs saved by coalescing (diagnostics). */
  acksCoalesced = 0;

  beginBurst(): void {
    this.inBurst = true;
  }

  /** Sends one ACK per connection whose ACKs were held back during the burst. */
  endBurst(now: number): void {
    this.inBurst = false;
    const q = this.ackQueue;
    for (let i = 0; i < q.length; i++) {
      const e = q[i]!;
      if (e.ackDeferred && !e.released) {
        e.ackDeferred = false;
        e.conn.ackNow(now);
      }
      e.ackDeferred = false;
    }
    q.length = 0;
  }

  private readonly poolBuffers = new WeakMap<FramePool, Buffer>();

  /** A Buffer over a whole frame pool (made once), for copies without per-chunk views. */
  poolBuffer(pool: FramePool): Buffer {
    let b = this.poolBuffers.get(pool);
    if (!b) {
      b = Buffer.from(pool.buffer, 0, pool.bytes.length);
      this.poolBuffers.set(pool, b);
    }
    return b;
  }

  /** Current time for calls made outside a burst (sockets): the engine's clock. */
  clock: () => number = () => this.eng.time();

  /**
   * A TCP segment for `link`'s VS, in frame `frame` of `pool`. Returns true when a zero-copy reader
   * kept the frame (the caller must not free it); false otherwise (the caller frees it).
   */
  input(link: Link, b: Uint8Array, off: number, len: number, src: IpAddr, dst: IpAddr, srcMac: Uint8Array, now: number,
    pool: FramePool | null = null, frame = -1): boolean {
    const seg = this.hdr;
    const d = seg.parse(b, off, len, src, dst);
    if (d !== Drop.None) {
      this.eng.dropOn(link, d);
      return false;
    }
    // The segment carries its frame to the connection (a zero-copy reader may keep it: onData).
    if (pool && b === pool.bytes) {
      seg.frame = frame;
      seg.framePool = pool;
    }
    this.curLink = link;
    try {
      this.demux(link, seg, src, dst, srcMac, now);
    } finally {
      this.curLink = null;
    }
    return seg.frameKept;
  }

  private demux(link: Link, seg: TcpHeader, src: IpAddr, dst: IpAddr, srcMac: Uint8Array, now: number): void {
    const vs = link.vs;
    const flags = seg.flags;
    const e = this.find(vs, dst, seg.dstPort, src, seg.srcPort, link);
    let l: TcpListener | null = null;
    if (e) {
      // A new SYN for a 4-tuple still in TIME_WAIT may start a new connection when it is clearly
      // newer (RFC 6191: timestamps, else sequence numbers); the old one is forgotten.
      if ((flags & (TH_SYN | TH_ACK | TH_RST)) === TH_SYN && e.conn.state === TcpState.TimeWait &&
        (l = this.findListener(vs, dst, seg.dstPort)) !== null && !l.closed && e.conn.timeWaitAcceptsSyn(seg)) {
        this.timeWaitReused++;
        this.forget(e);
        return this.onSyn(l, link, seg, src, dst, srcMac, now);
      }
      let r: Drop;
      try {
        r = e.conn.input(seg, now);
      } catch (err) {
        this.connFailed(e); // then the engine counts the error and frees the frame
        throw err;
      }
      if (r !== Drop.None) this.eng.dropOn(link, r);
      // The way the peer's latest accepted segment came is the way back (a segment that failed
      // the checks does not move it).
      else if (e.via && !e.released) setReturnPath(e, link, srcMac);
      return;
    }
    l = this.findListener(vs, dst, seg.dstPort);
    // Shards: a segment of a flow another shard owns (or a SYN for a port only another shard
    // listens on) is handed to it.
    if (this.eng.steerTcp(vs, dst, seg.dstPort, src, seg.srcPort, l !== null && !l.closed)) return;
    if (l && !l.closed) {
      if ((flags & (TH_SYN | TH_ACK | TH_RST)) === TH_SYN) {
        // SYN+FIN opens nothing (as Linux's LISTEN state, and as a connection refuses the pair).
        if (flags & TH_FIN) return this.eng.dropOn(link, Drop.TcpBadFlags);
        return this.onSyn(l, link, seg, src, dst, srcMac, now);
      }
      // Shards: another shard listening on the port may have sent the cookie (all share the secret).
      if ((flags & (TH_SYN | TH_ACK | TH_RST)) === TH_ACK && (l.synCookiesSent || this.eng.listenedElsewhere(vs, seg.dstPort))) {
        if (this.onCookieAck(l, link, seg, src, dst, srcMac, now)) return;
        // Not a valid cookie: counted as such (when this listener sent some), answered with a RST.
        if (l.synCookiesSent) tcpState(vs).counters.syncookiesFailed++;
        this.eng.dropOn(link, l.synCookiesSent ? Drop.TcpBadCookie : Drop.TcpNoSocket);
        this.sendRst(link, seg, src, dst, srcMac);
        return;
      }
    }
    if (flags & TH_RST) return this.eng.dropOn(link, Drop.TcpNoSocket);
    // LISTEN, "fourth, other data or control": a segment with neither SYN, ACK nor RST (a bare FIN,
    // data without ACK, no flags) "drop the segment and return" (RFC 9293 3.10.7.2); only a closed
    // port answers it with a RST (3.10.7.1).
    if (l && !l.closed && !(flags & (TH_SYN | TH_ACK))) return this.eng.dropOn(link, Drop.TcpNoAck);
    // Shards: a SYN reaches a shard without a listener only when the flow's slot is this shard's
    // (another of its flows hashes there), so the shard that listens cannot take the flow. A RST
    // would refuse a port that is listened on: dropped (counted) instead, the peer's retransmission
    // comes again, and finds the slot free once this shard's flows there have gone.
    if ((flags & (TH_SYN | TH_ACK)) === TH_SYN && this.eng.listenedElsewhere(vs, seg.dstPort)) return this.eng.dropOn(link, Drop.ShardFlowTaken);
    this.eng.dropOn(link, Drop.TcpNoSocket);
    this.sendRst(link, seg, src, dst, srcMac);
  }

  private sendRst(link: Link, seg: TcpHeader, src: IpAddr, dst: IpAddr, srcMac: Uint8Array): void {
    const out = this.rstOut;
    out.reset();
    out.srcPort = seg.dstPort;
    out.dstPort = seg.srcPort;
    rstFor(seg, out);
    tcpState(link.vs).counters.outRsts++;
    this.eng.tcpEmit(link.vs, link, srcMac, dst, src, 20, (b, o) => writeTcp(b, o, out, 0, dst, src), 0);
  }

  private onSyn(l: TcpListener, link: Link, seg: TcpHeader, src: IpAddr, dst: IpAddr, srcMac: Uint8Array, now: number): void {
    if (l.accept.length + l.pendingAccept.length >= l.opts.backlog) {
      l.overflowDrops++;
      return this.eng.dropOn(link, Drop.TcpListenOverflow);
    }
    // At the connection limit a SYN is dropped (no SYN cookie either: its ACK could not be taken).
    if (!this.admit(link.vs)) return this.eng.dropOn(link, Drop.TcpConnectionLimit);
    const tuple: TcpTuple = { localAddr: dst, localPort: seg.dstPort, remoteAddr: src, remotePort: seg.srcPort };
    const mss = this.mssFor(link.vs, src, dst, 0, l.opts.tcp.mss);
    if (l.synQueue >= l.opts.synBacklog || l.synQueue >= link.vs.maxSynQueue) {
      // SYN flood: answer statelessly with a cookie (RFC 4987); no state until the ACK comes back.
      const out = this.rstOut;
      out.reset();
      out.srcPort = seg.dstPort;
      out.dstPort = seg.srcPort;
      // (The MSS a cookie encodes is the one offered: on a VIP, with room for the encapsulation.)
      const adv = this.withMss(link.vs, dst, mss, {}, link).advMss ?? mss;
      synCookie.synAckFor(seg, out, tuple, adv, this.secret, now, { ...this.defaults, ...l.opts.tcp });
      l.synCookiesSent++;
      tcpState(link.vs).counters.syncookiesSent++;
      const hl = tcpHeaderLen(out);
      this.eng.tcpEmit(link.vs, link, srcMac, dst, src, hl, (b, o) => writeTcp(b, o, out, 0, dst, src), 0);
      return;
    }
    const slot = this.eng.claimTcp(link.vs, tuple);
    if (slot === -2) return; // another shard took the flow meanwhile: handed to it
    const e = new TcpEntry(link.vs, this.eng.wheel, this);
    e.flowSlot = slot;
    e.listener = l;
    setReturnPath(e, link, srcMac);
    e.inSynQueue = true;
    e.young = true;
    l.synQueue++;
    l.synYoung++;
    e.conn = this.slotGuard(slot, () => TcpConnection.acceptSyn(this, tuple, this.withMss(link.vs, dst, mss, { ...this.defaults, ...l.opts.tcp }, link), this.secret, seg, now, e));
    this.insert(e);
    this.passiveOpens++;
    tcpState(link.vs).counters.passiveOpens++;
  }

  private onCookieAck(l: TcpListener, link: Link, seg: TcpHeader, src: IpAddr, dst: IpAddr, srcMac: Uint8Array, now: number): boolean {
    const tuple: TcpTuple = { localAddr: dst, localPort: seg.dstPort, remoteAddr: src, remotePort: seg.srcPort };
    const info = synCookie.check(seg, tuple, this.secret, now);
    if (!info) return false;
    const counters = tcpState(link.vs).counters;
    counters.syncookiesRecv++;
    if (l.accept.length + l.pendingAccept.length >= l.opts.backlog) {
      l.overflowDrops++;
      this.eng.dropOn(link, Drop.TcpListenOverflow);
      return true;
    }
    if (!this.admit(link.vs)) {
      // As Linux does when it cannot take a cookie's ACK: dropped; the peer retransmits.
      this.eng.dropOn(link, Drop.TcpConnectionLimit);
      return true;
    }
    const slot = this.eng.claimTcp(link.vs, tuple);
    if (slot === -2) return true; // another shard took the flow meanwhile: handed to it
    const e = new TcpEntry(link.vs, this.eng.wheel, this);
    e.flowSlot = slot;
    e.listener = l;
    setReturnPath(e, link, srcMac);
    l.synCookiesAccepted++;
    // Established at once (onEstablished queues it for accept); then the ACK's own data, if any.
    const mss = this.mssFor(link.vs, src, dst, 0, l.opts.tcp.mss);
    e.conn = this.slotGuard(slot, () => TcpConnection.fromCookie(this, tuple, this.withMss(link.vs, dst, mss, { ...this.defaults, ...l.opts.tcp }, link), seg, info, now, e));
    this.insert(e);
    this.passiveOpens++;
    counters.passiveOpens++;
    const r = e.conn.input(seg, now);
    if (r !== Drop.None) this.eng.dropOn(link, r);
    return true;
  }

  private toAccept(e: TcpEntry): void {
    const l = e.listener!;
    l.pendingAccept.push(e);
    if (l.pendingAccept.length === 1) this.readyListeners.push(l);
  }

  // ------------------------------------------------------------ TcpHost

  counters(c: { user: unknown }): TcpCounters {
    const e = c.user as TcpEntry | null;
    return e ? tcpState(e.vs).counters : this.unowned;
  }
  /** Counts of connections made without an entry (none in the engine's own use). */
  private readonly unowned = new TcpCounters();

  send(c: { tuple: TcpTuple; user: unknown }, seg: TcpSegmentOut, src: Uint8Array | null, off: number, len: number): void {
    const e = c.user as TcpEntry | undefined;
    if (!e) return;
    // Coalesce: within a burst, a pure ACK that only moves the acknowledged point forward waits for
    // the end of the burst (one ACK for many segments, like a GRO receiver). Duplicate ACKs, ACKs with
    // SACK blocks, window probes and anything carrying data or flags go out at once.
    if (this.inBurst && len === 0 && seg.flags === TH_ACK && seg.sackCount === 0 && e.lastAck >= 0 &&
      seg.ack !== e.lastAck && ((seg.ack - e.lastAck) | 0) > 0 && ((seg.ack - e.lastAck) | 0) < ACK_COALESCE_BYTES &&
      e.conn.state === TcpState.Established) {
      if (!e.ackDeferred) {
        e.ackDeferred = true;
        this.ackQueue.push(e);
      } else this.acksCoalesced++;
      return;
    }
    if (seg.flags & TH_ACK) {
      e.lastAck = seg.ack;
      e.ackDeferred = false; // this segment carries the acknowledgment
    }
    const t = c.tuple;
    seg.srcPort = t.localPort;
    seg.dstPort = t.remotePort;
    const hl = tcpHeaderLen(seg);
    this.eng.tcpEmit(e.vs, e.via, e.viaMac, t.localAddr, t.remoteAddr, hl + len, (b, o) => {
      if (len) b.set(src!.subarray(off, off + len), o + hl);
      writeTcp(b, o, seg, len, t.localAddr, t.remoteAddr);
      return hl + len;
    }, e.mark);
  }

  setTimer(c: { user: unknown }, deadline: number): void {
    const e = c.user as TcpEntry | undefined;
    if (!e) return;
    // Entering TIME_WAIT arms the 2 MSL timer: count it in the bounded table.
    if (!e.inTimeWait && !e.released && e.conn && e.conn.state === TcpState.TimeWait) this.enterTimeWait(e);
    if (deadline === Infinity) this.eng.wheel.cancel(e.timer);
    else {
      this.eng.wheel.set(e.timer, deadline);
      this.eng.timerArmed();
    }
  }

  onConnTimer(e: TcpEntry, now: number): void {
    const l = e.listener;
    if (!e.inSynQueue || !l) { this.connTimer(e, now); return; }
    // SYN-RECEIVED under pressure (RFC 4987 3.2 "reducing the SYN-RECEIVED timer"): as Linux's
    // reqsk_timer_handler, when the SYN queue is more than half full and few of its entries are
    // young (SYN-ACK not yet retransmitted), an entry is given up after fewer retransmissions, down
    // to 2 (about 7 s instead of 127 s). The lower limit sticks to the entry: one that was old
    // under a flood does not get its full lifetime back when the flood's other entries expire.
    // Real clients keep connecting meanwhile: a full queue answers with cookies.
    const lim = synAckRetriesUnderPressure(l.synQueue, l.synYoung, l.opts.synBacklog, e.conn.opts.synRetries);
    if (lim < e.conn.synAckRetryLimit) e.conn.synAckRetryLimit = lim;
    const before = e.conn.handshakeRetries;
    if (!this.connTimer(e, now)) return;
    if (e.conn.isClosed()) { if (e.conn.synAckRetryLimit < e.conn.opts.synRetries) l.synQueuePruned++; return; }
    if (e.inSynQueue && e.conn.state === TcpState.SynReceived && e.conn.handshakeRetries > before && e.young) {
      e.young = false;
      l.synYoung--;
    }
  }

  /** Leaves the listener's SYN queue (established, closed or released). */
  private leaveSynQueue(e: TcpEntry): void {
    if (!e.inSynQueue) return;
    e.inSynQueue = false;
    const l = e.listener;
    if (!l) return;
    l.synQueue--;
    if (e.young) { e.young = false; l.synYoung--; }
  }

  /** Runs a connection's timer; false when the connection's own code threw (it is then gone). */
  private connTimer(e: TcpEntry, now: number): boolean {
    try {
      e.conn.onTimer(now);
      return true;
    } catch (err) {
      this.eng.internalError(err);
      this.connFailed(e);
      return false;
    }
  }

  /**
   * The connection's own code threw (a bug, counted by the caller): a connection left half-updated
   * must not live on, holding its timer, buffers and 4-tuple. It is reset (RST to the peer), its
   * socket learns ECONNABORTED, and it leaves the tables.
   */
  private connFailed(e: TcpEntry): void {
    try {
      if (!e.released && e.sink && e.conn.state !== TcpState.TimeWait) { e.closeErr = 'ECONNABORTED'; this.post(e, EV_CLOSED); }
      if (!e.released) e.conn.abort(this.eng.now);
    } catch (err) {
      this.eng.internalError(err);
    }
    if (!e.released) this.onRelease(e.conn as unknown as { tuple: TcpTuple; user: unknown });
  }

  onEstablished(c: { user: unknown }): void {
    const e = c.user as TcpEntry;
    if (e.listener && !e.sink) {
      this.leaveSynQueue(e);
      this.toAccept(e);
      return;
    }
    this.post(e, EV_ESTABLISHED);
  }

  onData(c: { user: unknown }, b: Uint8Array, off: number, len: number, seg: TcpSegmentIn | null): void {
    const e = c.user as TcpEntry;
    const h = seg as TcpHeader | null;
    const pool = h && h.frame >= 0 ? h.framePool as FramePool : null;
    if (h && pool && !h.frameKept && b === pool.bytes) {
      // Keep the frame until the burst's events are delivered: a zero-copy reader gets it as a view;
      // otherwise the in-order data of the whole burst is copied into one Buffer (one allocation and
      // one stream push per burst instead of per segment, as a GRO receiver would).
      pool.transfer(h.frame, OWNER_ENGINE, OWNER_ZEROCOPY);
      h.frameKept = true;
      e.data.push(new ZeroCopyChunk(b, off, len, pool, h.frame, e, this));
      this.post(e, 0);
      return;
    }
    const chunk = Buffer.allocUnsafe(len);
    chunk.set(b.subarray(off, off + len));
    e.data.push(chunk);
    this.post(e, 0);
  }

  /**
   * TcpHost: a connection asks for (`bytes` > 0) or gives back (< 0) a reorder buffer. Refused past
   * limits.tcpReorderMemory: the out-of-order segment is dropped (counted) and comes again later.
   */
  reorderMemory(_c: { user: unknown }, bytes: number): boolean {
    if (bytes > 0 && this.reorderBytes + bytes > this.limits.tcpReorderMemory) {
      this.reorderLimitHits++;
      if (this.curLink) this.eng.dropOn(this.curLink, Drop.TcpReorderMemory);
      return false;
    }
    this.reorderBytes += bytes;
    return true;
  }

  onWritable(c: { user: unknown }): void {
    this.post(c.user as TcpEntry, EV_WRITABLE);
  }

  onRemoteClose(c: { user: unknown }): void {
    this.post(c.user as TcpEntry, EV_REMOTE_CLOSE);
  }

  onClosed(c: { user: unknown }, err: TcpError | null): void {
    const e = c.user as TcpEntry;
    e.closeErr = err;
    if (e.conn.state === TcpState.TimeWait && !e.inTimeWait) this.enterTimeWait(e);
    if (e.listener && !e.sink) {
      // Closed before being accepted. Reset in SYN_RECEIVED: forgotten. Reset (or timed out) while
      // established in the accept queue: still accepted, and the application's first read reports
      // the error, as Linux's accept() returns such a socket.
      const l = e.listener;
      this.leaveSynQueue(e);
      if (err && l.pendingAccept.includes(e)) { e.events |= EV_CLOSED; return; }
      l.pendingAccept = l.pendingAccept.filter((x) => x !== e);
      return;
    }
    this.post(e, EV_CLOSED);
  }

  onRelease(c: { tuple: TcpTuple; user: unknown }): void {
    const e = c.user as TcpEntry;
    if (e.released) return;
    e.released = true;
    const timeWait = e.inTimeWait;
    if (e.inTimeWait) { e.inTimeWait = false; this.timeWaitCount--; }
    // A SYN_RECEIVED connection that timed out leaves its listener's SYN queue.
    this.leaveSynQueue(e);
    for (const z of e.data) if (z instanceof ZeroCopyChunk) z.release();
    e.data = e.data.filter((z) => !(z instanceof ZeroCopyChunk));
    this.eng.wheel.cancel(e.timer);
    this.remove(e, timeWait);
    const ports = tcpState(e.vs).localPorts;
    const lp = ports.get(c.tuple.localPort);
    if (lp !== undefined && !e.listener) {
      if (lp <= 1) ports.delete(c.tuple.localPort);
      else ports.set(c.tuple.localPort, lp - 1);
    }
  }

  /** Counts a connection entering TIME_WAIT; past the bound the oldest one is forgotten early. */
  private enterTimeWait(e: TcpEntry): void {
    e.inTimeWait = true;
    this.timeWaitCount++;
    this.activeCount--; // TIME_WAIT has its own limit (tcpTimeWait)
    tcpState(e.vs).active--;
    this.timeWaitQueue.push(e);
    while (this.timeWaitCount > this.maxTimeWait && this.timeWaitHead < this.timeWaitQueue.length) {
      const old = this.timeWaitQueue[this.timeWaitHead++]!;
      if (old.inTimeWait && !old.released) {
        this.timeWaitRecycled++;
        this.forget(old);
      }
    }
    // Compact the queue now and then (entries leave it when released).
    if (this.timeWaitHead > 1024 && this.timeWaitHead * 2 > this.timeWaitQueue.length) {
      const live = this.timeWaitQueue.slice(this.timeWaitHead).filter((x) => x.inTimeWait && !x.released);
      this.timeWaitQueue.length = 0;
      this.timeWaitQueue.push(...live);
      this.timeWaitHead = 0;
    }
  }

  /** Drops a connection from the demux without sending anything (TIME_WAIT reuse or overflow). */
  private forget(e: TcpEntry): void {
    this.onRelease(e.conn as unknown as { tuple: TcpTuple; user: unknown });
  }

  /**
   * An ICMP error (destination unreachable, time exceeded, parameter problem) quoting a segment
   * local:localPort → remote:remotePort with sequence number `seq`. RFC 5927 section 4.1 (as Linux's
   * tcp_v4_err): it is believed only when the connection exists and SND.UNA <= seq <= SND.NXT (the
   * highest sent: sndMax); otherwise nothing changes and the reason is returned for the drop count.
   * Then (RFC 1122 4.2.3.9): port and protocol unreachable are hard errors while the connection is
   * being opened (ECONNREFUSED); "fragmentation needed" lowers the path MTU (RFC 1191) and this
   * connection's MSS; the others are soft errors, left to retransmission.
   */
  icmpError(vs: VirtualServer, local: IpAddr, localPort: number, remote: IpAddr, remotePort: number, seq: number,
    kind: IcmpKind, nextHopMtu: number, link: Link | null = null): Drop {
    const e = this.find(vs, local, localPort, remote, remotePort, link);
    // Shards: an error about a flow another shard owns is handed to it.
    if (!e && this.eng.steerTcp(vs, local, localPort, remote, remotePort, true)) return Drop.None;
    if (!e || e.released) return Drop.IcmpNoFlow;
    const c = e.conn;
    const st = c.state;
    if (st === TcpState.Closed || st === TcpState.TimeWait) return Drop.IcmpNoFlow; // nothing in flight
    if (((seq - c.sndUna) >>> 0) > ((c.sndMax - c.sndUna) >>> 0)) return Drop.IcmpOutOfWindow;
    if (kind === IcmpKind.Mtu) {
      // The path MTU may already be as low (another connection's error): this one follows it too.
      const mtu = this.eng.pmtuUpdate(vs, remote, nextHopMtu, local, e.mark);
      c.setMss(clampMss(mtu - tcpOverhead(remote)));
    } else if (kind === IcmpKind.Refused && (st === TcpState.SynSent || st === TcpState.SynReceived)) {
      c.fail('ECONNREFUSED');
    } else if (kind === IcmpKind.Soft || kind === IcmpKind.SoftNet) {
      c.noteSoftError(kind === IcmpKind.SoftNet ? 'ENETUNREACH' : 'EHOSTUNREACH');
    }
    return Drop.None;
  }

  /**
   * The next hop toward `remote` did not answer address resolution (a segment of this connection
   * was waiting for it). While the connection is being opened this is a hard error, EHOSTUNREACH,
   * as a kernel reports it (Linux: the neighbor's failure reaches the socket as a host
   * unreachable); a synchronized connection keeps retransmitting (RFC 1122 4.2.3.9: soft error) and
   * ends with EHOSTUNREACH, not ETIMEDOUT, if it times out.
   */
  hostUnreachable(vs: VirtualServer, local: IpAddr, localPort: number, remote: IpAddr, remotePort: number, link: Link | null = null): void {
    const e = this.find(vs, local, localPort, remote, remotePort, link);
    if (!e || e.released) return;
    if (e.conn.state === TcpState.SynSent) e.conn.fail('EHOSTUNREACH');
    else e.conn.noteSoftError('EHOSTUNREACH');
  }

  /** A socket was attached to an accepted entry: deliver what arrived before it existed. */
  attached(e: TcpEntry): void {
    if (e.data.length || e.events) this.post(e, 0);
  }

  private post(e: TcpEntry, ev: number): void {
    e.events |= ev;
    if (!e.queued) {
      e.queued = true;
      this.ready.push(e);
    }
  }

  /** Connections whose events wait for the next step (a step delivered its budget). */
  get eventsPending(): boolean {
    return this.readyHead < this.ready.length || this.readyListeners.length > 0;
  }

  /** Next entry of `ready` to deliver (the queue is consumed from the head, compacted when drained). */
  private readyHead = 0;
  /** Connections whose events were delivered, and steps that left some for the next (diagnostics). */
  eventsDelivered = 0;
  eventsCarried = 0;

  /**
   * Delivers queued events to sockets and new connections to listeners: to at most `budget`
   * connections (each new connection handed to a listener counts as one). The rest wait, in order,
   * for the next call, so a step stays short when thousands of connections close together.
   * This runs application code (listeners of 'connection', 'connect', 'data'...): each call is
   * guarded, and an exception goes to the engine's callbackError() (an uncaught exception, as in
   * Node) once this delivery is over, so every other socket still gets its events, no zero-copy
   * frame is left held and no event is lost.
   */
  flushEvents(budget = Infinity): void {
    let work = 0;
    while (this.readyListeners.length && work < budget) {
      const l = this.readyListeners[0]!;
      const batch = l.pendingAccept.splice(0, budget - work);
      for (const e of batch) {
        work++;
        if (e.conn.state === TcpState.Closed && !(e.events & EV_CLOSED)) continue;
        if (l.closed) { e.conn.abort(this.eng.now); continue; } // completed after its listener closed
        try {
          l.opts.onConnection(e);
        } catch (err) {
          this.eng.callbackError(err);
        }
        // What came with the handshake is delivered even when a 'connection' listener threw.
        if (e.sink && (e.data.length || e.events)) this.post(e, 0);
      }
      if (l.pendingAccept.length === 0) this.readyListeners.shift();
    }
    const q = this.ready;
    while (this.readyHead < q.length && work < budget) {
      const e = q[this.readyHead++]!;
      work++;
      this.eventsDelivered++;
      this.deliver(e);
    }
    if (this.readyHead >= q.length) { q.length = 0; this.readyHead = 0; }
    else if (work >= budget) {
      this.eventsCarried++;
      if (this.readyHead > 4096) { q.splice(0, this.readyHead); this.readyHead = 0; }
    }
  }

  /** Delivers one connection's queued events to its socket (each application call guarded). */
  private deliver(e: TcpEntry): void {
    e.queued = false;
    const s = e.sink;
    if (!s) return;
    const ev = e.events;
    e.events = 0;
    if (ev & EV_ESTABLISHED) {
      try { s.tcpEstablished(); } catch (err) { this.eng.callbackError(err); }
    }
    if (e.data.length) {
      try { this.deliverData(e, s); } catch (err) { this.eng.internalError(err); }
    }
    if (ev & EV_REMOTE_CLOSE) {
      try { s.tcpRemoteClose(); } catch (err) { this.eng.callbackError(err); }
    }
    if (ev & EV_WRITABLE) {
      try { s.tcpWritable(); } catch (err) { this.eng.callbackError(err); }
    }
    if (ev & EV_CLOSED) {
      try { s.tcpClosed(e.closeErr); } catch (err) { this.eng.callbackError(err); }
    }
  }

  /** Hands the data received for `e` to its socket (views into frames for a zero-copy reader, else one Buffer). */
  private deliverData(e: TcpEntry, s: TcpSocketSink): void {
    const d = e.data.splice(0);
    if (e.zeroCopy && s.tcpZeroCopy) {
      for (const c of d) {
        // Copies (out-of-order repairs) come as chunks too, in order.
        const chunk = c instanceof ZeroCopyChunk ? c : new ZeroCopyChunk(c, 0, c.length, null, -1, e, this);
        try {
          s.tcpZeroCopy(chunk);
        } catch (err) {
          // The reader threw before it could keep the chunk: its frame goes back to the pool (and
          // the window reopens) rather than being held forever.
          chunk.release();
          this.eng.callbackError(err);
        }
      }
      return;
    }
    let buf: Buffer;
    if (d.length === 1 && !(d[0] instanceof ZeroCopyChunk)) {
      buf = d[0] as Buffer;
    } else {
      let total = 0;
      for (const chunk of d) total += chunk.length;
      buf = Buffer.allocUnsafe(total);
      let pos = 0;
      for (const chunk of d) {
        if (chunk instanceof ZeroCopyChunk) { chunk.copyTo(buf, pos); chunk.releaseFrame(); }
        else buf.set(chunk, pos);
        pos += chunk.length;
      }
    }
    try {
      s.tcpData(buf);
    } catch (err) {
      this.eng.callbackError(err);
    }
  }

  /** Resets every connection and closes every listener of a VS being destroyed. */
  destroyVs(vs: VirtualServer): void {
    const now = this.clock();
    const gone: TcpListener[] = [];
    const st = tcpState(vs);
    for (const list of [...st.listeners.values()]) for (const l of list) { this.unlisten(l); gone.push(l); }
    for (const head of [...st.conns.values()]) {
      for (let e: TcpEntry | null = head; e; ) {
        const next: TcpEntry | null = e.next;
        // Sockets learn that their connection is gone (abort() reports nothing by itself).
        if (!e.released && e.sink && e.conn.state !== TcpState.TimeWait) { e.closeErr = 'ECONNABORTED'; this.post(e, EV_CLOSED); }
        if (!e.released) e.conn.abort(now);
        if (!e.released) this.onRelease(e.conn as unknown as { tuple: TcpTuple; user: unknown });
        e = next;
      }
    }
    // Servers learn last, once their connections have their close events posted.
    for (const l of gone) l.opts.onVsDestroyed?.();
  }
}

export { TH_ACK, TH_SYN, IPPROTO_TCP };

/**
 * SYN-ACK retransmissions allowed for an entry of a SYN queue holding `qlen` entries of which
 * `young` never retransmitted, with room for `max` (Linux reqsk_timer_handler): when the queue is
 * more than half full, one less for each doubling of young entries still below the queue length,
 * down to 2.
 */
export function synAckRetriesUnderPressure(qlen: number, young: number, max: number, retries: number): number {
  let r = retries;
  if (qlen * 2 > Math.max(8, max)) {
    let y = young * 2;
    while (r > 2) {
      if (qlen < y) break;
      r--;
      y *= 2;
    }
  }
  return r;
}
