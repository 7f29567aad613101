/**
 * Ping from inside a virtual server (`xdpstack ping --vs NAME ADDR`, `vs.ping(addr)`): Echo
 * Requests every `interval` from an echo socket of the VS (stack/ip/echo.ts), replies matched by
 * identifier and sequence number, with the round-trip times and a summary as iputils' ping prints
 * them. The schedule runs on the engine's timer wheel and its clock: the same session works under
 * real time and under virtual time (memory links), and nothing here reads a clock itself.
 */
import { addrEq, addrToString, IpAddr, parseAddr, splitZone } from '../protocols/ip/addr';
import type { Engine } from './engine';
import type { EchoSocket } from './ip/echo';
import { ECHO_MAX_DATA4, ECHO_MAX_DATA6 } from './ip/echo';
import type { Timer } from './timers';
import type { VirtualServer } from './vs';

export interface PingOptions {
  /** Echo Requests to send (default: until stop()). */
  count?: number;
  /** Seconds between requests (default 1; at least 0.01). */
  interval?: number;
  /** Data bytes per request (default 56, as ping -s). */
  size?: number;
  /** Seconds to wait for the replies still missing after the last request (default 10, as ping -W). */
  timeout?: number;
}

/** What a ping says as it goes (all optional). */
export interface PingEvents {
  /** A reply: `dup` when its sequence number was answered before (not counted again). */
  onReply?(r: PingReply): void;
  /** A request that could not be sent (its sequence number and why). */
  onError?(seq: number, message: string): void;
  /** An ICMP error answered a request (a router's, the target's, or ours when the next hop never resolved). */
  onUnreachable?(u: PingIcmpError): void;
  onDone?(s: PingSummary): void;
}

export interface PingStart {
  vs: string;
  target: string;
  /** The source address of the first request (the VS's address for the target). */
  source: string;
  family: 4 | 6;
  /** Data bytes per request, and the IP packet's size (data + ICMP header + IP header). */
  size: number;
  packetBytes: number;
}

export interface PingReply {
  seq: number;
  from: string;
  /** ICMP message length (header + data), as ping's "64 bytes from". */
  bytes: number;
  /** TTL / hop limit of the reply; null for a reply reassembled from fragments. */
  ttl: number | null;
  rttMs: number;
  dup: boolean;
}

/** An ICMP error about one request: who sent it, the ICMP type and code (of the target's family) and ping's wording. */
export interface PingIcmpError {
  seq: number;
  from: string;
  type: number;
  code: number;
  /** As iputils' ping says it: "Destination Host Unreachable", "Time to live exceeded", ... */
  message: string;
}

export interface PingSummary extends PingStart {
  transmitted: number;
  received: number;
  duplicates: number;
  /** Requests that could not be sent, and requests an ICMP error answered (ping's "+N errors"). */
  errors: number;
  /** (transmitted - received) / transmitted, in percent (0 when nothing was sent). */
  lossPercent: number;
  /** From the first request to the end, ms. */
  timeMs: number;
  /** Round-trip times over the replies received (ms; mdev as iputils: sqrt(mean(rtt²) - mean(rtt)²)); null without replies. */
  rtt: { min: number; avg: number; max: number; mdev: number } | null;
}

/** Options checked with clear messages (RangeError), defaults filled in; the size's limit is the target's family's. */
export function checkPingOptions(o: PingOptions = {}, family: 4 | 6 = 4): Required<PingOptions> {
  const count = o.count ?? Infinity;
  if (count !== Infinity && (!Number.isInteger(count) || count < 1)) throw new RangeError(`ping count must be a positive integer, got ${JSON.stringify(o.count)}`);
  const interval = o.interval ?? 1;
  if (typeof interval !== 'number' || !Number.isFinite(interval) || interval < 0.01 || interval > 3600) throw new RangeError(`ping interval must be 0.01..3600 seconds, got ${JSON.stringify(o.interval)}`);
  const size = o.size ?? 56;
  const max = family === 6 ? ECHO_MAX_DATA6 : ECHO_MAX_DATA4;
  if (!Number.isInteger(size) || size < 0 || size > max) throw new RangeError(`ping size must be 0..${max} data bytes, got ${JSON.stringify(o.size)}`);
  const timeout = o.timeout ?? 10;
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0 || timeout > 3600) throw new RangeError(`ping timeout must be 0..3600 seconds, got ${JSON.stringify(o.timeout)}`);
  return { count, interval, size, timeout };
}

/** `10.1.1.2`, `fd00::2`, `fe80::2%link`: the address and its zone; RangeError for anything else. */
export function parsePingTarget(text: string): { addr: IpAddr; zone: string } {
  if (typeof text !== 'string') throw new RangeError(`ping target must be an IPv4 or IPv6 address, got ${JSON.stringify(text)}`);
  const { addr, zone } = splitZone(text.trim());
  try {
    return { addr: parseAddr(addr), zone };
  } catch {
    throw new RangeError(`ping target must be an IPv4 or IPv6 address (like 10.1.1.2, fd00::2 or fe80::2%link), got '${text}'`);
  }
}

export class PingSession {
  readonly start: PingStart;
  readonly done: Promise<PingSummary>;
  private resolve!: (s: PingSummary) => void;
  private readonly sock: EchoSocket;
  private readonly sendTimer: Timer;
  private readonly endTimer: Timer;
  private readonly data: Uint8Array;
  private readonly opts: Required<PingOptions>;
  /** Send time (µs) per sequence number (mod 2^16) awaiting its reply; -1 none. */
  private readonly sentAt = new Float64Array(65536).fill(-1);
  /** Sequence numbers (mod 2^16) answered once (a second reply is a duplicate). */
  private readonly answered = new Uint8Array(65536);
  private transmitted = 0;
  private received = 0;
  private duplicates = 0;
  /** Requests that could not be sent (each takes a sequence number). */
  private errors = 0;
  /** Requests answered by an ICMP error. */
  private icmpErrors = 0;
  private outstanding = 0;
  private t0 = 0;
  private sum = 0;
  private sum2 = 0;
  private min = Infinity;
  private max = 0;
  private finished = false;

  constructor(private readonly engine: Engine, vs: VirtualServer, target: string, opts: PingOptions = {}, private readonly events: PingEvents = {}) {
    const { addr, zone } = parsePingTarget(target);
    const v4 = typeof addr === 'number';
    this.opts = checkPingOptions(opts, v4 ? 4 : 6);
    this.data = new Uint8Array(this.opts.size);
    for (let i = 0; i < this.data.length; i++) this.data[i] = i & 0xff; // ping's pattern
    this.done = new Promise((r) => { this.resolve = r; });
    this.sock = engine.echo.open(vs, (from, seq, bytes, ttl, now) => this.onReply(addr, from, seq, bytes, ttl, now));
    this.sock.onError = (from, seq, type, code, info, now) => this.onIcmpError(from, seq, type, code, info, v4, now);
    this.sendTimer = engine.wheel.create((now) => this.sendNext(addr, zone, now));
    this.endTimer = engine.wheel.create((now) => this.finish(now));
    const now = engine.time();
    this.t0 = now;
    let source: IpAddr;
    try {
      // The first request decides: no route or no source address fails the ping at once, as ping's connect().
      source = this.sock.send(addr, 1, this.data, zone);
    } catch (e) {
      this.sock.close();
      throw e;
    }
    this.started(1, now);
    this.start = {
      vs: vs.name, target: addrToString(addr) + (zone ? `%${zone}` : ''), source: addrToString(source), family: v4 ? 4 : 6,
      size: this.opts.size, packetBytes: this.opts.size + 8 + (v4 ? 20 : 40),
    };
    this.schedule(now);
  }

  /** Ends the ping now (Ctrl-C): the summary counts what was sent and received so far. */
  stop(): void {
    this.finish(this.engine.time());
  }

  private started(seq: number, now: number): void {
    const k = seq & 0xffff;
    this.transmitted++;
    if (this.sentAt[k]! < 0) this.outstanding++;
    this.sentAt[k] = now;
    this.answered[k] = 0;
  }

  private schedule(now: number): void {
    if (this.transmitted + this.errors < this.opts.count) this.engine.wheel.set(this.sendTimer, now + this.opts.interval * 1e6);
    else if (this.outstanding === 0) this.finish(now);
    else this.engine.wheel.set(this.endTimer, now + this.opts.timeout * 1e6);
  }

  private sendNext(addr: IpAddr, zone: string, now: number): void {
    if (this.finished) return;
    if (this.sock.closed) { this.finish(now); return; } // its VS was destroyed
    const seq = this.transmitted + this.errors + 1;
    try {
      this.sock.send(addr, seq & 0xffff, this.data, zone);
      this.started(seq, now);
    } catch (e) {
      this.errors++;
      const msg = (e as Error).message;
      this.tell(() => this.events.onError?.(seq, msg));
    }
    this.schedule(now);
  }

  private onReply(target: IpAddr, from: IpAddr, seq: number, bytes: number, ttl: number, now: number): void {
    if (this.finished || !addrEq(from, target)) return; // another host's reply to our identifier: not ours
    const sent = this.sentAt[seq]!;
    const dup = this.answered[seq] === 1;
    if (sent < 0 && !dup) return; // never sent (or from a previous wrap of the sequence space)
    const rttUs = dup ? 0 : Math.max(0, now - sent);
    if (dup) this.duplicates++;
    else {
      this.received++;
      this.outstanding--;
      this.sentAt[seq] = -1;
      this.answered[seq] = 1;
      const ms = rttUs / 1000;
      this.sum += ms;
      this.sum2 += ms * ms;
      if (ms < this.min) this.min = ms;
      if (ms > this.max) this.max = ms;
    }
    // The sequence number as sent: the highest one sent with these 16 bits.
    let full = seq;
    const last = this.transmitted + this.errors;
    while (full + 65536 <= last) full += 65536;
    const r: PingReply = { seq: full, from: addrToString(from), bytes, ttl: ttl >= 0 ? ttl : null, rttMs: Math.round(rttUs) / 1000, dup };
    this.tell(() => this.events.onReply?.(r));
    if (!dup && this.outstanding === 0 && this.transmitted + this.errors >= this.opts.count) this.finish(now);
  }

  /**
   * An ICMP error quoting one of our requests: that request is answered (not waited for any
   * longer) and counted as an error, not as received, as iputils' ping does.
   */
  private onIcmpError(from: IpAddr, seq: number, type: number, code: number, info: number, v4: boolean, now: number): void {
    if (this.finished || this.sentAt[seq]! < 0) return; // not outstanding: never sent, answered, or already reported
    this.sentAt[seq] = -1;
    this.outstanding--;
    this.icmpErrors++;
    let full = seq;
    const last = this.transmitted + this.errors;
    while (full + 65536 <= last) full += 65536;
    const u: PingIcmpError = { seq: full, from: addrToString(from), type, code, message: icmpErrorText(v4, type, code, info) };
    this.tell(() => this.events.onUnreachable?.(u));
    if (this.outstanding === 0 && this.transmitted + this.errors >= this.opts.count) this.finish(now);
  }

  private finish(now: number): void {
    if (this.finished) return;
    this.finished = true;
    this.engine.wheel.cancel(this.sendTimer);
    this.engine.wheel.cancel(this.endTimer);
    this.sock.close();
    const n = this.received;
    const avg = n ? this.sum / n : 0;
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    const s: PingSummary = {
      ...this.start, transmitted: this.transmitted, received: n, duplicates: this.duplicates, errors: this.errors + this.icmpErrors,
      lossPercent: this.transmitted ? Math.round(((this.transmitted - n) / this.transmitted) * 1e4) / 100 : 0,
      timeMs: Math.round((now - this.t0) / 1000),
      rtt: n ? { min: r3(this.min), avg: r3(avg), max: r3(this.max), mdev: r3(Math.sqrt(Math.max(0, this.sum2 / n - avg * avg))) } : null,
    };
    this.tell(() => this.events.onDone?.(s));
    this.resolve(s);
  }

  /**
   * Runs an application callback: it runs inside the engine (a reply's input, a timer), so what it
   * throws goes where a socket callback's exception goes (Engine.onCallbackError), not into the
   * receive path.
   */
  private tell(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.engine.onCallbackError(e);
    }
  }
}

/** ping's lines: the header, one per reply, and the summary (iputils' wording). */
export const pingText = {
  header(s: PingStart): string {
    return s.family === 4
      ? `PING ${s.target} (${s.target}) from ${s.source} vs ${s.vs}: ${s.size}(${s.packetBytes}) bytes of data.`
      : `PING ${s.target}(${s.target}) from ${s.source} vs ${s.vs}: ${s.size} data bytes`;
  },
  reply(r: PingReply): string {
    return `${r.bytes} bytes from ${r.from}: icmp_seq=${r.seq}${r.ttl !== null ? ` ttl=${r.ttl}` : ''} time=${fmtMs(r.rttMs)} ms${r.dup ? ' (DUP!)' : ''}`;
  },
  error(seq: number, message: string): string {
    return `icmp_seq=${seq}: ${message}`;
  },
  unreachable(u: PingIcmpError): string {
    return `From ${u.from} icmp_seq=${u.seq} ${u.message}`;
  },
  summary(s: PingSummary): string[] {
    const lines = [
      `--- ${s.target} ping statistics ---`,
      `${s.transmitted} packets transmitted, ${s.received} received${s.duplicates ? `, +${s.duplicates} duplicates` : ''}${s.errors ? `, +${s.errors} errors` : ''}, ${s.lossPercent}% packet loss, time ${s.timeMs}ms`,
    ];
    if (s.rtt) lines.push(`rtt min/avg/max/mdev = ${s.rtt.min.toFixed(3)}/${s.rtt.avg.toFixed(3)}/${s.rtt.max.toFixed(3)}/${s.rtt.mdev.toFixed(3)} ms`);
    return lines;
  },
};

function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(3);
}

const UNREACH4 = [
  'Destination Net Unreachable', 'Destination Host Unreachable', 'Destination Protocol Unreachable', 'Destination Port Unreachable',
  '', 'Source Route Failed', 'Destination Net Unknown', 'Destination Host Unknown', 'Source Host Isolated',
  'Destination Net Prohibited', 'Destination Host Prohibited', 'Destination Net Unreachable for Type of Service',
  'Destination Host Unreachable for Type of Service', 'Packet filtered', 'Precedence Violation', 'Precedence Cutoff',
];
const UNREACH6 = ['No route', 'Administratively prohibited', 'Beyond scope of source address', 'Address unreachable', 'Port unreachable'];

/**
 * An ICMP (RFC 792) or ICMPv6 (RFC 4443) error in iputils' ping's words; `info` is the MTU of a
 * "fragmentation needed" / Packet Too Big or the pointer of a Parameter Problem.
 */
export function icmpErrorText(v4: boolean, type: number, code: number, info: number): string {
  if (v4) {
    if (type === 3) return code === 4 ? `Frag needed and DF set (mtu = ${info})` : UNREACH4[code] ?? `Dest Unreachable, Bad Code: ${code}`;
    if (type === 11) return code === 0 ? 'Time to live exceeded' : code === 1 ? 'Frag reassembly time exceeded' : `Time exceeded, Bad Code: ${code}`;
    if (type === 12) return `Parameter problem: pointer = ${info}`;
    return `Bad ICMP type: ${type}`;
  }
  if (type === 1) return `Destination unreachable: ${UNREACH6[code] ?? `Unknown code ${code}`}`;
  if (type === 2) return `Packet too big: mtu=${info}`;
  if (type === 3) return `Time exceeded: ${code === 0 ? 'Hop limit' : code === 1 ? 'Defragmentation failure' : `Unknown code ${code}`}`;
  if (type === 4) return `Parameter problem: ${['Wrong header field ', 'Unknown header ', 'Unknown option '][code] ?? `Unknown code ${code} `}at ${info}`;
  return `Unknown icmp type: ${type}`;
}
