/**
 * IPv6 neighbor discovery in the engine (RFC 4861), address autoconfiguration's duplicate address
 * detection (RFC 4862) and the MLDv2 reports (RFC 3810) that make switches with MLD snooping
 * deliver solicitations to us. The neighbor state machine itself is the one ARP uses
 * (stack/neighbor.ts); this module speaks NDP for it:
 *
 * - Neighbor Solicitation for one of our addresses: the sender is learned (STALE) and answered with
 *   a solicited Neighbor Advertisement; from `::` (another node's DAD) the answer goes to all nodes.
 * - Neighbor Advertisement: updates the cache per RFC 4861 7.2.5.
 * - A new address is tentative: DAD sends `dadTransmits` solicitations from `::`; if nobody claims
 *   the address within `retransUs` after the last, it becomes preferred and is announced with an
 *   unsolicited advertisement (RFC 4861 7.2.6); a solicitation from `::` or an advertisement for it
 *   meanwhile marks it duplicate: reported once and never used (RFC 4862 5.4.5).
 * - An MLDv1 query puts the links that heard it in MLDv1 Host Compatibility Mode (RFC 3810 8.2.1)
 *   for the Older Version Querier Present Timeout: their reports are MLDv1 Reports and Dones
 *   (RFC 2710) until it passes with no other MLDv1 query.
 * - The solicited-node groups of a link are reported when joined and again every `mldReportUs`:
 *   the XDP program leaves MLD queries to the host that shares the device, so the engine may never
 *   hear one, and a snooping switch forgets a listener that does not report within its Multicast
 *   Address Listening Interval (RFC 3810 9.4, 260 s by default).
 */
import { Drop } from '../../protocols/drop';
import { ETH_P_IPV6 } from '../../protocols/ethernet';
import {
  hash6, ALL_MLDV2_ROUTERS6, ALL_NODES6, ALL_ROUTERS6, ANY6, Ip6, ip6At, isMulticast6, isSolicitedNodeAt, isUnspecified, multicastMac6, solicitedNode,
} from '../../protocols/ip/addr';
import { IPPROTO_ICMPV6, IPPROTO_HOPOPTS } from '../../protocols/ipv6';
import { NdpPacket, writeNa, writeNs, NA_FLAG_OVERRIDE, NA_FLAG_SOLICITED } from '../../protocols/ndp';
import { ND_NEIGHBOR_ADVERT, ND_NEIGHBOR_SOLICIT } from '../../protocols/icmpv6';
import { MldQuery, mldv2MaxRecords, writeMldv1, writeMldv2Report, writeRouterAlertHbh, MLD_OLDER_QUERIER_PRESENT_US } from '../../protocols/mld';
import type { Timer } from '../timers';
import type { LogLevel } from '../../driver/types';
import type { RxMeta } from '../engine/meta';
import type { Address, Link } from '../vs';
import { linkEth } from './demux';
import { writeIp6Header } from '../ip/output';

import type { Device } from '../engine/device';
import type { IpOutput } from '../ip/output';
import type { TimerWheel } from '../timers';
import type { LinkGroup } from './demux';

/** What NDP needs from the engine. */
export interface NdpHost {
  readonly devices: readonly Device[];
  readonly out: IpOutput;
  readonly wheel: TimerWheel;
  groupOf(link: Link): LinkGroup | null;
  /** The current time for work started outside a step (an address added from the API). */
  time(): number;
  timerArmed(): void;
  log(message: string, level?: LogLevel): void;
}

export interface NdpOptions {
  /** Neighbor Solicitations sent by DAD (RFC 4862 DupAddrDetectTransmits); 0 turns DAD off. Default 1. */
  dadTransmits: number;
  /** Time between them and after the last (RFC 4861 RetransTimer, µs). Default 1 s. */
  retransUs: number;
  /**
   * Interval of the unsolicited reports of each link's groups (µs); 0 = only when a group is
   * joined. Default 60 s: within half the default Query Interval (125 s, RFC 3810 9.2), so a
   * snooping switch keeps the membership even when a report is lost.
   */
  mldReportUs: number;
}

const NDP_HOP_LIMIT = 255;

/** DAD in progress for one address. */
interface Dad {
  link: Link;
  addr: Address;
  sent: number;
  timer: Timer;
  /** The Nonce option of our probes (RFC 7527): a probe that comes back with it is our own, looped. */
  nonce: Uint8Array;
}

export class Ndp {
  private readonly opts: NdpOptions;
  private readonly nd = new NdpPacket();
  private readonly query = new MldQuery();
  private readonly dad = new Map<Address, Dad>();
  /** Per link: solicited-node groups joined (low 24 bits → number of our addresses in it). */
  private readonly groups = new WeakMap<Link, Map<number, number>>();
  /** Per link with groups: the timer of its periodic report. */
  private readonly reportTimers = new WeakMap<Link, Timer>();
  /**
   * Per link: until when (µs) it is in MLDv1 Host Compatibility Mode (RFC 3810 8.2.1): an MLDv1
   * querier was heard; its reports are MLDv1 Reports and Dones meanwhile (an MLDv1 router ignores
   * MLDv2 reports).
   */
  private readonly v1Until = new WeakMap<Link, number>();
  /** Duplicate addresses found (reported once each). */
  duplicates = 0;
  /** Our own DAD probes received back (RFC 7527 loop detection), not taken as duplicates. */
  loopedProbes = 0;
  private nonceCount = 0;

  /**
   * A Nonce for a DAD run (RFC 7527 asks for random; a keyed counter is enough here: the nonce only
   * tells our own looped probes from another node's, and replays stay reproducible).
   */
  private nextNonce(addr: Ip6): Uint8Array {
    const h1 = hash6(addr.w0 ^ this.nonceCount, addr.w1, addr.w2, addr.w3);
    const h2 = hash6(h1, ++this.nonceCount, addr.w3, addr.hash);
    return Uint8Array.from([h1 >>> 24, (h1 >>> 16) & 0xff, (h1 >>> 8) & 0xff, h1 & 0xff, h2 & 0xff, (h2 >>> 8) & 0xff]);
  }

  constructor(private readonly eng: NdpHost, opts: Partial<NdpOptions>) {
    const dadTransmits = opts.dadTransmits ?? 1;
    const retransUs = opts.retransUs ?? 1_000_000;
    if (!Number.isInteger(dadTransmits) || dadTransmits < 0 || dadTransmits > 16) throw new RangeError(`ndp.dadTransmits must be 0..16, got ${dadTransmits}`);
    if (!Number.isFinite(retransUs) || retransUs < 1000) throw new RangeError(`ndp.retransUs must be at least 1000, got ${retransUs}`);
    const mldReportUs = opts.mldReportUs ?? 60_000_000;
    if (!Number.isFinite(mldReportUs) || (mldReportUs !== 0 && mldReportUs < 100_000)) throw new RangeError(`ndp.mldReportUs must be 0 or at least 100000, got ${mldReportUs}`);
    this.opts = { dadTransmits, retransUs, mldReportUs };
  }

  // ------------------------------------------------------------ addresses

  /** A new IPv6 address on `link` (tentative): join its solicited-node group, then DAD. */
  addressAdded(link: Link, a: Address): void {
    const addr = a.addr as Ip6;
    if (this.opts.dadTransmits === 0) {
      // Usable at once: announced, then the group joined (the report then has a link-local source).
      this.preferred(link, a);
      this.join(link, addr);
      return;
    }
    this.join(link, addr);
    const d: Dad = { link, addr: a, sent: 0, timer: this.eng.wheel.create((now) => this.dadTimer(d, now)), nonce: this.nextNonce(addr) };
    this.dad.set(a, d);
    this.dadTimer(d, this.eng.time());
  }

  addressRemoved(link: Link, a: Address): void {
    const d = this.dad.get(a);
    if (d) {
      this.eng.wheel.cancel(d.timer);
      this.dad.delete(a);
    }
    this.leave(link, a.addr as Ip6);
  }

  private dadTimer(d: Dad, now: number): void {
    if (d.addr.state !== 'tentative' || !d.link.addrs.includes(d.addr)) {
      this.dad.delete(d.addr);
      return;
    }
    if (d.sent >= this.opts.dadTransmits) {
      this.dad.delete(d.addr);
      this.preferred(d.link, d.addr);
      return;
    }
    d.sent++;
    // RFC 4862 5.4.2: from the unspecified address, to the target's solicited-node group.
    this.sendNs(d.link, d.addr.addr as Ip6, ANY6, null, d.nonce);
    this.eng.wheel.set(d.timer, now + this.opts.retransUs);
    this.eng.timerArmed();
  }

  /** DAD passed (or is off): the address is used, and announced to all nodes (RFC 4861 7.2.6). */
  private preferred(link: Link, a: Address): void {
    a.state = 'preferred';
    const g = this.eng.groupOf(link)!;
    const addr = a.addr as Ip6;
    g.tentative6.delete(addr);
    g.setAddr6(addr, link);
    this.sendNa(link, addr, ALL_NODES6, null, NA_FLAG_OVERRIDE);
  }

  /** DAD found another holder of `a` (RFC 4862 5.4.5): kept as duplicate, never used, reported once. */
  private duplicate(link: Link, a: Address): void {
    if (a.state !== 'tentative') return;
    a.state = 'duplicate';
    const d = this.dad.get(a);
    if (d) {
      this.eng.wheel.cancel(d.timer);
      this.dad.delete(a);
    }
    this.duplicates++;
    this.eng.log(`xdpstack: virtual server '${link.vs.name}' link '${link.name}': address ${a.addr.toString()} is a duplicate ` +
      '(another node on the link holds it); it is not used', 'warn');
  }

  // ------------------------------------------------------------ receive

  /** A Neighbor Solicitation or Advertisement (hop limit already checked) in frame `j`. */
  input(m: RxMeta, j: number): void {
    const link0 = m.link[j]!;
    const b = m.b;
    const nd = this.nd;
    const l3 = m.l3Off[j]!;
    const d = nd.parse(b, m.l4Off[j]!, m.l4Len[j]!, l3 + 8, l3 + 24, m.hops[j]!);
    if (d !== Drop.None) return m.drop(j, d);
    if (nd.type !== ND_NEIGHBOR_SOLICIT && nd.type !== ND_NEIGHBOR_ADVERT) return m.drop(j, Drop.Icmpv6UnknownType); // RS, redirect
    // A link-layer address that is a group address (broadcast, multicast) is no neighbor's: never learned.
    if ((nd.sllaOff >= 0 && (b[nd.sllaOff]! & 1) !== 0) || (nd.tllaOff >= 0 && (b[nd.tllaOff]! & 1) !== 0)) return m.drop(j, Drop.LinkAddrGroup);
    const grp = this.eng.groupOf(link0)!;
    const src = m.src6[j]!;
    const fromDad = isUnspecified(src);
    const tOff = nd.targetOff;
    const preferredLink = grp.find6At(b, tOff);
    const tentativeLink = preferredLink ? undefined : grp.tentative6.get6At(b, tOff);
    const link = preferredLink ?? tentativeLink;
    const dst = m.dst6[j]!;
    if (nd.type === ND_NEIGHBOR_SOLICIT) {
      // RFC 4861 7.1.1: from :: only to a solicited-node group and without a source link-layer address.
      if (fromDad && (!isMulticast6(dst) || nd.sllaOff >= 0)) return m.drop(j, Drop.NdpInvalid);
      if (!link) return m.drop(j, Drop.Ipv6NotOurAddress);
      m.link[j] = link;
      const target = this.ourAddr(link, b, tOff);
      if (tentativeLink) {
        // RFC 4862 5.4.3: another node's DAD for our tentative address makes it a duplicate; a
        // solicitation from a unicast source (address resolution) is ignored meanwhile.
        if (fromDad && target) {
          // RFC 7527: our own probe looped back (a switch that reflects multicast) is no conflict.
          const d = this.dad.get(target);
          if (d && nd.nonceOff >= 0 && sameBytes(b, nd.nonceOff, d.nonce)) {
            this.loopedProbes++;
            return m.free(j);
          }
          this.duplicate(link, target);
        }
        return m.free(j);
      }
      const t = target!.addr as Ip6;
      if (fromDad) {
        // Another node's DAD for an address we hold: defend it, to all nodes (RFC 4861 7.2.4).
        this.sendNa(link, t, ALL_NODES6, null, NA_FLAG_OVERRIDE);
        return m.free(j);
      }
      // Learn the sender (RFC 4861 7.2.3: create or update as STALE) and answer it, solicited.
      let mac: Uint8Array | null = null;
      let macOff = 0;
      if (nd.sllaOff >= 0) {
        link.neigh.learn(src, b, nd.sllaOff, false, true, m.now);
        mac = b;
        macOff = nd.sllaOff;
      } else if (!isMulticast6(dst)) {
        mac = b; // unicast NS without SLLA (NUD probe): answer to the frame's sender
        macOff = m.srcMac[j]!;
      } else {
        return m.drop(j, Drop.NdpInvalid); // to a group without SLLA: nowhere to answer
      }
      this.sendNa(link, t, src, mac, NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE, macOff);
      return m.free(j);
    }
    // Neighbor Advertisement. RFC 4861 7.1.2: to a group, Solicited must be clear.
    if (isMulticast6(dst) && nd.solicited) return m.drop(j, Drop.NdpInvalid);
    if (tentativeLink) {
      const target = this.ourAddr(tentativeLink, b, tOff);
      if (target) this.duplicate(tentativeLink, target); // RFC 4862 5.4.4
      return m.free(j);
    }
    if (preferredLink) return m.drop(j, Drop.Ipv6BadSource); // someone else claims our address: not learned
    const target = ip6At(b, tOff);
    const lla = nd.tllaOff >= 0 ? b : null;
    // RFC 4861 7.2.5: an advertisement for a neighbor without an entry is ignored (counted).
    let known = link0.neigh.learnAdvert(target, lla, nd.tllaOff, nd.solicited, nd.override, m.now);
    // Sent to a link-layer group (an unsolicited advertisement to all nodes, RFC 4861 7.2.6), it
    // reached every node on the link: each VS on this (device, VLAN) keeps its own cache, and each
    // updates its entry, as every host on a shared segment would.
    if ((b[m.ethOff[j]!]! & 1) !== 0) {
      const links = grp.links;
      for (let i = 0; i < links.length; i++) {
        const l = links[i]!;
        if (l !== link0 && l.neigh.learnAdvert(target, lla, nd.tllaOff, nd.solicited, nd.override, m.now)) known = true;
      }
    }
    if (!known) return m.drop(j, Drop.NdpNoEntry);
    m.free(j);
  }

  /**
   * An MLD query: answered with a report of the groups of each link on the frame's (device, VLAN)
   * (RFC 3810 6.2): several VSes may share a VLAN, each listening to its own groups.
   */
  mldQuery(m: RxMeta, j: number): void {
    const q = this.query;
    const d = q.parse(m.b, m.l4Off[j]!, m.l4Len[j]!, m.l3Off[j]! + 8);
    if (d !== Drop.None) return m.drop(j, d);
    // RFC 3810 8.2.1: an MLDv1 query (24 bytes) puts each link that heard it in MLDv1 Host
    // Compatibility Mode for the Older Version Querier Present Timeout (9.12); whatever query comes
    // meanwhile is answered with MLDv1 Reports (as Linux's mld_in_v1_mode).
    if (q.version === 1) {
      const until = m.now + MLD_OLDER_QUERIER_PRESENT_US;
      for (const link of this.eng.groupOf(m.link[j]!)!.links) this.v1Until.set(link, until);
    }
    // Only a General Query or one for a group of ours is answered; others are not about us.
    const low = ((m.b[q.groupOff + 13]! << 16) | (m.b[q.groupOff + 14]! << 8) | m.b[q.groupOff + 15]!) >>> 0;
    if (!q.general && !isSolicitedNodeAt(m.b, q.groupOff)) return m.drop(j, Drop.Ipv6NotOurAddress);
    let answered = false;
    for (const link of this.eng.groupOf(m.link[j]!)!.links) {
      const g = this.groups.get(link);
      if (!g || g.size === 0 || (!q.general && !g.has(low))) continue;
      // RFC 3810 6.2: the answer holds Current State Records (MODE_IS_EXCLUDE {}): of every group for
      // a General Query, of the group asked about for a Multicast Address Specific Query.
      const groups = q.general ? [...g.keys()] : [low];
      this.report(link, groups.map((x) => solicitedNode(new Ip6(0, 0, 0, x))), false, true, m.now);
      answered = true;
    }
    if (!answered) return m.drop(j, Drop.Ipv6NotOurAddress);
    m.free(j);
  }


  /** The address record of `link` at b[off..off+16), or null. */
  private ourAddr(link: Link, b: Uint8Array, off: number): Address | null {
    for (const a of link.addrs) {
      const x = a.addr;
      if (typeof x !== 'number' && x.w0 === rd32(b, off) && x.w1 === rd32(b, off + 4) && x.w2 === rd32(b, off + 8) && x.w3 === rd32(b, off + 12)) return a;
    }
    return null;
  }

  // ------------------------------------------------------------ send

  /** NeighborHost's solicitation for `target` on `link` (multicast, or unicast to `mac` for NUD probes). */
  solicit(link: Link, target: Ip6, mac: Uint8Array | null): void {
    const src = this.eng.out.sourceFor(link, target);
    if (src === 0 || typeof src === 'number') return link.drop(Drop.Ipv6NoRoute); // no usable address yet
    this.sendNs(link, target, src, mac);
  }

  private sendNs(link: Link, target: Ip6, src: Ip6, mac: Uint8Array | null, nonce?: Uint8Array): void {
    const dst = mac ? target : solicitedNode(target);
    const f = this.frame(link);
    if (f < 0) return;
    const pool = this.eng.devices[link.dev]!.pool;
    const start = pool.dataStart(f);
    const ip = start + link.ethLen;
    // RFC 4861 4.3: the source link-layer address is included, except from :: (DAD).
    const len = writeNs(pool.bytes, ip + 40, target, isUnspecified(src) ? null : link.mac, src, dst, nonce);
    writeIp6Header(pool.bytes, ip, src, dst, IPPROTO_ICMPV6, len, NDP_HOP_LIMIT, 0, 0);
    linkEth(pool.bytes, start, mac ?? multicastMac6(dst, link.scratchMac), 0, link, ETH_P_IPV6);
    this.eng.out.enqueue(link, pool, f, start, link.ethLen + 40 + len);
  }

  /** An advertisement of our `target` to `to` (at `mac[macOff..]`, or the group's MAC when null). */
  private sendNa(link: Link, target: Ip6, to: Ip6, mac: Uint8Array | null, flags: number, macOff = 0): void {
    const f = this.frame(link);
    if (f < 0) return;
    const pool = this.eng.devices[link.dev]!.pool;
    const start = pool.dataStart(f);
    const ip = start + link.ethLen;
    const len = writeNa(pool.bytes, ip + 40, target, flags, link.mac, target, to);
    writeIp6Header(pool.bytes, ip, target, to, IPPROTO_ICMPV6, len, NDP_HOP_LIMIT, 0, 0);
    linkEth(pool.bytes, start, mac ?? multicastMac6(to, link.scratchMac), mac ? macOff : 0, link, ETH_P_IPV6);
    this.eng.out.enqueue(link, pool, f, start, link.ethLen + 40 + len);
  }

  private frame(link: Link): number {
    const pool = this.eng.devices[link.dev]!.pool;
    const f = pool.alloc();
    if (f < 0) link.drop(Drop.NoFrame);
    return f;
  }

  // ------------------------------------------------------------ MLDv2

  private join(link: Link, addr: Ip6): void {
    let g = this.groups.get(link);
    if (!g) this.groups.set(link, (g = new Map()));
    const low = addr.w3 & 0xffffff;
    const n = g.get(low) ?? 0;
    g.set(low, n + 1);
    if (n === 0) this.report(link, [solicitedNode(addr)], false);
    if (this.opts.mldReportUs > 0 && !this.reportTimers.has(link)) {
      const t = this.eng.wheel.create((now) => this.reportTimer(link, t, now));
      this.reportTimers.set(link, t);
      this.eng.wheel.set(t, this.eng.time() + this.opts.mldReportUs);
      this.eng.timerArmed();
    }
  }

  /** Reports every group of `link` again, and re-arms while it has any. */
  private reportTimer(link: Link, t: Timer, now: number): void {
    const g = this.groups.get(link);
    if (!g || g.size === 0 || this.reportTimers.get(link) !== t) return;
    this.report(link, [...g.keys()].map((x) => solicitedNode(new Ip6(0, 0, 0, x))), false, false, now);
    this.eng.wheel.set(t, now + this.opts.mldReportUs);
  }

  private leave(link: Link, addr: Ip6): void {
    const g = this.groups.get(link);
    if (!g) return;
    const low = addr.w3 & 0xffffff;
    const n = g.get(low) ?? 0;
    if (n <= 1) {
      g.delete(low);
      this.report(link, [solicitedNode(addr)], true);
      const t = this.reportTimers.get(link);
      if (g.size === 0 && t) {
        this.eng.wheel.cancel(t);
        this.reportTimers.delete(link);
      }
    } else g.set(low, n - 1);
  }

  /**
   * An MLDv2 report (RFC 3810 5.2) for `groups`: joins (EXCLUDE {}) or leaves (INCLUDE {}), to
   * ff02::16 with hop limit 1 and a Router Alert, from the link-local address (`::` while it is
   * still tentative, as RFC 3810 5.2.13 allows).
   */
  private report(link: Link, groups: Ip6[], leave: boolean, current = false, now = this.eng.time()): void {
    const v1 = this.v1Until.get(link);
    if (v1 !== undefined) {
      if (now < v1) return this.reportV1(link, groups, leave);
      this.v1Until.delete(link); // the MLDv1 querier went quiet: MLDv2 again (RFC 3810 8.2.1)
    }
    const pool = this.eng.devices[link.dev]!.pool;
    // RFC 3810 5.2.15: records beyond one packet go into further reports, each within the MTU
    // (and the frame).
    const max = Math.max(1, mldv2MaxRecords(Math.min(link.mtu, pool.frameSize - pool.headroom - link.ethLen)));
    if (groups.length > max) {
      for (let i = 0; i < groups.length; i += max) this.report(link, groups.slice(i, i + max), leave, current);
      return;
    }
    const f = this.frame(link);
    if (f < 0) return;
    const start = pool.dataStart(f);
    const ip = start + link.ethLen;
    let src: Ip6 = ANY6;
    for (const a of link.addrs) if (typeof a.addr !== 'number' && a.state === 'preferred' && (a.addr.w0 >>> 22) === 0x3fa) { src = a.addr; break; }
    const hbh = writeRouterAlertHbh(pool.bytes, ip + 40, IPPROTO_ICMPV6);
    const len = writeMldv2Report(pool.bytes, ip + 40 + hbh, groups, src, ALL_MLDV2_ROUTERS6, leave, current);
    writeIp6Header(pool.bytes, ip, src, ALL_MLDV2_ROUTERS6, IPPROTO_HOPOPTS, hbh + len, 1, 0, 0);
    linkEth(pool.bytes, start, multicastMac6(ALL_MLDV2_ROUTERS6, link.scratchMac), 0, link, ETH_P_IPV6);
    this.eng.out.enqueue(link, pool, f, start, link.ethLen + 40 + hbh + len);
  }

  /**
   * MLDv1 Host Compatibility Mode (RFC 3810 8.2.1): one MLDv1 Report per group, to the group
   * itself, or a Done for a `leave`, to all routers (RFC 2710 3, 4), hop limit 1 behind a Router
   * Alert, from the link-local address (`::` while it is tentative, as for MLDv2).
   */
  private reportV1(link: Link, groups: Ip6[], leave: boolean): void {
    const pool = this.eng.devices[link.dev]!.pool;
    let src: Ip6 = ANY6;
    for (const a of link.addrs) if (typeof a.addr !== 'number' && a.state === 'preferred' && (a.addr.w0 >>> 22) === 0x3fa) { src = a.addr; break; }
    for (const g of groups) {
      const f = this.frame(link);
      if (f < 0) return;
      const start = pool.dataStart(f);
      const ip = start + link.ethLen;
      const dst = leave ? ALL_ROUTERS6 : g;
      const hbh = writeRouterAlertHbh(pool.bytes, ip + 40, IPPROTO_ICMPV6);
      const len = writeMldv1(pool.bytes, ip + 40 + hbh, g, src, dst, leave);
      writeIp6Header(pool.bytes, ip, src, dst, IPPROTO_HOPOPTS, hbh + len, 1, 0, 0);
      linkEth(pool.bytes, start, multicastMac6(dst, link.scratchMac), 0, link, ETH_P_IPV6);
      this.eng.out.enqueue(link, pool, f, start, link.ethLen + 40 + hbh + len);
    }
  }
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function sameBytes(b: Uint8Array, off: number, x: Uint8Array): boolean {
  for (let i = 0; i < x.length; i++) if (b[off + i] !== x[i]) return false;
  return true;
}
