/**
 * TCP and UDP to a VIP through a virtual-time world: a Stack (createStack, memory device) whose VS
 * has VIPs, and a peer host that is both the client (203.0.113.7, 2001:db8:c::7) and the VS's
 * default gateway (10.1.1.2, fd00::2). The client's packets to a VIP are put in a tunnel by "the
 * load balancer" on the wire (outer source 10.1.1.100 or fd00::100, the load balancer's MAC) to the
 * VS's interface address; the VS's answers leave from the VIP, routed to the gateway.
 *
 * The MSS the VS offers on a VIP leaves room for the tunnel header (RFC 9293 3.7.1: the MSS is
 * the largest segment the receiver can take; what the load balancer adds must fit the link): MTU
 * less the overhead less 40 (IPv4) or 60 (IPv6). An over-long tunnel frame cannot cross the wire
 * here (the memory link refuses frames beyond its MTU), so a byte-exact transfer is the proof.
 * Path MTU (RFC 1191, RFC 8201): an ICMP "fragmentation needed" / Packet Too Big about a segment
 * from the VIP reaches the VS the way all VIP traffic does, through the load balancer.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { createMemoryLink, MemoryLink } from '../driver/memory';
import { Burst } from '../driver/types';
import { Engine } from '../stack/engine';
import { Runtime } from '../stack/runtime';
import { createStack, Stack } from '../stack/stack';
import type { StackConfig } from '../stack/control/config';
import { connect, Socket } from '../stack/api/net';
import { addrToString, parseAddr } from '../protocols/ip/addr';
import { TH_ACK, TH_SYN } from '../protocols/tcp/types';
import type { TcpConnection } from '../protocols/tcp/connection';
import { VirtualClock } from './lib/virtual-loop';
import { echoRequest, encap, eth, icmpError, LB_MAC, macText, tapWire, Wire } from './lib/decap-frames';

const VIP4 = '198.51.100.10', VIP6 = '2001:db8::10';
const CL4 = '203.0.113.7', CL6 = '2001:db8:c::7';
const ADDR4 = '10.1.1.1', ADDR6 = 'fd00::1';
const LB4 = '10.1.1.100', LB6 = 'fd00::100';
const ROUTER4 = '192.0.2.1', ROUTER6 = '2001:db8:f::1';
/** A Destination Options header holding a Tunnel Encapsulation Limit option (RFC 2473 5.1: type 4, length 1, limit 4) and PadN. */
const ENCAP_LIMIT = { type: 60, body: Uint8Array.from([0, 0, 4, 1, 4, 1, 1, 0]) };
const SECRET = new Uint8Array(16).map((_, i) => i * 11 + 5);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Reproducible bytes. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; b[i] = x >>> 24; }
  return b;
}

interface Dsr {
  stack: Stack;
  link: MemoryLink;
  peer: Engine;
  /** Every frame the stack transmitted, decoded. */
  fromStack: Wire[];
  /** Every frame the peer side put on the wire (after the load balancer's encapsulation), decoded. */
  toStack: Wire[];
  run(done: () => boolean, maxUs?: number): Promise<boolean>;
  /** Puts raw frames on the wire toward the stack. */
  inject(frames: Uint8Array[]): void;
  peerCtx(): { engine: Engine; vs: ReturnType<Engine['vs']>; now: () => number };
  stackMac: Uint8Array;
}

/**
 * The world. `outer`: the family of the load balancer's tunnel (its address 10.1.1.100 or
 * fd00::100); `decap`: the VS's decap settings (default: from that load balancer alone).
 */
function dsr(o: { outer?: 4 | 6; decap?: { from: string[]; overhead?: number }; encapsulate?: boolean; encapLimit?: boolean } = {}): Dsr {
  const outer = o.outer ?? 4;
  const link = createMemoryLink({ frameCount: 4096, wireFrames: 4096 });
  const clock = new VirtualClock();
  const config = {
    name: 'dsr', control: false, engine: { dadTransmits: 0 },
    devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: [{
      name: 'a',
      links: [{ device: 'eth0', addresses: [`${ADDR4}/24`, `${ADDR6}/64`] }],
      routes: [{ dst: 'default', via: '10.1.1.2' }, { dst: '::/0', via: 'fd00::2' }],
      vips: [VIP4, VIP6],
      decap: o.decap ?? { from: [outer === 4 ? `${LB4}/32` : `${LB6}/128`] },
    }],
  } as StackConfig;
  const stack = createStack(config, { drivers: { eth0: link.a }, secret: SECRET, log: () => undefined });
  stack.engine.clock = clock.read;
  stack.runtime.engineKick = clock.kick;
  const peer = new Engine({ secret: SECRET, ndp: { dadTransmits: 0 }, onOutput: clock.kick });
  peer.addDevice({ name: 'eth0', pool: link.b.pool, mac: link.b.mac, mtu: link.b.mtu });
  const pv = peer.createVs('p');
  peer.addLink(pv, { device: 'eth0' });
  for (const a of ['10.1.1.2/24', 'fd00::2/64', `${CL4}/32`, `${CL6}/128`]) peer.addAddress(pv, 'eth0', a);
  // The client reaches the VIPs through the VS's address (the load balancer stands on the wire).
  peer.addRoute(pv, { dst: `${VIP4}/32`, via: ADDR4, src: CL4 });
  peer.addRoute(pv, { dst: `${VIP6}/128`, via: ADDR6, src: CL6 });
  const peerRt = new Runtime(peer, [link.b], { clock: clock.read });
  // The load balancer: the client's packets to a VIP go in a tunnel to the VS's address.
  const ep = link.b;
  const toStack = tapWire(ep); // what goes on the wire: recorded after the tunnel is put on
  const txOrig = ep.tx.bind(ep);
  ep.tx = (b: Burst, now: number) => {
    const bytes = ep.pool.bytes;
    for (let i = 0; i < b.n && o.encapsulate !== false; i++) {
      const off = b.off[i]!;
      const et = (bytes[off + 12]! << 8) | bytes[off + 13]!;
      if (et !== 0x0800 && et !== 0x86dd) continue;
      const l3 = off + 14;
      const v4 = et === 0x0800;
      const dst = addrToString(parseAddr(v4 ? Array.from(bytes.subarray(l3 + 16, l3 + 20)).join('.') : ip6Text(bytes, l3 + 24)));
      if (dst !== VIP4 && dst !== VIP6) continue;
      const len = v4 ? (bytes[l3 + 2]! << 8) | bytes[l3 + 3]! : 40 + ((bytes[l3 + 4]! << 8) | bytes[l3 + 5]!);
      const frame = eth(-1, bytes.slice(off, off + 6), LB_MAC,
        encap(outer === 4 ? LB4 : LB6, outer === 4 ? ADDR4 : ADDR6, bytes.slice(l3, l3 + len), o.encapLimit ? { exts: [ENCAP_LIMIT] } : {}));
      const f = ep.pool.alloc();
      assert.ok(f >= 0, 'a frame for the tunnel packet');
      const at = ep.pool.dataStart(f);
      ep.pool.bytes.set(frame, at);
      ep.pool.free(b.frame[i]!);
      b.frame[i] = f; b.off[i] = at; b.len[i] = frame.length;
    }
    return txOrig(b, now);
  };
  const fromStack = tapWire(link.a);
  return {
    stack, link, peer, fromStack, toStack, stackMac: link.a.mac,
    run: (done, maxUs) => clock.run([stack.runtime, peerRt], link, done, maxUs, true),
    inject(frames) {
      const burst = new Burst(frames.length);
      for (const f of frames) {
        const x = ep.pool.alloc();
        const off = ep.pool.dataStart(x);
        ep.pool.bytes.set(f, off);
        burst.push(x, off, f.length);
      }
      txOrig(burst, clock.now);
    },
    peerCtx: () => ({ engine: peer, vs: pv, now: clock.read }),
  };
}

function ip6Text(b: Uint8Array, off: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[off + i]! << 8) | b[off + i + 1]!).toString(16));
  return parts.join(':');
}

const PEER_MAC = (w: Dsr) => macText(w.link.b.mac);

/** Nothing the VS sent went to the load balancer (its MAC or its address), nor asked for it. */
function neverToLoadBalancer(w: Dsr): void {
  for (const x of w.fromStack) {
    assert.is.not(x.ethDst, macText(LB_MAC), 'a frame to the load balancer\'s MAC');
    assert.ok(x.ip?.dst !== LB4 && x.ip?.dst !== LB6, 'a packet to the load balancer');
    assert.ok(x.arp?.tpa !== LB4 && x.nsTarget !== LB6, 'a resolution of the load balancer');
  }
}

/** A server on the VS at `vip`:80 that takes what comes and answers `down`, and a client on the peer sending `up`. */
async function transfer(w: Dsr, vip: string, up: Buffer, down: Buffer, maxUs = 60_000_000): Promise<{ ok: boolean; atServer: Buffer; atClient: Buffer; server: Socket | null }> {
  const atServer: Buffer[] = [];
  const atClient: Buffer[] = [];
  let serverDone = false;
  let clientDone = false;
  let server: Socket | null = null;
  w.stack.vs('a').createServer((s: Socket) => {
    server = s;
    s.on('data', (d: Buffer) => atServer.push(d));
    s.on('end', () => { serverDone = true; });
    s.end(down);
  }).listen(80, vip);
  const c = connect(w.peerCtx(), 80, vip, () => c.end(up));
  c.on('data', (d: Buffer) => atClient.push(d));
  c.on('end', () => { clientDone = true; });
  const ok = await w.run(() => serverDone && clientDone, maxUs);
  await w.run(() => false, 1_000_000); // the last ACKs and FINs arrive
  return { ok, atServer: Buffer.concat(atServer), atClient: Buffer.concat(atClient), server };
}

const isSynAck = (x: Wire) => x.tcp !== undefined && (x.tcp.flags & (TH_SYN | TH_ACK)) === (TH_SYN | TH_ACK);

test('TCP to an IPv4 VIP through an IPIP load balancer: handshake, SYN-ACK and data from the VIP routed to the gateway, MSS 1500 - 20 - 40, byte-exact both ways', async () => {
  const w = dsr();
  const up = pattern(300_000, 1);
  const down = pattern(200_000, 2);
  const r = await transfer(w, VIP4, up, down);
  assert.ok(r.ok, 'both ends saw the other\'s end');
  assert.is(sha(r.atServer), sha(up), `upload byte-exact (${r.atServer.length} of ${up.length})`);
  assert.is(sha(r.atClient), sha(down), `download byte-exact (${r.atClient.length} of ${down.length})`);
  const synAcks = w.fromStack.filter(isSynAck);
  assert.is(synAcks.length, 1);
  assert.equal([synAcks[0]!.ip!.src, synAcks[0]!.ip!.dst, synAcks[0]!.ethDst], [VIP4, CL4, PEER_MAC(w)], 'SYN-ACK from the VIP, to the gateway');
  assert.is(synAcks[0]!.tcp!.mss, 1500 - 20 - 40, 'MSS: the link MTU less the IPv4 tunnel header, less 40');
  // Every segment of the connection from the VS: from the VIP, to the gateway's MAC.
  const segs = w.fromStack.filter((x) => x.tcp !== undefined);
  assert.ok(segs.length > 100);
  assert.ok(segs.every((x) => x.ip!.src === VIP4 && x.ip!.dst === CL4 && x.ethDst === PEER_MAC(w)));
  neverToLoadBalancer(w);
  // Ours leave direct, not in the tunnel: they may fill the path (RFC 9293 3.7.1: the send MSS is
  // the peer's MSS and the path's, not the smaller one we offered).
  assert.is(Math.max(...segs.map((x) => x.ip!.len)), 1500, 'full-sized segments from the VIP fill the link');
  // Every segment of the client came through the tunnel, none larger than the link.
  const tunnelled = w.toStack.filter((x) => x.ip?.proto === 4);
  assert.ok(tunnelled.length > 200);
  assert.ok(tunnelled.every((x) => x.ip!.src === LB4 && x.ip!.dst === ADDR4 && x.ethSrc === macText(LB_MAC) && x.ip!.len <= 1500));
  assert.is(Math.max(...tunnelled.map((x) => x.ip!.len)), 1500, 'full-sized client segments fill the link exactly');
  assert.equal(w.link.b.stats().drops, {}, 'no frame too big for the wire');
  const row = (w.stack.show('vips') as { vs: string; decapsulated: number; refusedSource: number }[])[0]!;
  assert.is(row.decapsulated, tunnelled.length, 'every tunnel packet counted as decapsulated');
  assert.is(row.refusedSource, 0);
  w.stack.close();
});

const MSS_CASES: { name: string; outer: 4 | 6; vip: string; decap: { from: string[]; overhead?: number }; mss: number; encapLimit?: boolean }[] = [
  { name: 'IPv4 VIP, IPv4 load balancers (default overhead 20)', outer: 4, vip: VIP4, decap: { from: [`${LB4}/32`, '10.9.0.0/16'] }, mss: 1500 - 20 - 40 },
  { name: 'IPv6 VIP, IPv4 load balancer (default overhead 20)', outer: 4, vip: VIP6, decap: { from: [`${LB4}/32`] }, mss: 1500 - 20 - 60 },
  { name: 'IPv6 VIP, an IPv6 load balancer among the others (default overhead 40)', outer: 6, vip: VIP6, decap: { from: [`${LB4}/32`, `${LB6}/128`] }, mss: 1500 - 40 - 60 },
  { name: 'IPv4 VIP, IPv6 load balancer (default overhead 40)', outer: 6, vip: VIP4, decap: { from: [`${LB6}/128`] }, mss: 1500 - 40 - 40 },
  { name: 'IPv4 VIP, load balancers of both families, the SYN in IPIP (its outer header, 20)', outer: 4, vip: VIP4, decap: { from: [`${LB4}/32`, `${LB6}/128`] }, mss: 1500 - 20 - 40 },
  { name: 'IPv4 VIP, IPv4 load balancer, overhead 100 configured', outer: 4, vip: VIP4, decap: { from: [`${LB4}/32`], overhead: 100 }, mss: 1500 - 100 - 40 },
  { name: 'IPv6 VIP, IPv6 load balancer adding a Tunnel Encapsulation Limit option (RFC 2473 5.1), overhead 48 configured', outer: 6, vip: VIP6,
    decap: { from: [`${LB6}/128`], overhead: 48 }, mss: 1500 - 48 - 60, encapLimit: true },
];

for (const c of MSS_CASES) {
  test(`MSS offered on a VIP: ${c.name}: ${c.mss}; a transfer through the tunnel is byte-exact`, async () => {
    const w = dsr({ outer: c.outer, decap: c.decap, encapLimit: c.encapLimit });
    const up = pattern(60_000, 3);
    const down = pattern(40_000, 4);
    const r = await transfer(w, c.vip, up, down);
    assert.ok(r.ok);
    assert.is(sha(r.atServer), sha(up));
    assert.is(sha(r.atClient), sha(down));
    const sa = w.fromStack.filter(isSynAck);
    assert.is(sa.length, 1);
    assert.is(sa[0]!.tcp!.mss, c.mss);
    assert.is(sa[0]!.ip!.src, c.vip);
    const tunnelled = w.toStack.filter((x) => x.ip?.proto === 4 || x.ip?.proto === 41);
    assert.ok(tunnelled.length > 40 && tunnelled.every((x) => x.ip!.len <= 1500));
    // The client's full-sized segments (MSS bytes of data and options after the IP and TCP headers) in the tunnel.
    const tunnel = (c.outer === 4 ? 20 : 40) + (c.encapLimit ? 8 : 0);
    assert.is(Math.max(...tunnelled.map((x) => x.ip!.len)), c.mss + (c.vip === VIP6 ? 60 : 40) + tunnel);
    assert.equal(w.link.b.stats().drops, {});
    neverToLoadBalancer(w);
    w.stack.close();
  });
}

test('a connection to the interface address (no VIP) offers the whole path: MTU - 40', async () => {
  const w = dsr();
  let up = false;
  w.stack.vs('a').createServer(() => undefined).listen(81);
  const c = connect(w.peerCtx(), 81, ADDR4, () => { up = true; });
  assert.ok(await w.run(() => up, 2_000_000));
  const sa = w.fromStack.filter(isSynAck);
  assert.equal([sa.length, sa[0]!.ip!.src, sa[0]!.tcp!.mss], [1, ADDR4, 1460]);
  c.destroy();
  w.stack.close();
});

/** A connection to `vip`:80 with the server sending bulk data; returns when full-sized segments are in flight. */
async function bulk(w: Dsr, vip: string, client: string): Promise<{ conn: TcpConnection; server: Socket; got: () => number; cport: number }> {
  let server: Socket | null = null;
  let n = 0;
  w.stack.vs('a').createServer((s: Socket) => { server = s; }).listen(80, vip);
  const c = connect(w.peerCtx(), 80, vip);
  c.on('data', (d: Buffer) => { n += d.length; });
  assert.ok(await w.run(() => server !== null, 2_000_000), 'connected');
  const vs = w.stack.engine.vs('a');
  const cport = c.localPort!;
  const e = w.stack.engine.tcp.find(vs, parseAddr(vip), 80, parseAddr(client), cport);
  assert.ok(e, 'the connection of the VIP');
  (server! as Socket).write(pattern(400_000, 5));
  const full = () => w.fromStack.filter((x) => x.tcp !== undefined && x.tcp.len > 1000).length >= 10;
  assert.ok(await w.run(full, 2_000_000), 'data segments sent');
  assert.ok(e!.conn.sndMax !== e!.conn.sndUna, 'data in flight');
  return { conn: e!.conn, server: server!, got: () => n, cport };
}

/** The segment the VS sent with sequence number `seq` (the one a router would quote). */
function sentSegment(w: Dsr, seq: number): Wire {
  const s = [...w.fromStack].reverse().find((x) => x.tcp !== undefined && x.tcp.seq === seq && x.tcp.len > 0);
  assert.ok(s, `a segment with sequence number ${seq}`);
  return s!;
}

for (const v6 of [false, true]) {
  const [vip, client, router, mtu] = v6 ? [VIP6, CL6, ROUTER6, 1300] : [VIP4, CL4, ROUTER4, 1200];
  const kind = v6 ? 'ICMPv6 Packet Too Big (RFC 8201)' : 'ICMP fragmentation needed (RFC 1191)';
  const err = (q: Uint8Array) => v6 ? icmpError(router, vip, 2, 0, mtu, q) : icmpError(router, vip, 3, 4, mtu, q);

  test(`${kind} about a segment from the VIP, through the load balancer: the path MTU drops to ${mtu} and the connection's segments shrink`, async () => {
    const w = dsr({ outer: v6 ? 6 : 4 });
    const { conn, server, got } = await bulk(w, vip, client);
    const vs = w.stack.engine.vs('a');
    const before = conn.sndMss;
    const q = sentSegment(w, conn.sndUna).ip!.packet;
    assert.ok(q.length > mtu && q.length <= 1500, `the quoted segment (${q.length} bytes) is larger than ${mtu}`);
    const mark = w.fromStack.length;
    // The router's error goes to the VIP: the load balancer owns it and tunnels it to the VS.
    w.inject([eth(-1, w.stackMac, LB_MAC, encap(v6 ? LB6 : LB4, v6 ? ADDR6 : ADDR4, err(q)))]);
    await w.run(() => false, 1000);
    assert.is(w.stack.engine.mtuTo(vs, parseAddr(client)), mtu, 'path MTU to the client');
    assert.ok(conn.sndMss < before && conn.sndMss <= mtu - (v6 ? 60 : 40), `MSS ${before} → ${conn.sndMss}`);
    // The rest of the data arrives in segments that fit the path; full-sized ones fill it exactly.
    server.end(pattern(100_000, 6));
    assert.ok(await w.run(() => got() === 500_000, 60_000_000), `received ${got()}`);
    const after = w.fromStack.slice(mark).filter((x) => x.tcp !== undefined && x.tcp.len > 0);
    assert.ok(after.length > 100);
    assert.ok(after.every((x) => x.ip!.len <= mtu), `largest after: ${Math.max(...after.map((x) => x.ip!.len))}`);
    assert.is(Math.max(...after.map((x) => x.ip!.len)), mtu);
    assert.ok(after.every((x) => x.ip!.src === vip && x.ethDst === PEER_MAC(w)));
    assert.is(vs.counters.toJSON().drops.reasons['icmp-no-flow'] ?? 0, 0);
    neverToLoadBalancer(w);
    w.stack.close();
  });

  test(`${kind} about a segment from the VIP that does not come through the load balancer changes nothing`, async () => {
    const w = dsr({ outer: v6 ? 6 : 4 });
    const { conn } = await bulk(w, vip, client);
    const vs = w.stack.engine.vs('a');
    const before = conn.sndMss;
    const q = sentSegment(w, conn.sndUna).ip!.packet;
    const dropsBefore = { ...vs.counters.toJSON().drops.reasons };
    // Straight to the VIP (no tunnel), and to the VS's interface address quoting the VIP's segment.
    const toIf = v6 ? icmpError(router, ADDR6, 2, 0, mtu, q) : icmpError(router, ADDR4, 3, 4, mtu, q);
    w.inject([eth(-1, w.stackMac, w.link.b.mac, err(q)), eth(-1, w.stackMac, w.link.b.mac, toIf)]);
    await w.run(() => false, 1000);
    assert.is(w.stack.engine.mtuTo(vs, parseAddr(client)), 1500, 'path MTU unchanged');
    assert.is(conn.sndMss, before, 'MSS unchanged');
    const d = vs.counters.toJSON().drops.reasons;
    const notOurs = v6 ? 'ipv6-not-our-address' : 'ipv4-not-our-address';
    assert.is((d[notOurs] ?? 0) - (dropsBefore[notOurs] ?? 0), 1, 'to the VIP without a tunnel: not an address of the VS');
    assert.is((d['icmp-no-flow'] ?? 0) - (dropsBefore['icmp-no-flow'] ?? 0), 1, 'to the interface address: quotes no flow of that address');
    w.stack.close();
  });
}

test('a TCP SYN to a VIP port without a listener: the RST leaves from the VIP, routed', async () => {
  const w = dsr();
  let err: (Error & { code?: string }) | null = null;
  const c = connect(w.peerCtx(), 9, VIP4);
  c.on('error', (e: Error) => { err = e; });
  assert.ok(await w.run(() => err !== null, 5_000_000));
  assert.is(err!.code, 'ECONNREFUSED');
  const rst = w.fromStack.filter((x) => x.tcp !== undefined);
  assert.is(rst.length, 1);
  assert.equal([rst[0]!.ip!.src, rst[0]!.ip!.dst, rst[0]!.ethDst, rst[0]!.tcp!.sport], [VIP4, CL4, PEER_MAC(w), 9]);
  neverToLoadBalancer(w);
  w.stack.close();
});

test('UDP and ping to a VIP through the load balancer, from the peer\'s own sockets: answered from the VIP', async () => {
  const w = dsr({ outer: 6, decap: { from: [`${LB6}/128`] } });
  const s = w.stack.vs('a').createSocket('udp6');
  s.on('message', (m: Buffer, r) => s.send(m, r.port, r.address));
  s.bind(7);
  const p4 = w.peer.createUdpSocket(w.peer.vs('p'), { type: 'udp4' });
  const p6 = w.peer.createUdpSocket(w.peer.vs('p'), { type: 'udp6' });
  const got: string[] = [];
  p4.on('message', (m: Buffer, r) => got.push(`${m} from ${r.address}:${r.port}`));
  p6.on('message', (m: Buffer, r) => got.push(`${m} from ${r.address}:${r.port}`));
  p4.send('four', 7, VIP4);
  p6.send('six', 7, VIP6);
  assert.ok(await w.run(() => got.length === 2, 2_000_000), got.join());
  assert.equal(got.sort(), [`four from ${VIP4}:7`, `six from ${VIP6}:7`]);
  // ICMP echo to both VIPs, hand-made (the client's address as source), through the tunnel.
  w.inject([
    eth(-1, w.stackMac, LB_MAC, encap(LB6, ADDR6, echoRequest(CL4, VIP4, 77, 1, new Uint8Array(32)))),
    eth(-1, w.stackMac, LB_MAC, encap(LB6, ADDR6, echoRequest(CL6, VIP6, 77, 2, new Uint8Array(32)))),
  ]);
  await w.run(() => false, 1000);
  const replies = w.fromStack.filter((x) => x.icmp !== undefined && (x.icmp.type === 0 || x.icmp.type === 129));
  assert.equal(replies.map((x) => [x.ip!.src, x.ip!.dst, x.ethDst, x.icmp!.rest & 0xffff]).sort(),
    [[VIP4, CL4, PEER_MAC(w), 1], [VIP6, CL6, PEER_MAC(w), 2]]);
  neverToLoadBalancer(w);
  p4.close(); p6.close(); s.close();
  w.stack.close();
});

test('TCP from the VS to its own VIP stays inside the VS (both families): byte-exact, nothing on the wire', async () => {
  const w = dsr();
  await w.run(() => false, 10_000);
  for (const vip of [VIP4, VIP6]) {
    const mark = w.fromStack.length;
    let at = Buffer.alloc(0);
    w.stack.vs('a').createServer((s: Socket) => { s.on('data', (d: Buffer) => { at = Buffer.concat([at, d]); }); }).listen(9000, vip);
    const data = pattern(100_000, 7);
    const c = w.stack.vs('a').net.connect(9000, vip, () => c.end(data));
    assert.ok(await w.run(() => at.length === data.length, 5_000_000), `${vip}: ${at.length} bytes`);
    assert.is(sha(at), sha(data));
    assert.equal(w.fromStack.slice(mark).filter((x) => x.ip !== undefined && x.ip.dst === vip || x.ip?.src === vip), []);
  }
  w.stack.close();
});

test('listen on a VIP works; listen on an address that is neither an interface address nor a VIP is EADDRNOTAVAIL', async () => {
  const w = dsr();
  const events: string[] = [];
  for (const addr of [VIP4, VIP6, '198.51.100.11', '2001:db8::11']) {
    const srv = w.stack.vs('a').createServer(() => undefined);
    srv.on('listening', () => events.push(`${addr} listening`));
    srv.on('error', (e: Error & { code?: string }) => events.push(`${addr} ${e.code}`));
    srv.listen(8080, addr);
  }
  await w.run(() => events.length === 4, 1000);
  assert.equal(events.sort(), [`2001:db8::10 listening`, '2001:db8::11 EADDRNOTAVAIL', '198.51.100.10 listening', '198.51.100.11 EADDRNOTAVAIL'].sort());
  // And a UDP socket on a VIP, through the stack's API.
  const u = w.stack.vs('a').createSocket('udp4');
  let bound = '';
  u.bind(5353, VIP4, () => { bound = `${u.address().address}:${u.address().port}`; });
  await w.run(() => bound !== '', 1000);
  assert.is(bound, `${VIP4}:5353`);
  u.close();
  w.stack.close();
});

test.run();
