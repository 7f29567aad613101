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
  addrEq, addrToString, ANY6, IpAddr, isIp6, isLinkLocal6, isLoopback6, isMulticast6, isUnspecified, pseudoSum,
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
    throw sockError(code, `${syscall} ${a}${port ? `:${port}` : ''}: ${why}`, { syscall, address: a, port });
  }
}

/** Whether two sockets' local addresses overlap on one port (EADDRINUSE), as Linux decides. */
export function localOverlap(a: IpAddr, aV6Only: boolean, b: IpAddr, bV6Only: boolean): boolean {
  if (a === ANY6 && b === ANY6) return true;
  if (a === ANY6) return isIp6(b) || (!aV6Only && (typeof b === 'number'));
  if (b === ANY6) return isIp6(a) || (!bV6Only && (typeof a === 'number'));
  if (a === 0) return typeof b === 'number';
  if (b === 0) return typeof a === 'number';
  return addrEq(a, b);
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
    const sock = this.find(link.vs, udp.dstPort, dst, src, udp.srcPort);
    if (!sock) {
      // Shards: another shard may have a socket on the port (one opened there alone, or the
      // ephemeral port of a socket that sent from there): the datagram is handed to it.
      if (!m.bcast[j] && this.eng.steerPort(link.vs, IPPROTO_UDP, udp.dstPort)) return m.free(j);
      if (!m.bcast[j]) this.eng.unreachable(m, j, true);
      return m.drop(j, Drop.UdpNoSocket);
    }
    const data = Buffer.allocUnsafe(udp.payloadLen);
    m.dev.buf.copy(data, 0, udp.payloadOff, udp.payloadOff + udp.payloadLen);
    if (!sock.enqueue(data, src, udp.srcPort)) return m.drop(j, Drop.UdpSocketQueueFull);
    sock.heardFrom(src, udp.srcPort, link, b, m.srcMac[j]!, m.bcast[j] ? 0 : dst);
    m.free(j);
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
    const sock = this.find(link.vs, udp.dstPort, dst, src, udp.srcPort);
    if (!sock) {
      // Shards: another shard may have a socket on the port: the datagram is handed to it whole.
      if (!bcast && this.eng.steerPort(link.vs, IPPROTO_UDP, udp.dstPort)) return true;
      link.drop(Drop.UdpNoSocket);
      return false;
    }
    if (!sock.enqueue(Buffer.from(dg.subarray(udp.payloadOff, udp.payloadOff + udp.payloadLen)), src, udp.srcPort)) {
      link.drop(Drop.UdpSocketQueueFull);
      return true;
    }
    sock.heardFrom(src, udp.srcPort, link, peerMac, 0, bcast ? 0 : dst);
    return true;
  }

  /** The socket for a datagram to dst:port from src:sport (a connected socket only hears its peer). */
  find(vs: VirtualServer, port: number, dst: IpAddr, src: IpAddr = 0, sport = 0): UdpSocket | null {
    const list = udpPorts(vs).get(port);
    if (!list) return null;
    let any: UdpSocket | null = null;
    for (let i = 0; i < list.length; i++) {
      const s = list[i]!;
      const peer = s.connected;
      if (peer && (peer.port !== sport || !addrEq(peer.addr, src))) continue;
      const a = s.localAddr;
      if (a === 0 || a === ANY6) { if (s.hears(dst)) any = s; }
      else if (addrEq(a, dst)) return s;
    }
    return any;
  }

  // ------------------------------------------------------------ UdpHost

  udpBind(sock: UdpSocket, port: number, addr: IpAddr): number {
    const vs = this.eng.vsOf(sock);
    if (vs.destroyed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', `virtual server '${vs.name}' was destroyed`);
    const wildcard = addr === 0 || addr === ANY6;
    if (!wildcard && !vs.links.some((l) => l.addrs.some((a) => addrEq(a.addr, addr)))) {
      const text = addrToString(addr);
      throw sockError('EADDRNOTAVAIL', `bind EADDRNOTAVAIL ${text}:${port}`, { syscall: 'bind', address: text, port });
    }
    if (port === 0) {
      for (let tries = 0; tries < 16384; tries++) {
        const p = vs.ephemeral;
        vs.ephemeral = p >= 65535 ? 49152 : p + 1;
        // Shards: an ephemeral port is one no other shard uses (replies reach the right one).
        if (!this.conflict(vs, p, addr, sock.ipv6Only) && this.eng.ephemeralFree(vs, IPPROTO_UDP, p)) { port = p; break; }
      }
      if (port === 0) throw sockError('EADDRINUSE', 'bind EADDRINUSE: no ephemeral port left', { syscall: 'bind' });
    } else if (this.conflict(vs, port, addr, sock.ipv6Only)) {
      const text = addrToString(addr);
      throw sockError('EADDRINUSE', `bind EADDRINUSE ${text}:${port}`, { syscall: 'bind', address: text, port, errno: -98 });
    }
    const list = udpPorts(vs).get(port) ?? [];
    list.push(sock);
    udpPorts(vs).set(port, list);
    this.eng.steer?.flows.bindPort(this.eng.steer.flows.portSlot(vs.id, IPPROTO_UDP, port));
    return port;
  }

  private conflict(vs: VirtualServer, port: number, addr: IpAddr, v6Only: boolean): boolean {
    const list = udpPorts(vs).get(port);
    if (!list) return false;
    return list.some((s) => localOverlap(s.localAddr, s.ipv6Only, addr, v6Only));
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

  udpSend(sock: UdpSocket, data: Uint8Array, port: number, addr: IpAddr, zone: string): void {
    this.eng.time(); // an application call: the neighbor cache's timers start from the current time
    const vs = this.eng.vsOf(sock);
    if (vs.destroyed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', `virtual server '${vs.name}' was destroyed`);
    checkDestination(addr, true, 'send', port);
    if (typeof addr === 'number' && sock.type === 'udp6' && sock.ipv6Only) {
      throw sockError('ENETUNREACH', `send ENETUNREACH ${addrToString(addr)}:${port}: the socket is IPv6-only`, { syscall: 'send', port });
    }
    if (data.length > 65507) throw sockError('EMSGSIZE', `send EMSGSIZE: ${data.length} bytes`, { syscall: 'send' });
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
    // through that link, to that MAC, from the address it was sent to.
    const rp = sock.returnPath(addr, port);
    let via: Link | null = null;
    let viaMac: Uint8Array | null = null;
    if (rp && vs.links[rp.link.index] === rp.link) {
      via = rp.link;
      viaMac = rp.mac;
      if (src === 0) src = rp.local !== 0 ? rp.local : this.eng.out.sourceFor(via, addr);
    } else if (zone || (isIp6(addr) && isLinkLocal6(addr))) {
      // A link-local destination needs its link (fe80::1%link), as with any socket API.
      via = zone ? vs.link(zone) ?? null : null;
      if (!via) {
        throw sockError('EINVAL', `send EINVAL ${addrToString(addr)}${zone ? `%${zone}` : ''}:${port}: ${zone ? `virtual server '${vs.name}' has no link '${zone}'` : 'a link-local address needs its link (%link)'}`,
          { syscall: 'send', address: addrToString(addr), port });
      }
      if (src === 0) src = this.eng.out.sourceFor(via, addr);
    }
    const hdr = this.hdr;
    const len = UDP_HLEN + data.length;
    const sp = sock.localPort;
    if (src === 0) {
      const r = vs.rules.select(0, sock.mark, vs.tables, addr);
      if (!r) {
        vs.own.drop(typeof addr === 'number' ? Drop.Ipv4NoRoute : Drop.Ipv6NoRoute);
        throw sockError('ENETUNREACH', `send ENETUNREACH ${addrToString(addr)}:${port}`, { syscall: 'send', address: addrToString(addr), port });
      }
      const link = vs.links[r.link]!;
      src = this.eng.out.routeSource(vs, link, r.src, r.gateway !== 0 ? r.gateway : addr, addr);
      if (src === 0) {
        throw sockError('EADDRNOTAVAIL', `send EADDRNOTAVAIL: virtual server '${vs.name}' has no ${typeof addr === 'number' ? 'IPv4' : 'IPv6'} address on '${link.name}'`,
          { syscall: 'send', port });
      }
    }
    if (typeof src !== 'number' && this.eng.out.ownLink(vs, src) === null) {
      // Bound to an IPv6 address still tentative or found duplicate: never a source (RFC 4862 5.4).
      throw sockError('EADDRNOTAVAIL', `send EADDRNOTAVAIL: address ${addrToString(src)} is not usable yet (tentative or duplicate)`,
        { syscall: 'send', address: addrToString(src), port });
    }
    hdr[0] = sp >>> 8; hdr[1] = sp & 0xff; hdr[2] = port >>> 8; hdr[3] = port & 0xff;
    hdr[4] = len >>> 8; hdr[5] = len & 0xff; hdr[6] = 0; hdr[7] = 0;
    let c = fold(sum16(data, 0, data.length, sum16(hdr, 0, 8, pseudoSum(src, addr, IPPROTO_UDP, len))));
    if (c === 0) c = 0xffff;
    hdr[6] = c >>> 8; hdr[7] = c & 0xff;
    this.eng.out.emit(vs, via, viaMac, src, addr, IPPROTO_UDP, 0, hdr, 8, data, 0, data.length, false, sock.mark);
  }

  udpReady(sock: UdpSocket): void {
    this.ready.push(sock);
  }
}

