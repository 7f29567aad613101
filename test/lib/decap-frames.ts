/**
 * What the VIP tests add to test/lib/encap-frames.ts (the one builder of tunnel packets, used
 * here for the outer header and the Ethernet frame): packets from text addresses with the few
 * things those tests need (inner IPv4 fragments, ICMP echo and errors, ARP replies and Neighbor
 * Advertisements from a gateway, an IPv6 tunnel header followed by extension headers), and a
 * decoder of what a host transmits (ARP, IPv4 and IPv6, with the UDP, TCP and ICMP parts checked).
 */
import { parseMac } from '../../driver/types';
import type { Burst } from '../../driver/types';
import type { MemoryEndpoint } from '../../driver/memory';
import { ArpPacket, ARP_LEN, writeArp } from '../../protocols/arp';
import { fold, sum16 } from '../../protocols/checksum';
import { ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6, EthFrame, writeEth } from '../../protocols/ethernet';
import { addrToString, Ip6, IpAddr, parseAddr, parseIp4, parseIp6 } from '../../protocols/ip/addr';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4Header, writeIpv4 } from '../../protocols/ipv4';
import { IPPROTO_ICMPV6 } from '../../protocols/ipv6';
import { setIcmp6Checksum } from '../../protocols/icmpv6';
import { writeNa } from '../../protocols/ndp';
import { TcpHeader } from '../../protocols/tcp';
import { Drop } from '../../protocols/drop';
import { UdpHeader, writeUdp } from '../../protocols/udp';
import { Ext, packet } from './ipv6-frames';
import { encapsulate, ethFrame } from './encap-frames';
import { decode6 } from './engine6';

/** The load balancer's MAC (no frame of the VS may ever go there) and the gateway's. */
export const LB_MAC = parseMac('02:00:00:00:0b:01');
export const GW_MAC = parseMac('02:00:00:00:0c:01');
export const macText = (m: Uint8Array): string => Array.from(m, (x) => x.toString(16).padStart(2, '0')).join(':');

const v6 = (s: string) => s.includes(':');

/** An IPv4 packet src → dst carrying `payload` as protocol `proto`. */
export function ipv4(src: string, dst: string, proto: number, payload: Uint8Array,
  o: { id?: number; flagsFrag?: number; ttl?: number; tos?: number } = {}): Uint8Array {
  const b = new Uint8Array(20 + payload.length);
  writeIpv4(b, 0, parseIp4(src), parseIp4(dst), proto, payload.length, o.ttl ?? 64, o.id ?? 1, o.flagsFrag ?? 0, o.tos ?? 0);
  b.set(payload, 20);
  return b;
}

/** An IPv6 packet src → dst: `exts` (raw extension headers), then `payload` as next header `nh`. */
export function ipv6(src: string, dst: string, nh: number, payload: Uint8Array, exts: Ext[] = []): Uint8Array {
  return packet(exts, nh, payload, parseIp6(dst), parseIp6(src));
}

/** An IP packet of the family of `src`. */
export function ipPacket(src: string, dst: string, proto: number, payload: Uint8Array): Uint8Array {
  return v6(src) ? ipv6(src, dst, proto, payload) : ipv4(src, dst, proto, payload);
}

/** A UDP datagram (header and data) checksummed for src → dst (either family). */
export function udp(src: string, sport: number, dst: string, dport: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(8 + data.length);
  b.set(data, 8);
  writeUdp(b, 0, sport, dport, data.length, parseAddr(src), parseAddr(dst));
  return b;
}

/** A whole IP packet holding a UDP datagram. */
export function udpPacket(src: string, sport: number, dst: string, dport: number, data: Uint8Array): Uint8Array {
  return ipPacket(src, dst, IPPROTO_UDP, udp(src, sport, dst, dport, data));
}

/** An ICMP Echo Request (IPv4) or ICMPv6 Echo Request (checksummed for src → dst) with `data`. */
export function echoRequest(src: string, dst: string, id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m[0] = v6(src) ? 128 : 8;
  m[4] = id >>> 8; m[5] = id & 0xff; m[6] = seq >>> 8; m[7] = seq & 0xff;
  m.set(data, 8);
  if (v6(src)) setIcmp6Checksum(m, 0, m.length, parseIp6(src), parseIp6(dst));
  else { const c = fold(sum16(m, 0, m.length)); m[2] = c >>> 8; m[3] = c & 0xff; }
  return ipPacket(src, dst, v6(src) ? IPPROTO_ICMPV6 : IPPROTO_ICMP, m);
}

/**
 * An ICMP error (IPv4: type/code with the next-hop MTU in the low 16 bits of the second word, RFC
 * 1191) or ICMPv6 error (the MTU in the 32-bit field, RFC 4443 3.2) from `src` to `dst` quoting
 * `quoted` (as much as fits), as a whole IP packet.
 */
export function icmpError(src: string, dst: string, type: number, code: number, mtu: number, quoted: Uint8Array): Uint8Array {
  const q = v6(src) ? quoted.subarray(0, Math.min(quoted.length, 1280 - 48)) : quoted.subarray(0, Math.min(quoted.length, 28));
  const m = new Uint8Array(8 + q.length);
  m[0] = type; m[1] = code;
  if (v6(src)) { m[4] = mtu >>> 24; m[5] = (mtu >>> 16) & 0xff; }
  m[6] = (mtu >>> 8) & 0xff; m[7] = mtu & 0xff;
  m.set(q, 8);
  if (v6(src)) setIcmp6Checksum(m, 0, m.length, parseIp6(src), parseIp6(dst));
  else { const c = fold(sum16(m, 0, m.length)); m[2] = c >>> 8; m[3] = c & 0xff; }
  return ipPacket(src, dst, v6(src) ? IPPROTO_ICMPV6 : IPPROTO_ICMP, m);
}

/**
 * `inner` (an IP packet) inside an outer header from `outerSrc` to `outerDst` (encap-frames'
 * `encapsulate`: IPv4 outer with protocol 4 for IPv4 inside or 41 for IPv6, IPv6 outer with next
 * header 4 or 41). `proto` forces the protocol number (for mismatch tests); `flagsFrag` makes the
 * outer IPv4 header a fragment (MF and the offset in 8-byte units); `exts`: raw extension headers
 * between an outer IPv6 header and what it carries.
 */
export function encap(outerSrc: string, outerDst: string, inner: Uint8Array,
  o: { proto?: number; flagsFrag?: number; exts?: Ext[]; id?: number } = {}): Uint8Array {
  if (o.exts?.length) return ipv6(outerSrc, outerDst, o.proto ?? ((inner[0]! >>> 4) === 4 ? 4 : 41), inner, o.exts);
  const ff = o.flagsFrag ?? 0;
  const fragment = ff & 0x3fff ? { offset: (ff & 0x1fff) << 3, more: (ff & 0x2000) !== 0 } : undefined;
  return encapsulate({ src: outerSrc, dst: outerDst, proto: o.proto, id: o.id, fragment }, inner);
}

/** An Ethernet frame (tagged `vlan`, or untagged when -1) carrying the IP packet `l3`. */
export function eth(vlan: number, dst: Uint8Array, src: Uint8Array, l3: Uint8Array): Uint8Array {
  return ethFrame(l3, { dst, src, vlan: vlan >= 0 ? vlan : undefined });
}

/** An ARP reply from (mac, ip) to (tha, tpa). */
export function arpReply(vlan: number, mac: Uint8Array, ip: string, tha: Uint8Array, tpa: string): Uint8Array {
  const b = new Uint8Array(64);
  const hl = writeEth(b, 0, tha, 0, mac, 0, ETH_P_ARP, vlan);
  writeArp(b, hl, 2, mac, 0, parseIp4(ip), tha, 0, parseIp4(tpa));
  return b.subarray(0, Math.max(60, hl + ARP_LEN));
}

/** A solicited Neighbor Advertisement for `target` (owned by `mac`) to `dst`, as an IPv6 packet. */
export function naPacket(target: string, mac: Uint8Array, dst: string): Uint8Array {
  const b = new Uint8Array(32);
  const n = writeNa(b, 0, parseIp6(target), 0x60, mac, parseIp6(target), parseIp6(dst));
  const p = ipv6(target, dst, IPPROTO_ICMPV6, b.subarray(0, n));
  p[7] = 255; // RFC 4861 7.1.2: hop limit 255
  return p;
}

/** A transmitted frame, decoded (and checked: every checksum must hold). */
export interface Wire {
  vlan: number;
  ethDst: string;
  ethSrc: string;
  arp?: { op: number; spa: string; tpa: string };
  ip?: {
    v: 4 | 6; src: string; dst: string; proto: number; ttl: number; len: number; fragment: boolean; l4: Uint8Array;
    /** IPv4 DF. */
    df: boolean;
    /** The whole IP packet (what an ICMP error about it quotes). */
    packet: Uint8Array;
  };
  udp?: { sport: number; dport: number; data: Uint8Array };
  tcp?: { sport: number; dport: number; flags: number; seq: number; ack: number; mss: number; len: number };
  icmp?: { type: number; code: number; rest: number; body: Uint8Array };
  /** An NDP Neighbor Solicitation's target. */
  nsTarget?: string;
  frameLen: number;
}

/** Decodes one transmitted frame; throws on a malformed one (a checksum that does not hold, too). */
export function decodeWire(raw: Uint8Array): Wire {
  const e = new EthFrame();
  if (e.parse(raw, 0, raw.length) !== Drop.None) throw new Error('bad Ethernet header');
  const w: Wire = { vlan: e.vlan, ethDst: macText(raw.subarray(0, 6)), ethSrc: macText(raw.subarray(6, 12)), frameLen: raw.length };
  let src: IpAddr;
  let dst: IpAddr;
  if (e.etherType === ETH_P_ARP) {
    const a = new ArpPacket();
    if (a.parse(raw, e.l3Off, e.l3Len) !== Drop.None) throw new Error('bad ARP');
    w.arp = { op: a.op, spa: addrToString(a.spa), tpa: addrToString(a.tpa) };
    return w;
  } else if (e.etherType === ETH_P_IPV4) {
    const h = new Ipv4Header();
    const d = h.parse(raw, e.l3Off, e.l3Len);
    if (d !== Drop.None) throw new Error(`bad IPv4 (${d})`);
    src = h.src; dst = h.dst;
    w.ip = { v: 4, src: addrToString(h.src), dst: addrToString(h.dst), proto: h.proto, ttl: h.ttl, len: h.totalLen, df: h.df,
      fragment: h.isFragment, l4: raw.slice(h.payloadOff, h.payloadOff + h.payloadLen), packet: raw.slice(e.l3Off, e.l3Off + h.totalLen) };
  } else if (e.etherType === ETH_P_IPV6) {
    const d = decode6(raw)!;
    src = parseIp6(d.src); dst = parseIp6(d.dst);
    const len = 40 + ((raw[e.l3Off + 4]! << 8) | raw[e.l3Off + 5]!);
    w.ip = { v: 6, src: d.src, dst: d.dst, proto: d.nh, ttl: d.hop, len, df: false,
      fragment: d.frag !== null && (d.frag.offset !== 0 || d.frag.more), l4: d.l4, packet: raw.slice(e.l3Off, e.l3Off + len) };
  } else {
    return w;
  }
  const ip = w.ip;
  if (ip.fragment) return w;
  const l4 = ip.l4;
  if (ip.proto === IPPROTO_UDP) {
    const u = new UdpHeader();
    if (u.parse(l4, 0, l4.length, src, dst) !== Drop.None) throw new Error('bad UDP (checksum?)');
    w.udp = { sport: u.srcPort, dport: u.dstPort, data: l4.slice(u.payloadOff, u.payloadOff + u.payloadLen) };
  } else if (ip.proto === IPPROTO_TCP) {
    const t = new TcpHeader();
    if (t.parse(l4, 0, l4.length, src, dst) !== Drop.None) throw new Error('bad TCP (checksum?)');
    w.tcp = { sport: t.srcPort, dport: t.dstPort, flags: t.flags, seq: t.seq, ack: t.ack, mss: t.mss, len: t.payloadLen };
  } else if (ip.proto === IPPROTO_ICMP || ip.proto === IPPROTO_ICMPV6) {
    const sum = ip.proto === IPPROTO_ICMP ? fold(sum16(l4, 0, l4.length)) : icmp6Sum(l4, src as Ip6, dst as Ip6);
    if (sum !== 0) throw new Error('bad ICMP checksum');
    w.icmp = { type: l4[0]!, code: l4[1]!, rest: ((l4[4]! << 24) | (l4[5]! << 16) | (l4[6]! << 8) | l4[7]!) >>> 0, body: l4.slice(8) };
    if (ip.proto === IPPROTO_ICMPV6 && l4[0] === 135) w.nsTarget = addrToString(new Ip6(rd32(l4, 8), rd32(l4, 12), rd32(l4, 16), rd32(l4, 20)));
  }
  return w;
}

const rd32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

function icmp6Sum(l4: Uint8Array, src: Ip6, dst: Ip6): number {
  const copy = l4.slice();
  const c0 = (copy[2]! << 8) | copy[3]!;
  setIcmp6Checksum(copy, 0, copy.length, src, dst);
  return ((copy[2]! << 8) | copy[3]!) === c0 ? 0 : 1;
}

/** Records (decoded) every frame an endpoint transmits. */
export function tapWire(ep: MemoryEndpoint): Wire[] {
  const seen: Wire[] = [];
  const orig = ep.tx.bind(ep);
  ep.tx = (b: Burst, now: number) => {
    for (let i = 0; i < b.n; i++) seen.push(decodeWire(ep.pool.bytes.slice(b.off[i]!, b.off[i]! + b.len[i]!)));
    return orig(b, now);
  };
  return seen;
}
