/**
 * ICMPv6 (RFC 4443): a reusable parse result (checksum verified with the pseudo-header read from
 * the packet's own address bytes; the quoted packet of an error walked to its upper layer), the
 * error and echo reply emitters, and the rules about when an error must not be sent (2.4(e)).
 */
import { Drop } from './drop';
import { sum16, fold, copyBytes, checksumAdjust } from './checksum';
import { Ip6, pseudoSum6 } from './ip/addr';
import { IPV6_HLEN, IPPROTO_ICMPV6, Ipv6Header, pseudoSum6At, skipChain, isUnspecifiedAt, IPV6_MAX_EXT_HEADERS } from './ipv6';

export const ICMP6_HLEN = 8;
// Error messages (type < 128).
export const ICMP6_DST_UNREACH = 1;
export const ICMP6_PACKET_TOO_BIG = 2;
export const ICMP6_TIME_EXCEEDED = 3;
export const ICMP6_PARAM_PROB = 4;
// Informational messages.
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;
export const MLD_LISTENER_QUERY = 130;
export const MLD_LISTENER_REPORT = 131;
export const MLD_LISTENER_DONE = 132;
export const ND_ROUTER_SOLICIT = 133;
export const ND_ROUTER_ADVERT = 134;
export const ND_NEIGHBOR_SOLICIT = 135;
export const ND_NEIGHBOR_ADVERT = 136;
export const ND_REDIRECT = 137;
export const MLDV2_LISTENER_REPORT = 143;
// Destination Unreachable codes (RFC 4443 3.1).
export const ICMP6_DST_UNREACH_NOROUTE = 0;
export const ICMP6_DST_UNREACH_ADMIN = 1;
export const ICMP6_DST_UNREACH_BEYONDSCOPE = 2;
export const ICMP6_DST_UNREACH_ADDR = 3;
export const ICMP6_DST_UNREACH_NOPORT = 4;
export const ICMP6_DST_UNREACH_POLICY = 5;
export const ICMP6_DST_UNREACH_REJECT = 6;
// Time Exceeded codes (RFC 4443 3.3).
export const ICMP6_TIME_EXCEED_TRANSIT = 0;
export const ICMP6_TIME_EXCEED_REASSEMBLY = 1;
// Parameter Problem codes (RFC 4443 3.4; RFC 7112 for 3): also in ipv6.ts as PP_*.
export const ICMP6_PARAMPROB_HEADER = 0;
export const ICMP6_PARAMPROB_NEXTHEADER = 1;
export const ICMP6_PARAMPROB_OPTION = 2;
export const ICMP6_PARAMPROB_FIRSTFRAG = 3;
/** Largest ICMPv6 error packet, IPv6 header included (RFC 4443 2.4(c): the minimum MTU). */
export const ICMP6_ERROR_MAX_PACKET = 1280;
/** Largest quote of an error: 1280 − IPv6 header − ICMPv6 header. */
export const ICMP6_ERROR_MAX_QUOTE = ICMP6_ERROR_MAX_PACKET - IPV6_HLEN - ICMP6_HLEN;

function rd16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/** Whether an ICMPv6 type is an error message (RFC 4443 2.1: high-order bit clear). */
export function isIcmp6Error(type: number): boolean {
  return type < 128;
}

/** A parsed ICMPv6 message. Offsets are absolute. */
export class Icmp6Packet {
  type = 0;
  code = 0;
  /** Echo identifier and sequence number (echo request/reply). */
  id = 0;
  seq = 0;
  /** MTU of a Packet Too Big (RFC 4443 3.2). */
  mtu = 0;
  /** Pointer of a Parameter Problem (RFC 4443 3.4). */
  pointer = 0;
  /** Absolute offset and length of what follows the 8-byte header (echo data, the quote of an error, ND body after the first 8 bytes). */
  dataOff = 0;
  dataLen = 0;
  /**
   * Errors: the quoted packet (from its IPv6 header on), its address offsets, and the upper layer
   * after its extension headers (walked by length, bounded). `innerNextHeader` is -1 and
   * `innerL4Off` -1 when the quote ends inside the chain; for a quoted non-first fragment
   * `innerNextHeader` is 44 (its upper-layer header is not in the quote). `innerL4Len` may be
   * short: errors quote partial packets.
   */
  innerOff = -1;
  innerLen = 0;
  innerSrcOff = -1;
  innerDstOff = -1;
  innerNextHeader = -1;
  innerL4Off = -1;
  innerL4Len = 0;

  /**
   * Parses `len` bytes at `off` (the upper-layer data of an IPv6 packet whose source and
   * destination addresses are at `srcOff`/`dstOff` in the same buffer). Verifies the checksum
   * (RFC 4443 2.3) over the pseudo-header and the whole message. Errors (type < 128, known or
   * not: RFC 4443 2.4(a) hands unknown ones to the upper layer) must quote at least an IPv6
   * header, else Icmpv6Truncated. Unknown informational types → Icmpv6UnknownType (RFC 4443
   * 2.4(b)). Returns None, Icmpv6Truncated, Icmpv6BadChecksum or Icmpv6UnknownType.
   */
  parse(b: Uint8Array, off: number, len: number, srcOff: number, dstOff: number): Drop {
    this.id = 0;
    this.seq = 0;
    this.mtu = 0;
    this.pointer = 0;
    this.dataOff = off + ICMP6_HLEN;
    this.dataLen = 0;
    this.innerOff = -1;
    this.innerLen = 0;
    this.innerSrcOff = -1;
    this.innerDstOff = -1;
    this.innerNextHeader = -1;
    this.innerL4Off = -1;
    this.innerL4Len = 0;
    this.type = 0;
    this.code = 0;
    if (len < ICMP6_HLEN) return Drop.Icmpv6Truncated;
    if (fold(sum16(b, off, len, pseudoSum6At(b, srcOff, dstOff, IPPROTO_ICMPV6, len))) !== 0) return Drop.Icmpv6BadChecksum;
    const type = b[off];
    this.type = type;
    this.code = b[off + 1];
    this.dataLen = len - ICMP6_HLEN;
    if (type < 128) {
      if (type === ICMP6_PACKET_TOO_BIG) this.mtu = rd32(b, off + 4);
      else if (type === ICMP6_PARAM_PROB) this.pointer = rd32(b, off + 4);
      return this.parseQuote(b, off + ICMP6_HLEN, len - ICMP6_HLEN);
    }
    switch (type) {
      case ICMP6_ECHO_REQUEST:
      case ICMP6_ECHO_REPLY:
        this.id = rd16(b, off + 4);
        this.seq = rd16(b, off + 6);
        return Drop.None;
      case MLD_LISTENER_QUERY:
      case MLD_LISTENER_REPORT:
      case MLD_LISTENER_DONE:
      case ND_ROUTER_SOLICIT:
      case ND_ROUTER_ADVERT:
      case ND_NEIGHBOR_SOLICIT:
      case ND_NEIGHBOR_ADVERT:
      case ND_REDIRECT:
      case MLDV2_LISTENER_REPORT:
        return Drop.None;
      default:
        return Drop.Icmpv6UnknownType;
    }
  }

  private parseQuote(b: Uint8Array, q: number, qlen: number): Drop {
    if (qlen < IPV6_HLEN || b[q] >>> 4 !== 6) return Drop.Icmpv6Truncated;
    this.innerOff = q;
    this.innerLen = qlen;
    this.innerSrcOff = q + 8;
    this.innerDstOff = q + 24;
    // The quoted packet's own length bounds its data when the quote holds all of it.
    const claimed = IPV6_HLEN + rd16(b, q + 4);
    const end = q + (claimed < qlen ? claimed : qlen);
    const nh0 = b[q + 6];
    const p = skipChain(b, q + IPV6_HLEN, end, nh0, IPV6_MAX_EXT_HEADERS);
    if (p < 0) return Drop.None;
    // Find the Next Header that named what lies at p: walk again, remembering the last value.
    let nh = nh0;
    let r = q + IPV6_HLEN;
    while (r < p) {
      if (nh === 44) {
        const nonFirst = (rd16(b, r + 2) & 0xfff8) !== 0;
        nh = b[r];
        r += 8;
        if (nonFirst) {
          nh = 44;
          break;
        }
        continue;
      }
      const hlen = (b[r + 1] + 1) << 3;
      nh = b[r];
      r += hlen;
    }
    this.innerNextHeader = nh;
    this.innerL4Off = p;
    this.innerL4Len = end - p;
    return Drop.None;
  }
}

/** ICMPv6 checksum of the message `b[off..off+len)` (its checksum field is taken as zero) for these addresses. */
export function icmp6Checksum(b: Uint8Array, off: number, len: number, src: Ip6, dst: Ip6): number {
  const c0 = b[off + 2], c1 = b[off + 3];
  b[off + 2] = 0;
  b[off + 3] = 0;
  const c = fold(sum16(b, off, len, pseudoSum6(src, dst, IPPROTO_ICMPV6, len)));
  b[off + 2] = c0;
  b[off + 3] = c1;
  return c;
}

/** Computes and stores the checksum of the ICMPv6 message `b[off..off+len)`. */
export function setIcmp6Checksum(b: Uint8Array, off: number, len: number, src: Ip6, dst: Ip6): void {
  b[off + 2] = 0;
  b[off + 3] = 0;
  const c = fold(sum16(b, off, len, pseudoSum6(src, dst, IPPROTO_ICMPV6, len)));
  b[off + 2] = c >>> 8;
  b[off + 3] = c;
}

/**
 * Writes an ICMPv6 error message at `off` (no IPv6 header: the caller writes it in front) quoting
 * `orig[origOff .. origOff+origLen)` from its IPv6 header on, as much as fits for the whole error
 * packet to stay ≤ 1280 bytes (RFC 4443 2.4(c)). `param` is the MTU of a Packet Too Big or the
 * pointer of a Parameter Problem, ignored (sent as 0) otherwise. The checksum covers the
 * pseudo-header of `src` → `dst`. `orig` may overlap the output (moved safely). Returns 8 + quote.
 */
export function writeIcmp6Error(
  b: Uint8Array, off: number, type: number, code: number, param: number,
  orig: Uint8Array, origOff: number, origLen: number, src: Ip6, dst: Ip6,
): number {
  const q = origLen < 0 ? 0 : origLen > ICMP6_ERROR_MAX_QUOTE ? ICMP6_ERROR_MAX_QUOTE : origLen;
  copyBytes(b, off + ICMP6_HLEN, orig, origOff, q);
  const p = type === ICMP6_PACKET_TOO_BIG || type === ICMP6_PARAM_PROB ? param >>> 0 : 0;
  b[off] = type;
  b[off + 1] = code;
  b[off + 4] = p >>> 24;
  b[off + 5] = p >>> 16;
  b[off + 6] = p >>> 8;
  b[off + 7] = p;
  const n = ICMP6_HLEN + q;
  setIcmp6Checksum(b, off, n, src, dst);
  return n;
}

/**
 * Writes an echo reply at `off`: header, then `dataLen` bytes of `data` from `dataOff` (`data`
 * may be `b` itself, e.g. the request answered in place), checksummed for `src` → `dst` (the
 * reply's addresses). Returns 8 + dataLen.
 */
export function writeIcmp6EchoReply(
  b: Uint8Array, off: number, id: number, seq: number, data: Uint8Array, dataOff: number, dataLen: number, src: Ip6, dst: Ip6,
): number {
  copyBytes(b, off + ICMP6_HLEN, data, dataOff, dataLen);
  b[off] = ICMP6_ECHO_REPLY;
  b[off + 1] = 0;
  b[off + 4] = id >>> 8;
  b[off + 5] = id;
  b[off + 6] = seq >>> 8;
  b[off + 7] = seq;
  const n = ICMP6_HLEN + dataLen;
  setIcmp6Checksum(b, off, n, src, dst);
  return n;
}

/**
 * Turns the verified echo request at `off` into an echo reply in place (RFC 4443 4.2): type 129,
 * checksum patched incrementally (RFC 1624). Valid when the reply's pseudo-header holds the same
 * two addresses (the caller swaps source and destination: the sum does not change); a reply from
 * another address (a request to a multicast group) needs `writeIcmp6EchoReply`.
 */
export function icmp6EchoReplyInPlace(b: Uint8Array, off: number): void {
  const oldWord = (b[off] << 8) | b[off + 1];
  b[off] = ICMP6_ECHO_REPLY;
  b[off + 1] = 0;
  const c = checksumAdjust((b[off + 2] << 8) | b[off + 3], oldWord, ICMP6_ECHO_REPLY << 8);
  b[off + 2] = c >>> 8;
  b[off + 3] = c;
}

/**
 * Whether an ICMPv6 error of `errType`/`errCode` must NOT be sent about the packet parsed into
 * `hdr` from `b` (RFC 4443 2.4(e)):
 * - the packet is an ICMPv6 error message or a Redirect (e.1, e.2) — told by its upper layer;
 * - its destination is multicast (e.3) or it came to a link-layer multicast/broadcast address
 *   (`linkMulticast`, e.4/e.5) — except a Packet Too Big and a Parameter Problem code 2;
 * - its source does not name a single node: unspecified or multicast (e.6).
 * A packet whose parse stopped before the upper layer (`hdr.nextHeader` -1) and whose header
 * chain names ICMPv6 further on is not recognized as an error here; the rate limit covers it.
 */
export function mustNotSendError6(errType: number, errCode: number, b: Uint8Array, hdr: Ipv6Header, linkMulticast = false): boolean {
  const s = hdr.srcOff;
  if (b[s] === 0xff) return true;
  if (isUnspecifiedAt(b, s)) return true;
  if (hdr.nextHeader === IPPROTO_ICMPV6 && (!hdr.isFragment || hdr.fragOffset === 0) && hdr.l4Len > 0) {
    const t = b[hdr.l4Off];
    if (t < 128 || t === ND_REDIRECT) return true;
  }
  const exempt = errType === ICMP6_PACKET_TOO_BIG || (errType === ICMP6_PARAM_PROB && errCode === ICMP6_PARAMPROB_OPTION);
  if (!exempt && (b[hdr.dstOff] === 0xff || linkMulticast)) return true;
  return false;
}
