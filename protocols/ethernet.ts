/**
 * Ethernet II with optional 802.1Q and 802.1ad (QinQ) tags: a reusable parse result over frame
 * bytes (absolute offsets, nothing copied) and an emitter.
 */
import { Drop } from './drop';

export const ETH_HLEN = 14;
export const ETH_ALEN = 6;
export const ETH_P_IPV4 = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;
export const ETH_P_IPV6 = 0x86dd;
export const VLAN_HLEN = 4;

/**
 * A parsed Ethernet header. One instance is owned by the caller and reused for every frame.
 *
 * Tags understood: none; one 802.1Q tag (`vlan`); an 802.1ad outer tag (`outerVlan`) followed
 * by an 802.1Q inner tag (`vlan`); an 802.1ad tag alone (`outerVlan`, `vlan` = -1); two
 * stacked 802.1Q tags (old-style QinQ: first = `outerVlan`, second = `vlan`).
 */
export class EthFrame {
  /** Absolute offset of the destination MAC. */
  dstOff = 0;
  /** Absolute offset of the source MAC. */
  srcOff = 0;
  /** 802.1Q VLAN id (the inner one in QinQ), or -1 when there is none. */
  vlan = -1;
  /** 802.1ad (service) VLAN id, or -1. */
  outerVlan = -1;
  /** Priority code point of the innermost tag (0 when untagged). */
  pcp = 0;
  /** Ethertype after all tags. */
  etherType = 0;
  /** Header length including tags: 14, 18 or 22. */
  hdrLen = 0;
  /** Absolute offset of the network-layer header. */
  l3Off = 0;
  /** Bytes from `l3Off` to the end of the frame (may include Ethernet padding). */
  l3Len = 0;

  /**
   * Parses the frame of `len` bytes at `off`. Returns `Drop.None`, `EthTruncated`,
   * `VlanTruncated` or `EthUnknownType` (only IPv4, ARP and IPv6 are accepted; the fields are
   * still filled in so the caller can inspect the type).
   */
  parse(b: Uint8Array, off: number, len: number): Drop {
    this.vlan = -1;
    this.outerVlan = -1;
    this.pcp = 0;
    this.etherType = 0;
    this.hdrLen = 0;
    this.l3Off = off;
    this.l3Len = 0;
    if (len < ETH_HLEN) return Drop.EthTruncated;
    this.dstOff = off;
    this.srcOff = off + 6;
    let p = off + 12;
    let type = (b[p] << 8) | b[p + 1];
    p += 2;
    if (type === ETH_P_8021AD || type === ETH_P_8021Q) {
      if (len < p - off + VLAN_HLEN) return Drop.VlanTruncated;
      const tci = (b[p] << 8) | b[p + 1];
      const next = (b[p + 2] << 8) | b[p + 3];
      p += 4;
      if (type === ETH_P_8021AD || next === ETH_P_8021Q) {
        this.outerVlan = tci & 0xfff;
        this.pcp = tci >>> 13;
        type = next;
        if (type === ETH_P_8021Q) {
          if (len < p - off + VLAN_HLEN) return Drop.VlanTruncated;
          const itci = (b[p] << 8) | b[p + 1];
          this.vlan = itci & 0xfff;
          this.pcp = itci >>> 13;
          type = (b[p + 2] << 8) | b[p + 3];
          p += 4;
        }
      } else {
        this.vlan = tci & 0xfff;
        this.pcp = tci >>> 13;
        type = next;
      }
    }
    this.etherType = type;
    this.hdrLen = p - off;
    this.l3Off = p;
    this.l3Len = len - this.hdrLen;
    if (type !== ETH_P_IPV4 && type !== ETH_P_ARP && type !== ETH_P_IPV6) return Drop.EthUnknownType;
    return Drop.None;
  }
}

/** Whether the MAC at `off` is ff:ff:ff:ff:ff:ff. */
export function isBroadcast(b: Uint8Array, off: number): boolean {
  return (b[off] & b[off + 1] & b[off + 2] & b[off + 3] & b[off + 4] & b[off + 5]) === 0xff;
}

/** Whether the MAC at `off` is a group address (multicast; broadcast included). */
export function isMulticast(b: Uint8Array, off: number): boolean {
  return (b[off] & 1) === 1;
}

/** Whether the 6-byte MACs at `a[aOff]` and `b[bOff]` are equal. */
export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  return a[aOff] === b[bOff] && a[aOff + 1] === b[bOff + 1] && a[aOff + 2] === b[bOff + 2] &&
    a[aOff + 3] === b[bOff + 3] && a[aOff + 4] === b[bOff + 4] && a[aOff + 5] === b[bOff + 5];
}

/** Copies a MAC (6 bytes); safe when both ranges are in the same buffer, even overlapping. */
export function copyMac(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number): void {
  const m0 = src[srcOff], m1 = src[srcOff + 1], m2 = src[srcOff + 2];
  const m3 = src[srcOff + 3], m4 = src[srcOff + 4], m5 = src[srcOff + 5];
  dst[dstOff] = m0; dst[dstOff + 1] = m1; dst[dstOff + 2] = m2;
  dst[dstOff + 3] = m3; dst[dstOff + 4] = m4; dst[dstOff + 5] = m5;
}

/**
 * Writes an Ethernet header at `off`: destination, source, an optional 802.1Q tag and the
 * ethertype. `vlan` is -1 for none, else the TCI (a VLAN id 0..4095, optionally with the
 * priority in bits 13..15). `dst`/`src` may point into `b` itself (e.g. swapping the MACs of a
 * received frame in place). Returns the header length (14 or 18).
 */
export function writeEth(
  b: Uint8Array, off: number, dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number,
  etherType: number, vlan: number,
): number {
  // Read both addresses before writing: they may alias the bytes being written.
  const d0 = dst[dstOff], d1 = dst[dstOff + 1], d2 = dst[dstOff + 2];
  const d3 = dst[dstOff + 3], d4 = dst[dstOff + 4], d5 = dst[dstOff + 5];
  const s0 = src[srcOff], s1 = src[srcOff + 1], s2 = src[srcOff + 2];
  const s3 = src[srcOff + 3], s4 = src[srcOff + 4], s5 = src[srcOff + 5];
  b[off] = d0; b[off + 1] = d1; b[off + 2] = d2; b[off + 3] = d3; b[off + 4] = d4; b[off + 5] = d5;
  b[off + 6] = s0; b[off + 7] = s1; b[off + 8] = s2; b[off + 9] = s3; b[off + 10] = s4; b[off + 11] = s5;
  if (vlan < 0) {
    b[off + 12] = etherType >>> 8;
    b[off + 13] = etherType;
    return ETH_HLEN;
  }
  b[off + 12] = ETH_P_8021Q >>> 8;
  b[off + 13] = ETH_P_8021Q & 0xff;
  b[off + 14] = (vlan >>> 8) & 0xff;
  b[off + 15] = vlan;
  b[off + 16] = etherType >>> 8;
  b[off + 17] = etherType;
  return ETH_HLEN + VLAN_HLEN;
}

/**
 * Like `writeEth` with two tags: an 802.1ad outer tag (`outerVlan`) and an 802.1Q inner tag
 * (`vlan`, -1 for an 802.1ad tag alone). Returns the header length (18 or 22).
 */
export function writeEthQinQ(
  b: Uint8Array, off: number, dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number,
  etherType: number, outerVlan: number, vlan: number,
): number {
  writeEth(b, off, dst, dstOff, src, srcOff, ETH_P_8021AD, outerVlan);
  // writeEth wrote 0x8100 as the tag protocol; the outer tag is 802.1ad.
  b[off + 12] = ETH_P_8021AD >>> 8;
  b[off + 13] = ETH_P_8021AD & 0xff;
  if (vlan < 0) return ETH_HLEN + VLAN_HLEN;
  b[off + 16] = ETH_P_8021Q >>> 8;
  b[off + 17] = ETH_P_8021Q & 0xff;
  b[off + 18] = (vlan >>> 8) & 0xff;
  b[off + 19] = vlan;
  b[off + 20] = etherType >>> 8;
  b[off + 21] = etherType;
  return ETH_HLEN + 2 * VLAN_HLEN;
}

/** Parses "aa:bb:cc:dd:ee:ff" (or with '-') into 6 bytes. Config-time only: throws RangeError. */
export function parseMac(s: string, out: Uint8Array = new Uint8Array(6), off = 0): Uint8Array {
  const m = /^([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})$/.exec(s);
  if (!m) throw new RangeError(`not a MAC address: ${JSON.stringify(s)}`);
  for (let i = 0; i < 6; i++) out[off + i] = parseInt(m[i + 1], 16);
  return out;
}

/** Formats the MAC at `off` as "aa:bb:cc:dd:ee:ff". */
export function macToString(b: Uint8Array, off: number): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += (i ? ':' : '') + b[off + i].toString(16).padStart(2, '0');
  return s;
}
