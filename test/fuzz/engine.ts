/**
 * Whole-engine fuzz target: random and mutated frames into one Engine (stack/engine/engine.ts) under
 * virtual time, with three VSes (VLAN 10 and VLAN 20 with the same address, one untagged),
 * TCP listeners (echo, never-reading, closing after the first data), established TCP connections
 * driven by a scripted peer (its segments follow the connection's sequence numbers, so the deep
 * paths of the state machine are reached), UDP echo sockets, and a peer that answers ARP.
 *
 * Invariants after every input:
 * 1. nothing throws out of input(), flushEvents() or advance();
 * 2. frame accounting is exact: the pool holds no frame in the kernel/TX states, and the frames it
 *    holds are exactly those queued for neighbor resolution (every other frame is free again once
 *    the output queue is drained); the device's rxPackets grew by exactly one;
 * 3. every input frame is accounted: it raised a drop counter, or produced output (sent or queued
 *    for ARP), or was taken by a consumer that keeps it in its state (a TCP connection or listener,
 *    the reassembler, the neighbor cache, a UDP socket, ICMP error handling);
 * 4. memory stays bounded (checked every 4096 inputs): reassembly within its limits, neighbor
 *    tables within theirs, TCP connections within listeners' queues + backlog + TIME_WAIT limit +
 *    the peer's own connections, the path-MTU table and the heap below fixed bounds.
 */
import * as fc from 'fast-check';
import { Engine } from '../../stack/engine';
import { Icmp4 } from '../../stack/ip/icmp4';
import { FramePool } from '../../umem/pool';
import { Burst } from '../../driver/types';
import { createServer, Socket } from '../../stack/api/net';
import { TcpConnection } from '../../protocols/tcp/connection';
import { TcpLayer } from '../../stack/transport/tcp';
import { UdpSocket } from '../../stack/api/dgram';
import { NeighborCache } from '../../stack/neighbor';
import { Ipv4Reassembler } from '../../protocols/reassembly';
import { Ipv6Reassembler } from '../../protocols/reassembly6';
import { Drop } from '../../protocols/drop';
import { EthFrame, ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6 } from '../../protocols/ethernet';
import { Ipv6Header, IPPROTO_ICMPV6 } from '../../protocols/ipv6';
import { Icmp6Packet } from '../../protocols/icmpv6';
import { UdpHeader } from '../../protocols/udp';
import { ip6At } from '../../protocols/ip/addr';
import { ArpPacket, ARP_REPLY, ARP_REQUEST } from '../../protocols/arp';
import { Ipv4Header, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, parseIpv4 } from '../../protocols/ipv4';
import { IcmpPacket } from '../../protocols/icmp';
import { TcpHeader } from '../../protocols/tcp';
import { TcpState, TH_ACK, TH_FIN, TH_PSH, TH_RST, TH_SYN, TH_URG } from '../../protocols/tcp/types';
import type { VirtualServer } from '../../stack/vs';
import { Rng, Target, Violation, fixChecksums, mutate } from './lib';
import { arpFrameOf, captureFrames, emitterFrames, emitterFrames6, FrameSpec, icmpEchoOf, icmpErrorOf, ipFrame, seg, tcpFrameOf, udpFrameOf, PEER_MAC, BCAST } from './corpus';

// ------------------------------------------------------------------ instrumentation

/** Consumers that keep a frame's content in their state without a counter of their own. */
const ev = { tcpConn: 0, syn: 0, cookie: 0, frag: 0, arpLearn: 0, icmpErr: 0, udp: 0, arpQueued: 0 };
let instrumented = false;

function instrument(): void {
  if (instrumented) return;
  instrumented = true;
  const wrap = <T extends object>(proto: T, name: string, count: (r: unknown) => void) => {
    const p = proto as Record<string, (...a: unknown[]) => unknown>;
    const orig = p[name]!;
    if (typeof orig !== 'function') throw new Error(`cannot instrument ${name}`);
    p[name] = function (this: unknown, ...a: unknown[]) { const r = orig.apply(this, a); count(r); return r; };
  };
  wrap(TcpConnection.prototype, 'input', () => { ev.tcpConn++; });
  wrap(TcpLayer.prototype, 'onSyn', () => { ev.syn++; });
  wrap(TcpLayer.prototype, 'onCookieAck', (r) => { if (r) ev.cookie++; });
  // An ICMP error believed (it quotes live state of ours: RFC 5927); others are counted drops.
  wrap(Icmp4.prototype, 'errorInput', (r) => { if (r === Drop.None) ev.icmpErr++; });
  wrap(Ipv4Reassembler.prototype, 'push', (r) => { if (r === Drop.None) ev.frag++; });
  wrap(Ipv6Reassembler.prototype, 'push', (r) => { if (r === Drop.None) ev.frag++; });
  // An NA that updated a neighbor entry (one that taught nothing is a counted drop).
  wrap(NeighborCache.prototype, 'learnAdvert', (r) => { if (r === true) ev.arpLearn++; });
  wrap(NeighborCache.prototype, 'learn', () => { ev.arpLearn++; });
  wrap(UdpSocket.prototype, 'enqueue', () => { ev.udp++; });
  // An output frame queued for ARP resolution (or dropped from the queue, which is also counted).
  wrap(NeighborCache.prototype, 'resolve', (r) => { if (r === null) ev.arpQueued++; });
}

const evSum = () => ev.tcpConn + ev.syn + ev.cookie + ev.frag + ev.arpLearn + ev.icmpErr + ev.udp + ev.arpQueued;

// ------------------------------------------------------------------ the rig

const SECRET = new Uint8Array(16).map((_, i) => i * 13 + 1);
const A = parseIpv4('10.1.1.1'), B = parseIpv4('10.1.1.2'), C = parseIpv4('192.168.0.1'), D = parseIpv4('192.168.0.7');
const FRAMES = 2048;
const MAX_TIME_WAIT = 512;
const SYN_BACKLOG = 64; // net.ts: max(16, backlog)
const BACKLOG = 64;
const PORTS = [80, 81, 82];
/** The stack-wide connection limit of the rig (below checkMemory()'s bound). */
const CONN_LIMIT = 3 * PORTS.length * (SYN_BACKLOG + BACKLOG) + 2048;

interface VsInfo { vs: VirtualServer; vlan: number; mac: Uint8Array; local: number; peer: number }
interface PeerConn { v: number; lport: number; rport: number; sndNxt: number; rcvNxt: number; tsVal: number; tsEcr: number }

class Rig {
  readonly pool = new FramePool({ frameSize: 2048, frameCount: FRAMES });
  readonly e: Engine;
  readonly vses: VsInfo[] = [];
  readonly conns: PeerConn[] = [];
  readonly burst = new Burst(8);
  now = 1_000_000;
  nextPort = 20000;
  readonly sockets = new Set<Socket>();
  private readonly ethp = new EthFrame();
  private readonly ipp = new Ipv4Header();
  private readonly tcpp = new TcpHeader();
  private readonly arpp = new ArpPacket();
  private readonly ip6p = new Ipv6Header();
  private readonly icmp6p = new Icmp6Packet();
  private readonly udpp = new UdpHeader();
  private readonly toInject: Uint8Array[] = [];
  inputs = 0;
  synAcks = 0;
  /** The last internal error the engine reported (a bug of the stack: a finding). */
  internalLog = '';

  constructor() {
    instrument();
    this.e = new Engine({
      secret: SECRET, now: this.now, tcpMaxTimeWait: MAX_TIME_WAIT, reassembly: { maxDatagrams: 32, maxBytes: 128 * 1024 },
      // IPv6 addresses usable at once (fuzzed frames reach NDP, ICMPv6, UDP and TCP over IPv6).
      ndp: { dadTransmits: 0, mldReportUs: 0 },
      // Connections a peer can open are bounded by the limits (checked by checkMemory()).
      limits: { tcpConnections: CONN_LIMIT },
      // The stack counts an exception of its own code and carries on: here every one is a finding.
      log: (m) => { this.internalLog = m; },
    });
    this.e.addDevice({ name: 'eth0', pool: this.pool, mac: Uint8Array.from([2, 0, 0, 0, 0, 1]), mtu: 1500 });
    const specs: [number, string, string, number][] = [[10, '10.1.1.1/24', '02:00:00:00:01:01', B], [20, '10.1.1.1/24', '02:00:00:00:02:01', B], [-1, '192.168.0.1/24', '02:00:00:00:00:01', D]];
    specs.forEach(([vlan, cidr, macS, peer], i) => {
      const vs = this.e.createVs(`vs${i}`);
      const mac = Uint8Array.from(macS.split(':').map((h) => parseInt(h, 16)));
      this.e.addLink(vs, { device: 'eth0', vlan: vlan >= 0 ? vlan : undefined, mac });
      this.e.addAddress(vs, vlan >= 0 ? `eth0.${vlan}` : 'eth0', cidr);
      this.e.addAddress(vs, vlan >= 0 ? `eth0.${vlan}` : 'eth0', 'fd00::1/64');
      if (vlan >= 0) {
        // Behind a load balancer (the peer): the same VIPs on both VLANs (encapsulatedFrames).
        this.e.addVip(vs, '198.51.100.10');
        this.e.addVip(vs, '2001:db8::10');
        this.e.setDecap(vs, { from: ['10.1.1.2/32', 'fd00::2/128'] });
        this.e.addRoute(vs, { dst: 'default', via: '10.1.1.2' });
      }
      this.vses.push({ vs, vlan, mac, local: vlan >= 0 ? A : C, peer });
      const ctx = { engine: this.e, vs, now: () => this.now };
      const track = (s: Socket) => { this.sockets.add(s); s.on('error', () => {}); s.on('close', () => this.sockets.delete(s)); };
      // 80: echo; 81: never reads (the window closes); 82: ends after the first data.
      createServer(ctx, (s: Socket) => { track(s); s.on('data', (d: Buffer) => s.write(d)); s.on('end', () => s.end()); }).listen({ port: 80, backlog: BACKLOG });
      createServer(ctx, (s: Socket) => { track(s); s.pause(); }).listen({ port: 81, backlog: BACKLOG });
      createServer(ctx, (s: Socket) => { track(s); s.once('data', () => s.end('bye')); s.on('end', () => s.end()); }).listen({ port: 82, backlog: BACKLOG });
      const u = this.e.createUdpSocket(vs, { maxQueue: 64 });
      u.bind(7);
      // (Port 0 is a legal source, RFC 768, but no destination: Node's dgram refuses to send there.)
      u.on('message', (m: Buffer, r: { address: string; port: number }) => { if (r.port) u.send(m, r.port, r.address); });
      u.on('error', () => {});
    });
    this.drain();
    // The peer announces itself on every VS.
    for (const v of this.vses) this.inject(arpFrameOf({ vlan: v.vlan, dst: BCAST }, ARP_REQUEST, PEER_MAC, v.peer, new Uint8Array(6), v.local));
    this.settle();
    this.topUp();
  }

  /** Feeds one frame; returns nothing (throws only what the engine throws). */
  input(bytes: Uint8Array): void {
    const f = this.pool.alloc();
    if (f < 0) throw new Violation('frame pool exhausted before input');
    const off = this.pool.dataStart(f);
    const n = Math.min(bytes.length, 2048 - this.pool.headroom);
    this.pool.bytes.set(bytes.subarray(0, n), off);
    this.burst.push(f, off, n);
    this.inputs++;
    this.e.input(0, this.burst, this.now);
  }

  inject(bytes: Uint8Array): void {
    this.input(bytes);
    this.e.flushEvents();
  }

  /** Engine work after an input: events, timers; then the output queue is drained. */
  settle(): void {
    this.e.flushEvents();
    this.e.advance(this.now);
    this.drain();
    for (let i = 0; i < 4 && this.toInject.length; i++) {
      const q = this.toInject.splice(0);
      for (const b of q) this.inject(b);
      this.e.advance(this.now);
      this.drain();
    }
    this.toInject.length = 0;
  }

  /** Frees every queued output frame; the peer follows the sequence numbers and answers ARP. */
  drain(): void {
    const out = this.e.devices[0]!.out;
    const b = this.pool.bytes;
    for (let i = 0; i < out.n; i++) {
      const off = out.off[i]!, len = out.len[i]!;
      this.observe(b, off, len);
      this.pool.free(out.frame[i]!);
    }
    out.n = 0;
  }

  private observe(b: Uint8Array, off: number, len: number): void {
    const e = this.ethp;
    if (e.parse(b, off, len) !== Drop.None) throw new Violation(`engine sent a frame with a bad Ethernet header (${len} bytes)`);
    if (e.etherType === ETH_P_ARP) {
      const a = this.arpp;
      if (a.parse(b, e.l3Off, e.l3Len) !== Drop.None) throw new Violation('engine sent a malformed ARP packet');
      if (a.op === ARP_REQUEST && this.toInject.length < 8) {
        const v = this.vses.find((x) => x.vlan === e.vlan && x.peer === a.tpa);
        if (v) this.toInject.push(arpFrameOf({ vlan: v.vlan, dst: v.mac }, ARP_REPLY, PEER_MAC, v.peer, v.mac, v.local));
      }
      return;
    }
    if (e.etherType === ETH_P_IPV6) return this.observe6(b, e.l3Off, e.l3Len);
    if (e.etherType !== ETH_P_IPV4) throw new Violation(`engine sent ethertype ${e.etherType}`);
    const ip = this.ipp;
    const d = ip.parse(b, e.l3Off, e.l3Len);
    if (d !== Drop.None) throw new Violation(`engine sent a malformed IPv4 header (drop ${d})`);
    if (ip.hdrLen + ip.payloadLen > 1500) throw new Violation(`engine sent ${ip.totalLen} bytes over a 1500-byte MTU`);
    if (ip.proto !== IPPROTO_TCP || ip.isFragment) return;
    const t = this.tcpp;
    if (t.parse(b, ip.payloadOff, ip.payloadLen, ip.src, ip.dst) !== Drop.None) throw new Violation('engine sent a TCP segment with a bad checksum or offset');
    const c = this.conns.find((x) => x.lport === t.srcPort && x.rport === t.dstPort && this.vses[x.v]!.vlan === e.vlan);
    if (!c) {
      // Every second SYN-ACK to a fuzzed SYN (SYN queue or SYN cookie) gets the ACK that completes the
      // handshake: cookie validation, accept queues and many connections are reached too.
      if ((t.flags & (TH_SYN | TH_ACK | TH_RST)) === (TH_SYN | TH_ACK) && this.toInject.length < 8 && (this.synAcks++ & 1) === 0) {
        const v = this.vses.find((x) => x.vlan === e.vlan);
        if (!v) return;
        const s = seg(t.dstPort, t.srcPort, t.ack, (t.seq + 1) >>> 0, TH_ACK);
        s.window = 2000;
        if (t.hasTs) { s.hasTs = true; s.tsVal = (t.tsEcr + 1) >>> 0; s.tsEcr = t.tsVal; }
        this.toInject.push(tcpFrameOf(this.spec(v, { ipSrc: ip.dst }), s, new Uint8Array(0)));
        handshakeAcks++;
      }
      return;
    }
    const end = (t.seq + t.payloadLen + ((t.flags & TH_SYN) ? 1 : 0) + ((t.flags & TH_FIN) ? 1 : 0)) >>> 0;
    if (((end - c.rcvNxt) | 0) > 0) c.rcvNxt = end;
    if (t.hasTs) c.tsEcr = t.tsVal;
  }

  /** An IPv6 packet the engine sent: a valid header, within the MTU, good upper-layer checksums. */
  private observe6(b: Uint8Array, off: number, len: number): void {
    const h = this.ip6p;
    const d = h.parse(b, off, len);
    if (d !== Drop.None) throw new Violation(`engine sent a malformed IPv6 packet (drop ${d})`);
    if (40 + h.payloadLen > 1500) throw new Violation(`engine sent ${40 + h.payloadLen} bytes of IPv6 over a 1500-byte MTU`);
    if (h.isFragment) return;
    const src = ip6At(b, h.srcOff), dst = ip6At(b, h.dstOff);
    let bad = Drop.None;
    if (h.nextHeader === IPPROTO_ICMPV6) bad = this.icmp6p.parse(b, h.l4Off, h.l4Len, h.srcOff, h.dstOff);
    else if (h.nextHeader === IPPROTO_TCP) bad = this.tcpp.parse(b, h.l4Off, h.l4Len, src, dst);
    else if (h.nextHeader === IPPROTO_UDP) bad = this.udpp.parse(b, h.l4Off, h.l4Len, src, dst);
    if (bad !== Drop.None) throw new Violation(`engine sent IPv6 next header ${h.nextHeader} that does not parse (drop ${bad})`);
  }

  /** Frames held by neighbor resolution queues. */
  pending(): number {
    let n = 0;
    for (const v of this.vses) for (const l of v.vs.links) for (const x of l.neigh.entries.values()) n += x.queue.length;
    return n;
  }

  totalDrops(): number {
    let s = this.e.counters.dropTotal + this.e.devices[0]!.counters.dropTotal;
    for (const v of this.vses) {
      s += v.vs.own.dropTotal;
      for (const l of v.vs.links) s += l.dropTotal;
    }
    return s;
  }

  /** Opens connections from the peer until each VS has a few, by a real three-way handshake. */
  topUp(): void {
    this.conns.splice(0, this.conns.length, ...this.conns.filter((c) => {
      const v = this.vses[c.v]!;
      const en = this.e.tcp.find(v.vs, v.local, c.lport, v.peer, c.rport);
      return en !== null && en.conn.state === TcpState.Established;
    }));
    for (let v = 0; v < this.vses.length; v++) {
      let have = this.conns.filter((c) => c.v === v).length;
      for (let tries = 0; have < 4 && tries < 6; tries++) {
        const info = this.vses[v]!;
        const rport = this.nextPort++;
        if (this.nextPort > 60000) this.nextPort = 20000;
        const lport = PORTS[rport % PORTS.length]!;
        const isn = (rport * 2654435761) >>> 0;
        const c: PeerConn = { v, lport, rport, sndNxt: isn, rcvNxt: 0, tsVal: 1000, tsEcr: 0 };
        this.conns.push(c);
        const s = seg(rport, lport, isn, 0, TH_SYN);
        s.mss = 1460; s.wscale = 7; s.sackOk = true; s.hasTs = true; s.tsVal = c.tsVal;
        this.inject(tcpFrameOf(this.spec(info), s, new Uint8Array(0)));
        this.settle();
        c.sndNxt = (isn + 1) >>> 0;
        this.inject(this.segFor(c, TH_ACK, new Uint8Array(0)));
        this.settle();
        const en = this.e.tcp.find(info.vs, info.local, lport, info.peer, rport);
        if (en && en.conn.state === TcpState.Established) have++;
        else this.conns.pop();
      }
    }
  }

  spec(v: VsInfo, o: Partial<FrameSpec> = {}): FrameSpec {
    return { vlan: v.vlan, dst: v.mac, src: PEER_MAC, ipSrc: v.peer, ipDst: v.local, ...o };
  }

  /** A segment from the peer on connection `c`, at its current sequence numbers. */
  segFor(c: PeerConn, flags: number, data: Uint8Array, o: { seqDelta?: number; ackDelta?: number; window?: number; ts?: boolean; tsDelta?: number; sack?: [number, number][]; urg?: number } = {}): Uint8Array {
    const v = this.vses[c.v]!;
    const s = seg(c.rport, c.lport, (c.sndNxt + (o.seqDelta ?? 0)) >>> 0, (c.rcvNxt + (o.ackDelta ?? 0)) >>> 0, flags);
    s.window = o.window ?? 2000;
    if (o.ts !== false) { s.hasTs = true; s.tsVal = (c.tsVal + (o.tsDelta ?? 0)) >>> 0; s.tsEcr = c.tsEcr; }
    if (o.sack?.length) {
      s.sackCount = Math.min(o.sack.length, 3);
      o.sack.slice(0, 3).forEach(([a, b], i) => { s.sackStart[i] = (c.rcvNxt + a) >>> 0; s.sackEnd[i] = (c.rcvNxt + b) >>> 0; });
    }
    const f = tcpFrameOf(this.spec(v), s, data);
    if (o.urg !== undefined) {
      // Urgent pointer: patch and fix the checksum.
      const l4 = (v.vlan >= 0 ? 18 : 14) + 20;
      f[l4 + 18] = o.urg >>> 8; f[l4 + 19] = o.urg & 0xff;
      f[l4 + 13] |= TH_URG;
      fixAll(f);
    }
    return f;
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}

function fixAll(f: Uint8Array): void {
  fixChecksums(f, f.length);
}

// ------------------------------------------------------------------ inputs

/** A structured input: what to send, on which VS or connection, with which deviations. */
interface EngIn {
  kind: number; // 0 tcp on a live connection, 1 SYN to a listener, 2 UDP, 3 ICMP echo, 4 ICMP error quoting a connection, 5 ARP, 6 fragments, 7 bare TCP to any port
  v: number;
  conn: number;
  flags: number;
  seqDelta: number;
  ackDelta: number;
  tsDelta: number;
  window: number;
  len: number;
  sack: [number, number][];
  advanceUs: number;
  sendAsIs: boolean;
  mtu: number;
  code: number;
  port: number;
  srcLow: number;
}

const deltaArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant(0) },
  { weight: 3, arbitrary: fc.integer({ min: -3000, max: 3000 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, 1, 0x7fffffff, -0x80000000, 65535, 1 << 30) },
);

const engArb: fc.Arbitrary<EngIn> = fc.record({
  kind: fc.integer({ min: 0, max: 8 }).map((k) => (k < 2 ? 0 : k - 1)), // live connections twice as often
  v: fc.nat(2),
  conn: fc.nat(),
  flags: fc.oneof({ weight: 5, arbitrary: fc.constantFrom(TH_ACK, TH_ACK | TH_PSH, TH_ACK | TH_FIN, TH_RST, TH_RST | TH_ACK, TH_SYN, TH_SYN | TH_ACK) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
  seqDelta: deltaArb, ackDelta: deltaArb,
  tsDelta: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 50 }) }, { weight: 1, arbitrary: fc.integer({ min: -0x80000000, max: 0x7fffffff }) }),
  window: fc.oneof(fc.constantFrom(0, 1, 2000, 65535), fc.integer({ min: 0, max: 65535 })),
  len: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1400 })),
  sack: fc.array(fc.tuple(fc.integer({ min: -2000, max: 4000 }), fc.integer({ min: -2000, max: 4000 })), { maxLength: 3 }),
  advanceUs: fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 0, max: 20_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 130_000_000 }) }),
  sendAsIs: fc.boolean(),
  mtu: fc.oneof(fc.constantFrom(0, 8, 68, 296, 552, 576, 1280, 1400, 1500, 9000), fc.integer({ min: 0, max: 65535 })),
  code: fc.oneof(fc.constantFrom(0, 1, 3, 4), fc.integer({ min: 0, max: 15 })),
  port: fc.oneof(fc.constantFrom(7, 80, 81, 82, 9999), fc.integer({ min: 0, max: 65535 })),
  srcLow: fc.oneof(fc.constant(2), fc.integer({ min: 0, max: 255 })),
});

const PAYLOAD = new Uint8Array(1500).map((_, i) => (i * 31 + 7) & 0xff);

/** Builds the frames of a structured input against the rig's current state. */
function framesFor(r: Rig, x: EngIn): Uint8Array[] {
  const info = r.vses[x.v % r.vses.length]!;
  const data = PAYLOAD.subarray(0, x.len);
  const peer = (info.peer & ~0xff) | x.srcLow;
  switch (x.kind) {
    case 0: {
      const c = r.conns.length ? r.conns[x.conn % r.conns.length]! : null;
      if (!c) return [];
      const f = r.segFor(c, x.flags, data, { seqDelta: x.seqDelta, ackDelta: x.ackDelta, window: x.window, tsDelta: x.tsDelta, sack: x.sack, ts: x.tsDelta !== 7 });
      // The peer's next sequence number advances when it sent in-order data or a FIN.
      if (x.seqDelta === 0 && (x.flags & (TH_RST | TH_SYN)) === 0) c.sndNxt = (c.sndNxt + x.len + ((x.flags & TH_FIN) ? 1 : 0)) >>> 0;
      c.tsVal = (c.tsVal + 1) >>> 0;
      return [f];
    }
    case 1: {
      // One SYN, or (one time in seven) a flood of 48 from as many ports: SYN queues fill, cookies go out.
      const n = x.len % 7 === 1 ? 48 : 1;
      const out: Uint8Array[] = [];
      for (let i = 0; i < n; i++) {
        const s = seg(1024 + ((x.conn + i * 7919) % 60000), PORTS[x.port % 3]!, (x.ackDelta + i * 100003) >>> 0, 0, TH_SYN);
        s.mss = x.mtu & 0xffff; s.wscale = x.code; s.sackOk = x.sendAsIs; s.hasTs = x.tsDelta !== 7; s.tsVal = x.tsDelta >>> 0;
        out.push(tcpFrameOf(r.spec(info, { ipSrc: n > 1 ? info.peer : peer }), s, new Uint8Array(0)));
      }
      return out;
    }
    case 2:
      return [udpFrameOf(r.spec(info, { ipSrc: peer }), 1024 + (x.conn % 1000), x.port, data.subarray(0, Math.min(data.length, 1400)))];
    case 3:
      return [icmpEchoOf(r.spec(info, { ipSrc: peer }), 8, x.conn & 0xffff, x.window, data.subarray(0, Math.min(data.length, 1400)))];
    case 4: {
      // An ICMP error quoting a segment of a connection (or of a random 4-tuple).
      const c = r.conns.length ? r.conns[x.conn % r.conns.length]! : null;
      const cv = c ? r.vses[c.v]! : info;
      const s = seg(c ? c.lport : x.port, c ? c.rport : 1024 + (x.conn % 1000), c ? (c.rcvNxt + x.seqDelta) >>> 0 : x.seqDelta >>> 0, 0, TH_ACK);
      const quoted = tcpFrameOf({ ipSrc: cv.local, ipDst: x.sendAsIs ? cv.peer : peer, vlan: -1 }, s, new Uint8Array(0)).subarray(14);
      const type = x.flags & 1 ? 3 : x.flags & 2 ? 11 : 12;
      return [icmpErrorOf(r.spec(cv, { ipSrc: peer }), type, x.code, x.mtu, quoted)];
    }
    case 5: {
      const op = x.flags & 1 ? ARP_REPLY : ARP_REQUEST;
      const tpa = x.sendAsIs ? info.local : (info.local & ~0xff) | (x.port & 0xff);
      const spa = x.srcLow === 0 ? 0 : x.srcLow === 1 ? info.local : x.seqDelta === 0 ? peer : (x.ackDelta >>> 0);
      return [arpFrameOf({ vlan: info.vlan, dst: op === ARP_REPLY ? info.mac : BCAST }, op, PEER_MAC, spa, op === ARP_REPLY ? info.mac : new Uint8Array(6), tpa)];
    }
    case 6: {
      // A datagram cut into fragments (UDP, ICMP echo or TCP), some left out or repeated.
      const proto = [IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_TCP][x.code % 3]!;
      let whole: Uint8Array;
      const sp = r.spec(info, { ipSrc: peer });
      if (proto === IPPROTO_UDP) whole = udpFrameOf(sp, 1000, x.port, PAYLOAD.subarray(0, 200 + x.len));
      else if (proto === IPPROTO_ICMP) whole = icmpEchoOf(sp, 8, 1, 2, PAYLOAD.subarray(0, 200 + x.len));
      else {
        const c = r.conns.length ? r.conns[x.conn % r.conns.length]! : null;
        whole = c ? r.segFor(c, TH_ACK | TH_PSH, PAYLOAD.subarray(0, 200 + (x.len >> 1))) : tcpFrameOf(sp, seg(1000, x.port, 1, 0, TH_SYN), new Uint8Array(0));
      }
      const hl = info.vlan >= 0 ? 18 : 14;
      const payload = whole.subarray(hl + 20);
      const chunk = 8 * (1 + (x.window % 100));
      const out: Uint8Array[] = [];
      const id = x.conn & 0xffff;
      for (let p = 0, k = 0; p < payload.length; p += chunk, k++) {
        const n = Math.min(chunk, payload.length - p);
        const more = p + n < payload.length;
        if (!x.sendAsIs && (x.flags >> (k % 8)) & 1 && k > 0) continue; // left out
        out.push(ipFrame({ ...sp, ipSrc: (whole[hl + 12]! << 24 | whole[hl + 13]! << 16 | whole[hl + 14]! << 8 | whole[hl + 15]!) >>> 0, id, flagsFrag: (more ? 0x2000 : 0) | (p >> 3) }, proto, n, (b, o) => b.set(payload.subarray(p, p + n), o)));
        if (out.length >= 8) break;
      }
      if (x.seqDelta & 1) out.reverse();
      return out;
    }
    default: {
      const s = seg(1024 + (x.conn % 60000), x.port, x.seqDelta >>> 0, x.ackDelta >>> 0, x.flags);
      s.window = x.window;
      return [tcpFrameOf(r.spec(info, { ipSrc: peer }), s, data.subarray(0, Math.min(data.length, 1400)))];
    }
  }
}

// ------------------------------------------------------------------ the target


let rig: Rig | null = null;
let rng = new Rng(1);
let sinceTopUp = 0;
let heapMax = 0;
let execs = 0;
let framesIn = 0;
let consumed = 0;
let topUps = 0;
let periodicCalls = 0;
let handshakeAcks = 0;
/** Heap samples (MB) every 2^20 executions, for the report. */
export const heapSamples: number[] = [];

/** Drops by reason over every engine of the run (an engine is rebuilt after an exception). */
const dropsAcc: Record<string, number> = {};
let rebuilds = 0;

function rigDrops(r: Rig, into: Record<string, number>): void {
  const add = (o: Record<string, number>) => { for (const [k, n] of Object.entries(o)) into[k] = (into[k] ?? 0) + n; };
  add(r.e.devices[0]!.counters.toJSON().drops.reasons);
  for (const v of r.vses) add(v.vs.counters.toJSON().drops.reasons);
}

function discardRig(): void {
  if (rig) { rigDrops(rig, dropsAcc); rebuilds++; }
  rig = null;
}

function getRig(): Rig {
  if (!rig) { rig = new Rig(); sinceTopUp = 0; }
  return rig;
}

/** Feeds `frames` as one input, advancing time by `dt`, and checks invariants 1-3. */
function step(frames: Uint8Array[], dt: number): void {
  const r = getRig();
  execs++;
  for (const f of frames) {
    const d0 = r.totalDrops(), tx0 = r.e.devices[0]!.counters.txPackets, ev0 = evSum(), rx0 = r.e.devices[0]!.counters.rxPackets;
    try {
      r.input(f);
      r.e.flushEvents();
    } catch (e) {
      discardRig(); // its state is not trustworthy after an exception; start again
      if (e instanceof Violation) throw e;
      const err = e as Error;
      throw new Violation(`exception out of the engine on input: ${err.name}: ${err.message}\n${(err.stack ?? '').split('\n').slice(1, 4).join('\n')}`);
    }
    if (r.e.internalErrors) { discardRig(); throw new Violation(`internal error in the engine: ${r.internalLog.slice(0, 600)}`); }
    const rx = r.e.devices[0]!.counters.rxPackets - rx0;
    if (rx !== 1) throw new Violation(`rxPackets grew by ${rx} for one frame`);
    const accounted = (r.totalDrops() - d0) + (r.e.devices[0]!.counters.txPackets - tx0) + (evSum() - ev0);
    framesIn++;
    if (r.totalDrops() - d0 === 0) consumed++;
    if (accounted === 0 && !benign(r, f)) {
      throw new Violation(`frame consumed without a count, an answer or a consumer (${f.length} bytes): ${Buffer.from(f).toString('hex').slice(0, 160)}`);
    }
  }
  r.now += dt;
  try {
    r.settle();
  } catch (e) {
    discardRig();
    if (e instanceof Violation) throw e;
    const err = e as Error;
    throw new Violation(`exception out of the engine in flushEvents/advance: ${err.name}: ${err.message}\n${(err.stack ?? '').split('\n').slice(1, 4).join('\n')}`);
  }
  if (r.e.internalErrors) { discardRig(); throw new Violation(`internal error in the engine: ${r.internalLog.slice(0, 600)}`); }
  const c = r.pool.counts();
  // Held frames must be exactly those waiting for ARP (a frame freed while still queued would
  // show as a double free when its neighbor resolves or fails).
  const pend = c.held ? r.pending() : 0;
  if (c.kernel !== 0 || c.tx !== 0 || c.held !== pend || c.free + c.held !== c.total) {
    discardRig();
    throw new Violation(`frame accounting: ${JSON.stringify(c)} with ${pend} frame(s) waiting for ARP`);
  }
  if (++sinceTopUp >= 2000) {
    sinceTopUp = 0;
    topUps++;
    try {
      r.topUp();
    } catch (e) {
      discardRig();
      if (e instanceof Violation) throw e;
      const err = e as Error;
      throw new Violation(`exception out of the engine while the peer opened connections: ${err.name}: ${err.message}\n${(err.stack ?? '').split('\n').slice(1, 4).join('\n')}`);
    }
  }
  // A long-lived engine fills up with the peer's connections (the limit then refuses every new
  // SYN, and handshakes, cookies and teardown are no longer reached): retire it now and then.
  if (r.inputs >= RIG_LIFE) { rigDrops(r, dropsAcc); retired++; r.close(); rig = null; }
}

/** Inputs an engine serves before it is retired for a fresh one (coverage of connection set-up). */
const RIG_LIFE = 50_000;
let retired = 0;

/**
 * Frames the stack may take without a trace, by the rules it implements: an ICMP
 * fragmentation-needed that does not lower the path MTU (RFC 1191 says to ignore it).
 */
function benign(r: Rig, f: Uint8Array): boolean {
  const e = new EthFrame();
  if (e.parse(f, 0, f.length) !== Drop.None || e.etherType !== ETH_P_IPV4) return false;
  const ip = new Ipv4Header();
  if (ip.parse(f, e.l3Off, e.l3Len) !== Drop.None || ip.proto !== IPPROTO_ICMP || ip.isFragment) return false;
  const ic = new IcmpPacket();
  if (ic.parse(f, ip.payloadOff, ip.payloadLen) !== Drop.None) return false;
  void r;
  return ic.type === 3 && ic.code === 4;
}

function checkMemory(): void {
  const r = getRig();
  const e = r.e;
  if (e.reasm.pending > e.reasm.maxDatagrams || e.reasm.heldBytes > e.reasm.maxBytes) throw new Violation(`reassembly over its limits: ${e.reasm.pending}/${e.reasm.heldBytes}`);
  let pmtu = 0;
  for (const v of r.vses) {
    pmtu += v.vs.pmtu.size;
    for (const l of v.vs.links) if (l.neigh.size > l.neigh.params.maxEntries) throw new Violation(`neighbor table ${l.neigh.size} > ${l.neigh.params.maxEntries}`);
  }
  // Listener queues + accept backlogs + TIME_WAIT + the peer's own connections (and the apps' accepted ones).
  const bound = r.vses.length * PORTS.length * (SYN_BACKLOG + BACKLOG) + MAX_TIME_WAIT + 4096;
  if (e.tcp.connCount > bound) {
    const n = e.tcp.connCount;
    discardRig(); // start again with empty tables
    throw new Violation(`${n} TCP connections (bound ${bound}): a peer opens as many as it likes`);
  }
  if (pmtu > 4096) throw new Violation(`path-MTU table holds ${pmtu} entries from forged ICMP`);
  const heap = process.memoryUsage().heapUsed / 1048576;
  if (heap > heapMax) heapMax = heap;
  if (heap > 1536) throw new Violation(`heap ${heap.toFixed(0)} MB`);
}

export const engineTarget: Target<EngIn> & { heapMax(): number; resetState(seed: number): void } = {
  name: 'engine',
  arb: engArb,
  execStructured(x) {
    const r = getRig();
    const frames = framesFor(r, x);
    // Usually as built; sometimes one byte-level mutation on top.
    if (!x.sendAsIs && frames.length === 1 && (x.window & 3) === 0) frames[0] = mutate(rng, frames[0]!, frames[0]!, 1600);
    step(frames, x.advanceUs);
  },
  corpus: () => [...captureFrames(), ...emitterFrames(), ...emitterFrames6()],
  execBytes(b) {
    const r = getRig();
    // Half the time the base is a live frame (current sequence numbers), mutated.
    let f = b;
    if (f.length >= 18 && rng.chance(0.7)) {
      // Mostly to a MAC of ours (the VS of the frame's VLAN tag, if any), so the input gets past L2.
      f = f.slice();
      const tagged = f[12] === 0x81 && f[13] === 0x00;
      const vlan = tagged ? ((f[14]! << 8) | f[15]!) & 0xfff : -1;
      const v = r.vses.find((x) => x.vlan === vlan) ?? r.vses[2]!;
      if (!(f[0]! & 1) || rng.chance(0.5)) f.set(v.mac, 0);
    }
    if (rng.chance(0.5)) {
      const x = liveInput(rng);
      const fs = framesFor(r, x);
      if (fs.length) f = mutate(rng, fs[rng.int(fs.length)]!, b, 1600);
    }
    step([f], rng.chance(0.001) ? rng.int(130_000_000) : rng.int(20_000));
  },
  periodic() {
    checkMemory();
    if (periodicCalls++ % 128 === 0) heapSamples.push(Math.round(process.memoryUsage().heapUsed / 1048576));
  },
  close() { rig?.close(); rig = null; },
  heapMax: () => heapMax,
  summary() {
    const drops: Record<string, number> = { ...dropsAcc };
    if (rig) rigDrops(rig, drops);
    const top = Object.entries(drops).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
    return `${framesIn} frames; ${consumed} taken without a drop; consumers: TCP connection input ${ev.tcpConn}, SYNs to listeners ${ev.syn}, ` +
      `cookie ACKs ${ev.cookie}, fragments held ${ev.frag}, ARP learned ${ev.arpLearn}, ICMP errors applied ${ev.icmpErr}, UDP datagrams queued ${ev.udp}; ` +
      `handshakes of fuzzed SYNs completed by the peer ${handshakeAcks}; TCP connections in the current engine ${rig?.e.tcp.connCount ?? 0}; ` +
      `peer connections topped up ${topUps} times; heap max ${heapMax.toFixed(0)} MB, samples ${heapSamples.join('/')} MB; ` +
      `engines rebuilt after an exception: ${rebuilds}, retired after ${RIG_LIFE} inputs: ${retired}; drops by reason: ${top}`;
  },
  resetState(seed: number) { rig?.close(); rig = null; rng = new Rng(seed); execs = 0; periodicCalls = 0; },
  structuredShare: 0.25,
  maxLen: 1600,
  minimize: false,
  chunk: 256,
};

/** A random structured input without fast-check (for the mutation half). */
function liveInput(g: Rng): EngIn {
  const d = () => (g.chance(0.6) ? 0 : g.chance(0.8) ? g.int(6001) - 3000 : g.u32() | 0);
  return {
    kind: g.chance(0.3) ? 0 : g.int(8), v: g.int(3), conn: g.u32() >>> 1, flags: g.chance(0.8) ? [TH_ACK, TH_ACK | TH_PSH, TH_ACK | TH_FIN, TH_RST, TH_SYN][g.int(5)]! : g.int(256),
    seqDelta: d(), ackDelta: d(), tsDelta: g.int(50), window: g.int(65536), len: g.chance(0.5) ? 0 : g.int(1400),
    sack: [], advanceUs: 0, sendAsIs: g.chance(0.5), mtu: g.pick([0, 68, 576, 1400, 1500, g.int(65536)]), code: g.int(16), port: g.pick([7, 80, 81, 82, g.int(65536)]), srcLow: g.chance(0.7) ? 2 : g.int(256),
  };
}
