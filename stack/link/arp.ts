/**
 * ARP (RFC 826) for IPv4 neighbors: answers requests for the VS's addresses in place, learns
 * senders into the link's neighbor cache (the state machine shared with NDP), and sends requests
 * and gratuitous announcements.
 */
import { ArpPacket, ARP_LEN, ARP_REPLY, ARP_REQUEST, writeArp } from '../../protocols/arp';
import { Drop } from '../../protocols/drop';
import { ETH_P_ARP } from '../../protocols/ethernet';
import { prefixMatch } from '../../protocols/ip/addr';
import { isBadSource4 } from '../../protocols/ipv4';
import type { RxMeta } from '../engine/meta';
import type { Link } from '../vs';
import { BCAST_MAC, linkEth, ZERO_MAC } from './demux';

import type { Device } from '../engine/device';
import type { IpOutput } from '../ip/output';
import type { LinkGroup } from './demux';

/** What ARP needs from the engine. */
export interface ArpHost {
  readonly devices: readonly Device[];
  readonly out: IpOutput;
  groupOf(link: Link): LinkGroup | null;
}

export class Arp {
  private readonly arp = new ArpPacket();
  private readonly mac = new Uint8Array(6);

  constructor(private readonly eng: ArpHost) {}

  input(m: RxMeta, j: number): void {
    const link0 = m.link[j]!;
    const b = m.b;
    const arp = this.arp;
    const d = arp.parse(b, m.l3Off[j]!, m.l3Len[j]!);
    if (d !== Drop.None) return m.drop(j, d);
    // A sender hardware address that is a group address (broadcast, multicast) is no host's: learnt,
    // it would send unicast traffic to every node (RFC 1812 3.3.2 forbids believing it).
    if ((b[arp.shaOff]! & 1) !== 0) return m.drop(j, Drop.LinkAddrGroup);
    const grp = this.eng.groupOf(link0)!;
    // A sender protocol address that no host may hold (multicast, loopback, 240/4 and the limited
    // broadcast, the rest of 0/8, a subnet broadcast address of the VLAN) is neither learned nor
    // answered, as an IPv4 datagram from it would be a martian (Linux: its route lookup fails).
    // 0.0.0.0 is a probe (RFC 5227 2.1.1): answered, never learned.
    const sender = arp.spa;
    if (sender !== 0 && ((sender >>> 24) === 0 || isBadSource4(sender) || grp.bcast.has(sender | 0))) return m.drop(j, Drop.ArpBadSender);
    const target = grp.addrs.get(arp.tpa | 0);
    // RFC 826 merge: each VS that heard the frame refreshes an entry it already has for the sender
    // (creating none). A broadcast reached every VS on this (device, VLAN); each keeps its own cache.
    // Never for one of our addresses (someone else claiming it: RFC 5227 conflict).
    const merge = arp.spa !== 0 && !grp.addrs.has(arp.spa | 0);
    if (merge && (b[m.ethOff[j]!]! & 1) !== 0) {
      const links = grp.links;
      for (let i = 0; i < links.length; i++) {
        const l = links[i]!;
        if (l !== target) l.neigh.learn(arp.spa, b, arp.shaOff, false, false, m.now);
      }
    } else if (merge && !target) link0.neigh.learn(arp.spa, b, arp.shaOff, false, false, m.now);
    if (!target) return m.drop(j, Drop.ArpNotOurAddress);
    const link = target;
    m.link[j] = link;
    // Never learn our own address (address conflict) nor 0.0.0.0 (a probe): `merge` above. A new
    // entry is made only for a sender in a connected prefix of the link (RFC 826 learning is about
    // the hosts of that network; off-subnet senders would only fill the table): others may refresh
    // an entry the stack made itself (an on-link gateway it is resolving) but never create one.
    const learnable = merge;
    if (learnable) {
      // A reply updates an entry (one being resolved, or known) but creates none: an unsolicited
      // reply is not believed (Linux with arp_accept 0), so nobody plants an entry for a neighbor
      // (the gateway) before the VS asks for it. Only a unicast reply confirms reachability
      // (Linux: "broadcast replies do not assert neighbour reachability").
      if (arp.op === ARP_REPLY) link.neigh.learn(arp.spa, b, arp.shaOff, (b[m.ethOff[j]!]! & 1) === 0, false, m.now);
      else link.neigh.learn(arp.spa, b, arp.shaOff, false, onLinkSubnet(link, arp.spa), m.now);
    }
    if (arp.op !== ARP_REQUEST) {
      // A reply that taught nothing (sender 0.0.0.0, or our own address: RFC 5227 2.4 conflict) is counted.
      if (!learnable) return m.drop(j, Drop.ArpBadSender);
      return m.free(j);
    }
    // Reply in place, to the requester's hardware address, through the link it arrived on.
    const sm = this.mac;
    for (let i = 0; i < 6; i++) sm[i] = b[arp.shaOff + i]!;
    const spa = arp.spa;
    const tpa = arp.tpa;
    const off = m.ethOff[j]!;
    const hl = linkEth(b, off, sm, 0, link, ETH_P_ARP);
    writeArp(b, off + hl, ARP_REPLY, link.mac, 0, tpa, sm, 0, spa);
    this.eng.out.enqueue(link, m.pool, m.frame(j), off, hl + ARP_LEN);
  }

  /** An ARP request for `ip` from `src` (broadcast when `mac` is null, else unicast to `mac`). */
  request(link: Link, src: number, ip: number, mac: Uint8Array | null): void {
    const pool = this.eng.devices[link.dev]!.pool;
    const f = pool.alloc();
    if (f < 0) return link.drop(Drop.NoFrame);
    const start = pool.dataStart(f);
    const hl = linkEth(pool.bytes, start, mac ?? BCAST_MAC, 0, link, ETH_P_ARP);
    writeArp(pool.bytes, start + hl, ARP_REQUEST, link.mac, 0, src, ZERO_MAC, 0, ip);
    this.eng.out.enqueue(link, pool, f, start, hl + ARP_LEN);
  }

  /** A gratuitous ARP announcing `addr` (RFC 5227 section 3), sent when the address is added. */
  announce(link: Link, addr: number): void {
    this.request(link, addr, addr, null);
  }
}

/** Whether IPv4 `addr` lies in a prefix of one of `link`'s addresses (a connected subnet). */
export function onLinkSubnet(link: Link, addr: number): boolean {
  for (const a of link.addrs) if (typeof a.addr === 'number' && prefixMatch(a.addr, addr, a.prefixLen)) return true;
  return false;
}
