/**
 * IPv6 header (RFC 8200): a reusable parse result that walks the extension header chain with a
 * bounded number of headers, the header and Fragment header emitters, the pseudo-header sum
 * straight from frame bytes, and the flow label of a flow (RFC 6437). Sans-IO, no allocation on
 * the parse path.
 */
import { Drop } from './drop';
import { Ip6 } from './ip/addr';

export const IPV6_HLEN = 40;
export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;
/** Fragment header length (RFC 8200 4.5). */
export const IPV6_FRAG_HLEN = 8;
/** Extension headers walked at most per packet; one more is a counted drop (Ipv6ExtChainTooLong). */
export const IPV6_MAX_EXT_HEADERS = 8;

/** Option types we recognize (RFC 8200 4.2; RFC 2711). */
export const IP6OPT_PAD1 = 0;
export const IP6OPT_PADN = 1;
export const IP6OPT_ROUTER_ALERT = 5;

/** Parameter Problem codes (RFC 4443 3.4; RFC 7112 for code 3). */
export const PP_ERRONEOUS_HEADER = 0;
export const PP_UNRECOGNIZED_NEXT_HEADER = 1;
export const PP_UNRECOGNIZED_OPTION = 2;
export const PP_INCOMPLETE_CHAIN = 3;

function rd16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/** Whether the 16 bytes at `off` are `::`. */
export function isUnspecifiedAt(b: Uint8Array, off: number): boolean {
  return (rd32(b, off) | rd32(b, off + 4) | rd32(b, off + 8) | rd32(b, off + 12)) === 0;
}

/**
 * Whether the address at `off` may not be the source of a packet from the wire (the bytes form
 * of `isBadSource6`): multicast (RFC 4291 2.7), loopback ::1 (RFC 4291 2.5.3) or IPv4-mapped
 * (RFC 4291 2.5.5.2). `::` is left to the caller (valid for DAD and MLD only).
 */
export function isBadSource6At(b: Uint8Array, off: number): boolean {
  if (b[off] === 0xff) return true;
  const w0 = rd32(b, off), w1 = rd32(b, off + 4), w2 = rd32(b, off + 8);
  if (w0 === 0 && w1 === 0 && w2 === 0xffff) return true;
  return w0 === 0 && w1 === 0 && w2 === 0 && rd32(b, off + 12) === 1;
}

/** Whether `nh` is an extension header this module walks (Hop-by-Hop, Routing, Fragment, Destination Options). */
export function isExtHeader(nh: number): boolean {
  return nh === IPPROTO_HOPOPTS || nh === IPPROTO_ROUTING || nh === IPPROTO_FRAGMENT || nh === IPPROTO_DSTOPTS;
}

/**
 * A parsed IPv6 header and its extension header chain. All offsets are absolute in the buffer
 * given to `parse`. Reused across packets: `parse` resets every field.
 */
export class Ipv6Header {
  /** Absolute offset of the IPv6 header. */
  hdrOff = 0;
  /** Traffic class (8 bits). */
  tclass = 0;
  /** Flow label (20 bits). */
  flowLabel = 0;
  /** Payload length field (bytes after the 40-byte header; the frame may be longer: link padding is trimmed). */
  payloadLen = 0;
  hopLimit = 0;
  /** Absolute offsets of the source and destination addresses (16 bytes each). */
  srcOff = 0;
  dstOff = 0;
  /**
   * Upper-layer protocol after the chain (e.g. 6, 17, 58, 59), or for a fragment (`isFragment`)
   * the Next Header of the Fragment header. -1 when the walk stopped on an error.
   */
  nextHeader = -1;
  /** Absolute offset of the field that named `nextHeader` (Param Problem code 1 points there). */
  nhFieldOff = 0;
  /** Absolute offset and length of the upper-layer data (for a fragment: the fragment's data). */
  l4Off = 0;
  l4Len = 0;
  /** Extension headers walked. */
  extCount = 0;
  /** Absolute offset of the Hop-by-Hop header's option carrying Router Alert (RFC 2711), -1 if none. */
  routerAlertOff = -1;
  /** A Fragment header with offset > 0 or M = 1: the packet goes to the reassembler. */
  isFragment = false;
  /** An atomic fragment (Fragment header with offset 0 and M = 0): processed as non-fragmented (RFC 6946). */
  atomic = false;
  /** Fragment offset in bytes. */
  fragOffset = 0;
  /** M flag: more fragments follow. */
  more = false;
  /** Identification of the Fragment header (32 bits). */
  fragId = 0;
  /** Absolute offset of the Fragment header, -1 without one. */
  fragHdrOff = -1;
  /** Bytes of the IPv6 header and extension headers before the Fragment header (the unfragmentable part). */
  unfragLen = 0;
  /** Absolute offset of the Next Header field that names the Fragment header (patched on reassembly). */
  fragNhFieldOff = 0;
  /**
   * When the packet must be answered with a Parameter Problem (RFC 4443 3.4): its code (0, 1, 2,
   * or 3 for an incomplete chain in a first fragment, RFC 8200 4.5), else -1.
   */
  ppCode = -1;
  /** Pointer of that Parameter Problem: offset from the start of the IPv6 header. */
  ppPointer = 0;
  /**
   * Action bits (RFC 8200 4.2) of the unrecognized option that made `parse` drop the packet
   * (1: discard; 2: discard + Param Problem; 3: discard + Param Problem unless the destination is
   * multicast, then `ppCode` stays -1), -1 otherwise.
   */
  optAction = -1;
  /** Where the first fragment's chain ends (skipChain's upper layer; reused). */
  private readonly chainEnd = { nh: 0 };

  /** Bytes of the whole packet (header + payload, link padding excluded). */
  get totalLen(): number {
    return IPV6_HLEN + this.payloadLen;
  }

  /** Whether the destination address is multicast (ff00::/8). */
  dstMulticast(b: Uint8Array): boolean {
    return b[this.dstOff] === 0xff;
  }

  /**
   * For a parsed packet whose `nextHeader` no one handles: sets the Parameter Problem code 1
   * pointing at the field that named it (RFC 8200 4, RFC 4443 3.4) and returns
   * Ipv6UnknownNextHeader, the drop to count.
   */
  unknownNextHeader(): Drop {
    this.ppCode = PP_UNRECOGNIZED_NEXT_HEADER;
    this.ppPointer = this.nhFieldOff - this.hdrOff;
    return Drop.Ipv6UnknownNextHeader;
  }

  /**
   * Parses the packet at `off`, `len` = bytes available (link padding beyond the payload length
   * is ignored). Checks the version and payload length, then walks the extension headers:
   * Hop-by-Hop (only first), Destination Options (options processed, RFC 8200 4.2), Routing (RFC
   * 5095 / RFC 8200 4.4), Fragment (RFC 8200 4.5; an atomic fragment is walked through, RFC
   * 6946; a real fragment ends the walk). Anything else ends the walk as the upper layer.
   * Returns None, Ipv6Truncated, Ipv6BadVersion, Ipv6ExtTruncated, Ipv6ExtChainTooLong,
   * Ipv6HbhNotFirst, Ipv6BadOption, Ipv6UnknownOption, Ipv6RoutingType0, Ipv6RoutingUnknown. On
   * a drop that RFC 8200 answers with a Parameter Problem, `ppCode`/`ppPointer` are set.
   */
  parse(b: Uint8Array, off: number, len: number): Drop {
    this.hdrOff = off;
    this.nextHeader = -1;
    this.nhFieldOff = off + 6;
    this.l4Off = off + IPV6_HLEN;
    this.l4Len = 0;
    this.extCount = 0;
    this.routerAlertOff = -1;
    this.isFragment = false;
    this.atomic = false;
    this.fragOffset = 0;
    this.more = false;
    this.fragId = 0;
    this.fragHdrOff = -1;
    this.unfragLen = 0;
    this.fragNhFieldOff = 0;
    this.ppCode = -1;
    this.ppPointer = 0;
    this.optAction = -1;
    this.srcOff = off + 8;
    this.dstOff = off + 24;
    if (len < IPV6_HLEN) return Drop.Ipv6Truncated;
    const b0 = b[off], b1 = b[off + 1];
    if (b0 >>> 4 !== 6) return Drop.Ipv6BadVersion;
    this.tclass = ((b0 & 0x0f) << 4) | (b1 >>> 4);
    this.flowLabel = ((b1 & 0x0f) << 16) | (b[off + 2] << 8) | b[off + 3];
    const plen = rd16(b, off + 4);
    this.payloadLen = plen;
    this.hopLimit = b[off + 7];
    // RFC 8200 3: the payload length counts every byte after the header; a frame shorter than
    // that is truncated, a longer one carries link padding.
    if (IPV6_HLEN + plen > len) return Drop.Ipv6Truncated;
    const end = off + IPV6_HLEN + plen;
    let nh = b[off + 6];
    let nhField = off + 6;
    let p = off + IPV6_HLEN;
    for (;;) {
      if (!isExtHeader(nh)) break;
      if (this.extCount >= IPV6_MAX_EXT_HEADERS) return Drop.Ipv6ExtChainTooLong;
      if (nh === IPPROTO_FRAGMENT) {
        if (p + IPV6_FRAG_HLEN > end) return Drop.Ipv6ExtTruncated;
        const fo = rd16(b, p + 2);
        const offset = fo & 0xfff8;
        const m = (fo & 1) !== 0;
        this.extCount++;
        this.fragHdrOff = p;
        this.fragNhFieldOff = nhField;
        this.unfragLen = p - off;
        this.fragOffset = offset;
        this.more = m;
        this.fragId = rd32(b, p + 4);
        nhField = p;
        nh = b[p];
        p += IPV6_FRAG_HLEN;
        if (offset === 0 && !m) {
          // RFC 6946 4: an atomic fragment is processed as a non-fragmented packet, apart from
          // any reassembly in progress with the same identification.
          this.atomic = true;
          continue;
        }
        this.isFragment = true;
        this.atomic = false;
        if (offset === 0) {
          // RFC 8200 4.5 (RFC 7112): the first fragment holds the whole header chain.
          // That includes the upper-layer header itself (as Linux's ipv6frag_thdr_truncated).
          const q = skipChain(b, p, end, nh, IPV6_MAX_EXT_HEADERS - this.extCount, this.chainEnd);
          if (q < 0 || q + upperHeaderMin(this.chainEnd.nh) > end) {
            this.ppCode = PP_INCOMPLETE_CHAIN;
            this.ppPointer = 0;
            return Drop.Ipv6ExtTruncated;
          }
        }
        break;
      }
      if (p + 8 > end) return Drop.Ipv6ExtTruncated;
      const hlen = (b[p + 1] + 1) << 3;
      if (p + hlen > end) return Drop.Ipv6ExtTruncated;
      if (nh === IPPROTO_HOPOPTS) {
        // RFC 8200 4.3: only right after the IPv6 header; elsewhere its Next Header value is
        // unrecognized (Parameter Problem code 1 pointing at that field, RFC 8200 4.1).
        if (this.extCount > 0) {
          this.ppCode = PP_UNRECOGNIZED_NEXT_HEADER;
          this.ppPointer = nhField - off;
          return Drop.Ipv6HbhNotFirst;
        }
        const d = this.options(b, off, p, hlen, true);
        if (d !== Drop.None) return d;
      } else if (nh === IPPROTO_DSTOPTS) {
        const d = this.options(b, off, p, hlen, false);
        if (d !== Drop.None) return d;
      } else {
        // Routing (RFC 8200 4.4). We implement no routing type (we are a host, and RFC 5095
        // deprecates type 0), so every type is handled as unrecognized: with Segments Left 0 the
        // header is ignored; otherwise Parameter Problem code 0 pointing at the Routing Type.
        const type = b[p + 2];
        const segLeft = b[p + 3];
        if (segLeft !== 0) {
          this.ppCode = PP_ERRONEOUS_HEADER;
          this.ppPointer = p + 2 - off;
          return type === 0 ? Drop.Ipv6RoutingType0 : Drop.Ipv6RoutingUnknown;
        }
      }
      this.extCount++;
      nhField = p;
      nh = b[p];
      p += hlen;
    }
    this.nextHeader = nh;
    this.nhFieldOff = nhField;
    this.l4Off = p;
    this.l4Len = end - p;
    return Drop.None;
  }

  /** Walks the option TLVs of a Hop-by-Hop or Destination Options header at `p` (`hlen` bytes). */
  private options(b: Uint8Array, off: number, p: number, hlen: number, hbh: boolean): Drop {
    const end = p + hlen;
    let q = p + 2;
    while (q < end) {
      const t = b[q];
      if (t === IP6OPT_PAD1) {
        q++;
        continue;
      }
      if (q + 2 > end) return Drop.Ipv6BadOption;
      const olen = b[q + 1];
      if (q + 2 + olen > end) return Drop.Ipv6BadOption;
      if (t === IP6OPT_PADN) {
        // nothing
      } else if (hbh && t === IP6OPT_ROUTER_ALERT && olen === 2) {
        this.routerAlertOff = q;
      } else {
        // RFC 8200 4.2: the two high-order bits of an unrecognized option's type say what to do.
        const action = t >>> 6;
        if (action !== 0) {
          this.optAction = action;
          if (action === 2 || (action === 3 && b[this.dstOff] !== 0xff)) {
            this.ppCode = PP_UNRECOGNIZED_OPTION;
            this.ppPointer = q - off;
          }
          return Drop.Ipv6UnknownOption;
        }
      }
      q += 2 + olen;
    }
    return Drop.None;
  }
}

/** Bytes of the upper-layer header a first fragment must hold (RFC 7112): TCP 20, UDP and ICMPv6 8, none after No Next Header, else 1. */
function upperHeaderMin(nh: number): number {
  return nh === 6 ? 20 : nh === 17 || nh === IPPROTO_ICMPV6 ? 8 : nh === IPPROTO_NONE || nh < 0 ? 0 : 1;
}

/**
 * Skips extension headers by their lengths only (no option processing), from `p` with next header
 * `nh`, at most `budget` headers, inside [p, end). Returns the offset of the first header that is
 * not an extension header (or of the data after a non-first Fragment header), or -1 when the chain
 * runs past `end` or over the budget. `out.nh` receives the upper-layer protocol (-1 after a
 * non-first Fragment header).
 */
export function skipChain(b: Uint8Array, p: number, end: number, nh: number, budget: number, out?: { nh: number }): number {
  for (let n = 0; isExtHeader(nh); n++) {
    if (n >= budget) return -1;
    if (nh === IPPROTO_FRAGMENT) {
      if (p + IPV6_FRAG_HLEN > end) return -1;
      const fo = rd16(b, p + 2);
      nh = b[p];
      p += IPV6_FRAG_HLEN;
      if ((fo & 0xfff8) !== 0) {
        if (out) out.nh = -1;
        return p;
      }
      continue;
    }
    if (p + 2 > end) return -1;
    const hlen = (b[p + 1] + 1) << 3;
    if (p + hlen > end) return -1;
    nh = b[p];
    p += hlen;
  }
  if (out) out.nh = nh;
  return p;
}

/**
 * Writes a 40-byte IPv6 header at `off`. `flowLabel` is 20 bits, `tclass` 8 bits. Returns 40.
 */
export function writeIpv6(
  b: Uint8Array, off: number, src: Ip6, dst: Ip6, nextHeader: number, payloadLen: number,
  hopLimit: number, flowLabel = 0, tclass = 0,
): number {
  const fl = flowLabel & 0xfffff;
  b[off] = 0x60 | ((tclass >>> 4) & 0x0f);
  b[off + 1] = ((tclass & 0x0f) << 4) | (fl >>> 16);
  b[off + 2] = fl >>> 8;
  b[off + 3] = fl;
  b[off + 4] = payloadLen >>> 8;
  b[off + 5] = payloadLen;
  b[off + 6] = nextHeader;
  b[off + 7] = hopLimit;
  wrAddr(b, off + 8, src);
  wrAddr(b, off + 24, dst);
  return IPV6_HLEN;
}

function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** Writes the 16 bytes of `a` at `off` (allocates nothing: the transmit path writes two per packet). */
function wrAddr(b: Uint8Array, off: number, a: Ip6): void {
  wr32(b, off, a.w0);
  wr32(b, off + 4, a.w1);
  wr32(b, off + 8, a.w2);
  wr32(b, off + 12, a.w3);
}

/**
 * Writes an 8-byte Fragment header (RFC 8200 4.5) at `off`: `fragOffset` in bytes (a multiple of
 * 8), `more` the M flag, `id` the 32-bit identification. Returns 8.
 */
export function writeFragHdr(b: Uint8Array, off: number, nextHeader: number, fragOffset: number, more: boolean, id: number): number {
  const fo = (fragOffset & 0xfff8) | (more ? 1 : 0);
  b[off] = nextHeader;
  b[off + 1] = 0;
  b[off + 2] = fo >>> 8;
  b[off + 3] = fo;
  b[off + 4] = id >>> 24;
  b[off + 5] = id >>> 16;
  b[off + 6] = id >>> 8;
  b[off + 7] = id;
  return IPV6_FRAG_HLEN;
}

/**
 * Running sum of the IPv6 pseudo-header (RFC 8200 8.1) with the addresses read from
 * `b[srcOff..+16)` and `b[dstOff..+16)`: no Ip6 value needed on the receive path.
 */
export function pseudoSum6At(b: Uint8Array, srcOff: number, dstOff: number, proto: number, len: number): number {
  let s = (len >>> 16) + (len & 0xffff) + proto;
  for (let i = 0; i < 16; i += 2) s += ((b[srcOff + i] << 8) | b[srcOff + i + 1]) + ((b[dstOff + i] << 8) | b[dstOff + i + 1]);
  return s;
}

/**
 * The flow label of a flow (RFC 6437 3): a 20-bit hash of the addresses, ports and protocol
 * (here the ports and addresses) keyed by a per-stack `secret`, so labels are uniformly spread and
 * not predictable without it. Never 0 (0 means "no label").
 */
export function flowLabelOf(src: Ip6, sport: number, dst: Ip6, dport: number, secret = 0): number {
  let h = Math.imul(secret ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ src.w0, 0xcc9e2d51); h = (h << 15) | (h >>> 17);
  h = Math.imul(h ^ src.w1, 0x1b873593); h = (h << 13) | (h >>> 19);
  h = Math.imul(h ^ src.w2, 0xcc9e2d51); h = (h << 15) | (h >>> 17);
  h = Math.imul(h ^ src.w3, 0x1b873593); h = (h << 13) | (h >>> 19);
  h = Math.imul(h ^ dst.w0, 0xcc9e2d51); h = (h << 15) | (h >>> 17);
  h = Math.imul(h ^ dst.w1, 0x1b873593); h = (h << 13) | (h >>> 19);
  h = Math.imul(h ^ dst.w2, 0xcc9e2d51); h = (h << 15) | (h >>> 17);
  h = Math.imul(h ^ dst.w3, 0x1b873593); h = (h << 13) | (h >>> 19);
  h = Math.imul(h ^ (((sport & 0xffff) << 16) | (dport & 0xffff)), 0x85ebca6b);
  h ^= h >>> 16;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 13;
  const fl = (h ^ (h >>> 20)) & 0xfffff;
  return fl === 0 ? 1 : fl;
}
