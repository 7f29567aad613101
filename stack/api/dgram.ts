/**
 * UDP sockets shaped like Node 20's `dgram.Socket` ('udp4' and 'udp6'), bound inside one virtual
 * server. A 'udp6' socket bound to `::` also hears IPv4 peers, reported as ::ffff:a.b.c.d with
 * family 'IPv6' as in Node, unless `ipv6Only`.
 *
 * Every method and option of Node's dgram either behaves as Node's over Linux does (compared in
 * test/dgram-node-parity.test.ts) or throws ERR_FEATURE_UNAVAILABLE_ON_PLATFORM (multicast, bind
 * to an fd, unref); the README lists the differences.
 *
 * Received datagrams are queued by the engine (bounded by the receive buffer) and emitted as
 * 'message' events when the runtime flushes events after a burst, so user code never runs in the
 * middle of packet processing.
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import {
  addrEq, addrToString, ANY6, Ip6, IpAddr, isIp6, isUnspecified, isV4Mapped, parseIp4, parseIp6, splitZone,
} from '../../protocols/ip/addr';
import type { Link } from '../vs';
import {
  codeError, errnoError, ERRNO, hostPortError, invalidArgType, notSupported, received, sockError, SocketError,
} from './errors';

export { sockError } from './errors';
export type { SocketError } from './errors';

/** Peers whose way back a socket remembers (traffic reflection); the least recently heard goes first. */
export const UDP_RETURN_PATHS_MAX = 1024;

/** Where a peer's datagrams came from: the way its replies go back. */
export class ReturnPath {
  link!: Link;
  readonly mac = new Uint8Array(6);
  /** The peer's address (the key is its hash for IPv6: checked on use). */
  addr: IpAddr = 0;
  /** The unicast address the datagram was sent to (0 for a broadcast): the reply's source. */
  local: IpAddr = 0;
  /** The socket's insertion/move count when this path last moved to the back of the order. */
  stamp = 0;
}

export type UdpType = 'udp4' | 'udp6';

/**
 * Address conversions on the per-message path: an echo server turns rinfo.address back into an
 * address for every reply, so the last conversion each way is remembered.
 */
let lastText = '';
let lastType: UdpType = 'udp4';
let lastAddrParsed: IpAddr = 0;
/**
 * The address a socket of `type` means by `text`: IPv4 text for 'udp4'; IPv6 text for 'udp6', an
 * IPv4-mapped one meaning its IPv4 address (RFC 4291 2.5.5.2), a zone (`%link`) ignored here.
 * Throws RangeError.
 */
export function socketAddr(text: string, type: UdpType): IpAddr {
  if (text === lastText && type === lastType) return lastAddrParsed;
  let a: IpAddr;
  if (type === 'udp4') a = parseIp4(text);
  else {
    const v6 = parseIp6(splitZone(text).addr);
    a = isV4Mapped(v6) ? v6.w3 : v6;
  }
  lastText = text;
  lastType = type;
  lastAddrParsed = a;
  return a;
}
let lastAddr: IpAddr = -1;
let lastAddrMapped = false;
let lastAddrText = '';
/** The text of `a` as a socket of its kind reports it (`mapped`: an IPv4 peer of a 'udp6' socket). */
export function addrText(a: IpAddr, mapped: boolean): string {
  if (a !== lastAddr || mapped !== lastAddrMapped) {
    lastAddr = a;
    lastAddrMapped = mapped;
    lastAddrText = mapped && typeof a === 'number' ? `::ffff:${addrToString(a)}` : addrToString(a);
  }
  return lastAddrText;
}

/** A socket's own address, as `address()` and `remoteAddress()` give it. */
export interface AddressInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

/** Where a received datagram came from (the second argument of 'message'). */
export interface RemoteInfo extends AddressInfo {
  /** The datagram's payload length in bytes. */
  size: number;
}

/** What `send()` takes: text (UTF-8), a Buffer, or any other ArrayBufferView (TypedArray, DataView). */
export type DgramMessage = string | ArrayBufferView;

/** Called once a datagram was handed to the link (bytes sent), or with why not. */
export type SendCallback = (error: SocketError | null, bytes?: number) => void;

/**
 * Resolves a name as Node's `lookup` option: called with the text given to bind/connect/send (the
 * default address when none) and 4 or 6 (the socket's family); answers with an address literal.
 */
export type LookupFunction = (hostname: string, family: 4 | 6,
  callback: (err: Error | null, address: string, family?: number) => void) => void;

/** `createSocket(options)` as Node 20's dgram.createSocket: every key is checked (a typo fails to compile, and at run time). */
export interface SocketOptions {
  type: UdpType;
  /** SO_REUSEADDR: sockets that all set it may bind the same port (see `UdpLayer.find` for who receives). */
  reuseAddr?: boolean;
  /** A 'udp6' socket bound to :: hears IPv6 only. */
  ipv6Only?: boolean;
  /** Applied at bind, as setRecvBufferSize(). */
  recvBufferSize?: number;
  /** Applied at bind, as setSendBufferSize(). */
  sendBufferSize?: number;
  /** Name resolution; without it only address literals are accepted (see README, differences from Node). */
  lookup?: LookupFunction;
  /** Aborting closes the socket (as close()). */
  signal?: AbortSignal;
}

/** `bind(options)` as Node's. `fd` (adopting a kernel socket) is refused: the stack has no kernel sockets. */
export interface BindOptions {
  port?: number;
  address?: string;
  /** Node: whether cluster workers share the handle; there are no cluster workers here (every bind is exclusive). */
  exclusive?: boolean;
  fd?: number;
}

/** What a socket creation takes inside the stack (`maxQueue`: a cap on queued datagrams, for tests). */
export type UdpSocketInit = UdpType | (SocketOptions & { maxQueue?: number });

export interface UdpHost {
  /** Binds; returns the port obtained or throws an error with a Node-style `code` and a `reason`. */
  udpBind(sock: UdpSocket, port: number, addr: IpAddr): number;
  udpUnbind(sock: UdpSocket): void;
  /**
   * Sends one datagram; throws a Node-style error for what is known synchronously. `zone`: the
   * link named by a scoped address (fe80::1%link), '' when none.
   */
  udpSend(sock: UdpSocket, data: Uint8Array, port: number, addr: IpAddr, zone: string): void;
  /**
   * What connect() checks as Linux's does (a route, broadcast allowed); throws like udpSend.
   * Returns the source address the route gives (the socket's local address from then on).
   */
  udpConnect(sock: UdpSocket, port: number, addr: IpAddr, zone: string): IpAddr;
  /** Called when the socket has queued messages, so they get emitted after the burst. */
  udpReady(sock: UdpSocket): void;
}

/**
 * Receive and send buffer sizes, as Linux keeps them: a size set is doubled (the kernel's room for
 * bookkeeping), at least the minimum, the request capped at `UDP_BUF_MAX` first (net.core.rmem_max
 * and wmem_max; 4 MiB on the development machine). Linux's minimums: SOCK_MIN_RCVBUF and
 * SOCK_MIN_SNDBUF as Node reports them after setting 1 (2304, 4608).
 */
export const UDP_RCVBUF_MIN = 2304;
export const UDP_SNDBUF_MIN = 4608;
export const UDP_BUF_MAX = 4 * 1024 * 1024;
/**
 * Default receive buffer: twice Linux's net.core.rmem_default (212992). Linux hands datagrams to
 * the application as they arrive; the stack hands them over once per step, which reads up to 512
 * frames (8 bursts of 64), so the default holds one full step of small datagrams (512 × 832).
 */
export const UDP_RCVBUF_DEFAULT = 2 * 212992;
/** Default send buffer: Linux's net.core.wmem_default (a datagram leaves at once: see `getSendBufferSize`). */
export const UDP_SNDBUF_DEFAULT = 212992;
/**
 * What a queued datagram costs against the receive buffer beyond its payload. Linux charges the
 * socket buffer's truesize (about 768 bytes more than a small payload on loopback); with the same
 * charge and Linux's admission rule (a datagram is taken when it fits, or when the queue is empty),
 * the counts a small buffer holds come close to the kernel's (test/dgram-node-parity.test.ts).
 */
export const UDP_DGRAM_OVERHEAD = 768;

const BIND_NONE = 0;
const BIND_PENDING = 1;
const BIND_DONE = 2;

const SOCKET_OPTION_KEYS = ['type', 'reuseAddr', 'ipv6Only', 'recvBufferSize', 'sendBufferSize', 'lookup', 'signal'];

function notRunning(): SocketError {
  return codeError(Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
}

/** Node's validatePort: a number or numeric string in 0..65535 (0 only when allowed); the port as a number. */
function validPort(port: unknown, allowZero: boolean): number {
  const n = typeof port === 'string' && port.trim().length ? +port : port;
  if (typeof n !== 'number' || n !== n >>> 0 || n > 0xffff || (n === 0 && !allowZero)) {
    throw codeError(RangeError, 'ERR_SOCKET_BAD_PORT', `Port should be ${allowZero ? '>=' : '>'} 0 and < 65536. Received ${received(port)}.`);
  }
  return n;
}

/** Node's validateUint32 for an option. */
function validUint32(v: unknown, name: string): void {
  if (typeof v !== 'number') throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" property must be of type number. Received ${received(v)}`);
  if (!Number.isInteger(v)) throw codeError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be an integer. Received ${v}`);
  if (v < 0 || v > 4294967295) throw codeError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be >= 0 && <= 4294967295. Received ${v}`);
}

/** A message (or one element of a list) as bytes; null when it is neither text nor an ArrayBufferView. */
function toBytes(m: unknown): Uint8Array | null {
  if (typeof m === 'string') return Buffer.from(m);
  if (m instanceof Uint8Array) return m;
  if (ArrayBuffer.isView(m)) return Buffer.from(m.buffer, m.byteOffset, m.byteLength);
  return null;
}

function badMessage(name: string, v: unknown): SocketError {
  return codeError(TypeError, 'ERR_INVALID_ARG_TYPE',
    `The "${name}" argument must be of type string or an instance of Buffer, TypedArray, or DataView. Received ${received(v)}`);
}

function emitError(s: UdpSocket, e: Error): void {
  s.emit('error', e as SocketError);
}

/**
 * An error from the stack below (a `code` and a `reason`) as Node reports a failed system call on
 * `address:port` (ExceptionWithHostPort); errors that are not system errors pass unchanged.
 */
function callError(e: unknown, syscall: string, address: string | undefined, port: number | undefined): Error {
  const x = e as SocketError;
  if (!x || typeof x.code !== 'string' || ERRNO[x.code] === undefined) return e as Error;
  return hostPortError(x.code, syscall, address, port, x.reason ?? x.message);
}

type SendCb = SendCallback | undefined;

/** The events of a socket and their arguments (listeners are typed; an unknown event name does not compile). */
export interface UdpSocketEvents {
  close: [];
  connect: [];
  error: [err: SocketError];
  listening: [];
  message: [msg: Buffer, rinfo: RemoteInfo];
}

export class UdpSocket extends EventEmitter<UdpSocketEvents> {
  /** Local port (0 while unbound). */
  localPort = 0;
  /**
   * Local address: 0 = 0.0.0.0 (IPv4 only), ANY6 = :: (both families unless `ipv6Only`), else one
   * address. A socket bound to the wildcard takes the source its route gives on connect(), as
   * Linux; disconnect() gives back `boundAddr`.
   */
  localAddr: IpAddr = 0;
  /** The address bind() asked for (wildcard when none). */
  private boundAddr: IpAddr = 0;
  /** 'udp4' or 'udp6' (Node's socket type). */
  readonly type: UdpType;
  /** A 'udp6' socket bound to :: hears IPv6 only (Node's `ipv6Only`). */
  readonly ipv6Only: boolean;
  /** SO_REUSEADDR (Node's `reuseAddr`): a port may be shared by sockets that all set it. */
  readonly reuseAddr: boolean;
  closed = false;
  /** SO_BROADCAST (setBroadcast): without it, sending to a broadcast address fails with EACCES. */
  broadcast = false;
  /** TTL / hop limit of what the socket sends (setTTL; IP_TTL, IPV6_UNICAST_HOPS). */
  ttl = 64;
  /** Socket mark for policy routing (like SO_MARK / ip rule fwmark). */
  mark = 0;
  /** Messages waiting to be emitted. */
  readonly queue: { data: Buffer; addr: IpAddr; port: number }[] = [];
  /** An ICMP error about a datagram to the connected peer, emitted as 'error' before the messages. */
  private icmpErr = '';
  /** What the queued messages cost against the receive buffer (payload + UDP_DGRAM_OVERHEAD each). */
  queuedBytes = 0;
  readonly maxQueue: number;
  /** Receive / send buffer sizes as getRecvBufferSize()/getSendBufferSize() report them (Linux's doubled value). */
  private rcvbuf = UDP_RCVBUF_DEFAULT;
  private sndbuf = UDP_SNDBUF_DEFAULT;
  /** Sizes asked for at creation, applied at bind (as Node does). */
  private readonly initRcvbuf: number;
  private readonly initSndbuf: number;
  /** The peer of a connected socket (datagrams from elsewhere are not for it). */
  connected: { addr: IpAddr; port: number; zone: string } | null = null;
  /** Whether connect() was called and has not finished (a lookup is pending). */
  private connecting = false;
  private bindState = BIND_NONE;
  /**
   * Whether the kernel would have a descriptor for this socket by now: a bind was tried (even one
   * that failed) or done. Options then work and address() reads 0.0.0.0:0 while unbound, as Node.
   */
  private hasFd = false;
  /** Whether bind() named the port: Linux keeps a named port across disconnect(), not an ephemeral one. */
  private portLocked = false;
  /**
   * Linux: disconnect() unhashes a socket whose port was ephemeral (it had none of its own); its
   * next send binds a new ephemeral port. True while such a socket waits for that send.
   */
  private autobind = false;
  /** Calls waiting for a bind whose lookup is pending (as Node queues them); null when none. */
  private pending: (() => void)[] | null = null;
  private readonly lookupFn: LookupFunction | null;
  private readonly signal: AbortSignal | null = null;
  private readonly onAbort: (() => void) | null = null;
  /** Peer (addr * 65536 + port; IPv6: the address's hash) → the link and MAC its last datagram came from; made on first use. */
  returnPaths: Map<number, ReturnPath> | null = null;
  /** Counts insertions and moves in `returnPaths` (its order is that of these stamps). */
  private pathStamp = 0;

  /** Made by the engine (`Engine.createUdpSocket`) or a VS handle (`VsHandle.createSocket`). */
  constructor(private readonly host: UdpHost, readonly vsName: string, init: UdpSocketInit) {
    super();
    const o: Partial<SocketOptions> & { maxQueue?: number } = typeof init === 'object' && init !== null ? init : { type: init };
    if (typeof init === 'object' && init !== null) {
      for (const k of Object.keys(init)) {
        if (!SOCKET_OPTION_KEYS.includes(k) && k !== 'maxQueue') {
          throw codeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The property 'options.${k}' is invalid: not a dgram socket option (options are ${SOCKET_OPTION_KEYS.join(', ')})`);
        }
      }
      if (o.recvBufferSize) validUint32(o.recvBufferSize, 'options.recvBufferSize');
      if (o.sendBufferSize) validUint32(o.sendBufferSize, 'options.sendBufferSize');
    }
    const type = o.type;
    if (type !== 'udp4' && type !== 'udp6') {
      throw codeError(TypeError, 'ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6');
    }
    if (o.lookup !== undefined && typeof o.lookup !== 'function') {
      throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "lookup" argument must be of type function. Received ${received(o.lookup)}`);
    }
    this.type = type;
    this.ipv6Only = type === 'udp6' && !!o.ipv6Only;
    this.reuseAddr = !!o.reuseAddr;
    this.lookupFn = o.lookup ?? null;
    this.maxQueue = o.maxQueue ?? Infinity;
    this.initRcvbuf = o.recvBufferSize ?? 0;
    this.initSndbuf = o.sendBufferSize ?? 0;
    if (o.signal !== undefined) {
      const sig = o.signal as unknown;
      if (sig === null || typeof sig !== 'object' || !('aborted' in sig)) {
        throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "options.signal" property must be an instance of AbortSignal. Received ${received(sig)}`);
      }
      const signal = o.signal;
      if (signal.aborted) this.close();
      else {
        const onAbort = (): void => { if (!this.closed) this.close(); };
        signal.addEventListener('abort', onAbort, { once: true });
        this.signal = signal;
        this.onAbort = onAbort;
      }
    }
  }

  /** Whether the socket is bound (a port of its VS is its own). */
  get bound(): boolean {
    return this.bindState === BIND_DONE;
  }

  /** The wildcard address of this socket's type (0.0.0.0 or ::). */
  private get anyText(): string {
    return this.type === 'udp6' ? '::' : '0.0.0.0';
  }

  /** The default destination of this socket's type when none is given (Node: localhost). */
  private get loopbackText(): string {
    return this.type === 'udp6' ? '::1' : '127.0.0.1';
  }

  /**
   * Resolves `text` (through `lookup` when the socket has one, else as an address literal) and
   * calls `done` with the address, its zone (fe80::1%link) and the text, or with the error Node
   * gives: a literal of the other family is EINVAL on `syscall`, anything else a failed lookup
   * (ENOTFOUND, syscall getaddrinfo). Synchronous without `lookup`.
   */
  private resolve(text: string, syscall: string, port: number | undefined,
    done: (err: Error | null, addr: IpAddr, zone: string) => void): void {
    if (this.lookupFn) {
      this.lookupFn(text, this.type === 'udp6' ? 6 : 4, (err, ip) => {
        if (err) done(err, 0, '');
        else this.literal(typeof ip === 'string' ? ip : String(ip), syscall, port, done);
      });
      return;
    }
    this.literal(text, syscall, port, done);
  }

  private literal(text: string, syscall: string, port: number | undefined,
    done: (err: Error | null, addr: IpAddr, zone: string) => void): void {
    let a: IpAddr;
    try {
      a = socketAddr(text, this.type);
    } catch {
      if (isIP(text) !== 0) done(hostPortError('EINVAL', syscall, text, port, `not an ${this.type === 'udp6' ? 'IPv6' : 'IPv4'} address, and the socket is ${this.type}`), 0, '');
      else done(sockError('ENOTFOUND', `getaddrinfo ENOTFOUND ${text}`, { syscall: 'getaddrinfo', hostname: text }), 0, '');
      return;
    }
    done(null, a, this.type === 'udp6' && text.indexOf('%') >= 0 ? splitZone(text).zone : '');
  }

  bind(port?: number, address?: string, callback?: () => void): this;
  bind(port?: number, callback?: () => void): this;
  bind(callback?: () => void): this;
  bind(options: BindOptions, callback?: () => void): this;
  bind(a?: number | BindOptions | (() => void) | null, b?: string | (() => void) | null, c?: () => void): this {
    if (this.closed) throw notRunning();
    if (this.bindState !== BIND_NONE) throw codeError(Error, 'ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
    const cb = typeof c === 'function' ? c : typeof b === 'function' ? b : typeof a === 'function' ? a : undefined;
    let port: unknown = 0;
    let given: unknown = '';
    if (a !== null && typeof a === 'object') {
      const keys = Object.keys(a).filter((k) => k !== 'port' && k !== 'address' && k !== 'exclusive' && k !== 'fd');
      if (keys.length) throw codeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The property 'options.${keys[0]}' is invalid: bind options are port, address, exclusive, fd`);
      if (a.fd !== undefined) throw notSupported('bind({ fd })', 'the stack has no kernel sockets to adopt; bind a port of the virtual server instead');
      port = a.port ?? 0;
      given = a.address;
    } else if (typeof a !== 'function') {
      port = a ?? 0;
      given = typeof b === 'function' ? '' : b;
    }
    // Node looks the address up (dns.lookup checks that it is a string) unless it is empty.
    if (given && typeof given !== 'string' && !this.lookupFn) throw invalidArgType('hostname', 'of type string', given);
    let address = (given || '') as string;
    // Node passes the port to the kernel unchecked (70000 binds 4464): refused here instead.
    const p = validPort(port, true);
    if (!address) address = this.anyText;
    this.bindState = BIND_PENDING;
    if (cb) {
      const onError = (): void => { this.removeListener('listening', onListening); };
      const onListening = (): void => { this.removeListener('error', onError); cb.call(this); };
      this.once('error', onError);
      this.once('listening', onListening);
    }
    this.resolve(address, 'bind', p, (err, addr) => {
      if (this.closed) return; // closed while the lookup ran
      if (!err) {
        // As libuv: the kernel socket exists once a bind reaches it (a failed bind leaves it, so
        // address() is then the unbound any address); an address that does not parse, or a
        // lookup that fails, never gets that far (address() stays EBADF).
        this.hasFd = true;
        try {
          if (addr !== 0 && addr !== ANY6 && isUnspecified(addr)) addr = ANY6; // '0::0' is '::'
          this.localPort = this.host.udpBind(this, p, addr);
          this.localAddr = addr;
          this.boundAddr = addr;
          this.portLocked = p !== 0;
        } catch (e) {
          err = callError(e, 'bind', address, p);
        }
      }
      if (err) {
        this.bindState = BIND_NONE;
        this.pending = null; // as Node: what waited for this bind is dropped with it
        const e = err;
        process.nextTick(emitError, this, e);
        return;
      }
      this.bindState = BIND_DONE;
      if (this.initRcvbuf) this.rcvbuf = bufSize(this.initRcvbuf, UDP_RCVBUF_MIN);
      if (this.initSndbuf) this.sndbuf = bufSize(this.initSndbuf, UDP_SNDBUF_MIN);
      const q = this.pending;
      this.pending = null;
      if (q) {
        // A lookup answered (asynchronously): 'listening' now, then the calls that waited, as Node.
        this.emit('listening');
        for (const f of q) f();
      } else {
        process.nextTick(() => { if (!this.closed) this.emit('listening'); });
      }
    });
    return this;
  }

  /** Queues `f` until a bind whose lookup is pending completes. */
  private later(f: () => void): void {
    (this.pending ??= []).push(f);
  }

  /** The bound address. Before bind completes: EBADF (getsockname), as Node. */
  address(): AddressInfo {
    if (this.closed) throw notRunning();
    const v6 = this.type === 'udp6';
    if (this.bindState !== BIND_DONE || this.autobind) {
      if (!this.hasFd) throw errnoError('EBADF', 'getsockname');
      return { address: this.anyText, family: v6 ? 'IPv6' : 'IPv4', port: 0 }; // a socket with no port yet
    }
    return { address: addrText(this.localAddr, v6), family: v6 ? 'IPv6' : 'IPv4', port: this.localPort };
  }

  /**
   * Sets the default peer: datagrams then go there, and only its datagrams are received. As Linux,
   * connect fails without a route (ENETUNREACH) and to a broadcast address without setBroadcast
   * (EACCES); errors reach `callback` or 'error'.
   */
  connect(port: number, address?: string, callback?: () => void): void;
  connect(port: number, callback: () => void): void;
  connect(port: number, b?: string | (() => void), c?: () => void): void {
    const p = validPort(port, false);
    let callback = c;
    let address = '';
    if (typeof b === 'function') callback = b;
    else if (b !== undefined) {
      if (typeof b !== 'string') throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "address" argument must be of type string. Received ${received(b)}`);
      address = b;
    }
    if (this.closed) throw notRunning();
    if (this.connected || this.connecting) throw codeError(Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    this.connecting = true;
    if (this.bindState === BIND_NONE) this.bind({ port: 0, exclusive: true });
    if (this.bindState !== BIND_DONE) {
      this.later(() => this.doConnect(p, address, callback));
      return;
    }
    this.doConnect(p, address, callback);
  }

  private doConnect(port: number, address: string, callback: (() => void) | undefined): void {
    if (callback) this.once('connect', callback);
    const text = address || this.loopbackText;
    this.resolve(text, 'connect', port, (err, addr, zone) => {
      if (this.closed) return;
      let src: IpAddr = 0;
      if (!err) {
        try {
          src = this.host.udpConnect(this, port, addr, zone);
        } catch (e) {
          err = callError(e, 'connect', text, port);
        }
      }
      this.connecting = false;
      if (err) {
        const e = err;
        process.nextTick(() => {
          if (callback) {
            this.removeListener('connect', callback);
            (callback as (e: Error) => void).call(this, e);
          } else this.emit('error', e as SocketError);
        });
        return;
      }
      this.connected = { addr, port, zone };
      if ((this.localAddr === 0 || this.localAddr === ANY6) && src !== 0) this.localAddr = src;
      process.nextTick(() => this.emit('connect'));
    });
  }

  disconnect(): void {
    if (this.closed) throw notRunning();
    if (!this.connected) throw codeError(Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    this.connected = null;
    this.localAddr = this.boundAddr;
    if (!this.portLocked && this.bindState === BIND_DONE) {
      // Linux __udp_disconnect: without SOCK_BINDPORT_LOCK the socket gives its port back.
      this.host.udpUnbind(this);
      this.localPort = 0;
      this.autobind = true;
    }
  }

  remoteAddress(): AddressInfo {
    if (this.closed) throw notRunning();
    if (!this.connected) throw codeError(Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    const v6 = this.type === 'udp6';
    return { address: addrText(this.connected.addr, v6), family: v6 ? 'IPv6' : 'IPv4', port: this.connected.port };
  }

  /**
   * send(msg[, offset, length][, port][, address][, callback]) with Node's rules for telling the
   * forms apart. An unconnected socket needs a port (ERR_SOCKET_BAD_PORT); a connected one takes
   * none: a port or address given to it is ERR_SOCKET_DGRAM_IS_CONNECTED (Node ignores them in
   * some forms). Errors reach `callback`, else 'error' (as Node's docs say; Node itself drops a
   * failed send that has no callback).
   */
  send(msg: DgramMessage | readonly DgramMessage[], port?: number, address?: string, callback?: SendCallback): void;
  send(msg: DgramMessage | readonly DgramMessage[], port?: number, callback?: SendCallback): void;
  send(msg: DgramMessage | readonly DgramMessage[], callback?: SendCallback): void;
  send(msg: DgramMessage, offset: number, length: number, port?: number, address?: string, callback?: SendCallback): void;
  send(msg: DgramMessage, offset: number, length: number, port?: number, callback?: SendCallback): void;
  send(msg: DgramMessage, offset: number, length: number, callback?: SendCallback): void;
  send(msg: DgramMessage | readonly DgramMessage[], a?: number | SendCallback, b?: number | string | SendCallback,
    c?: number | SendCallback, d?: string | SendCallback, e?: SendCallback): void {
    let data: Uint8Array | null;
    let port: unknown;
    let address: unknown;
    let cb: unknown;
    const connected = this.connected !== null;
    let sliced = false;
    if (!connected) {
      if (d || (c && typeof c !== 'function')) {
        data = slice(msg, a, b);
        sliced = true;
        port = c; address = d; cb = e;
      } else {
        port = a; address = b; cb = c;
      }
    } else {
      if (typeof b === 'number') {
        data = slice(msg, a, b);
        sliced = true;
        port = c; address = d; cb = e;
        if (typeof port === 'function') { cb = port; port = undefined; }
      } else {
        cb = a; port = undefined; address = b;
        if (a !== undefined && typeof a !== 'function') port = a; // a port given to a connected socket
      }
      if (port || address) throw codeError(Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    }
    if (!sliced) {
      if (Array.isArray(msg)) {
        const parts: Uint8Array[] = [];
        for (const m of msg as readonly unknown[]) {
          const x = toBytes(m);
          if (!x) throw badMessage('buffer list arguments', msg);
          parts.push(x);
        }
        data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      } else {
        data = toBytes(msg);
        if (!data) throw badMessage('buffer', msg);
      }
    }
    let p = 0;
    if (!connected) p = validPort(port, false);
    if (typeof cb !== 'function') cb = undefined;
    if (typeof address === 'function') { cb = address; address = undefined; }
    else if (address !== undefined && address !== null && typeof address !== 'string') {
      throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "address" argument must be of type string. Received ${received(address)}`);
    }
    if (this.closed) throw notRunning();
    if (this.bindState === BIND_NONE) this.bind({ port: 0, exclusive: true });
    const bytes = data!;
    const callback = cb as SendCb;
    if (this.bindState !== BIND_DONE) {
      this.later(() => this.sendNow(bytes, p, address as string | undefined, callback));
      return;
    }
    this.sendNow(bytes, p, address as string | undefined, callback);
  }

  private sendNow(data: Uint8Array, port: number, address: string | undefined, cb: SendCb): void {
    if (this.closed) return;
    const c = this.connected;
    if (c) return this.transmit(data, c.port, c.addr, c.zone, undefined, cb);
    const text = address || this.loopbackText;
    if (!this.lookupFn) {
      // The per-message path (an echo server replies to rinfo.address): no closure.
      let a: IpAddr;
      try {
        a = socketAddr(text, this.type);
      } catch {
        return this.literal(text, 'send', port, (err) => this.sendFailed(err!, data, cb));
      }
      return this.transmit(data, port, a, text.indexOf('%') >= 0 ? splitZone(text).zone : '', text, cb);
    }
    this.resolve(text, 'send', port, (err, a, zone) => {
      if (err) this.sendFailed(err, data, cb);
      else if (!this.closed) this.transmit(data, port, a, zone, text, cb);
    });
  }

  private sendFailed(err: Error, _data: Uint8Array, cb: SendCb): void {
    if (cb) process.nextTick(cb, err);
    else process.nextTick(emitError, this, err);
  }

  /** Hands one datagram to the stack; `text`: the address as given (errors name it), undefined when connected. */
  private transmit(data: Uint8Array, port: number, addr: IpAddr, zone: string, text: string | undefined, cb: SendCb): void {
    let err: Error | null = null;
    try {
      if (this.autobind) {
        this.localPort = this.host.udpBind(this, 0, this.boundAddr); // Linux's autobind in udp_sendmsg
        this.autobind = false;
      }
      this.host.udpSend(this, data, port, addr, zone);
    } catch (e) {
      err = callError(e, 'send', text, text === undefined ? undefined : port);
    }
    if (cb) process.nextTick(cb, err, err ? undefined : data.length);
    else if (err) process.nextTick(emitError, this, err);
  }

  close(callback?: () => void): this {
    if (typeof callback === 'function') this.on('close', callback);
    if (this.pending) {
      this.later(() => this.close());
      return this;
    }
    if (this.closed) throw notRunning();
    this.closed = true;
    if (this.bindState === BIND_DONE && !this.autobind) this.host.udpUnbind(this);
    this.bindState = BIND_NONE;
    this.connected = null;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.returnPaths = null;
    if (this.signal && this.onAbort) this.signal.removeEventListener('abort', this.onAbort);
    process.nextTick(() => this.emit('close'));
    return this;
  }

  /** A socket option needs a bound socket, as a kernel socket needs its descriptor (Node: EBADF). */
  private needBound(syscall: string): void {
    if (this.closed) throw notRunning();
    if (!this.hasFd) throw errnoError('EBADF', syscall);
  }

  /** SO_BROADCAST: whether datagrams may go to broadcast addresses (255.255.255.255, a subnet's broadcast). */
  setBroadcast(flag: boolean): void {
    this.needBound('setBroadcast');
    this.broadcast = !!flag;
  }

  /** IP_TTL / IPV6_UNICAST_HOPS of what the socket sends: 1..255 (EINVAL otherwise, as libuv). */
  setTTL(ttl: number): number {
    if (typeof ttl !== 'number') throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "ttl" argument must be of type number. Received ${received(ttl)}`);
    if (this.closed) throw notRunning();
    // libuv's uv_udp_set_ttl checks the range before it touches the socket: EINVAL before EBADF.
    const t = Math.trunc(ttl);
    if (!(t >= 1 && t <= 255)) throw errnoError('EINVAL', 'setTTL');
    this.needBound('setTTL');
    this.ttl = t;
    return ttl;
  }

  // Multicast: the stack neither joins groups for applications nor sends to group addresses.
  setMulticastTTL(_ttl: number): number { throw this.noMulticast('setMulticastTTL()'); }
  setMulticastLoopback(_flag: boolean): boolean { throw this.noMulticast('setMulticastLoopback()'); }
  setMulticastInterface(_interfaceAddress: string): void { throw this.noMulticast('setMulticastInterface()'); }
  addMembership(_multicastAddress: string, _interfaceAddress?: string): void { throw this.noMulticast('addMembership()'); }
  dropMembership(_multicastAddress: string, _interfaceAddress?: string): void { throw this.noMulticast('dropMembership()'); }
  addSourceSpecificMembership(_sourceAddress: string, _groupAddress: string, _interfaceAddress?: string): void {
    throw this.noMulticast('addSourceSpecificMembership()');
  }
  dropSourceSpecificMembership(_sourceAddress: string, _groupAddress: string, _interfaceAddress?: string): void {
    throw this.noMulticast('dropSourceSpecificMembership()');
  }

  private noMulticast(what: string): Error {
    if (this.closed) return notRunning();
    return notSupported(`dgram ${what}`, 'multicast is not offered to applications (datagrams to group addresses fail with ENETUNREACH)');
  }

  /** A socket is always referenced: the running stack, not the socket, keeps the process alive. */
  ref(): this {
    return this;
  }

  /**
   * Node lets the process exit while only this socket is left. Here the running stack keeps the
   * process alive whatever its sockets do, so this cannot be honoured: refused rather than
   * ignored (stack.close() lets the process exit). After close() it does nothing, as Node.
   */
  unref(): this {
    if (this.closed) return this;
    throw notSupported('dgram socket.unref()', 'the running stack keeps the process alive, not its sockets; call stack.close() to let the process exit');
  }

  /**
   * SO_RCVBUF as Linux: the size set is doubled (bookkeeping), at least 2304, the request capped
   * at 4 MiB first; size 0 only reads. Queued datagrams are held against it (payload +
   * UDP_DGRAM_OVERHEAD each): one that does not fit is dropped and counted (udp-socket-queue-full).
   */
  setRecvBufferSize(size: number): void {
    this.bufferSize(size, true);
  }

  getRecvBufferSize(): number {
    return this.bufferSize(0, true);
  }

  /**
   * SO_SNDBUF, kept and reported as Linux (doubled, at least 4608). It bounds nothing: a datagram
   * is handed to its link's queue when send() runs (the socket never holds one; see
   * getSendQueueSize), and a full device queue fails the send with ENOBUFS.
   */
  setSendBufferSize(size: number): void {
    this.bufferSize(size, false);
  }

  getSendBufferSize(): number {
    return this.bufferSize(0, false);
  }

  private bufferSize(size: number, recv: boolean): number {
    if (size >>> 0 !== size) throw codeError(TypeError, 'ERR_SOCKET_BAD_BUFFER_SIZE', 'Buffer size must be a positive integer');
    if (this.closed) throw notRunning();
    if (!this.hasFd) {
      const syscall = recv ? 'uv_recv_buffer_size' : 'uv_send_buffer_size';
      const e = codeError(Error, 'ERR_SOCKET_BUFFER_SIZE', `Could not get or set buffer size: ${syscall} returned EBADF (bad file descriptor)`);
      e.name = 'SystemError';
      e.errno = ERRNO.EBADF;
      e.syscall = syscall;
      e.info = { errno: ERRNO.EBADF!, code: 'EBADF', message: 'bad file descriptor', syscall };
      throw e;
    }
    if (size === 0) return recv ? this.rcvbuf : this.sndbuf;
    if (recv) this.rcvbuf = bufSize(size, UDP_RCVBUF_MIN);
    else this.sndbuf = bufSize(size, UDP_SNDBUF_MIN);
    return size;
  }

  /** @internal The receive buffer's size in bytes (what getRecvBufferSize() reports once bound), for `show connections`. */
  get receiveBuffer(): number {
    return this.rcvbuf;
  }

  /** Bytes waiting in the socket to be sent: always 0, a datagram goes to its link's queue when send() runs. */
  getSendQueueSize(): number {
    if (this.closed) throw notRunning();
    return 0;
  }

  /** Datagrams waiting in the socket to be sent: always 0 (see getSendQueueSize). */
  getSendQueueCount(): number {
    if (this.closed) throw notRunning();
    return 0;
  }

  /**
   * @internal engine → socket: returns false when the datagram does not fit the receive buffer
   * (or the queue cap), and the caller counts the drop. As Linux, a datagram is taken when it fits
   * or when nothing is queued.
   */
  enqueue(data: Buffer, addr: IpAddr, port: number): boolean {
    const cost = data.length + UDP_DGRAM_OVERHEAD;
    const q = this.queue;
    if (q.length && (this.queuedBytes + cost > this.rcvbuf || q.length >= this.maxQueue)) return false;
    q.push({ data, addr, port });
    this.queuedBytes += cost;
    if (q.length === 1) this.host.udpReady(this);
    return true;
  }

  /**
   * @internal engine → socket: a datagram from `addr:port` arrived on `link` from the MAC at
   * `mac[macOff..]`, sent to `local`; replies to that peer go back the same way.
   */
  heardFrom(addr: IpAddr, port: number, link: Link, mac: Uint8Array, macOff: number, local: IpAddr): void {
    const key = returnKey(addr, port);
    const paths = (this.returnPaths ??= new Map());
    let p = paths.get(key);
    if (p && !addrEq(p.addr, addr)) { paths.delete(key); p = undefined; } // another IPv6 peer with the same hash
    if (!p) {
      if (paths.size >= UDP_RETURN_PATHS_MAX) paths.delete(paths.keys().next().value!); // least recently heard
      p = new ReturnPath();
      p.stamp = ++this.pathStamp;
      paths.set(key, p);
    } else if (this.pathStamp - p.stamp > UDP_RETURN_PATHS_MAX / 2) {
      // Heard again after half the table moved past it: to the back (least recently heard go
      // first), without reordering on every datagram.
      p.stamp = ++this.pathStamp;
      paths.delete(key);
      paths.set(key, p);
    }
    p.link = link;
    p.addr = addr;
    p.local = local;
    const m = p.mac;
    for (let i = 0; i < 6; i++) m[i] = mac[macOff + i]!;
  }

  /** @internal the way back to `addr:port`, if this socket heard from it lately. */
  returnPath(addr: IpAddr, port: number): ReturnPath | null {
    const p = this.returnPaths?.get(returnKey(addr, port));
    return p && addrEq(p.addr, addr) ? p : null;
  }

  /** Whether a datagram to our address `dst` is for this socket's local address. */
  hears(dst: IpAddr): boolean {
    const a = this.localAddr;
    if (a === 0) return typeof dst === 'number';
    if (a === ANY6) return isIp6(dst) || !this.ipv6Only;
    return addrEq(a, dst);
  }

  /**
   * @internal engine → socket: an ICMP error (as an errno code) about a datagram this connected
   * socket sent; '' for one Linux does not report. Emitted at the next flush, as Node emits a
   * failed receive: 'error' with syscall 'recvmsg'.
   */
  icmpError(code: string): void {
    if (!code || this.closed) return;
    const first = !this.icmpErr && this.queue.length === 0;
    this.icmpErr = code;
    if (first) this.host.udpReady(this);
  }

  /** @internal emits queued messages. */
  flush(): void {
    if (this.icmpErr) {
      const code = this.icmpErr;
      this.icmpErr = '';
      try {
        if (this.connected) this.emit('error', errnoError(code, 'recvmsg'));
      } catch (err) {
        if (this.queue.length) this.host.udpReady(this); // the messages wait for the next flush
        throw err;
      }
    }
    const q = this.queue.splice(0);
    this.queuedBytes = 0; // the application has them now (Linux frees the room as they are read)
    for (let i = 0; i < q.length; i++) {
      if (this.closed) return;
      const m = q[i]!;
      try {
        const v6 = this.type === 'udp6';
        const rinfo: RemoteInfo = { address: addrText(m.addr, v6), family: v6 ? 'IPv6' : 'IPv4', port: m.port, size: m.data.length };
        this.emit('message', m.data, rinfo);
      } catch (err) {
        // A 'message' listener threw: the messages not yet emitted stay queued for the next flush.
        if (i + 1 < q.length && !this.closed) {
          const was = this.queue.length;
          const rest = q.slice(i + 1);
          for (const r of rest) this.queuedBytes += r.data.length + UDP_DGRAM_OVERHEAD;
          this.queue.unshift(...rest);
          if (was === 0) this.host.udpReady(this);
        }
        throw err;
      }
    }
  }
}


/** Node's sliceBuffer: bytes [offset, offset+length) of `msg` (ERR_BUFFER_OUT_OF_BOUNDS beyond it). */
function slice(msg: unknown, offset: unknown, length: unknown): Uint8Array {
  const b = Array.isArray(msg) ? null : toBytes(msg);
  if (!b) throw badMessage('buffer', msg);
  const off = Number(offset) >>> 0;
  const len = Number(length) >>> 0;
  if (off > b.byteLength) throw codeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds');
  if (off + len > b.byteLength) throw codeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds');
  return b.subarray(off, off + len);
}

/** A buffer size as Linux stores it: the request capped at UDP_BUF_MAX, doubled, at least `min`. */
function bufSize(size: number, min: number): number {
  return Math.max(Math.min(size, UDP_BUF_MAX) * 2, min);
}

// Node 20: `await using` / socket[Symbol.asyncDispose]() closes the socket unless it is closed.
const asyncDispose = (Symbol as unknown as { asyncDispose?: symbol }).asyncDispose;
if (asyncDispose) {
  Object.defineProperty(UdpSocket.prototype, asyncDispose, {
    configurable: true,
    writable: true,
    value(this: UdpSocket): Promise<void> {
      if (this.closed) return Promise.resolve();
      return new Promise<void>((resolve) => { this.close(resolve); });
    },
  });
}

/** Key of a peer in a socket's return paths. */
function returnKey(addr: IpAddr, port: number): number {
  return (typeof addr === 'number' ? addr : (addr as Ip6).hash) * 65536 + port;
}
