/**
 * IPv6 input (RFC 8200): header and extension header checks (the wire view walks the chain),
 * demux to the VS by destination address (our unicast addresses, all-nodes and the solicited-node
 * groups for ICMPv6), martian sources, reassembly of fragments (bounded; RFC 5722 overlaps drop
 * the datagram; atomic fragments per RFC 6946), Parameter Problem for what cannot be processed,
 * then the upper-layer protocol for the next stage.
 */
import { Drop } from '../../protocols/drop';
import { addrHash, eq6At, hash6At, Ip6, ip6At, IpAddr, isBadSource6, isLinkLocal6, isSolicitedNodeAt } from '../../protocols/ip/addr';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../protocols/ipv4';
import { IPPROTO_ICMPV6, Ipv6Header } from '../../protocols/ipv6';
import { ICMP6_PARAM_PROB } from '../../protocols/icmpv6';
import { Ipv6Reassembler } from '../../protocols/reassembly6';
import type { RxDatagram, RxMeta } from '../engine/meta';
import type { Link } from '../vs';

import type { Counters } from '../counters';
import type { LinkGroup } from '../link/demux';
import type { TcpLayer } from '../transport/tcp';
import type { UdpLayer } from '../transport/udp';
import type { Icmp6 } from './icmp6';
import { Decap, isEncapsulation } from './decap';

/** What IPv6 input needs from the engine. */
export interface Ipv6Host {
  readonly counters: Counters;
  readonly icmp6: Icmp6;
  readonly tcp: TcpLayer;
  readonly udp: UdpLayer;
  readonly decap: Decap;
  readonly inLoopback: boolean;
  /** Shards: set while frames another shard handed over go through input (counted there already). */
  readonly forwardedIn: boolean;
  groupOf(link: Link): LinkGroup | null;
  /** Shards: true when frame `j`, a fragment, was handed to the shard reassembling its datagram. */
  steerFragment(m: RxMeta, j: number, a: number, b: number): boolean;
  /** Shards: the reassembled packet being delivered (handed over whole if it belongs to another shard). */
  rxDatagram: RxDatagram | null;
  /** A tunnel's outer packet reassembled from fragments, to be input again whole (Engine.rejoin). */
  rejoin(link: Link, v6: boolean, src: IpAddr, dst: IpAddr, proto: number, tos: number, data: Uint8Array, peerMac: Uint8Array): void;
}

export interface Reassembly6Options {
  maxDatagrams?: number;
  maxBytes?: number;
  timeoutUs?: number;
}

/** Entries of the source address cache (a power of two). */
const SRC_CACHE = 256;

export class Ipv6Input {
  private readonly ip = new Ipv6Header();
  /**
   * Source addresses seen lately, direct-mapped by hash: the packets of one peer share one Ip6
   * value, so the receive path allocates none for them and the value's text form (neighbor cache
   * keys, a socket's rinfo) is made once, not per packet. Values are immutable: sharing is safe.
   */
  private readonly srcCache: (Ip6 | null)[] = new Array<Ip6 | null>(SRC_CACHE).fill(null);
  /** The view of a reassembled packet. */
  private readonly whole = new Ipv6Header();
  readonly reasm: Ipv6Reassembler;
  private readonly peerMac = new Uint8Array(6);

  /** The time of the step under way (a late fragment that finds its datagram expired is answered at it). */
  private now = 0;

  constructor(private readonly eng: Ipv6Host, opts: Reassembly6Options) {
    // RFC 8200 4.5: Time Exceeded code 1 also when a late fragment is what finds the datagram expired.
    this.reasm = new Ipv6Reassembler({ ...opts, onTimeout: (first, vsId) => this.eng.icmp6.reassemblyTimeout(first, vsId, this.now) });
  }

  /** Returns the upper-layer protocol for the next stage, or 0 when the frame was consumed here. */
  input(m: RxMeta, j: number): number {
    const link0 = m.link[j]!;
    const b = m.b;
    const ip = this.ip;
    const l3 = m.l3Off[j]!;
    m.l4Off[j] = 0; // set once the chain is walked (the error path reads it)
    const d = ip.parse(b, l3, m.l3Len[j]!);
    const grp = this.eng.groupOf(link0)!;
    const dOff = ip.dstOff;
    // Which of our addresses (or groups) it is for: the destination's value is our own address
    // record's, found from the bytes (no allocation).
    let link: Link | undefined;
    let dst: Ip6 | null = null;
    let multicast = 0;
    let tentative = false;
    const inner = m.decap[j] !== 0;
    if (inner) {
      // Decapsulated (decap.ts): to a VIP of the VS whose address the outer packet came to.
      // (decap.ts saw a whole fixed header: the destination is there even if the rest is bad.)
      const vips = link0.vs.vips;
      const v = vips !== null ? vips.v6.get6At(b, dOff) : undefined;
      if (v === undefined) {
        m.drop(j, Drop.DecapNotVip);
        return 0;
      }
      link = link0;
      dst = v;
    } else if (d === Drop.None || ip.ppCode >= 0) {
      if (b[dOff] === 0xff) {
        // Multicast: all-nodes (ff02::1) and solicited-node groups (ff02::1:ffXX:XXXX) carry NDP
        // and MLD; the ICMPv6 stage checks the target. Nothing else multicast is served.
        const allNodes = b[dOff + 1] === 0x02 && eq6At(ALL_NODES, b, dOff);
        if (!allNodes && !isSolicitedNodeAt(b, dOff)) {
          m.drop(j, Drop.Ipv6NotOurAddress);
          return 0;
        }
        link = link0;
        dst = allNodes ? ALL_NODES : ip6At(b, dOff);
        multicast = 1;
      } else {
        link = grp.find6At(b, dOff);
        const vip = link || !this.eng.inLoopback || link0.vs.vips === null ? undefined : link0.vs.vips.v6.get6At(b, dOff);
        if (link) {
          dst = grp.lastKey6!; // our own address's value: nothing allocated per packet
        } else if (vip !== undefined) {
          // The VS to one of its own VIPs, looped back (output.ts ownLink): not from the wire.
          link = link0;
          dst = vip;
        } else {
          const t = grp.tentative6.get6At(b, dOff);
          // To a tentative address only NDP may come (DAD): a unicast NS for it is a neighbor's
          // DAD... which RFC 4862 5.4.3 says to treat like the multicast one; the ICMPv6 stage decides.
          if (t && b[l3 + 6] === IPPROTO_ICMPV6) {
            tentative = true;
            link = t;
            dst = addrValue(t, b, dOff);
          } else {
            m.drop(j, t ? Drop.Ipv6AddressTentative : Drop.Ipv6NotOurAddress);
            return 0;
          }
        }
      }
    }
    if (d !== Drop.None) {
      if (link && ip.ppCode >= 0 && !multicast) {
        m.link[j] = link;
        this.eng.icmp6.errorFor(m, j, ICMP6_PARAM_PROB, ip.ppCode, ip.ppPointer, dst!);
      } else if (link && ip.ppCode === 2) {
        // RFC 8200 4.2: an unknown option of type 10xxxxxx is answered even to multicast.
        m.link[j] = link;
        this.eng.icmp6.errorFor(m, j, ICMP6_PARAM_PROB, ip.ppCode, ip.ppPointer, dst!);
      }
      m.drop(j, d);
      return 0;
    }
    const sOff = ip.srcOff;
    const src = this.source(b, sOff);
    // `::` is a valid source only for DAD's Neighbor Solicitations (RFC 4862 5.4.2), checked by NDP.
    if (isBadSource6(src) || (!this.eng.inLoopback && (grp.find6At(b, sOff) !== undefined || (inner && link!.vs.isVip(src))))) {
      m.drop(j, Drop.Ipv6BadSource);
      return 0;
    }
    if ((src.w0 | src.w1 | src.w2 | src.w3) === 0 && ip.nextHeader !== IPPROTO_ICMPV6) {
      m.drop(j, Drop.Ipv6BadSource);
      return 0;
    }
    m.link[j] = link!;
    m.src6[j] = src;
    m.dst6[j] = dst;
    m.bcast[j] = multicast;
    m.tos[j] = ip.tclass;
    m.hops[j] = ip.hopLimit;
    // RFC 4862 5.4: a tentative (or duplicate) address takes Neighbor Solicitations and
    // Advertisements only; anything else to it is silently discarded (an echo is not answered).
    if (tentative && ((ip.isFragment && !ip.atomic) || ip.nextHeader !== IPPROTO_ICMPV6 || (b[ip.l4Off] !== 135 && b[ip.l4Off] !== 136))) {
      m.drop(j, Drop.Ipv6AddressTentative);
      return 0;
    }
    const nh0 = ip.nextHeader;
    if (inner) {
      if (isEncapsulation(nh0)) {
        m.drop(j, Drop.DecapNested);
        return 0;
      }
      // fe80::/10 never leaves its link (RFC 4291 2.5.6): not a client behind a load balancer.
      if (isLinkLocal6(src)) {
        m.drop(j, Drop.DecapLinkScoped);
        return 0;
      }
      if (!this.eng.forwardedIn) link!.decapsulated++; // (a frame handed over by another shard was counted there)
    } else if (isEncapsulation(nh0) && !multicast && link!.vs.vips !== null) {
      // IPv6 / IPv4 in IPv6 to a VS that serves VIPs (one that does not: an unknown next header, below).
      if (!ip.isFragment || ip.atomic) return this.eng.decap.input(m, j, link!, src, 6, nh0, ip.l4Off, ip.l4Len);
      // An outer fragment: reassembled below, then input again whole (deliver, Engine.rejoin).
      // Only a load balancer's: nobody else's fragments take reassembly memory.
      if (!link!.vs.vips.allows(src)) {
        m.drop(j, Drop.DecapSourceRefused);
        return 0;
      }
    }
    if (ip.isFragment && !ip.atomic) {
      if (multicast) {
        m.drop(j, Drop.Ipv6NotOurAddress);
        return 0;
      }
      // Shards: one shard reassembles all fragments of a packet.
      if (this.eng.steerFragment(m, j, addrHash(src) ^ addrHash(dst!), ip.fragId)) {
        m.free(j);
        return 0;
      }
      const so = m.srcMac[j]!;
      for (let i = 0; i < 6; i++) this.peerMac[i] = b[so + i]!;
      this.now = m.now;
      const rd = this.reasm.push(link!.vs.id, ip, b, m.now);
      if (rd !== Drop.None) {
        if (this.reasm.ppCode >= 0) this.eng.icmp6.errorFor(m, j, ICMP6_PARAM_PROB, this.reasm.ppCode, this.reasm.ppPointer, dst!);
        m.drop(j, rd);
        return 0;
      }
      m.free(j);
      if (this.reasm.done) this.datagram(link!, src, dst!, m.now);
      return 0;
    }
    m.l4Off[j] = ip.l4Off;
    m.l4Len[j] = ip.l4Len;
    const nh = ip.nextHeader;
    if (nh === IPPROTO_ICMPV6) return nh;
    if (multicast) {
      m.drop(j, Drop.Ipv6NotOurAddress); // no UDP or TCP to groups
      return 0;
    }
    if (nh === IPPROTO_UDP || nh === IPPROTO_TCP) return nh;
    // Unknown upper layer: Parameter Problem code 1 pointing at the Next Header field that named it
    // (RFC 8200 section 4; RFC 4443 3.4).
    const drop = ip.unknownNextHeader();
    this.eng.icmp6.errorFor(m, j, ICMP6_PARAM_PROB, ip.ppCode, ip.ppPointer, dst!);
    m.drop(j, drop);
    return 0;
  }

  /**
   * A reassembled packet (`reasm.packet`, rebuilt without its Fragment header and reused by the
   * reassembler): its header chain is walked again, for the headers that came after the Fragment
   * header, then the upper layer gets its part.
   */
  private datagram(link: Link, src: Ip6, dst: Ip6, now: number): void {
    const pkt = this.reasm.packet;
    const peerMac = Uint8Array.from(this.peerMac);
    this.eng.rxDatagram = { v6: true, link, src, dst, proto: 0, tos: 0, data: pkt, mac: peerMac };
    try {
      this.deliver(link, src, dst, pkt, peerMac, now);
    } finally {
      this.eng.rxDatagram = null;
    }
  }

  /** A whole packet (no Fragment header) to its upper layer: reassembled here, or by another shard that handed it over. */
  deliver(link: Link, src: Ip6, dst: Ip6, pkt: Uint8Array, peerMac: Uint8Array, now: number): void {
    const h = this.whole;
    const d = h.parse(pkt, 0, pkt.length);
    if (d !== Drop.None) return link.drop(d);
    const nh = h.nextHeader;
    // A tunnel's outer packet, whole again: decapsulated as one that came whole (RFC 2473 7).
    if (isEncapsulation(nh) && link.vs.vips !== null) return this.eng.rejoin(link, true, src, dst, nh, 0, pkt, peerMac);
    const dg = pkt.subarray(h.l4Off, h.l4Off + h.l4Len);
    if (nh === IPPROTO_UDP) {
      // No socket: port unreachable quoting the reassembled packet (RFC 4443 3.1), as for a whole one.
      if (!this.eng.udp.datagram(link, src, dst, dg, peerMac, false)) this.eng.icmp6.portUnreachable(link, pkt, src, dst, peerMac, now);
      return;
    }
    if (nh === IPPROTO_ICMPV6) return this.eng.icmp6.datagram(link, src, dst, dg, peerMac, now);
    if (nh === IPPROTO_TCP) {
      this.eng.tcp.input(link, dg, 0, dg.length, src, dst, peerMac, now, null, -1);
      return;
    }
    // Unknown upper layer: Parameter Problem code 1 at the field that named it, as for a whole packet.
    this.eng.icmp6.unknownNextHeader(link, pkt, src, dst, h.nhFieldOff, peerMac, now);
    link.drop(Drop.Ipv6UnknownNextHeader);
  }

  /** The source address at `b[off..off+16)`, from the cache when seen lately. */
  private source(b: Uint8Array, off: number): Ip6 {
    const h = hash6At(b, off);
    const i = h & (SRC_CACHE - 1);
    const c = this.srcCache[i]!;
    if (c !== null && c.hash === h && eq6At(c, b, off)) return c;
    const a = ip6At(b, off);
    this.srcCache[i] = a;
    return a;
  }

  /** Drops datagrams whose fragments did not all come in time; Time Exceeded for those whose first fragment came. */
  expire(now: number): void {
    const n = this.reasm.expire(now, (first, vsId) => this.eng.icmp6.reassemblyTimeout(first, vsId, now));
    if (n) this.eng.counters.drop(Drop.Ipv6ReassemblyTimeout, n);
  }

  nextDeadline(): number {
    return this.reasm.nextDeadline();
  }
}

const ALL_NODES = new Ip6(0xff020000, 0, 0, 1);

/** The value of `link`'s address at `b[off..]` (our own record: no allocation per packet). */
function addrValue(link: Link, b: Uint8Array, off: number): Ip6 {
  const addrs = link.addrs;
  for (let i = 0; i < addrs.length; i++) {
    const a = addrs[i]!.addr;
    if (typeof a !== 'number' && eq6At(a, b, off)) return a;
  }
  return ip6At(b, off);
}

