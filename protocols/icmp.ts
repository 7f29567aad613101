/** ICMPv4 (RFC 792, RFC 1191): reusable parse result and emitters for echo reply and errors. */
import { Drop } from './drop';
import { sum16, fold, copyBytes } from './checksum';

export const ICMP_HLEN = 8;
export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAM_PROBLEM = 12;
export const ICMP_TIMESTAMP = 13;
export const ICMP_TIMESTAMP_REPLY = 14;
/** Length of a Timestamp or Timestamp Reply message (RFC 792): header, originate, receive, transmit. */
export const ICMP_TIMESTAMP_LEN = 20;
// Destination unreachable codes.
export const ICMP_NET_UNREACH = 0;
export const ICMP_HOST_UNREACH = 1;
export const ICMP_PROTO_UNREACH = 2;
export const ICMP_PORT_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;
// Time exceeded codes.
export const ICMP_EXC_TTL = 0;
export const ICMP_EXC_FRAGTIME = 1;
/** Largest ICMP error datagram (IP header + ICMP + quote), RFC 1812 4.3.2.3. */
export const ICMP_ERROR_MAX_DATAGRAM = 576;
/** Minimum quote of an error: an IPv4 header and 8 bytes (RFC 792). */
const MIN_QUOTE = 28;

/** A parsed ICMPv4 message. */
export class IcmpPacket {
  type = 0;
  code = 0;
  /** Echo identifier (echo request/reply). */
  id = 0;
  /** Echo sequence number (echo request/reply). */
  seq = 0;
  /** Next-hop MTU of a fragmentation-needed message (0 when absent: RFC 1191 old routers). */
  nextHopMtu = 0;
  /** Absolute offset of the data after the 8-byte header: echo data, or the quoted IP header of an error. */
  innerOff = 0;
  innerLen = 0;
  /** Quoted IPv4 header of an error message: protocol, addresses and offset of its first 8 L4 bytes (ports). */
  innerProto = 0;
  innerSrc = 0;
  innerDst = 0;
  innerL4Off = 0;

  /**
   * Parses `len` bytes at `off` (the IP payload). Verifies the checksum over all of it.
   * Accepts echo request/reply, timestamp request/reply (at least 20 bytes), destination
   * unreachable, time exceeded and parameter problem
   * (errors must quote an IPv4 header and 8 bytes, else IcmpTruncated; its protocol, addresses
   * and L4 offset are filled in); anything else → IcmpUnknownType.
   */
  parse(b: Uint8Array, off: number, len: number): Drop {
    this.id = 0;
    this.seq = 0;
    this.nextHopMtu = 0;
    this.innerOff = off + ICMP_HLEN;
    this.innerLen = 0;
    this.innerProto = 0;
    this.innerSrc = 0;
    this.innerDst = 0;
    this.innerL4Off = 0;
    if (len < ICMP_HLEN) return Drop.IcmpTruncated;
    if (fold(sum16(b, off, len)) !== 0) return Drop.IcmpBadChecksum;
    const type = b[off];
    this.type = type;
    this.code = b[off + 1];
    this.innerLen = len - ICMP_HLEN;
    switch (type) {
      case ICMP_TIMESTAMP:
      case ICMP_TIMESTAMP_REPLY:
      case ICMP_ECHO_REQUEST:
      case ICMP_ECHO_REPLY:
        if ((type === ICMP_TIMESTAMP || type === ICMP_TIMESTAMP_REPLY) && len < ICMP_TIMESTAMP_LEN) return Drop.IcmpTruncated;
        this.id = (b[off + 4] << 8) | b[off + 5];
        this.seq = (b[off + 6] << 8) | b[off + 7];
        return Drop.None;
      case ICMP_DEST_UNREACH:
        if (this.code === ICMP_FRAG_NEEDED) this.nextHopMtu = (b[off + 6] << 8) | b[off + 7];
        return this.parseQuote(b);
      case ICMP_TIME_EXCEEDED:
      case ICMP_PARAM_PROBLEM:
        return this.parseQuote(b);
      default:
        return Drop.IcmpUnknownType;
    }
  }

  /** The quote must hold an IPv4 header (options included) and 8 bytes of its payload. */
  private parseQuote(b: Uint8Array): Drop {
    const q = this.innerOff;
    if (this.innerLen < MIN_QUOTE) return Drop.IcmpTruncated;
    const vihl = b[q];
    const hl = (vihl & 0x0f) << 2;
    if (vihl >>> 4 !== 4 || hl < 20) return Drop.IcmpTruncated;
    if (hl + 8 > this.innerLen) return Drop.IcmpTruncated;
    this.innerProto = b[q + 9];
    this.innerSrc = ((b[q + 12] << 24) | (b[q + 13] << 16) | (b[q + 14] << 8) | b[q + 15]) >>> 0;
    this.innerDst = ((b[q + 16] << 24) | (b[q + 17] << 16) | (b[q + 18] << 8) | b[q + 19]) >>> 0;
    this.innerL4Off = q + hl;
    return Drop.None;
  }
}

/**
 * Writes an echo reply at `off`: header, then `dataLen` bytes of `data` from `dataOff`
 * (`data` may be `b` itself, e.g. the request being answered in place), with the checksum.
 * Returns 8 + dataLen.
 */
export function writeIcmpEchoReply(
  b: Uint8Array, off: number, id: number, seq: number, data: Uint8Array, dataOff: number, dataLen: number,
): number {
  copyBytes(b, off + ICMP_HLEN, data, dataOff, dataLen);
  b[off] = ICMP_ECHO_REPLY;
  b[off + 1] = 0;
  b[off + 2] = 0; b[off + 3] = 0;
  b[off + 4] = id >>> 8; b[off + 5] = id;
  b[off + 6] = seq >>> 8; b[off + 7] = seq;
  const n = ICMP_HLEN + dataLen;
  const c = fold(sum16(b, off, n));
  b[off + 2] = c >>> 8; b[off + 3] = c;
  return n;
}

/**
 * Writes an ICMP error (destination unreachable, time exceeded, ...) at `off` quoting the
 * offending datagram `orig[origOff .. origOff+origLen)` (from its IP header on): as much as
 * fits in a 576-byte error datagram (RFC 1812), never less than what is available up to the
 * IP header + 8 bytes of RFC 792. `mtu` fills the next-hop MTU of fragmentation-needed
 * (RFC 1191), or the pointer of a parameter problem (RFC 792); it is ignored for other types. `orig` may overlap the output (moved safely).
 * Returns 8 + quoted length.
 */
export function writeIcmpError(
  b: Uint8Array, off: number, type: number, code: number, mtu: number, orig: Uint8Array, origOff: number, origLen: number,
): number {
  const maxQuote = ICMP_ERROR_MAX_DATAGRAM - 20 - ICMP_HLEN;
  const q = origLen < 0 ? 0 : origLen > maxQuote ? maxQuote : origLen;
  copyBytes(b, off + ICMP_HLEN, orig, origOff, q);
  b[off] = type;
  b[off + 1] = code;
  b[off + 2] = 0; b[off + 3] = 0;
  // Parameter Problem: the pointer to the octet at fault, in the first byte after the checksum.
  b[off + 4] = type === ICMP_PARAM_PROBLEM ? mtu : 0; b[off + 5] = 0;
  if (type === ICMP_DEST_UNREACH && code === ICMP_FRAG_NEEDED) {
    b[off + 6] = mtu >>> 8; b[off + 7] = mtu;
  } else {
    b[off + 6] = 0; b[off + 7] = 0;
  }
  const n = ICMP_HLEN + q;
  const c = fold(sum16(b, off, n));
  b[off + 2] = c >>> 8; b[off + 3] = c;
  return n;
}
