/**
 * Choosing a local port so that the peer's replies land on a given RX queue.
 *
 * A NIC doing RSS hashes each received packet with Toeplitz (src = the peer, dst = us) and sends
 * it to queue `indir[hash & (indir.length - 1)]` (the low bits of the hash index the indirection
 * table; Microsoft NDIS "RSS Configuration", and Linux drivers with power-of-two tables). For a
 * connection we open, everything but our own port is fixed, and Toeplitz is linear: the hash is
 * hash(port 0) XOR term(port). So ports are grouped once, at setup, by the low bits of their term
 * (a bucket per table index); for one connection the ports that reach queue q are exactly the
 * buckets `(hash(port 0) & mask) ^ i` for every index i with indir[i] == q. Finding them costs a
 * pass over those indices (table size / queues, e.g. 8 of 128 for 16 queues) and allocates nothing.
 */
import type { IpAddr, Ip6 } from '../ip/addr';
import { DPORT_OFF4, DPORT_OFF6, Toeplitz } from './toeplitz';

/** The ephemeral port range (Linux's default ip_local_port_range). */
export const EPHEMERAL_LO = 32768;
export const EPHEMERAL_HI = 60999;

/**
 * What the NIC hashes for TCP of one family (`ethtool -n DEV rx-flow-hash tcp4`): `sdfn` addresses
 * and ports (the NDIS "with TCP" input), `sd` addresses only (NDIS "IPv4/IPv6 only"), `none` not
 * known or another set (no steering for that family).
 */
export type RssFields = 'sdfn' | 'sd' | 'none';

export interface RssSelectorOptions {
  /** Port range to choose from (default EPHEMERAL_LO..EPHEMERAL_HI). */
  lo?: number;
  hi?: number;
  /** Hashed fields for TCP over IPv4 / IPv6 (default `sdfn`). */
  tcp4?: RssFields;
  tcp6?: RssFields;
}

/** Ports of the range grouped by `term(port) & mask`: bucket m is ports[start[m] .. start[m+1]). */
interface Buckets {
  start: Uint32Array;
  ports: Uint16Array;
}

const enum Mode {
  None = 0,
  Buckets = 1,
  Range = 2,
}

/**
 * The port chooser of one device (key + indirection table); one instance per shard (it keeps
 * iteration state). Use `begin` then `next`, or `nextPortForQueue`.
 */
export class RssPortSelector {
  readonly toeplitz: Toeplitz;
  readonly indir: Uint16Array;
  readonly mask: number;
  /** 1 + the highest queue in the table. */
  readonly queues: number;
  readonly lo: number;
  readonly hi: number;
  readonly tcp4: RssFields;
  readonly tcp6: RssFields;
  /** Table indices of queue q: qIdx[qStart[q] .. qStart[q+1]). */
  private readonly qStart: Uint32Array;
  private readonly qIdx: Uint16Array;
  private readonly b4: Buckets | null;
  private readonly b6: Buckets | null;
  /** Rotates the first candidate from one call to the next, as a sequential ephemeral counter does. */
  private turn = 0;
  // Iteration state of the last begin().
  private mode = Mode.None;
  private bk: Buckets | null = null;
  private base = 0;
  private first = 0;
  private end = 0;
  private cur = 0;
  private off = 0;
  private left = 0;
  private rangeK = 0;

  constructor(key: Uint8Array, indir: ArrayLike<number>, opts: RssSelectorOptions = {}) {
    const n = indir.length;
    if (!Number.isInteger(n) || n < 1 || n > 65536 || (n & (n - 1)) !== 0) {
      throw new RangeError(`RSS indirection table size must be a power of two from 1 to 65536, got ${n}`);
    }
    this.toeplitz = new Toeplitz(key);
    this.lo = opts.lo ?? EPHEMERAL_LO;
    this.hi = opts.hi ?? EPHEMERAL_HI;
    if (!Number.isInteger(this.lo) || !Number.isInteger(this.hi) || this.lo < 1 || this.hi > 65535 || this.lo > this.hi) {
      throw new RangeError(`RSS port range must be integers with 1 <= lo <= hi <= 65535, got ${this.lo}..${this.hi}`);
    }
    this.tcp4 = checkFields(opts.tcp4 ?? 'sdfn', 'tcp4');
    this.tcp6 = checkFields(opts.tcp6 ?? 'sdfn', 'tcp6');
    if (!this.toeplitz.ipv6) this.tcp6 = 'none'; // a key under 40 bytes cannot hash IPv6 4-tuples
    this.indir = new Uint16Array(n);
    let queues = 0;
    for (let i = 0; i < n; i++) {
      const q = indir[i]!;
      if (!Number.isInteger(q) || q < 0 || q > 65535) throw new RangeError(`RSS indirection table entry ${i} must be a queue number 0..65535, got ${q}`);
      this.indir[i] = q;
      if (q + 1 > queues) queues = q + 1;
    }
    this.mask = n - 1;
    this.queues = queues;
    // Indices per queue, by counting sort.
    this.qStart = new Uint32Array(queues + 1);
    for (let i = 0; i < n; i++) this.qStart[this.indir[i]! + 1]!++;
    for (let q = 0; q < queues; q++) this.qStart[q + 1]! += this.qStart[q]!;
    this.qIdx = new Uint16Array(n);
    const fill = this.qStart.slice(0, queues);
    for (let i = 0; i < n; i++) this.qIdx[fill[this.indir[i]!]!++] = i;
    this.b4 = this.tcp4 === 'sdfn' ? this.buckets(DPORT_OFF4) : null;
    this.b6 = this.tcp6 === 'sdfn' ? this.buckets(DPORT_OFF6) : null;
  }

  private buckets(off: number): Buckets {
    const size = this.mask + 1;
    const start = new Uint32Array(size + 1);
    for (let p = this.lo; p <= this.hi; p++) start[(this.toeplitz.u16(off, p) & this.mask) + 1]!++;
    for (let m = 0; m < size; m++) start[m + 1]! += start[m]!;
    const ports = new Uint16Array(this.hi - this.lo + 1);
    const fill = start.slice(0, size);
    for (let p = this.lo; p <= this.hi; p++) ports[fill[this.toeplitz.u16(off, p) & this.mask]!++] = p;
    return { start, ports };
  }

  /**
   * The queue the NIC gives a packet from `peer`:`peerPort` to `local`:`localPort`, or -1 when the
   * family's hashed fields are not known (`none`).
   */
  queueOf(peer: IpAddr, peerPort: number, local: IpAddr, localPort: number): number {
    const h = this.hashOf(peer, peerPort, local, localPort);
    return h < 0 ? -1 : this.indir[h & this.mask]!;
  }

  /** The NIC's hash of that packet (-1 when the family's fields are `none`). */
  hashOf(peer: IpAddr, peerPort: number, local: IpAddr, localPort: number): number {
    const t = this.toeplitz;
    if (typeof peer === 'number') {
      if (typeof local !== 'number') throw new TypeError('RSS: peer and local addresses of different families');
      if (this.tcp4 === 'none') return -1;
      return this.tcp4 === 'sd' ? t.hash4Addrs(peer, local) : t.hash4(peer, local, peerPort, localPort);
    }
    if (typeof local === 'number') throw new TypeError('RSS: peer and local addresses of different families');
    if (this.tcp6 === 'none') return -1;
    return this.tcp6 === 'sd' ? t.hash6Addrs(peer, local as Ip6) : t.hash6(peer, local as Ip6, peerPort, localPort);
  }

  /**
   * Starts listing the ports of the range whose replies from `peer`:`peerPort` to `local` reach
   * `queue`. Returns how many there are (0: none, the caller falls back to any port); `next()`
   * then yields each once, starting at a point that moves on every call.
   */
  begin(queue: number, peer: IpAddr, peerPort: number, local: IpAddr): number {
    this.mode = Mode.None;
    this.left = 0;
    if (!Number.isInteger(queue) || queue < 0 || queue >= this.queues) return 0;
    const h0 = this.hashOf(peer, peerPort, local, 0);
    if (h0 < 0) return 0;
    const fields = typeof peer === 'number' ? this.tcp4 : this.tcp6;
    const turn = this.turn;
    this.turn = (turn + 1) >>> 0;
    if (fields === 'sd') {
      // Ports are not hashed: every port reaches the queue of the addresses, or none does.
      if (this.indir[h0 & this.mask] !== queue) return 0;
      const count = this.hi - this.lo + 1;
      this.mode = Mode.Range;
      this.rangeK = turn % count;
      this.left = count;
      return count;
    }
    const bk = typeof peer === 'number' ? this.b4! : this.b6!;
    const start = bk.start, qIdx = this.qIdx, base = h0 & this.mask;
    const first = this.qStart[queue]!, end = this.qStart[queue + 1]!;
    let count = 0;
    for (let j = first; j < end; j++) {
      const m = base ^ qIdx[j]!;
      count += start[m + 1]! - start[m]!;
    }
    if (count === 0) return 0;
    // Position the cursor on candidate number turn % count.
    let k = turn % count, cur = first;
    for (;;) {
      const m = base ^ qIdx[cur]!;
      const size = start[m + 1]! - start[m]!;
      if (k < size) break;
      k -= size;
      cur++;
    }
    this.mode = Mode.Buckets;
    this.bk = bk;
    this.base = base;
    this.first = first;
    this.end = end;
    this.cur = cur;
    this.off = k;
    this.left = count;
    return count;
  }

  /** The next candidate port of the last `begin`, or -1 when all were given. */
  next(): number {
    if (this.left === 0) return -1;
    this.left--;
    if (this.mode === Mode.Range) {
      const p = this.lo + this.rangeK;
      this.rangeK = this.rangeK + 1 === this.hi - this.lo + 1 ? 0 : this.rangeK + 1;
      return p;
    }
    const { start, ports } = this.bk!;
    const qIdx = this.qIdx, base = this.base;
    let m = base ^ qIdx[this.cur]!;
    const p = ports[start[m]! + this.off]!;
    this.off++;
    // Move past the end of this bucket (and over empty ones), wrapping to the queue's first index.
    while (this.left > 0 && this.off >= start[m + 1]! - start[m]!) {
      this.off = 0;
      this.cur = this.cur + 1 === this.end ? this.first : this.cur + 1;
      m = base ^ qIdx[this.cur]!;
    }
    return p;
  }
}

function checkFields(f: unknown, name: string): RssFields {
  if (f === 'sdfn' || f === 'sd' || f === 'none') return f;
  throw new RangeError(`RSS ${name} fields must be 'sdfn', 'sd' or 'none', got ${String(f)}`);
}

/**
 * A local port in the selector's range, not in use, whose replies from `peer`:`peerPort` to `local`
 * reach `queue`; -1 when no port of the range maps there or all that do are in use (the caller
 * then falls back to its usual ephemeral choice; `sel.begin` tells the two apart).
 */
export function nextPortForQueue(sel: RssPortSelector, queue: number, peer: IpAddr, peerPort: number, local: IpAddr, inUse: (port: number) => boolean): number {
  if (sel.begin(queue, peer, peerPort, local) === 0) return -1;
  for (let p = sel.next(); p >= 0; p = sel.next()) if (!inUse(p)) return p;
  return -1;
}
