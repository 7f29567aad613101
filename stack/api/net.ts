/**
 * TCP sockets and servers shaped like Node's `net`: `Socket` is a `stream.Duplex` with
 * backpressure both ways (write() returns false → 'drain'; a reader that does not read closes the
 * receive window), `Server` emits 'connection'. Everything belongs to one virtual server:
 * `netModule(ctx)` (a VS's `vs.net`) is the `net` module of that VS. Where Node offers what a
 * user-space stack cannot (IPC paths, file descriptors, handles), the call throws
 * ERR_FEATURE_UNAVAILABLE_ON_PLATFORM instead of ignoring it.
 */
import { Duplex, addAbortSignal, getDefaultHighWaterMark } from 'node:stream';
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import {
  isIP, isIPv4, isIPv6, BlockList, SocketAddress, getDefaultAutoSelectFamily, setDefaultAutoSelectFamily,
  getDefaultAutoSelectFamilyAttemptTimeout, setDefaultAutoSelectFamilyAttemptTimeout,
} from 'node:net';
import type { IpcSocketConnectOpts, LookupFunction as NodeLookupFunction } from 'node:net';
import { ADDRCONFIG as dnsADDRCONFIG } from 'node:dns';
import type { LookupAddress, LookupAllOptions, LookupOneOptions } from 'node:dns';
import type { Engine } from '../engine';
import type { VirtualServer } from '../vs';
import { tcpState } from '../transport/tcp';
import type { TcpEntry, TcpListener, TcpSocketSink, ZeroCopyChunk } from '../transport/tcp';
import { TcpState, TcpError, TcpOptions, TCP_STATE_NAMES } from '../../protocols/tcp/types';
import { addrToString, ANY6, IpAddr, isIp6, isUnspecified, isV4Mapped, localOverlap, parseIp4, parseIp6, splitZone } from '../../protocols/ip/addr';
import {
  NetError, codeError, errnoError, errnoOf, exceptionWithHostPort, invalidArgType, notSupported, uvExceptionWithHostPort, validatePort,
} from './errors';
import { TcpInfo, tcpInfoOf } from '../connections';

export type { TcpInfo } from '../connections';

export interface NetContext {
  engine: Engine;
  vs: VirtualServer;
  /** Current time in µs (real time: the runtime's clock; virtual time: the engine's). */
  now(): number;
}

/** A name resolver with dns.lookup's signature, as Node's (a VS resolves no names by itself). */
export type LookupFunction = NodeLookupFunction;
/** Node's IPC form: accepted by the types (as Node's) and refused at run time (ERR_FEATURE_UNAVAILABLE_ON_PLATFORM). */
export type { IpcSocketConnectOpts };

/** Options of `new Socket()` (Node's SocketConstructorOpts; `fd` throws: not supported). */
export interface SocketConstructorOpts {
  allowHalfOpen?: boolean;
  /** false: a write-only socket (as Node's Duplex option). */
  readable?: boolean;
  /** false: a read-only socket. */
  writable?: boolean;
  /** Aborting destroys the socket with an AbortError (code ABORT_ERR). */
  signal?: AbortSignal;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  /** Received data goes into this buffer and to `callback` instead of 'data' events; false pauses. */
  onread?: OnReadOpts;
  /**
   * stream.Duplex options, as Node's net.Socket passes its options on to stream.Duplex (Node's
   * typings leave them out; its sockets honour them): buffer limits, the encoding of 'data'
   * (as setEncoding), the encoding of strings written without one.
   */
  highWaterMark?: number;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
  encoding?: BufferEncoding;
  defaultEncoding?: BufferEncoding;
}

export interface OnReadOpts {
  buffer: Uint8Array | (() => Uint8Array);
  /** `bytesWritten` bytes of `buf` are the data; return false to pause (resume() continues). */
  callback(bytesWritten: number, buf: Uint8Array): boolean;
}

/** Options of connect() (Node's TcpSocketConnectOpts, plus `mark` and `tcp`). */
export interface TcpSocketConnectOpts extends SocketConstructorOpts {
  port: number;
  /** An IP address; a name needs `lookup` (a VS has no resolver). Default 'localhost'. */
  host?: string;
  localAddress?: string;
  localPort?: number;
  /** For `lookup`: 0, 4 or 6. */
  family?: number;
  hints?: number;
  lookup?: LookupFunction;
  /** Only with `lookup`: the first address it gives is tried (no Happy Eyeballs). */
  autoSelectFamily?: boolean;
  autoSelectFamilyAttemptTimeout?: number;
  /** Idle timeout (as socket.setTimeout), for net.connect()/createConnection(); socket.connect() ignores it, as Node's. */
  timeout?: number;
  /** Socket mark for policy routing (ip rule fwmark). */
  mark?: number;
  /** TCP options of this connection (take precedence over what setKeepAlive/noDelay imply). */
  tcp?: Partial<TcpOptions>;
}
/** @deprecated the name of earlier versions: TcpSocketConnectOpts. */
export type SocketConnectOpts = TcpSocketConnectOpts;

/** connect()'s forms, as Node's (the IPC form `connect(path)` throws: not supported). */
export interface ConnectFunction {
  (options: TcpSocketConnectOpts, connectionListener?: () => void): Socket;
  (port: number, host?: string, connectionListener?: () => void): Socket;
  (port: number, connectionListener?: () => void): Socket;
  /** IPC (a path): throws ERR_FEATURE_UNAVAILABLE_ON_PLATFORM. */
  (path: string, connectionListener?: () => void): never;
}

type ConnectArgs = [TcpSocketConnectOpts | IpcSocketConnectOpts | number | string | null | undefined, ...(string | number | (() => void) | undefined)[]];

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

interface Peer { address: string; family: string; port: number }

function closedBeforeConnection(): NetError {
  return codeError(Error, 'ERR_SOCKET_CLOSED_BEFORE_CONNECTION', 'Socket closed before the connection was established');
}

/** Internal constructor options (accepted sockets). */
interface InternalOpts extends SocketConstructorOpts { server?: Server }

/** The stream.Duplex options Node's net.Socket passes on (the others it sets itself). */
const DUPLEX_KEYS = ['highWaterMark', 'readableHighWaterMark', 'writableHighWaterMark', 'encoding', 'defaultEncoding'] as const;

function duplexOptions(o: SocketConstructorOpts): Pick<SocketConstructorOpts, (typeof DUPLEX_KEYS)[number]> {
  const out: Record<string, unknown> = {};
  for (const k of DUPLEX_KEYS) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

export class Socket extends Duplex implements TcpSocketSink {
  connecting = false;
  /** The server that accepted this socket (as net.Socket#server), null for connect(). */
  server: Server | null = null;
  private entry: TcpEntry | null = null;
  /** A write waiting for send-buffer room: `buf[off, end)`, then the whole buffers of `more` in order (a corked batch). */
  private pendingWrite: { buf: Uint8Array; off: number; end: number; cb: WriteCb; more?: Uint8Array[]; next?: number; started?: boolean } | null = null;
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
  /**
   * The peer's address as Node caches it: read from the connection while it is open (not while
   * connecting), and after the close what was read before (Node's `_peername`).
   */
  private peerCache: Peer | null = null;
  /** setNoDelay/setKeepAlive before there is a connection: applied when it is made (as Node). */
  private wantNoDelay: boolean;
  private wantKeepAlive: boolean;
  /** Whole seconds, as Node passes it on (0: leave the idle time as it is). */
  private keepAliveSecs: number;
  /** The `tcp` options of connect(): explicit values win over what the Node calls imply. */
  private tcpOpts: Partial<TcpOptions> = {};
  /** resetAndDestroy(): the destroy sends RST. */
  private resetting = false;
  /** 'end' came and allowHalfOpen is off: a later write is Node's writeAfterFIN (EPIPE). */
  private peerEnded = false;
  private readonly abortSignal: AbortSignal | undefined;
  private readonly onread: OnReadOpts | null;
  /** onread: data received while its callback paused reading (not yet acknowledged to the window). */
  private held: Buffer[] = [];
  private heldEof = false;
  /** The connection attempt (its error names this destination and the local end given). */
  private attempt: { address: string; port: number; family: number; local?: { address: string; port: number } } | null = null;

  /**
   * `new Socket(ctx, options)`; a VS's `vs.net.Socket` binds `ctx` (as `new net.Socket(options)`).
   * A socket without a context can be attached (accepted) but not connect().
   */
  constructor(ctx?: NetContext | null, opts: SocketConstructorOpts = {}) {
    const o = opts as InternalOpts & { fd?: unknown; handle?: unknown; objectMode?: unknown; readableObjectMode?: unknown; writableObjectMode?: unknown };
    if (o.fd !== undefined) throw notSupported('new Socket({ fd })', 'a virtual server has no file descriptors');
    if (o.handle !== undefined) throw notSupported('new Socket({ handle })', 'a virtual server has no libuv handles');
    for (const k of ['objectMode', 'readableObjectMode', 'writableObjectMode'] as const) {
      if (o[k]) throw codeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The property 'options.${k}' is not supported. Received ${String(o[k])}`);
    }
    if (o.keepAliveInitialDelay !== undefined && typeof o.keepAliveInitialDelay !== 'number') {
      throw invalidArgType('options.keepAliveInitialDelay', 'of type number', o.keepAliveInitialDelay);
    }
    const onread = o.onread ?? null;
    if (onread !== null && (typeof onread !== 'object' || typeof onread.callback !== 'function'
      || !(onread.buffer instanceof Uint8Array || typeof onread.buffer === 'function'))) {
      throw invalidArgType('options.onread', 'an object with a buffer (Uint8Array or function) and a callback', onread);
    }
    super({
      allowHalfOpen: !!o.allowHalfOpen,
      // 'close' is emitted by _destroy with hadError, as net.Socket does.
      emitClose: false,
      autoDestroy: true,
      decodeStrings: false,
      ...(o.readable === false ? { readable: false } : {}),
      ...(o.writable === false ? { writable: false } : {}),
      ...duplexOptions(o),
      // Aborting destroys the stream with an AbortError (Node's streams do it for net.Socket too).
      ...(o.signal !== undefined ? { signal: o.signal } : {}),
    });
    this.ctx = ctx ?? null;
    this.abortSignal = o.signal;
    this.onread = onread;
    this.wantNoDelay = !!o.noDelay;
    this.wantKeepAlive = !!o.keepAlive;
    this.keepAliveSecs = Math.trunc(Math.max(0, o.keepAliveInitialDelay ?? 0) / 1000);
    if (o.server) this.server = o.server;
    this.on('end', () => { if (!this.allowHalfOpen) this.peerEnded = true; });
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
   * shows its addresses IPv4-mapped (::ffff:a.b.c.d), family 'IPv6'. The local end is known while
   * the socket has a connection (connecting included); the remote end once connected, and after
   * the close if it was read before (Node's `_peername` cache).
   */
  get remoteAddress(): string | undefined { return this.peer()?.address; }
  get remotePort(): number | undefined { return this.peer()?.port; }
  get remoteFamily(): string | undefined { return this.peer()?.family; }
  private peer(): Peer | null {
    if (this.live && !this.connecting && !this.peerCache) this.peerCache = this.peerOf(this.entry!);
    return this.peerCache;
  }
  get localAddress(): string | undefined { return this.live ? this.text(this.entry!.conn.tuple.localAddr) : undefined; }
  get localPort(): number | undefined { return this.live ? this.entry!.conn.tuple.localPort : undefined; }
  get localFamily(): string | undefined { return this.live ? this.family(this.entry!.conn.tuple.localAddr) : undefined; }
  /** @internal accepted by a dual-stack (::) listener: IPv4 addresses are shown mapped. */
  mapped = false;
  private text(a: IpAddr): string {
    return this.mapped && typeof a === 'number' ? `::ffff:${addrToString(a)}` : addrToString(a);
  }
  private family(a: IpAddr): string {
    return this.mapped || isIp6(a) ? 'IPv6' : 'IPv4';
  }
  private peerOf(e: TcpEntry): Peer {
    const t = e.conn.tuple;
    return { address: this.text(t.remoteAddr), family: this.family(t.remoteAddr), port: t.remotePort };
  }
  /** Has a connection (Node: has a handle): from connect() until destroyed. */
  private get live(): boolean { return this.entry !== null && !this.destroyed; }
  get bytesRead(): number { return this._bytesRead; }
  /** Bytes written by the application, sent or still queued (as net.Socket counts them). */
  get bytesWritten(): number {
    let n = this._bytesWritten;
    const p = this.pendingWrite;
    if (p) {
      n += p.end - p.off;
      if (p.more) for (let i = p.next ?? 0; i < p.more.length; i++) n += p.more[i]!.length;
    }
    for (const el of (this as unknown as { writableBuffer: { chunk: Buffer | string; encoding: BufferEncoding }[] }).writableBuffer) {
      n += typeof el.chunk === 'string' ? Buffer.byteLength(el.chunk, el.encoding) : el.chunk.length;
    }
    return n;
  }
  /** Deprecated alias of writableLength; undefined without a connection (as net.Socket). */
  get bufferSize(): number | undefined { return this.live || this.connecting ? this.writableLength : undefined; }
  /** Not connected yet (or no longer): as net.Socket#pending. */
  get pending(): boolean { return !this.live || this.connecting; }
  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }
  /**
   * As Node's: present only when a lookup with autoSelectFamily gave more than one address to try
   * (undefined otherwise); ours tries the first, so it holds that one, as address:port.
   */
  autoSelectFamilyAttemptedAddresses: string[] | undefined = undefined;
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
    if (!this.live) return {};
    return { address: this.localAddress!, family: this.localFamily!, port: this.localPort! };
  }

  setNoDelay(noDelay?: boolean): this {
    const on = noDelay === undefined ? true : !!noDelay;
    if (on === this.wantNoDelay) return this;
    this.wantNoDelay = on;
    if (this.live) this.entry!.conn.setNoDelay(on);
    return this;
  }

  /**
   * As Node (libuv): keepalive on or off; an initial delay of at least 1 s sets the idle time in
   * whole seconds and probes every second, ten times (TCP_KEEPINTVL 1, TCP_KEEPCNT 10), so a dead
   * peer is found delay + 10 s later; a delay under 1 s leaves idle time and probes as they are
   * (default 2 h, 75 s, 9). Before the connection exists it is applied when it does.
   */
  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    const on = !!enable;
    const secs = Math.trunc((initialDelay ?? 0) / 1000) || 0;
    if (on === this.wantKeepAlive && (!on || secs === this.keepAliveSecs)) return this;
    this.wantKeepAlive = on;
    this.keepAliveSecs = secs;
    if (this.live && this.entry!.conn.state !== TcpState.SynSent) this.applyKeepAlive();
    else if (this.live) this.keepAliveDirty = true; // connecting: applied once established
    return this;
  }

  private keepAliveDirty = false;

  private applyKeepAlive(): void {
    const c = this.entry!.conn;
    const on = this.wantKeepAlive;
    if (on && this.keepAliveSecs > 0) {
      if (this.tcpOpts.keepIntvlUs === undefined) c.opts.keepIntvlUs = 1_000_000;
      if (this.tcpOpts.keepCnt === undefined) c.opts.keepCnt = 10;
    }
    const idle = on && this.keepAliveSecs > 0 && this.tcpOpts.keepIdleUs === undefined ? this.keepAliveSecs * 1_000_000 : undefined;
    c.setKeepAlive(on, idle, this.now());
  }

  /**
   * Closes with a RST (as net.Socket#resetAndDestroy, Node >= 16.17): no 'error' here, the peer
   * gets ECONNRESET. While connecting, once connected; without a connection, ERR_SOCKET_CLOSED.
   */
  resetAndDestroy(): this {
    if ((this.live || this.connecting) && !this.finished) {
      if (this.connecting) this.once('connect', () => this.reset());
      else this.reset();
    } else {
      this.destroy(codeError(Error, 'ERR_SOCKET_CLOSED', 'Socket is closed'));
    }
    return this;
  }

  private reset(): void {
    this.resetting = true;
    this.destroy();
  }

  setTimeout(ms: number, cb?: () => void): this {
    // As Node's setStreamTimeout: the type (validateNumber), then the range, then the callback.
    if (typeof ms !== 'number') throw invalidArgType('msecs', 'of type number', ms);
    if (!(ms >= 0 && Number.isFinite(ms))) {
      const e = new RangeError(`The value of "msecs" is out of range. It must be a non-negative finite number. Received ${String(ms)}`);
      (e as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
      throw e;
    }
    if (cb !== undefined && typeof cb !== 'function') throw invalidArgType('callback', 'of type function', cb);
    this.timeoutMs = ms;
    this.timeoutSet = true;
    if (cb) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    this.touch();
    return this;
  }

  /** The value of the last setTimeout (ms; 0 once cleared), undefined before any (as net.Socket). */
  get timeout(): number | undefined {
    return this.timeoutSet ? this.timeoutMs : undefined;
  }

  private timeoutSet = false;

  /**
   * The stack's own loop keeps the process alive while it runs (until stack.close()), not its
   * sockets: ref()/unref() return the socket and change nothing (an event-loop handle per socket
   * would not make the process exit while the stack runs anyway).
   */
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

  /**
   * Connects this socket, as net.Socket#connect: a new Socket, or one whose connection closed
   * (Node allows a reconnect; counters and addresses start over). A socket that is connecting or
   * connected throws (EALREADY / EISCONN, the kernel's answers to a second connect()).
   */
  connect(options: TcpSocketConnectOpts | IpcSocketConnectOpts, connectionListener?: () => void): this;
  connect(port: number, host?: string, connectionListener?: () => void): this;
  connect(port: number, connectionListener?: () => void): this;
  /** IPC (a path, or `{ path }`): throws ERR_FEATURE_UNAVAILABLE_ON_PLATFORM (typed so a Socket fits net.Socket). */
  connect(path: string, connectionListener?: () => void): never;
  connect(...args: ConnectArgs): this {
    const [o, cb] = normalizeConnectArgs(args);
    if (this.connecting) throw Object.assign(errnoError('EALREADY', 'connect'), { message: 'connect EALREADY: the socket is already connecting' });
    if (this.entry && !this.destroyed) throw Object.assign(errnoError('EISCONN', 'connect'), { message: 'connect EISCONN: the socket is already connected; connect() again once it has closed' });
    if (!this.ctx) throw codeError(Error, 'ERR_INVALID_STATE', 'This Socket belongs to no virtual server: make it with vs.net.Socket (or connect with vs.net.connect)');
    if (this.destroyed) {
      // Destroyed by its own aborted signal: stays so (the AbortError was the answer).
      if (this.abortSignal?.aborted) return this;
      this.reinit();
    }
    if (cb) this.once('connect', cb);
    this.startConnect(this.ctx, o);
    return this;
  }

  /** A destroyed socket made new for another connect(), as Node's (undestroy, new handle). */
  private reinit(): void {
    (this as unknown as { _undestroy(): void })._undestroy();
    this.entry = null;
    this.pendingWrite = null;
    this.unconsumed = 0;
    this._bytesRead = 0;
    this._bytesWritten = 0;
    this.finished = false;
    this.peerCache = null;
    this.resetting = false;
    this.peerEnded = false;
    this.held = [];
    this.heldEof = false;
    this.mapped = false;
    this.attempt = null;
    this.autoSelectFamilyAttemptedAddresses = undefined;
    this.keepAliveDirty = false;
    this.off('connect', this.writeOnConnect);
  }

  /** Active open (options normalized by connect()). */
  private startConnect(ctx: NetContext, o: TcpSocketConnectOpts): void {
    this.ctx = ctx;
    // Checks in Node's order (lookupAndConnect), thrown at the call.
    if (o.localAddress && !isIP(o.localAddress)) throw codeError(TypeError, 'ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${o.localAddress}`);
    if (o.localPort !== undefined && o.localPort !== null && typeof o.localPort !== 'number') throw invalidArgType('options.localPort', 'of type number', o.localPort);
    const rawPort = o.port as unknown;
    if (typeof rawPort !== 'number' && typeof rawPort !== 'string') throw invalidArgType('options.port', 'one of type number or string', rawPort);
    const port = validatePort(rawPort);
    if (o.autoSelectFamily != null && typeof o.autoSelectFamily !== 'boolean') throw invalidArgType('options.autoSelectFamily', 'of type boolean', o.autoSelectFamily);
    if (o.autoSelectFamilyAttemptTimeout != null && !(Number.isInteger(o.autoSelectFamilyAttemptTimeout) && o.autoSelectFamilyAttemptTimeout >= 1)) {
      throw codeError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "options.autoSelectFamilyAttemptTimeout" is out of range. It must be >= 1 && <= 2147483647. Received ${String(o.autoSelectFamilyAttemptTimeout)}`);
    }
    if (o.lookup != null && typeof o.lookup !== 'function') throw invalidArgType('options.lookup', 'of type function', o.lookup);
    if (o.host != null && typeof o.host !== 'string') throw invalidArgType('hostname', 'of type string', o.host);
    if ((o as { fd?: unknown }).fd !== undefined) throw notSupported('connect({ fd })', 'a virtual server has no file descriptors');
    // Node reads these at `new Socket(options)`; connect()'s own options are honoured too.
    if (o.signal !== undefined && o.signal !== this.abortSignal) addAbortSignal(o.signal, this);
    if (o.noDelay !== undefined) this.wantNoDelay = !!o.noDelay;
    if (o.keepAlive !== undefined) {
      this.wantKeepAlive = !!o.keepAlive;
      this.keepAliveSecs = Math.trunc(Math.max(0, o.keepAliveInitialDelay ?? 0) / 1000);
    }
    this.tcpOpts = { ...o.tcp };
    this.connecting = true;
    const host = o.host || 'localhost';
    // 'localhost' is looked up when there is a lookup function (as Node's), else the loopback.
    if (isIP(host) || (host === 'localhost' && !o.lookup) || (host.startsWith('[') && host.endsWith(']')) || host.includes('%')) {
      // As Node: the attempt starts on the next tick (a destroy() before it sends nothing).
      const gen = ++this.connectGen;
      process.nextTick(() => { if (this.connecting && !this.entry && gen === this.connectGen) this.attemptTo(ctx, host, port, o); });
    } else {
      this.lookupThen(ctx, host, port, o);
    }
    // `timeout` is net.connect()'s option (it calls setTimeout): socket.connect() ignores it, as Node's.
  }

  /** Counts connect() calls: a deferred attempt of an earlier one does not run. */
  private connectGen = 0;

  /**
   * A host name: resolved by the options' `lookup` (a VS has no resolver of its own), called as
   * Node's lookupAndConnect calls it: `{ family, hints }` (hints dns.ADDRCONFIG when no family is
   * asked for and none given), and with autoSelectFamily (Node's default) and no family or local
   * address, `all: true`, the answer a list of which every address is told by a 'lookup' event.
   * Ours connects to the first usable one (no Happy Eyeballs).
   */
  private lookupThen(ctx: NetContext, host: string, port: number, o: TcpSocketConnectOpts): void {
    const fail = (err: Error) => this.failAttempt(err);
    if (!o.lookup) {
      const err = Object.assign(codeError(Error, 'ENOTFOUND', `getaddrinfo ENOTFOUND ${host} (a virtual server resolves no names: connect to an IP address, or pass a lookup function)`),
        { errno: -3008, syscall: 'getaddrinfo', hostname: host });
      process.nextTick(() => this.emit('lookup', err, undefined, undefined, host));
      fail(err);
      return;
    }
    const raw = o.family as unknown;
    const family = raw === 'IPv4' ? 4 : raw === 'IPv6' ? 6 : raw as number | undefined;
    const dnsopts: { family: number | undefined; hints: number; all?: boolean } = { family, hints: o.hints || 0 };
    const anyFamily = family !== 4 && family !== 6;
    if (anyFamily && dnsopts.hints === 0) dnsopts.hints = dnsADDRCONFIG;
    const invalidFamily = (fam: unknown) => Object.assign(
      codeError(RangeError, 'ERR_INVALID_ADDRESS_FAMILY', `Invalid address family: ${String(fam)} ${o.host}:${String(o.port)}`), { host: o.host, port: o.port });
    if (anyFamily && !o.localAddress && (o.autoSelectFamily ?? getDefaultAutoSelectFamily())) {
      dnsopts.all = true;
      o.lookup(host, dnsopts as LookupAllOptions, (err: Error | null, found: LookupAddress[] | string, fam?: number) => {
        if (!this.connecting) return; // destroyed meanwhile
        if (err) { this.emit('lookup', err, undefined, undefined, host); fail(err); return; }
        // A lookup function that answers one address although asked for all: that address.
        const list = typeof found === 'string' ? [{ address: found, family: fam ?? 0 }] : Array.isArray(found) ? found : [];
        const valid: LookupAddress[] = [];
        for (const a of list) {
          this.emit('lookup', err, a.address, a.family, host);
          if (!this.connecting) return;
          if (isIP(a.address) && (a.family === 4 || a.family === 6) && !valid.some((v) => v.address === a.address)) valid.push(a);
        }
        if (!valid.length) {
          const first = list[0];
          fail(!first || !isIP(first.address) ? codeError(TypeError, 'ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${String(first?.address)}`) : invalidFamily(first.family));
          return;
        }
        // Node tries them alternating families, the first address's family first: the first one leads.
        if (valid.length > 1) this.autoSelectFamilyAttemptedAddresses = [`${valid[0]!.address}:${port}`];
        this.attemptTo(ctx, valid[0]!.address, port, o);
      });
      return;
    }
    o.lookup(host, dnsopts as LookupOneOptions, (err: Error | null, found: string | LookupAddress[], fam?: number) => {
      // Asked for one address; a resolver that answers a list gives its first.
      const first = Array.isArray(found) ? found[0] : undefined;
      const address = first ? first.address : found as string;
      const addressType = first ? first.family : fam;
      this.emit('lookup', err, address, addressType, host);
      if (!this.connecting) return; // destroyed meanwhile
      if (err) { fail(err); return; }
      if (typeof address !== 'string' || !isIP(address)) { fail(codeError(TypeError, 'ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${String(address)}`)); return; }
      if (addressType !== 4 && addressType !== 6) { fail(invalidFamily(addressType)); return; }
      this.attemptTo(ctx, address, port, o);
    });
  }

  /** One connection attempt to an address literal; errors come as 'error', as Node's. */
  private attemptTo(ctx: NetContext, host: string, port: number, o: TcpSocketConnectOpts): void {
    let dst: IpAddr;
    let zone = '';
    try {
      ({ addr: dst, zone } = hostAddr(host));
    } catch {
      this.failAttempt(Object.assign(codeError(Error, 'ENOTFOUND', `getaddrinfo ENOTFOUND ${host}`), { errno: -3008, syscall: 'getaddrinfo', hostname: host }));
      return;
    }
    // As Node (an AF_INET6 socket): a connection to ::ffff:a.b.c.d shows both ends IPv4-mapped.
    if (typeof dst === 'number' && host.includes(':')) this.mapped = true;
    const address = this.mapped ? `::ffff:${addrToString(dst)}` : addrToString(dst);
    const family = this.mapped || isIp6(dst) ? 6 : 4;
    const local = o.localAddress && o.localPort ? { address: o.localAddress, port: o.localPort } : undefined;
    this.attempt = { address, port, family, local };
    const e = ctx.engine;
    // Errors of the stack's checks get the fields Node's have (errno, syscall, address, port) and
    // Node's message ('connect EADDRNOTAVAIL 127.0.0.1:80'), the stack's reason after it in
    // parentheses (and in err.reason).
    const shaped = (err: unknown): NetError => {
      const x = err as NetError;
      if (x && typeof x.code === 'string') {
        x.errno ??= errnoOf(x.code);
        x.syscall ??= 'connect';
        if (x.syscall === 'connect') {
          x.address = address;
          x.port = port || undefined;
          const head = `connect ${x.code} ${address}:${port}`;
          if (typeof x.message === 'string' && !x.message.startsWith(head)) {
            x.reason ??= x.message;
            x.message = `${head} (${x.message.replace(/^connect(?: [A-Z]+)?(?: \S+?)?: /, '')})`;
          }
        }
      }
      return x;
    };
    // No route: as Linux's connect() (ENETUNREACH once bound, after 'connectionAttempt'); Node's
    // message names the socket's local end (getsockname: 0.0.0.0:0 when nothing was bound), not
    // the stack's reason, which the error keeps as `reason`.
    const unreachable = (localText: string, reason: string): void => {
      const x = exceptionWithHostPort('ENETUNREACH', 'connect', address, port);
      x.message += ` - Local (${localText})`;
      x.reason = reason;
      this.emit('connectionAttempt', address, port, family);
      this.failAttempt(x);
    };
    const anyText = family === 4 ? '0.0.0.0' : '::';
    // A local address of the other family: Node's bind of the socket (AF_INET or AF_INET6, by the
    // destination) fails before any attempt ('bind EINVAL ::1:4000').
    if (o.localAddress && isIP(o.localAddress) !== family) {
      this.failAttempt(exceptionWithHostPort('EINVAL', 'bind', o.localAddress, o.localPort));
      return;
    }
    let src: ReturnType<Engine['tcpSource']>;
    try {
      const la = o.localAddress ? hostAddr(o.localAddress).addr : 0;
      src = e.tcpSource(ctx.vs, dst, la, o.localPort ?? 0, o.mark ?? 0, zone);
    } catch (err) {
      // A local address the VS does not have: Node's bind error ('bind EADDRNOTAVAIL 10.9.9.9').
      const x = err as NetError;
      if (x.code === 'ENETUNREACH' && x.syscall !== 'bind') { unreachable(`${o.localAddress || anyText}:${o.localPort ?? 0}`, x.message); return; }
      this.failAttempt(x.message?.startsWith('bind ') ? exceptionWithHostPort(x.code, 'bind', o.localAddress ?? '', o.localPort) : shaped(x));
      return;
    }
    // A local address given: the stack chose no route for it yet; without one, as above.
    if (o.localAddress && src.via === null && !ctx.vs.rules.select(src.addr, o.mark ?? 0, ctx.vs.tables, dst)) {
      unreachable(`${o.localAddress}:${src.port}`, `connect ENETUNREACH ${addrToString(dst)} (no route in virtual server '${ctx.vs.name}')`);
      return;
    }
    if (o.localPort) {
      // As Node's bind before connect (to 0.0.0.0 or :: without localAddress) under Linux's
      // SO_REUSEADDR rule: a port a listener holds on an overlapping address is in use
      // ('bind EADDRINUSE 10.1.1.2:4000'); connections from that port are not in the way.
      const bindText = o.localAddress || (family === 4 ? '0.0.0.0' : '::');
      const bindAddr = o.localAddress ? hostAddr(o.localAddress).addr : family === 4 ? 0 : ANY6;
      if (tcpState(ctx.vs).listeners.get(src.port)?.some((l) => localOverlap(l.addr, l.v6Only, bindAddr, false))) {
        this.failAttempt(exceptionWithHostPort('EADDRINUSE', 'bind', bindText, o.localPort));
        return;
      }
    }
    // As Node: announced once bound, before the SYN (a listener may destroy the socket).
    this.emit('connectionAttempt', address, port, family);
    if (!this.connecting || this.destroyed) return;
    try {
      const tuple = { localAddr: src.addr, localPort: src.port, remoteAddr: dst, remotePort: port };
      if (e.tcp.find(ctx.vs, tuple.localAddr, tuple.localPort, dst, port, src.via)) {
        // Linux: a connect() whose four-tuple is taken is EADDRNOTAVAIL (inet_hash_connect). Node's
        // error of a connect() that fails at once names the local end in its message only.
        const x = exceptionWithHostPort('EADDRNOTAVAIL', 'connect', address, port, { address: addrToString(src.addr), port: src.port });
        delete x.localAddress;
        delete x.localPort;
        throw x;
      }
      const opts: Partial<TcpOptions> = {};
      if (this.wantNoDelay) opts.noDelay = true;
      if (this.wantKeepAlive) {
        opts.keepAlive = true;
        if (this.keepAliveSecs > 0) { opts.keepIdleUs = this.keepAliveSecs * 1_000_000; opts.keepIntvlUs = 1_000_000; opts.keepCnt = 10; }
      }
      this.entry = e.tcp.connect(ctx.vs, tuple, { ...opts, ...this.tcpOpts }, this, o.mark ?? 0, src.via, !o.localPort);
      if (this.zcHandler) this.entry.zeroCopy = true;
    } catch (err) {
      this.failAttempt(shaped(err));
    }
  }

  /** The attempt failed before reaching the wire: destroyed with `err` on the next tick (as Node's). */
  private failAttempt(err: Error): void {
    process.nextTick(() => { if (this.connecting) this.destroy(err); });
  }

  // ---------------------------------------------------------------- events from the engine

  tcpEstablished(): void {
    if (!this.connecting) return;
    this.connecting = false;
    if (this.entry) {
      // setNoDelay/setKeepAlive called while connecting take effect now (as Node's afterConnect).
      if (this.wantNoDelay) this.entry.conn.setNoDelay(true);
      if (this.keepAliveDirty) { this.keepAliveDirty = false; this.applyKeepAlive(); }
    }
    try {
      this.emit('connect');
      this.emit('ready');
    } finally {
      // Writes queued while connecting went out from their 'connect' listener; also when a
      // listener before it threw, they go out now.
      this.touch();
      if (this.pendingWrite) this.continueWrite();
    }
  }

  tcpData(chunk: Buffer): void {
    this._bytesRead += chunk.length;
    this.touch();
    if (this.destroyed) return;
    if (this.onread) { this.deliverOnRead(chunk); return; }
    let taken = true;
    try {
      taken = this.push(chunk);
    } finally {
      // A 'data' listener that threw was still given the bytes: the receive window reopens for them.
      if (taken) this.entry?.conn.consumed(chunk.length, this.now());
      else this.unconsumed += chunk.length;
    }
  }

  /** onread: while its callback returned false (or pause()), data waits here, unacknowledged to the window. */
  private onreadPaused = false;

  /**
   * onread (as Node): the data is copied into the given buffer (or one the function returns) and
   * handed to the callback, `bytesWritten` bytes at a time; false pauses until resume().
   */
  private deliverOnRead(chunk: Buffer): void {
    if (this.onreadPaused || this.held.length) { this.held.push(chunk); this.unconsumed += chunk.length; return; }
    const r = this.onread!;
    let off = 0;
    while (off < chunk.length) {
      const buf = typeof r.buffer === 'function' ? r.buffer() : r.buffer;
      if (!(buf instanceof Uint8Array) || buf.length === 0) {
        this.destroy(codeError(TypeError, 'ERR_INVALID_ARG_VALUE', 'options.onread.buffer must be (or give) a non-empty Uint8Array'));
        return;
      }
      const n = Math.min(buf.length, chunk.length - off);
      buf.set(chunk.subarray(off, off + n));
      off += n;
      this.entry?.conn.consumed(n, this.now());
      if (r.callback(n, buf) === false) {
        this.onreadPaused = true;
        if (off < chunk.length) { this.held.push(chunk.subarray(off)); this.unconsumed += chunk.length - off; }
        return;
      }
      if (this.destroyed) return;
    }
  }

  override pause(): this {
    if (this.onread) this.onreadPaused = true;
    return super.pause();
  }

  override resume(): this {
    super.resume();
    if (this.onread && this.onreadPaused) {
      this.onreadPaused = false;
      const held = this.held;
      this.held = [];
      for (let i = 0; i < held.length; i++) {
        this.unconsumed -= held[i]!.length;
        if (this.onreadPaused) { this.held.push(held[i]!); this.unconsumed += held[i]!.length; continue; }
        this.deliverOnRead(held[i]!);
      }
      if (!this.held.length && this.heldEof) { this.heldEof = false; this.endOfData(); }
    }
    return this;
  }

  /**
   * The peer's FIN reached the application: the end of the stream (after data held for onread).
   * As Node's onStreamRead at EOF: push(null) then read(0), so a socket nobody reads (no 'data'
   * listener, not flowing) with nothing buffered still emits 'end', and without allowHalfOpen
   * ends its side too, instead of staying half-open (CLOSE_WAIT) for good.
   */
  private endOfData(): void {
    if (this.readableEnded) return;
    this.push(null);
    this.read(0);
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

  /** The peer sent FIN (its later RST means EPIPE to a writer, as in the kernel's CLOSE_WAIT). */
  private remoteClosed = false;

  tcpRemoteClose(): void {
    this.remoteClosed = true;
    if (this.held.length) this.heldEof = true;
    else this.endOfData();
  }

  tcpWritable(): void {
    if (this.pendingWrite) this.continueWrite();
  }

  tcpClosed(err: TcpError | null): void {
    this.finished = true;
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    if (err) {
      let e: NetError;
      const a = this.attempt;
      const wasConnecting = this.connecting;
      if (this.connecting && a) {
        // A RST answering the SYN is a refusal (ECONNREFUSED); as Node: 'connect ECONNREFUSED 10.1.1.2:80'.
        e = exceptionWithHostPort(err === 'ECONNRESET' ? 'ECONNREFUSED' : err, 'connect', a.address, a.port, a.local);
        this.emit('connectionAttemptFailed', a.address, a.port, a.family, e);
      } else if (err === 'ECONNRESET' && this.remoteClosed) {
        // Linux: a RST after the peer's FIN (CLOSE_WAIT) reports EPIPE, to the next write.
        e = errnoError('EPIPE', 'write');
      } else {
        // Established: as Node's read errors ('read ECONNRESET', 'read ETIMEDOUT').
        e = errnoError(err, 'read');
      }
      // A write waiting for the connection is told at the close (see _destroy). A write in progress
      // fails with a write error (EPIPE: the write itself met the RST); after a read error, as
      // Node's, the stream is destroyed first and the write completes without one (_destroy).
      if (!wasConnecting && this.pendingWrite && e.syscall !== 'read') { const cb = this.pendingWrite.cb; this.pendingWrite = null; cb(e); }
      this.destroy(e);
      return;
    }
    this.connecting = false;
    if (this.pendingWrite) { const cb = this.pendingWrite.cb; this.pendingWrite = null; cb(errnoError('EPIPE', 'write')); }
    // Orderly close: the end of the stream comes after whatever the application has not read yet.
    // With nothing left to read the socket closes now; otherwise once it is read ('end') and
    // written ('finish'), so no received byte is thrown away.
    if (this.held.length) this.heldEof = true;
    else this.endOfData();
    if (!this.writableEnded) this.end();
    if (this.readableLength === 0 && !this.held.length) this.destroy();
  }

  // ---------------------------------------------------------------- Duplex

  override _read(): void {
    // onread: held bytes are acknowledged as its callback takes them, not as the stream reads.
    if (this.unconsumed && this.entry && !this.onread) {
      const n = this.unconsumed;
      this.unconsumed = 0;
      this.entry.conn.consumed(n, this.now());
    }
  }

  /**
   * As Node's writeAfterFIN: once the peer's FIN ended this socket (allowHalfOpen off) a write is
   * refused with EPIPE and destroys the socket, rather than the generic 'write after end'.
   */
  override write(chunk: unknown, encoding?: BufferEncoding | WriteCb, cb?: WriteCb): boolean {
    if (this.peerEnded && this.writableEnded) {
      const done = typeof encoding === 'function' ? encoding : cb;
      const er = codeError(Error, 'EPIPE', 'This socket has been ended by the other party');
      if (typeof done === 'function') process.nextTick(done, er);
      this.destroy(er);
      return false;
    }
    return super.write(chunk, encoding as BufferEncoding, cb);
  }

  override _write(chunk: Buffer | string, enc: BufferEncoding, cb: WriteCb): void {
    if (!this.entry && !this.connecting) {
      // Never connected (or the attempt already failed): as Node's ERR_SOCKET_CLOSED.
      cb(codeError(Error, 'ERR_SOCKET_CLOSED', 'Socket is closed'));
      return;
    }
    if (!this.entry) {
      // Connecting and the address is still being looked up: wait for the connection.
      this.pendingWrite = { buf: toBuffer(chunk, enc), off: 0, end: Buffer.byteLength(chunk as string, enc), cb };
      this.once('connect', this.writeOnConnect);
      return;
    }
    if (this.finished) {
      cb(codeError(Error, 'EPIPE', 'This socket has been ended by the other party'));
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
    else this.once('connect', this.writeOnConnect);
  }

  /**
   * A write made while connecting goes out from a 'connect' listener added at the write, as Node's
   * (_writeGeneric): listeners added before it run first, and its callback comes before 'ready'.
   */
  private readonly writeOnConnect = (): void => {
    if (this.pendingWrite && !this.connecting) this.continueWrite();
  };

  private continueWrite(): void {
    const p = this.pendingWrite;
    const e = this.entry;
    if (!p || !e) return;
    const st = e.conn.state;
    if (st !== TcpState.Established && st !== TcpState.CloseWait) {
      if (st === TcpState.SynSent || st === TcpState.SynReceived) return; // wait for the handshake
      this.pendingWrite = null;
      p.cb(errnoError('EPIPE', 'write'));
      return;
    }
    p.started = true;
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
    // Pending (connecting, or never connected): the FIN waits for the connection, as Node's
    // _final; end() on a socket that never connects does not finish.
    if (this.pending) { this.once('connect', () => this._final(cb)); return; }
    if (this.entry && !this.finished) this.entry.conn.shutdown(this.now());
    // 'finish' once the shutdown is done, a turn of the loop later as Node's (libuv's shutdown
    // request), so an error of this turn (a write after end) comes first, as there.
    setImmediate(cb);
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    const wasConnecting = this.connecting;
    this.connecting = false;
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    const e = this.entry;
    if (e && !this.finished) {
      const st = e.conn.state;
      if (st !== TcpState.Closed && st !== TcpState.TimeWait) {
        // Bytes held back from the window were read if the stream buffer is empty (after EOF the
        // stream never calls _read again to report them).
        if (this.unconsumed && !this.readableLength && !this.held.length) {
          e.conn.consumed(this.unconsumed, this.now());
          this.unconsumed = 0;
        }
        // resetAndDestroy(), or data the application never read: reset (as the kernel's close()
        // with unread data); otherwise, with or without an error (as Node's destroy(err), which
        // closes the descriptor), an orderly FIN after what is still queued.
        if (this.resetting || this.readableLength || this.held.length) e.conn.abort(this.now());
        else e.conn.close(this.now());
      }
    }
    const p = this.pendingWrite;
    if (p && !wasConnecting) {
      // The write in progress completes without an error, as Node's (onWriteComplete on a
      // destroyed stream); buffered ones get the destroy's error (or ERR_STREAM_DESTROYED) from
      // the stream. One made while connecting that never went out (destroyed in a 'connect'
      // listener before its own) is ERR_SOCKET_CLOSED, as Node's _writeGeneric without a handle.
      this.pendingWrite = null;
      p.cb(p.started ? null : codeError(Error, 'ERR_SOCKET_CLOSED', 'Socket is closed'));
    } else if (p) {
      // A write that waited for the connection: told at the close (below), its bytes still counted
      // in bytesWritten (Node's _pendingData), and no longer this socket's to send.
      this.pendingWrite = null;
      this._bytesWritten += p.end - p.off;
    }
    const server = this.server;
    if (server) server.connectionGone(this);
    const hadHandle = e !== null || wasConnecting;
    cb(err);
    process.nextTick(() => {
      // 'close' after 'error', with hadError once there was a connection (Node: the handle's close);
      // a socket that never had one closes without it, as Node's.
      if (hadHandle) this.emit('close', !!err); else this.emit('close');
      // A write that waited for the connection (still counted in bytesWritten, as Node's).
      if (p && wasConnecting) p.cb(closedBeforeConnection());
    });
  }
}

export interface ServerOptions {
  allowHalfOpen?: boolean;
  /** Accepted sockets start paused (as Node). */
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  /** readable/writable highWaterMark of accepted sockets (as Node). */
  highWaterMark?: number;
  tcp?: Partial<TcpOptions>;
}

/** Options of server.listen() (Node's ListenOptions; `path`, `fd` and `handle` throw: not supported). */
export interface ListenOptions {
  port?: number;
  /** An IP address of the VS ('0.0.0.0' IPv4 only; none or '::': both families). */
  host?: string;
  backlog?: number;
  /** Node's cluster option: there is no cluster here, so as without one. */
  exclusive?: boolean;
  ipv6Only?: boolean;
  /** Aborting closes the server (as server.close()). */
  signal?: AbortSignal;
}

/** What 'drop' tells of a connection refused by maxConnections (as Node). */
export interface DropArgument {
  localAddress?: string;
  localPort?: number;
  localFamily?: string;
  remoteAddress?: string;
  remotePort?: number;
  remoteFamily?: string;
}

type ListenArgs = [(number | string | ListenOptions | (() => void) | null)?, ...(string | number | (() => void) | undefined)[]];

const toNumber = (x: unknown): number | false => { const n = Number(x); return n >= 0 ? n : false; };

export class Server extends EventEmitter {
  /** Above this many connections new ones are closed at once and 'drop' tells (unset: no limit, as Node). */
  maxConnections!: number;
  private listener: TcpListener | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly opts: ServerOptions;
  /** Node's `_listeningId`: a listen() superseded by close() does not emit 'listening'. */
  private listenGen = 0;
  /**
   * The options as Node's net.Server keeps them, read at each accept (so a change applies to the
   * next connection, as Node's): keepAliveInitialDelay in whole seconds, highWaterMark the
   * stream default unless given.
   */
  allowHalfOpen: boolean;
  pauseOnConnect: boolean;
  noDelay: boolean;
  keepAlive: boolean;
  keepAliveInitialDelay: number;
  highWaterMark: number;

  constructor(private readonly ctx: NetContext, opts: ServerOptions | null = {}, onConnection?: (s: Socket) => void) {
    super();
    if (opts !== null && opts !== undefined && typeof opts !== 'object') throw invalidArgType('options', 'of type object', opts);
    const o = { ...opts };
    if (o.keepAliveInitialDelay !== undefined && typeof o.keepAliveInitialDelay !== 'number') {
      throw invalidArgType('options.keepAliveInitialDelay', 'of type number', o.keepAliveInitialDelay);
    }
    if (o.highWaterMark !== undefined && typeof o.highWaterMark !== 'number') throw invalidArgType('options.highWaterMark', 'of type number', o.highWaterMark);
    this.opts = o;
    this.allowHalfOpen = o.allowHalfOpen || false;
    this.pauseOnConnect = !!o.pauseOnConnect;
    this.noDelay = Boolean(o.noDelay);
    this.keepAlive = Boolean(o.keepAlive);
    this.keepAliveInitialDelay = ~~((o.keepAliveInitialDelay ?? 0) / 1000);
    this.highWaterMark = o.highWaterMark ?? getDefaultHighWaterMark(false);
    if (onConnection) this.on('connection', onConnection);
  }

  get listening(): boolean { return this.listener !== null; }

  /** Removed from Node long ago (undefined there too); declared so a Server fits Node's `net.Server` type. */
  declare readonly connections: number;

  /**
   * As Node's server.listen: (port[, host][, backlog][, cb]), (options[, cb]), or () for any
   * port on :: (both families). 'listening' or 'error' (EADDRINUSE, EADDRNOTAVAIL) come on the next
   * tick. IPC paths, handles and file descriptors throw: not supported.
   */
  listen(port?: number, hostname?: string, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number, hostname?: string, listeningListener?: () => void): this;
  listen(port?: number, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number, listeningListener?: () => void): this;
  listen(options: ListenOptions, listeningListener?: () => void): this;
  listen(listeningListener?: () => void): this;
  listen(...args: ListenArgs): this {
    // Node's normalizeArgs: (options[, cb]), (path[, cb]), ([port][, host][, cb]).
    const a0 = args[0];
    let options: ListenOptions & { path?: unknown; fd?: unknown; handle?: unknown; _handle?: unknown; readableAll?: unknown; writableAll?: unknown };
    if (typeof a0 === 'object' && a0 !== null) options = a0;
    else if (typeof a0 === 'string' && toNumber(a0) === false) throw notSupported(`listen('${a0}')`, 'IPC (Unix domain socket or pipe) servers need the kernel; listen on a TCP port');
    else {
      options = args.length === 0 || typeof a0 === 'function' ? {} : { port: a0 as number };
      if (args.length > 1 && typeof args[1] === 'string') options.host = args[1];
    }
    const last = args[args.length - 1];
    const cb = typeof last === 'function' ? last : null;
    if (this.listener) throw codeError(Error, 'ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
    if (options.handle !== undefined || options._handle !== undefined) throw notSupported('listen(handle)', 'a virtual server has no libuv handles');
    if (typeof options.fd === 'number') throw notSupported('listen({ fd })', 'a virtual server has no file descriptors');
    if (options.path !== undefined && options.path !== null) throw notSupported('listen({ path })', 'IPC (Unix domain socket or pipe) servers need the kernel; listen on a TCP port');
    const backlogFromArgs = toNumber(args.length > 1 && args[1]) || toNumber(args.length > 2 && args[2]);
    if (cb) this.once('listening', cb);
    const gen = ++this.listenGen;
    this.addAbortSignal(options.signal);
    if (args.length === 0 || typeof a0 === 'function' || ('port' in options && options.port === undefined) || options.port === null) options.port = 0;
    if (typeof options.port !== 'number' && typeof options.port !== 'string') {
      // Node: options with a port (or path) of no usable type are just "invalid".
      const why = 'port' in options || 'path' in options ? 'is invalid' : 'must have the property "port" or "path"';
      throw codeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'options' ${why}. Received ${inspect(options)}`);
    }
    const port = validatePort(options.port, 'options.port');
    const backlog = (options.backlog || backlogFromArgs || 511);
    const host = options.host;
    // Node's lookup of the host checks its type at once (dns.lookup's validateString).
    if (host && typeof host !== 'string') throw invalidArgType('hostname', 'of type string', host);
    const vs = this.ctx.vs;
    const eng = this.ctx.engine;
    let addr: IpAddr = ANY6;
    let addrText = '::';
    try {
      // As Node: no host listens on :: (both families, IPv4 peers seen as ::ffff:a.b.c.d).
      if (host === '0.0.0.0') addr = 0;
      else if (host && host !== '::') {
        try {
          addr = hostAddr(host).addr;
        } catch {
          throw Object.assign(codeError(Error, 'ENOTFOUND', `getaddrinfo ENOTFOUND ${host}`), { errno: -3008, syscall: 'getaddrinfo', hostname: host });
        }
        if (isUnspecified(addr)) addr = typeof addr === 'number' ? 0 : ANY6; // '0::0' is '::'
      }
      addrText = addrToString(addr);
      if (addr !== 0 && addr !== ANY6) {
        const want = addr;
        if (!vs.hasLocal(want, true)) {
          throw uvExceptionWithHostPort('EADDRNOTAVAIL', 'listen', addrText, port);
        }
      }
      let p = port;
      if (p === 0) {
        for (let q = 32768; q < 61000; q++) if (!eng.tcp.portInUse(vs, q)) { p = q; break; }
      }
      try {
        this.listener = eng.tcp.listen(vs, addr, p, {
          backlog: Math.max(1, backlog),
          synBacklog: Math.max(16, backlog),
          tcp: { ...this.opts.tcp, ...(this.noDelay ? { noDelay: true } : {}) },
          onConnection: (e) => this.accept(e),
          onVsDestroyed: () => this.vsDestroyed(),
        }, !!options.ipv6Only && addr === ANY6);
      } catch (err) {
        if ((err as NetError).code === 'EADDRINUSE') throw uvExceptionWithHostPort('EADDRINUSE', 'listen', addrText, p);
        throw err;
      }
      // 'listening' unless close() came first (as Node's emitListeningNT).
      process.nextTick(() => { if (this.listener && gen === this.listenGen) this.emit('listening'); });
    } catch (err) {
      process.nextTick(() => this.emit('error', err));
    }
    return this;
  }

  /** listen({ signal }): aborting closes the server, as Node's (no error; 'close' follows). */
  private addAbortSignal(signal: AbortSignal | undefined): void {
    if (signal === undefined) return;
    if (typeof signal !== 'object' || signal === null || !('aborted' in signal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
    const onAbort = (): void => { this.close(); };
    if (signal.aborted) { process.nextTick(onAbort); return; }
    signal.addEventListener('abort', onAbort, { once: true });
    this.once('close', () => signal.removeEventListener('abort', onAbort));
  }

  private accept(e: TcpEntry): void {
    if (this.maxConnections && this.sockets.size >= this.maxConnections) {
      // As Node: 'drop' with the addresses, then the connection is closed (FIN, as close(fd)).
      const t = e.conn.tuple;
      const mapped = this.listener !== null && this.listener.addr === ANY6 && typeof t.localAddr === 'number';
      const txt = (x: IpAddr) => (mapped ? `::ffff:${addrToString(x)}` : addrToString(x));
      const fam = (x: IpAddr) => (mapped || isIp6(x) ? 'IPv6' : 'IPv4');
      e.conn.close(this.ctx.engine.time(this.ctx.now()));
      this.emit('drop', {
        localAddress: txt(t.localAddr), localPort: t.localPort, localFamily: fam(t.localAddr),
        remoteAddress: txt(t.remoteAddr), remotePort: t.remotePort, remoteFamily: fam(t.remoteAddr),
      } satisfies DropArgument);
      return;
    }
    const s = new Socket(this.ctx, {
      allowHalfOpen: this.allowHalfOpen, server: this,
      readableHighWaterMark: this.highWaterMark, writableHighWaterMark: this.highWaterMark,
    } as InternalOpts);
    s.mapped = this.listener !== null && this.listener.addr === ANY6;
    s.attach(this.ctx, e);
    if (this.noDelay) s.setNoDelay(true);
    if (this.keepAlive) s.setKeepAlive(true, this.keepAliveInitialDelay * 1000);
    this.sockets.add(s);
    if (this.pauseOnConnect) s.pause();
    this.emit('connection', s);
    // Data or FIN that arrived with or right after the handshake.
    this.ctx.engine.tcp.attached(e);
  }

  /** @internal an accepted socket was destroyed (as Node counts: at destroy, not at 'close'). */
  connectionGone(s: Socket): void {
    if (this.sockets.delete(s)) this.emitCloseIfDrained();
  }

  address(): { address: string; family: string; port: number } | null {
    if (!this.listener) return null;
    const a = this.listener.addr;
    return { address: addrToString(a), family: isIp6(a) ? 'IPv6' : 'IPv4', port: this.listener.port };
  }

  getConnections(cb: (err: Error | null, count: number) => void): this {
    process.nextTick(cb, null, this.sockets.size);
    return this;
  }

  /**
   * Stops accepting; 'close' once every connection has closed (as Node: connections stay open).
   * Called when not listening, `cb` gets ERR_SERVER_NOT_RUNNING (still with the 'close').
   */
  close(cb?: (err?: Error) => void): this {
    this.listenGen++;
    if (typeof cb === 'function') {
      if (!this.listener) this.once('close', () => cb(codeError(Error, 'ERR_SERVER_NOT_RUNNING', 'Server is not running.')));
      else this.once('close', cb);
    }
    if (this.listener) this.ctx.engine.tcp.unlisten(this.listener);
    this.listener = null;
    this.emitCloseIfDrained();
    return this;
  }

  /** `await using server = ...`: close() and wait for 'close' (as Node >= 20.4). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.listener) return;
    await new Promise<void>((resolve, reject) => this.close((err) => (err ? reject(err) : resolve())));
  }

  /** The VS went away: as close(), with the connections already being destroyed by the engine. */
  private vsDestroyed(): void {
    if (!this.listener) return;
    this.listenGen++;
    this.listener = null;
    this.emitCloseIfDrained();
  }

  private emitCloseIfDrained(): void {
    if (this.listener || this.sockets.size) return;
    process.nextTick(() => this.emit('close'));
  }

  /** As Socket#ref/unref: the stack's loop, not a server, keeps the process alive. */
  ref(): this { return this; }
  unref(): this { return this; }
}

export function createServer(ctx: NetContext, opts?: ServerOptions | ((s: Socket) => void), onConnection?: (s: Socket) => void): Server {
  if (typeof opts === 'function') return new Server(ctx, {}, opts);
  return new Server(ctx, opts ?? {}, onConnection);
}

/** Node's normalizeArgs for connect: (options[, cb]), (port[, host][, cb]); a path (IPC) throws. */
function normalizeConnectArgs(args: ConnectArgs): [TcpSocketConnectOpts, (() => void) | null] {
  const a0 = args[0];
  let o: TcpSocketConnectOpts;
  if (typeof a0 === 'object' && a0 !== null) {
    o = a0 as TcpSocketConnectOpts;
    if ((o as { path?: unknown }).path != null) throw notSupported('connect({ path })', 'IPC (Unix domain socket or pipe) connections need the kernel; connect to a TCP port');
  } else if (typeof a0 === 'string' && toNumber(a0) === false) {
    throw notSupported(`connect('${a0}')`, 'IPC (Unix domain socket or pipe) connections need the kernel; connect to a TCP port');
  } else {
    o = { port: a0 as number };
    if (args.length > 1 && typeof args[1] === 'string') o.host = args[1];
  }
  if (o.port === undefined) throw codeError(TypeError, 'ERR_MISSING_ARGS', 'The "options" or "port" or "path" argument must be specified');
  const last = args[args.length - 1];
  return [o, typeof last === 'function' ? last : null];
}

/**
 * connect(options[, connectListener]) / connect(port[, host][, connectListener]) as net.connect:
 * a new Socket (options as `new Socket(options)`), connecting.
 */
export function connect(ctx: NetContext, options: TcpSocketConnectOpts, connectionListener?: () => void): Socket;
export function connect(ctx: NetContext, port: number, host?: string, connectionListener?: () => void): Socket;
export function connect(ctx: NetContext, port: number, connectionListener?: () => void): Socket;
export function connect(ctx: NetContext, ...args: ConnectArgs): Socket {
  const [o] = normalizeConnectArgs(args);
  const s = new Socket(ctx, o);
  if (o.timeout) s.setTimeout(o.timeout);
  return s.connect(...args as [TcpSocketConnectOpts]);
}

/** The `net` module of one VS (`vs.net`): code written against Node's `net` takes it as its `net`. */
export interface NetModule {
  connect: ConnectFunction;
  createConnection: ConnectFunction;
  createServer(options?: ServerOptions, connectionListener?: (socket: Socket) => void): Server;
  createServer(connectionListener?: (socket: Socket) => void): Server;
  /** `new net.Socket([options])` in this VS. */
  Socket: new (options?: SocketConstructorOpts) => Socket;
  /** `new net.Server([options][, connectionListener])` in this VS. */
  Server: new (options?: ServerOptions | ((socket: Socket) => void), connectionListener?: (socket: Socket) => void) => Server;
  /** Node's alias of Socket. */
  Stream: new (options?: SocketConstructorOpts) => Socket;
  isIP: typeof isIP;
  isIPv4: typeof isIPv4;
  isIPv6: typeof isIPv6;
  /** Node's own: address lists and values hold no sockets. */
  BlockList: typeof BlockList;
  SocketAddress: typeof SocketAddress;
  /**
   * Node's own process-wide defaults (a VS's connect() reads the same, for its lookup options;
   * it tries one address whatever they say).
   */
  getDefaultAutoSelectFamily: typeof getDefaultAutoSelectFamily;
  setDefaultAutoSelectFamily: typeof setDefaultAutoSelectFamily;
  getDefaultAutoSelectFamilyAttemptTimeout: typeof getDefaultAutoSelectFamilyAttemptTimeout;
  setDefaultAutoSelectFamilyAttemptTimeout: typeof setDefaultAutoSelectFamilyAttemptTimeout;
}

export function netModule(ctx: NetContext): NetModule {
  const connectIn = ((...args: ConnectArgs) => (connect as (c: NetContext, ...a: ConnectArgs) => Socket)(ctx, ...args)) as ConnectFunction;
  class VsSocket extends Socket {
    constructor(options?: SocketConstructorOpts) { super(ctx, options); }
  }
  class VsServer extends Server {
    constructor(options?: ServerOptions | ((socket: Socket) => void), connectionListener?: (socket: Socket) => void) {
      if (typeof options === 'function') super(ctx, {}, options);
      else super(ctx, options ?? {}, connectionListener);
    }
  }
  return {
    connect: connectIn,
    createConnection: connectIn,
    createServer: (opts?: ServerOptions | ((s: Socket) => void), listener?: (s: Socket) => void) => createServer(ctx, opts, listener),
    Socket: VsSocket,
    Stream: VsSocket,
    Server: VsServer,
    isIP, isIPv4, isIPv6,
    BlockList, SocketAddress,
    getDefaultAutoSelectFamily, setDefaultAutoSelectFamily, getDefaultAutoSelectFamilyAttemptTimeout, setDefaultAutoSelectFamilyAttemptTimeout,
  };
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
