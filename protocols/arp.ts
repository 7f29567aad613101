/** ARP for IPv4 over Ethernet (RFC 826): reusable parse result and emitter. */
import { Drop } from './drop';
import { ETH_P_IPV4 } from './ethernet';

export const ARP_LEN = 28;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
export const ARP_HRD_ETHER = 1;

/** A parsed ARP packet; MACs are absolute offsets into the frame, IPv4 addresses are u32. */
export class ArpPacket {
  op = 0;
  /** Absolute offset of the sender hardware address. */
  shaOff = 0;
  /** Sender protocol address. */
  spa = 0;
  /** Absolute offset of the target hardware address. */
  thaOff = 0;
  /** Target protocol address. */
  tpa = 0;

  /**
   * Parses `len` bytes at `off` (the bytes after the Ethernet header; padding allowed).
   * Returns `ArpTruncated`, `ArpBadHardware` (not Ethernet with 6-byte addresses),
   * `ArpBadProtocol` (not IPv4 with 4-byte addresses), `ArpBadOp` (not request/reply) or None.
   */
  parse(b: Uint8Array, off: number, len: number): Drop {
    this.op = 0;
    if (len < 8) return Drop.ArpTruncated;
    const htype = (b[off] << 8) | b[off + 1];
    const ptype = (b[off + 2] << 8) | b[off + 3];
    if (htype !== ARP_HRD_ETHER || b[off + 4] !== 6) return Drop.ArpBadHardware;
    if (ptype !== ETH_P_IPV4 || b[off + 5] !== 4) return Drop.ArpBadProtocol;
    if (len < ARP_LEN) return Drop.ArpTruncated;
    const op = (b[off + 6] << 8) | b[off + 7];
    this.op = op;
    this.shaOff = off + 8;
    this.spa = ((b[off + 14] << 24) | (b[off + 15] << 16) | (b[off + 16] << 8) | b[off + 17]) >>> 0;
    this.thaOff = off + 18;
    this.tpa = ((b[off + 24] << 24) | (b[off + 25] << 16) | (b[off + 26] << 8) | b[off + 27]) >>> 0;
    if (op !== ARP_REQUEST && op !== ARP_REPLY) return Drop.ArpBadOp;
    return Drop.None;
  }
}

/**
 * Writes a 28-byte ARP packet for IPv4 over Ethernet at `off`. `sha`/`tha` may point into `b`
 * (e.g. turning a received request into a reply in place). Returns 28.
 */
export function writeArp(
  b: Uint8Array, off: number, op: number, sha: Uint8Array, shaOff: number, spa: number,
  tha: Uint8Array, thaOff: number, tpa: number,
): number {
  const s0 = sha[shaOff], s1 = sha[shaOff + 1], s2 = sha[shaOff + 2];
  const s3 = sha[shaOff + 3], s4 = sha[shaOff + 4], s5 = sha[shaOff + 5];
  const t0 = tha[thaOff], t1 = tha[thaOff + 1], t2 = tha[thaOff + 2];
  const t3 = tha[thaOff + 3], t4 = tha[thaOff + 4], t5 = tha[thaOff + 5];
  b[off] = 0; b[off + 1] = ARP_HRD_ETHER;
  b[off + 2] = ETH_P_IPV4 >>> 8; b[off + 3] = ETH_P_IPV4 & 0xff;
  b[off + 4] = 6; b[off + 5] = 4;
  b[off + 6] = op >>> 8; b[off + 7] = op;
  b[off + 8] = s0; b[off + 9] = s1; b[off + 10] = s2; b[off + 11] = s3; b[off + 12] = s4; b[off + 13] = s5;
  b[off + 14] = spa >>> 24; b[off + 15] = spa >>> 16; b[off + 16] = spa >>> 8; b[off + 17] = spa;
  b[off + 18] = t0; b[off + 19] = t1; b[off + 20] = t2; b[off + 21] = t3; b[off + 22] = t4; b[off + 23] = t5;
  b[off + 24] = tpa >>> 24; b[off + 25] = tpa >>> 16; b[off + 26] = tpa >>> 8; b[off + 27] = tpa;
  return ARP_LEN;
}
