/**
 * Bounded IPv6 reassembly (RFC 8200 4.5), sans-IO, with the same shape and limits as
 * `Ipv4Reassembler` (both keep their bookkeeping in `FragStore`).
 *
 * Datagrams are keyed by (context, source, destination, identification): the context (e.g. a
 * virtual server id) keeps tenants apart. Keys are compared straight from frame bytes: no string,
 * no address value is built.
 *
 * Rules:
 * - A fragment whose data is not a multiple of 8 bytes while M = 1 is dropped with a Parameter
 *   Problem code 0 pointing at the Payload Length; one that would make the reassembled payload
 *   longer than 65535 bytes with a Parameter Problem code 0 pointing at the Fragment Offset
 *   (RFC 8200 4.5): `ppCode`/`ppPointer` after `push`.
 * - Overlapping fragments discard the whole datagram, and the fragments of it still to come are
 *   dropped too until its deadline (RFC 5722 3). An exact duplicate only drops itself.
 * - The unfragmentable part (and Next Header) is the offset-0 fragment's (RFC 8200 4.5).
 * - A datagram lives `timeoutUs` (default 60 s, RFC 8200 4.5) from its first fragment. When it
 *   expires and its offset-0 fragment had arrived, `onTimeout` gets that fragment rebuilt (IPv6
 *   header, extension headers, Fragment header, data) so that the caller can send Time Exceeded
 *   code 1 quoting it (RFC 8200 4.5, RFC 4443 3.3).
 * - Atomic fragments (offset 0, M = 0) do not come here: `Ipv6Header.parse` walks through them
 *   (RFC 6946). A packet that is not a fragment completes at once if pushed.
 */
import { Drop } from './drop';
import { copyBytes } from './checksum';
import { FragStore, ReassemblerBase, ReassemblyOptions } from './frag-store';
import { Ipv6Header, IPV6_HLEN, IPV6_FRAG_HLEN } from './ipv6';

const EMPTY = new Uint8Array(0);
const MAX_PAYLOAD = 65535;
/**
 * Largest unfragmentable part (IPv6 header and the extension headers before the Fragment header,
 * plus the Fragment header) kept per datagram; also the headroom before the data in each slot
 * buffer, where the completed packet's headers are put.
 */
export const MAX_UNFRAG_LEN = 2048;
const DROPS6 = {
  invalid: Drop.Ipv6FragmentInvalid,
  overflow: Drop.Ipv6ReassemblyOverflow,
  overlap: Drop.Ipv6FragOverlap,
  duplicate: Drop.Ipv6FragmentDuplicate,
  timeout: Drop.Ipv6ReassemblyTimeout,
};

export interface Reassembly6Options extends ReassemblyOptions {
  /**
   * Called for each datagram that times out after its offset-0 fragment arrived (in `expire`, or
   * in `push` when a late fragment finds its datagram expired): `first` is that fragment as
   * received (valid during the call only), `ctx` its context.
   */
  onTimeout?: (first: Uint8Array, ctx: number) => void;
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export class Ipv6Reassembler extends ReassemblerBase {

  /** Set by `push` when the fragment completed a datagram. */
  done = false;
  /**
   * The completed packet as if it had never been fragmented (valid until the next call): the
   * offset-0 fragment's IPv6 header and extension headers, without the Fragment header (the Next
   * Header field that named it now names what followed it), payload length fixed, then the
   * data. `Ipv6Header.parse(packet, 0, packet.length)` walks what follows (e.g. Destination
   * Options) to the upper layer; source and destination are at `packet[8..24)` and `[24..40)`.
   */
  packet: Uint8Array = EMPTY;
  /** The reassembled fragmentable part (`packet` from `unfragLen` on). */
  datagram: Uint8Array = EMPTY;
  /** Next Header of the offset-0 fragment's Fragment header: the type of `datagram`'s first header. */
  nextHeader = 0;
  /** Length of the unfragmentable part at the start of `packet`. */
  unfragLen = 0;
  /** Context and identification of the completed datagram. */
  doneCtx = 0;
  doneId = 0;
  /** After a `push` refused as malformed: the Parameter Problem to send (code, or -1) and its pointer from the IPv6 header. */
  ppCode = -1;
  ppPointer = 0;

  private readonly onTimeout: ((first: Uint8Array, ctx: number) => void) | undefined;
  private readonly kCtx: Int32Array;
  private readonly kId: Uint32Array;
  private readonly kAddr: Uint32Array; // [slot * 8 + i]: source words 0..3, destination words 4..7
  /** Per slot: the offset-0 fragment's headers up to and including its Fragment header. */
  private readonly firstHdr: Uint8Array[];
  private readonly firstLen: Int32Array; // bytes in firstHdr, 0 until the offset-0 fragment
  private readonly firstNhField: Int32Array; // offset in firstHdr of the field naming the Fragment header
  private scratch: Uint8Array = EMPTY;

  constructor(opts: Reassembly6Options = {}) {
    super(new FragStore(opts, DROPS6, 60_000_000, true, MAX_UNFRAG_LEN));
    const st = this.st;
    this.onTimeout = opts.onTimeout;
    const md = st.maxDatagrams;
    this.kCtx = new Int32Array(md);
    this.kId = new Uint32Array(md);
    this.kAddr = new Uint32Array(md * 8);
    this.firstHdr = new Array<Uint8Array>(md).fill(EMPTY);
    this.firstLen = new Int32Array(md);
    this.firstNhField = new Int32Array(md);
  }

  /**
   * Adds one fragment: `hdr` was parsed from `b` by `Ipv6Header.parse` (offsets absolute in `b`),
   * `ctx` is the tenant/context id. Returns None when the fragment was taken (then `done` tells
   * whether it completed a datagram), else the reason it was dropped (counted in `stats`; see
   * `ppCode`). A packet that is not a fragment completes at once (`packet`/`datagram` view `b`).
   */
  push(ctx: number, hdr: Ipv6Header, b: Uint8Array, now: number): Drop {
    this.done = false;
    this.ppCode = -1;
    this.ppPointer = 0;
    const st = this.st;
    if (!hdr.isFragment) {
      this.done = true;
      this.doneCtx = ctx;
      this.doneId = hdr.fragId;
      this.nextHeader = hdr.nextHeader;
      this.unfragLen = hdr.l4Off - hdr.hdrOff;
      this.packet = b.subarray(hdr.hdrOff, hdr.hdrOff + IPV6_HLEN + hdr.payloadLen);
      this.datagram = b.subarray(hdr.l4Off, hdr.l4Off + hdr.l4Len);
      return Drop.None;
    }
    const start = hdr.fragOffset;
    const len = hdr.l4Len;
    // RFC 8200 4.5: M = 1 and a length not a multiple of 8 → Parameter Problem code 0 at the
    // Payload Length field.
    if (hdr.more && (len & 7) !== 0) {
      this.ppCode = 0;
      this.ppPointer = 4;
      return st.count(Drop.Ipv6FragmentInvalid);
    }
    // RFC 8200 4.5: a reassembled payload beyond 65535 bytes → Parameter Problem code 0 at the
    // Fragment Offset field.
    if (hdr.unfragLen - IPV6_HLEN + start + len > MAX_PAYLOAD) {
      this.ppCode = 0;
      this.ppPointer = hdr.fragHdrOff + 2 - hdr.hdrOff;
      return st.count(Drop.Ipv6FragmentInvalid);
    }
    if (len === 0) return st.count(Drop.Ipv6FragmentInvalid);
    if (start === 0 && hdr.unfragLen + IPV6_FRAG_HLEN > MAX_UNFRAG_LEN) return st.count(Drop.Ipv6ReassemblyOverflow);

    const id = hdr.fragId;
    const so = hdr.srcOff, dO = hdr.dstOff;
    const bucket = st.bucket(this.hash(ctx, b, so, dO, id));
    let s = this.find(bucket, ctx, b, so, dO, id);
    if (s >= 0 && st.deadline[s] <= now) {
      this.timeout(s, this.onTimeout);
      s = -1;
    }
    const fresh = s < 0;
    const d = st.admit(s, bucket, now, start, len, hdr.more);
    if (d !== Drop.None) return d;
    s = st.slot;
    if (fresh) {
      this.kCtx[s] = ctx;
      this.kId[s] = id;
      const k = s * 8;
      for (let i = 0; i < 4; i++) {
        this.kAddr[k + i] = rd32(b, so + 4 * i);
        this.kAddr[k + 4 + i] = rd32(b, dO + 4 * i);
      }
      this.firstLen[s] = 0;
    }
    if (start === 0) {
      // Keep the headers of the offset-0 fragment up to and including its Fragment header.
      const n = hdr.unfragLen + IPV6_FRAG_HLEN;
      let fh = this.firstHdr[s];
      if (fh.length < n) this.firstHdr[s] = fh = new Uint8Array(n <= 256 ? 256 : MAX_UNFRAG_LEN);
      copyBytes(fh, 0, b, hdr.hdrOff, n);
      this.firstLen[s] = n;
      this.firstNhField[s] = hdr.fragNhFieldOff - hdr.hdrOff;
    }
    if (st.store(s, start, b, hdr.l4Off, len, hdr.more)) {
      // Full coverage includes offset 0, so its headers are here. The payload length is checked
      // again with the offset-0 fragment's unfragmentable part, which may be longer than the one
      // of the fragment that fixed the end (RFC 8200 4.5: at most 65535 bytes).
      if (this.firstLen[s] === 0 || this.firstLen[s] - IPV6_FRAG_HLEN - IPV6_HLEN + st.totalOf(s) > MAX_PAYLOAD) {
        return st.killCount(s, Drop.Ipv6FragmentInvalid);
      }
      this.completeSlot(s);
      st.kill(s);
    }
    return Drop.None;
  }

  /**
   * Discards datagrams whose deadline is ≤ now (counted as Ipv6ReassemblyTimeout) and returns how
   * many. For each one whose offset-0 fragment had arrived (and that no overlap discarded),
   * `onTimeout` (this argument, else the constructor's) gets that fragment as received.
   */
  expire(now: number, onTimeout?: (first: Uint8Array, ctx: number) => void): number {
    const st = this.st;
    const cb = onTimeout ?? this.onTimeout;
    let n = 0;
    while (st.oldest >= 0 && st.deadline[st.oldest] <= now) {
      this.timeout(st.oldest, cb);
      n++;
    }
    return n;
  }

  /** Earliest deadline (µs) of a datagram in progress, or Infinity when there is none. */
  private timeout(s: number, cb: ((first: Uint8Array, ctx: number) => void) | undefined): void {
    const st = this.st;
    const fl = this.firstLen[s];
    const firstEnd = fl > 0 && !st.poisoned[s] ? st.firstEnd(s) : -1;
    if (cb && firstEnd > 0) {
      // Rebuild the offset-0 fragment: its headers, then its data.
      const n = fl + firstEnd;
      if (this.scratch.length < n) this.scratch = new Uint8Array(Math.max(n, 2048));
      const out = this.scratch;
      copyBytes(out, 0, this.firstHdr[s], 0, fl);
      copyBytes(out, fl, st.bufs[s], MAX_UNFRAG_LEN, firstEnd);
      const ctx = this.kCtx[s];
      st.killCount(s, Drop.Ipv6ReassemblyTimeout);
      cb(out.subarray(0, n), ctx);
      return;
    }
    st.killCount(s, Drop.Ipv6ReassemblyTimeout);
  }

  /** Puts the offset-0 fragment's headers (without its Fragment header) right before the data, in the slot's headroom: no copy of the data. */
  private completeSlot(s: number): void {
    const st = this.st;
    const total = st.totalOf(s);
    const fl = this.firstLen[s];
    const unfrag = fl - IPV6_FRAG_HLEN;
    const buf = st.bufs[s];
    const at = MAX_UNFRAG_LEN - unfrag;
    const fh = this.firstHdr[s];
    copyBytes(buf, at, fh, 0, unfrag);
    // The field that named the Fragment header now names what followed it (RFC 8200 4.5).
    buf[at + this.firstNhField[s]] = fh[unfrag];
    const plen = unfrag + total - IPV6_HLEN;
    buf[at + 4] = plen >>> 8;
    buf[at + 5] = plen;
    this.done = true;
    this.doneCtx = this.kCtx[s];
    this.doneId = this.kId[s];
    this.nextHeader = fh[unfrag];
    this.unfragLen = unfrag;
    this.packet = buf.subarray(at, MAX_UNFRAG_LEN + total);
    this.datagram = buf.subarray(MAX_UNFRAG_LEN, MAX_UNFRAG_LEN + total);
  }

  private hash(ctx: number, b: Uint8Array, so: number, dO: number, id: number): number {
    let h = Math.imul(ctx ^ id, 0x9e3779b1);
    h = Math.imul(h ^ rd32(b, so + 12), 0x85ebca6b);
    h = Math.imul(h ^ rd32(b, so + 8), 0xcc9e2d51);
    h = Math.imul(h ^ rd32(b, dO + 12), 0xc2b2ae35);
    h = Math.imul(h ^ rd32(b, so), 0x1b873593);
    h ^= h >>> 15;
    return h;
  }

  private find(bucket: number, ctx: number, b: Uint8Array, so: number, dO: number, id: number): number {
    const st = this.st;
    const k = this.kAddr;
    for (let s = st.head(bucket); s >= 0; s = st.chainNext(s)) {
      if (this.kId[s] !== id || this.kCtx[s] !== (ctx | 0)) continue;
      const o = s * 8;
      if (k[o + 3] === rd32(b, so + 12) && k[o + 7] === rd32(b, dO + 12) && k[o] === rd32(b, so) && k[o + 1] === rd32(b, so + 4)
        && k[o + 2] === rd32(b, so + 8) && k[o + 4] === rd32(b, dO) && k[o + 5] === rd32(b, dO + 4) && k[o + 6] === rd32(b, dO + 8)) return s;
    }
    return -1;
  }
}
