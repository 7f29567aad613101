/**
 * UDP sockets shaped like Node's `dgram.Socket`, bound inside one virtual server.
 *
 * Received datagrams are queued by the engine (bounded) and emitted as 'message' events when the
 * runtime flushes events after a burst, so user code never runs in the middle of packet processing.
 */
import { EventEmitter } from 'node:events';
import { ipv4ToString, parseIpv4 as parseIpv4Strict } from '../protocols/ipv4';
import type { Link } from './vs';

/** Peers whose way back a socket remembers (traffic reflection); the least recently heard goes first. */
export const UDP_RETURN_PATHS_MAX = 1024;

/** Where a peer's datagrams came from: the way its replies go back. */
export class ReturnPath {
  link!: Link;
  readonly mac = new Uint8Array(6);
  /** The unicast address the datagram was sent to (0 for a broadcast): the reply's source. */
  local = 0;
  /** The socket's insertion/move count when this path last moved to the back of the order. */
  stamp = 0;
}

/**
 * Address conversions on the per-message path: an echo server turns rinfo.address back into a
 * number for every reply, so the last conversion each way is remembered.
 */
let lastText = '';
let lastNum = 0;
function parseIpv4(s: string): number {
  if (s === lastText) return lastNum;
  const n = parseIpv4Strict(s);
  lastText = s;
  lastNum = n;
  return n;
}
let lastAddr = -1;
let lastAddrText = '';
function addrText(a: number): string {
  if (a !== lastAddr) { lastAddr = a; lastAddrText = ipv4ToString(a); }
  return lastAddrText;
}

export interface RemoteInfo {
  address: string;
  family: 'IPv4';
  port: number;
  size: number;
}

export interface UdpHost {
  /** Binds; returns the port obtained or throws an error with a Node-style `code`. */
  udpBind(sock: UdpSocket, port: number, addr: number): number;
  udpUnbind(sock: UdpSocket): void;
  /** Sends one datagram; throws a Node-style error for what is known synchronously. */
  udpSend(sock: UdpSocket, data: Uint8Array, port: number, addr: number): void;
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
  /** Local address (0 = any). */
  localAddr = 0;
  bound = false;
  closed = false;
  /** Socket mark for policy routing (like SO_MARK / ip rule fwmark). */
  mark = 0;
  /** Messages waiting to be emitted. */
  readonly queue: { data: Buffer; addr: number; port: number }[] = [];
  readonly maxQueue: number;
  /** The peer of a connected socket (datagrams from elsewhere are not for it). */
  connected: { addr: number; port: number } | null = null;
  /** Peer (addr * 65536 + port) → the link and MAC its last datagram came from; made on first use. */
  returnPaths: Map<number, ReturnPath> | null = null;
  /** Counts insertions and moves in `returnPaths` (its order is that of these stamps). */
  private pathStamp = 0;
  /** Set by the engine: identity of the virtual server that owns the socket. */
  constructor(private readonly host: UdpHost, readonly vsName: string, opts: { maxQueue?: number } = {}) {
    super();
    this.maxQueue = opts.maxQueue ?? 1024;
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
    let addr = 0;
    if (a && a !== '0.0.0.0') {
      try {
        addr = parseIpv4(a);
      } catch {
        throw sockError('ERR_INVALID_ARG_VALUE', `The argument 'address' is invalid. Received '${a}'`);
      }
    }
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

  address(): { address: string; family: 'IPv4'; port: number } {
    if (!this.bound || this.closed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    return { address: ipv4ToString(this.localAddr), family: 'IPv4', port: this.localPort };
  }

  connect(port: number, address?: string | (() => void), cb?: () => void): void {
    if (typeof address === 'function') { cb = address; address = undefined; }
    if (this.connected) throw sockError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    const addr = parseIpv4(address ?? '127.0.0.1');
    if (!this.bound) this.bind(0);
    this.connected = { addr, port };
    process.nextTick(() => { this.emit('connect'); cb?.(); });
  }

  disconnect(): void {
    if (!this.connected) throw sockError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    this.connected = null;
  }

  remoteAddress(): { address: string; family: 'IPv4'; port: number } {
    if (!this.connected) throw sockError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    return { address: ipv4ToString(this.connected.addr), family: 'IPv4', port: this.connected.port };
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
    let addr: number;
    if (this.connected) {
      if (args.length && args[0] !== undefined) {
        throw sockError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
      }
      port = this.connected.port;
      addr = this.connected.addr;
    } else {
      port = args[0] as number;
      const a = (args[1] as string | undefined) ?? '127.0.0.1';
      if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        throw sockError('ERR_SOCKET_BAD_PORT', `Port should be > 0 and < 65536. Received ${String(port)}.`);
      }
      try {
        addr = parseIpv4(a);
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
      this.host.udpSend(this, data, port, addr);
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
  enqueue(data: Buffer, addr: number, port: number): boolean {
    if (this.queue.length >= this.maxQueue) return false;
    this.queue.push({ data, addr, port });
    if (this.queue.length === 1) this.host.udpReady(this);
    return true;
  }

  /**
   * @internal engine → socket: a datagram from `addr:port` arrived on `link` from the MAC at
   * `mac[macOff..]`, sent to `local`; replies to that peer go back the same way.
   */
  heardFrom(addr: number, port: number, link: Link, mac: Uint8Array, macOff: number, local: number): void {
    const key = addr * 65536 + port;
    const paths = (this.returnPaths ??= new Map());
    let p = paths.get(key);
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
    p.local = local;
    const m = p.mac;
    for (let i = 0; i < 6; i++) m[i] = mac[macOff + i]!;
  }

  /** @internal emits queued messages. */
  flush(): void {
    const q = this.queue.splice(0);
    for (let i = 0; i < q.length; i++) {
      if (this.closed) return;
      const m = q[i]!;
      try {
        this.emit('message', m.data, { address: addrText(m.addr), family: 'IPv4', port: m.port, size: m.data.length } as RemoteInfo);
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
