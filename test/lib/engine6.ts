/**
 * IPv6 wire helpers for engine tests over two hosts (test/lib/world.ts with `ipv6: true`): build
 * whole Ethernet/IPv6 frames (any source, hop limit, extension headers) to inject at host a, and
 * record and decode every IPv6 frame an endpoint transmits.
 */
import { writeEth, ETH_P_IPV6, EthFrame } from '../../protocols/ethernet';
import { Ip6, ip6At, ip6ToString, parseIp6, solicitedNode, multicastMac6 } from '../../protocols/ip/addr';
import { Ipv6Header, IPPROTO_ICMPV6, IPPROTO_FRAGMENT } from '../../protocols/ipv6';
import { setIcmp6Checksum } from '../../protocols/icmpv6';
import { writeNs, writeNa } from '../../protocols/ndp';
import { writeUdp } from '../../protocols/udp';
import { Burst } from '../../driver/types';
import type { MemoryEndpoint } from '../../driver/memory';
import type { World } from './world';
import { Ext, packet } from './ipv6-frames';
import { injectFrame } from './inject';

export const A6 = parseIp6('fd00::1');
export const B6 = parseIp6('fd00::2');
/** A spoofed neighbor on the prefix (no host holds it). */
export const C6 = parseIp6('fd00::99');
export { solicitedNode, multicastMac6 };

/** A MAC for spoofed senders. */
export const PEER_MAC = Uint8Array.from([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01]);

export interface F6 {
  src: Ip6;
  dst: Ip6;
  nh: number;
  l4: Uint8Array;
  exts?: Ext[];
  hop?: number;
  ethDst?: Uint8Array;
  ethSrc?: Uint8Array;
  vlan?: number;
}

/** An Ethernet frame (VLAN 10 by default, to host a's MAC) carrying IPv6 with `exts` then `l4` of protocol `nh`. */
export function frame6(w: World, o: F6): Uint8Array {
  const ip = packet(o.exts ?? [], o.nh, o.l4, o.dst, o.src);
  ip[7] = o.hop ?? 64;
  const vlan = o.vlan ?? 10;
  const hl = vlan >= 0 ? 18 : 14;
  const f = new Uint8Array(hl + ip.length);
  writeEth(f, 0, o.ethDst ?? w.link.a.mac, 0, o.ethSrc ?? PEER_MAC, 0, ETH_P_IPV6, vlan);
  f.set(ip, hl);
  return f;
}

/** An ICMPv6 message (type, code, 4 bytes of header data, body) checksummed for src → dst. */
export function icmp6(type: number, code: number, src: Ip6, dst: Ip6, rest: number, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const m = new Uint8Array(8 + body.length);
  m[0] = type; m[1] = code;
  m[4] = rest >>> 24; m[5] = (rest >>> 16) & 0xff; m[6] = (rest >>> 8) & 0xff; m[7] = rest & 0xff;
  m.set(body, 8);
  setIcmp6Checksum(m, 0, m.length, src, dst);
  return m;
}

/** An echo request (id, seq) with `data`. */
export function echo6(src: Ip6, dst: Ip6, id: number, seq: number, data: Uint8Array = new Uint8Array(8)): Uint8Array {
  return icmp6(128, 0, src, dst, ((id << 16) | seq) >>> 0, data);
}

/** A Neighbor Solicitation for `target` (with SLLA `sll` unless null). */
export function ns6(target: Ip6, src: Ip6, dst: Ip6, sll: Uint8Array | null): Uint8Array {
  const b = new Uint8Array(40);
  return b.slice(0, writeNs(b, 0, target, sll, src, dst));
}

/** A Neighbor Advertisement for `target` with `flags` (0x40 S, 0x20 O) and TLLA `tll` unless null. */
export function na6(target: Ip6, flags: number, tll: Uint8Array | null, src: Ip6, dst: Ip6): Uint8Array {
  const b = new Uint8Array(32);
  return b.slice(0, writeNa(b, 0, target, flags, tll, src, dst));
}

/** A UDP datagram sport → dport with `data`, checksummed for src → dst. */
export function udp6(src: Ip6, sport: number, dst: Ip6, dport: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(8 + data.length);
  b.set(data, 8);
  writeUdp(b, 0, sport, dport, data.length, src, dst);
  return b;
}

/** Injects a frame at host a (from host b's wire side). */
export function send(w: World, f: Uint8Array): void {
  injectFrame(w, f);
}

/** A decoded IPv6 frame. */
export interface Out6 {
  vlan: number;
  ethDst: string;
  ethSrc: string;
  src: string;
  dst: string;
  hop: number;
  flow: number;
  /** Upper layer after the chain (for a fragment: the Fragment header's next header). */
  nh: number;
  /** Extension header types walked, in order. */
  exts: number[];
  frag: { offset: number; more: boolean; id: number } | null;
  /** The upper-layer bytes. */
  l4: Uint8Array;
  /** ICMPv6 type/code (first two bytes of l4) when nh is 58 and not a fragment. */
  type: number;
  code: number;
  raw: Uint8Array;
}

const hex = (b: Uint8Array, o: number) => Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');

/** A MAC address as text (02:aa:...), as `Out6.ethDst`/`ethSrc`. */
export const mac = (b: Uint8Array): string => hex(b, 0);

/** The IPv6 address in the 16 bytes of `b` at `off`, as text. */
export const addrAt = (b: Uint8Array, off: number): string => ip6ToString(ip6At(b, off));

/** Decodes an IPv6 frame (null if not IPv6). */
export function decode6(raw: Uint8Array): Out6 | null {
  const e = new EthFrame();
  if (e.parse(raw, 0, raw.length) || e.etherType !== ETH_P_IPV6) return null;
  const h = new Ipv6Header();
  h.parse(raw, e.l3Off, e.l3Len);
  const exts: number[] = [];
  let nh = raw[e.l3Off + 6]!;
  let p = e.l3Off + 40;
  const end = e.l3Off + 40 + ((raw[e.l3Off + 4]! << 8) | raw[e.l3Off + 5]!);
  let frag: Out6['frag'] = null;
  for (let k = 0; k < 8 && (nh === 0 || nh === 43 || nh === 44 || nh === 60) && p + 8 <= end; k++) {
    exts.push(nh);
    if (nh === IPPROTO_FRAGMENT) {
      const fo = (raw[p + 2]! << 8) | raw[p + 3]!;
      frag = { offset: fo & 0xfff8, more: (fo & 1) === 1, id: ((raw[p + 4]! << 24) | (raw[p + 5]! << 16) | (raw[p + 6]! << 8) | raw[p + 7]!) >>> 0 };
      nh = raw[p]!;
      p += 8;
    } else {
      const len = (raw[p + 1]! + 1) * 8;
      nh = raw[p]!;
      p += len;
    }
  }
  const l4 = raw.slice(p, end);
  const isIcmp = nh === IPPROTO_ICMPV6 && (!frag || frag.offset === 0);
  return {
    vlan: e.vlan, ethDst: hex(raw, 0), ethSrc: hex(raw, 6),
    src: ip6ToString(ip6At(raw, e.l3Off + 8)), dst: ip6ToString(ip6At(raw, e.l3Off + 24)),
    hop: raw[e.l3Off + 7]!, flow: h.flowLabel || (((raw[e.l3Off + 1]! & 0x0f) << 16) | (raw[e.l3Off + 2]! << 8) | raw[e.l3Off + 3]!),
    nh, exts, frag, l4, type: isIcmp ? l4[0]! : -1, code: isIcmp ? l4[1]! : -1, raw,
  };
}

/** Records every IPv6 frame an endpoint transmits (decoded). */
export function tap6(ep: MemoryEndpoint): Out6[] {
  const seen: Out6[] = [];
  const orig = ep.tx.bind(ep);
  ep.tx = (b: Burst, now: number) => {
    const bytes = ep.pool.bytes;
    for (let i = 0; i < b.n; i++) {
      const d = decode6(bytes.slice(b.off[i]!, b.off[i]! + b.len[i]!));
      if (d) seen.push(d);
    }
    return orig(b, now);
  };
  return seen;
}

/** ICMPv6 messages of `type` among recorded frames. */
export function icmpOf(seen: Out6[], type: number): Out6[] {
  return seen.filter((o) => o.type === type);
}

/** Frames still held by each host's pool (0 once everything settled). */
export function held(w: World): [number, number] {
  return [w.a.engine.devices[0]!.pool.check().held, w.b.engine.devices[0]!.pool.check().held];
}

/** A drop counter of host `side`'s VS `i`. */
export function drops(w: World, side: 'a' | 'b', name: string, i = 0): number {
  return w[side].vs[i]!.counters.toJSON().drops.reasons[name] ?? 0;
}

/** Drop counters of host `side`'s VS `i`, all of them. */
export function allDrops(w: World, side: 'a' | 'b', i = 0): Record<string, number> {
  return w[side].vs[i]!.counters.toJSON().drops.reasons;
}
