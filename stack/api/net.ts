/**
 * TCP sockets and servers shaped like Node's `net`: `Socket` is a `stream.Duplex` with
 * backpressure both ways (write() returns false → 'drain'; a reader that does not read closes the
 * receive window), `Server` emits 'connection'. Everything belongs to one virtual server.
 */
import { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';
import type { Engine } from '../engine';
import type { VirtualServer } from '../vs';
import type { TcpEntry, TcpListener, TcpSocketSink, ZeroCopyChunk } from '../transport/tcp';
import { TcpState, TcpError, TcpOptions, TCP_STATE_NAMES } from '../../protocols/tcp/types';
import { addrToString, ANY6, IpAddr, isIp6, isUnspecified, isV4Mapped, parseIp4, parseIp6, splitZone } from '../../protocols/ip/addr';
import { sockError } from './dgram';
import { constants as osConstants } from 'node:os';
import { TcpInfo, tcpInfoOf } from '../connections';

export type { TcpInfo } from '../connections';

export interface NetContext {
  engine: Engine;
  vs: VirtualServer;
  /** Current time in µs (real time: the runtime's clock; virtual time: the engine's). */
  now(): number;
}

const ERR_TEXT: Record<TcpError, string> = {
  ECONNRESET: 'read ECONNRESET',
  ECONNREFUSED: 'connect ECONNREFUSED',
  ETIMEDOUT: 'connect ETIMEDOUT',
  ECONNABORTED: 'ECONNABORTED',
  EHOSTUNREACH: 'connect EHOSTUNREACH',
};

export interface SocketConnectOpts {
  port: number;
  host?: string;
  localAddress?: string;
  localPort?: number;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  timeout?: number;
  allowHalfOpen?: boolean;
  /** Socket mark for policy routing (ip rule fwmark). */
  mark?: number;
  tcp?: Partial<TcpOptions>;
}

type WriteCb = (err?: Error | null) => void;

/**
 * Strings written to sockets (HTTP headers, text protocols) are encoded here, then copied into the
 * send ring, instead of becoming a Buffer each (as net.Socket, the stream keeps strings as they are).
 * A string of n UTF-16 units takes at most 3n bytes in any encoding.
 */
const STR_SCRATCH = Buffer.allocUnsafe(65536);
const STR_MAX_UNITS = Math.floor(STR_SCRATCH.length / 3);

function toBuffer(chunk: Buffer | string, enc: BufferEncoding): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk, enc) : chunk;
}

export class Socket extends Duplex implements TcpSocketSink {
  connecting = false;
  private entry: TcpEntry | null = null;
  /** A write waiting for send-buffer room: `buf[off, end)`, then the whole buffers of `more` in order (a corked batch). */
  private pendingWrite: { buf: Uint8Array; off: number; end: number; cb: WriteCb; more?: Uint8Array[]; next?: number } | null = null;
  private unconsumed = 0;
  private _bytesRead = 0;
  private _bytesWritten = 0;
  private timeoutMs = 0;
  /**
   * Idle timeout, checked lazily: activity only records its time; the one timer, when it fires,
   * re-arms itself for the rest of the period if there was activity meanwhile. So the per-request
   * setTimeout(n) / setTimeout(0) of Node's http server and every read and write cost no timer work.
   */
  private idleTimer: NodeJS.Timeout | null = null;
  /** When the armed timer fires (performance.now() ms). */
  private idleDue = 0;
  private lastActive = 0;
  private finished = false;
  private ctx: NetContext | null;

  constructor(ctx?: NetContext, opts: { allowHalfOpen?: boolean } = {}) {
    super({ allowHalfOpen: !!opts.allowHalfOpen, emitClose: true, autoDestroy: true, decodeStrings: false });
    this.ctx = ctx ?? null;
  }

  /** @internal attaches an accepted or connecting connection. */
  attach(ctx: NetContext, e: TcpEntry): void {
    this.ctx = ctx;
    this.entry = e;
    e.sink = this;
    if (this.zcHandler) e.zeroCopy = true;
  }

  // ---------------------------------------------------------------- properties

  /**
   * Addresses as Node reports them: an IPv4 connection accepted by a server listening on `::`
   * shows its addresses IPv4-mapped (::ffff:a.b.c.d), family 'IPv6'.
   */
  get remoteAddress(): string | undefined { return this.entry ? this.text(this.entry.conn.tuple.remoteAddr) : undefined; }
  get remotePort(): number | undefined { return this.entry?.conn.tuple.remotePort; }
  get remoteFamily(): string | undefined { return this.entry ? this.family(this.entry.conn.tuple.remoteAddr) : undefined; }
  get localAddress(): string | undefined { return this.entry ? this.text(this.entry.conn.tuple.localAddr) : undefined; }
  get localPort(): number | undefined { return this.entry?.conn.tuple.localPort; }
  get localFamily(): string | undefined { return this.entry ? this.family(this.entry.conn.tuple.localAddr) : undefined; }
  /** @internal accepted by a dual-stack (::) listener: IPv4 addresses are shown mapped. */
  mapped = false;
  private text(a: IpAddr): string {
    return this.mapped && typeof a === 'number' ? `::ffff:${addrToString(a)}` : addrToString(a);
  }
  private family(a: IpAddr): string {
    return this.mapped || isIp6(a) ? 'IPv6' : 'IPv4';
  }
  get bytesRead(): number { return this._bytesRead; }
  get bytesWritten(): number { return this._bytesWritten; }
  /** True while connecting (as net.Socket#pending). */
  get pending(): boolean { return this.connecting || !this.entry; }
  get readyState(): string {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }
  /** TCP state name (diagnostics). */
  get tcpState(): string { return this.entry ? TCP_STATE_NAMES[this.entry.conn.state]! : 'CLOSED'; }
  /** The connection (diagnostics, tests). */
  get connection(): TcpEntry | null { return this.entry; }

  /**
   * The connection's figures, as a row of `xdpstack show connections` (same fields): state, queues,
   * RTT/RTO, MSS, cwnd, options in use, bytes and retransmissions. Null before the socket has a
   * connection (not connected yet, or connect() failed before one was made); after the connection
   * closed, its last figures (state CLOSED or TIME-WAIT).
   */
  tcpInfo(): TcpInfo | null {
    return this.entry ? tcpInfoOf(this.entry.vs.name, this.entry) : null;
  }

  /**
   * @internal TcpSocketSink: the bytes not read by the application. Of the connection's unread
   * bytes, those held back from the window (`unconsumed`) may have been read from the stream
   * already (read() gives the window back only once the buffer runs low): the stream buffer counts.
   */
  tcpReadQueue(unread: number): number {
    return Math.max(0, unread - this.unconsumed) + this.readableLength;
  }

  address(): { address: string; family: string; port: number } | Record<string, never> {
    if (!this.entry) return {};
    return { address: this.localAddress!, family: this.localFamily!, port: this.localPort! };
  }

  setNoDelay(noDelay = true): this {
    this.entry?.conn.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable = false, initialDelay = 0): this {
    this.entry?.conn.setKeepAlive(enable, initialDelay > 0 ? initialDelay * 1000 : undefined, this.ctx ? this.now() : 0);
    return this;
  }

  setTimeout(ms: number, cb?: () => void): this {
    if (!(typeof ms === 'number' && ms >= 0 && Number.isFinite(ms))) {
      const e = new RangeError(`The value of "msecs" is out of range. It must be a non-negative finite number. Received ${String(ms)}`);
      (e as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
      throw e;
    }
    this.timeoutMs = ms;
    if (cb) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    this.touch();
    return this;
  }

  /** The idle timeout set with setTimeout (ms), undefined when none (as net.Socket). */
  get timeout(): number | undefined {
    return this.timeoutMs > 0 ? this.timeoutMs : undefined;
  }

  ref(): this { return this; }
  unref(): this { return this; }

  /** Node's http server calls this when a response finished on a non-keep-alive socket. */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  private touch(): void {
    if (this.timeoutMs <= 0 || this.destroyed) return;
    const now = performance.now();
    this.lastActive = now;
    const due = now + this.timeoutMs;
    // An armed timer that fires before the new deadline re-arms itself then; one that fires later
    // (a shorter timeout was just set) is replaced.
    if (this.idleTimer && this.idleDue <= due + 1) return;
    this.armIdle(due);
  }

  private armIdle(due: number): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleDue = due;
    this.idleTimer = setTimeout(this.onIdle, Math.max(1, due - performance.now()));
    this.idleTimer.unref?.();
  }

  private readonly onIdle = (): void => {
    this.idleTimer = null;
    if (this.timeoutMs <= 0 || this.destroyed) return;
    const due = this.lastActive + this.timeoutMs;
    if (due > performance.now() + 1) { this.armIdle(due); return; }
    this.emit('timeout'); // once per idle period: the next activity arms the timer again (as net.Socket)
  };

  /** The current time for a call into the connection (the engine's time moves up to it too). */
  private now(): number {
    return this.ctx!.engine.time(this.ctx!.now());
  }

  // ---------------------------------------------------------------- connect

  /** @internal active open. */
  startConnect(ctx: NetContext, o: SocketConnectOpts): void {
    this.ctx = ctx;
    if (!Number.isInteger(o.port) || o.port <= 0 || o.port > 65535) {
      throw sockError('ERR_SOCKET_BAD_PORT', `Port should be > 0 and < 65536. Received ${o.port}.`);
    }
    let dst: IpAddr;
    let zone = '';
    try {
      ({ addr: dst, zone } = hostAddr(o.host ?? 'localhost'));
    } catch {
      const err = sockError('ENOTFOUND', `getaddrinfo ENOTFOUND ${o.host}`, { syscall: 'getaddrinfo' });
      process.nextTick(() => this.destroy(err));
      return;
    }
    // As Node (an AF_INET6 socket): a connection to ::ffff:a.b.c.d shows both ends IPv4-mapped.
    if (typeof dst === 'number' && (o.host ?? '').includes(':')) this.mapped = true;
    const e = ctx.engine;
    this.connecting = true;
    try {
      const la = o.localAddress ? hostAddr(o.localAddress).addr : 0;
      const src = e.tcpSource(ctx.vs, dst, la, o.localPort ?? 0, o.mark ?? 0, zone);
      const tuple = { localAddr: src.addr, localPort: src.port, remoteAddr: dst, remotePort: o.port };
      if (e.tcp.find(ctx.vs, tuple.localAddr, tuple.localPort, dst, o.port, src.via)) {
        throw sockError('EADDRINUSE', `connect EADDRINUSE ${addrToString(src.addr)}:${src.port}`);
      }
      const opts: Partial<TcpOptions> = { ...o.tcp };
      if (o.noDelay) opts.noDelay = true;
      if (o.keepAlive) { opts.keepAlive = true; if (o.keepAliveInitialDelay) opts.keepIdleUs = o.keepAliveInitialDelay * 1000; }
      this.entry = e.tcp.connect(ctx.vs, tuple, opts, this, o.mark ?? 0, src.via, !o.localPort);
      if (this.zcHandler) this.entry.zeroCopy = true;
    } catch (err) {
      this.connecting = false;
      process.nextTick(() => this.destroy(err as Error));
      return;
    }
    if (o.timeout) this.setTimeout(o.timeout);
  }

  // ---------------------------------------------------------------- events from the engine

  tcpEstablished(): void {
    if (!this.connecting) return;
    this.connecting = false;
    try {
      this.emit('connect');
      this.emit('ready');
    } finally {
      // Also when a 'connect' listener threw: writes queued before the connection existed go out.
      this.touch();
      if (this.pendingWrite) this.continueWrite();
    }
  }

  tcpData(chunk: Buffer): void {
    this._bytesRead += chunk.length;
    this.touch();
    if (this.destroyed) return;
    let taken = true;
    try {
      taken = this.push(chunk);
    } finally {
      // A 'data' listener that threw was still given the bytes: the receive window reopens for them.
      if (taken) this.entry?.conn.consumed(chunk.length, this.now());
      else this.unconsumed += chunk.length;
    }
  }

  /**
   * Zero-copy receive: in-order data arrives as views into the received frames instead of 'data'
   * events. The handler must call `chunk.release()` for every chunk (the frame goes back to the pool
   * and the receive window reopens); holding chunks is the backpressure. Pass null to go back to
   * copies. Data that cannot be delivered in place (out-of-order repairs) still comes as copies
   * through the same handler.
   */
  setZeroCopyReader(handler: ((chunk: ZeroCopyChunk) => void) | null): this {
    this.zcHandler = handler;
    if (this.entry) this.entry.zeroCopy = handler !== null;
    // Nothing is pushed to the stream in this mode: let it flow so 'end' and 'close' come.
    if (handler) this.resume();
    return this;
  }

  private zcHandler: ((chunk: ZeroCopyChunk) => void) | null = null;

  tcpZeroCopy(chunk: ZeroCopyChunk): void {
    this._bytesRead += chunk.bytes.length;
    this.touch();
    if (this.zcHandler && !this.destroyed) { this.zcHandler(chunk); return; }
    const copy = chunk.copy();
    chunk.release();
    this._bytesRead -= copy.length; // counted again by tcpData
    this.tcpData(copy);
  }

  tcpRemoteClose(): void {
    this.push(null);
  }

  tcpWritable(): void {
    if (this.pendingWrite) this.continueWrite();
  }

  tcpClosed(err: TcpError | null): void {
    this.finished = true;
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    if (err) {
      const code = this.connecting && err === 'ECONNRESET' ? 'ECONNREFUSED' : err;
      const t = this.entry?.conn.tuple;
      const where = t ? ` ${addrToString(t.remoteAddr)}:${t.remotePort}` : '';
      // Shaped like Node's errors: code, errno, syscall, and for connect the address and port.
      const errno = (osConstants.errno as Record<string, number>)[code];
      const extra = this.connecting && t
        ? { syscall: 'connect', address: addrToString(t.remoteAddr), port: t.remotePort }
        : { syscall: this.connecting ? 'connect' : 'read' };
      const e = sockError(code, `${ERR_TEXT[code as TcpError] ?? code}${where}`, errno ? { errno: -errno, ...extra } : extra);
      this.connecting = false;
      if (this.pendingWrite) { const cb = this.pendingWrite.cb; this.pendingWrite = null; cb(e); }
      this.destroy(e);
      return;
    }
    this.connecting = false;
    if (this.pendingWrite) { const cb = this.pendingWrite.cb; this.pendingWrite = null; cb(sockError('EPIPE', 'write EPIPE')); }
    // Orderly close: the end of the stream comes after whatever the application has not read yet.
    // With nothing left to read the socket closes now; otherwise once it is read ('end') and
    // written ('finish'), so no received byte is thrown away.
    if (!this.readableEnded) this.push(null);
    if (!this.writableEnded) this.end();
    if (this.readableLength === 0) this.destroy();
  }

  // ---------------------------------------------------------------- Duplex

  override _read(): void {
    if (this.unconsumed && this.entry) {
      const n = this.unconsumed;
      this.unconsumed = 0;
      this.entry.conn.consumed(n, this.now());
    }
  }

  override _write(chunk: Buffer | string, enc: BufferEncoding, cb: WriteCb): void {
    if (!this.entry || this.finished) {
      cb(sockError('EPIPE', 'This socket has been ended by the other party'));
      return;
    }
    if (typeof chunk === 'string') {
      if (this.connecting || chunk.length > STR_MAX_UNITS) chunk = Buffer.from(chunk, enc);
      else {
        const p = { buf: STR_SCRATCH as Uint8Array, off: 0, end: STR_SCRATCH.write(chunk, 0, enc), cb };
        this.pendingWrite = p;
        this.continueWrite();
        // What did not fit waits in a copy of its own (the scratch serves the next write).
        if (this.pendingWrite === p) this.pendingWrite = { buf: Buffer.from(STR_SCRATCH.subarray(p.off, p.end)), off: 0, end: p.end - p.off, cb };
        return;
      }
    }
    this.pendingWrite = { buf: chunk, off: 0, end: chunk.length, cb };
    if (!this.connecting) this.continueWrite();
  }

  private continueWrite(): void {
    const p = this.pendingWrite;
    const e = this.entry;
    if (!p || !e) return;
    const st = e.conn.state;
    if (st !== TcpState.Established && st !== TcpState.CloseWait) {
      if (st === TcpState.SynSent || st === TcpState.SynReceived) return; // wait for the handshake
      this.pendingWrite = null;
      p.cb(sockError('EPIPE', 'write EPIPE'));
      return;
    }
    for (;;) {
      const n = e.conn.write(p.buf, p.off, p.end - p.off, this.now());
      p.off += n;
      this._bytesWritten += n;
      if (n) this.touch();
      if (p.off < p.end) return;
      if (p.more && p.next! < p.more.length) {
        const b = p.more[p.next!++]!;
        p.buf = b; p.off = 0; p.end = b.length;
        continue;
      }
      this.pendingWrite = null;
      p.cb();
      return;
    }
  }

  /**
   * Several chunks at once (corked writes, e.g. an HTTP response's headers and body): they are queued
   * together and leave in as few segments as the MSS allows, instead of one segment per chunk.
   */
  override _writev(chunks: { chunk: Buffer | string; encoding: BufferEncoding }[], cb: WriteCb): void {
    const e = this.entry;
    const st = e?.conn.state;
    if (!e || this.finished || this.connecting || (st !== TcpState.Established && st !== TcpState.CloseWait)) {
      this._write(Buffer.concat(chunks.map((c) => toBuffer(c.chunk, c.encoding))), 'binary', cb);
      return;
    }
    for (let i = 0; i < chunks.length; i++) {
      const x = chunks[i]!;
      let c: Uint8Array;
      let len: number;
      if (typeof x.chunk !== 'string') { c = x.chunk; len = c.length; }
      else if (x.chunk.length <= STR_MAX_UNITS) { c = STR_SCRATCH; len = STR_SCRATCH.write(x.chunk, 0, x.encoding); }
      else { c = Buffer.from(x.chunk, x.encoding); len = c.length; }
      const n = e.conn.write(c, 0, len);
      this._bytesWritten += n;
      if (n < len) {
        // Send buffer full: the rest waits for room as one pending write over the same buffers
        // (not a concatenated copy: each byte is copied once, into the send buffer). Only the
        // scratch's part is copied, as the scratch serves the next write.
        e.conn.flush(this.now());
        const scratch = c === STR_SCRATCH;
        const more = chunks.slice(i + 1).map((y) => toBuffer(y.chunk, y.encoding));
        this.pendingWrite = scratch
          ? { buf: Buffer.from(c.subarray(n, len)), off: 0, end: len - n, cb, more, next: 0 }
          : { buf: c, off: n, end: len, cb, more, next: 0 };
        this.touch();
        return;
      }
    }
    e.conn.flush(this.now());
    this.touch();
    cb();
  }

  override _final(cb: WriteCb): void {
    if (this.entry && !this.finished) this.entry.conn.shutdown(this.now());
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    const e = this.entry;
    if (e && !this.finished) {
      const st = e.conn.state;
      if (st !== TcpState.Closed && st !== TcpState.TimeWait) {
        // Bytes held back from the window were read if the stream buffer is empty (after EOF the
        // stream never calls _read again to report them).
        if (this.unconsumed && !this.readableLength) {
          e.conn.consumed(this.unconsumed, this.now());
          this.unconsumed = 0;
        }
        // An error, or data the application never read: reset (as the kernel does on close with
        // unread data); otherwise an orderly FIN after what is still queued.
        if (err || this.readableLength) e.conn.abort(this.now());
        else e.conn.close(this.now());
      }
    }
    if (this.pendingWrite) { const p = this.pendingWrite; this.pendingWrite = null; p.cb(err ?? sockError('EPIPE', 'socket destroyed')); }
    cb(err);
  }
}

export interface ServerOptions {
  allowHalfOpen?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  pauseOnConnect?: boolean;
  tcp?: Partial<TcpOptions>;
}

export class Server extends EventEmitter {
  listening = false;
  maxConnections = 0;
  private listener: TcpListener | null = null;
  private readonly sockets = new Set<Socket>();
  private closing = false;
  private closeCbs: ((err?: Error) => void)[] = [];

  constructor(private readonly ctx: NetContext, private readonly opts: ServerOptions = {}, onConnection?: (s: Socket) => void) {
    super();
    if (onConnection) this.on('connection', onConnection);
  }

  /** listen(port[, host][, backlog][, cb]) or listen({ port, host, backlog }[, cb]). */
  listen(...args: unknown[]): this {
    let port = 0;
    let host: string | undefined;
    let backlog = 511;
    let ipv6Only = false;
    let cb: (() => void) | undefined;
    if (typeof args[args.length - 1] === 'function') cb = args.pop() as () => void;
    if (typeof args[0] === 'object' && args[0] !== null) {
      const o = args[0] as { port?: number; host?: string; backlog?: number; ipv6Only?: boolean };
      port = o.port ?? 0; host = o.host; backlog = o.backlog ?? backlog; ipv6Only = !!o.ipv6Only;
    } else {
      port = (args[0] as number | undefined) ?? 0;
      if (typeof args[1] === 'string') { host = args[1]; if (typeof args[2] === 'number') backlog = args[2]; }
      else if (typeof args[1] === 'number') backlog = args[1];
    }
    if (this.listening) throw sockError('ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw sockError('ERR_SOCKET_BAD_PORT', `options.port should be >= 0 and < 65536. Received ${port}.`);
    if (cb) this.once('listening', cb);
    const vs = this.ctx.vs;
    const eng = this.ctx.engine;
    try {
      // As Node: no host listens on :: (both families, IPv4 peers seen as ::ffff:a.b.c.d).
      let addr: IpAddr = ANY6;
      if (host === '0.0.0.0') addr = 0;
      else if (host && host !== '::') {
        try {
          addr = hostAddr(host).addr;
        } catch {
          throw sockError('ENOTFOUND', `getaddrinfo ENOTFOUND ${host}`, { syscall: 'getaddrinfo' });
        }
        if (isUnspecified(addr)) addr = typeof addr === 'number' ? 0 : ANY6; // '0::0' is '::'
      }
      if (addr !== 0 && addr !== ANY6) {
        const want = addr;
        if (!vs.links.some((l) => l.addrs.some((a) => typeof a.addr === typeof want && addrToString(a.addr) === addrToString(want)))) {
          throw sockError('EADDRNOTAVAIL', `listen EADDRNOTAVAIL: address not available ${host}:${port}`, { syscall: 'listen' });
        }
      }
      if (port === 0) {
        for (let p = 32768; p < 61000; p++) if (!eng.tcp.portInUse(vs, p)) { port = p; break; }
      }
      this.listener = eng.tcp.listen(vs, addr, port, {
        backlog: Math.max(1, backlog),
        synBacklog: Math.max(16, backlog),
        tcp: { ...this.opts.tcp, ...(this.opts.noDelay ? { noDelay: true } : {}) },
        onConnection: (e) => this.accept(e),
        onVsDestroyed: () => this.vsDestroyed(),
      }, ipv6Only && addr === ANY6);
      this.listening = true;
      process.nextTick(() => this.emit('listening'));
    } catch (err) {
      process.nextTick(() => this.emit('error', err));
    }
    return this;
  }

  private accept(e: TcpEntry): void {
    if (this.maxConnections && this.sockets.size >= this.maxConnections) {
      e.conn.abort(this.ctx.engine.time(this.ctx.now()));
      return;
    }
    const s = new Socket(this.ctx, { allowHalfOpen: this.opts.allowHalfOpen });
    s.mapped = this.listener !== null && this.listener.addr === ANY6;
    s.attach(this.ctx, e);
    if (this.opts.keepAlive) s.setKeepAlive(true, this.opts.keepAliveInitialDelay ?? 0);
    this.sockets.add(s);
    s.once('close', () => {
      this.sockets.delete(s);
      this.maybeClosed();
    });
    if (this.opts.pauseOnConnect) s.pause();
    this.emit('connection', s);
    // Data or FIN that arrived with or right after the handshake.
    this.ctx.engine.tcp.attached(e);
  }

  address(): { address: string; family: string; port: number } | null {
    if (!this.listener) return null;
    const a = this.listener.addr;
    return { address: addrToString(a), family: isIp6(a) ? 'IPv6' : 'IPv4', port: this.listener.port };
  }

  getConnections(cb: (err: Error | null, n: number) => void): this {
    process.nextTick(cb, null, this.sockets.size);
    return this;
  }

  /** Stops accepting; 'close' once every connection has closed. */
  close(cb?: (err?: Error) => void): this {
    if (!this.listening) {
      const err = sockError('ERR_SERVER_NOT_RUNNING', 'Server is not running.');
      if (cb) process.nextTick(cb, err);
      return this;
    }
    if (cb) this.closeCbs.push(cb);
    this.listening = false;
    this.closing = true;
    if (this.listener) this.ctx.engine.tcp.unlisten(this.listener);
    this.listener = null;
    this.maybeClosed();
    return this;
  }

  /** The VS went away: as close(), with the connections already being destroyed by the engine. */
  private vsDestroyed(): void {
    if (!this.listening) return;
    this.listening = false;
    this.closing = true;
    this.listener = null;
    this.maybeClosed();
  }

  private maybeClosed(): void {
    if (!this.closing || this.sockets.size) return;
    this.closing = false;
    process.nextTick(() => {
      for (const cb of this.closeCbs.splice(0)) cb();
      this.emit('close');
    });
  }

  ref(): this { return this; }
  unref(): this { return this; }
}

export function createServer(ctx: NetContext, opts?: ServerOptions | ((s: Socket) => void), onConnection?: (s: Socket) => void): Server {
  if (typeof opts === 'function') return new Server(ctx, {}, opts);
  return new Server(ctx, opts ?? {}, onConnection);
}

/** connect(options[, connectListener]) / connect(port[, host][, connectListener]) like net.connect. */
export function connect(ctx: NetContext, ...args: unknown[]): Socket {
  let cb: (() => void) | undefined;
  if (typeof args[args.length - 1] === 'function') cb = args.pop() as () => void;
  const o: SocketConnectOpts = typeof args[0] === 'object' && args[0] !== null
    ? (args[0] as SocketConnectOpts)
    : { port: args[0] as number, host: args[1] as string | undefined };
  const s = new Socket(ctx, { allowHalfOpen: o.allowHalfOpen });
  if (cb) s.once('connect', cb);
  s.startConnect(ctx, o);
  return s;
}

/**
 * The address a host string names: an IPv4 or IPv6 literal ('localhost' is the loopback, which a
 * VS does not have: refused later with a clear error), an IPv4-mapped IPv6 address meaning its IPv4
 * address, and a zone (fe80::1%link) naming the link of a link-local address. Throws RangeError.
 */
export function hostAddr(host: string): { addr: IpAddr; zone: string } {
  if (host === 'localhost') return { addr: 0x7f000001, zone: '' };
  if (!host.includes(':')) return { addr: parseIp4(host), zone: '' };
  const { addr, zone } = splitZone(host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host);
  const a = parseIp6(addr);
  return { addr: isV4Mapped(a) ? a.w3 : a, zone };
}
