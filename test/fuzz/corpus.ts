/** The mutation corpus: frames of the sample captures and frames built by the project's own emitters. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCapture } from '../../driver/pcap';
import { SAMPLE_PCAPS } from '../lib/env';
import { ETH_P_IPV4, writeEth, writeEthQinQ, ETH_P_ARP } from '../../protocols/ethernet';
import { writeArp, ARP_REQUEST, ARP_REPLY } from '../../protocols/arp';
import { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, parseIpv4, writeIpv4 } from '../../protocols/ipv4';
import { writeUdp } from '../../protocols/udp';
import { writeIcmpError, writeIcmpEchoReply, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_PORT_UNREACH, ICMP_TIME_EXCEEDED } from '../../protocols/icmp';
import { tcpHeaderLen, writeTcp } from '../../protocols/tcp';
import { TcpSegmentOut, TH_ACK, TH_SYN, TH_FIN, TH_PSH, TH_RST } from '../../protocols/tcp/types';
import { fixChecksums } from './lib';
import { ANY6, Ip6, parseIp6, solicitedNode } from '../../protocols/ip/addr';
import { ETH_P_IPV6 } from '../../protocols/ethernet';
import { icmp6Checksum } from '../../protocols/icmpv6';
import { writeNa, writeNs } from '../../protocols/ndp';
import { frag as fragHdr, optsHdr, packet as ip6Packet } from '../lib/ipv6-frames';

export const DEV_MAC = Uint8Array.from([2, 0, 0, 0, 0, 1]);
export const PEER_MAC = Uint8Array.from([2, 0, 0, 0, 0x0a, 2]);
export const BCAST = Uint8Array.from([255, 255, 255, 255, 255, 255]);
const ZERO = new Uint8Array(6);

/** Every frame of the sample captures (Ethernet ones as they are; others too: garbage is welcome). */
export function captureFrames(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const f of fs.readdirSync(SAMPLE_PCAPS).sort()) {
    if (!/\.pcapn?g?$/.test(f)) continue;
    try {
      for (const r of readCapture(path.join(SAMPLE_PCAPS, f))) out.push(r.data.slice());
    } catch { /* a malformed sample capture is kept out of the frame corpus */ }
  }
  return out;
}

/** The sample capture files themselves (for the capture reader). */
export function captureFiles(): Uint8Array[] {
  return fs.readdirSync(SAMPLE_PCAPS).sort().filter((f) => /\.pcap/.test(f))
    .map((f) => new Uint8Array(fs.readFileSync(path.join(SAMPLE_PCAPS, f))));
}

export interface FrameSpec {
  dst?: Uint8Array;
  src?: Uint8Array;
  vlan?: number; // -1 untagged
  outerVlan?: number; // 802.1ad outer tag (with vlan as inner), -1 none
  ipSrc: number;
  ipDst: number;
  ttl?: number;
  id?: number;
  flagsFrag?: number;
  tos?: number;
  /** IPv4 options (length a multiple of 4, at most 40). */
  options?: Uint8Array;
}

function ethHeader(b: Uint8Array, s: FrameSpec, type: number): number {
  const dst = s.dst ?? DEV_MAC, src = s.src ?? PEER_MAC;
  const vlan = s.vlan ?? -1;
  if ((s.outerVlan ?? -1) >= 0) return writeEthQinQ(b, 0, dst, 0, src, 0, type, s.outerVlan!, vlan);
  return writeEth(b, 0, dst, 0, src, 0, type, vlan);
}

/** An IPv4 frame around an L4 payload written by `l4` (which gets the buffer and the L4 offset). */
export function ipFrame(s: FrameSpec, proto: number, l4Len: number, l4: (b: Uint8Array, off: number) => void): Uint8Array {
  const opts = s.options ?? new Uint8Array(0);
  const b = new Uint8Array(22 + 20 + opts.length + l4Len);
  const hl = ethHeader(b, s, ETH_P_IPV4);
  const ihl = 20 + opts.length;
  l4(b, hl + ihl);
  writeIpv4(b, hl, s.ipSrc, s.ipDst, proto, l4Len, s.ttl ?? 64, s.id ?? 1, s.flagsFrag ?? 0, s.tos ?? 0);
  if (opts.length) {
    // Re-lay the header with options: IHL, total length, then the checksum.
    b.set(opts, hl + 20);
    b[hl] = 0x40 | (ihl >> 2);
    const total = ihl + l4Len;
    b[hl + 2] = total >>> 8; b[hl + 3] = total & 0xff;
  }
  const out = b.slice(0, hl + ihl + l4Len);
  fixChecksums(out, out.length);
  return out;
}

export function udpFrameOf(s: FrameSpec, sport: number, dport: number, data: Uint8Array): Uint8Array {
  return ipFrame(s, IPPROTO_UDP, 8 + data.length, (b, o) => {
    b.set(data, o + 8);
    writeUdp(b, o, sport, dport, data.length, s.ipSrc, s.ipDst);
  });
}

export function tcpFrameOf(s: FrameSpec, seg: TcpSegmentOut, data: Uint8Array): Uint8Array {
  const hl = tcpHeaderLen(seg);
  return ipFrame(s, IPPROTO_TCP, hl + data.length, (b, o) => {
    b.set(data, o + hl);
    writeTcp(b, o, seg, data.length, s.ipSrc, s.ipDst);
  });
}

export function icmpEchoOf(s: FrameSpec, type: number, id: number, seq: number, data: Uint8Array): Uint8Array {
  return ipFrame(s, IPPROTO_ICMP, 8 + data.length, (b, o) => {
    writeIcmpEchoReply(b, o, id, seq, data, 0, data.length);
    b[o] = type;
    fixChecksums(b, b.length);
  });
}

export function icmpErrorOf(s: FrameSpec, type: number, code: number, mtu: number, quoted: Uint8Array): Uint8Array {
  const n = 8 + Math.min(quoted.length, 548);
  return ipFrame(s, IPPROTO_ICMP, n, (b, o) => { writeIcmpError(b, o, type, code, mtu, quoted, 0, quoted.length); });
}

export function arpFrameOf(s: { vlan?: number; dst?: Uint8Array; src?: Uint8Array }, op: number, sha: Uint8Array, spa: number, tha: Uint8Array, tpa: number): Uint8Array {
  const b = new Uint8Array(64);
  const hl = writeEth(b, 0, s.dst ?? BCAST, 0, s.src ?? sha, 0, ETH_P_ARP, s.vlan ?? -1);
  writeArp(b, hl, op, sha, 0, spa, tha, 0, tpa);
  return b.slice(0, Math.max(60, hl + 28));
}

/** Frames of every kind the stack handles, built with its own emitters. */
export function emitterFrames(): Uint8Array[] {
  const A = parseIpv4('10.1.1.1'), B = parseIpv4('10.1.1.2'), C = parseIpv4('192.168.0.1'), D = parseIpv4('192.168.0.7');
  const out: Uint8Array[] = [];
  const data = new Uint8Array(100).map((_, i) => i);
  for (const vlan of [-1, 10, 20]) {
    const s: FrameSpec = { vlan, ipSrc: vlan < 0 ? D : B, ipDst: vlan < 0 ? C : A };
    out.push(arpFrameOf({ vlan }, ARP_REQUEST, PEER_MAC, s.ipSrc, ZERO, s.ipDst));
    out.push(arpFrameOf({ vlan, dst: DEV_MAC }, ARP_REPLY, PEER_MAC, s.ipSrc, DEV_MAC, s.ipDst));
    out.push(udpFrameOf(s, 5000, 7, data.subarray(0, 20)));
    out.push(udpFrameOf({ ...s, options: Uint8Array.from([1, 1, 1, 0]) }, 5000, 7, data.subarray(0, 3)));
    out.push(icmpEchoOf(s, 8, 1, 2, data.subarray(0, 56)));
    const q = udpFrameOf({ vlan: -1, ipSrc: s.ipDst, ipDst: s.ipSrc }, 7, 5000, data.subarray(0, 8)).subarray(14);
    out.push(icmpErrorOf(s, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, q));
    const tq = tcpFrameOf({ vlan: -1, ipSrc: s.ipDst, ipDst: s.ipSrc }, seg(80, 40000, 1000, 0, TH_ACK), new Uint8Array(0)).subarray(14);
    out.push(icmpErrorOf(s, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 1400, tq));
    out.push(icmpErrorOf(s, ICMP_TIME_EXCEEDED, 0, 0, tq));
    const syn = seg(40000, 80, 12345, 0, TH_SYN);
    syn.mss = 1460; syn.wscale = 7; syn.sackOk = true; syn.hasTs = true; syn.tsVal = 1000; syn.window = 65535;
    out.push(tcpFrameOf(s, syn, new Uint8Array(0)));
    const ack = seg(40000, 80, 12346, 777, TH_ACK | TH_PSH);
    ack.hasTs = true; ack.tsVal = 1001; ack.tsEcr = 5; ack.sackCount = 2;
    ack.sackStart[0] = 1; ack.sackEnd[0] = 100; ack.sackStart[1] = 200; ack.sackEnd[1] = 300;
    out.push(tcpFrameOf(s, ack, data.subarray(0, 40)));
    out.push(tcpFrameOf(s, seg(40000, 80, 12346, 777, TH_FIN | TH_ACK), new Uint8Array(0)));
    out.push(tcpFrameOf(s, seg(40000, 80, 12346, 0, TH_RST), new Uint8Array(0)));
    // A fragmented UDP datagram (two fragments) with the stack's IPv4 writer.
    const whole = udpFrameOf(s, 5000, 7, data);
    const hl = vlan < 0 ? 14 : 18;
    const payload = whole.subarray(hl + 20);
    out.push(ipFrame({ ...s, id: 99, flagsFrag: 0x2000 }, IPPROTO_UDP, 64, (b, o) => b.set(payload.subarray(0, 64), o)));
    out.push(ipFrame({ ...s, id: 99, flagsFrag: 8 }, IPPROTO_UDP, payload.length - 64, (b, o) => b.set(payload.subarray(64), o)));
  }
  // QinQ.
  out.push(udpFrameOf({ vlan: 10, outerVlan: 100, ipSrc: B, ipDst: A }, 1, 7, data.subarray(0, 4)));
  out.push(...encapsulatedFrames());
  return out;
}

/**
 * Encapsulated seeds (the engine rig's VSes on VLANs 10 and 20 serve VIP 198.51.100.10 behind the
 * load balancer 10.1.1.2): IPIP carrying UDP, a TCP SYN, an echo request and an ICMP error to the
 * VIP from a client, and IPv6 in IPv4 to the VIP 2001:db8::10.
 */
export function encapsulatedFrames(): Uint8Array[] {
  const A = parseIpv4('10.1.1.1'), B = parseIpv4('10.1.1.2'), VIP = parseIpv4('198.51.100.10'), CLIENT = parseIpv4('203.0.113.5');
  const data = new Uint8Array(40).map((_, i) => i);
  const out: Uint8Array[] = [];
  const inner = (f: Uint8Array) => f.subarray(14);
  const c: FrameSpec = { vlan: -1, ipSrc: CLIENT, ipDst: VIP };
  const syn = seg(40000, 80, 12345, 0, TH_SYN);
  syn.mss = 1460; syn.wscale = 7; syn.sackOk = true;
  const tq = tcpFrameOf({ vlan: -1, ipSrc: VIP, ipDst: CLIENT }, seg(80, 40000, 1000, 0, TH_ACK), new Uint8Array(0)).subarray(14);
  const inners = [
    inner(udpFrameOf(c, 5000, 7, data)),
    inner(tcpFrameOf(c, syn, new Uint8Array(0))),
    inner(icmpEchoOf(c, 8, 1, 2, data)),
    inner(icmpErrorOf(c, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 1300, tq)),
  ];
  for (const vlan of [10, 20]) {
    const s: FrameSpec = { vlan, ipSrc: B, ipDst: A };
    for (const x of inners) out.push(ipFrame(s, 4, x.length, (b, o) => b.set(x, o)));
    // IPv6 in IPv4: a UDP datagram from 2001:db8:1::5 to the VIP 2001:db8::10.
    const v6 = new Uint8Array(48);
    v6[0] = 0x60; v6[5] = 8; v6[6] = IPPROTO_UDP; v6[7] = 64;
    v6.set([0x20, 0x01, 0x0d, 0xb8, 0, 1], 8); v6[23] = 5;
    v6.set([0x20, 0x01, 0x0d, 0xb8], 24); v6[39] = 0x10;
    v6[40] = 0x13; v6[41] = 0x88; v6[42] = 0; v6[43] = 7; v6[45] = 8; // checksum left wrong: a counted drop, also a seed
    out.push(ipFrame(s, 41, v6.length, (b, o) => b.set(v6, o)));
  }
  return out;
}

export function seg(sport: number, dport: number, seq: number, ack: number, flags: number): TcpSegmentOut {
  const s = new TcpSegmentOut();
  s.srcPort = sport; s.dstPort = dport; s.seq = seq >>> 0; s.ack = ack >>> 0; s.flags = flags; s.window = 65535;
  return s;
}

/**
 * IPv6 seeds for the engine target, one set per VS of its rig (VLAN 10, VLAN 20, untagged, each
 * holding fd00::1): NDP (NS with SLLA, a DAD probe from ::, NA), echo (whole, with a Destination
 * Options header, and in fragments), UDP (to the echo port, zero checksum), a TCP SYN, an MLD query,
 * an unknown upper layer and an unknown option with the "send Parameter Problem" action.
 */
export function emitterFrames6(): Uint8Array[] {
  const us = parseIp6('fd00::1'), peer = parseIp6('fd00::2'), sn = solicitedNode(us), all = parseIp6('ff02::1');
  const llPeer = parseIp6('fe80::2');
  const out: Uint8Array[] = [];
  const frame = (vlan: number, mac: Uint8Array, ip: Uint8Array, hop = 64): Uint8Array => {
    ip[7] = hop;
    const hl = vlan >= 0 ? 18 : 14;
    const f = new Uint8Array(hl + ip.length);
    writeEth(f, 0, mac, 0, PEER_MAC, 0, ETH_P_IPV6, vlan);
    f.set(ip, hl);
    return f;
  };
  const icmp = (type: number, code: number, src: Ip6, dst: Ip6, rest: number, body: Uint8Array): Uint8Array => {
    const b = new Uint8Array(8 + body.length);
    b[0] = type; b[1] = code;
    b[4] = rest >>> 24; b[5] = (rest >>> 16) & 0xff; b[6] = (rest >>> 8) & 0xff; b[7] = rest & 0xff;
    b.set(body, 8);
    const c = icmp6Checksum(b, 0, b.length, src, dst);
    b[2] = c >>> 8; b[3] = c & 0xff;
    return b;
  };
  const data = new Uint8Array(64).map((_, i) => i);
  for (const [vlan, macText] of [[10, '02:00:00:00:01:01'], [20, '02:00:00:00:02:01'], [-1, '02:00:00:00:00:01']] as const) {
    const mac = Uint8Array.from(macText.split(':').map((h) => parseInt(h, 16)));
    const snMac = Uint8Array.from([0x33, 0x33, 0xff, 0, 0, 1]);
    const allMac = Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]);
    const nsb = new Uint8Array(40);
    out.push(frame(vlan, snMac, ip6Packet([], 58, nsb.slice(0, writeNs(nsb, 0, us, PEER_MAC, peer, sn)), sn, peer), 255));
    out.push(frame(vlan, snMac, ip6Packet([], 58, nsb.slice(0, writeNs(nsb, 0, us, null, ANY6, sn)), sn, ANY6), 255));
    const nab = new Uint8Array(32);
    out.push(frame(vlan, mac, ip6Packet([], 58, nab.slice(0, writeNa(nab, 0, peer, 0x60, PEER_MAC, peer, us)), us, peer), 255));
    out.push(frame(vlan, mac, ip6Packet([], 58, icmp(128, 0, peer, us, 0x00070001, data), us, peer)));
    out.push(frame(vlan, mac, ip6Packet([optsHdr(60, [0x1e, 2, 0, 0])], 58, icmp(128, 0, peer, us, 0x00070002, data.subarray(0, 8)), us, peer)));
    out.push(frame(vlan, mac, ip6Packet([optsHdr(60, [0x80, 2, 0, 0])], 58, icmp(128, 0, peer, us, 0x00070003, data.subarray(0, 8)), us, peer)));
    const u = new Uint8Array(8 + 16);
    u.set(data.subarray(0, 16), 8);
    writeUdp(u, 0, 5000, 7, 16, peer, us);
    out.push(frame(vlan, mac, ip6Packet([], 17, u.slice(), us, peer)));
    const uz = u.slice();
    uz[6] = 0; uz[7] = 0;
    out.push(frame(vlan, mac, ip6Packet([], 17, uz, us, peer)));
    const syn = seg(40000, 80, 12345, 0, TH_SYN);
    syn.mss = 1440; syn.wscale = 7; syn.sackOk = true; syn.hasTs = true; syn.tsVal = 1000; syn.window = 65535;
    const t = new Uint8Array(tcpHeaderLen(syn));
    writeTcp(t, 0, syn, 0, peer, us);
    out.push(frame(vlan, mac, ip6Packet([], 6, t, us, peer)));
    out.push(frame(vlan, allMac, ip6Packet([optsHdr(0, [5, 2, 0, 0])], 58, icmp(130, 0, llPeer, all, 10000 << 16, new Uint8Array(20)), all, llPeer), 1));
    out.push(frame(vlan, mac, ip6Packet([], 253, data.subarray(0, 8), us, peer)));
    // An echo of 1400 bytes in two fragments.
    const big = icmp(128, 0, peer, us, 0x00070004, new Uint8Array(1392).map((_, i) => i));
    out.push(frame(vlan, mac, ip6Packet([fragHdr(0, true, 77)], 58, big.subarray(0, 800), us, peer)));
    out.push(frame(vlan, mac, ip6Packet([fragHdr(800, false, 77)], 58, big.subarray(800), us, peer)));
  }
  return out;
}
