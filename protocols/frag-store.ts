/**
 * The bookkeeping both reassemblers share (IPv4: reassembly.ts, IPv6: reassembly6.ts), sans-IO:
 * preallocated slots for datagrams in progress, the fragment ranges of each (overlap, duplicate
 * and consistency checks), its data buffer, hash chains (the key itself is the caller's: it
 * compares its own key arrays while walking a chain), the age list for timeouts, and the limits
 * (`maxDatagrams`, `maxBytes`, `maxFragments`). Drop reasons are the caller's family's.
 */
import { Drop } from './drop';
import { copyBytes } from './checksum';

export interface ReassemblyOptions {
  /** Datagrams in progress at once (default 64). */
  maxDatagrams?: number;
  /** Payload bytes held over all datagrams in progress (default 256 KiB). */
  maxBytes?: number;
  /** Lifetime of a datagram from its first fragment, µs (default 30 s for IPv4, 60 s for IPv6). */
  timeoutUs?: number;
  /** Fragments per datagram (default 128). */
  maxFragments?: number;
}

/** The drop reasons of one family. */
export interface FragDrops {
  invalid: Drop;
  overflow: Drop;
  overlap: Drop;
  duplicate: Drop;
  timeout: Drop;
}

const EMPTY = new Uint8Array(0);

export class FragStore {
  readonly maxDatagrams: number;
  readonly maxBytes: number;
  readonly timeoutUs: number;
  readonly maxFragments: number;
  /** Drops counted per reason (index = Drop). */
  readonly stats = new Int32Array(Drop.Count);
  /** Fragments refused because `maxDatagrams` datagrams were in progress, or `maxBytes` were held. */
  datagramsFull = 0;
  memoryFull = 0;
  held = 0;
  active = 0;
  /** Slot chosen by the last successful `admit`. */
  slot = -1;

  readonly deadline: Float64Array;
  readonly total: Int32Array; // -1 until the last fragment arrived
  readonly maxEnd: Int32Array;
  readonly received: Int32Array;
  readonly nFrags: Int32Array;
  /** Overlap seen (RFC 5722): data freed, the slot kept until its deadline so later fragments are dropped. */
  readonly poisoned: Uint8Array;
  readonly bufs: Uint8Array[];
  private readonly fragStart: Int32Array; // [slot * maxFragments + i]
  private readonly fragEnd: Int32Array;
  private readonly bucketOf: Int32Array;
  private readonly buckets: Int32Array;
  private readonly mask: number;
  private readonly next: Int32Array;
  private readonly older: Int32Array;
  private readonly newer: Int32Array;
  oldest = -1;
  private newest = -1;
  private freeHead = 0;

  /**
   * `rememberOverlap`: keep an overlapped datagram until its deadline (RFC 5722) instead of
   * freeing its slot. `headroom`: bytes left free before the data in each slot buffer (data byte
   * `i` is at `bufs[s][headroom + i]`), so a caller can put headers in front without a copy.
   */
  constructor(opts: ReassemblyOptions, private readonly drops: FragDrops, defaultTimeoutUs: number,
    private readonly rememberOverlap: boolean, readonly headroom = 0) {
    const md = opts.maxDatagrams ?? 64;
    const mb = opts.maxBytes ?? 256 * 1024;
    const to = opts.timeoutUs ?? defaultTimeoutUs;
    const mf = opts.maxFragments ?? 128;
    if (!Number.isInteger(md) || md < 1 || md > 65536) throw new RangeError(`maxDatagrams must be an integer 1..65536, got ${md}`);
    if (!Number.isInteger(mb) || mb < 1) throw new RangeError(`maxBytes must be a positive integer, got ${mb}`);
    if (!(to > 0)) throw new RangeError(`timeoutUs must be > 0, got ${to}`);
    if (!Number.isInteger(mf) || mf < 1 || mf > 8192) throw new RangeError(`maxFragments must be an integer 1..8192, got ${mf}`);
    this.maxDatagrams = md;
    this.maxBytes = mb;
    this.timeoutUs = to;
    this.maxFragments = mf;
    this.deadline = new Float64Array(md);
    this.total = new Int32Array(md);
    this.maxEnd = new Int32Array(md);
    this.received = new Int32Array(md);
    this.nFrags = new Int32Array(md);
    this.poisoned = new Uint8Array(md);
    this.fragStart = new Int32Array(md * mf);
    this.fragEnd = new Int32Array(md * mf);
    this.bufs = new Array<Uint8Array>(md).fill(EMPTY);
    let nb = 1;
    while (nb < md * 2) nb <<= 1;
    this.buckets = new Int32Array(nb).fill(-1);
    this.mask = nb - 1;
    this.bucketOf = new Int32Array(md);
    this.next = new Int32Array(md);
    for (let i = 0; i < md; i++) this.next[i] = i + 1 < md ? i + 1 : -1;
    this.older = new Int32Array(md).fill(-1);
    this.newer = new Int32Array(md).fill(-1);
  }

  /** Bucket of a key hash. */
  bucket(hash: number): number {
    return hash & this.mask;
  }

  /** First slot of a bucket's chain (-1 when empty); `chainNext` walks on. */
  head(bucket: number): number {
    return this.buckets[bucket];
  }

  chainNext(s: number): number {
    return this.next[s];
  }

  count(d: Drop): Drop {
    this.stats[d]++;
    return d;
  }

  killCount(s: number, d: Drop): Drop {
    this.kill(s);
    this.stats[d]++;
    return d;
  }

  /**
   * Admits fragment [start, start+len) (`more`: M/MF flag) into slot `s` (-1: none yet; a new slot
   * in `bucket` is created within the limits). Checks the limits, the consistency with the last
   * fragment, overlaps (RFC 5722: the whole datagram goes; with `rememberOverlap` its later
   * fragments too until the deadline) and exact duplicates (only the copy is dropped). On None,
   * `slot` is the slot to `store` into.
   */
  admit(s: number, bucket: number, now: number, start: number, len: number, more: boolean): Drop {
    const d = this.drops;
    const end = start + len;
    if (s < 0) {
      if (this.active >= this.maxDatagrams) { this.datagramsFull++; return this.count(d.overflow); }
      if (this.held + len > this.maxBytes) { this.memoryFull++; return this.count(d.overflow); }
      this.slot = this.create(bucket, now);
      return Drop.None;
    }
    if (this.poisoned[s]) return this.count(d.overlap);
    const total = this.total[s];
    if (!more) {
      if ((total >= 0 && end !== total) || this.maxEnd[s] > end) return this.killCount(s, d.invalid);
    } else if (total >= 0 && end > total) {
      return this.killCount(s, d.invalid);
    }
    const base = s * this.maxFragments;
    const n = this.nFrags[s];
    for (let i = 0; i < n; i++) {
      const fs = this.fragStart[base + i], fe = this.fragEnd[base + i];
      if (start < fe && end > fs) {
        if (start === fs && end === fe) return this.count(d.duplicate);
        if (this.rememberOverlap) {
          this.poison(s);
          return this.count(d.overlap);
        }
        return this.killCount(s, d.overlap);
      }
    }
    if (n >= this.maxFragments) return this.killCount(s, d.overflow);
    if (this.held + len > this.maxBytes) { this.memoryFull++; return this.killCount(s, d.overflow); }
    this.slot = s;
    return Drop.None;
  }

  /**
   * Stores the admitted fragment's `len` bytes (`start + len` ≤ 65536) from `b[dataOff..)` at
   * `start`. Returns whether the datagram is complete (then its `totalOf(s)` bytes are
   * `bufs[s][headroom .. headroom + total)`).
   */
  store(s: number, start: number, b: Uint8Array, dataOff: number, len: number, more: boolean): boolean {
    const end = start + len;
    const hr = this.headroom;
    let buf = this.bufs[s];
    if (buf.length < hr + end) {
      let cap = buf.length > 2048 ? buf.length : 2048;
      while (cap < hr + end) cap *= 2;
      if (cap > hr + 65536) cap = hr + 65536;
      const nbuf = new Uint8Array(cap);
      if (this.maxEnd[s] > 0) copyBytes(nbuf, hr, buf, hr, this.maxEnd[s]);
      this.bufs[s] = buf = nbuf;
    }
    copyBytes(buf, hr + start, b, dataOff, len);
    const fi = s * this.maxFragments + this.nFrags[s]++;
    this.fragStart[fi] = start;
    this.fragEnd[fi] = end;
    this.received[s] += len;
    this.held += len;
    if (end > this.maxEnd[s]) this.maxEnd[s] = end;
    if (!more) this.total[s] = end;
    // Fragments are disjoint and lie inside [0, total): full coverage.
    return this.total[s] >= 0 && this.received[s] === this.total[s];
  }

  /** Length of a datagram whose fragments all arrived (see `store`). */
  totalOf(s: number): number {
    return this.total[s];
  }

  /** Whether slot `s` holds the fragment at offset 0, and its end. */
  firstEnd(s: number): number {
    const base = s * this.maxFragments;
    for (let i = 0, n = this.nFrags[s]; i < n; i++) if (this.fragStart[base + i] === 0) return this.fragEnd[base + i];
    return -1;
  }

  /** Frees the data of slot `s` and keeps it (keyed, aged) until its deadline: RFC 5722. */
  private poison(s: number): void {
    this.held -= this.received[s];
    this.received[s] = 0;
    this.nFrags[s] = 0;
    this.poisoned[s] = 1;
  }

  private create(bucket: number, now: number): number {
    const s = this.freeHead;
    this.freeHead = this.next[s];
    this.deadline[s] = now + this.timeoutUs;
    this.total[s] = -1;
    this.maxEnd[s] = 0;
    this.received[s] = 0;
    this.nFrags[s] = 0;
    this.poisoned[s] = 0;
    this.bucketOf[s] = bucket;
    this.next[s] = this.buckets[bucket];
    this.buckets[bucket] = s;
    this.older[s] = this.newest;
    this.newer[s] = -1;
    if (this.newest >= 0) this.newer[this.newest] = s;
    else this.oldest = s;
    this.newest = s;
    this.active++;
    return s;
  }

  kill(s: number): void {
    const h = this.bucketOf[s];
    let p = this.buckets[h];
    if (p === s) {
      this.buckets[h] = this.next[s];
    } else {
      while (p >= 0 && this.next[p] !== s) p = this.next[p];
      if (p >= 0) this.next[p] = this.next[s];
    }
    const o = this.older[s], n = this.newer[s];
    if (o >= 0) this.newer[o] = n;
    else this.oldest = n;
    if (n >= 0) this.older[n] = o;
    else this.newest = o;
    this.older[s] = this.newer[s] = -1;
    this.held -= this.received[s];
    this.received[s] = 0;
    this.nFrags[s] = 0;
    this.poisoned[s] = 0;
    this.active--;
    this.next[s] = this.freeHead;
    this.freeHead = s;
  }

  /** Earliest deadline (µs) of a datagram in progress, or Infinity when there is none. */
  nextDeadline(): number {
    return this.oldest >= 0 ? this.deadline[this.oldest] : Infinity;
  }
}

/**
 * What both reassemblers (IPv4, IPv6) expose of their fragment store: the limits in force, the
 * drop counts, what is held, the next deadline.
 */
export abstract class ReassemblerBase {
  readonly maxDatagrams: number;
  readonly maxBytes: number;
  readonly timeoutUs: number;
  readonly maxFragments: number;
  /** Drops counted per reason (index = Drop). */
  readonly stats: Int32Array;

  constructor(protected readonly st: FragStore) {
    this.stats = st.stats;
    this.maxDatagrams = st.maxDatagrams;
    this.maxBytes = st.maxBytes;
    this.timeoutUs = st.timeoutUs;
    this.maxFragments = st.maxFragments;
  }

  /** Datagrams in progress. */
  get pending(): number {
    return this.st.active;
  }

  /** Payload bytes held by datagrams in progress. */
  get heldBytes(): number {
    return this.st.held;
  }

  /** Fragments refused because `maxDatagrams` datagrams were in progress, or `maxBytes` were held. */
  get datagramsFull(): number {
    return this.st.datagramsFull;
  }

  get memoryFull(): number {
    return this.st.memoryFull;
  }

  nextDeadline(): number {
    return this.st.nextDeadline();
  }

  /** Discards everything in progress (not counted). */
  clear(): void {
    while (this.st.oldest >= 0) this.st.kill(this.st.oldest);
  }
}
