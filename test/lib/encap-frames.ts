/**
 * IP-in-IP packets for decapsulation tests, well-formed or hostile: IPv4 in IPv4 (protocol 4,
 * RFC 2003), IPv6 in IPv6 (next header 41, RFC 2473), IPv6 in IPv4 (protocol 41, RFC 4213) and
 * IPv4 in IPv6 (next header 4, RFC 2473), nested encapsulation, truncated inner packets, inner
 * IPv4 headers with a bad checksum, outer fragments; Ethernet framing; and a decoder of received
 * encapsulated packets for assertions. Built with the project's own emitters; no I/O.
 */
import { IP_DF, IP_MF, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, writeIpv4 } from '../../protocols/ipv4';
import { IPPROTO_FRAGMENT, IPV6_FRAG_HLEN, IPV6_HLEN, writeFragHdr, writeIpv6 } from '../../protocols/ipv6';
import { ETH_P_IPV4, ETH_P_IPV6, parseMac, writeEth } from '../../protocols/ethernet';
import { writeUdp, UDP_HLEN } from '../../protocols/udp';
import { tcpHeaderLen, writeTcp } from '../../protocols/tcp';
import { TcpSegmentOut, TH_SYN } from '../../protocols/tcp/types';
import { addrToString, IpAddr, Ip6, parseAddr } from '../../protocols/ip/addr';
import { fold, sum16 } from '../../protocols/checksum';

/** IPv4 protocol / IPv6 next header of an IPv4 packet inside (RFC 2003, RFC 2473). */
export const IPPROTO_IPIP = 4;
/** IPv4 protocol / IPv6 next header of an IPv6 packet inside (RFC 4213, RFC 2473). */
export const IPPROTO_IPV6 = 41;

/** Outer family in inner family, as `inner` + 'in' + `outer`: '6in4' is IPv6 inside IPv4. */
export type EncapKind = '4in4' | '6in6' | '6in4' | '4in6';
export const ENCAP_KINDS: readonly EncapKind[] = ['4in4', '6in6', '6in4', '4in6'];

/** The kind of encapsulation of an inner packet of IP version `inner` in an outer one of version `outer`. */
export function encapKind(inner: 4 | 6, outer: 4 | 6): EncapKind {
  return `${inner}in${outer}` as EncapKind;
}

/** The TCP part of an inner packet (protocol 6); absent fields: SYN, seq 1, ack 0, window 65535, no MSS option. */
export interface TcpSpec { flags?: number; seq?: number; ack?: number; window?: number; mss?: number }

/**
 * A plain IPv4 or IPv6 packet (the family is the one of `src`; `dst` must match). UDP (default)
 * and TCP get a valid header with `sport`/`dport` and a correct checksum in front of `payload`;
 * any other `proto` carries `payload` as is.
 */
export interface PacketSpec {
  src: string;
  dst: string;
  /** IPv4 protocol / IPv6 next header; default 17 (UDP). */
  proto?: number;
  payload?: Uint8Array;
  sport?: number;
  dport?: number;
  tcp?: TcpSpec;
  /** TTL / hop limit; default 64. */
  ttl?: number;
  /** IPv4 TOS / IPv6 traffic class; default 0. */
  tos?: number;
  /** IPv6 flow label; default 0. */
  flowLabel?: number;
  /** IPv4 Don't Fragment; default true. */
  df?: boolean;
  /** IPv4 identification; default 1. */
  id?: number;
  /** IPv4 only: the header checksum is written wrong (off by one). */
  badChecksum?: boolean;
}

/**
 * One level of encapsulation. The family is the one of `src` (`dst` must match); the protocol /
 * next header follows the version of what it carries (4 for IPv4, 41 for IPv6) unless `proto`
 * gives another one.
 */
export interface OuterSpec {
  src: string;
  dst: string;
  proto?: number;
  /** TTL / hop limit; default 64. */
  ttl?: number;
  tos?: number;
  flowLabel?: number;
  /** IPv4 Don't Fragment; default true (false when `fragment` is given). */
  df?: boolean;
  id?: number;
  /**
   * Makes the outer packet a fragment carrying the bytes inside: an IPv4 header with
   * `offset` (bytes, a multiple of 8) and MF = `more`, or an IPv6 Fragment header (RFC 8200 4.5).
   */
  fragment?: { offset: number; more: boolean; id?: number };
  badChecksum?: boolean;
}

export interface EncapSpec {
  /** The encapsulation, outermost first: two or more entries nest (IPIP inside IPIP...). */
  outer: OuterSpec | OuterSpec[];
  /** The packet inside: built from a spec, or given as bytes (e.g. a packet captured from a client). */
  inner: PacketSpec | Uint8Array;
  /**
   * Keep only the first `n` bytes of the innermost packet (its header still claims its full
   * length; the outer lengths count what is kept): below 20 / 40 bytes a truncated inner header.
   */
  truncateInner?: number;
}

export interface EthSpec {
  dst: string | Uint8Array;
  src: string | Uint8Array;
  /** 802.1Q VLAN id; absent: untagged (lab peers tag their frames in tc). */
  vlan?: number;
}

function family(a: IpAddr): 4 | 6 { return typeof a === 'number' ? 4 : 6; }

function addrs(src: string, dst: string, what: string): { s: IpAddr; d: IpAddr; v: 4 | 6 } {
  const s = parseAddr(src);
  const d = parseAddr(dst);
  if (family(s) !== family(d)) throw new RangeError(`${what}: ${src} and ${dst} are of different families`);
  return { s, d, v: family(s) };
}

/** A plain IPv4/IPv6 packet (see PacketSpec). */
export function ipPacket(spec: PacketSpec): Uint8Array {
  const { s, d, v } = addrs(spec.src, spec.dst, 'packet');
  const proto = spec.proto ?? IPPROTO_UDP;
  const data = spec.payload ?? new Uint8Array(0);
  let l4: Uint8Array;
  if (proto === IPPROTO_UDP) {
    l4 = new Uint8Array(UDP_HLEN + data.length);
    l4.set(data, UDP_HLEN);
    writeUdp(l4, 0, spec.sport ?? 40000, spec.dport ?? 9, data.length, s, d);
  } else if (proto === IPPROTO_TCP) {
    const seg = new TcpSegmentOut();
    const t = spec.tcp ?? {};
    seg.srcPort = spec.sport ?? 40000; seg.dstPort = spec.dport ?? 80;
    seg.flags = t.flags ?? TH_SYN; seg.seq = t.seq ?? 1; seg.ack = t.ack ?? 0; seg.window = t.window ?? 65535;
    seg.mss = t.mss ?? 0;
    const hl = tcpHeaderLen(seg);
    l4 = new Uint8Array(hl + data.length);
    l4.set(data, hl);
    writeTcp(l4, 0, seg, data.length, s, d);
  } else {
    l4 = data;
  }
  const ttl = spec.ttl ?? 64;
  const tos = spec.tos ?? 0;
  if (v === 4) {
    const b = new Uint8Array(IPV4_HLEN + l4.length);
    b.set(l4, IPV4_HLEN);
    writeIpv4(b, 0, s as number, d as number, proto, l4.length, ttl, spec.id ?? 1, spec.df === false ? 0 : IP_DF, tos);
    if (spec.badChecksum) spoilChecksum(b);
    return b;
  }
  if (spec.badChecksum) throw new RangeError('badChecksum: IPv6 has no header checksum');
  const b = new Uint8Array(IPV6_HLEN + l4.length);
  b.set(l4, IPV6_HLEN);
  writeIpv6(b, 0, s as Ip6, d as Ip6, proto, l4.length, ttl, spec.flowLabel ?? 0, tos);
  return b;
}

function spoilChecksum(b: Uint8Array, off = 0): void {
  const c = ((b[off + 10]! << 8) | b[off + 11]!) ^ 1;
  b[off + 10] = c >>> 8; b[off + 11] = c & 0xff;
}

/** `inner` inside one outer header (see OuterSpec). */
export function encapsulate(outer: OuterSpec, inner: Uint8Array): Uint8Array {
  const { s, d, v } = addrs(outer.src, outer.dst, 'outer');
  const proto = outer.proto ?? ((inner[0]! >> 4) === 6 ? IPPROTO_IPV6 : IPPROTO_IPIP);
  const ttl = outer.ttl ?? 64;
  const tos = outer.tos ?? 0;
  const fr = outer.fragment;
  if (fr && (fr.offset % 8 !== 0 || fr.offset < 0 || fr.offset > 0xfff8)) throw new RangeError(`fragment offset ${fr.offset}: a multiple of 8 below 65536`);
  if (v === 4) {
    const b = new Uint8Array(IPV4_HLEN + inner.length);
    b.set(inner, IPV4_HLEN);
    let ff = fr ? (fr.more ? IP_MF : 0) | (fr.offset >> 3) : 0;
    if (outer.df ?? !fr) ff |= IP_DF;
    writeIpv4(b, 0, s as number, d as number, proto, inner.length, ttl, outer.id ?? fr?.id ?? 1, ff, tos);
    if (outer.badChecksum) spoilChecksum(b);
    return b;
  }
  if (outer.badChecksum) throw new RangeError('badChecksum: IPv6 has no header checksum');
  const fh = fr ? IPV6_FRAG_HLEN : 0;
  const b = new Uint8Array(IPV6_HLEN + fh + inner.length);
  writeIpv6(b, 0, s as Ip6, d as Ip6, fr ? IPPROTO_FRAGMENT : proto, fh + inner.length, ttl, outer.flowLabel ?? 0, tos);
  if (fr) writeFragHdr(b, IPV6_HLEN, proto, fr.offset, fr.more, fr.id ?? outer.id ?? 1);
  b.set(inner, IPV6_HLEN + fh);
  return b;
}

/**
 * An encapsulated packet (no link header): the inner packet, cut to `truncateInner` bytes if
 * asked, wrapped in each outer header from the innermost to the outermost.
 */
export function craftEncapsulated(spec: EncapSpec): Uint8Array {
  let p = spec.inner instanceof Uint8Array ? spec.inner : ipPacket(spec.inner);
  if (spec.truncateInner !== undefined) {
    if (!Number.isInteger(spec.truncateInner) || spec.truncateInner < 0 || spec.truncateInner > p.length) {
      throw new RangeError(`truncateInner ${spec.truncateInner}: 0..${p.length}`);
    }
    p = p.slice(0, spec.truncateInner);
  }
  const layers = Array.isArray(spec.outer) ? spec.outer : [spec.outer];
  if (layers.length === 0) throw new RangeError('craftEncapsulated: at least one outer header');
  for (let i = layers.length - 1; i >= 0; i--) p = encapsulate(layers[i]!, p);
  return p;
}

/** An Ethernet frame (ethertype from the IP version) around `packet`, padded to the 60-byte minimum. */
export function ethFrame(packet: Uint8Array, eth: EthSpec): Uint8Array {
  const mac = (m: string | Uint8Array) => (typeof m === 'string' ? parseMac(m) : m);
  const hl = eth.vlan === undefined ? 14 : 18;
  const b = new Uint8Array(Math.max(60, hl + packet.length));
  const et = (packet[0]! >> 4) === 6 ? ETH_P_IPV6 : ETH_P_IPV4;
  writeEth(b, 0, mac(eth.dst), 0, mac(eth.src), 0, et, eth.vlan ?? -1);
  b.set(packet, hl);
  return b;
}

/** One IP header of a received packet, decoded for assertions. */
export interface IpInfo {
  version: 4 | 6;
  src: string;
  dst: string;
  /** IPv4 protocol; IPv6: the next header after the fixed header and a Fragment header if any. */
  proto: number;
  ttl: number;
  /** IPv4 TOS / IPv6 traffic class. */
  tos: number;
  headerLen: number;
  /** The length the header claims for the whole packet (IPv6: 40 + payload length). */
  totalLen: number;
  /** IPv4: DF flag; IPv6: false. */
  df: boolean;
  id: number;
  /** Fragment fields (IPv4 header or IPv6 Fragment header). */
  mf: boolean;
  fragOffset: number;
  /** IPv4 header checksum verifies (IPv6: true). */
  checksumOk: boolean;
  flowLabel: number;
}

function addrText(b: Uint8Array, off: number, v: 4 | 6): string {
  if (v === 4) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  const w = (o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  return addrToString(new Ip6(w(off), w(off + 4), w(off + 8), w(off + 12)));
}

/** Decodes the IP header at the start of `b`; null when it is too short or of another version. */
export function ipInfo(b: Uint8Array): IpInfo | null {
  if (b.length < 1) return null;
  const v = b[0]! >> 4;
  if (v === 4) {
    const hl = (b[0]! & 15) * 4;
    if (b.length < 20 || hl < 20 || b.length < hl) return null;
    const ff = (b[6]! << 8) | b[7]!;
    return {
      version: 4, src: addrText(b, 12, 4), dst: addrText(b, 16, 4), proto: b[9]!, ttl: b[8]!, tos: b[1]!,
      headerLen: hl, totalLen: (b[2]! << 8) | b[3]!, df: (ff & IP_DF) !== 0, id: (b[4]! << 8) | b[5]!,
      mf: (ff & IP_MF) !== 0, fragOffset: (ff & 0x1fff) * 8, checksumOk: fold(sum16(b, 0, hl)) === 0, flowLabel: 0,
    };
  }
  if (v === 6) {
    if (b.length < IPV6_HLEN) return null;
    let proto = b[6]!;
    let hl = IPV6_HLEN;
    let mf = false, fragOffset = 0, id = 0;
    if (proto === IPPROTO_FRAGMENT && b.length >= IPV6_HLEN + IPV6_FRAG_HLEN) {
      proto = b[40]!;
      const fo = (b[42]! << 8) | b[43]!;
      fragOffset = fo & 0xfff8; mf = (fo & 1) === 1;
      id = ((b[44]! << 24) | (b[45]! << 16) | (b[46]! << 8) | b[47]!) >>> 0;
      hl += IPV6_FRAG_HLEN;
    }
    return {
      version: 6, src: addrText(b, 8, 6), dst: addrText(b, 24, 6), proto, ttl: b[7]!,
      tos: ((b[0]! & 15) << 4) | (b[1]! >> 4), headerLen: hl, totalLen: IPV6_HLEN + ((b[4]! << 8) | b[5]!),
      df: false, id, mf, fragOffset, checksumOk: true, flowLabel: ((b[1]! & 15) << 16) | (b[2]! << 8) | b[3]!,
    };
  }
  return null;
}

/** An encapsulated packet taken apart: its outer header and the bytes it carries (the inner packet). */
export interface Decapsulated { outer: IpInfo; inner: Uint8Array; kind: EncapKind | null }

/**
 * Splits a received IP packet (no link header) into its outer header and what it carries, up to
 * the outer's claimed length; `kind` is set when the outer protocol is 4 or 41 and the inner
 * version agrees with it. Null when the outer header does not decode.
 */
export function decapsulate(b: Uint8Array): Decapsulated | null {
  const outer = ipInfo(b);
  if (!outer) return null;
  const inner = b.slice(outer.headerLen, Math.min(b.length, outer.totalLen));
  const iv = inner.length ? inner[0]! >> 4 : 0;
  const kind = (outer.proto === IPPROTO_IPIP && iv === 4) || (outer.proto === IPPROTO_IPV6 && iv === 6)
    ? encapKind(iv as 4 | 6, outer.version) : null;
  return { outer, inner, kind };
}

/** Hex text of bytes (as the python helpers exchange them). */
export function toHex(b: Uint8Array): string { return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex'); }
export function fromHex(s: string): Uint8Array { return new Uint8Array(Buffer.from(s, 'hex')); }
