/**
 * Test harness for the sans-IO TCP core: a recording host, a segment builder (every segment goes
 * through the real wire format: writeTcp then TcpHeader.parse), a seeded PRNG and a lossy channel
 * joining two connections under virtual time.
 */
import { TcpHeader, tcpHeaderLen, writeTcp } from '../protocols/tcp';
import { TcpConnection } from '../protocols/tcp/connection';
import {
  TcpConnectionLike, TcpError, TcpHost, TcpOptions, TcpSegmentOut, TcpState, TcpTuple, TH_ACK, TH_SYN,
} from '../protocols/tcp/types';
import { Drop } from '../protocols/drop';
import * as assert from 'uvu/assert';
import type { IpAddr } from '../protocols/ip/addr';
import { prng } from './lib/prng';
export { prng };

export const A_ADDR = 0x0a000001;
export const B_ADDR = 0x0a000002;
export const SECRET = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);

export interface SegSpec {
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  mss?: number;
  wscale?: number;
  sackOk?: boolean;
  ts?: [number, number];
  sack?: [number, number][];
  data?: Uint8Array | number; // bytes or a length of pattern bytes
  srcPort?: number;
  dstPort?: number;
}

/** Builds a parsed segment as the peer (B, port 80) would send it to A (port 1234). */
export function mkSeg(s: SegSpec, src: IpAddr = B_ADDR, dst: IpAddr = A_ADDR): TcpHeader {
  const o = new TcpSegmentOut();
  o.srcPort = s.srcPort ?? 80;
  o.dstPort = s.dstPort ?? 1234;
  o.seq = s.seq >>> 0;
  o.ack = (s.ack ?? 0) >>> 0;
  o.flags = s.flags;
  o.window = s.window ?? 65535;
  o.mss = s.mss ?? 0;
  o.wscale = s.wscale ?? -1;
  o.sackOk = s.sackOk ?? false;
  if (s.ts) { o.hasTs = true; o.tsVal = s.ts[0] >>> 0; o.tsEcr = s.ts[1] >>> 0; }
  if (s.sack) {
    o.sackCount = s.sack.length;
    s.sack.forEach(([a, b], i) => { o.sackStart[i] = a >>> 0; o.sackEnd[i] = b >>> 0; });
  }
  const data = typeof s.data === 'number' ? pattern(0, s.data) : s.data ?? new Uint8Array(0);
  return roundTrip(o, data, 0, data.length, src, dst);
}

export function roundTrip(o: TcpSegmentOut, src: Uint8Array | null, off: number, len: number, sa: IpAddr, da: IpAddr): TcpHeader {
  const hl = tcpHeaderLen(o);
  const b = new Uint8Array(hl + len);
  if (src && len) b.set(src.subarray(off, off + len), hl);
  writeTcp(b, 0, o, len, sa, da);
  const h = new TcpHeader();
  const r = h.parse(b, 0, b.length, sa, da);
  if (r !== 0) throw new Error(`emitted segment does not parse: drop ${r}`);
  return h;
}

export function pattern(start: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (start + i) * 7 % 251;
  return b;
}

export function payload(h: TcpHeader): Uint8Array {
  return h.buf.subarray(h.payloadOff, h.payloadOff + h.payloadLen);
}

/** Recording host for one connection. */
export class RecHost implements TcpHost {
  readonly sent: TcpHeader[] = [];
  deadline = Infinity;
  established = 0;
  remoteClosed = 0;
  writable = 0;
  closed: (TcpError | null)[] = [];
  released = 0;
  readonly rx: Uint8Array[] = [];
  rxBytes = 0;
  /** Call consumed() right away. */
  autoConsume = true;
  now = 0;
  conn: TcpConnection | null = null;
  onSend: ((h: TcpHeader) => void) | null = null;

  constructor(readonly local: IpAddr = A_ADDR, readonly remote: IpAddr = B_ADDR) {}

  send(_c: TcpConnectionLike, seg: TcpSegmentOut, src: Uint8Array | null, off: number, len: number): void {
    const h = roundTrip(seg, src, off, len, this.local, this.remote);
    this.sent.push(h);
    this.onSend?.(h);
  }
  setTimer(_c: TcpConnectionLike, deadline: number): void { this.deadline = deadline; }
  onEstablished(): void { this.established++; }
  onData(c: TcpConnectionLike, b: Uint8Array, off: number, len: number): void {
    this.rx.push(b.slice(off, off + len));
    this.rxBytes += len;
    if (this.autoConsume) (c as TcpConnection).consumed(len, this.now);
  }
  onWritable(): void { this.writable++; }
  onRemoteClose(): void { this.remoteClosed++; }
  onClosed(_c: TcpConnectionLike, err: TcpError | null): void { this.closed.push(err); }
  onRelease(): void { this.released++; }

  /** Segments sent since the last call. */
  take(): TcpHeader[] {
    return this.sent.splice(0, this.sent.length);
  }
  received(): Uint8Array {
    const out = new Uint8Array(this.rxBytes);
    let p = 0;
    for (const c of this.rx) { out.set(c, p); p += c.length; }
    return out;
  }
}

export const TUPLE_A: TcpTuple = { localAddr: A_ADDR, localPort: 1234, remoteAddr: B_ADDR, remotePort: 80 };
export const TUPLE_B: TcpTuple = { localAddr: B_ADDR, localPort: 80, remoteAddr: A_ADDR, remotePort: 1234 };


export interface ChannelOpts {
  seed: number;
  loss: number;
  dup: number;
  reorder: number;
  delayUs: number;
  jitterUs: number;
  /** Bottleneck rate in bytes per µs (0 = unlimited) and queue limit in bytes (tail drop). */
  rate?: number;
  queueBytes?: number;
}

interface InFlight { at: number; seq: number; to: 0 | 1; h: TcpHeader }

/** Two connections joined back to back through a lossy, duplicating, reordering channel. */
export class Pair {
  readonly ha = new RecHost(A_ADDR, B_ADDR);
  readonly hb = new RecHost(B_ADDR, A_ADDR);
  a: TcpConnection;
  b: TcpConnection | null = null;
  now = 0;
  private q: InFlight[] = [];
  private n = 0;
  private readonly rnd: () => number;
  private busyUntil = [0, 0];
  delivered = 0;
  dropped = 0;

  constructor(readonly co: ChannelOpts, optsA: Partial<TcpOptions>, readonly optsB: Partial<TcpOptions>) {
    this.rnd = prng(co.seed);
    this.a = new TcpConnection(this.ha, TUPLE_A, optsA, SECRET);
    this.ha.conn = this.a;
    this.ha.onSend = (h) => this.enqueue(1, h);
    this.hb.onSend = (h) => this.enqueue(0, h);
  }

  private enqueue(to: 0 | 1, h: TcpHeader): void {
    const c = this.co;
    if (this.rnd() < c.loss) { this.dropped++; return; }
    let at = this.now + c.delayUs + this.rnd() * c.jitterUs;
    if (c.rate) {
      const dir = to;
      const start = Math.max(this.now, this.busyUntil[dir]!);
      const backlog = (start - this.now) * c.rate;
      if (c.queueBytes && backlog > c.queueBytes) { this.dropped++; return; }
      this.busyUntil[dir] = start + (h.payloadLen + 40) / c.rate;
      at += this.busyUntil[dir]! - this.now;
    }
    if (this.rnd() < c.reorder) at += c.delayUs * 2 * this.rnd() + 1000;
    this.q.push({ at, seq: this.n++, to, h });
    if (this.rnd() < c.dup) this.q.push({ at: at + this.rnd() * 500, seq: this.n++, to, h });
  }

  /** Runs until `done()` or the virtual time limit; returns the end time. */
  run(until: number, done: () => boolean): number {
    let guard = 0;
    while (this.now < until && !done()) {
      if (++guard > 20_000_000) throw new Error('harness: too many steps');
      let next = Infinity;
      let qi = -1;
      for (let i = 0; i < this.q.length; i++) {
        const e = this.q[i]!;
        if (e.at < next || (e.at === next && qi >= 0 && e.seq < this.q[qi]!.seq)) { next = e.at; qi = i; }
      }
      const ta = this.ha.deadline;
      const tb = this.hb.deadline;
      const t = Math.min(next, ta, tb);
      if (t === Infinity) break;
      this.now = Math.max(this.now, t);
      this.ha.now = this.hb.now = this.now;
      if (t === next) {
        const e = this.q[qi]!;
        this.q[qi] = this.q[this.q.length - 1]!;
        this.q.pop();
        this.deliver(e);
      } else if (t === ta) {
        this.ha.deadline = Infinity;
        this.a.onTimer(this.now);
      } else {
        this.hb.deadline = Infinity;
        this.b!.onTimer(this.now);
      }
    }
    return this.now;
  }

  private deliver(e: InFlight): void {
    this.delivered++;
    if (e.to === 1) {
      if (!this.b) {
        if (e.h.flags === 0x02) {
          this.b = TcpConnection.acceptSyn(this.hb, TUPLE_B, this.optsB, SECRET, e.h, this.now);
          this.hb.conn = this.b;
        }
        return;
      }
      this.b.input(e.h, this.now);
    } else {
      this.a.input(e.h, this.now);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Scripted cases: one connection (A) against a peer (B) written segment by segment

export const B_ISS = 1000;
export const F_SA = TH_SYN | TH_ACK;

/** The one segment the host sent since the last take (asserted). */
export function one(h: RecHost): TcpHeader {
  const s = h.take();
  assert.is(s.length, 1, `expected one segment, got ${s.length}: ${s.map(fmt).join(' | ')}`);
  return s[0]!;
}
export function none(h: RecHost): void {
  const s = h.take();
  assert.is(s.length, 0, `expected no segment, got ${s.map(fmt).join(' | ')}`);
}
export function fmt(h: TcpHeader): string {
  return `seq=${h.seq} ack=${h.ack} fl=${h.flags.toString(16)} win=${h.window} len=${h.payloadLen}`;
}

export interface Open { h: RecHost; c: TcpConnection; iss: number; seq: (n: number) => number }

/** Active open against a scripted peer: A (us) connects, B answers with `synack` options. */
export function openActive(opts: Partial<TcpOptions> = {}, synack: Partial<SegSpec> = { mss: 1460, wscale: 7, sackOk: true, ts: [5000, 0] }): Open {
  const h = new RecHost();
  const c = new TcpConnection(h, TUPLE_A, opts, SECRET);
  h.conn = c;
  c.connect(0);
  const syn = one(h);
  assert.is(syn.flags, TH_SYN);
  const iss = syn.seq;
  const sa: SegSpec = { seq: B_ISS, ack: iss + 1, flags: F_SA, window: 65535, ...synack };
  if (sa.ts) sa.ts = [sa.ts[0], syn.tsVal];
  assert.is(c.input(mkSeg(sa), 10_000), Drop.None);
  const ack = one(h);
  assert.is(ack.flags, TH_ACK);
  assert.is(ack.ack, B_ISS + 1);
  assert.is(c.state, TcpState.Established);
  assert.is(h.established, 1);
  return { h, c, iss, seq: (n) => (iss + 1 + n) >>> 0 };
}
