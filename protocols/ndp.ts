/**
 * Neighbor Discovery (RFC 4861): the validity checks of Neighbor Solicitation/Advertisement
 * (7.1.1, 7.1.2), Router Solicitation/Advertisement (6.1.1, 6.1.2) and Redirect (8.1) in one
 * reusable parse result, and the NS/NA emitters. The ICMPv6 checksum is verified by
 * `Icmp6Packet.parse` first; this view takes the IPv6 header facts it needs (source and
 * destination offsets, hop limit) so that every check lives here.
 */
import { Drop } from './drop';
import { Ip6, write6, isSolicitedNodeAt } from './ip/addr';
import { isUnspecifiedAt } from './ipv6';
import { setIcmp6Checksum, ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT, ND_ROUTER_SOLICIT, ND_ROUTER_ADVERT, ND_REDIRECT } from './icmpv6';

// Option types (RFC 4861 4.6; RFC 7527 for the nonce).
export const ND_OPT_SOURCE_LINKADDR = 1;
export const ND_OPT_TARGET_LINKADDR = 2;
export const ND_OPT_PREFIX_INFORMATION = 3;
export const ND_OPT_REDIRECTED_HEADER = 4;
export const ND_OPT_MTU = 5;
export const ND_OPT_NONCE = 14;
// NA flags, as the byte at offset 4 of the message (RFC 4861 4.4).
export const NA_FLAG_ROUTER = 0x80;
export const NA_FLAG_SOLICITED = 0x40;
export const NA_FLAG_OVERRIDE = 0x20;
/** Hop limit of every NDP message (RFC 4861 6.1, 7.1): a packet from off-link has a lower one. */
export const NDP_HOP_LIMIT = 255;
/** Lengths of NS/NA without options and with one Ethernet link-layer address option. */
export const NS_NA_LEN = 24;
export const NS_NA_LLA_LEN = 32;

function isLinkLocalAt(b: Uint8Array, o: number): boolean {
  return b[o] === 0xfe && (b[o + 1] & 0xc0) === 0x80;
}

/** A parsed NDP message. Offsets are absolute, -1 when absent. */
export class NdpPacket {
  type = 0;
  /** Target address (NS, NA, Redirect), -1 for RS/RA. */
  targetOff = -1;
  /** Redirect: the destination address. */
  destOff = -1;
  /** NA flags (RFC 4861 4.4). */
  router = false;
  solicited = false;
  override = false;
  /** Offsets of the 6-byte MAC in a Source / Target Link-Layer Address option. */
  sllaOff = -1;
  tllaOff = -1;
  /** Offset of the 6-byte nonce of a Nonce option (RFC 7527, DAD loop detection). */
  nonceOff = -1;
  /** The IPv6 source was `::` (an NS from it is a DAD probe, RFC 4862 5.4). */
  srcUnspecified = false;
  /** The IPv6 destination was multicast. */
  dstMulticast = false;
  /** RA: Cur Hop Limit, Router Lifetime (s), M and O flags. */
  raHopLimit = 0;
  raLifetime = 0;
  raFlags = 0;

  /**
   * Validates the NDP message of `len` bytes at `off` (checksum already verified) carried in an
   * IPv6 packet with the given source/destination offsets and hop limit. Types other than RS, RA,
   * NS, NA and Redirect → NdpInvalid. Returns None, NdpBadHopLimit or NdpInvalid.
   */
  parse(b: Uint8Array, off: number, len: number, srcOff: number, dstOff: number, hopLimit: number): Drop {
    this.targetOff = -1;
    this.destOff = -1;
    this.router = this.solicited = this.override = false;
    this.sllaOff = this.tllaOff = this.nonceOff = -1;
    this.raHopLimit = this.raLifetime = this.raFlags = 0;
    this.type = len > 0 ? b[off] : 0;
    this.srcUnspecified = isUnspecifiedAt(b, srcOff);
    this.dstMulticast = b[dstOff] === 0xff;
    // RFC 4861 6.1.1, 6.1.2, 7.1.1, 7.1.2, 8.1: hop limit 255 and ICMP code 0.
    if (hopLimit !== NDP_HOP_LIMIT) return Drop.NdpBadHopLimit;
    if (len < 8 || b[off + 1] !== 0) return Drop.NdpInvalid;
    let optOff: number;
    switch (this.type) {
      case ND_ROUTER_SOLICIT:
        optOff = off + 8;
        break;
      case ND_ROUTER_ADVERT:
        // 6.1.2: from a link-local source, at least 16 bytes.
        if (len < 16 || !isLinkLocalAt(b, srcOff)) return Drop.NdpInvalid;
        this.raHopLimit = b[off + 4];
        this.raFlags = b[off + 5];
        this.raLifetime = (b[off + 6] << 8) | b[off + 7];
        optOff = off + 16;
        break;
      case ND_NEIGHBOR_SOLICIT:
      case ND_NEIGHBOR_ADVERT:
        // 7.1.1 / 7.1.2: at least 24 bytes, target not multicast.
        if (len < NS_NA_LEN || b[off + 8] === 0xff) return Drop.NdpInvalid;
        this.targetOff = off + 8;
        optOff = off + 24;
        if (this.type === ND_NEIGHBOR_ADVERT) {
          const f = b[off + 4];
          this.router = (f & NA_FLAG_ROUTER) !== 0;
          this.solicited = (f & NA_FLAG_SOLICITED) !== 0;
          this.override = (f & NA_FLAG_OVERRIDE) !== 0;
          // 7.1.2: an NA to a multicast destination has S = 0.
          if (this.dstMulticast && this.solicited) return Drop.NdpInvalid;
        } else if (this.srcUnspecified && !isSolicitedNodeAt(b, dstOff)) {
          // 7.1.1: an NS from :: goes to a solicited-node multicast address.
          return Drop.NdpInvalid;
        }
        break;
      case ND_REDIRECT:
        // 8.1: from a link-local source, at least 40 bytes, destination not multicast, target
        // link-local or equal to the destination.
        if (len < 40 || !isLinkLocalAt(b, srcOff) || b[off + 24] === 0xff) return Drop.NdpInvalid;
        this.targetOff = off + 8;
        this.destOff = off + 24;
        if (!isLinkLocalAt(b, off + 8)) {
          for (let i = 0; i < 16; i++) if (b[off + 8 + i] !== b[off + 24 + i]) return Drop.NdpInvalid;
        }
        optOff = off + 40;
        break;
      default:
        return Drop.NdpInvalid;
    }
    // Options: every length > 0 and inside the message (6.1, 7.1). An Ethernet link-layer
    // address option is 8 bytes (RFC 2464 8); another length cannot be ours and is refused.
    const end = off + len;
    let p = optOff;
    while (p < end) {
      if (p + 2 > end) return Drop.NdpInvalid;
      const t = b[p];
      const olen = b[p + 1] << 3;
      if (olen === 0 || p + olen > end) return Drop.NdpInvalid;
      if (t === ND_OPT_SOURCE_LINKADDR || t === ND_OPT_TARGET_LINKADDR) {
        if (olen !== 8) return Drop.NdpInvalid;
        if (t === ND_OPT_SOURCE_LINKADDR) this.sllaOff = p + 2;
        else this.tllaOff = p + 2;
      } else if (t === ND_OPT_NONCE && olen === 8) {
        this.nonceOff = p + 2;
      }
      p += olen;
    }
    // 7.1.1 / 6.1.1: from ::, no Source Link-Layer Address option.
    if (this.srcUnspecified && this.sllaOff >= 0 && (this.type === ND_NEIGHBOR_SOLICIT || this.type === ND_ROUTER_SOLICIT)) return Drop.NdpInvalid;
    return Drop.None;
  }
}

/**
 * Whether an NS with this IPv6 source/destination may be taken (RFC 4861 7.1.1): from `::` it
 * must go to a solicited-node group. (`NdpPacket.parse` applies it; exported for callers that
 * check the IPv6 header on their own.)
 */
export function validateNs(srcUnspecified: boolean, dstIsSolicitedNode: boolean): boolean {
  return !srcUnspecified || dstIsSolicitedNode;
}

function writeLla(b: Uint8Array, p: number, type: number, mac: Uint8Array): void {
  b[p] = type;
  b[p + 1] = 1;
  for (let i = 0; i < 6; i++) b[p + 2 + i] = mac[i];
}

/**
 * Writes a Neighbor Solicitation (RFC 4861 4.3) at `off` (the ICMPv6 message; the caller writes
 * the IPv6 header with hop limit 255): target, a Source Link-Layer Address option when `srcMac` is
 * given (never for a DAD probe from ::, 7.2.2), a Nonce option when `nonce` (6 bytes, RFC 7527)
 * is given, and the checksum for `src` → `dst`. Returns the length: 24, 32 or 40.
 */
export function writeNs(b: Uint8Array, off: number, target: Ip6, srcMac: Uint8Array | null, src: Ip6, dst: Ip6, nonce?: Uint8Array): number {
  b[off] = ND_NEIGHBOR_SOLICIT;
  b[off + 1] = 0;
  b[off + 4] = b[off + 5] = b[off + 6] = b[off + 7] = 0;
  write6(b, off + 8, target);
  let n = NS_NA_LEN;
  if (srcMac) {
    writeLla(b, off + n, ND_OPT_SOURCE_LINKADDR, srcMac);
    n += 8;
  }
  if (nonce) {
    b[off + n] = ND_OPT_NONCE;
    b[off + n + 1] = 1;
    for (let i = 0; i < 6; i++) b[off + n + 2 + i] = nonce[i];
    n += 8;
  }
  setIcmp6Checksum(b, off, n, src, dst);
  return n;
}

/**
 * Writes a Neighbor Advertisement (RFC 4861 4.4) at `off`: `flags` a combination of
 * NA_FLAG_ROUTER/SOLICITED/OVERRIDE, the target, a Target Link-Layer Address option when `tgtMac`
 * is given, and the checksum for `src` → `dst`. Returns 24 or 32.
 */
export function writeNa(b: Uint8Array, off: number, target: Ip6, flags: number, tgtMac: Uint8Array | null, src: Ip6, dst: Ip6): number {
  b[off] = ND_NEIGHBOR_ADVERT;
  b[off + 1] = 0;
  b[off + 4] = flags & (NA_FLAG_ROUTER | NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE);
  b[off + 5] = b[off + 6] = b[off + 7] = 0;
  write6(b, off + 8, target);
  let n = NS_NA_LEN;
  if (tgtMac) {
    writeLla(b, off + n, ND_OPT_TARGET_LINKADDR, tgtMac);
    n += 8;
  }
  setIcmp6Checksum(b, off, n, src, dst);
  return n;
}
