/**
 * IPv4 input (RFC 791, RFC 1122 3.2.1): header checks, demux to the VS by destination address
 * (unicast or subnet broadcast), martian sources, reassembly of fragments (bounded), then the L4
 * protocol for the next stage. Reassembled datagrams go to their L4 handler at once.
 */
import { Drop } from '../../protocols/drop';
import { ICMP_DEST_UNREACH, ICMP_PARAM_PROBLEM, ICMP_PROTO_UNREACH } from '../../protocols/icmp';
import {
  checkIpv4Options, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, IPV4_OPTIONS_OK, IPV4_OPTIONS_SOURCE_ROUTE, Ipv4Header, isBadSource4,
} from '../../protocols/ipv4';
import type { IpAddr } from '../../protocols/ip/addr';
import type { RxDatagram, RxMeta } from '../engine/meta';
import type { Link, VirtualServer } from '../vs';

import type { Ipv4Reassembler } from '../../protocols/reassembly';
import type { LinkGroup } from '../link/demux';
import type { TcpLayer } from '../transport/tcp';
import type { UdpLayer } from '../transport/udp';
import type { Icmp4 } from './icmp4';
import type { IpOutput } from './output';
import { Decap, isEncapsulation } from './decap';

/** What IPv4 input needs from the engine. */
export interface Ipv4Host {
  readonly reasm: Ipv4Reassembler;
  readonly icmp4: Icmp4;
  readonly out: IpOutput;
  readonly tcp: TcpLayer;
  readonly udp: UdpLayer;
  readonly decap: Decap;
  /** Set while the VS's own looped-back frames go through input. */
  readonly inLoopback: boolean;
  /** Shards: set while frames another shard handed over go through input (counted there already). */
  readonly forwardedIn: boolean;
  groupOf(link: Link): LinkGroup | null;
  /** Shards: true when frame `j`, a fragment, was handed to the shard reassembling its datagram. */
  steerFragment(m: RxMeta, j: number, a: number, b: number): boolean;
  /** Shards: the reassembled datagram being delivered (handed over whole if it belongs to another shard). */
  rxDatagram: RxDatagram | null;
  /** A tunnel's outer packet reassembled from fragments, to be input again whole (Engine.rejoin). */
  rejoin(link: Link, v6: boolean, src: IpAddr, dst: IpAddr, proto: number, tos: number, data: Uint8Array, peerMac: Uint8Array): void;
}

const BROADCAST = 0xffffffff;

export class Ipv4Input {
  private readonly ip = new Ipv4Header();
  /** The sender's MAC of the fragment that completed a datagram (reflection for the reply). */
  private readonly peerMac = new Uint8Array(6);

  constructor(private readonly eng: Ipv4Host) {}

  /** Returns the L4 protocol for the next stage, or 0 when the frame was consumed here. */
  input(m: RxMeta, j: number): number {
    const link0 = m.link[j]!;
    const b = m.b;
    const ip = this.ip;
    const d = ip.parse(b, m.l3Off[j]!, m.l3Len[j]!);
    if (d !== Drop.None) {
      m.drop(j, d);
      return 0;
    }
    // RFC 1122 3.2.1.3: never a source from the wire (the one rule: isBadSource4), nor 0/8 ("this
    // network": {0, host} only while a host learns its address; Linux: a martian source).
    if ((ip.src >>> 24) === 0 || isBadSource4(ip.src)) {
      m.drop(j, Drop.Ipv4BadSource);
      return 0;
    }
    const grp = this.eng.groupOf(link0)!;
    const inner = m.decap[j] !== 0;
    let link: Link | undefined;
    let bcast = 0;
    if (inner) {
      // Decapsulated (decap.ts): to a VIP of the VS whose address the outer packet came to, once.
      link = link0;
      if (!link.vs.isVip(ip.dst)) {
        m.drop(j, Drop.DecapNotVip);
        return 0;
      }
      if (isEncapsulation(ip.proto)) {
        m.drop(j, Drop.DecapNested);
        return 0;
      }
      // 169.254/16 never leaves its link (RFC 3927 2.7): not a client behind a load balancer.
      if ((ip.src >>> 16) === 0xa9fe) {
        m.drop(j, Drop.DecapLinkScoped);
        return 0;
      }
    } else {
      link = grp.addrs.get(ip.dst | 0);
      // The VS to one of its own VIPs, looped back (output.ts ownLink): not from the wire.
      if (!link && this.eng.inLoopback && link0.vs.isVip(ip.dst)) link = link0;
      if (!link) {
        link = grp.bcast.get(ip.dst | 0);
        bcast = 1;
        if (!link && ip.dst === BROADCAST) link = link0;
        if (!link) {
          m.drop(j, Drop.Ipv4NotOurAddress);
          return 0;
        }
      }
    }
    // A datagram from the wire that claims one of our own addresses as its source is spoofed or
    // looped (Linux: a martian source); answering it would talk to ourselves. Only the VS's own
    // loopback carries such datagrams. (Nor a VIP of the VS, from inside a tunnel; nor, from inside
    // a tunnel, a subnet broadcast address of the VS (RFC 1122 3.2.1.3): what the VS answers from
    // a VIP is routed, so it would go to that broadcast, onto the VS's own segment.)
    // Nor, from the wire, a subnet broadcast address of the segment it came on (RFC 1122 3.2.1.3:
    // silently discarded; Linux: a martian source): every answer would be broadcast back.
    if (!this.eng.inLoopback && (grp.addrs.has(ip.src | 0) || (inner ? link.vs.isVip(ip.src) || this.broadcastOf(link.vs, ip.src) : grp.bcast.has(ip.src | 0)))) {
      m.drop(j, Drop.Ipv4BadSource);
      return 0;
    }
    m.link[j] = link;
    if (ip.hdrLen > IPV4_HLEN) {
      const r = checkIpv4Options(b, m.l3Off[j]!, ip.hdrLen);
      if (r !== IPV4_OPTIONS_OK) {
        // Source-routed datagrams are discarded (RFC 7126 4.3.4, 4.4.4 (BCP 186): by default;
        // Linux: accept_source_route 0). One with hops still to go names us as a hop, and a host
        // that does not forward discards it anyway (RFC 1122 3.3.5).
        if (r === IPV4_OPTIONS_SOURCE_ROUTE) {
          m.drop(j, Drop.Ipv4SourceRoute);
          return 0;
        }
        // Malformed: Parameter Problem pointing at the octet at fault (RFC 792, RFC 1122 3.2.2.5;
        // Linux ip_options_compile), never about a broadcast.
        if (!bcast) {
          m.src[j] = ip.src;
          m.dst[j] = ip.dst;
          m.l4Off[j] = ip.payloadOff;
          m.l4Len[j] = ip.payloadLen;
          this.eng.icmp4.errorFor(m, j, ICMP_PARAM_PROBLEM, 0, r);
        }
        m.drop(j, Drop.Ipv4BadOption);
        return 0;
      }
    }
    // (A frame another shard handed over was counted by the shard it came to off the wire.)
    if (inner) { if (!this.eng.forwardedIn) link.decapsulated++; }
    // IPIP / IPv6 in IPv4 to a VS that serves VIPs (one that does not: an unknown protocol, below).
    else if (!bcast && isEncapsulation(ip.proto) && link.vs.vips !== null) {
      if (!ip.mf && ip.fragOff === 0) return this.eng.decap.input(m, j, link, ip.src, 4, ip.proto, ip.payloadOff, ip.payloadLen);
      // An outer fragment: reassembled below, then input again whole (deliver, Engine.rejoin).
      // Only a load balancer's: nobody else's fragments take reassembly memory.
      if (!link.vs.vips.allows(ip.src)) {
        m.drop(j, Drop.DecapSourceRefused);
        return 0;
      }
    }
    if (ip.mf || ip.fragOff) {
      // Shards: one shard reassembles all fragments of a datagram.
      if (this.eng.steerFragment(m, j, ip.src ^ ip.dst, ip.id | (ip.proto << 16))) {
        m.free(j);
        return 0;
      }
      const src = ip.src, dst = ip.dst, proto = ip.proto, tos = ip.tos;
      const reasm = this.eng.reasm;
      const rd = reasm.push(link.vs.id, ip, b, m.now);
      const so = m.srcMac[j]!;
      for (let i = 0; i < 6; i++) this.peerMac[i] = b[so + i]!;
      m.free(j);
      if (rd !== Drop.None) {
        link.drop(rd);
        return 0;
      }
      if (reasm.done) this.datagram(link, src, dst, proto, tos, reasm.datagram, m.now);
      return 0;
    }
    m.bcast[j] = bcast;
    m.src[j] = ip.src;
    m.dst[j] = ip.dst;
    m.src6[j] = null;
    m.dst6[j] = null;
    m.tos[j] = ip.tos;
    m.hops[j] = ip.ttl;
    m.l4Off[j] = ip.payloadOff;
    m.l4Len[j] = ip.payloadLen;
    if (ip.proto === IPPROTO_ICMP || ip.proto === IPPROTO_UDP || ip.proto === IPPROTO_TCP) return ip.proto;
    // Unknown protocol: protocol unreachable (not for broadcasts), then drop.
    if (!bcast) this.eng.icmp4.errorFor(m, j, ICMP_DEST_UNREACH, ICMP_PROTO_UNREACH, 0);
    m.drop(j, Drop.Ipv4UnknownProtocol);
    return 0;
  }

  /** Whether `a` is the subnet broadcast address of a link of `vs` (where a datagram routed to it goes to every host). */
  private broadcastOf(vs: VirtualServer, a: number): boolean {
    const links = vs.links;
    for (let i = 0; i < links.length; i++) if (this.eng.out.isBroadcast(links[i]!, a)) return true;
    return false;
  }

  /** A reassembled datagram (the payload of the IP packet in `dg`, which the reassembler reuses). */
  private datagram(link: Link, src: number, dst: number, proto: number, tos: number, dg: Uint8Array, now: number): void {
    const peerMac = Uint8Array.from(this.peerMac);
    this.eng.rxDatagram = { v6: false, link, src, dst, proto, tos, data: dg, mac: peerMac };
    try {
      this.deliver(link, src, dst, proto, tos, dg, peerMac, now);
    } finally {
      this.eng.rxDatagram = null;
    }
  }

  /** A whole datagram to its upper layer: reassembled here, or by another shard that handed it over. */
  deliver(link: Link, src: number, dst: number, proto: number, tos: number, dg: Uint8Array, peerMac: Uint8Array, now: number): void {
    const bcast = this.eng.out.isBroadcast(link, dst);
    // A tunnel's outer packet, whole again: decapsulated as one that came whole (RFC 2003 5.1).
    if (isEncapsulation(proto) && link.vs.vips !== null && !bcast) return this.eng.rejoin(link, false, src, dst, proto, tos, dg, peerMac);
    if (proto === IPPROTO_UDP) {
      if (!this.eng.udp.datagram(link, src, dst, dg, peerMac, bcast) && !bcast) this.eng.icmp4.portUnreachable(link, src, dst, tos, dg, peerMac, now);
      return;
    }
    if (proto === IPPROTO_ICMP) return this.eng.icmp4.datagram(link, src, dst, tos, dg, peerMac, bcast, now);
    if (proto === IPPROTO_TCP) {
      if (bcast) return link.drop(Drop.Ipv4NotOurAddress); // no TCP to broadcast addresses
      // The reassembled segment is no UMEM frame (no pool): TCP copies what it keeps.
      this.eng.tcp.input(link, dg, 0, dg.length, src, dst, peerMac, now, null, -1);
      return;
    }
    // Unknown protocol: protocol unreachable as for a datagram that came whole (not for broadcasts).
    if (!bcast) this.eng.icmp4.protocolUnreachable(link, src, dst, tos, proto, dg, peerMac, now);
    link.drop(Drop.Ipv4UnknownProtocol);
  }
}
