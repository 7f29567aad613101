/**
 * Wire-side helpers for tests over two hosts (test/lib/world.ts): record the TCP segments an
 * endpoint transmits, inject hand-made TCP segments and raw frames from host b's side (any source:
 * spoofing), and build ICMP errors quoting a datagram of host a.
 */
import { TcpHeader, tcpHeaderLen, writeTcp } from '../../protocols/tcp';
import { TcpSegmentOut } from '../../protocols/tcp/types';
import { parseIpv4, writeIpv4, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IP_DF } from '../../protocols/ipv4';
import { writeEth, ETH_P_IPV4 } from '../../protocols/ethernet';
import { writeIcmpError } from '../../protocols/icmp';
import { Burst } from '../../driver/types';
import type { MemoryEndpoint } from '../../driver/memory';
import type { World } from './world';

export const A = parseIpv4('10.1.1.1');
export const B = parseIpv4('10.1.1.2');

export interface Seen { src: number; dst: number; sport: number; dport: number; flags: number; seq: number; ack: number; mss: number; len: number; frameLen: number; raw: Uint8Array }

/** Records every IPv4/TCP segment an endpoint transmits. */
export function tap(ep: MemoryEndpoint): Seen[] {
  const seen: Seen[] = [];
  const h = new TcpHeader();
  const orig = ep.tx.bind(ep);
  ep.tx = (b: Burst, now: number) => {
    const bytes = ep.pool.bytes;
    for (let i = 0; i < b.n; i++) {
      const off = b.off[i]!;
      const len = b.len[i]!;
      let l3 = off + 14;
      let et = (bytes[off + 12]! << 8) | bytes[off + 13]!;
      if (et === 0x8100) { et = (bytes[off + 16]! << 8) | bytes[off + 17]!; l3 += 4; }
      if (et !== ETH_P_IPV4 || bytes[l3 + 9] !== IPPROTO_TCP) continue;
      const ihl = (bytes[l3]! & 15) * 4;
      const tot = (bytes[l3 + 2]! << 8) | bytes[l3 + 3]!;
      const rd = (o: number) => ((bytes[o]! << 24) | (bytes[o + 1]! << 16) | (bytes[o + 2]! << 8) | bytes[o + 3]!) >>> 0;
      const src = rd(l3 + 12);
      const dst = rd(l3 + 16);
      if (h.parse(bytes, l3 + ihl, tot - ihl, src, dst)) continue;
      seen.push({ src, dst, sport: h.srcPort, dport: h.dstPort, flags: h.flags, seq: h.seq, ack: h.ack, mss: h.mss, len: h.payloadLen,
        frameLen: len, raw: bytes.slice(off, off + len) });
    }
    return orig(b, now);
  };
  return seen;
}

/** Sends a hand-made TCP segment to host a from host b's wire side (any source address and port). */
export function inject(w: World, s: { src?: number; sport: number; dport: number; flags: number; seq?: number; ack?: number; mss?: number; data?: Uint8Array }): void {
  const out = new TcpSegmentOut();
  out.srcPort = s.sport;
  out.dstPort = s.dport;
  out.seq = s.seq ?? 1000;
  out.ack = s.ack ?? 0;
  out.flags = s.flags;
  out.window = 65535;
  if (s.mss) out.mss = s.mss;
  const src = s.src ?? B;
  const data = s.data ?? new Uint8Array(0);
  const hl = tcpHeaderLen(out);
  const vs = w.b.vs[0]!;
  w.b.engine.tcpEmit(vs, vs.links[0]!, w.link.a.mac, src, A, hl + data.length, (b, o) => {
    b.set(data, o + hl);
    writeTcp(b, o, out, data.length, src, A);
    return hl + data.length;
  }, 0);
}

/** Sends a raw Ethernet frame from host b's endpoint. */
export function injectFrame(w: World, bytes: Uint8Array): void {
  const ep = w.link.b;
  const f = ep.pool.alloc();
  const at = ep.pool.dataStart(f);
  ep.pool.bytes.set(bytes, at);
  const burst = new Burst(1);
  burst.push(f, at, bytes.length);
  ep.tx(burst, w.now());
}

/**
 * The first 28 bytes of an IPv4 datagram src → dst (`payloadLen` bytes of L4 payload, DF set unless
 * `df` is false, fragment offset `fragOff` in bytes) whose L4 header starts with the ports and, for
 * TCP, the sequence number `seq`: what an ICMP error quotes.
 */
export function quote(proto: number, src: number, sport: number, dst: number, dport: number, seq = 0,
  o: { payloadLen?: number; df?: boolean; fragOff?: number } = {}): Uint8Array {
  const q = new Uint8Array(28);
  writeIpv4(q, 0, src, dst, proto, o.payloadLen ?? 1480, 64, 4321, (o.df === false ? 0 : IP_DF) | ((o.fragOff ?? 0) >>> 3), 0);
  q[20] = sport >>> 8; q[21] = sport & 0xff; q[22] = dport >>> 8; q[23] = dport & 0xff;
  if (proto === IPPROTO_TCP) { q[24] = seq >>> 24; q[25] = (seq >>> 16) & 0xff; q[26] = (seq >>> 8) & 0xff; q[27] = seq & 0xff; }
  else if (proto === IPPROTO_UDP) { q[24] = 0; q[25] = 28; }
  return q;
}

/** An Ethernet frame (VLAN 10, host b's MAC → host a's) carrying ICMP type/code quoting `q`, from `from` to `to`. */
export function icmpErrorFrame(w: World, type: number, code: number, mtu: number, q: Uint8Array, from = B, to = A): Uint8Array {
  const frame = new Uint8Array(18 + 20 + 8 + q.length);
  writeEth(frame, 0, w.link.a.mac, 0, w.link.b.mac, 0, ETH_P_IPV4, 10);
  const il = writeIcmpError(frame, 18 + 20, type, code, mtu, q, 0, q.length);
  writeIpv4(frame, 18, from, to, IPPROTO_ICMP, il, 64, 1, 0, 0);
  return frame.subarray(0, 18 + 20 + il);
}

/** Frames of each host's pool that are still held by someone (0 once everything settled). */
export function held(w: World): [number, number] {
  return [w.a.engine.devices[0]!.pool.check().held, w.b.engine.devices[0]!.pool.check().held];
}

/** A drop counter of host `side`'s first VS. */
export function drops(w: World, side: 'a' | 'b', name: string): number {
  return w[side].vs[0]!.counters.toJSON().drops.reasons[name] ?? 0;
}
