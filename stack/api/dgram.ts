/**
 * UDP sockets shaped like Node's `dgram.Socket` ('udp4' and 'udp6'), bound inside one virtual
 * server. A 'udp6' socket bound to `::` also hears IPv4 peers, reported as ::ffff:a.b.c.d with
 * family 'IPv6' as in Node, unless `ipv6Only`.
 *
 * Received datagrams are queued by the engine (bounded) and emitted as 'message' events when the
 * runtime flushes events after a burst, so user code never runs in the middle of packet processing.
 */
import { EventEmitter } from 'node:events';
import {
  addrEq, addrToString, ANY6, Ip6, IpAddr, isIp6, isUnspecified, isV4Mapped, parseIp4, parseIp6, splitZone,
} from '../../protocols/ip/addr';
import type { Link } from '../vs';

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

export interface RemoteInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  size: number;
}

export interface UdpHost {
  /** Binds; returns the port obtained or throws an error with a Node-style `code`. */
  udpBind(sock: UdpSocket, port: number, addr: IpAddr): number;
  udpUnbind(sock: UdpSocket): void;
  /**
   * Sends one datagram; throws a Node-style error for what is known synchronously. `zone`: the
   * link named by a scoped address (fe80::1%link), '' when none.
   */
  udpSend(sock: UdpSocket, data: Uint8Array, port: number, addr: IpAddr, zone: string): void;
  /** Called when the socket has queued messages, so they get emitted after the burst. */
  udpReady(sock: UdpSocket): void;
}

export interface SocketError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  address?: string;
  port?: number;
}

export function sockError(code: string, message: string, extra: Partial<SocketError> = {}): SocketError {
  const e = new Error(message) as SocketError;
  e.code = code;
  Object.assign(e, extra);
  return e;
}

type SendCb = (err: Error | null, bytes?: number) => void;

export class UdpSocket extends EventEmitter {
  /** Local port (0 while unbound). */
  localPort = 0;
  /** Local address: 0 = 0.0.0.0 (IPv4 only), ANY6 = :: (both families unless `ipv6Only`), else one address. */
  localAddr: IpAddr = 0;
  /** 'udp4' or 'udp6' (Node's socket type). */
  readonly type: UdpType;
  /** A 'udp6' socket bound to :: hears IPv6 only (Node's `ipv6Only`). */
  readonly ipv6Only: boolean;
  bound = false;
  closed = false;
  /** Socket mark for policy routing (like SO_MARK / ip rule fwmark). */
  mark = 0;
  /** Messages waiting to be emitted. */
  readonly queue: { data: Buffer; addr: IpAddr; port: number }[] = [];
  readonly maxQueue: number;
  /** The peer of a connected socket (datagrams from elsewhere are not for it). */
  connected: { addr: IpAddr; port: number; zone: string } | null = null;
  /** Peer (addr * 65536 + port; IPv6: the address's hash) → the link and MAC its last datagram came from; made on first use. */
  returnPaths: Map<number, ReturnPath> | null = null;
  /** Counts insertions and moves in `returnPaths` (its order is that of these stamps). */
  private pathStamp = 0;
  /** Set by the engine: identity of the virtual server that owns the socket. */
  constructor(private readonly host: UdpHost, readonly vsName: string,
    opts: { maxQueue?: number; type?: UdpType; ipv6Only?: boolean } = {}) {
    super();
    this.maxQueue = opts.maxQueue ?? 1024;
    const type = opts.type ?? 'udp4';
    if (type !== 'udp4' && type !== 'udp6') {
      throw sockError('ERR_SOCKET_BAD_TYPE', `Bad socket type specified. Valid types are: udp4, udp6. Received ${JSON.stringify(type)}`);
    }
    this.type = type;
    this.ipv6Only = type === 'udp6' && !!opts.ipv6Only;
  }

  /** The wildcard address of this socket's type (0.0.0.0 or ::). */
  private get anyAddr(): IpAddr {
    return this.type === 'udp6' ? ANY6 : 0;
  }

  /** The address `text` as this socket means it; throws a Node-style ERR_INVALID_ARG_VALUE. */
  private addrArg(text: string): IpAddr {
    try {
      return socketAddr(text, this.type);
    } catch {
      throw sockError('ERR_INVALID_ARG_VALUE', `The argument 'address' is invalid. Received '${text}'`);
    }
  }

  bind(port?: number | { port?: number; address?: string } | (() => void), address?: string | (() => void), cb?: () => void): this {
    let p = 0;
    let a = '';
    if (typeof port === 'function') cb = port;
    else if (typeof port === 'object' && port) {
      p = port.port ?? 0;
      a = port.address ?? '';
      if (typeof address === 'function') cb = address;
    } else {
      p = port ?? 0;
      if (typeof address === 'function') cb = address;
      else a = address ?? '';
    }
    if (this.closed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    if (this.bound) throw sockError('ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw sockError('ERR_SOCKET_BAD_PORT', `Port should be >= 0 and < 65536. Received ${p}.`);
    let addr: IpAddr = this.anyAddr;
    if (a && a !== '0.0.0.0' && a !== '::') addr = this.addrArg(a);
    if (addr !== 0 && addr !== ANY6 && isUnspecified(addr)) addr = ANY6; // '0::0' is '::'
    if (cb) this.once('listening', cb);
    try {
      this.localPort = this.host.udpBind(this, p, addr);
      this.localAddr = addr;
      this.bound = true;
      process.nextTick(() => this.emit('listening'));
    } catch (e) {
      process.nextTick(() => this.emit('error', e));
    }
    return this;
  }

  address(): { address: string; family: 'IPv4' | 'IPv6'; port: number } {
    if (!this.bound || this.closed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    return { address: addrText(this.localAddr, this.type === 'udp6'), family: this.type === 'udp6' ? 'IPv6' : 'IPv4', port: this.localPort };
  }

  /** The default destination of this socket's type when none is given (Node: localhost). */
  private get loopbackText(): string {
    return this.type === 'udp6' ? '::1' : '127.0.0.1';
  }

  connect(port: number, address?: string | (() => void), cb?: () => void): void {
    if (typeof address === 'function') { cb = address; address = undefined; }
    if (this.connected) throw sockError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    const text = address ?? this.loopbackText;
    const addr = this.addrArg(text);
    if (!this.bound) this.bind(0);
    this.connected = { addr, port, zone: splitZone(text).zone };
    process.nextTick(() => { this.emit('connect'); cb?.(); });
  }

  disconnect(): void {
    if (!this.connected) throw sockError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    this.connected = null;
  }

  remoteAddress(): { address: string; family: 'IPv4' | 'IPv6'; port: number } {
    if (!this.connected) throw sockError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    const v6 = this.type === 'udp6';
    return { address: addrText(this.connected.addr, v6), family: v6 ? 'IPv6' : 'IPv4', port: this.connected.port };
  }

  /**
   * send(msg[, offset, length][, port][, address][, callback]) as in Node's dgram.
   * `msg` may be a Buffer/Uint8Array, a string, or an array of them.
   */
  send(msg: Uint8Array | string | (Uint8Array | string)[], ...args: unknown[]): void {
    let cb: SendCb | undefined;
    if (typeof args[args.length - 1] === 'function') cb = args.pop() as SendCb;
    let data: Uint8Array;
    if (Array.isArray(msg)) data = Buffer.concat(msg.map((m) => (typeof m === 'string' ? Buffer.from(m) : m)));
    else data = typeof msg === 'string' ? Buffer.from(msg) : msg;
    if (typeof args[0] === 'number' && typeof args[1] === 'number' && args.length >= 2 && (args.length >= 3 || this.connected)) {
      // offset, length form
      const off = args.shift() as number;
      const len = args.shift() as number;
      data = data.subarray(off, off + len);
    }
    let port: number;
    let addr: IpAddr;
    let zone = '';
    if (this.connected) {
      if (args.length && args[0] !== undefined) {
        throw sockError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
      }
      port = this.connected.port;
      addr = this.connected.addr;
      zone = this.connected.zone;
    } else {
      port = args[0] as number;
      const a = (args[1] as string | undefined) ?? this.loopbackText;
      if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        throw sockError('ERR_SOCKET_BAD_PORT', `Port should be > 0 and < 65536. Received ${String(port)}.`);
      }
      try {
        addr = socketAddr(a, this.type);
        if (a.indexOf('%') >= 0) zone = splitZone(a).zone;
      } catch {
        const e = sockError('ENOTFOUND', `getaddrinfo ENOTFOUND ${a}`, { syscall: 'getaddrinfo' });
        if (cb) process.nextTick(cb, e);
        else process.nextTick(() => this.emit('error', e));
        return;
      }
    }
    if (this.closed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    if (!this.bound) this.bind(0);
    let err: Error | null = null;
    try {
      this.host.udpSend(this, data, port, addr, zone);
    } catch (e) {
      err = e as Error;
    }
    if (cb) process.nextTick(cb, err, err ? undefined : data.length);
    else if (err) process.nextTick(() => this.emit('error', err));
  }

  close(cb?: () => void): this {
    if (this.closed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    this.closed = true;
    if (this.bound) this.host.udpUnbind(this);
    this.bound = false;
    this.queue.length = 0;
    this.returnPaths = null;
    if (cb) this.once('close', cb);
    process.nextTick(() => this.emit('close'));
    return this;
  }

  // Node API parity: these have no effect on a user-space stack.
  ref(): this { return this; }
  unref(): this { return this; }
  setBroadcast(_flag: boolean): void {}
  setTTL(ttl: number): number { return ttl; }

  /** @internal engine → socket: returns false when the queue is full (caller counts the drop). */
  enqueue(data: Buffer, addr: IpAddr, port: number): boolean {
    if (this.queue.length >= this.maxQueue) return false;
    this.queue.push({ data, addr, port });
    if (this.queue.length === 1) this.host.udpReady(this);
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

  /** @internal emits queued messages. */
  flush(): void {
    const q = this.queue.splice(0);
    for (let i = 0; i < q.length; i++) {
      if (this.closed) return;
      const m = q[i]!;
      try {
        const v6 = this.type === 'udp6';
        this.emit('message', m.data, { address: addrText(m.addr, v6), family: v6 ? 'IPv6' : 'IPv4', port: m.port, size: m.data.length } as RemoteInfo);
      } catch (err) {
        // A 'message' listener threw: the messages not yet emitted stay queued for the next flush.
        if (i + 1 < q.length && !this.closed) {
          const was = this.queue.length;
          this.queue.unshift(...q.slice(i + 1));
          if (was === 0) this.host.udpReady(this);
        }
        throw err;
      }
    }
  }
}

/** Key of a peer in a socket's return paths. */
function returnKey(addr: IpAddr, port: number): number {
  return (typeof addr === 'number' ? addr : (addr as Ip6).hash) * 65536 + port;
}
