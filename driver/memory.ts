/**
 * In-memory link: two Driver endpoints in one process, like two hosts joined by a cable, with
 * reproducible impairments per direction (loss, duplication, reordering, delay + jitter,
 * corruption, rate limit with a tail-drop queue). Runs under virtual time: tx(b, now) schedules
 * deliveries, rx(out, now) hands over what is due, nextDeadline() tells when the next one is.
 *
 * Each endpoint has its own FramePool. A transmitted frame is copied into the direction's "wire"
 * (a private FramePool holding frames in flight) and the sender's frame is freed at once; on
 * delivery it is copied into a frame of the receiver's pool. No allocation per packet.
 *
 * Every random decision comes from a small PRNG (splitmix32) seeded from `seed`: the same seed and
 * the same calls give byte-identical deliveries.
 *
 * Order of impairments for one transmitted frame: loss, then the rate-limit queue (tail drop when
 * `queueFrames` frames are waiting to be serialized), then duplication; then for each copy: delay
 * + jitter (uniform in [0, jitterUs), so jitter alone may reorder, as netem does), reordering
 * (the copy is held back by `reorderDelayUs` so later frames overtake it), corruption (one random
 * bit flipped in that copy).
 */
import { FramePool } from '../umem/pool';
import { Burst, Driver, DriverStats, countDrop, newStats, parseMac } from './types';

export interface Impairments {
  /** Probability a frame is lost. */
  loss?: number;
  /** Probability a frame is delivered twice. */
  duplicate?: number;
  /** Probability a frame is held back by `reorderDelayUs`. */
  reorder?: number;
  /** Extra delay of a reordered frame, µs. Default 1000. */
  reorderDelayUs?: number;
  /** Fixed one-way delay, µs. Default 0. */
  delayUs?: number;
  /** Random extra delay, uniform in [0, jitterUs), µs. Default 0. */
  jitterUs?: number;
  /** Probability one random bit of a frame is flipped. */
  corrupt?: number;
  /** Serialization rate in bits per second (frame bytes x 8); 0 = unlimited. */
  rateBps?: number;
  /** Frames that may wait for serialization when rate-limited; more are tail-dropped. Default 256. */
  queueFrames?: number;
}

export interface MemoryLinkOptions extends Impairments {
  /** PRNG seed. Default 1. */
  seed?: number;
  frameSize?: number;
  /** Frames in each endpoint's pool. Default 1024. */
  frameCount?: number;
  headroom?: number;
  /** Default 1500. Frames longer than mtu + 22 (Ethernet header + two VLAN tags) are dropped on send. */
  mtu?: number;
  /** Default 02:00:00:00:00:0a / 02:00:00:00:00:0b. */
  macA?: string | Uint8Array;
  macB?: string | Uint8Array;
  /** Endpoint names. Default 'mem-a' / 'mem-b'. */
  nameA?: string;
  nameB?: string;
  /** Impairments of direction a→b / b→a; override the shared ones given at the top level. */
  ab?: Impairments;
  ba?: Impairments;
  /** Frames that may be in flight per direction (wire capacity). Default 4096. */
  wireFrames?: number;
}

/** Impairment counters of one direction. */
export interface LinkCounters {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  queueDrops: number;
  wireFull: number;
  /** Deliveries dropped because the receiver's pool was empty. */
  noFrame: number;
}

function checkProb(name: string, v: number | undefined): number {
  const p = v ?? 0;
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${name} must be a probability in [0, 1], got ${v}`);
  return p;
}
function checkNonNeg(name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt;
  if (!(x >= 0 && Number.isFinite(x))) throw new RangeError(`${name} must be a finite number >= 0, got ${v}`);
  return x;
}

/** What an endpoint sends into: one wire, or one of several chosen per frame (a multi-queue device). */
interface WireIn {
  readonly counters: LinkCounters;
  send(src: Uint8Array, off: number, len: number, now: number): string;
}

/** One direction of the link: impairment logic, the frames in flight and their delivery times. */
class Wire implements WireIn {
  readonly pool: FramePool;
  readonly counters: LinkCounters = { sent: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0, corrupted: 0, queueDrops: 0, wireFull: 0, noFrame: 0 };
  private rng: number;
  // configuration
  private loss = 0;
  private duplicate = 0;
  private reorder = 0;
  private reorderDelayUs = 1000;
  private delayUs = 0;
  private jitterUs = 0;
  private corrupt = 0;
  private rateBps = 0;
  private queueFrames = 256;
  // rate limiter: serialization end times of frames not yet fully sent (FIFO ring)
  private busyUntil = 0;
  private depRing = new Float64Array(257);
  private depHead = 0;
  private depLen = 0;
  // min-heap of deliveries ordered by (time, seq)
  private n = 0;
  private seqNo = 0;
  private readonly hTime: Float64Array;
  private readonly hSeq: Float64Array;
  private readonly hFrame: Uint32Array;
  private readonly hLen: Uint32Array;

  constructor(frameSize: number, wireFrames: number, headroom: number, seed: number) {
    this.pool = new FramePool({ frameSize, frameCount: wireFrames, headroom });
    this.hTime = new Float64Array(wireFrames);
    this.hSeq = new Float64Array(wireFrames);
    this.hFrame = new Uint32Array(wireFrames);
    this.hLen = new Uint32Array(wireFrames);
    this.rng = seed | 0;
  }

  configure(imp: Impairments): void {
    this.loss = checkProb('loss', imp.loss);
    this.duplicate = checkProb('duplicate', imp.duplicate);
    this.reorder = checkProb('reorder', imp.reorder);
    this.corrupt = checkProb('corrupt', imp.corrupt);
    this.reorderDelayUs = checkNonNeg('reorderDelayUs', imp.reorderDelayUs, 1000);
    this.delayUs = checkNonNeg('delayUs', imp.delayUs, 0);
    this.jitterUs = checkNonNeg('jitterUs', imp.jitterUs, 0);
    this.rateBps = checkNonNeg('rateBps', imp.rateBps, 0);
    const q = imp.queueFrames ?? 256;
    if (!(Number.isInteger(q) && q >= 1)) throw new RangeError(`queueFrames must be an integer >= 1, got ${imp.queueFrames}`);
    if (q !== this.queueFrames || this.depRing.length !== q + 1) {
      // keep the waiting frames' times in order
      const ring = new Float64Array(Math.max(q, this.depLen) + 1);
      for (let i = 0; i < this.depLen; i++) ring[i] = this.depRing[(this.depHead + i) % this.depRing.length]!;
      this.depRing = ring;
      this.depHead = 0;
      this.queueFrames = q;
    }
  }

  /** splitmix32: uniform in [0, 1). */
  private rand(): number {
    this.rng = (this.rng + 0x9e3779b9) | 0;
    let t = this.rng ^ (this.rng >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    t ^= t >>> 15;
    return (t >>> 0) / 4294967296;
  }

  get inFlight(): number {
    return this.n;
  }

  nextTime(): number {
    return this.n > 0 ? this.hTime[0]! : Infinity;
  }

  /** Takes one frame from the sender. Returns a drop reason for the sender's stats, or '' if sent. */
  send(src: Uint8Array, off: number, len: number, now: number): string {
    const c = this.counters;
    if (this.loss > 0 && this.rand() < this.loss) { c.lost++; return 'link-loss'; }
    let dep = now;
    if (this.rateBps > 0) {
      const ring = this.depRing;
      while (this.depLen > 0 && ring[this.depHead]! <= now) {
        this.depHead = (this.depHead + 1) % ring.length;
        this.depLen--;
      }
      if (this.depLen >= this.queueFrames) { c.queueDrops++; return 'queue-full'; }
      dep = Math.max(now, this.busyUntil) + (len * 8 * 1e6) / this.rateBps;
      this.busyUntil = dep;
      ring[(this.depHead + this.depLen) % ring.length] = dep;
      this.depLen++;
    }
    let copies = 1;
    if (this.duplicate > 0 && this.rand() < this.duplicate) { copies = 2; c.duplicated++; }
    c.sent++;
    let queued = 0;
    for (let k = 0; k < copies; k++) {
      let t = dep + this.delayUs;
      if (this.jitterUs > 0) t += this.rand() * this.jitterUs;
      if (this.reorder > 0 && this.rand() < this.reorder) { t += this.reorderDelayUs; c.reordered++; }
      const wf = this.pool.alloc();
      if (wf < 0) { c.wireFull++; continue; }
      const at = this.pool.dataStart(wf);
      this.pool.bytes.set(src.subarray(off, off + len), at);
      if (this.corrupt > 0 && this.rand() < this.corrupt && len > 0) {
        const bit = Math.floor(this.rand() * len * 8);
        this.pool.bytes[at + (bit >>> 3)]! ^= 1 << (bit & 7);
        c.corrupted++;
      }
      this.push(t, wf, len);
      queued++;
    }
    return queued > 0 ? '' : 'wire-full';
  }

  /** Delivers due frames into `dst`'s pool, appending them to `out`. */
  deliver(out: Burst, now: number, dst: FramePool, st: DriverStats): number {
    let n = 0;
    const room = dst.frameSize - dst.headroom;
    while (this.n > 0 && out.n < out.capacity && this.hTime[0]! <= now) {
      const t = this.hTime[0]!;
      const wf = this.hFrame[0]!;
      const len = this.hLen[0]!;
      this.pop();
      const f = len <= room ? dst.alloc() : -1;
      if (f < 0) {
        this.pool.free(wf);
        this.counters.noFrame++;
        countDrop(st, len <= room ? 'no-frame' : 'oversize');
        continue;
      }
      const at = dst.dataStart(f);
      const s = this.pool.dataStart(wf);
      dst.bytes.set(this.pool.bytes.subarray(s, s + len), at);
      this.pool.free(wf);
      out.push(f, at, len, t);
      st.rxPackets++;
      st.rxBytes += len;
      this.counters.delivered++;
      n++;
    }
    return n;
  }

  /** Throws away everything in flight. */
  drain(): void {
    while (this.n > 0) {
      const wf = this.hFrame[0]!;
      this.pop();
      this.pool.free(wf);
    }
  }

  private less(i: number, j: number): boolean {
    const a = this.hTime[i]!, b = this.hTime[j]!;
    return a < b || (a === b && this.hSeq[i]! < this.hSeq[j]!);
  }

  private swap(i: number, j: number): void {
    const t = this.hTime[i]!; this.hTime[i] = this.hTime[j]!; this.hTime[j] = t;
    const s = this.hSeq[i]!; this.hSeq[i] = this.hSeq[j]!; this.hSeq[j] = s;
    const f = this.hFrame[i]!; this.hFrame[i] = this.hFrame[j]!; this.hFrame[j] = f;
    const l = this.hLen[i]!; this.hLen[i] = this.hLen[j]!; this.hLen[j] = l;
  }

  private push(t: number, wf: number, len: number): void {
    let i = this.n++;
    this.hTime[i] = t;
    this.hSeq[i] = this.seqNo++;
    this.hFrame[i] = wf;
    this.hLen[i] = len;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  private pop(): void {
    const last = --this.n;
    if (last > 0) {
      this.swap(0, last);
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < last && this.less(l, m)) m = l;
        if (r < last && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
  }
}

export class MemoryEndpoint implements Driver {
  readonly kind = 'memory';
  readonly name: string;
  readonly pool: FramePool;
  readonly mac: Uint8Array;
  readonly mtu: number;
  private readonly st: DriverStats = newStats();
  private closed = false;

  /** @internal */
  constructor(name: string, pool: FramePool, mac: Uint8Array, mtu: number, private readonly out: WireIn, private readonly inc: Wire) {
    this.name = name;
    this.pool = pool;
    this.mac = mac;
    this.mtu = mtu;
  }

  rx(out: Burst, now: number): number {
    if (this.closed) return 0;
    return this.inc.deliver(out, now, this.pool, this.st);
  }

  tx(b: Burst, now: number): number {
    const pool = this.pool;
    const max = this.mtu + 22;
    for (let i = 0; i < b.n; i++) {
      const len = b.len[i]!;
      let reason: string;
      if (this.closed) reason = 'closed';
      else if (len > max) reason = 'tx-too-big';
      else reason = this.out.send(pool.bytes, b.off[i]!, len, now);
      if (reason) countDrop(this.st, reason);
      else { this.st.txPackets++; this.st.txBytes += len; }
      pool.free(b.frame[i]!);
    }
    return b.n;
  }

  service(_now: number): void {}

  nextDeadline(): number {
    return this.closed ? Infinity : this.inc.nextTime();
  }

  /** Impairment counters of the direction this endpoint sends on. */
  linkCounters(): LinkCounters {
    return { ...this.out.counters };
  }

  stats(): DriverStats {
    return { ...this.st, drops: { ...this.st.drops }, link: this.linkCounters(), inFlightToUs: this.inc.inFlight };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inc.drain();
  }
}

export interface MemoryLink {
  a: MemoryEndpoint;
  b: MemoryEndpoint;
  /** Changes the impairments of one direction (counters and PRNG state are kept). */
  setImpairments(dir: 'ab' | 'ba', imp: Impairments): void;
  /** Frames currently in flight in one direction. */
  inFlight(dir: 'ab' | 'ba'): number;
  /** Earliest pending delivery in either direction. */
  nextDeadline(): number;
}

function mixSeed(seed: number, k: number): number {
  let h = Math.imul((seed | 0) ^ Math.imul(k, 0x85ebca6b), 0xcc9e2d51);
  h ^= h >>> 13;
  h = Math.imul(h, 0x1b873593);
  return (h ^ (h >>> 16)) | 0;
}

function toMac(v: string | Uint8Array | undefined, dflt: number[]): Uint8Array {
  const m = typeof v === 'string' ? parseMac(v) : v ? Uint8Array.from(v) : Uint8Array.from(dflt);
  if (m.length !== 6) throw new RangeError(`mac must be 6 bytes, got ${m.length}`);
  return m;
}

function pick(base: Impairments, over: Impairments | undefined): Impairments {
  const keys: (keyof Impairments)[] = ['loss', 'duplicate', 'reorder', 'reorderDelayUs', 'delayUs', 'jitterUs', 'corrupt', 'rateBps', 'queueFrames'];
  const o: Impairments = {};
  for (const k of keys) o[k] = over?.[k] ?? base[k];
  return o;
}

export function createMemoryLink(opts: MemoryLinkOptions = {}): MemoryLink {
  const frameSize = opts.frameSize ?? 2048;
  const frameCount = opts.frameCount ?? 1024;
  const headroom = opts.headroom;
  const wireFrames = opts.wireFrames ?? 4096;
  const seed = opts.seed ?? 1;
  const mtu = opts.mtu ?? 1500;
  if (mtu + 22 > frameSize - (headroom ?? 256)) throw new RangeError(`mtu ${mtu} does not fit a ${frameSize}-byte frame`);
  const poolA = new FramePool({ frameSize, frameCount, headroom });
  const poolB = new FramePool({ frameSize, frameCount, headroom });
  const ab = new Wire(frameSize, wireFrames, headroom ?? 256, mixSeed(seed, 1));
  const ba = new Wire(frameSize, wireFrames, headroom ?? 256, mixSeed(seed, 2));
  ab.configure(pick(opts, opts.ab));
  ba.configure(pick(opts, opts.ba));
  const a = new MemoryEndpoint(opts.nameA ?? 'mem-a', poolA, toMac(opts.macA, [2, 0, 0, 0, 0, 0x0a]), mtu, ab, ba);
  const b = new MemoryEndpoint(opts.nameB ?? 'mem-b', poolB, toMac(opts.macB, [2, 0, 0, 0, 0, 0x0b]), mtu, ba, ab);
  return {
    a,
    b,
    setImpairments: (dir, imp) => (dir === 'ab' ? ab : ba).configure(imp),
    inFlight: (dir) => (dir === 'ab' ? ab : ba).inFlight,
    nextDeadline: () => Math.min(ab.nextTime(), ba.nextTime()),
  };
}

/**
 * A multi-queue device and its peer: the device side has one endpoint per queue (each with its own
 * pool, as each queue of an AF_XDP device has its own UMEM), all with the same MAC; the peer's
 * frames go to the queue `steer` picks (as a NIC's RSS or a veth peer's transmit queue does),
 * and whatever any queue sends reaches the peer.
 */
export interface MultiQueueLink {
  queues: MemoryEndpoint[];
  peer: MemoryEndpoint;
  /** Earliest pending delivery in any direction. */
  nextDeadline(): number;
}

export interface MultiQueueLinkOptions {
  queues: number;
  /** The queue of a frame the peer sends: 0..queues-1. */
  steer: (b: Uint8Array, off: number, len: number) => number;
  name?: string;
  peerName?: string;
  mac?: string | Uint8Array;
  peerMac?: string | Uint8Array;
  mtu?: number;
  frameSize?: 2048 | 4096;
  frameCount?: number;
  seed?: number;
  /** Impairments of both directions (seeded: the same run gives the same losses). */
  impair?: Impairments;
}

class SteeredWire implements WireIn {
  readonly counters: LinkCounters = { sent: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0, corrupted: 0, queueDrops: 0, wireFull: 0, noFrame: 0 };
  constructor(private readonly wires: Wire[], private readonly steer: (b: Uint8Array, off: number, len: number) => number) {}
  send(src: Uint8Array, off: number, len: number, now: number): string {
    const q = this.steer(src, off, len);
    const w = this.wires[q];
    if (!w) throw new RangeError(`steer chose queue ${q} of ${this.wires.length}`);
    this.counters.sent++;
    return w.send(src, off, len, now);
  }
}

export function createMultiQueueLink(opts: MultiQueueLinkOptions): MultiQueueLink {
  const n = opts.queues;
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new RangeError(`queues must be 1..64, got ${n}`);
  const frameSize = opts.frameSize ?? 2048;
  const frameCount = opts.frameCount ?? 1024;
  const mtu = opts.mtu ?? 1500;
  const seed = opts.seed ?? 1;
  if (mtu + 22 > frameSize - 256) throw new RangeError(`mtu ${mtu} does not fit a ${frameSize}-byte frame`);
  const toQueue: Wire[] = [];
  for (let q = 0; q < n; q++) {
    const w = new Wire(frameSize, 4096, 256, mixSeed(seed, 16 + q));
    w.configure(opts.impair ?? {});
    toQueue.push(w);
  }
  const toPeer = new Wire(frameSize, 4096, 256, mixSeed(seed, 2));
  toPeer.configure(opts.impair ?? {});
  const mac = toMac(opts.mac, [2, 0, 0, 0, 0, 0x0a]);
  const queues = toQueue.map((w) => new MemoryEndpoint(opts.name ?? 'mem-a', new FramePool({ frameSize, frameCount }), Uint8Array.from(mac), mtu, toPeer, w));
  const peer = new MemoryEndpoint(opts.peerName ?? 'mem-b', new FramePool({ frameSize, frameCount }), toMac(opts.peerMac, [2, 0, 0, 0, 0, 0x0b]), mtu,
    new SteeredWire(toQueue, opts.steer), toPeer);
  return {
    queues, peer,
    nextDeadline: () => Math.min(toPeer.nextTime(), ...toQueue.map((w) => w.nextTime())),
  };
}
