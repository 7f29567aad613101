/**
 * TCP header wire view (RFC 9293) with options: MSS (2), window scale (3, RFC 7323),
 * SACK-permitted (4) and SACK blocks (5, RFC 2018), timestamps (8, RFC 7323). Unknown options
 * are skipped by their length; malformed option lists never throw (parsing stops at the bad
 * option, what was read before is kept, and `badOptions` is set).
 */
import { Drop } from './drop';
import { fold, sum16 } from './checksum';
import { IpAddr, pseudoSum } from './ip/addr';
import { MAX_SACK_BLOCKS, TcpSegmentIn, TcpSegmentOut } from './tcp/types';

export const TCP_HLEN = 20;
const IPPROTO_TCP = 6;

export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WSCALE = 3;
export const TCPOPT_SACK_PERMITTED = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMP = 8;

/** A parsed TCP header (reusable; implements the connection's segment input). */
export class TcpHeader implements TcpSegmentIn {
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  ack = 0;
  /** Header length in bytes (data offset * 4). */
  hdrLen = 0;
  flags = 0;
  window = 0;
  checksum = 0;
  urgent = 0;
  mss = 0;
  wscale = -1;
  sackOk = false;
  hasTs = false;
  tsVal = 0;
  tsEcr = 0;
  sackCount = 0;
  readonly sackStart = new Uint32Array(MAX_SACK_BLOCKS);
  readonly sackEnd = new Uint32Array(MAX_SACK_BLOCKS);
  /** Set when the option list was malformed (what precedes the bad option is kept). */
  badOptions = false;
  buf: Uint8Array = EMPTY;
  payloadOff = 0;
  payloadLen = 0;
  /**
   * The received frame the segment lies in (its pool's bytes are `buf`), -1 when the segment is
   * no frame (a reassembled datagram): a zero-copy reader may keep the frame instead of a copy of
   * the payload, and then sets `frameKept` (whoever passed the frame must not free it).
   */
  frame = -1;
  framePool: unknown = null;
  frameKept = false;

  /**
   * Parses the segment at `off`, `len` = IP payload length. `src`/`dst` are the IP addresses
   * (either family) for the pseudo-header; pass `verify = false` to skip the checksum (e.g. already checked by
   * hardware). Returns TcpTruncated, TcpBadOffset, TcpBadChecksum or None.
   */
  parse(b: Uint8Array, off: number, len: number, src: IpAddr, dst: IpAddr, verify = true): Drop {
    this.buf = b;
    this.frame = -1;
    this.frameKept = false;
    this.payloadOff = off;
    this.payloadLen = 0;
    if (len < TCP_HLEN) return Drop.TcpTruncated;
    const hl = (b[off + 12] >>> 4) << 2;
    if (hl < TCP_HLEN || hl > len) return Drop.TcpBadOffset;
    if (verify && fold(sum16(b, off, len, pseudoSum(src, dst, IPPROTO_TCP, len))) !== 0) return Drop.TcpBadChecksum;
    this.srcPort = (b[off] << 8) | b[off + 1];
    this.dstPort = (b[off + 2] << 8) | b[off + 3];
    this.seq = rd32(b, off + 4);
    this.ack = rd32(b, off + 8);
    this.hdrLen = hl;
    this.flags = b[off + 13];
    this.window = (b[off + 14] << 8) | b[off + 15];
    this.checksum = (b[off + 16] << 8) | b[off + 17];
    this.urgent = (b[off + 18] << 8) | b[off + 19];
    this.parseOptions(b, off + TCP_HLEN, off + hl);
    this.payloadOff = off + hl;
    this.payloadLen = len - hl;
    return Drop.None;
  }

  private parseOptions(b: Uint8Array, p: number, end: number): void {
    this.mss = 0;
    this.wscale = -1;
    this.sackOk = false;
    this.hasTs = false;
    this.tsVal = 0;
    this.tsEcr = 0;
    this.sackCount = 0;
    this.badOptions = false;
    while (p < end) {
      const kind = b[p];
      if (kind === TCPOPT_EOL) return;
      if (kind === TCPOPT_NOP) { p++; continue; }
      if (p + 1 >= end) { this.badOptions = true; return; }
      const olen = b[p + 1];
      if (olen < 2 || p + olen > end) { this.badOptions = true; return; }
      switch (kind) {
        case TCPOPT_MSS:
          if (olen === 4) this.mss = (b[p + 2] << 8) | b[p + 3];
          else this.badOptions = true;
          break;
        case TCPOPT_WSCALE:
          if (olen === 3) this.wscale = Math.min(b[p + 2], 14);
          else this.badOptions = true;
          break;
        case TCPOPT_SACK_PERMITTED:
          if (olen === 2) this.sackOk = true;
          else this.badOptions = true;
          break;
        case TCPOPT_TIMESTAMP:
          if (olen === 10) {
            this.hasTs = true;
            this.tsVal = rd32(b, p + 2);
            this.tsEcr = rd32(b, p + 6);
          } else this.badOptions = true;
          break;
        case TCPOPT_SACK: {
          if ((olen - 2) % 8 !== 0) { this.badOptions = true; break; }
          for (let q = p + 2; q + 8 <= p + olen && this.sackCount < MAX_SACK_BLOCKS; q += 8) {
            this.sackStart[this.sackCount] = rd32(b, q);
            this.sackEnd[this.sackCount] = rd32(b, q + 4);
            this.sackCount++;
          }
          break;
        }
        default:
          break; // unknown option: skipped by its length
      }
      p += olen;
    }
  }
}

const EMPTY = new Uint8Array(0);

function rd32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = v >>> 16; b[o + 2] = v >>> 8; b[o + 3] = v;
}

/**
 * Length of the options `seg` carries, padded to 4 bytes. Layout (as Linux): MSS (4),
 * NOP NOP TS (12) or SACK-permitted + TS (12), NOP WS (4), NOP NOP SACK blocks (4 + 8n).
 * Blocks that do not fit in 40 option bytes are left out.
 */
export function tcpOptionsLen(seg: TcpSegmentOut): number {
  let n = 0;
  if (seg.mss) n += 4;
  if (seg.hasTs) n += 12;
  else if (seg.sackOk) n += 4;
  if (seg.wscale >= 0) n += 4;
  if (seg.sackCount > 0) n += 4 + 8 * sackFit(seg, n);
  return n;
}

function sackFit(seg: TcpSegmentOut, used: number): number {
  return Math.min(seg.sackCount, Math.floor((40 - used - 4) / 8));
}

/** TCP header length (20 + options) for `seg`. */
export function tcpHeaderLen(seg: TcpSegmentOut): number {
  return TCP_HLEN + tcpOptionsLen(seg);
}

/**
 * Writes the TCP header for `seg` at `off`, for a payload of `payloadLen` bytes already in place
 * at `off + tcpHeaderLen(seg)`, and computes the checksum with the pseudo-header of either family.
 * Returns the header length.
 */
export function writeTcp(b: Uint8Array, off: number, seg: TcpSegmentOut, payloadLen: number, src: IpAddr, dst: IpAddr): number {
  b[off] = seg.srcPort >>> 8; b[off + 1] = seg.srcPort;
  b[off + 2] = seg.dstPort >>> 8; b[off + 3] = seg.dstPort;
  wr32(b, off + 4, seg.seq);
  wr32(b, off + 8, seg.ack);
  b[off + 13] = seg.flags;
  b[off + 14] = seg.window >>> 8; b[off + 15] = seg.window;
  b[off + 16] = 0; b[off + 17] = 0;
  b[off + 18] = 0; b[off + 19] = 0;
  let p = off + TCP_HLEN;
  if (seg.mss) {
    b[p] = TCPOPT_MSS; b[p + 1] = 4; b[p + 2] = seg.mss >>> 8; b[p + 3] = seg.mss;
    p += 4;
  }
  if (seg.hasTs) {
    if (seg.sackOk) { b[p] = TCPOPT_SACK_PERMITTED; b[p + 1] = 2; }
    else { b[p] = TCPOPT_NOP; b[p + 1] = TCPOPT_NOP; }
    b[p + 2] = TCPOPT_TIMESTAMP; b[p + 3] = 10;
    wr32(b, p + 4, seg.tsVal);
    wr32(b, p + 8, seg.tsEcr);
    p += 12;
  } else if (seg.sackOk) {
    b[p] = TCPOPT_NOP; b[p + 1] = TCPOPT_NOP; b[p + 2] = TCPOPT_SACK_PERMITTED; b[p + 3] = 2;
    p += 4;
  }
  if (seg.wscale >= 0) {
    b[p] = TCPOPT_NOP; b[p + 1] = TCPOPT_WSCALE; b[p + 2] = 3; b[p + 3] = seg.wscale;
    p += 4;
  }
  if (seg.sackCount > 0) {
    const n = sackFit(seg, p - off - TCP_HLEN);
    b[p] = TCPOPT_NOP; b[p + 1] = TCPOPT_NOP; b[p + 2] = TCPOPT_SACK; b[p + 3] = 2 + 8 * n;
    p += 4;
    for (let i = 0; i < n; i++) {
      wr32(b, p, seg.sackStart[i]!);
      wr32(b, p + 4, seg.sackEnd[i]!);
      p += 8;
    }
  }
  const hl = p - off;
  b[off + 12] = (hl >>> 2) << 4;
  const len = hl + payloadLen;
  const c = fold(sum16(b, off, len, pseudoSum(src, dst, IPPROTO_TCP, len)));
  b[off + 16] = c >>> 8; b[off + 17] = c;
  return hl;
}
