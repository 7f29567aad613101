/**
 * ICMP for IPv4 (RFC 792, RFC 1122 3.2.2): echo answered in place, errors validated against live
 * state before they change anything (RFC 5927), errors sent rate-limited per VS.
 */
import { Drop } from '../../protocols/drop';
import { ETH_P_IPV4 } from '../../protocols/ethernet';
import {
  IcmpPacket, ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_FRAG_NEEDED, ICMP_PARAM_PROBLEM, ICMP_PORT_UNREACH, ICMP_PROTO_UNREACH,
  ICMP_EXC_FRAGTIME, ICMP_TIME_EXCEEDED, ICMP_ERROR_MAX_DATAGRAM, ICMP_TIMESTAMP, ICMP_TIMESTAMP_LEN, ICMP_TIMESTAMP_REPLY, writeIcmpError,
} from '../../protocols/icmp';
import { IPOPT_RR, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, writeIpv4 } from '../../protocols/ipv4';
import { checksumAdjust, fold, rd16, sum16, wr16 } from '../../protocols/checksum';
import { linkEth } from '../link/demux';
import { IcmpKind } from '../transport/tcp';
import type { RxMeta } from '../engine/meta';
import type { Link, VirtualServer } from '../vs';
import type { IpAddr } from '../../protocols/ip/addr';
import { HOP_LIMIT } from './output';

import type { Device } from '../engine/device';
import type { TcpLayer } from '../transport/tcp';
import type { UdpLayer } from '../transport/udp';
import { udpIcmpError } from '../transport/udp';
import type { IpOutput } from './output';

/** What ICMP needs from the engine. */
export interface Icmp4Host {
  readonly devices: readonly Device[];
  readonly out: IpOutput;
  readonly tcp: TcpLayer;
  readonly udp: UdpLayer;
  readonly vsById: ReadonlyMap<number, VirtualServer>;
  /** Add to the engine's time for µs since the epoch (real time); null when unknown (virtual time). */
  readonly epochOffsetUs: number | null;
  /** Looped-back frames (a VS sending to its own address) are being received. */
  readonly inLoopback: boolean;
  echoReply(vs: VirtualServer, ident: number, from: IpAddr, seq: number, bytes: number, ttl: number, now: number): Drop;
  /** An ICMP error quoting an Echo Request of `vs` with identifier `ident` (to its ping, as echoReply). */
  echoError(vs: VirtualServer, ident: number, from: IpAddr, seq: number, type: number, code: number, info: number, now: number): Drop;
}

/**
 * Takes one token from the VS's ICMP error bucket (RFC 1812 4.3.2.8 / RFC 4443 2.4(f)); false
 * (counted as `reason`) when empty. Shared by ICMP and ICMPv6.
 */
export function icmpErrorToken(vs: VirtualServer, link: Link, now: number, reason: Drop = Drop.IcmpRateLimited): boolean {
  const elapsed = now - vs.icmpStamp;
  if (elapsed > 0) {
    vs.icmpTokens = Math.min(vs.icmpBurst, vs.icmpTokens + (elapsed * vs.icmpRate) / 1e6);
    vs.icmpStamp = now;
  }
  if (vs.icmpTokens < 1) {
    link.drop(reason);
    return false;
  }
  vs.icmpTokens -= 1;
  return true;
}

export class Icmp4 {
  private readonly icmp = new IcmpPacket();
  private readonly mac = new Uint8Array(6);
  private readonly hdr = new Uint8Array(8);
  /** A Timestamp Reply being built. */
  private readonly tsMsg = new Uint8Array(20);
  /** The options of an echo reply (at most 40 bytes). */
  private readonly opts = new Uint8Array(40);
  /** The quote of a reassembled datagram: a header rebuilt for it and as much of it as fits in 576 bytes. */
  private readonly quote = new Uint8Array(ICMP_ERROR_MAX_DATAGRAM - 20 - 8);
  /** An ICMP error from a VIP, built before it is routed. */
  private routed: Uint8Array | null = null;

  constructor(private readonly eng: Icmp4Host) {}

  input(m: RxMeta, j: number): void {
    const link = m.link[j]!;
    const b = m.b;
    const off = m.l4Off[j]!;
    const len = m.l4Len[j]!;
    const icmp = this.icmp;
    const d = icmp.parse(b, off, len);
    if (d !== Drop.None) return m.drop(j, d);
    if (icmp.type === ICMP_ECHO_REQUEST) {
      if (m.bcast[j]) return m.drop(j, Drop.Ipv4NotOurAddress);
      // To a VIP (decapsulated): the reply leaves from the VIP, routed (the frame's headers are the
      // load balancer's), through the output path.
      if (m.decap[j]) return this.echoRouted(m, j, off, len);
      // Echo reply in place: type 8 → 0 with an incremental checksum update (RFC 1624).
      b[off] = 0;
      wr16(b, off + 2, checksumAdjust(rd16(b, off + 2), 0x0800, 0x0000));
      const so = m.srcMac[j]!;
      for (let i = 0; i < 6; i++) this.mac[i] = b[so + i]!;
      // RFC 1122 3.2.2.6: a Record Route option of the request is updated with this host and
      // returned in the reply (as Linux's ip_options_echo); other options are not echoed.
      const l3 = m.l3Off[j]!;
      const optLen = off - l3 > 20 ? this.echoOptions(b, l3, off - l3, m.dst[j]!) : 0;
      const hl = 20 + optLen;
      const ipStart = off - hl;
      writeIpv4(b, ipStart, m.dst[j]!, m.src[j]!, IPPROTO_ICMP, optLen + len, HOP_LIMIT, this.eng.out.nextIpId(link), 0, m.tos[j]!);
      if (optLen > 0) {
        b[ipStart] = 0x40 | (hl >>> 2);
        b.set(this.opts.subarray(0, optLen), ipStart + 20);
        b[ipStart + 10] = 0; b[ipStart + 11] = 0;
        const hc = fold(sum16(b, ipStart, hl));
        b[ipStart + 10] = hc >>> 8; b[ipStart + 11] = hc & 0xff;
      }
      const ethStart = ipStart - link.ethLen;
      linkEth(b, ethStart, this.mac, 0, link, ETH_P_IPV4);
      // Cannot happen for an unfragmented request that fit the link; be safe.
      if (hl + len > link.mtu) return m.drop(j, Drop.Ipv4BadTotalLength);
      // A VS pinging its own address: the reply loops back too.
      if (this.eng.inLoopback) this.eng.out.loopback(link, m.pool, m.frame(j), ethStart, link.ethLen + hl + len);
      else this.eng.out.enqueue(link, m.pool, m.frame(j), ethStart, link.ethLen + hl + len);
      return;
    }
    if (icmp.type === ICMP_TIMESTAMP) return this.timestamp(m, j, off);
    if (icmp.type === ICMP_DEST_UNREACH || icmp.type === ICMP_TIME_EXCEEDED || icmp.type === ICMP_PARAM_PROBLEM) {
      const r = this.errorInput(link, b, m.dst[j]!, m.src[j]!, m.now);
      if (r !== Drop.None) return m.drop(j, r);
      return m.free(j);
    }
    if (icmp.type === ICMP_ECHO_REPLY) {
      // To the ping (echo socket) whose identifier it carries; never one sent to a broadcast.
      const r = m.bcast[j] ? Drop.Ipv4NotOurAddress : this.eng.echoReply(link.vs, icmp.id, m.src[j]!, icmp.seq, len, m.hops[j]!, m.now);
      if (r !== Drop.None) return m.drop(j, r);
      return m.free(j);
    }
    m.drop(j, Drop.IcmpUnknownType);
  }

  /**
   * The options of the echo reply to the request whose header (`hl` bytes, options checked by
   * IPv4 input) is at `b[l3..]`, written into this.opts: its Record Route option, with `ours`
   * recorded once as the request arrived and once as the reply leaves while there is room (RFC 791
   * 3.1; as Linux, which records on input and again on output), padded with End of Option List to
   * a multiple of 4. Returns their length (0: nothing to echo).
   */
  private echoOptions(b: Uint8Array, l3: number, hl: number, ours: number): number {
    const end = l3 + hl;
    let p = l3 + 20;
    while (p < end) {
      const t = b[p]!;
      if (t === 0) break;
      if (t === 1) { p++; continue; }
      const olen = b[p + 1]!;
      if (t === IPOPT_RR) {
        const o = this.opts;
        for (let i = 0; i < olen; i++) o[i] = b[p + i]!;
        for (let k = 0; k < 2; k++) {
          const ptr = o[2]!;
          if (ptr + 3 > olen) break;
          o[ptr - 1] = ours >>> 24; o[ptr] = (ours >>> 16) & 0xff; o[ptr + 1] = (ours >>> 8) & 0xff; o[ptr + 2] = ours & 0xff;
          o[2] = ptr + 4;
        }
        let n = olen;
        while (n & 3) o[n++] = 0;
        return n;
      }
      p += olen;
    }
    return 0;
  }

  /**
   * Timestamp Reply (RFC 792; RFC 1122 3.2.2.8, which Linux implements): the request's identifier,
   * sequence number and originate timestamp, then the receive and transmit timestamps, both the
   * time now in milliseconds since midnight UT, from the address the request came to. Without a
   * wall clock (virtual time) the value is non-standard, its high-order bit set (RFC 792). Not to
   * a broadcast (RFC 1122 3.2.2.8 MAY discard; Linux ignores broadcast ICMP queries).
   */
  private timestamp(m: RxMeta, j: number, off: number): void {
    if (m.bcast[j]) return m.drop(j, Drop.Ipv4NotOurAddress);
    const b = m.b;
    const link = m.link[j]!;
    const t = this.tsMsg;
    t[0] = ICMP_TIMESTAMP_REPLY; t[1] = 0; t[2] = 0; t[3] = 0;
    for (let i = 4; i < 12; i++) t[i] = b[off + i]!; // identifier, sequence number, originate
    const ep = this.eng.epochOffsetUs;
    const ms = ep !== null ? Math.floor((m.now + ep) / 1000) % 86_400_000 : ((Math.floor(m.now / 1000) & 0x7fffffff) | 0x80000000) >>> 0;
    for (let k = 12; k < 20; k += 4) { t[k] = ms >>> 24; t[k + 1] = (ms >>> 16) & 0xff; t[k + 2] = (ms >>> 8) & 0xff; t[k + 3] = ms & 0xff; }
    const c = fold(sum16(t, 0, ICMP_TIMESTAMP_LEN));
    t[2] = c >>> 8; t[3] = c & 0xff;
    const so = m.srcMac[j]!;
    for (let i = 0; i < 6; i++) this.mac[i] = b[so + i]!;
    const decap = m.decap[j] !== 0;
    try {
      // From a VIP (decapsulated): routed, as its echo replies are.
      this.eng.out.emit(link.vs, decap ? null : link, decap ? null : this.mac, m.dst[j]!, m.src[j]!, IPPROTO_ICMP, m.tos[j]!, t, ICMP_TIMESTAMP_LEN, t, 0, 0, false, 0);
    } catch {
      // No route back or no frame: counted by the output path.
    } finally {
      m.free(j);
    }
  }

  /** Echo Reply to a request that came to a VIP (decapsulated): built anew and routed. */
  private echoRouted(m: RxMeta, j: number, off: number, len: number): void {
    const b = m.b;
    const hdr = this.hdr;
    hdr[0] = 0; hdr[1] = 0; hdr[2] = 0; hdr[3] = 0;
    hdr[4] = b[off + 4]!; hdr[5] = b[off + 5]!; hdr[6] = b[off + 6]!; hdr[7] = b[off + 7]!;
    const c = fold(sum16(b, off + 8, len - 8, sum16(hdr, 0, 8)));
    hdr[2] = c >>> 8; hdr[3] = c & 0xff;
    try {
      this.eng.out.emit(m.link[j]!.vs, null, null, m.dst[j]!, m.src[j]!, IPPROTO_ICMP, m.tos[j]!, hdr, 8, b, off + 8, len - 8, false, 0);
    } catch {
      // No route or no frame: counted by the output path.
    } finally {
      m.free(j);
    }
  }

  /**
   * A reassembled ICMP message: a large echo is answered with the same data, fragmented for the
   * path; a large echo reply goes to its ping (its TTL is that of no single fragment: -1).
   */
  datagram(link: Link, src: number, dst: number, tos: number, dg: Uint8Array, peerMac: Uint8Array, bcast: boolean, now: number): void {
    const icmp = this.icmp;
    const d = icmp.parse(dg, 0, dg.length);
    if (d !== Drop.None) return link.drop(d);
    if (icmp.type === ICMP_ECHO_REPLY && !bcast) {
      const r = this.eng.echoReply(link.vs, icmp.id, src, icmp.seq, dg.length, -1, now);
      if (r !== Drop.None) link.drop(r);
      return;
    }
    if (icmp.type !== ICMP_ECHO_REQUEST || bcast) return link.drop(Drop.IcmpUnknownType);
    const hdr = this.hdr;
    hdr[0] = 0; hdr[1] = 0; hdr[2] = 0; hdr[3] = 0;
    hdr[4] = dg[4]!; hdr[5] = dg[5]!; hdr[6] = dg[6]!; hdr[7] = dg[7]!;
    const c = fold(sum16(dg, 8, dg.length - 8, sum16(hdr, 0, 8)));
    hdr[2] = c >>> 8; hdr[3] = c & 0xff;
    try {
      this.eng.out.emit(link.vs, link, peerMac, dst, src, IPPROTO_ICMP, tos, hdr, 8, dg, 8, dg.length - 8, false, 0);
    } catch {
      // No route back (a VIP's reply is routed) or no frame: counted by the output path.
    }
  }

  /**
   * An ICMP error (parsed in this.icmp: it quotes an IPv4 header and 8 bytes) that came to our
   * address `dst`. It is believed only when it quotes live state (RFC 5927 section 4, as Linux's
   * tcp_v4_err and __udp4_lib_err): a datagram we sent from `dst`, of a TCP connection that exists
   * with a sequence number in SND.UNA..SND.NXT, or of a UDP socket bound to its source port (and
   * connected to its destination, when connected). Anything else is a counted drop and changes
   * nothing: a forged "fragmentation needed" cannot lower the path MTU toward a host, nor a forged
   * "port unreachable" end a connection.
   */
  private errorInput(link: Link, b: Uint8Array, dst: number, from: number, now: number): Drop {
    const icmp = this.icmp;
    const q = icmp.innerOff;
    const p = icmp.innerL4Off;
    const qsrc = icmp.innerSrc;
    const qdst = icmp.innerDst;
    // Ours was sent from the address the error came to, and a non-first fragment has no ports.
    if (qsrc !== dst || (((b[q + 6]! << 8) | b[q + 7]!) & 0x1fff) !== 0) return Drop.IcmpNoFlow;
    const sport = (b[p]! << 8) | b[p + 1]!;
    const dport = (b[p + 2]! << 8) | b[p + 3]!;
    const fragNeeded = icmp.type === ICMP_DEST_UNREACH && icmp.code === ICMP_FRAG_NEEDED;
    if (icmp.innerProto === IPPROTO_TCP) {
      const seq = ((b[p + 4]! << 24) | (b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!) >>> 0;
      // RFC 1122 4.2.3.9: port and protocol unreachable are hard errors while opening.
      const kind = icmp.type !== ICMP_DEST_UNREACH ? IcmpKind.Soft : fragNeeded ? IcmpKind.Mtu
        : icmp.code === ICMP_PROTO_UNREACH || icmp.code === ICMP_PORT_UNREACH ? IcmpKind.Refused
        // Net unreachable / unknown / prohibited / unreachable for TOS: ENETUNREACH (Linux icmp_err_convert).
        : icmp.code === 0 || icmp.code === 6 || icmp.code === 9 || icmp.code === 11 ? IcmpKind.SoftNet : IcmpKind.Soft;
      return this.eng.tcp.icmpError(link.vs, qsrc, sport, qdst, dport, seq, kind, icmp.nextHopMtu, link);
    }
    if (icmp.innerProto === IPPROTO_UDP) {
      const sock = this.eng.udp.find(link.vs, sport, qsrc, qdst, dport);
      if (!sock) return Drop.IcmpNoFlow;
      if (fragNeeded) this.eng.out.pmtuUpdate(link.vs, qdst, icmp.nextHopMtu, qsrc, sock.mark);
      // A connected socket hears of hard errors (Node: 'error', ECONNREFUSED for port unreachable).
      else if (sock.connected) sock.icmpError(udpIcmpError(false, icmp.type, icmp.code));
      return Drop.None;
    }
    if (icmp.innerProto === IPPROTO_ICMP && b[p] === ICMP_ECHO_REQUEST) {
      // About a ping's request (iputils prints "From ROUTER icmp_seq=N Destination Host Unreachable").
      const info = fragNeeded ? icmp.nextHopMtu : icmp.type === ICMP_PARAM_PROBLEM ? b[icmp.innerOff - 4]! : 0;
      const r = this.eng.echoError(link.vs, (b[p + 4]! << 8) | b[p + 5]!, from, (b[p + 6]! << 8) | b[p + 7]!, icmp.type, icmp.code, info, now);
      // It quotes a request of a live ping: its path MTU is believed, as for a UDP socket's.
      if (r === Drop.None && fragNeeded) this.eng.out.pmtuUpdate(link.vs, qdst, icmp.nextHopMtu, qsrc, 0);
      return r;
    }
    return Drop.IcmpNoFlow; // no raw sockets: nothing else of ours to quote
  }

  /**
   * Sends an ICMP error about frame `j` (the IPv4 datagram at its l3Off, whose header and L4
   * fields the IPv4 stage set) back to its sender's MAC through its link, rate-limited; none
   * about a frame sent to a link-layer group, a fragment other than the first or an ICMP error.
   * `mtu`: the next-hop MTU of fragmentation needed, or the pointer of a parameter problem.
   */
  errorFor(m: RxMeta, j: number, type: number, code: number, mtu: number): void {
    const link = m.link[j]!;
    // RFC 1122 3.2.2: never about a datagram sent as a link-layer broadcast or multicast (Linux:
    // only about PACKET_HOST), whatever its IP destination.
    if ((m.b[m.ethOff[j]!]! & 1) !== 0) return;
    const b = m.b;
    const l3 = m.l3Off[j]!;
    // RFC 1122 3.2.2: nor about a fragment other than the first, nor about an ICMP error message
    // (Linux icmp_send: nor about a type it does not know).
    if ((((b[l3 + 6]! << 8) | b[l3 + 7]!) & 0x1fff) !== 0) return;
    if (b[l3 + 9] === IPPROTO_ICMP && (m.l4Len[j]! < 1 || isIcmpErrorType(b[m.l4Off[j]!]!))) return;
    if (!icmpErrorToken(link.vs, link, m.now)) return;
    this.send(link, m.b, m.srcMac[j]!, m.dst[j]!, m.src[j]!, type, code, mtu, m.b, l3, m.l4Off[j]! - l3 + m.l4Len[j]!);
  }

  /**
   * Port unreachable for a reassembled UDP datagram no socket took (RFC 1122 3.2.2.1, as for a
   * whole one), quoting a header rebuilt for it and as much of it as fits in 576 bytes, to the MAC
   * of the fragment that completed it.
   */
  portUnreachable(link: Link, src: number, dst: number, tos: number, dg: Uint8Array, peerMac: Uint8Array, now: number, proto = IPPROTO_UDP): void {
    if (!icmpErrorToken(link.vs, link, now)) return;
    // RFC 1812 4.3.2.3 (as for a datagram that came whole): as much as fits in 576 bytes, never
    // less than the header and 8 bytes of RFC 792.
    const q = this.quote;
    const n = Math.min(dg.length, q.length - 20);
    writeIpv4(q, 0, src, dst, proto, dg.length, HOP_LIMIT, 0, 0, tos);
    q.set(dg.subarray(0, n), 20);
    this.send(link, peerMac, 0, dst, src, ICMP_DEST_UNREACH, proto === IPPROTO_UDP ? ICMP_PORT_UNREACH : ICMP_PROTO_UNREACH, 0, q, 0, 20 + n);
  }

  /** Protocol unreachable for a reassembled datagram of protocol `proto`, which nothing here takes (RFC 1122 3.2.2.1), as for a whole one. */
  protocolUnreachable(link: Link, src: number, dst: number, tos: number, proto: number, dg: Uint8Array, peerMac: Uint8Array, now: number): void {
    this.portUnreachable(link, src, dst, tos, dg, peerMac, now, proto);
  }

  /**
   * Time Exceeded code 1 (fragment reassembly time exceeded) for a datagram of VS `vsId` whose
   * fragment zero had come (RFC 792; RFC 1122 3.3.2: MUST, and only then): `first` is that
   * fragment rebuilt by the reassembler. Not to a datagram that came to a broadcast address (no
   * link of the VS holds it as its own: RFC 1122 3.2.2), rate-limited as every error. Routed
   * through the output path (the sender's MAC is long gone: ARP resolves it if needed).
   */
  reassemblyTimeout(first: Uint8Array, vsId: number, now: number): void {
    const vs = this.eng.vsById.get(vsId);
    if (!vs || first.length < 28) return;
    const to = ((first[12]! << 24) | (first[13]! << 16) | (first[14]! << 8) | first[15]!) >>> 0;
    const ours = ((first[16]! << 24) | (first[17]! << 16) | (first[18]! << 8) | first[19]!) >>> 0;
    const link = this.eng.out.ownLink(vs, ours);
    if (!link) return;
    if (!icmpErrorToken(vs, link, now)) return;
    const msg = (this.routed ??= new Uint8Array(ICMP_ERROR_MAX_DATAGRAM));
    const n = writeIcmpError(msg, 0, ICMP_TIME_EXCEEDED, ICMP_EXC_FRAGTIME, 0, first, 0, Math.min(first.length, ICMP_ERROR_MAX_DATAGRAM - 20 - 8));
    try {
      this.eng.out.emit(vs, null, null, ours, to, IPPROTO_ICMP, 0xc0, msg, n, msg, 0, 0, false, 0);
    } catch {
      // No route back or no frame: counted by the output path.
    }
  }

  /** Builds and queues an ICMP error from `from` to `to` (at macBuf[macOff..]) quoting orig[ipOff..+ipLen). */
  private send(link: Link, macBuf: Uint8Array, macOff: number, from: number, to: number, type: number, code: number, mtu: number,
    orig: Uint8Array, ipOff: number, ipLen: number): void {
    if (link.vs.vips !== null && link.vs.vips.has(from)) {
      // About a packet to a VIP: from the VIP, routed to its sender (not back to the load balancer).
      const msg = (this.routed ??= new Uint8Array(576));
      const n = writeIcmpError(msg, 0, type, code, mtu, orig, ipOff, Math.min(ipLen, 576 - 20 - 8));
      try {
        this.eng.out.emit(link.vs, null, null, from, to, IPPROTO_ICMP, 0xc0, msg, n, msg, 0, 0, false, 0);
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
    const icmpOff = start + ethLen + 20;
    const ilen = writeIcmpError(pool.bytes, icmpOff, type, code, mtu, orig, ipOff, ipLen);
    writeIpv4(pool.bytes, start + ethLen, from, to, IPPROTO_ICMP, ilen, HOP_LIMIT, this.eng.out.nextIpId(link), 0, 0xc0);
    linkEth(pool.bytes, start, macBuf, macOff, link, ETH_P_IPV4);
    this.eng.out.enqueue(link, pool, f, start, ethLen + 20 + ilen);
  }
}

/** ICMP types that are errors (RFC 792, 1122 3.2.2), and types past 18 (unknown: Linux answers none of them). */
function isIcmpErrorType(t: number): boolean {
  return t === ICMP_DEST_UNREACH || t === 4 || t === 5 || t === ICMP_TIME_EXCEEDED || t === ICMP_PARAM_PROBLEM || t > 18;
}
