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
 * fragment; `expire(now)` discards the late ones (Ipv4ReassemblyTimeout), as does `push` when a
 * late fragment finds its datagram expired. For each one whose fragment zero had arrived,
 * `onTimeout` gets that fragment rebuilt (a 20-byte header, MF set, and its data) so that the
 * caller can send Time Exceeded code 1 quoting it (RFC 792, RFC 1122 3.3.2: MUST, only when
 * fragment zero was received). `now` must not go backwards.
 *
 * Memory: all bookkeeping is preallocated; each slot owns a data buffer that grows by powers
 * of two (2 KiB .. 64 KiB) and is reused, so steady-state work allocates only the view of a
 * completed datagram. The slots, fragment ranges, limits and timeouts are `FragStore`'s, shared
 * with the IPv6 reassembler; this file keeps the IPv4 key and header.
 */
import { Drop } from './drop';
import { Ipv4Header, IP_MF, writeIpv4 } from './ipv4';
import { copyBytes } from './checksum';
import { FragStore, ReassemblerBase, ReassemblyOptions } from './frag-store';

export type { ReassemblyOptions } from './frag-store';

const EMPTY = new Uint8Array(0);
const MAX_IP_LEN = 65535;
const DROPS4 = {
  invalid: Drop.Ipv4FragmentInvalid,
  overflow: Drop.Ipv4ReassemblyOverflow,
  overlap: Drop.Ipv4ReassemblyOverlap,
  duplicate: Drop.Ipv4FragmentDuplicate,
  timeout: Drop.Ipv4ReassemblyTimeout,
};

export class Ipv4Reassembler extends ReassemblerBase {

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

  // Per-slot key and first-fragment fields.
  private readonly kCtx: Int32Array;
  private readonly kSrc: Uint32Array;
  private readonly kDst: Uint32Array;
  private readonly kProto: Uint8Array;
  private readonly kId: Uint16Array;
  private readonly firstTos: Uint8Array;
  private readonly firstTtl: Uint8Array;
  private readonly firstHdrLen: Uint8Array;
  private scratch: Uint8Array = EMPTY;
  /**
   * Called for each datagram that times out after its fragment zero arrived: `first` is that
   * fragment rebuilt (IPv4 header without options, MF set, then its data; valid during the call
   * only), `ctx` its context.
   */
  onTimeout: ((first: Uint8Array, ctx: number) => void) | null = null;

  constructor(opts: ReassemblyOptions = {}) {
    super(new FragStore(opts, DROPS4, 30_000_000, false));
    const st = this.st;
    const md = st.maxDatagrams;
    this.kCtx = new Int32Array(md);
    this.kSrc = new Uint32Array(md);
    this.kDst = new Uint32Array(md);
    this.kProto = new Uint8Array(md);
    this.kId = new Uint16Array(md);
    this.firstTos = new Uint8Array(md);
    this.firstTtl = new Uint8Array(md);
    this.firstHdrLen = new Uint8Array(md);
  }

  /**
   * Adds one fragment. `hdr` was parsed from `b` (payloadOff is absolute in `b`); `ctx` is the
   * tenant/context id. Returns Drop.None when the fragment was taken (then `done` tells
   * whether it completed a datagram), else the reason it was dropped (also counted in `stats`).
   * A header that is not a fragment completes at once (`datagram` is a view into `b`).
   */
  push(ctx: number, hdr: Ipv4Header, b: Uint8Array, now: number): Drop {
    this.done = false;
    const st = this.st;
    const start = hdr.fragOff;
    const len = hdr.payloadLen;
    const end = start + len;
    if (!hdr.mf && start === 0) {
      this.complete(ctx, hdr.src, hdr.dst, hdr.proto, hdr.id, hdr.tos, hdr.ttl, hdr.hdrLen, len);
      this.datagram = b.subarray(hdr.payloadOff, hdr.payloadOff + len);
      return Drop.None;
    }
    if (len === 0 || (hdr.mf && (len & 7) !== 0) || hdr.hdrLen + end > MAX_IP_LEN) return st.count(Drop.Ipv4FragmentInvalid);

    const bucket = st.bucket(this.hash(ctx, hdr.src, hdr.dst, hdr.proto, hdr.id));
    let s = this.find(bucket, ctx, hdr.src, hdr.dst, hdr.proto, hdr.id);
    if (s >= 0 && st.deadline[s] <= now) {
      this.timeout(s);
      s = -1;
    }
    const fresh = s < 0;
    const d = st.admit(s, bucket, now, start, len, hdr.mf);
    if (d !== Drop.None) return d;
    s = st.slot;
    if (fresh) {
      this.kCtx[s] = ctx;
      this.kSrc[s] = hdr.src;
      this.kDst[s] = hdr.dst;
      this.kProto[s] = hdr.proto;
      this.kId[s] = hdr.id;
      this.firstHdrLen[s] = 0;
    }
    if (start === 0) {
      this.firstTos[s] = hdr.tos;
      this.firstTtl[s] = hdr.ttl;
      this.firstHdrLen[s] = hdr.hdrLen;
    }
    if (st.store(s, start, b, hdr.payloadOff, len, hdr.mf)) {
      const total = st.totalOf(s);
      this.complete(this.kCtx[s], this.kSrc[s], this.kDst[s], this.kProto[s], this.kId[s],
        this.firstTos[s], this.firstTtl[s], this.firstHdrLen[s], total);
      this.datagram = st.bufs[s].subarray(0, total);
      st.kill(s);
    }
    return Drop.None;
  }

  /** Discards datagrams whose deadline is ≤ now; returns how many (counted as Ipv4ReassemblyTimeout). */
  expire(now: number): number {
    const st = this.st;
    let n = 0;
    while (st.oldest >= 0 && st.deadline[st.oldest] <= now) {
      this.timeout(st.oldest);
      n++;
    }
    return n;
  }

  /** Discards slot `s` (timed out, counted); `onTimeout` hears of it when its fragment zero had come. */
  private timeout(s: number): void {
    const st = this.st;
    const cb = this.onTimeout;
    const firstEnd = cb !== null && this.firstHdrLen[s] !== 0 ? st.firstEnd(s) : -1;
    if (firstEnd <= 0) {
      st.killCount(s, Drop.Ipv4ReassemblyTimeout);
      return;
    }
    const n = 20 + firstEnd;
    if (this.scratch.length < n) this.scratch = new Uint8Array(Math.max(n, 2048));
    const out = this.scratch;
    writeIpv4(out, 0, this.kSrc[s], this.kDst[s], this.kProto[s], firstEnd, this.firstTtl[s], this.kId[s], IP_MF, this.firstTos[s]);
    copyBytes(out, 20, st.bufs[s], 0, firstEnd);
    const ctx = this.kCtx[s];
    st.killCount(s, Drop.Ipv4ReassemblyTimeout);
    cb!(out.subarray(0, n), ctx);
  }

  /** Earliest deadline (µs) of a datagram in progress, or Infinity when there is none. */
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
    return h;
  }

  private find(bucket: number, ctx: number, src: number, dst: number, proto: number, id: number): number {
    const st = this.st;
    for (let s = st.head(bucket); s >= 0; s = st.chainNext(s)) {
      if (this.kId[s] === id && this.kSrc[s] === src && this.kDst[s] === dst && this.kProto[s] === proto && this.kCtx[s] === (ctx | 0)) return s;
    }
    return -1;
  }
}
