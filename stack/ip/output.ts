/**
 * The one IP output path, for both families, used by ICMP, ICMPv6, UDP and TCP:
 *
 *   path   → to an address of the VS itself (looped back), by reflection (a reply leaves through the
 *            link its request came in on, to the MAC it came from), or by the VS's rules and routes;
 *            the source address; the path MTU.
 *   frame  → the L4 bytes written once into a frame after room for the IP and Ethernet headers;
 *            IPv4 fragments (unless DF) or IPv6 fragments with a Fragment header (RFC 8200 4.5) when
 *            the datagram does not fit the path; TCP is never fragmented.
 *   deliver→ the loopback queue, the device's output queue, or the neighbor cache (ARP / NDP) when
 *            the next hop's MAC is not known yet.
 */
import { Burst } from '../../driver/types';
import { Drop } from '../../protocols/drop';
import { ETH_P_IPV4, ETH_P_IPV6 } from '../../protocols/ethernet';
import { IP_DF, IP_MF, IPPROTO_TCP, writeIpv4 } from '../../protocols/ipv4';
import { flowLabelOf } from '../../protocols/ipv6';
import {
  addrKey, addrToString, Ip6, IpAddr, isLinkLocal6, isMulticast6, multicastMac6, prefixMatch, write6,
} from '../../protocols/ip/addr';
import { hash5, HashKey } from '../../protocols/tcp/hash';
import type { FramePool } from '../../umem/pool';
import { BCAST_MAC, linkEth, ZERO_MAC } from '../link/demux';
import { NState } from '../neighbor';
import { sockError } from '../api/dgram';
import type { Link, VirtualServer } from '../vs';

import type { Device } from '../engine/device';
import type { LinkGroup } from '../link/demux';

/** What the output path needs from the engine. */
export interface OutputHost {
  readonly devices: readonly Device[];
  readonly now: number;
  readonly pmtuExpiryUs: number;
  readonly outMax: number;
  groupOf(link: Link): LinkGroup | null;
  /** A frame was queued for a device / looped back (the runtime must run a step). */
  outputQueued(): void;
  loopQueued(): void;
}

const BROADCAST = 0xffffffff;
const ETH_MIN = 60;
/** IPv6 next header of a Fragment header (RFC 8200 4.5). */
const NH_FRAGMENT = 44;
/** Default hop limit / TTL of what the stack sends. */
export const HOP_LIMIT = 64;

/**
 * Smallest path MTU learned from ICMP (Linux net.ipv4.route.min_pmtu): a next-hop MTU below it
 * (68, 8, 0 from an old router, or a forgery) is taken as this. IPv6 never goes below its minimum
 * link MTU, 1280 (RFC 8201 section 4).
 */
export const PMTU_MIN = 552;
export const PMTU_MIN6 = 1280;

function ipErr(code: string, msg: string): Error {
  return sockError(code, msg);
}

/** Writes an IPv6 header (RFC 8200 section 3) at `off`. Returns 40. */
export function writeIp6Header(b: Uint8Array, off: number, src: Ip6, dst: Ip6, nextHeader: number, payloadLen: number,
  hopLimit: number, flowLabel: number, tclass: number): number {
  b[off] = 0x60 | (tclass >>> 4);
  b[off + 1] = ((tclass & 0x0f) << 4) | ((flowLabel >>> 16) & 0x0f);
  b[off + 2] = (flowLabel >>> 8) & 0xff;
  b[off + 3] = flowLabel & 0xff;
  b[off + 4] = payloadLen >>> 8;
  b[off + 5] = payloadLen & 0xff;
  b[off + 6] = nextHeader;
  b[off + 7] = hopLimit;
  write6(b, off + 8, src);
  write6(b, off + 24, dst);
  return 40;
}

export class IpOutput {
  /** Per device: frames a VS sent to its own addresses, received again at the next step. */
  readonly loop: Burst[] = [];
  readonly loopSpare: Burst[] = [];
  loopPending = 0;
  /** IPv6 fragment identification (one counter; RFC 7739 asks only that it be unpredictable enough per destination). */
  private fragId6: number;

  // The path found by `path()` (fields instead of an allocated result).
  private pLink: Link | null = null;
  private pMac: Uint8Array | null = null;
  private pNextHop: IpAddr = 0;
  private pSrc: IpAddr = 0;
  private pOwn = false;
  private pMtu = 0;
  /** TTL / hop limit of the datagram `emit` is sending (a socket's setTTL). */
  private pTtl = HOP_LIMIT;

  /** Secret of the flow labels (RFC 6437 3: not predictable from outside). */
  private readonly flowSecret: number;

  constructor(private readonly eng: OutputHost, private readonly key: HashKey) {
    this.fragId6 = hash5(key, 1, 2, 3, 4, 5);
    this.flowSecret = hash5(key, 6437, 0, 0, 0, 0) | 0;
  }

  addDevice(): void {
    this.loop.push(new Burst(64));
    this.loopSpare.push(new Burst(64));
  }

  // ------------------------------------------------------------ addresses

  /** IPv4 identification: a counter per link (per source address in practice). */
  nextIpId(link: Link): number {
    const id = link.ipId;
    link.ipId = (id + 1) & 0xffff;
    return id;
  }

  /**
   * Source address on `link` for destination `dst` (its family): an address of the link in a prefix
   * covering `dst`, else the link's first usable address of the family and of the destination's
   * scope (RFC 6724 rule 2: a link-local source only for a link-local destination). 0 when none.
   */
  sourceFor(link: Link, dst: IpAddr): IpAddr {
    const addrs = link.addrs;
    if (typeof dst === 'number') {
      for (let i = 0; i < addrs.length; i++) {
        const a = addrs[i]!;
        if (typeof a.addr === 'number' && prefixMatch(a.addr, dst, a.prefixLen)) return a.addr;
      }
      return link.primary;
    }
    const ll = isLinkLocal6(dst);
    let any: IpAddr = 0;
    for (let i = 0; i < addrs.length; i++) {
      const a = addrs[i]!;
      if (typeof a.addr === 'number' || a.state !== 'preferred') continue;
      if (prefixMatch(a.addr, dst, a.prefixLen)) return a.addr;
      if (isLinkLocal6(a.addr) === ll && any === 0) any = a.addr;
    }
    return any;
  }

  /**
   * The source for a datagram to `dst` routed by a route whose preferred source is `src` (0: none)
   * through `link` toward `nextHop`: `src` while it may be used, else one chosen on the link. An
   * IPv6 address still tentative or found duplicate is never a source (RFC 4862 5.4). IPv4: an
   * address in the next hop's subnet; IPv6: one for the destination's scope (RFC 6724 rule 2: a
   * link-local gateway must not make a global destination get a link-local source).
   */
  routeSource(vs: VirtualServer, link: Link, src: IpAddr, nextHop: IpAddr, dst: IpAddr): IpAddr {
    if (src !== 0 && (typeof src === 'number' || this.ownLink(vs, src) !== null)) return src;
    return this.sourceFor(link, typeof dst === 'number' ? nextHop : dst);
  }

  /**
   * The link of `vs` that has address `addr`, if any: traffic to it stays inside the VS. One probe
   * of the address index per link of the VS (never a scan of its addresses). For a VIP of the VS:
   * its first link.
   */
  ownLink(vs: VirtualServer, addr: IpAddr): Link | null {
    const links = vs.links;
    for (let i = 0; i < links.length; i++) {
      const l = links[i]!;
      const g = this.eng.groupOf(l);
      if (!g) continue;
      const owner = typeof addr === 'number' ? g.addrs.get(addr | 0) : g.addrs6.get(addr);
      if (owner !== undefined && owner.vs === vs) return owner;
    }
    // A VIP is the VS's own too: what the VS sends to one of its VIPs stays inside (looped back
    // through its first link, a VIP belonging to none), as Linux delivers to an address of `lo`.
    // On the wire it would go to the load balancer, which may give it to another server.
    if (vs.vips !== null && vs.vips.has(addr)) return vs.links[0] ?? null;
    return null;
  }

  /**
   * Traffic reflection: a reply leaves through the link its request came in on, to the MAC it came
   * from (a peer behind a router is answered through that router, with no route or neighbor
   * resolution needed), unless the peer is a neighbor on that link whose MAC is known: then the
   * neighbor cache, which keeps checking that it is reachable, gives the MAC. Returns the MAC to
   * use, or null for the cache.
   */
  reflectTo(link: Link, dst: IpAddr, viaMac: Uint8Array | null): Uint8Array | null {
    if (!viaMac) return null;
    const n = link.neigh.peek(dst);
    return n !== undefined && n.state !== NState.Incomplete ? null : viaMac;
  }

  isBroadcast(link: Link, dst: number): boolean {
    if (dst === BROADCAST) return true;
    for (const a of link.addrs) if (a.broadcast === dst) return true;
    return false;
  }

  // ------------------------------------------------------------ path MTU

  /**
   * Path MTU toward `dst` from `vs`: the MTU of the link the route takes (for source `src` and
   * firewall mark `mark`, as output routes them), lowered by PMTU discovery.
   */
  mtuTo(vs: VirtualServer, dst: IpAddr, src: IpAddr = 0, mark = 0): number {
    const r = vs.rules.select(src, mark, vs.tables, dst);
    let mtu = r ? vs.links[r.link]!.mtu : 1500;
    return this.pmtuLower(vs, dst, mtu);
  }

  private pmtuLower(vs: VirtualServer, dst: IpAddr, mtu: number): number {
    if (vs.pmtu.size === 0) return mtu;
    const k = addrKey(dst);
    const pm = vs.pmtu.get(k);
    if (pm) {
      if (pm.expires <= this.eng.now) vs.pmtu.delete(k);
      else if (pm.mtu < mtu) return pm.mtu;
    }
    return mtu;
  }

  /**
   * A "packet too big" (IPv4 fragmentation needed, ICMPv6 Packet Too Big) with next-hop MTU `mtu`
   * for the path from `vs` to `dst` (its sender already validated against a live flow). As RFC
   * 1191 section 3, RFC 8201 and Linux: an MTU below the family's floor is taken as the floor;
   * one not below the current path MTU changes nothing (PMTU only decreases until the entry
   * expires). Returns the path MTU now in use.
   */
  pmtuUpdate(vs: VirtualServer, dst: IpAddr, mtu: number, src: IpAddr = 0, mark = 0): number {
    const cur = this.mtuTo(vs, dst, src, mark);
    const floor = typeof dst === 'number' ? PMTU_MIN : PMTU_MIN6;
    if (mtu < floor) mtu = floor;
    if (mtu < cur) {
      vs.pmtu.set(addrKey(dst), { mtu, expires: this.eng.now + this.eng.pmtuExpiryUs });
      return mtu;
    }
    return cur;
  }

  // ------------------------------------------------------------ path

  /**
   * Finds where a datagram from `vs` to `dst` goes: sets pLink, pMac (null: resolve pNextHop),
   * pSrc (the given source, else one chosen for the path), pOwn (looped back), pMtu. Returns
   * Drop.None, or why not (no route; no source address, as Ipv4NoRoute/Ipv6NoRoute with pLink set).
   */
  private path(vs: VirtualServer, viaLink: Link | null, viaMac: Uint8Array | null, src: IpAddr, dst: IpAddr, mark: number): Drop {
    let link: Link;
    let mac: Uint8Array | null = null;
    let nextHop: IpAddr = dst;
    this.pOwn = false;
    const own = this.ownLink(vs, dst);
    if (own) {
      link = own;
      mac = own.mac;
      this.pOwn = true;
    } else if (viaLink && vs.links[viaLink.index] === viaLink && (vs.vips === null || !vs.vips.has(src))) {
      // (From a VIP, never: its requests came through the load balancer, whose MAC is not the way
      // to the client. Direct server return: the reply is routed by the VS's tables, below.)
      link = viaLink;
      mac = this.reflectTo(link, dst, viaMac);
      if (typeof dst !== 'number' && isMulticast6(dst)) mac = multicastMac6(dst, link.scratchMac);
      else if (typeof dst === 'number' && (dst === BROADCAST || this.isBroadcast(link, dst))) mac = BCAST_MAC;
    } else {
      const r = vs.rules.select(src, mark, vs.tables, dst);
      if (!r) {
        this.pLink = null;
        return typeof dst === 'number' ? Drop.Ipv4NoRoute : Drop.Ipv6NoRoute;
      }
      link = vs.links[r.link]!;
      if (r.gateway !== 0) nextHop = r.gateway;
      if (src === 0) src = this.routeSource(vs, link, r.src, nextHop, dst);
      if (typeof dst === 'number') {
        if (dst === BROADCAST || this.isBroadcast(link, dst)) mac = BCAST_MAC;
      } else if (isMulticast6(dst)) mac = multicastMac6(dst, link.scratchMac);
    }
    if (src === 0) src = this.sourceFor(link, typeof dst === 'number' ? nextHop : dst);
    this.pLink = link;
    this.pMac = mac;
    this.pNextHop = nextHop;
    this.pSrc = src;
    this.pMtu = this.pmtuLower(vs, dst, link.mtu);
    return src === 0 ? (typeof dst === 'number' ? Drop.Ipv4NoRoute : Drop.Ipv6NoRoute) : Drop.None;
  }

  /**
   * A keyed per-flow IPv6 flow label (RFC 6437 section 3): 20 bits, never 0. The one label
   * function (protocols/ipv6.ts flowLabelOf, a few multiplies as Linux's keyed jhash) under a
   * secret drawn from the stack's key: it runs for every IPv6 packet sent.
   */
  flowLabel(src: Ip6, dst: Ip6, ports: number): number {
    return flowLabelOf(src, ports >>> 16, dst, ports & 0xffff, this.flowSecret);
  }

  // ------------------------------------------------------------ send

  /**
   * Routes and sends one datagram whose L4 part is `hdr[0..hdrLen)` followed by
   * `data[dOff..dOff+dLen)` (ICMP, ICMPv6 and UDP). `viaLink`/`viaMac`: reflection (see `path`).
   * `df`: IPv4 never fragmented (EMSGSIZE beyond the path MTU). `ttl`: TTL / hop limit. Throws
   * the socket errors an application sees (ENETUNREACH, EADDRNOTAVAIL, EMSGSIZE, ENOBUFS).
   */
  emit(vs: VirtualServer, viaLink: Link | null, viaMac: Uint8Array | null, src: IpAddr, dst: IpAddr, proto: number, tos: number,
    hdr: Uint8Array, hdrLen: number, data: Uint8Array, dOff: number, dLen: number, df: boolean, mark: number, ttl = HOP_LIMIT): void {
    this.pTtl = ttl;
    const d = this.path(vs, viaLink, viaMac, src, dst, mark);
    if (d !== Drop.None) {
      if (this.pLink) throw ipErr('EADDRNOTAVAIL', `virtual server '${vs.name}' has no ${typeof dst === 'number' ? 'IPv4' : 'IPv6'} address on link '${this.pLink.name}'`);
      vs.own.drop(d);
      throw ipErr('ENETUNREACH', `no route to ${addrToString(dst)} in virtual server '${vs.name}'`);
    }
    const link = this.pLink!;
    src = this.pSrc;
    const pool = this.eng.devices[link.dev]!.pool;
    const total = hdrLen + dLen;
    const v4 = typeof dst === 'number';
    const ipHl = v4 ? 20 : 40;
    const room = pool.frameSize - pool.headroom - link.ethLen - ipHl;
    const mtu = this.pMtu;
    const flow = v4 ? 0 : this.flowLabel(src as Ip6, dst as Ip6, ((hdr[0]! << 24) | (hdr[1]! << 16) | (hdr[2]! << 8) | hdr[3]!) >>> 0);
    if (ipHl + total <= mtu && total <= room) {
      this.fragment(vs, link, src, dst, proto, tos, v4 ? this.nextIpId(link) : 0, df ? IP_DF : 0, flow, hdr, hdrLen, data, dOff, dLen, 0, total, false);
      return;
    }
    if (v4) {
      if (df) throw ipErr('EMSGSIZE', `message of ${total} bytes exceeds the path MTU ${mtu} to ${addrToString(dst)}`);
      if (total > 65535 - 20) throw ipErr('EMSGSIZE', `message of ${total} bytes is larger than an IPv4 datagram`);
      const id = this.nextIpId(link);
      const chunk = Math.floor(Math.min(mtu - 20, room) / 8) * 8;
      for (let pos = 0; pos < total; pos += chunk) {
        const n = Math.min(chunk, total - pos);
        const more = pos + n < total;
        this.fragment(vs, link, src, dst, proto, tos, id, (more ? IP_MF : 0) | (pos >>> 3), 0, hdr, hdrLen, data, dOff, dLen, pos, n, false);
      }
      return;
    }
    // IPv6: only the source fragments (RFC 8200 section 4.5), with a Fragment header in each piece.
    if (total > 65535) throw ipErr('EMSGSIZE', `message of ${total} bytes is larger than an IPv6 datagram`);
    const id = (this.fragId6 = (this.fragId6 + 1) >>> 0);
    const chunk = Math.floor(Math.min(mtu - 48, room - 8) / 8) * 8;
    for (let pos = 0; pos < total; pos += chunk) {
      const n = Math.min(chunk, total - pos);
      const more = pos + n < total;
      this.fragment(vs, link, src, dst, proto, tos, id, pos | (more ? 1 : 0), flow, hdr, hdrLen, data, dOff, dLen, pos, n, true);
    }
  }

  /**
   * Builds one frame holding bytes [pos, pos+n) of the L4 datagram hdr‖data and sends it along the
   * path found last. IPv4: `flagsFrag` is the header's flags+offset field. IPv6: `frag6` adds a
   * Fragment header with identification `id` and offset|M in `flagsFrag`.
   */
  private fragment(vs: VirtualServer, link: Link, src: IpAddr, dst: IpAddr, proto: number, tos: number, id: number, flagsFrag: number,
    flow: number, hdr: Uint8Array, hdrLen: number, data: Uint8Array, dOff: number, dLen: number, pos: number, n: number, frag6: boolean): void {
    const pool = this.eng.devices[link.dev]!.pool;
    const f = pool.alloc();
    if (f < 0) {
      link.drop(Drop.NoFrame);
      throw ipErr('ENOBUFS', 'no free frame to send');
    }
    const b = pool.bytes;
    const start = pool.dataStart(f);
    const ethLen = link.ethLen;
    const v4 = typeof dst === 'number';
    const ipHl = v4 ? 20 : frag6 ? 48 : 40;
    let w = start + ethLen + ipHl;
    // Copy the part of the header, then the part of the data, that fall in [pos, pos+n).
    if (pos < hdrLen) {
      const h = Math.min(hdrLen - pos, n);
      for (let i = 0; i < h; i++) b[w + i] = hdr[pos + i]!; // a few header bytes: no view needed
      w += h;
    }
    const dFrom = Math.max(0, pos - hdrLen);
    const dTo = Math.min(dLen, pos + n - hdrLen);
    const dn = dTo - dFrom;
    try {
      if (dn > 64) b.set(data.subarray(dOff + dFrom, dOff + dTo), w);
      else for (let i = 0; i < dn; i++) b[w + i] = data[dOff + dFrom + i]!; // small payloads: a loop beats a view
    } catch (err) {
      pool.free(f); // the frame was not handed on: it must not leak with the exception
      throw err;
    }
    const ip = start + ethLen;
    if (v4) {
      writeIpv4(b, ip, src as number, dst as number, proto, n, this.pTtl, id, flagsFrag, tos);
    } else if (!frag6) {
      writeIp6Header(b, ip, src as Ip6, dst as Ip6, proto, n, this.pTtl, flow, tos);
    } else {
      writeIp6Header(b, ip, src as Ip6, dst as Ip6, NH_FRAGMENT, n + 8, this.pTtl, flow, tos);
      const fh = ip + 40;
      b[fh] = proto; b[fh + 1] = 0;
      b[fh + 2] = (flagsFrag >>> 8) & 0xff; b[fh + 3] = flagsFrag & 0xf9; // offset (8-byte units, already aligned) | M
      b[fh + 4] = id >>> 24; b[fh + 5] = (id >>> 16) & 0xff; b[fh + 6] = (id >>> 8) & 0xff; b[fh + 7] = id & 0xff;
    }
    this.deliver(vs, link, pool, f, start, ethLen + ipHl + n, v4 ? ETH_P_IPV4 : ETH_P_IPV6);
  }

  /**
   * Builds one TCP segment in a frame (IPv4 DF set; never fragmented) and sends it: `build(b, l4Off)`
   * writes the TCP header and payload at `l4Off` and returns the L4 length. Never throws for the
   * network's reasons: returns false when it could not be sent (counted).
   */
  tcpEmit(vs: VirtualServer, viaLink: Link | null, viaMac: Uint8Array | null, src: IpAddr, dst: IpAddr, l4Max: number,
    build: (b: Uint8Array, l4Off: number) => number, mark: number): boolean {
    const d = this.path(vs, viaLink, viaMac, src, dst, mark);
    if (d !== Drop.None) {
      if (this.pLink) this.pLink.drop(d);
      else vs.own.drop(d);
      return false;
    }
    const link = this.pLink!;
    const v4 = typeof dst === 'number';
    const ipHl = v4 ? 20 : 40;
    const pool = this.eng.devices[link.dev]!.pool;
    if (link.ethLen + ipHl + l4Max > pool.frameSize - pool.headroom) {
      link.drop(v4 ? Drop.Ipv4BadTotalLength : Drop.TxTooBig);
      return false;
    }
    const f = pool.alloc();
    if (f < 0) {
      link.drop(Drop.NoFrame);
      return false;
    }
    const b = pool.bytes;
    const start = pool.dataStart(f);
    const ethLen = link.ethLen;
    const l4 = start + ethLen + ipHl;
    let l4len: number;
    try {
      l4len = build(b, l4);
    } catch (err) {
      pool.free(f); // the frame was not handed on: it must not leak with the exception
      throw err;
    }
    if (ipHl + l4len > link.mtu) {
      // The connection's MSS is larger than this link allows: never send an oversized frame.
      link.drop(Drop.TxTooBig);
      pool.free(f);
      return false;
    }
    if (v4) writeIpv4(b, start + ethLen, src as number, dst as number, IPPROTO_TCP, l4len, HOP_LIMIT, this.nextIpId(link), IP_DF, 0);
    else {
      const ports = ((b[l4]! << 24) | (b[l4 + 1]! << 16) | (b[l4 + 2]! << 8) | b[l4 + 3]!) >>> 0;
      writeIp6Header(b, start + ethLen, src as Ip6, dst as Ip6, IPPROTO_TCP, l4len, HOP_LIMIT, this.flowLabel(src as Ip6, dst as Ip6, ports), 0);
    }
    this.deliver(vs, link, pool, f, start, ethLen + ipHl + l4len, v4 ? ETH_P_IPV4 : ETH_P_IPV6);
    return true;
  }

  /** Writes the Ethernet header and hands the frame on along the path found last. */
  private deliver(_vs: VirtualServer, link: Link, pool: FramePool, f: number, start: number, len: number, etherType: number): void {
    const mac = this.pMac;
    linkEth(pool.bytes, start, mac ?? ZERO_MAC, 0, link, etherType);
    if (this.pOwn) {
      this.loopback(link, pool, f, start, len);
      return;
    }
    if (mac) {
      this.enqueue(link, pool, f, start, len);
      return;
    }
    const m = link.neigh.resolve(this.pNextHop, link.dev, f, start, len, this.eng.now);
    if (m) {
      pool.bytes.set(m, start);
      this.enqueue(link, pool, f, start, len);
    }
  }

  /** Queues a finished frame on its device; frees and counts it when the queue is full. */
  enqueue(link: Link, pool: FramePool, f: number, off: number, len: number): void {
    if (len < ETH_MIN) {
      pool.bytes.fill(0, off + len, off + ETH_MIN);
      len = ETH_MIN;
    }
    const dev = this.eng.devices[link.dev]!;
    if (dev.out.full) {
      // A spike (thousands of sockets sending between two steps) grows the queue up to a bound;
      // beyond it the frame is dropped and counted.
      if (dev.out.capacity < this.eng.outMax) dev.out.grow();
      else {
        link.drop(Drop.TxRingFull);
        pool.free(f);
        return;
      }
    }
    dev.out.push(f, off, len, this.eng.now);
    link.txPackets++;
    link.txBytes += len;
    dev.counters.txPackets++;
    dev.counters.txBytes += len;
    this.eng.outputQueued();
  }

  /**
   * Queues a frame the VS sent to itself: it comes back as received on `link` at the next step,
   * through the whole receive path, as a kernel's loopback does.
   */
  loopback(link: Link, pool: FramePool, f: number, off: number, len: number): void {
    const q = this.loop[link.dev]!;
    if (q.full) {
      if (q.capacity < this.eng.outMax) q.grow();
      else {
        link.drop(Drop.TxRingFull);
        pool.free(f);
        return;
      }
    }
    q.push(f, off, len, this.eng.now);
    this.loopPending++;
    this.eng.loopQueued();
  }
}
