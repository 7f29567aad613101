/**
 * UDP in the engine, for both families: demux of received datagrams to the VS's sockets (by port,
 * then local address; a connected socket hears only its peer), port unreachable answers, and the
 * send path of sockets (local delivery inside the VS, reflection toward peers heard from, else the
 * VS's routing).
 */
import { Drop } from '../../protocols/drop';

import { IPPROTO_UDP } from '../../protocols/ipv4';
import { UdpHeader, UDP_HLEN } from '../../protocols/udp';
import { fold, sum16 } from '../../protocols/checksum';
import {
  addrEq, addrToString, ANY6, IpAddr, isIp6, isLinkLocal6, isLoopback6, isMulticast6, isUnspecified, localOverlap, pseudoSum,
} from '../../protocols/ip/addr';
import { sockError, UdpHost, UdpSocket } from '../api/dgram';
import type { RxMeta } from '../engine/meta';
import type { Link, VirtualServer } from '../vs';

import type { IpOutput } from '../ip/output';
import type { Steering } from '../shard/steer';

/** What the UDP layer needs from the engine. */
export interface UdpLayerHost {
  readonly out: IpOutput;
  /** The current time for an application call. */
  time(): number;
  /** The VS a socket belongs to. */
  vsOf(sock: UdpSocket): VirtualServer;
  /** ICMP port unreachable for frame `j`, in its family. */
  unreachable(m: RxMeta, j: number, port: boolean): void;
  /** Shards (null with one): where flows and ports live. */
  readonly steer: Steering | null;
  /** The frame being received is for a port with no socket here: true when another shard took it. */
  steerPort(vs: VirtualServer, proto: number, port: number): boolean;
  /** Whether this shard may take `port` as an ephemeral port (no other shard uses it). */
  ephemeralFree(vs: VirtualServer, proto: number, port: number): boolean;
}

const BROADCAST = 0xffffffff;
/** Largest UDP payload: IPv4 65535 - 20 - 8; IPv6 65535 - 8 (no jumbograms). */
const MAX_PAYLOAD4 = 65507;
const MAX_PAYLOAD6 = 65527;

/** The UDP sockets of `vs` by local port (a port may have several, bound to different addresses). */
export function udpPorts(vs: VirtualServer): Map<number, UdpSocket[]> {
  return (vs.udp ??= new Map<number, UdpSocket[]>()) as Map<number, UdpSocket[]>;
}

/**
 * A virtual server has no loopback interface: 127/8, ::1, 0/8, :: and (for TCP) multicast or
 * broadcast destinations are refused with a clear error instead of being routed onto the wire.
 */
export function checkDestination(dst: IpAddr, datagram: boolean, syscall: string, port: number): void {
  let why = '';
  let code = 'ENETUNREACH';
  if (typeof dst === 'number') {
    const top = dst >>> 24;
    if (top === 127) why = 'loopback addresses are not reachable inside a virtual server (it has no loopback interface)';
    else if (top === 0) why = 'not a destination address';
    else if (!datagram && dst >= 0xe0000000) why = 'TCP needs a unicast destination';
    else if (datagram && dst >= 0xe0000000 && dst !== BROADCAST) why = 'multicast is not supported';
    if (top === 0 || top === 127) code = 'EADDRNOTAVAIL';
  } else {
    if (isLoopback6(dst)) why = 'loopback addresses are not reachable inside a virtual server (it has no loopback interface)';
    else if (isUnspecified(dst)) why = 'not a destination address';
    else if (isMulticast6(dst)) why = datagram ? 'multicast is not supported' : 'TCP needs a unicast destination';
    if (isLoopback6(dst) || isUnspecified(dst)) code = 'EADDRNOTAVAIL';
  }
  if (why) {
    const a = addrToString(dst);
    throw sockError(code, `${syscall} ${a}${port ? `:${port}` : ''}: ${why}`, { syscall, address: a, port, reason: why });
  }
}

/**
 * The error a connected UDP socket reports for an ICMP error about its datagrams, '' for none: as
 * Linux's __udp4_lib_err / __udp6_lib_err, only hard errors reach a connected socket (without
 * IP_RECVERR), converted by icmp_err_convert / icmpv6_err_convert. Node then emits 'error'
 * (syscall 'recvmsg').
 */
export function udpIcmpError(v6: boolean, type: number, code: number): string {
  if (!v6) {
    if (type === 12) return 'EPROTO'; // parameter problem
    if (type !== 3) return ''; // time exceeded, source quench...: soft
    return ['', '', 'ENOPROTOOPT', 'ECONNREFUSED', '', '', 'ENETUNREACH', 'EHOSTDOWN', 'ENONET', 'ECONNREFUSED', 'ECONNREFUSED', '', '', 'EHOSTUNREACH'][code] ?? '';
  }
  if (type === 4) return 'EPROTO'; // parameter problem
  if (type !== 1) return ''; // packet too big, time exceeded: soft
  return ['', 'EACCES', '', '', 'ECONNREFUSED', 'EACCES', 'EACCES'][code] ?? '';
}

/** A socket call's failure: Node's code, the syscall, and why (the API layer words it as Node). */
function fail(code: string, syscall: string, reason: string, addr?: IpAddr, port?: number): Error {
  const a = addr === undefined ? undefined : addrToString(addr);
  return sockError(code, `${syscall} ${code}${a !== undefined ? ` ${a}${port ? `:${port}` : ''}` : ''}: ${reason}`,
    { syscall, address: a, port: port || undefined, reason });
}

export class UdpLayer implements UdpHost {
  private readonly udp = new UdpHeader();
  private readonly hdr = new Uint8Array(8);
  readonly ready: UdpSocket[] = [];

  constructor(private readonly eng: UdpLayerHost) {}

  // ------------------------------------------------------------ receive

  input(m: RxMeta, j: number): void {
    const link = m.link[j]!;
    const b = m.b;
    const off = m.l4Off[j]!;
    const len = m.l4Len[j]!;
    const src = m.srcAddr(j);
    const dst = m.dstAddr(j);
    const udp = this.udp;
    const d = udp.parse(b, off, len, src, dst);
    if (d !== Drop.None) return m.drop(j, d);
    if (m.bcast[j]) {
      // A broadcast (IPv6: multicast) goes to every socket that hears it, as Linux's
      // __udp4_lib_mcast_deliver: each gets its copy.
      const n = this.deliverAll(link, src, udp.srcPort, dst, udp.dstPort, m.dev.buf, udp.payloadOff, udp.payloadLen, b, m.srcMac[j]!);
      return n > 0 ? m.free(j) : m.drop(j, n === 0 ? Drop.UdpNoSocket : Drop.UdpSocketQueueFull);
    }
    const sock = this.find(link.vs, udp.dstPort, dst, src, udp.srcPort);
    if (!sock) {
      // Shards: another shard may have a socket on the port (one opened there alone, or the
      // ephemeral port of a socket that sent from there): the datagram is handed to it.
      if (this.eng.steerPort(link.vs, IPPROTO_UDP, udp.dstPort)) return m.free(j);
      this.eng.unreachable(m, j, true);
      return m.drop(j, Drop.UdpNoSocket);
    }
    const data = Buffer.allocUnsafe(udp.payloadLen);
    m.dev.buf.copy(data, 0, udp.payloadOff, udp.payloadOff + udp.payloadLen);
    if (!sock.enqueue(data, src, udp.srcPort)) return m.drop(j, Drop.UdpSocketQueueFull);
    sock.heardFrom(src, udp.srcPort, link, b, m.srcMac[j]!, dst);
    m.free(j);
  }

  /**
   * A broadcast or multicast datagram (payload `buf[off, off+len)`) to every socket of the VS on
   * `port` that hears it: bound to the wildcard address (or to `dst` itself), and connected, if
   * at all, to its sender. Returns how many took it; -1 when some heard it but none had room
   * (each one without room counts a drop).
   */
  deliverAll(link: Link, src: IpAddr, sport: number, dst: IpAddr, port: number, buf: Uint8Array, off: number, len: number,
    mac: Uint8Array | null, macOff: number): number {
    const list = udpPorts(link.vs).get(port);
    if (!list) return 0;
    let took = 0;
    let full = 0;
    for (const s of list) {
      const peer = s.connected;
      if (peer && (peer.port !== sport || !addrEq(peer.addr, src))) continue;
      const a = s.localAddr;
      if (a === 0 || a === ANY6 ? !s.hears(dst) : !addrEq(a, dst)) continue;
      const data = Buffer.allocUnsafe(len);
      data.set(buf.subarray(off, off + len));
      if (!s.enqueue(data, src, sport)) { full++; continue; }
      took++;
      if (mac) s.heardFrom(src, sport, link, mac, macOff, 0);
    }
    // Each socket without room is a drop; when none took it, the caller counts the last one with the frame.
    for (let i = took ? 0 : 1; i < full; i++) link.drop(Drop.UdpSocketQueueFull);
    return took ? took : full ? -1 : 0;
  }

  /**
   * A reassembled datagram (the UDP header and payload in `dg`). Returns false when no socket
   * took it (counted): the caller may answer port unreachable.
   */
  datagram(link: Link, src: IpAddr, dst: IpAddr, dg: Uint8Array, peerMac: Uint8Array, bcast: boolean): boolean {
    const udp = this.udp;
    const d = udp.parse(dg, 0, dg.length, src, dst);
    if (d !== Drop.None) {
      link.drop(d);
      return true;
    }
    if (bcast) {
      const n = this.deliverAll(link, src, udp.srcPort, dst, udp.dstPort, dg, udp.payloadOff, udp.payloadLen, peerMac, 0);
      if (n === 0) link.drop(Drop.UdpNoSocket);
      else if (n < 0) link.drop(Drop.UdpSocketQueueFull);
      return true; // never a port unreachable for a broadcast
    }
    const sock = this.find(link.vs, udp.dstPort, dst, src, udp.srcPort);
    if (!sock) {
      // Shards: another shard may have a socket on the port: the datagram is handed to it whole.
      if (this.eng.steerPort(link.vs, IPPROTO_UDP, udp.dstPort)) return true;
      link.drop(Drop.UdpNoSocket);
      return false;
    }
    if (!sock.enqueue(Buffer.from(dg.subarray(udp.payloadOff, udp.payloadOff + udp.payloadLen)), src, udp.srcPort)) {
      link.drop(Drop.UdpSocketQueueFull);
      return true;
    }
    sock.heardFrom(src, udp.srcPort, link, peerMac, 0, dst);
    return true;
  }

  /**
   * The socket for a unicast datagram to dst:port from src:sport, chosen as Linux's lookup scores
   * sockets (compute_score): a connected socket hears only its peer and ranks first, then one
   * bound to `dst` itself, then the wildcard ones (for IPv4, a udp4 socket before a dual-stack
   * udp6 one). Of equal rank the last bound wins: Linux puts a new socket at the head of the
   * port's chain, so with SO_REUSEADDR the newest socket takes the port's unicast datagrams.
   */
  find(vs: VirtualServer, port: number, dst: IpAddr, src: IpAddr = 0, sport = 0): UdpSocket | null {
    const list = udpPorts(vs).get(port);
    if (!list) return null;
    if (list.length === 1) {
      const s = list[0]!;
      const peer = s.connected;
      if (peer && (peer.port !== sport || !addrEq(peer.addr, src))) return null;
      const a = s.localAddr;
      return (a === 0 || a === ANY6 ? s.hears(dst) : addrEq(a, dst)) ? s : null;
    }
    let best: UdpSocket | null = null;
    let bestScore = 0;
    const v4 = typeof dst === 'number';
    for (let i = 0; i < list.length; i++) {
      const s = list[i]!;
      let score = v4 && s.type === 'udp6' ? 1 : 2;
      const peer = s.connected;
      if (peer) {
        if (peer.port !== sport || !addrEq(peer.addr, src)) continue;
        score += 8;
      }
      const a = s.localAddr;
      if (a === 0 || a === ANY6) { if (!s.hears(dst)) continue; }
      else if (addrEq(a, dst)) score += 4;
      else continue;
      if (score >= bestScore) { best = s; bestScore = score; }
    }
    return best;
  }

  // ------------------------------------------------------------ UdpHost

  udpBind(sock: UdpSocket, port: number, addr: IpAddr): number {
    const vs = this.eng.vsOf(sock);
    if (vs.destroyed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', `virtual server '${vs.name}' was destroyed`);
    const wildcard = addr === 0 || addr === ANY6;
    if (!wildcard && !vs.hasLocal(addr, true)) {
      throw fail('EADDRNOTAVAIL', 'bind', `virtual server '${vs.name}' has no address ${addrToString(addr)}`, addr, port);
    }
    if (port === 0) {
      for (let tries = 0; tries < 16384; tries++) {
        const p = vs.ephemeral;
        vs.ephemeral = p >= 65535 ? 49152 : p + 1;
        // An ephemeral port is one no socket uses, whatever reuseAddr says. Shards: and one no
        // other shard uses (replies reach the right one).
        if (!udpPorts(vs).has(p) && this.eng.ephemeralFree(vs, IPPROTO_UDP, p)) { port = p; break; }
      }
      if (port === 0) throw fail('EADDRINUSE', 'bind', `no ephemeral port left in virtual server '${vs.name}'`, addr, 0);
    } else if (this.conflict(vs, port, addr, sock)) {
      throw fail('EADDRINUSE', 'bind', `port ${port} is in use in virtual server '${vs.name}'${sock.reuseAddr ? ' by a socket without reuseAddr' : ''}`, addr, port);
    }
    const list = udpPorts(vs).get(port) ?? [];
    list.push(sock);
    udpPorts(vs).set(port, list);
    this.eng.steer?.flows.bindPort(this.eng.steer.flows.portSlot(vs.id, IPPROTO_UDP, port));
    return port;
  }

  /**
   * Whether binding `sock` to addr:port collides with a socket there (Linux udp_lib_lport_inuse):
   * overlapping local addresses, unless both sockets set SO_REUSEADDR.
   */
  private conflict(vs: VirtualServer, port: number, addr: IpAddr, sock: UdpSocket): boolean {
    const list = udpPorts(vs).get(port);
    if (!list) return false;
    return list.some((s) => !(s.reuseAddr && sock.reuseAddr) && localOverlap(s.localAddr, s.ipv6Only, addr, sock.ipv6Only));
  }

  udpUnbind(sock: UdpSocket): void {
    const vs = this.eng.vsOf(sock);
    const list = udpPorts(vs).get(sock.localPort);
    if (!list) return;
    const rest = list.filter((s) => s !== sock);
    if (rest.length !== list.length) this.eng.steer?.flows.unbindPort(this.eng.steer.flows.portSlot(vs.id, IPPROTO_UDP, sock.localPort));
    if (rest.length) udpPorts(vs).set(sock.localPort, rest);
    else udpPorts(vs).delete(sock.localPort);
  }

  /**
   * Whether `addr` is a broadcast address for `vs`: the limited broadcast, or the directed
   * broadcast of one of its subnets (Linux: a 'broadcast' route in the local table, whichever
   * interface it is on). A directed broadcast of a subnet the VS is not on is routed as unicast.
   */
  private isBroadcast(vs: VirtualServer, addr: IpAddr): boolean {
    if (typeof addr !== 'number') return false;
    if (addr === BROADCAST) return true;
    const links = vs.links;
    for (let i = 0; i < links.length; i++) if (this.eng.out.isBroadcast(links[i]!, addr)) return true;
    return false;
  }

  /**
   * The link a socket bound to the IPv4 address `src` sends a limited broadcast through: the one
   * that has `src` (Linux routes 255.255.255.255 from a local source out of that source's device).
   */
  private broadcastLink(vs: VirtualServer, src: IpAddr): Link | null {
    return typeof src === 'number' && src !== 0 ? this.eng.out.ownLink(vs, src) : null;
  }

  /** connect(): what Linux's ip4/ip6_datagram_connect check; returns the source address the route gives. */
  udpConnect(sock: UdpSocket, port: number, addr: IpAddr, zone: string): IpAddr {
    const vs = this.eng.vsOf(sock);
    if (vs.destroyed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', `virtual server '${vs.name}' was destroyed`);
    checkDestination(addr, true, 'connect', port);
    if (typeof addr === 'number' && sock.ipv6Only) throw fail('ENETUNREACH', 'connect', 'the socket is IPv6-only', addr, port);
    let src: IpAddr = sock.localAddr;
    if (src === ANY6 || (src !== 0 && typeof src !== typeof addr)) src = 0;
    if (this.eng.out.ownLink(vs, addr)) return src !== 0 ? src : addr;
    const bcast = this.isBroadcast(vs, addr);
    let via: Link | null = null;
    if (bcast && addr === BROADCAST) via = this.broadcastLink(vs, src);
    else if (zone || (isIp6(addr) && isLinkLocal6(addr))) {
      via = zone ? vs.link(zone) ?? null : null;
      if (!via) throw fail('EINVAL', 'connect', zone ? `virtual server '${vs.name}' has no link '${zone}'` : 'a link-local address needs its link (%link)', addr, port);
    }
    if (via) {
      if (src === 0) src = this.eng.out.sourceFor(via, addr);
    } else {
      const r = vs.rules.select(src, sock.mark, vs.tables, addr);
      if (!r) throw fail('ENETUNREACH', 'connect', `no route to ${addrToString(addr)} in virtual server '${vs.name}'`, addr, port);
      if (src === 0) src = this.eng.out.routeSource(vs, vs.links[r.link]!, r.src, r.gateway !== 0 ? r.gateway : addr, addr);
    }
    // Linux: "connect to a broadcast address without SO_BROADCAST" is EACCES (ip4_datagram_connect).
    if (bcast && !sock.broadcast) throw fail('EACCES', 'connect', 'connecting to a broadcast address needs setBroadcast', addr, port);
    return src;
  }

  udpSend(sock: UdpSocket, data: Uint8Array, port: number, addr: IpAddr, zone: string): void {
    this.eng.time(); // an application call: the neighbor cache's timers start from the current time
    const vs = this.eng.vsOf(sock);
    if (vs.destroyed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', `virtual server '${vs.name}' was destroyed`);
    checkDestination(addr, true, 'send', port);
    if (typeof addr === 'number' && sock.type === 'udp6' && sock.ipv6Only) {
      throw fail('ENETUNREACH', 'send', 'the socket is IPv6-only', addr, port);
    }
    const max = typeof addr === 'number' ? MAX_PAYLOAD4 : MAX_PAYLOAD6;
    if (data.length > max) throw fail('EMSGSIZE', 'send', `${data.length} bytes exceed the largest UDP datagram, ${max} bytes`, addr, port);
    let src: IpAddr = sock.localAddr;
    if (src === ANY6 || (src !== 0 && typeof src !== typeof addr)) src = 0; // chosen for the destination's family
    // Local delivery inside the VS (to one of its own addresses).
    const l = this.eng.out.ownLink(vs, addr);
    const st = this.eng.steer;
    if (l) {
      const from = src !== 0 ? src : addr;
      const dst = this.find(vs, port, addr, from, sock.localPort);
      // Shards: a port that only another shard has bound is reached through a looped-back
      // datagram, which the receive path hands to that shard (below).
      if (dst || st === null || st.flows.otherPortShard(st.flows.portSlot(vs.id, IPPROTO_UDP, port)) < 0) {
        if (dst && !dst.enqueue(Buffer.from(data), from, sock.localPort)) l.drop(Drop.UdpSocketQueueFull);
        if (!dst) l.drop(Drop.UdpNoSocket);
        return;
      }
    }
    // A reply to a peer heard from lately goes back the way its datagram came (traffic reflection):
    // through that link, to that MAC, from the address it was sent to. Such a reply goes to one
    // MAC, so the broadcast check below is only for the other paths.
    const rp = sock.returnPath(addr, port);
    let via: Link | null = null;
    let viaMac: Uint8Array | null = null;
    let bcast = false;
    if (rp && vs.links[rp.link.index] === rp.link) {
      via = rp.link;
      viaMac = rp.mac;
      if (src === 0) src = rp.local !== 0 ? rp.local : this.eng.out.sourceFor(via, addr);
    } else if ((bcast = this.isBroadcast(vs, addr)) && addr === BROADCAST && (via = this.broadcastLink(vs, src)) !== null) {
      // Limited broadcast from a socket bound to one address: out of that address's link, to the
      // Ethernet broadcast (the output path gives ff:ff:ff:ff:ff:ff for a broadcast destination).
    } else if (zone || (isIp6(addr) && isLinkLocal6(addr))) {
      // A link-local destination needs its link (fe80::1%link), as with any socket API.
      via = zone ? vs.link(zone) ?? null : null;
      if (!via) {
        throw fail('EINVAL', 'send', zone ? `virtual server '${vs.name}' has no link '${zone}'` : 'a link-local address needs its link (%link)', addr, port);
      }
      if (src === 0) src = this.eng.out.sourceFor(via, addr);
    }
    const hdr = this.hdr;
    const len = UDP_HLEN + data.length;
    const sp = sock.localPort;
    if (src === 0) {
      // Routed, the limited broadcast too: out of the link of the route that covers
      // 255.255.255.255 (the default route, normally), as Linux; no route is ENETUNREACH.
      const r = vs.rules.select(0, sock.mark, vs.tables, addr);
      if (!r) {
        vs.own.drop(typeof addr === 'number' ? Drop.Ipv4NoRoute : Drop.Ipv6NoRoute);
        throw fail('ENETUNREACH', 'send', `no route to ${addrToString(addr)} in virtual server '${vs.name}'`, addr, port);
      }
      const link = vs.links[r.link]!;
      src = this.eng.out.routeSource(vs, link, r.src, r.gateway !== 0 ? r.gateway : addr, addr);
      if (src === 0) {
        throw fail('EADDRNOTAVAIL', 'send', `virtual server '${vs.name}' has no ${typeof addr === 'number' ? 'IPv4' : 'IPv6'} address on '${link.name}'`, addr, port);
      }
    }
    if (typeof src !== 'number' && this.eng.out.ownLink(vs, src) === null && !vs.isVip(src)) {
      // Bound to an IPv6 address still tentative or found duplicate: never a source (RFC 4862 5.4).
      throw fail('EADDRNOTAVAIL', 'send', `address ${addrToString(src)} is not usable yet (tentative or duplicate)`, addr, port);
    }
    // Linux udp_sendmsg: a broadcast route without SO_BROADCAST is EACCES (checked after routing).
    if (bcast && !sock.broadcast) throw fail('EACCES', 'send', 'sending to a broadcast address needs setBroadcast', addr, port);
    hdr[0] = sp >>> 8; hdr[1] = sp & 0xff; hdr[2] = port >>> 8; hdr[3] = port & 0xff;
    hdr[4] = len >>> 8; hdr[5] = len & 0xff; hdr[6] = 0; hdr[7] = 0;
    let c = fold(sum16(data, 0, data.length, sum16(hdr, 0, 8, pseudoSum(src, addr, IPPROTO_UDP, len))));
    if (c === 0) c = 0xffff;
    hdr[6] = c >>> 8; hdr[7] = c & 0xff;
    this.eng.out.emit(vs, via, viaMac, src, addr, IPPROTO_UDP, 0, hdr, 8, data, 0, data.length, false, sock.mark, sock.ttl);
    // A broadcast also reaches the VS's own sockets on that port, as Linux loops broadcasts back
    // to the host (ip_mc_output): every socket bound to the wildcard address there gets a copy.
    if (bcast) {
      const own = via ?? vs.links[vs.rules.select(src, sock.mark, vs.tables, addr)?.link ?? -1];
      if (own) this.deliverAll(own, src, sp, addr, port, data, 0, data.length, null, 0);
    }
  }

  udpReady(sock: UdpSocket): void {
    this.ready.push(sock);
  }
}

