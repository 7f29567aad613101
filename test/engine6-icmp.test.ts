/**
 * ICMPv6 through the engine under virtual time (RFC 4443): echo with and without extension
 * headers, Packet Too Big on a live TCP connection (RFC 8201, RFC 5927), port unreachable,
 * Parameter Problem for an unknown next header and an unknown option (RFC 8200 4.2), the rules of
 * 2.4(e) (no error about an error, none to a multicast source) and the per-VS rate limit (2.4(f)).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World, pattern } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import { Ip6, parseIp6 } from '../protocols/ip/addr';
import { icmp6Checksum } from '../protocols/icmpv6';
import { writeIpv6 } from '../protocols/ipv6';
import { optsHdr } from './lib/ipv6-frames';
import { A6, B6, C6, PEER_MAC, frame6, echo6, icmp6, ns6, udp6, send, tap6, icmpOf, held, drops, Out6, solicitedNode, mac } from './lib/engine6';

const opts = { ipv6: true, engine: { ndp: { dadTransmits: 0 } } };
const R6 = parseIp6('fd00::fe');
const u32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

async function settle(w: World): Promise<void> {
  await w.run(() => false, 10_000);
}

function checksumOk(o: Out6): boolean {
  return icmp6Checksum(o.l4, 0, o.l4.length, parseIp6(o.src), parseIp6(o.dst)) === ((o.l4[2]! << 8) | o.l4[3]!);
}

test('echo: answered with the same identifier, sequence and data, with and without extension headers', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const data = pattern(100, 3);
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, l4: echo6(C6, A6, 0x1234, 7, data) }));
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, exts: [optsHdr(60, [1, 4, 0, 0, 0, 0])], l4: echo6(C6, A6, 0x1234, 8, data) }));
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, exts: [optsHdr(0, [1, 0])], l4: echo6(C6, A6, 0x1234, 9, data) }));
  await w.run(() => icmpOf(ta, 129).length === 3, 100_000);
  const r = icmpOf(ta, 129);
  assert.is(r.length, 3);
  for (const [i, o] of r.entries()) {
    assert.is(o.src, 'fd00::1');
    assert.is(o.dst, 'fd00::99');
    assert.is(o.ethDst, mac(PEER_MAC));
    assert.is(o.code, 0);
    assert.is((o.l4[4]! << 8) | o.l4[5]!, 0x1234);
    assert.is((o.l4[6]! << 8) | o.l4[7]!, 7 + i);
    assert.equal(Buffer.from(o.l4.subarray(8)), data);
    assert.ok(checksumOk(o), 'checksum');
  }
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

/** A live TCP/IPv6 connection: a is the server, b the client. */
async function tcpPair(w: World): Promise<{ srv: Socket; cli: Socket; got: Buffer[] }> {
  let srv: Socket | null = null;
  createServer(w.a.ctx(), (s: Socket) => { srv = s; }).listen(80);
  const got: Buffer[] = [];
  const cli = connect(w.b.ctx(), { port: 80, host: 'fd00::1' });
  cli.on('data', (d: Buffer) => got.push(d));
  assert.ok(await w.run(() => srv !== null && !cli.pending, 2_000_000), 'connected');
  return { srv: srv!, cli, got };
}

/** The first 48 bytes of a TCP/IPv6 segment src:sport → dst:dport with sequence number `seq`. */
function quote(src: Ip6, sport: number, dst: Ip6, dport: number, seq: number): Uint8Array {
  const q = new Uint8Array(48);
  writeIpv6(q, 0, src, dst, 6, 1440, 64);
  q[40] = sport >>> 8; q[41] = sport & 0xff; q[42] = dport >>> 8; q[43] = dport & 0xff;
  q[44] = seq >>> 24; q[45] = (seq >>> 16) & 0xff; q[46] = (seq >>> 8) & 0xff; q[47] = seq & 0xff;
  return q;
}

test('Packet Too Big on a live TCP connection lowers the path MTU (never below 1280) and the MSS (MTU − 60); a forged one changes nothing', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const { srv, cli, got } = await tcpPair(w);
  const vs = w.a.vs[0]!;
  const conn = srv.connection!.conn;
  assert.is(w.a.engine.mtuTo(vs, B6), 1500);
  const sport = srv.localPort!;
  const dport = srv.remotePort!;
  // Forged: quotes a port with no connection, and a sequence number outside the window.
  send(w, frame6(w, { src: R6, dst: A6, nh: 58, l4: icmp6(2, 0, R6, A6, 1300, quote(A6, sport, B6, dport + 1, conn.sndUna)) }));
  send(w, frame6(w, { src: R6, dst: A6, nh: 58, l4: icmp6(2, 0, R6, A6, 1300, quote(A6, sport, B6, dport, (conn.sndUna + 0x40000000) >>> 0)) }));
  await settle(w);
  assert.is(w.a.engine.mtuTo(vs, B6), 1500, 'a PTB quoting no connection changes nothing');
  assert.is(drops(w, 'a', 'icmp-no-flow') + drops(w, 'a', 'icmp-out-of-window'), 2, 'counted');
  assert.is(drops(w, 'a', 'icmp-no-flow'), 1);
  // Valid: MTU 1400.
  send(w, frame6(w, { src: R6, dst: A6, nh: 58, l4: icmp6(2, 0, R6, A6, 1400, quote(A6, sport, B6, dport, conn.sndUna)) }));
  await settle(w);
  assert.is(w.a.engine.mtuTo(vs, B6), 1400);
  assert.is((conn as unknown as { peerMss: number }).peerMss, 1340, 'MSS = MTU − 60 (RFC 8200 8.3)');
  // Below the IPv6 minimum: 1280 (RFC 8201 4).
  send(w, frame6(w, { src: R6, dst: A6, nh: 58, l4: icmp6(2, 0, R6, A6, 600, quote(A6, sport, B6, dport, conn.sndUna)) }));
  await settle(w);
  assert.is(w.a.engine.mtuTo(vs, B6), 1280);
  assert.is((conn as unknown as { peerMss: number }).peerMss, 1220);
  // What the connection sends now fits.
  const ta = tap6(w.link.a);
  const data = pattern(50_000, 9);
  srv.write(data);
  assert.ok(await w.run(() => got.reduce((n, b) => n + b.length, 0) === data.length, 5_000_000));
  assert.equal(Buffer.concat(got), data);
  const tcp = ta.filter((o) => o.nh === 6);
  assert.ok(tcp.length > 0);
  assert.ok(tcp.every((o) => o.raw.length - 18 <= 1280), `every TCP/IPv6 packet ≤ 1280 (max ${Math.max(...tcp.map((o) => o.raw.length - 18))})`);
  cli.destroy();
  srv.destroy();
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
});

test('Destination Unreachable code 4 quoting a SYN fails the connect ECONNREFUSED; a forged one (wrong sequence) does not', async () => {
  const w = twoHosts(opts);
  await settle(w);
  // Host a learns fd00::99 at PEER_MAC from its solicitation, so its SYNs leave at once.
  const g = solicitedNode(A6);
  send(w, frame6(w, { src: C6, dst: g, nh: 58, hop: 255, ethDst: Uint8Array.from([0x33, 0x33, 0xff, 0, 0, 1]), l4: ns6(A6, C6, g, PEER_MAC) }));
  await settle(w);
  const ta = tap6(w.link.a);
  const errs: (Error & { code?: string })[] = [];
  const c = connect(w.a.ctx(), { host: 'fd00::99', port: 81 });
  c.on('error', (e: Error) => errs.push(e));
  await w.run(() => ta.some((o) => o.nh === 6), 100_000);
  const syn = ta.find((o) => o.nh === 6)!;
  const sp = (syn.l4[0]! << 8) | syn.l4[1]!;
  const seq = u32(syn.l4, 4);
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, l4: icmp6(1, 4, C6, A6, 0, quote(A6, sp, C6, 81, (seq + 12345) >>> 0)) }));
  await settle(w);
  assert.is(errs.length, 0, 'out of window: ignored');
  assert.is(drops(w, 'a', 'icmp-out-of-window'), 1);
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, l4: icmp6(1, 4, C6, A6, 0, quote(A6, sp, C6, 81, seq)) }));
  await settle(w);
  assert.is(errs.length, 1);
  assert.is(errs[0]!.code, 'ECONNREFUSED');
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
});

test('UDP to a closed port: Destination Unreachable code 4 quoting the packet', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const pkt = frame6(w, { src: C6, dst: A6, nh: 17, l4: udp6(C6, 5555, A6, 9999, pattern(32, 1)) });
  send(w, pkt);
  await settle(w);
  const e = icmpOf(ta, 1);
  assert.is(e.length, 1);
  assert.is(e[0]!.code, 4);
  assert.is(e[0]!.src, 'fd00::1');
  assert.is(e[0]!.dst, 'fd00::99');
  assert.ok(checksumOk(e[0]!));
  assert.equal(Buffer.from(e[0]!.l4.subarray(8)), Buffer.from(pkt.subarray(18)), 'the whole invoking packet quoted');
  assert.is(drops(w, 'a', 'udp-no-socket'), 1);
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('Parameter Problem: unknown next header (code 1, pointer at the Next Header field), unknown option 10xxxxxx (code 2, also to multicast)', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  send(w, frame6(w, { src: C6, dst: A6, nh: 253, l4: new Uint8Array(16) }));
  await settle(w);
  let pp = icmpOf(ta, 4);
  assert.is(pp.length, 1);
  assert.is(pp[0]!.code, 1);
  assert.is(u32(pp[0]!.l4, 4), 6, 'pointer: the IPv6 header\'s Next Header field');
  // Behind a Destination Options header: the pointer is that header's Next Header field (offset 40).
  send(w, frame6(w, { src: C6, dst: A6, nh: 253, exts: [optsHdr(60, [1, 0])], l4: new Uint8Array(16) }));
  await settle(w);
  pp = icmpOf(ta, 4);
  assert.is(pp.length, 2);
  assert.is(u32(pp[1]!.l4, 4), 40);
  assert.ok(drops(w, 'a', 'ipv6-unknown-next-header') >= 2);
  // Unknown option, action 10: code 2, pointer at the option type (40 + 2).
  send(w, frame6(w, { src: C6, dst: A6, nh: 59, exts: [optsHdr(60, [0x8a, 2, 0, 0])], l4: new Uint8Array(0) }));
  await settle(w);
  pp = icmpOf(ta, 4);
  assert.is(pp.length, 3);
  assert.is(pp[2]!.code, 2);
  assert.is(u32(pp[2]!.l4, 4), 42);
  // To all nodes: action 10 still answered (RFC 8200 4.2), action 11 not.
  const all = parseIp6('ff02::1');
  const allMac = Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]);
  send(w, frame6(w, { src: C6, dst: all, ethDst: allMac, nh: 59, exts: [optsHdr(60, [0x8a, 2, 0, 0])], l4: new Uint8Array(0) }));
  send(w, frame6(w, { src: C6, dst: all, ethDst: allMac, nh: 59, exts: [optsHdr(60, [0xca, 2, 0, 0])], l4: new Uint8Array(0) }));
  await settle(w);
  pp = icmpOf(ta, 4);
  assert.is(pp.length, 4, 'one more (for action 10 only)');
  assert.is(pp[3]!.code, 2);
  assert.is(pp[3]!.dst, 'fd00::99');
  assert.ok(pp[3]!.src === 'fd00::1' || pp[3]!.src.startsWith('fe80::'), 'from a unicast address of ours');
  // Action 01: silently discarded, counted.
  const before = drops(w, 'a', 'ipv6-unknown-option');
  send(w, frame6(w, { src: C6, dst: A6, nh: 59, exts: [optsHdr(60, [0x4a, 2, 0, 0])], l4: new Uint8Array(0) }));
  await settle(w);
  assert.is(icmpOf(ta, 4).length, 4);
  assert.ok(drops(w, 'a', 'ipv6-unknown-option') > before);
  for (const o of icmpOf(ta, 4)) assert.ok(checksumOk(o));
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('no error about an ICMPv6 error (also behind extension headers), none to a multicast source', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const err = icmp6(1, 4, C6, A6, 0, quote(A6, 80, C6, 1234, 1));
  // An ICMPv6 error with an unknown option of action 10 in front of it: no Parameter Problem.
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, exts: [optsHdr(60, [0x8a, 2, 0, 0])], l4: err }));
  // An ICMPv6 error with an unknown next header in the chain... a Destination Unreachable of an error.
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, l4: err }));
  // From a multicast source: dropped as a bad source, never answered.
  const m6 = parseIp6('ff02::5');
  send(w, frame6(w, { src: m6, dst: A6, nh: 17, l4: udp6(m6, 5555, A6, 9999, pattern(8, 1)) }));
  send(w, frame6(w, { src: m6, dst: A6, nh: 253, l4: new Uint8Array(8) }));
  await settle(w);
  assert.is(ta.filter((o) => o.nh === 58 && o.type < 128).length, 0, 'no ICMPv6 error sent');
  assert.ok(drops(w, 'a', 'ipv6-bad-source') >= 2);
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('ICMPv6 errors are rate-limited per VS (counted), each VS with its own budget', async () => {
  const w = twoHosts({ ...opts, vlans: [10, 20], engine: { ...opts.engine, icmpRate: 100, icmpBurst: 10 } });
  await settle(w);
  const ta = tap6(w.link.a);
  for (let i = 0; i < 40; i++) send(w, frame6(w, { src: C6, dst: A6, nh: 17, l4: udp6(C6, 5000 + i, A6, 9999, pattern(8, i)) }));
  await w.run(() => false, 1000);
  assert.is(icmpOf(ta, 1).filter((o) => o.vlan === 10).length, 10, 'the burst');
  assert.is(drops(w, 'a', 'icmpv6-rate-limited') + drops(w, 'a', 'icmp-rate-limited'), 30, 'the rest counted');
  assert.is(drops(w, 'a', 'icmpv6-rate-limited'), 30, 'as ICMPv6 rate-limited');
  for (let i = 0; i < 5; i++) send(w, frame6(w, { src: C6, dst: A6, vlan: 20, nh: 17, l4: udp6(C6, 6000 + i, A6, 9999, pattern(8, i)) }));
  await w.run(() => false, 1000);
  assert.is(icmpOf(ta, 1).filter((o) => o.vlan === 20).length, 5, 'another VS has its own budget');
  await w.run(() => false, 1_000_000);
  send(w, frame6(w, { src: C6, dst: A6, nh: 17, l4: udp6(C6, 7000, A6, 9999, pattern(8, 1)) }));
  await w.run(() => false, 1000);
  assert.is(icmpOf(ta, 1).filter((o) => o.vlan === 10).length, 11, 'tokens come back with time');
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test.run();
