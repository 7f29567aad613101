/**
 * TCP in the engine: per-VS demux of segments to connections (hash on the 4-tuple) and listeners
 * (hash on the port), SYN and accept queues, SYN cookies when the SYN queue is full, stateless RSTs,
 * and the TcpHost the sans-IO connections call back into (segment output, timers, events).
 *
 * Socket-layer events are queued and delivered by `flushEvents()` after each burst, so user code
 * never runs in the middle of packet processing.
 */
import { Drop } from '../protocols/drop';
import { TcpHeader, tcpHeaderLen, writeTcp } from '../protocols/tcp';
import {
  TcpError, TcpHost, TcpOptions, TcpSegmentOut, TcpState, TcpTuple, TH_ACK, TH_RST, TH_SYN,
} from '../protocols/tcp/types';
import { TcpConnection } from '../protocols/tcp/connection';
import { rstFor } from '../protocols/tcp/rst';
import * as synCookie from '../protocols/tcp/syncookie';
import { IPPROTO_TCP, ipv4ToString } from '../protocols/ipv4';
import type { Timer, TimerWheel } from './timers';
import type { Link, VirtualServer } from './vs';
import { FramePool, OWNER_ENGINE } from '../umem/pool';

/** What the TCP layer needs from the engine. */
export interface TcpEngine {
  readonly wheel: TimerWheel;
  now: number;
  /** The current time for a call from the application (moves `now` up to the clock). */
  time(): number;
  /** A timer was armed (the runtime must learn its deadline when it came from an application call). */
  timerArmed(): void;
  /**
   * Routes and sends one TCP segment: `build(b, l4Off)` writes the TCP header + payload at
   * `l4Off` in the frame and returns the L4 length. Reflection (`viaLink`+`viaMac`) for stateless
   * replies; otherwise the VS's routing. Returns false when it could not be sent (counted).
   */
  tcpEmit(vs: VirtualServer, viaLink: Link | null, viaMac: Uint8Array | null, src: number, dst: number, l4Max: number,
    build: (b: Uint8Array, l4Off: number) => number, mark: number): boolean;
  /** Path MTU / link MTU toward `dst` from `vs` (for the MSS). */
  mtuTo(vs: VirtualServer, dst: number, src?: number, mark?: number): number;
  dropOn(link: Link, reason: Drop): void;
}

/** Events a socket receives (queued, delivered after the burst). */
export interface TcpSocketSink {
  tcpEstablished(): void;
  tcpData(chunk: Buffer): void;
  tcpWritable(): void;
  tcpRemoteClose(): void;
  tcpClosed(err: TcpError | null): void;
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
  constructor(readonly vs: VirtualServer, readonly addr: number, readonly port: number, readonly opts: ListenerOptions) {}
}

function tupleKey(remoteAddr: number, remotePort: number): number {
  return remoteAddr * 65536 + remotePort;
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

  constructor(private readonly eng: TcpEngine, private readonly secret: Uint8Array, readonly defaults: Partial<TcpOptions> = {},
    readonly maxTimeWait = 65536) {}

  // ------------------------------------------------------------ demux tables (per VS)

  private table(vs: VirtualServer): Map<number, TcpEntry> {
    return vs.tcpConns;
  }

  find(vs: VirtualServer, localAddr: number, localPort: number, remoteAddr: number, remotePort: number): TcpEntry | null {
    let e = vs.tcpConns.get(tupleKey(remoteAddr, remotePort)) ?? null;
    while (e) {
      const t = e.conn.tuple;
      if (t.localPort === localPort && t.localAddr === localAddr) return e;
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
  }

  private remove(e: TcpEntry): void {
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
    this.connCount--;
  }

  listen(vs: VirtualServer, addr: number, port: number, opts: ListenerOptions): TcpListener {
    const list = vs.tcpListeners.get(port) ?? [];
    if (list.some((l) => l.addr === 0 || addr === 0 || l.addr === addr)) {
      const e = new Error(`listen EADDRINUSE: address already in use ${ipv4ToString(addr)}:${port}`) as Error & { code: string; errno: number; syscall: string; address: string; port: number };
      e.code = 'EADDRINUSE'; e.errno = -98; e.syscall = 'listen'; e.address = ipv4ToString(addr); e.port = port;
      throw e;
    }
    const l = new TcpListener(vs, addr, port, opts);
    list.push(l);
    vs.tcpListeners.set(port, list);
    return l;
  }

  unlisten(l: TcpListener): void {
    l.closed = true;
    const list = l.vs.tcpListeners.get(l.port);
    if (list) {
      const rest = list.filter((x) => x !== l);
      if (rest.length) l.vs.tcpListeners.set(l.port, rest);
      else l.vs.tcpListeners.delete(l.port);
    }
    // Connections not yet accepted (queued, or still in the handshake) are reset.
    const now = this.clock();
    for (const e of [...l.accept, ...l.pendingAccept]) if (!e.sink) e.conn.abort(now);
    l.accept.length = 0;
    l.pendingAccept.length = 0;
    if (l.synQueue > 0) {
      for (const head of [...l.vs.tcpConns.values()]) {
        for (let e: TcpEntry | null = head; e; ) {
          const next: TcpEntry | null = e.next;
          if (e.listener === l && !e.sink && !e.released) e.conn.abort(now);
          e = next;
        }
      }
    }
  }

  private findListener(vs: VirtualServer, addr: number, port: number): TcpListener | null {
    const list = vs.tcpListeners.get(port);
    if (!list) return null;
    let any: TcpListener | null = null;
    for (let i = 0; i < list.length; i++) {
      const l = list[i]!;
      if (l.addr === addr) return l;
      if (l.addr === 0) any = l;
    }
    return any;
  }

  portInUse(vs: VirtualServer, port: number): boolean {
    if (vs.tcpListeners.has(port)) return true;
    return vs.tcpLocalPorts.has(port);
  }

  /** Active open from `vs`. The caller chose addresses and port. */
  connect(vs: VirtualServer, tuple: TcpTuple, opts: Partial<TcpOptions>, sink: TcpSocketSink, mark: number): TcpEntry {
    // MSS we offer: the route's (path) MTU less the IPv4 and TCP headers, as a kernel does; an
    // `mss` option only lowers it.
    const mss = Math.min(opts.mss ?? this.defaults.mss ?? Infinity, this.eng.mtuTo(vs, tuple.remoteAddr, tuple.localAddr, mark) - 40);
    const e = new TcpEntry(vs, this.eng.wheel, this);
    e.sink = sink;
    e.mark = mark;
    e.conn = new TcpConnection(this, tuple, { ...this.defaults, ...opts, mss }, this.secret, e);
    this.insert(e);
    vs.tcpLocalPorts.set(tuple.localPort, (vs.tcpLocalPorts.get(tuple.localPort) ?? 0) + 1);
    e.conn.connect(this.clock());
    return e;
  }

  // ------------------------------------------------------------ receive

  /** A TCP segment for `link`'s VS. The caller frees the frame afterwards. */
  /** Frame being processed, for zero-copy delivery; set to -1 once a reader keeps it. */
  private curPool: FramePool | null = null;
  private curFrame = -1;
  private kept = false;

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
  input(link: Link, b: Uint8Array, off: number, len: number, src: number, dst: number, srcMac: Uint8Array, now: number,
    pool: FramePool | null = null, frame = -1): boolean {
    this.curPool = pool;
    this.curFrame = frame;
    this.kept = false;
    this.demux(link, b, off, len, src, dst, srcMac, now);
    this.curPool = null;
    return this.kept;
  }

  private demux(link: Link, b: Uint8Array, off: number, len: number, src: number, dst: number, srcMac: Uint8Array, now: number): void {
    const seg = this.hdr;
    const d = seg.parse(b, off, len, src, dst);
    if (d !== Drop.None) return this.eng.dropOn(link, d);
    const vs = link.vs;
    const flags = seg.flags;
    const e = this.find(vs, dst, seg.dstPort, src, seg.srcPort);
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
      const r = e.conn.input(seg, now);
      if (r !== Drop.None) this.eng.dropOn(link, r);
      return;
    }
    l = this.findListener(vs, dst, seg.dstPort);
    if (l && !l.closed) {
      if ((flags & (TH_SYN | TH_ACK | TH_RST)) === TH_SYN) return this.onSyn(l, link, seg, src, dst, srcMac, now);
      if ((flags & (TH_SYN | TH_ACK | TH_RST)) === TH_ACK && l.synCookiesSent) {
        if (this.onCookieAck(l, link, seg, src, dst, now)) return;
        // Not a valid cookie: counted as such, answered with a RST below.
        this.eng.dropOn(link, Drop.TcpBadCookie);
        this.sendRst(link, seg, src, dst, srcMac);
        return;
      }
    }
    if (flags & TH_RST) return this.eng.dropOn(link, Drop.TcpNoSocket);
    this.eng.dropOn(link, Drop.TcpNoSocket);
    this.sendRst(link, seg, src, dst, srcMac);
  }

  private sendRst(link: Link, seg: TcpHeader, src: number, dst: number, srcMac: Uint8Array): void {
    const out = this.rstOut;
    out.reset();
    out.srcPort = seg.dstPort;
    out.dstPort = seg.srcPort;
    rstFor(seg, out);
    this.eng.tcpEmit(link.vs, link, srcMac, dst, src, 20, (b, o) => writeTcp(b, o, out, 0, dst, src), 0);
  }

  private onSyn(l: TcpListener, link: Link, seg: TcpHeader, src: number, dst: number, srcMac: Uint8Array, now: number): void {
    if (l.accept.length + l.pendingAccept.length >= l.opts.backlog) {
      l.overflowDrops++;
      return this.eng.dropOn(link, Drop.TcpListenOverflow);
    }
    const tuple: TcpTuple = { localAddr: dst, localPort: seg.dstPort, remoteAddr: src, remotePort: seg.srcPort };
    const mss = Math.min(l.opts.tcp.mss ?? this.defaults.mss ?? Infinity, this.eng.mtuTo(link.vs, src, dst) - 40);
    if (l.synQueue >= l.opts.synBacklog) {
      // SYN flood: answer statelessly with a cookie (RFC 4987); no state until the ACK comes back.
      const out = this.rstOut;
      out.reset();
      out.srcPort = seg.dstPort;
      out.dstPort = seg.srcPort;
      synCookie.synAckFor(seg, out, tuple, mss, this.secret, now, { ...this.defaults, ...l.opts.tcp });
      l.synCookiesSent++;
      const hl = tcpHeaderLen(out);
      this.eng.tcpEmit(link.vs, link, srcMac, dst, src, hl, (b, o) => writeTcp(b, o, out, 0, dst, src), 0);
      return;
    }
    const e = new TcpEntry(link.vs, this.eng.wheel, this);
    e.listener = l;
    e.inSynQueue = true;
    e.young = true;
    l.synQueue++;
    l.synYoung++;
    e.conn = TcpConnection.acceptSyn(this, tuple, { ...this.defaults, ...l.opts.tcp, mss }, this.secret, seg, now, e);
    this.insert(e);
  }

  private onCookieAck(l: TcpListener, link: Link, seg: TcpHeader, src: number, dst: number, now: number): boolean {
    const tuple: TcpTuple = { localAddr: dst, localPort: seg.dstPort, remoteAddr: src, remotePort: seg.srcPort };
    const info = synCookie.check(seg, tuple, this.secret, now);
    if (!info) return false;
    if (l.accept.length + l.pendingAccept.length >= l.opts.backlog) {
      l.overflowDrops++;
      this.eng.dropOn(link, Drop.TcpListenOverflow);
      return true;
    }
    const e = new TcpEntry(link.vs, this.eng.wheel, this);
    e.listener = l;
    l.synCookiesAccepted++;
    // Established at once (onEstablished queues it for accept); then the ACK's own data, if any.
    e.conn = TcpConnection.fromCookie(this, tuple, { ...this.defaults, ...l.opts.tcp }, seg, info, now, e);
    this.insert(e);
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
    this.eng.tcpEmit(e.vs, null, null, t.localAddr, t.remoteAddr, hl + len, (b, o) => {
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
    if (!e.inSynQueue || !l) { e.conn.onTimer(now); return; }
    // SYN-RECEIVED under pressure (RFC 4987 3.2 "reducing the SYN-RECEIVED timer"): as Linux's
    // reqsk_timer_handler, when the SYN queue is more than half full and few of its entries are
    // young (SYN-ACK not yet retransmitted), an entry is given up after fewer retransmissions, down
    // to 2 (about 7 s instead of 127 s). The lower limit sticks to the entry: one that was old
    // under a flood does not get its full lifetime back when the flood's other entries expire.
    // Real clients keep connecting meanwhile: a full queue answers with cookies.
    const lim = synAckRetriesUnderPressure(l.synQueue, l.synYoung, l.opts.synBacklog, e.conn.opts.synRetries);
    if (lim < e.conn.synAckRetryLimit) e.conn.synAckRetryLimit = lim;
    const before = e.conn.handshakeRetries;
    e.conn.onTimer(now);
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

  onEstablished(c: { user: unknown }): void {
    const e = c.user as TcpEntry;
    if (e.listener && !e.sink) {
      this.leaveSynQueue(e);
      this.toAccept(e);
      return;
    }
    this.post(e, EV_ESTABLISHED);
  }

  onData(c: { user: unknown }, b: Uint8Array, off: number, len: number): void {
    const e = c.user as TcpEntry;
    const pool = this.curPool;
    if (pool && !this.kept && b === pool.bytes && this.curFrame >= 0) {
      // Keep the frame until the burst's events are delivered: a zero-copy reader gets it as a view;
      // otherwise the in-order data of the whole burst is copied into one Buffer (one allocation and
      // one stream push per burst instead of per segment, as a GRO receiver would).
      pool.transfer(this.curFrame, OWNER_ENGINE, OWNER_ZEROCOPY);
      this.kept = true;
      e.data.push(new ZeroCopyChunk(b, off, len, pool, this.curFrame, e, this));
      this.post(e, 0);
      return;
    }
    const chunk = Buffer.allocUnsafe(len);
    chunk.set(b.subarray(off, off + len));
    e.data.push(chunk);
    this.post(e, 0);
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
      // Closed before being accepted (reset in SYN_RECEIVED, or while waiting in the queue).
      const l = e.listener;
      this.leaveSynQueue(e);
      l.pendingAccept = l.pendingAccept.filter((x) => x !== e);
      return;
    }
    this.post(e, EV_CLOSED);
  }

  onRelease(c: { tuple: TcpTuple; user: unknown }): void {
    const e = c.user as TcpEntry;
    if (e.released) return;
    e.released = true;
    if (e.inTimeWait) { e.inTimeWait = false; this.timeWaitCount--; }
    // A SYN_RECEIVED connection that timed out leaves its listener's SYN queue.
    this.leaveSynQueue(e);
    for (const z of e.data) if (z instanceof ZeroCopyChunk) z.release();
    e.data = e.data.filter((z) => !(z instanceof ZeroCopyChunk));
    this.eng.wheel.cancel(e.timer);
    this.remove(e);
    const lp = e.vs.tcpLocalPorts.get(c.tuple.localPort);
    if (lp !== undefined && !e.listener) {
      if (lp <= 1) e.vs.tcpLocalPorts.delete(c.tuple.localPort);
      else e.vs.tcpLocalPorts.set(c.tuple.localPort, lp - 1);
    }
  }

  /** Counts a connection entering TIME_WAIT; past the bound the oldest one is forgotten early. */
  private enterTimeWait(e: TcpEntry): void {
    e.inTimeWait = true;
    this.timeWaitCount++;
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
   * ICMP destination unreachable quoting one of our segments (RFC 1122 4.2.3.9): port and protocol
   * unreachable are hard errors while the connection is being opened (ECONNREFUSED); others are soft
   * and left to retransmission.
   */
  icmpUnreachable(vs: VirtualServer, local: number, localPort: number, remote: number, remotePort: number, code: number): void {
    const e = this.find(vs, local, localPort, remote, remotePort);
    if (!e || e.released) return;
    const st = e.conn.state;
    if ((code === 2 || code === 3) && (st === TcpState.SynSent || st === TcpState.SynReceived)) e.conn.fail('ECONNREFUSED');
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

  /** Delivers queued events to sockets and new connections to listeners. */
  flushEvents(): void {
    while (this.readyListeners.length) {
      const ls = this.readyListeners.splice(0);
      for (const l of ls) {
        const q = l.pendingAccept.splice(0);
        for (const e of q) {
          if (e.conn.state === TcpState.Closed) continue;
          if (l.closed) { e.conn.abort(this.eng.now); continue; } // completed after its listener closed
          l.opts.onConnection(e);
        }
      }
    }
    while (this.ready.length) {
      const q = this.ready.splice(0);
      for (const e of q) {
        e.queued = false;
        const s = e.sink;
        if (!s) continue;
        const ev = e.events;
        e.events = 0;
        if (ev & EV_ESTABLISHED) s.tcpEstablished();
        if (e.data.length) {
          const d = e.data.splice(0);
          if (e.zeroCopy && s.tcpZeroCopy) {
            for (const chunk of d) {
              // Copies (out-of-order repairs) come as chunks too, in order.
              s.tcpZeroCopy(chunk instanceof ZeroCopyChunk ? chunk : new ZeroCopyChunk(chunk, 0, chunk.length, null, -1, e, this));
            }
          } else if (d.length === 1 && !(d[0] instanceof ZeroCopyChunk)) {
            s.tcpData(d[0] as Buffer);
          } else {
            let total = 0;
            for (const chunk of d) total += chunk.length;
            const buf = Buffer.allocUnsafe(total);
            let pos = 0;
            for (const chunk of d) {
              if (chunk instanceof ZeroCopyChunk) { chunk.copyTo(buf, pos); chunk.releaseFrame(); }
              else buf.set(chunk, pos);
              pos += chunk.length;
            }
            s.tcpData(buf);
          }
        }
        if (ev & EV_REMOTE_CLOSE) s.tcpRemoteClose();
        if (ev & EV_WRITABLE) s.tcpWritable();
        if (ev & EV_CLOSED) s.tcpClosed(e.closeErr);
      }
    }
  }

  /**
   * Path MTU toward `remote` dropped to `mtu` (ICMP fragmentation needed quoting our segment): the
   * connection it belongs to sends smaller segments from now on.
   */
  pmtuChanged(vs: VirtualServer, local: number, localPort: number, remote: number, remotePort: number, mtu: number): void {
    const e = this.find(vs, local, localPort, remote, remotePort);
    if (e && !e.released) e.conn.setMss(mtu - 40);
  }

  /** Resets every connection and closes every listener of a VS being destroyed. */
  destroyVs(vs: VirtualServer): void {
    const now = this.clock();
    for (const list of [...vs.tcpListeners.values()]) for (const l of list) this.unlisten(l);
    for (const head of [...vs.tcpConns.values()]) {
      for (let e: TcpEntry | null = head; e; ) {
        const next: TcpEntry | null = e.next;
        // Sockets learn that their connection is gone (abort() reports nothing by itself).
        if (!e.released && e.sink && e.conn.state !== TcpState.TimeWait) { e.closeErr = 'ECONNABORTED'; this.post(e, EV_CLOSED); }
        if (!e.released) e.conn.abort(now);
        if (!e.released) this.onRelease(e.conn as unknown as { tuple: TcpTuple; user: unknown });
        e = next;
      }
    }
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
