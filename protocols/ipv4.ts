/** IPv4 header (RFC 791): reusable parse result, emitter and config-time address helpers. */
import { Drop } from './drop';
import { ip4ToString, parseIp4 } from './ip/addr';
import { sum16, fold } from './checksum';

export const IPV4_HLEN = 20;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IP_DF = 0x4000;
export const IP_MF = 0x2000;
export const IP_OFFMASK = 0x1fff;

/** A parsed IPv4 header. Addresses are u32 numbers; offsets are absolute. */
export class Ipv4Header {
  hdrLen = 0;
  tos = 0;
  totalLen = 0;
  id = 0;
  df = false;
  mf = false;
  /** Fragment offset in bytes. */
  fragOff = 0;
  ttl = 0;
  proto = 0;
  src = 0;
  dst = 0;
  /** Absolute offset of the payload (after options). */
  payloadOff = 0;
  /** Payload length from the total length field (Ethernet padding excluded). */
  payloadLen = 0;

  /** Whether this is a fragment (MF set or a non-zero offset). */
  get isFragment(): boolean {
    return this.mf || this.fragOff !== 0;
  }

  /**
   * Parses the header at `off`, `len` = bytes available (may include link padding). Checks
   * version, IHL, header checksum and that the total length fits; options are skipped.
   * Returns Ipv4Truncated, Ipv4BadVersion, Ipv4BadHeaderLength, Ipv4BadChecksum,
   * Ipv4BadTotalLength or None.
   */
  parse(b: Uint8Array, off: number, len: number): Drop {
    if (len < IPV4_HLEN) return Drop.Ipv4Truncated;
    const vihl = b[off];
    if (vihl >>> 4 !== 4) return Drop.Ipv4BadVersion;
    const hl = (vihl & 0x0f) << 2;
    if (hl < IPV4_HLEN) return Drop.Ipv4BadHeaderLength;
    if (hl > len) return Drop.Ipv4Truncated;
    if (fold(sum16(b, off, hl)) !== 0) return Drop.Ipv4BadChecksum;
    const total = (b[off + 2] << 8) | b[off + 3];
    if (total > len || total < hl) return Drop.Ipv4BadTotalLength;
    const ff = (b[off + 6] << 8) | b[off + 7];
    this.hdrLen = hl;
    this.tos = b[off + 1];
    this.totalLen = total;
    this.id = (b[off + 4] << 8) | b[off + 5];
    this.df = (ff & IP_DF) !== 0;
    this.mf = (ff & IP_MF) !== 0;
    this.fragOff = (ff & IP_OFFMASK) << 3;
    this.ttl = b[off + 8];
    this.proto = b[off + 9];
    this.src = ((b[off + 12] << 24) | (b[off + 13] << 16) | (b[off + 14] << 8) | b[off + 15]) >>> 0;
    this.dst = ((b[off + 16] << 24) | (b[off + 17] << 16) | (b[off + 18] << 8) | b[off + 19]) >>> 0;
    this.payloadOff = off + hl;
    this.payloadLen = total - hl;
    return Drop.None;
  }
}

/**
 * Writes a 20-byte IPv4 header (no options) at `off` with total length 20 + payloadLen and a
 * computed header checksum. `flagsFrag` = IP_DF | IP_MF | (byte offset / 8). Returns 20.
 */
export function writeIpv4(
  b: Uint8Array, off: number, src: number, dst: number, proto: number, payloadLen: number,
  ttl: number, id: number, flagsFrag: number, tos: number,
): number {
  const total = IPV4_HLEN + payloadLen;
  b[off] = 0x45;
  b[off + 1] = tos;
  b[off + 2] = total >>> 8; b[off + 3] = total;
  b[off + 4] = id >>> 8; b[off + 5] = id;
  b[off + 6] = flagsFrag >>> 8; b[off + 7] = flagsFrag;
  b[off + 8] = ttl;
  b[off + 9] = proto;
  b[off + 10] = 0; b[off + 11] = 0;
  b[off + 12] = src >>> 24; b[off + 13] = src >>> 16; b[off + 14] = src >>> 8; b[off + 15] = src;
  b[off + 16] = dst >>> 24; b[off + 17] = dst >>> 16; b[off + 18] = dst >>> 8; b[off + 19] = dst;
  const c = fold(sum16(b, off, IPV4_HLEN));
  b[off + 10] = c >>> 8; b[off + 11] = c;
  return IPV4_HLEN;
}

/**
 * Decrements the TTL of the header at `off` in place and patches the checksum incrementally
 * (RFC 1624). Returns the new TTL.
 */
export function decrementTtl(b: Uint8Array, off: number): number {
  const ttl = b[off + 8];
  if (ttl === 0) return 0;
  const oldWord = (ttl << 8) | b[off + 9];
  b[off + 8] = ttl - 1;
  const newWord = oldWord - 0x100;
  let s = (~((b[off + 10] << 8) | b[off + 11]) & 0xffff) + (~oldWord & 0xffff) + newWord;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  const c = ~s & 0xffff;
  b[off + 10] = c >>> 8; b[off + 11] = c;
  return ttl - 1;
}

// Option types (RFC 791 3.1; RFC 2113 router alert).
export const IPOPT_END = 0;
export const IPOPT_NOOP = 1;
export const IPOPT_RR = 7;
export const IPOPT_TS = 68;
export const IPOPT_LSRR = 131;
export const IPOPT_SSRR = 137;
/** `checkIpv4Options`: the options are well formed. */
export const IPV4_OPTIONS_OK = -1;
/** `checkIpv4Options`: a (well-formed) loose or strict source route. */
export const IPV4_OPTIONS_SOURCE_ROUTE = -2;

/**
 * Checks the options of the IPv4 header at `b[off..off+hl)` (hl > 20) as a receiving host must be
 * able to walk them (RFC 791 3.1, RFC 1122 3.2.1.8), with Linux's rules (ip_options_compile):
 * End of Option List ends them, No Operation is one byte, every other option has a length of at
 * least 2 that fits in what is left; Record Route and Source Routes have a length of at least 3
 * and a pointer of at least 4, Timestamp a length of at least 4 and a pointer of at least 5, and
 * a pointer inside the option leaves room for the entry it points at; Record Route, Timestamp and
 * the source routes appear once; a Timestamp option that is full has an overflow count below 15.
 * Unknown options are skipped (RFC 1122 3.2.1.8: ignored). Returns IPV4_OPTIONS_OK,
 * IPV4_OPTIONS_SOURCE_ROUTE (a loose or strict source route, completed or not), or the offset from
 * the header's start of the byte at fault (the Parameter Problem pointer, RFC 792).
 */
export function checkIpv4Options(b: Uint8Array, off: number, hl: number): number {
  const end = off + hl;
  let p = off + IPV4_HLEN;
  let seen = 0; // 1: record route, 2: timestamp, 4: source route
  let srr = false;
  while (p < end) {
    const t = b[p];
    if (t === IPOPT_END) break;
    if (t === IPOPT_NOOP) { p++; continue; }
    if (end - p < 2) return p - off;
    const olen = b[p + 1];
    if (olen < 2 || olen > end - p) return p - off;
    const ptr = olen > 2 ? b[p + 2] : 0;
    if (t === IPOPT_RR || t === IPOPT_LSRR || t === IPOPT_SSRR) {
      const bit = t === IPOPT_RR ? 1 : 4;
      if (seen & bit) return p - off;
      seen |= bit;
      if (olen < 3) return p + 1 - off;
      if (ptr < 4) return p + 2 - off;
      if (ptr <= olen && ptr + 3 > olen) return p + 2 - off;
      if (t !== IPOPT_RR) srr = true;
    } else if (t === IPOPT_TS) {
      if (seen & 2) return p - off;
      seen |= 2;
      if (olen < 4) return p + 1 - off;
      if (ptr < 5) return p + 2 - off;
      const flag = b[p + 3] & 0x0f;
      if (ptr <= olen) {
        if (ptr + 3 > olen) return p + 2 - off;
        if ((flag === 1 || flag === 3) && ptr + 7 > olen) return p + 2 - off;
      } else if (flag !== 3 && (b[p + 3] >>> 4) === 15) {
        return p + 3 - off;
      }
    }
    p += olen;
  }
  return srr ? IPV4_OPTIONS_SOURCE_ROUTE : IPV4_OPTIONS_OK;
}

/** Parses dotted-quad "a.b.c.d" into a u32 (one parser for the project: protocols/ip/addr.ts). Throws RangeError. */
export const parseIpv4 = parseIp4;

/** Formats a u32 as dotted quad. */
export const ipv4ToString = ip4ToString;

/** Parses "a.b.c.d/len" (the address is kept as given, not masked). Throws RangeError. */
export function parseCidr4(s: string): { addr: number; prefixLen: number } {
  if (typeof s !== 'string') throw new RangeError(`not an IPv4 CIDR: ${String(s)}`);
  const slash = s.indexOf('/');
  if (slash < 0) throw new RangeError(`not an IPv4 CIDR: ${JSON.stringify(s)} (expected address/prefix-length, e.g. 10.0.0.1/24)`);
  const addr = parseIpv4(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!/^\d{1,2}$/.test(p) || Number(p) > 32) throw new RangeError(`not an IPv4 CIDR: ${JSON.stringify(s)} (prefix length must be 0..32)`);
  return { addr, prefixLen: Number(p) };
}

/** Netmask of a prefix length as u32 (0 → 0, 32 → 0xffffffff). */
export function prefixMask4(prefixLen: number): number {
  return prefixLen <= 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

/** Whether `a` lies in `net/prefixLen`. */
export function inSubnet4(a: number, net: number, prefixLen: number): boolean {
  const m = prefixMask4(prefixLen);
  return ((a & m) >>> 0) === ((net & m) >>> 0);
}

/** Multicast (224/4). */
export function isMulticast4(a: number): boolean {
  return (a >>> 28) === 0xe;
}

/** Limited broadcast 255.255.255.255. */
export function isLimitedBroadcast4(a: number): boolean {
  return a === 0xffffffff;
}

/** Addresses never valid as a source from the wire (RFC 1122 3.2.1.3): multicast, 240/4 (incl. broadcast), loopback 127/8. */
export function isBadSource4(a: number): boolean {
  const top = a >>> 24;
  return isMulticast4(a) || top === 127 || (a >>> 28) === 0xf;
}
