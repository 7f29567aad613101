/**
 * Bounded IPv4 reassembly (RFC 791, RFC 815 style bookkeeping), sans-IO.
 *
 * Datagrams are keyed by (context, source, destination, protocol, id): the context (e.g. a
 * virtual server id) keeps tenants apart even when their addresses and ids coincide. Limits:
 * `maxDatagrams` datagrams in progress, `maxBytes` payload bytes held over all of them,
 * `maxFragments` fragments per datagram. A fragment that would start a datagram beyond a
 * limit is refused (Ipv4ReassemblyOverflow); one that would push an existing datagram beyond
 * `maxBytes`/`maxFragments` discards that datagram (also Overflow).
 *
 * Overlaps (RFC 5722 style): a fragment overlapping data already held discards the whole
 * datagram (Ipv4ReassemblyOverlap). An exact duplicate (same offset and length) is only
 * dropped itself (Ipv4FragmentDuplicate, RFC 8200 4.5 allows this), the datagram goes on.
 * Inconsistent fragments (a second, different last fragment; data beyond the end announced by
 * the last fragment; a datagram over 65535 bytes) → Ipv4FragmentInvalid; a malformed fragment
 * alone (empty, or a non-last fragment whose length is not a multiple of 8) is dropped, a
 * contradiction with what is held discards the datagram.
 *
 * Time: `now` (µs) comes in with each call. A datagram lives `timeoutUs` from its first
 * fragment; `expire(now)` discards the late ones (Ipv4ReassemblyTimeout). `now` must not go
 * backwards.
 *
 * Memory: all bookkeeping is preallocated; each slot owns a data buffer that grows by powers
 * of two (2 KiB .. 64 KiB) and is reused, so steady-state work allocates only the view of a
 * completed datagram.
 */
import { Drop } from './drop';
import { Ipv4Header } from './ipv4';
import { copyBytes } from './checksum';

export interface ReassemblyOptions {
  /** Datagrams in progress at once (default 64). */
  maxDatagrams?: number;
  /** Payload bytes held over all datagrams in progress (default 256 KiB). */
  maxBytes?: number;
  /** Lifetime of a datagram from its first fragment, µs (default 30 s). */
  timeoutUs?: number;
  /** Fragments per datagram (default 128). */
  maxFragments?: number;
}

const EMPTY = new Uint8Array(0);
const MAX_IP_LEN = 65535;

export class Ipv4Reassembler {
  readonly maxDatagrams: number;
  readonly maxBytes: number;
  readonly timeoutUs: number;
  readonly maxFragments: number;

  /** Set by `push` when the fragment completed a datagram. */
  done = false;
  /** The complete IP payload when `done` (valid until the next call). */
  datagram: Uint8Array = EMPTY;
  /** Key and first-fragment header fields of the completed datagram. */
  doneCtx = 0;
  doneSrc = 0;
  doneDst = 0;
  doneProto = 0;
  doneId = 0;
  /**
   * Header of the completed datagram as if it had never been fragmented: src, dst, proto, id,
   * tos, ttl and hdrLen of the first fragment; totalLen/payloadLen of the whole datagram;
   * payloadOff 0 (relative to `datagram`).
   */
  readonly doneHdr = new Ipv4Header();
  /** Drops counted per reason (index = Drop). */
  readonly stats = new Int32Array(Drop.Count);

  private held = 0;
  private active = 0;

  // Per-slot state.
  private readonly kCtx: Int32Array;
  private readonly kSrc: Uint32Array;
  private readonly kDst: Uint32Array;
  private readonly kProto: Uint8Array;
  private readonly kId: Uint16Array;
  private readonly deadline: Float64Array;
  private readonly total: Int32Array; // -1 until the last fragment arrived
  private readonly maxEnd: Int32Array;
  private readonly received: Int32Array;
  private readonly nFrags: Int32Array;
  private readonly firstTos: Uint8Array;
  private readonly firstTtl: Uint8Array;
  private readonly firstHdrLen: Uint8Array;
  private readonly fragStart: Int32Array; // [slot * maxFragments + i]
  private readonly fragEnd: Int32Array;
  private readonly bufs: Uint8Array[];
  // Hash chains, free list (reuses `next`) and age list (oldest first).
  private readonly buckets: Int32Array;
  private readonly mask: number;
  private readonly next: Int32Array;
  private readonly older: Int32Array;
  private readonly newer: Int32Array;
  private oldest = -1;
  private newest = -1;
  private freeHead = 0;

  constructor(opts: ReassemblyOptions = {}) {
    const md = opts.maxDatagrams ?? 64;
    const mb = opts.maxBytes ?? 256 * 1024;
    const to = opts.timeoutUs ?? 30_000_000;
    const mf = opts.maxFragments ?? 128;
    if (!Number.isInteger(md) || md < 1 || md > 65536) throw new RangeError(`maxDatagrams must be an integer 1..65536, got ${md}`);
    if (!Number.isInteger(mb) || mb < 1) throw new RangeError(`maxBytes must be a positive integer, got ${mb}`);
    if (!(to > 0)) throw new RangeError(`timeoutUs must be > 0, got ${to}`);
    if (!Number.isInteger(mf) || mf < 1 || mf > 8192) throw new RangeError(`maxFragments must be an integer 1..8192, got ${mf}`);
    this.maxDatagrams = md;
    this.maxBytes = mb;
    this.timeoutUs = to;
    this.maxFragments = mf;
    this.kCtx = new Int32Array(md);
    this.kSrc = new Uint32Array(md);
    this.kDst = new Uint32Array(md);
    this.kProto = new Uint8Array(md);
    this.kId = new Uint16Array(md);
    this.deadline = new Float64Array(md);
    this.total = new Int32Array(md);
    this.maxEnd = new Int32Array(md);
    this.received = new Int32Array(md);
    this.nFrags = new Int32Array(md);
    this.firstTos = new Uint8Array(md);
    this.firstTtl = new Uint8Array(md);
    this.firstHdrLen = new Uint8Array(md);
    this.fragStart = new Int32Array(md * mf);
    this.fragEnd = new Int32Array(md * mf);
    this.bufs = new Array<Uint8Array>(md).fill(EMPTY);
    let nb = 1;
    while (nb < md * 2) nb <<= 1;
    this.buckets = new Int32Array(nb).fill(-1);
    this.mask = nb - 1;
    this.next = new Int32Array(md);
    for (let i = 0; i < md; i++) this.next[i] = i + 1 < md ? i + 1 : -1;
    this.older = new Int32Array(md).fill(-1);
    this.newer = new Int32Array(md).fill(-1);
  }

  /** Datagrams in progress. */
  get pending(): number {
    return this.active;
  }

  /** Payload bytes held by datagrams in progress. */
  get heldBytes(): number {
    return this.held;
  }

  /** Fragments refused because `maxDatagrams` datagrams were in progress, or `maxBytes` were held. */
  datagramsFull = 0;
  memoryFull = 0;

  /**
   * Adds one fragment. `hdr` was parsed from `b` (payloadOff is absolute in `b`); `ctx` is the
   * tenant/context id. Returns Drop.None when the fragment was taken (then `done` tells
   * whether it completed a datagram), else the reason it was dropped (also counted in `stats`).
   * A header that is not a fragment completes at once (`datagram` is a view into `b`).
   */
  push(ctx: number, hdr: Ipv4Header, b: Uint8Array, now: number): Drop {
    this.done = false;
    const start = hdr.fragOff;
    const len = hdr.payloadLen;
    const end = start + len;
    if (!hdr.mf && start === 0) {
      this.complete(ctx, hdr.src, hdr.dst, hdr.proto, hdr.id, hdr.tos, hdr.ttl, hdr.hdrLen, len);
      this.datagram = b.subarray(hdr.payloadOff, hdr.payloadOff + len);
      return Drop.None;
    }
    if (len === 0 || (hdr.mf && (len & 7) !== 0) || hdr.hdrLen + end > MAX_IP_LEN) return this.count(Drop.Ipv4FragmentInvalid);

    let s = this.find(ctx, hdr.src, hdr.dst, hdr.proto, hdr.id);
    if (s >= 0 && this.deadline[s] <= now) {
      this.kill(s);
      this.stats[Drop.Ipv4ReassemblyTimeout]++;
      s = -1;
    }
    if (s < 0) {
      if (this.active >= this.maxDatagrams) { this.datagramsFull++; return this.count(Drop.Ipv4ReassemblyOverflow); }
      if (this.held + len > this.maxBytes) { this.memoryFull++; return this.count(Drop.Ipv4ReassemblyOverflow); }
      s = this.create(ctx, hdr.src, hdr.dst, hdr.proto, hdr.id, now);
    } else {
      const total = this.total[s];
      if (!hdr.mf) {
        if ((total >= 0 && end !== total) || this.maxEnd[s] > end) return this.killCount(s, Drop.Ipv4FragmentInvalid);
      } else if (total >= 0 && end > total) {
        return this.killCount(s, Drop.Ipv4FragmentInvalid);
      }
      const base = s * this.maxFragments;
      const n = this.nFrags[s];
      for (let i = 0; i < n; i++) {
        const fs = this.fragStart[base + i], fe = this.fragEnd[base + i];
        if (start < fe && end > fs) {
          if (start === fs && end === fe) return this.count(Drop.Ipv4FragmentDuplicate);
          return this.killCount(s, Drop.Ipv4ReassemblyOverlap);
        }
      }
      if (n >= this.maxFragments) return this.killCount(s, Drop.Ipv4ReassemblyOverflow);
      if (this.held + len > this.maxBytes) { this.memoryFull++; return this.killCount(s, Drop.Ipv4ReassemblyOverflow); }
    }

    // Store the fragment.
    let buf = this.bufs[s];
    if (buf.length < end) {
      let cap = buf.length > 2048 ? buf.length : 2048;
      while (cap < end) cap *= 2;
      if (cap > 65536) cap = 65536;
      const nbuf = new Uint8Array(cap);
      if (this.maxEnd[s] > 0) copyBytes(nbuf, 0, buf, 0, this.maxEnd[s]);
      this.bufs[s] = buf = nbuf;
    }
    copyBytes(buf, start, b, hdr.payloadOff, len);
    const fi = s * this.maxFragments + this.nFrags[s]++;
    this.fragStart[fi] = start;
    this.fragEnd[fi] = end;
    this.received[s] += len;
    this.held += len;
    if (end > this.maxEnd[s]) this.maxEnd[s] = end;
    if (!hdr.mf) this.total[s] = end;
    if (start === 0) {
      this.firstTos[s] = hdr.tos;
      this.firstTtl[s] = hdr.ttl;
      this.firstHdrLen[s] = hdr.hdrLen;
    }
    const total = this.total[s];
    if (total >= 0 && this.received[s] === total) {
      // Fragments are disjoint and lie inside [0, total): full coverage.
      this.complete(this.kCtx[s], this.kSrc[s], this.kDst[s], this.kProto[s], this.kId[s],
        this.firstTos[s], this.firstTtl[s], this.firstHdrLen[s], total);
      this.datagram = buf.subarray(0, total);
      this.kill(s);
    }
    return Drop.None;
  }

  /** Discards datagrams whose deadline is ≤ now; returns how many (counted as Ipv4ReassemblyTimeout). */
  expire(now: number): number {
    let n = 0;
    while (this.oldest >= 0 && this.deadline[this.oldest] <= now) {
      this.kill(this.oldest);
      n++;
    }
    this.stats[Drop.Ipv4ReassemblyTimeout] += n;
    return n;
  }

  /** Earliest deadline (µs) of a datagram in progress, or Infinity when there is none. */
  nextDeadline(): number {
    return this.oldest >= 0 ? this.deadline[this.oldest] : Infinity;
  }

  /** Discards everything in progress (not counted). */
  clear(): void {
    while (this.oldest >= 0) this.kill(this.oldest);
  }

  private count(d: Drop): Drop {
    this.stats[d]++;
    return d;
  }

  private killCount(s: number, d: Drop): Drop {
    this.kill(s);
    this.stats[d]++;
    return d;
  }

  private complete(ctx: number, src: number, dst: number, proto: number, id: number, tos: number, ttl: number, hdrLen: number, len: number): void {
    this.done = true;
    this.doneCtx = ctx;
    this.doneSrc = src;
    this.doneDst = dst;
    this.doneProto = proto;
    this.doneId = id;
    const h = this.doneHdr;
    h.src = src;
    h.dst = dst;
    h.proto = proto;
    h.id = id;
    h.tos = tos;
    h.ttl = ttl;
    h.hdrLen = hdrLen || 20;
    h.df = false;
    h.mf = false;
    h.fragOff = 0;
    h.payloadOff = 0;
    h.payloadLen = len;
    h.totalLen = h.hdrLen + len;
  }

  private hash(ctx: number, src: number, dst: number, proto: number, id: number): number {
    let h = Math.imul(ctx ^ src, 0x9e3779b1);
    h = Math.imul(h ^ dst, 0x85ebca6b);
    h = Math.imul(h ^ ((id << 8) | proto), 0xc2b2ae35);
    h ^= h >>> 15;
    return h & this.mask;
  }

  private find(ctx: number, src: number, dst: number, proto: number, id: number): number {
    let s = this.buckets[this.hash(ctx, src, dst, proto, id)];
    while (s >= 0) {
      if (this.kId[s] === id && this.kSrc[s] === src && this.kDst[s] === dst && this.kProto[s] === proto && this.kCtx[s] === (ctx | 0)) return s;
      s = this.next[s];
    }
    return -1;
  }

  private create(ctx: number, src: number, dst: number, proto: number, id: number, now: number): number {
    const s = this.freeHead;
    this.freeHead = this.next[s];
    this.kCtx[s] = ctx;
    this.kSrc[s] = src;
    this.kDst[s] = dst;
    this.kProto[s] = proto;
    this.kId[s] = id;
    this.deadline[s] = now + this.timeoutUs;
    this.total[s] = -1;
    this.maxEnd[s] = 0;
    this.received[s] = 0;
    this.nFrags[s] = 0;
    this.firstHdrLen[s] = 0;
    const h = this.hash(ctx, src, dst, proto, id);
    this.next[s] = this.buckets[h];
    this.buckets[h] = s;
    this.older[s] = this.newest;
    this.newer[s] = -1;
    if (this.newest >= 0) this.newer[this.newest] = s;
    else this.oldest = s;
    this.newest = s;
    this.active++;
    return s;
  }

  private kill(s: number): void {
    // Unlink from the hash chain.
    const h = this.hash(this.kCtx[s], this.kSrc[s], this.kDst[s], this.kProto[s], this.kId[s]);
    let p = this.buckets[h];
    if (p === s) {
      this.buckets[h] = this.next[s];
    } else {
      while (p >= 0 && this.next[p] !== s) p = this.next[p];
      if (p >= 0) this.next[p] = this.next[s];
    }
    // Unlink from the age list.
    const o = this.older[s], n = this.newer[s];
    if (o >= 0) this.newer[o] = n;
    else this.oldest = n;
    if (n >= 0) this.older[n] = o;
    else this.newest = o;
    this.older[s] = this.newer[s] = -1;
    this.held -= this.received[s];
    this.received[s] = 0;
    this.nFrags[s] = 0;
    this.active--;
    this.next[s] = this.freeHead;
    this.freeHead = s;
  }
}
