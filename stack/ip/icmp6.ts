/**
 * ICMPv6 (RFC 4443) in the engine: echo answered (in place when the request has no extension
 * headers), errors validated against live state before they change anything (RFC 5927, as for
 * ICMP: Packet Too Big lowers the path MTU and the MSS of the connection it quotes), NDP messages
 * handed to stack/link/ndp.ts, and errors sent within RFC 4443 2.4's rules (never about an error,
 * never to a multicast or unspecified source, to a multicast destination only Packet Too Big and
 * Parameter Problem code 2), rate-limited per VS.
 */
import { Drop } from '../../protocols/drop';
import { ETH_P_IPV6 } from '../../protocols/ethernet';
import { checksumAdjust, fold, rd16, sum16, wr16 } from '../../protocols/checksum';
import { Ip6, ip6At, IpAddr, isBadSource6, isMulticast6, isUnspecified, pseudoSum6 } from '../../protocols/ip/addr';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../protocols/ipv4';
import { IPPROTO_ICMPV6 } from '../../protocols/ipv6';
import {
  Icmp6Packet, ICMP6_DST_UNREACH, ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, ICMP6_PACKET_TOO_BIG, ICMP6_PARAM_PROB,
  ICMP6_TIME_EXCEEDED, ICMP6_ERROR_MAX_QUOTE, writeIcmp6Error,
} from '../../protocols/icmpv6';
import { linkEth } from '../link/demux';
import { IcmpKind } from '../transport/tcp';
import { udpIcmpError } from '../transport/udp';
import type { RxMeta } from '../engine/meta';
import type { Link } from '../vs';
import { icmpErrorToken } from './icmp4';
import { HOP_LIMIT, writeIp6Header } from './output';

import type { Device } from '../engine/device';
import type { Ndp } from '../link/ndp';
import type { TcpLayer } from '../transport/tcp';
import type { UdpLayer } from '../transport/udp';
import type { IpOutput } from './output';
import type { VirtualServer } from '../vs';
import type { LinkGroup } from '../link/demux';

/** What ICMPv6 needs from the engine. */
export interface Icmp6Host {
  readonly devices: readonly Device[];
  readonly out: IpOutput;
  readonly tcp: TcpLayer;
  readonly udp: UdpLayer;
  readonly ndp: Ndp;
  readonly vsById: ReadonlyMap<number, VirtualServer>;
  /** Looped-back frames (a VS sending to its own address) are being received. */
  readonly inLoopback: boolean;
  groupOf(link: Link): LinkGroup | null;
  echoReply(vs: VirtualServer, ident: number, from: IpAddr, seq: number, bytes: number, ttl: number, now: number): Drop;
  /** An ICMPv6 error quoting an Echo Request of `vs` with identifier `ident` (to its ping, as echoReply). */
  echoError(vs: VirtualServer, ident: number, from: IpAddr, seq: number, type: number, code: number, info: number, now: number): Drop;
}

/** ICMPv6 Destination Unreachable codes (RFC 4443 3.1). */
const UNREACH_ADMIN = 1;
const UNREACH_PORT = 4;
/** ND types (RFC 4861 section 4) and MLD (RFC 3810). */
const ND_FIRST = 133;
const ND_LAST = 137;
const ND_ROUTER_ADVERT = 134;
const ND_REDIRECT = 137;
const MLD_QUERY = 130;
const MLDV2_REPORT = 143;

export class Icmp6 {
  private readonly icmp = new Icmp6Packet();
  private readonly mac = new Uint8Array(6);
  private readonly hdr = new Uint8Array(8);
  /** An ICMPv6 error from a VIP, built before it is routed. */
  private routed: Uint8Array | null = null;

  constructor(private readonly eng: Icmp6Host) {}

  input(m: RxMeta, j: number): void {
    const link = m.link[j]!;
    const b = m.b;
    const off = m.l4Off[j]!;
    const len = m.l4Len[j]!;
    const l3 = m.l3Off[j]!;
    const icmp = this.icmp;
    const d = icmp.parse(b, off, len, l3 + 8, l3 + 24);
    if (d !== Drop.None) return m.drop(j, d);
    const type = icmp.type;
    // Neighbor Discovery and MLD concern the link they arrive on (RFC 4861 7.1: hop limit 255, so
    // no router forwarded them). From inside a tunnel they did not arrive on it: a load balancer
    // passes on whatever is sent to a VIP, and an advertisement taken here would rewrite the
    // VS's neighbor entries (its gateway's MAC) on the word of anyone who can reach the VIP.
    if (m.decap[j] && ((type >= MLD_QUERY && type <= ND_LAST) || type === MLDV2_REPORT)) return m.drop(j, Drop.DecapLinkScoped);
    if (type >= ND_FIRST && type <= ND_LAST) {
      if (type === ND_ROUTER_ADVERT) return m.drop(j, Drop.NdpRouterAdvert); // servers are configured statically
      // RFC 4861 7.1.1/7.1.2: a hop limit below 255 means the message crossed a router.
      if (m.hops[j] !== 255) return m.drop(j, Drop.NdpBadHopLimit);
      return this.eng.ndp.input(m, j);
    }
    if (type === MLD_QUERY) return this.eng.ndp.mldQuery(m, j);
    if (m.src6[j] && isUnspecified(m.src6[j]!)) return m.drop(j, Drop.Ipv6BadSource); // :: only for DAD
    if (type === ICMP6_ECHO_REQUEST) {
      if (m.bcast[j]) return this.echoGroup(m, j, off, len);
      return this.echo(m, j, off, len);
    }
    if (type === ICMP6_DST_UNREACH || type === ICMP6_PACKET_TOO_BIG || type === ICMP6_TIME_EXCEEDED || type === ICMP6_PARAM_PROB) {
      const r = this.errorInput(link, b, m.dst6[j]!, m.src6[j]!, m.now);
      if (r !== Drop.None) return m.drop(j, r);
      return m.free(j);
    }
    if (type === ICMP6_ECHO_REPLY) {
      // To the ping (echo socket) whose identifier it carries; never one sent to a group.
      const r = m.bcast[j] ? Drop.Ipv6NotOurAddress
        : this.eng.echoReply(link.vs, (b[off + 4]! << 8) | b[off + 5]!, m.src6[j]!, (b[off + 6]! << 8) | b[off + 7]!, len, m.hops[j]!, m.now);
      if (r !== Drop.None) return m.drop(j, r);
      return m.free(j);
    }
    m.drop(j, Drop.Icmpv6UnknownType); // redirects, unknown informational messages
  }

  /** Echo Reply (RFC 4443 4.2) with the request's data. */
  private echo(m: RxMeta, j: number, off: number, len: number): void {
    const link = m.link[j]!;
    const b = m.b;
    const l3 = m.l3Off[j]!;
    const src = m.src6[j]!;
    const dst = m.dst6[j]!;
    if (off !== l3 + 40 || m.decap[j]) {
      // Extension headers in the request: the reply is built anew (they are not echoed). So too
      // for a request to a VIP (decapsulated): the frame's headers are the load balancer's, and
      // the reply leaves from the VIP, routed (the output path never reflects from a VIP).
      const hdr = this.hdr;
      hdr[0] = ICMP6_ECHO_REPLY; hdr[1] = 0; hdr[2] = 0; hdr[3] = 0;
      hdr[4] = b[off + 4]!; hdr[5] = b[off + 5]!; hdr[6] = b[off + 6]!; hdr[7] = b[off + 7]!;
      const c = fold(sum16(b, off + 8, len - 8, sum16(hdr, 0, 8, pseudoSum6(dst, src, IPPROTO_ICMPV6, len))));
      hdr[2] = c >>> 8; hdr[3] = c & 0xff;
      const so = m.srcMac[j]!;
      for (let i = 0; i < 6; i++) this.mac[i] = b[so + i]!;
      try {
        this.eng.out.emit(link.vs, link, this.mac, dst, src, IPPROTO_ICMPV6, 0, hdr, 8, b, off + 8, len - 8, false, 0);
      } catch {
        // No route back (a VIP's reply is routed) or no frame: counted by the output path.
      } finally {
        m.free(j);
      }
      return;
    }
    // In place: addresses swapped (the pseudo-header sum does not change), type 128 → 129 with an
    // incremental checksum update (RFC 1624).
    const code = b[off + 1]!;
    b[off] = ICMP6_ECHO_REPLY;
    wr16(b, off + 2, checksumAdjust(rd16(b, off + 2), (ICMP6_ECHO_REQUEST << 8) | code, (ICMP6_ECHO_REPLY << 8) | code));
    const so = m.srcMac[j]!;
    for (let i = 0; i < 6; i++) this.mac[i] = b[so + i]!;
    const flow = this.eng.out.flowLabel(dst, src, 0);
    writeIp6Header(b, l3, dst, src, IPPROTO_ICMPV6, len, HOP_LIMIT, flow, m.tos[j]!);
    const ethStart = l3 - link.ethLen;
    linkEth(b, ethStart, this.mac, 0, link, ETH_P_IPV6);
    // A VS pinging its own address: the reply loops back too.
    if (this.eng.inLoopback) this.eng.out.loopback(link, m.pool, m.frame(j), ethStart, link.ethLen + 40 + len);
    else this.eng.out.enqueue(link, m.pool, m.frame(j), ethStart, link.ethLen + 40 + len);
  }

  /**
   * An Echo Request to a group we listen to (all nodes, or the solicited-node group of an address
   * of ours): RFC 4443 4.1 says a reply SHOULD be sent (Linux answers: icmpv6 echo_ignore_multicast
   * is off), from a unicast address of the interface it came on (4.2). Every VS on the (device,
   * VLAN) that heard it (a frame to a link-layer group reached them all; each is a node of the
   * link) and listens to the group answers from its own address, the one its link would use toward
   * the requester.
   */
  private echoGroup(m: RxMeta, j: number, off: number, len: number): void {
    const link0 = m.link[j]!;
    const b = m.b;
    const src = m.src6[j]!;
    const group = m.dst6[j]!;
    if (m.decap[j] || isUnspecified(src)) return m.drop(j, Drop.Ipv6NotOurAddress);
    const allNodes = group.w0 === 0xff020000 && group.w1 === 0 && group.w2 === 0 && group.w3 === 1;
    const grp = (b[m.ethOff[j]!]! & 1) !== 0 ? this.eng.groupOf(link0) : null;
    const so = m.srcMac[j]!;
    for (let i = 0; i < 6; i++) this.mac[i] = b[so + i]!;
    const n = grp ? grp.links.length : 1;
    let answered = false;
    for (let k = 0; k < n; k++) {
      const link = grp ? grp.links[k]! : link0;
      if (!allNodes && !listensTo(link, group)) continue;
      const from = this.eng.out.sourceFor(link, src);
      if (typeof from === 'number') continue; // no usable IPv6 address on that link
      const hdr = this.hdr;
      hdr[0] = ICMP6_ECHO_REPLY; hdr[1] = 0; hdr[2] = 0; hdr[3] = 0;
      hdr[4] = b[off + 4]!; hdr[5] = b[off + 5]!; hdr[6] = b[off + 6]!; hdr[7] = b[off + 7]!;
      const c = fold(sum16(b, off + 8, len - 8, sum16(hdr, 0, 8, pseudoSum6(from, src, IPPROTO_ICMPV6, len))));
      hdr[2] = c >>> 8; hdr[3] = c & 0xff;
      try {
        this.eng.out.emit(link.vs, link, this.mac, from, src, IPPROTO_ICMPV6, 0, hdr, 8, b, off + 8, len - 8, false, 0);
        answered = true;
      } catch {
        // No frame or no way back: counted by the output path.
      }
    }
    if (!answered) return m.drop(j, Drop.Ipv6NotOurAddress);
    m.free(j);
  }

  /** A reassembled ICMPv6 message: a large echo request is answered, a large echo reply goes to its ping (hop limit unknown: -1). */
  datagram(link: Link, src: Ip6, dst: Ip6, dg: Uint8Array, peerMac: Uint8Array, now: number): void {
    if (dg.length < 8 || fold(sum16(dg, 0, dg.length, pseudoSum6(src, dst, IPPROTO_ICMPV6, dg.length))) !== 0) {
      return link.drop(Drop.Icmpv6BadChecksum);
    }
    if (dg[0] === ICMP6_ECHO_REPLY && !isMulticast6(dst)) {
      const r = this.eng.echoReply(link.vs, (dg[4]! << 8) | dg[5]!, src, (dg[6]! << 8) | dg[7]!, dg.length, -1, now);
      if (r !== Drop.None) link.drop(r);
      return;
    }
    if (dg[0] !== ICMP6_ECHO_REQUEST) return link.drop(Drop.Icmpv6UnknownType);
    const hdr = this.hdr;
    hdr[0] = ICMP6_ECHO_REPLY; hdr[1] = 0; hdr[2] = 0; hdr[3] = 0;
    hdr[4] = dg[4]!; hdr[5] = dg[5]!; hdr[6] = dg[6]!; hdr[7] = dg[7]!;
    const c = fold(sum16(dg, 8, dg.length - 8, sum16(hdr, 0, 8, pseudoSum6(dst, src, IPPROTO_ICMPV6, dg.length))));
    hdr[2] = c >>> 8; hdr[3] = c & 0xff;
    try {
      this.eng.out.emit(link.vs, link, peerMac, dst, src, IPPROTO_ICMPV6, 0, hdr, 8, dg, 8, dg.length - 8, false, 0);
    } catch {
      // No route back (a VIP's reply is routed) or no frame: counted by the output path.
    }
  }

  /**
   * An ICMPv6 error (parsed in this.icmp) to our address `dst`, believed only when it quotes live
   * state (RFC 5927 section 4, as Linux's tcp_v6_err): a packet we sent from `dst`, of a TCP
   * connection with a sequence number in SND.UNA..SND.NXT or of a bound UDP socket.
   */
  private errorInput(link: Link, b: Uint8Array, dst: Ip6, from: Ip6, now: number): Drop {
    const icmp = this.icmp;
    if (icmp.innerSrcOff < 0 || icmp.innerL4Off < 0 || icmp.innerL4Len < 4) return Drop.IcmpNoFlow;
    const qsrc = ip6At(b, icmp.innerSrcOff);
    if (qsrc.w0 !== dst.w0 || qsrc.w1 !== dst.w1 || qsrc.w2 !== dst.w2 || qsrc.w3 !== dst.w3) return Drop.IcmpNoFlow;
    const qdst = ip6At(b, icmp.innerDstOff);
    const p = icmp.innerL4Off;
    const sport = (b[p]! << 8) | b[p + 1]!;
    const dport = (b[p + 2]! << 8) | b[p + 3]!;
    const tooBig = icmp.type === ICMP6_PACKET_TOO_BIG;
    if (icmp.innerNextHeader === IPPROTO_TCP) {
      if (icmp.innerL4Len < 8) return Drop.IcmpNoFlow;
      const seq = ((b[p + 4]! << 24) | (b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!) >>> 0;
      // RFC 4443 3.1 + RFC 1122 4.2.3.9: port unreachable (and administratively prohibited) are
      // hard errors while the connection is being opened; Packet Too Big lowers the path MTU.
      const kind = tooBig ? IcmpKind.Mtu
        : icmp.type === ICMP6_DST_UNREACH && (icmp.code === UNREACH_PORT || icmp.code === UNREACH_ADMIN) ? IcmpKind.Refused
        : icmp.type === ICMP6_DST_UNREACH && icmp.code === 0 ? IcmpKind.SoftNet : IcmpKind.Soft; // no route: ENETUNREACH
      return this.eng.tcp.icmpError(link.vs, qsrc, sport, qdst, dport, seq, kind, icmp.mtu, link);
    }
    if (icmp.innerNextHeader === IPPROTO_UDP) {
      const sock = this.eng.udp.find(link.vs, sport, qsrc, qdst, dport);
      if (!sock) return Drop.IcmpNoFlow;
      if (tooBig) this.eng.out.pmtuUpdate(link.vs, qdst, icmp.mtu, qsrc, sock.mark);
      // A connected socket hears of hard errors (Node: 'error', ECONNREFUSED for port unreachable).
      else if (sock.connected) sock.icmpError(udpIcmpError(true, icmp.type, icmp.code));
      return Drop.None;
    }
    if (icmp.innerNextHeader === IPPROTO_ICMPV6 && icmp.innerL4Len >= 8 && b[p] === ICMP6_ECHO_REQUEST) {
      // About a ping's request (ping prints "From ROUTER icmp_seq=N Destination unreachable: ...").
      const info = tooBig ? icmp.mtu : icmp.type === ICMP6_PARAM_PROB ? icmp.pointer : 0;
      const r = this.eng.echoError(link.vs, (b[p + 4]! << 8) | b[p + 5]!, from, (b[p + 6]! << 8) | b[p + 7]!, icmp.type, icmp.code, info, now);
      // It quotes a request of a live ping: its path MTU is believed, as for a UDP socket's.
      if (r === Drop.None && tooBig) this.eng.out.pmtuUpdate(link.vs, qdst, icmp.mtu, qsrc, 0);
      return r;
    }
    return Drop.IcmpNoFlow;
  }

  /** Port / protocol unreachable for frame `j` (a datagram with no taker). */
  unreachable(m: RxMeta, j: number, port: boolean): void {
    if (port) this.errorFor(m, j, ICMP6_DST_UNREACH, UNREACH_PORT, 0, m.dst6[j]!);
    // An unknown upper layer is answered by Parameter Problem (ipv6.ts), not here.
  }

  /**
   * Port unreachable for a reassembled UDP datagram with no taker: `pkt` is the packet (its IPv6
   * header at 0) from `src` to our `dst`, answered to `peerMac` within RFC 4443 2.4's rules.
   */
  portUnreachable(link: Link, pkt: Uint8Array, src: Ip6, dst: Ip6, peerMac: Uint8Array, now: number,
    type = ICMP6_DST_UNREACH, code = UNREACH_PORT, param = 0): void {
    if (isUnspecified(src) || isMulticast6(src) || isMulticast6(dst)) return;
    if (!icmpErrorToken(link.vs, link, now, Drop.Icmpv6RateLimited)) return;
    this.send(link, peerMac, 0, dst, src, type, code, param, pkt, 0, pkt.length);
  }

  /**
   * Parameter Problem code 1 for a reassembled packet whose upper layer nothing here takes (RFC 8200
   * 4, RFC 4443 3.4), as for a whole one: `pointer` is the offset in `pkt` of the Next Header field
   * that named it.
   */
  unknownNextHeader(link: Link, pkt: Uint8Array, src: Ip6, dst: Ip6, pointer: number, peerMac: Uint8Array, now: number): void {
    this.portUnreachable(link, pkt, src, dst, peerMac, now, ICMP6_PARAM_PROB, 1, pointer);
  }

  /**
   * Sends an ICMPv6 error about frame `j` (the IPv6 packet at its l3Off) back to its sender, within
   * RFC 4443 2.4(e): not about an ICMPv6 error or a Redirect, not to an unspecified or multicast
   * source, and about a packet to a multicast group only when it is Packet Too Big or Parameter
   * Problem code 2; (f) rate-limited per VS. `ours`: the address the packet came to.
   */
  errorFor(m: RxMeta, j: number, type: number, code: number, param: number, ours: Ip6): void {
    const link = m.link[j]!;
    const b = m.b;
    const l3 = m.l3Off[j]!;
    if (m.l3Len[j]! < 40) return;
    const to = ip6At(b, l3 + 8);
    // Nor to a source that is no node's (loopback, IPv4-mapped: never on the wire, RFC 4291 2.5.3):
    // a Parameter Problem is decided before the source is checked.
    if (isUnspecified(to) || isBadSource6(to)) return;
    // RFC 4443 2.4(e.3-e.5): nor about a packet to a multicast address or sent as a link-layer
    // multicast or broadcast, except Packet Too Big and Parameter Problem code 2.
    if ((isMulticast6(ours) || (b[m.ethOff[j]!]! & 1) !== 0) && !(type === ICMP6_PACKET_TOO_BIG || (type === ICMP6_PARAM_PROB && code === 2))) return;
    // Never about an ICMPv6 error message or a Redirect (RFC 4443 2.4(e.1, e.2)), also when the
    // packet's chain was not walked to its end (an option or next header in front made us answer).
    if (isIcmp6ErrorAt(b, l3, l3 + Math.min(m.l3Len[j]!, 40 + ((b[l3 + 4]! << 8) | b[l3 + 5]!)))) return;
    if (!icmpErrorToken(link.vs, link, m.now, Drop.Icmpv6RateLimited)) return;
    const from = isMulticast6(ours) ? this.eng.out.sourceFor(link, to) : ours;
    if (typeof from === 'number') return; // no usable IPv6 address on the link
    const payload = 40 + ((b[l3 + 4]! << 8) | b[l3 + 5]!);
    this.send(link, b, m.srcMac[j]!, from, to, type, code, param, b, l3, Math.min(payload, m.l3Len[j]!));
  }

  /** Time Exceeded code 1 (fragment reassembly time exceeded, RFC 8200 4.5) quoting the first fragment. */
  reassemblyTimeout(first: Uint8Array, vsId: number, now: number): void {
    const vs = this.eng.vsById.get(vsId);
    if (!vs || first.length < 40) return;
    const to = ip6At(first, 8);
    const ours = ip6At(first, 24);
    const link = this.eng.out.ownLink(vs, ours);
    if (!link || isMulticast6(to) || isUnspecified(to)) return;
    if (!icmpErrorToken(vs, link, now, Drop.Icmpv6RateLimited)) return;
    // Through the output path: the sender's MAC is resolved by NDP when it is not known yet.
    const q = Math.min(first.length, ICMP6_ERROR_MAX_QUOTE);
    const hdr = this.hdr;
    hdr[0] = ICMP6_TIME_EXCEEDED; hdr[1] = 1; hdr[2] = 0; hdr[3] = 0; hdr[4] = 0; hdr[5] = 0; hdr[6] = 0; hdr[7] = 0;
    const c = fold(sum16(first, 0, q, sum16(hdr, 0, 8, pseudoSum6(ours, to, IPPROTO_ICMPV6, 8 + q))));
    hdr[2] = c >>> 8; hdr[3] = c & 0xff;
    try {
      this.eng.out.emit(vs, link, null, ours, to, IPPROTO_ICMPV6, 0, hdr, 8, first, 0, q, false, 0);
    } catch {
      // No frame or no way back (counted by the output path): an error about an error is not made.
    }
  }

  /** Builds and queues an ICMPv6 error from `from` to `to` (the MAC at macBuf[macOff..]) quoting orig[origOff..+origLen). */
  private send(link: Link, macBuf: Uint8Array, macOff: number, from: Ip6, to: Ip6, type: number, code: number, param: number,
    orig: Uint8Array, origOff: number, origLen: number): void {
    if (link.vs.vips !== null && link.vs.vips.has(from)) {
      // About a packet to a VIP: from the VIP, routed to its sender (not back to the load balancer).
      const msg = (this.routed ??= new Uint8Array(1280 - 40));
      const n = writeIcmp6Error(msg, 0, type, code, param, orig, origOff, Math.min(origLen, msg.length - 8), from, to);
      try {
        this.eng.out.emit(link.vs, null, null, from, to, IPPROTO_ICMPV6, 0, msg, n, msg, 0, 0, false, 0);
      } catch {
        // No route or no frame: counted by the output path.
      }
      return;
    }
    const pool = this.eng.devices[link.dev]!.pool;
    const f = pool.alloc();
    if (f < 0) return link.drop(Drop.NoFrame);
    const start = pool.dataStart(f);
    const ethLen = link.ethLen;
    const room = Math.min(pool.frameSize - pool.headroom - ethLen, link.mtu) - 40;
    const ilen = writeIcmp6Error(pool.bytes, start + ethLen + 40, type, code, param, orig, origOff, Math.min(origLen, room - 8), from, to);
    writeIp6Header(pool.bytes, start + ethLen, from, to, IPPROTO_ICMPV6, ilen, HOP_LIMIT, 0, 0);
    linkEth(pool.bytes, start, macBuf, macOff, link, ETH_P_IPV6);
    this.eng.out.enqueue(link, pool, f, start, ethLen + 40 + ilen);
  }
}

/**
 * Whether the IPv6 packet at `b[l3..end)` carries an ICMPv6 error message or a Redirect: its
 * extension headers skipped by their lengths (bounded, as Linux's is_ineligible), no option read.
 */
function isIcmp6ErrorAt(b: Uint8Array, l3: number, end: number): boolean {
  let nh = b[l3 + 6]!;
  let p = l3 + 40;
  for (let n = 0; n < 8 && (nh === 0 || nh === 43 || nh === 44 || nh === 60); n++) {
    if (p + 8 > end) return false;
    if (nh === 44) {
      if ((((b[p + 2]! << 8) | b[p + 3]!) & 0xfff8) !== 0) return false; // not the first fragment: unknown
      nh = b[p]!;
      p += 8;
    } else {
      nh = b[p]!;
      p += (b[p + 1]! + 1) * 8;
    }
  }
  if (nh !== IPPROTO_ICMPV6 || p >= end) return false;
  const t = b[p]!;
  return t < 128 || t === ND_REDIRECT;
}

/** Whether `link` listens to the solicited-node group `group` (ff02::1:ffXX:XXXX) for an address of its own in use. */
function listensTo(link: Link, group: Ip6): boolean {
  if (group.w0 !== 0xff020000 || group.w1 !== 0 || group.w2 !== 1 || (group.w3 >>> 24) !== 0xff) return false;
  const low = group.w3 & 0xffffff;
  for (const a of link.addrs) if (typeof a.addr !== 'number' && a.state === 'preferred' && (a.addr.w3 & 0xffffff) === low) return true;
  return false;
}
