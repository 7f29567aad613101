/**
 * ICMP echo sockets: ping from inside a virtual server, as Linux's ICMP datagram sockets under
 * `ip vrf exec VRF ping`. A socket has an identifier no other echo socket of its VS has; it sends
 * Echo Requests (RFC 792; RFC 4443 4.1) from the VS's address for the destination, by the VS's
 * rules and routes, and the Echo Replies carrying its identifier come back to it (RFC 792: "the
 * identifier and sequence number may be used by the echo sender to aid in matching the replies
 * with the echo requests"; RFC 1122 3.2.2.6: the reply returns the request's data unchanged).
 *
 * Sans-IO: the caller keeps the schedule and the clock (stack/ping.ts); a reply is reported with
 * the time of the burst it came in.
 *
 * Shards: each shard gives identifiers of its own share (identifier mod shards = shard), so a
 * reply the NIC put on another shard's queue is handed to the one that sent the request
 * (Engine.echoReply).
 */
import { fold, sum16 } from '../../protocols/checksum';
import { ICMP_ECHO_REQUEST } from '../../protocols/icmp';
import { ICMP6_ECHO_REQUEST } from '../../protocols/icmpv6';
import { IPPROTO_ICMP } from '../../protocols/ipv4';
import { IPPROTO_ICMPV6 } from '../../protocols/ipv6';
import {
  addrToString, Ip6, IpAddr, isLinkLocal6, isLoopback6, isMulticast6, isUnspecified, pseudoSum6,
} from '../../protocols/ip/addr';
import { sockError } from '../api/dgram';
import type { Link, VirtualServer } from '../vs';
import type { IpOutput } from './output';
import type { Steering } from '../shard/steer';

/** A reply: who sent it, its sequence number, its ICMP length (header + data), TTL/hop limit (-1 when unknown), and the time of its burst. */
export type EchoListener = (from: IpAddr, seq: number, bytes: number, ttl: number, now: number) => void;

/**
 * An ICMP error about one of the socket's Echo Requests (RFC 792 / RFC 4443 section 2.4: the
 * error quotes the request, its identifier and sequence number): who reported it (a router, the
 * destination, or our own address when the next hop never answered address resolution), the
 * request's sequence number, and the ICMP type and code of the family; `info` is the MTU of a
 * "fragmentation needed" / Packet Too Big, or the pointer of a Parameter Problem.
 */
export type EchoErrorListener = (from: IpAddr, seq: number, type: number, code: number, info: number, now: number) => void;

/** What echo sockets need from the engine. */
export interface EchoHost {
  readonly out: IpOutput;
  readonly steer: Steering | null;
}

/** Largest echo data: an IPv4 datagram of 65535 bytes less the IPv4 and ICMP headers (as ping -s). */
export const ECHO_MAX_DATA4 = 65535 - 20 - 8;
/** IPv6: a payload of 65535 bytes less the ICMPv6 header. */
export const ECHO_MAX_DATA6 = 65535 - 8;

export class EchoSocket {
  closed = false;
  /** ICMP errors about this socket's requests (none heard when unset). */
  onError: EchoErrorListener | null = null;
  constructor(private readonly layer: EchoLayer, readonly vs: VirtualServer, readonly ident: number, public onReply: EchoListener) {}

  /**
   * Sends one Echo Request with sequence number `seq` (0..65535) and `data` to `dst` (`zone`: the
   * link of a link-local destination). Returns the source address used. Throws the errors a ping
   * socket's sendto gives (ENETUNREACH, EADDRNOTAVAIL, EINVAL, EMSGSIZE, ENOBUFS).
   */
  send(dst: IpAddr, seq: number, data: Uint8Array, zone = ''): IpAddr {
    return this.layer.send(this, dst, seq, data, zone);
  }

  close(): void {
    this.layer.close(this);
  }
}

export class EchoLayer {
  /** By VS id × 65536 + identifier. */
  private readonly socks = new Map<number, EchoSocket>();
  private next: number;
  private readonly hdr = new Uint8Array(8);

  constructor(private readonly eng: EchoHost, seed: number) {
    this.next = seed & 0xffff;
  }

  /** Open echo sockets (all VSes). */
  get size(): number {
    return this.socks.size;
  }

  /** A socket in `vs` with a free identifier (of this shard's share). */
  open(vs: VirtualServer, onReply: EchoListener): EchoSocket {
    if (vs.destroyed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', `virtual server '${vs.name}' was destroyed`);
    const s = this.eng.steer;
    const step = s === null ? 1 : s.shards;
    let id = s === null ? this.next : this.next - (this.next % step) + s.self;
    for (let tries = 0; tries < 65536 / step; tries++, id += step) {
      id &= 0xffff;
      if (s !== null && id % step !== s.self) id = s.self; // wrapped: back to this shard's first
      const key = vs.id * 65536 + id;
      if (this.socks.has(key)) continue;
      const sock = new EchoSocket(this, vs, id, onReply);
      this.socks.set(key, sock);
      this.next = (id + step) & 0xffff;
      return sock;
    }
    throw sockError('EADDRNOTAVAIL', `no free ICMP echo identifier in virtual server '${vs.name}'`);
  }

  close(sock: EchoSocket): void {
    if (sock.closed) return;
    sock.closed = true;
    const key = sock.vs.id * 65536 + sock.ident;
    if (this.socks.get(key) === sock) this.socks.delete(key);
  }

  /** A VS goes: its echo sockets close. */
  destroyVs(vs: VirtualServer): void {
    for (const s of [...this.socks.values()]) if (s.vs === vs) this.close(s);
  }

  /** An Echo Reply to `vs` with identifier `ident`: to its socket; false when none waits. */
  deliver(vs: VirtualServer, ident: number, from: IpAddr, seq: number, bytes: number, ttl: number, now: number): boolean {
    const sock = this.socks.get(vs.id * 65536 + ident);
    if (sock === undefined || sock.closed) return false;
    sock.onReply(from, seq, bytes, ttl, now);
    return true;
  }

  /** An ICMP error quoting an Echo Request of `vs` with identifier `ident`: to its socket; false when none waits. */
  deliverError(vs: VirtualServer, ident: number, from: IpAddr, seq: number, type: number, code: number, info: number, now: number): boolean {
    const sock = this.socks.get(vs.id * 65536 + ident);
    if (sock === undefined || sock.closed) return false;
    sock.onError?.(from, seq, type, code, info, now);
    return true;
  }

  send(sock: EchoSocket, dst: IpAddr, seq: number, data: Uint8Array, zone: string): IpAddr {
    const vs = sock.vs;
    if (sock.closed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'the echo socket is closed');
    if (vs.destroyed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', `virtual server '${vs.name}' was destroyed`);
    if (!Number.isInteger(seq) || seq < 0 || seq > 0xffff) throw new RangeError(`echo sequence number must be 0..65535, got ${seq}`);
    checkEchoDestination(dst);
    const v4 = typeof dst === 'number';
    if (data.length > (v4 ? ECHO_MAX_DATA4 : ECHO_MAX_DATA6)) {
      throw sockError('EMSGSIZE', `ping EMSGSIZE: ${data.length} bytes of data do not fit one ${v4 ? 'IPv4' : 'IPv6'} datagram`, { syscall: 'sendto' });
    }
    const out = this.eng.out;
    if (v4 && vs.links.some((l) => out.isBroadcast(l, dst as number))) {
      throw sockError('EINVAL', `ping ${addrToString(dst)}: a subnet broadcast address; a ping from a virtual server goes to one unicast host`, { syscall: 'sendto', address: addrToString(dst) });
    }
    let via: Link | null = null;
    let src: IpAddr = 0;
    if (zone || (!v4 && isLinkLocal6(dst as Ip6))) {
      // A link-local destination needs its link (fe80::1%link), as with any socket API.
      via = zone ? vs.link(zone) ?? null : null;
      if (!via) {
        throw sockError('EINVAL', `ping ${addrToString(dst)}${zone ? `%${zone}` : ''}: ${zone ? `virtual server '${vs.name}' has no link '${zone}'` : 'a link-local address needs its link (%link)'}`,
          { syscall: 'sendto', address: addrToString(dst) });
      }
      src = out.sourceFor(via, dst);
    } else if (out.ownLink(vs, dst) !== null) {
      src = dst; // one of the VS's own addresses: looped back
    } else {
      const r = vs.rules.select(0, 0, vs.tables, dst);
      if (!r) throw sockError('ENETUNREACH', `ping ${addrToString(dst)}: network unreachable (no route in virtual server '${vs.name}')`, { syscall: 'sendto', address: addrToString(dst) });
      const link = vs.links[r.link]!;
      src = out.routeSource(vs, link, r.src, r.gateway !== 0 ? r.gateway : dst, dst);
    }
    if (src === 0 || (!v4 && out.ownLink(vs, src) === null)) {
      // No address of the family, or an IPv6 one still tentative (RFC 4862 5.4: never a source).
      throw sockError('EADDRNOTAVAIL', `ping ${addrToString(dst)}: virtual server '${vs.name}' has no usable ${v4 ? 'IPv4' : 'IPv6'} source address`,
        { syscall: 'sendto', address: addrToString(dst) });
    }
    const h = this.hdr;
    h[0] = v4 ? ICMP_ECHO_REQUEST : ICMP6_ECHO_REQUEST; h[1] = 0; h[2] = 0; h[3] = 0;
    h[4] = sock.ident >>> 8; h[5] = sock.ident & 0xff; h[6] = seq >>> 8; h[7] = seq & 0xff;
    const init = v4 ? 0 : pseudoSum6(src as Ip6, dst as Ip6, IPPROTO_ICMPV6, 8 + data.length);
    const c = fold(sum16(data, 0, data.length, sum16(h, 0, 8, init)));
    h[2] = c >>> 8; h[3] = c & 0xff;
    out.emit(vs, via, null, src, dst, v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, 0, h, 8, data, 0, data.length, false, 0);
    return src;
  }
}

/** A ping goes to one unicast host: no broadcast, multicast, loopback or unspecified address. */
export function checkEchoDestination(dst: IpAddr): void {
  let why = '';
  if (typeof dst === 'number') {
    const top = dst >>> 24;
    if (top === 127) why = 'loopback addresses are not reachable inside a virtual server (it has no loopback interface)';
    else if (top === 0) why = 'not a destination address';
    else if (dst >= 0xe0000000) why = 'a ping from a virtual server goes to one unicast host (no broadcast or multicast)';
  } else if (isLoopback6(dst)) why = 'loopback addresses are not reachable inside a virtual server (it has no loopback interface)';
  else if (isUnspecified(dst)) why = 'not a destination address';
  else if (isMulticast6(dst)) why = 'a ping from a virtual server goes to one unicast host (no multicast)';
  if (why) throw sockError('EINVAL', `ping ${addrToString(dst)}: ${why}`, { syscall: 'sendto', address: addrToString(dst) });
}
