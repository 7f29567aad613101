/**
 * Multicast Listener Discovery v2 (RFC 3810) for a host: the report emitter (joins and leaves
 * of groups with no source list, i.e. "any source"), the MLDv1 Report and Done (RFC 2710) of
 * MLDv1 Host Compatibility Mode (RFC 3810 8.2.1), the Hop-by-Hop header with the Router Alert
 * option that MLD messages carry (RFC 3810 5, RFC 2711), and a query parser so the engine can
 * count and answer queries.
 */
import { Drop } from './drop';
import { Ip6, write6 } from './ip/addr';
import { setIcmp6Checksum, MLDV2_LISTENER_REPORT, MLD_LISTENER_QUERY, MLD_LISTENER_REPORT, MLD_LISTENER_DONE } from './icmpv6';
import { IPV6_HLEN } from './ipv6';

// Multicast Address Record types (RFC 3810 5.2.12).
export const MLD2_MODE_IS_INCLUDE = 1;
export const MLD2_MODE_IS_EXCLUDE = 2;
export const MLD2_CHANGE_TO_INCLUDE = 3;
export const MLD2_CHANGE_TO_EXCLUDE = 4;
/** Bytes of a report header and of one record without sources. */
export const MLD2_REPORT_HLEN = 8;
export const MLD2_RECORD_LEN = 20;
/** Hop limit of MLD messages (RFC 3810 5). */
export const MLD_HOP_LIMIT = 1;
/** Length of the Hop-by-Hop header written by `writeRouterAlertHbh`. */
export const ROUTER_ALERT_HBH_LEN = 8;

/** Records that fit in one report on a link of this MTU (IPv6 header, Hop-by-Hop header, report header). */
export function mldv2MaxRecords(mtu: number): number {
  const n = Math.floor((mtu - IPV6_HLEN - ROUTER_ALERT_HBH_LEN - MLD2_REPORT_HLEN) / MLD2_RECORD_LEN);
  return n > 0 ? n : 0;
}

/**
 * Writes an MLDv2 report (RFC 3810 5.2) at `off` (the ICMPv6 message; the caller sends it from a
 * link-local address, or :: before one is valid, to ff02::16 with hop limit 1 behind
 * `writeRouterAlertHbh`) with one record per group and no sources: CHANGE_TO_EXCLUDE for a join,
 * CHANGE_TO_INCLUDE for a `leave` (RFC 3810 6.1), or MODE_IS_EXCLUDE when `current` (the answer to
 * a query, RFC 3810 6.3). The caller keeps `groups` within `mldv2MaxRecords(mtu)`. Returns the length.
 */
export function writeMldv2Report(b: Uint8Array, off: number, groups: readonly Ip6[], src: Ip6, dst: Ip6, leave = false, current = false): number {
  const rt = leave ? MLD2_CHANGE_TO_INCLUDE : current ? MLD2_MODE_IS_EXCLUDE : MLD2_CHANGE_TO_EXCLUDE;
  b[off] = MLDV2_LISTENER_REPORT;
  b[off + 1] = 0;
  b[off + 4] = 0;
  b[off + 5] = 0;
  b[off + 6] = groups.length >>> 8;
  b[off + 7] = groups.length;
  let p = off + MLD2_REPORT_HLEN;
  for (const g of groups) {
    b[p] = rt;
    b[p + 1] = 0; // aux data length
    b[p + 2] = 0; // number of sources
    b[p + 3] = 0;
    write6(b, p + 4, g);
    p += MLD2_RECORD_LEN;
  }
  const n = p - off;
  setIcmp6Checksum(b, off, n, src, dst);
  return n;
}

/** Length of an MLDv1 Report or Done (RFC 2710 3). */
export const MLDV1_LEN = 24;
/**
 * Older Version Querier Present Timeout (RFC 3810 9.12) with the default Robustness Variable (2),
 * Query Interval (125 s) and Query Response Interval (10 s), in µs: how long a host stays in MLDv1
 * Host Compatibility Mode after an MLDv1 query (RFC 3810 8.2.1).
 */
export const MLD_OLDER_QUERIER_PRESENT_US = (2 * 125 + 10) * 1_000_000;

/**
 * Writes an MLDv1 Report (RFC 2710 3; sent to the group itself) or, with `done`, a Done (sent to
 * ff02::2) for `group` at `off`, checksummed for `src` → `dst`. Returns 24.
 */
export function writeMldv1(b: Uint8Array, off: number, group: Ip6, src: Ip6, dst: Ip6, done = false): number {
  b[off] = done ? MLD_LISTENER_DONE : MLD_LISTENER_REPORT;
  b[off + 1] = 0;
  for (let i = 4; i < 8; i++) b[off + i] = 0; // Maximum Response Delay, Reserved
  write6(b, off + 8, group);
  setIcmp6Checksum(b, off, MLDV1_LEN, src, dst);
  return MLDV1_LEN;
}

/**
 * Writes an 8-byte Hop-by-Hop Options header holding a Router Alert option with value 0 ("the
 * datagram contains a Multicast Listener Discovery message", RFC 2711 2.1) and a PadN of 2. Returns 8.
 */
export function writeRouterAlertHbh(b: Uint8Array, off: number, nextHeader: number): number {
  b[off] = nextHeader;
  b[off + 1] = 0; // (0 + 1) * 8 bytes
  b[off + 2] = 5; // Router Alert
  b[off + 3] = 2;
  b[off + 4] = 0; // value 0: MLD
  b[off + 5] = 0;
  b[off + 6] = 1; // PadN, 0 bytes of data
  b[off + 7] = 0;
  return ROUTER_ALERT_HBH_LEN;
}

/** A parsed MLD query (RFC 3810 5.1; an MLDv1 query, RFC 2710 3, is 24 bytes). */
export class MldQuery {
  /** 1 (24-byte MLDv1 query) or 2. */
  version = 0;
  /** Maximum Response Delay in milliseconds (RFC 3810 5.1.3). */
  maxRespMs = 0;
  /** Absolute offset of the Multicast Address; all zero for a General Query. */
  groupOff = 0;
  /** A General Query (multicast address ::). */
  general = false;
  /** MLDv2: S flag, QRV, QQIC and the number of sources. */
  suppress = false;
  qrv = 0;
  qqic = 0;
  nSources = 0;

  /**
   * Validates the query of `len` bytes at `off` (checksum already verified) from the IPv6 source
   * at `srcOff`: type 130, code ignored, a link-local source (RFC 3810 5.1.14), 24 bytes (MLDv1) or
   * at least 28 with all its sources present (MLDv2; RFC 3810 7.1 ignores other lengths).
   * Returns None or MldInvalid.
   */
  parse(b: Uint8Array, off: number, len: number, srcOff: number): Drop {
    this.version = 0;
    this.general = false;
    this.nSources = 0;
    if (len < 24 || b[off] !== MLD_LISTENER_QUERY) return Drop.MldInvalid;
    if (!(b[srcOff] === 0xfe && (b[srcOff + 1] & 0xc0) === 0x80)) return Drop.MldInvalid;
    const code = (b[off + 4] << 8) | b[off + 5];
    this.groupOff = off + 8;
    let z = 0;
    for (let i = 0; i < 16; i++) z |= b[off + 8 + i];
    this.general = z === 0;
    if (len === 24) {
      this.version = 1;
      this.maxRespMs = code;
      return Drop.None;
    }
    if (len < 28) return Drop.MldInvalid;
    const n = (b[off + 26] << 8) | b[off + 27];
    if (28 + 16 * n > len) return Drop.MldInvalid;
    this.version = 2;
    // RFC 3810 5.1.3: below 32768 the code is the delay; else a floating-point value.
    this.maxRespMs = code < 32768 ? code : ((code & 0x0fff) | 0x1000) << (((code >>> 12) & 7) + 3);
    this.suppress = (b[off + 24] & 0x08) !== 0;
    this.qrv = b[off + 24] & 7;
    this.qqic = b[off + 25];
    this.nSources = n;
    return Drop.None;
  }
}
