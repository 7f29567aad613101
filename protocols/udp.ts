/** UDP (RFC 768) over IPv4 and IPv6 (RFC 8200 section 8.1): reusable parse result and emitter. */
import { Drop } from './drop';
import { sum16, fold } from './checksum';
import { IpAddr, pseudoSum } from './ip/addr';

export const UDP_HLEN = 8;
const IPPROTO_UDP = 17;

/** A parsed UDP header. */
export class UdpHeader {
  srcPort = 0;
  dstPort = 0;
  /** UDP length field (header + payload). */
  length = 0;
  /** Checksum field as received (0 = sender computed none). */
  checksum = 0;
  /** Absolute offset of the payload. */
  payloadOff = 0;
  payloadLen = 0;

  /**
   * Parses the datagram at `off`; `len` = IP payload length. `src`/`dst` are the IP addresses
   * (either family) for the pseudo-header. Returns UdpTruncated, UdpBadLength (length field < 8 or
   * beyond the IP payload), UdpBadChecksum, Udp6ZeroChecksum or None. A zero checksum means
   * "none" over IPv4; over IPv6 the checksum is mandatory (RFC 8200 section 8.1): zero is a drop.
   */
  parse(b: Uint8Array, off: number, len: number, src: IpAddr, dst: IpAddr): Drop {
    this.payloadOff = off + UDP_HLEN;
    this.payloadLen = 0;
    if (len < UDP_HLEN) return Drop.UdpTruncated;
    this.srcPort = (b[off] << 8) | b[off + 1];
    this.dstPort = (b[off + 2] << 8) | b[off + 3];
    const length = (b[off + 4] << 8) | b[off + 5];
    this.length = length;
    this.checksum = (b[off + 6] << 8) | b[off + 7];
    if (length < UDP_HLEN || length > len) return Drop.UdpBadLength;
    if (this.checksum === 0 && typeof src !== 'number') return Drop.Udp6ZeroChecksum;
    if (this.checksum !== 0 && fold(sum16(b, off, length, pseudoSum(src, dst, IPPROTO_UDP, length))) !== 0) {
      return Drop.UdpBadChecksum;
    }
    this.payloadLen = length - UDP_HLEN;
    return Drop.None;
  }
}

/**
 * Writes the UDP header at `off` for a payload already in place at `off + 8`, and computes the
 * checksum over pseudo-header, header and payload (a computed 0 is sent as 0xffff).
 * Returns the header length, 8 (the datagram is 8 + payloadLen bytes).
 */
export function writeUdp(
  b: Uint8Array, off: number, srcPort: number, dstPort: number, payloadLen: number, src: IpAddr, dst: IpAddr,
): number {
  const length = UDP_HLEN + payloadLen;
  b[off] = srcPort >>> 8; b[off + 1] = srcPort;
  b[off + 2] = dstPort >>> 8; b[off + 3] = dstPort;
  b[off + 4] = length >>> 8; b[off + 5] = length;
  b[off + 6] = 0; b[off + 7] = 0;
  let c = fold(sum16(b, off, length, pseudoSum(src, dst, IPPROTO_UDP, length)));
  if (c === 0) c = 0xffff;
  b[off + 6] = c >>> 8; b[off + 7] = c;
  return UDP_HLEN;
}
