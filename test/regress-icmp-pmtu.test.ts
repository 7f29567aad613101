/**
 * Regression (issue 8): one forged ICMP "fragmentation needed" took down every VS on the device. It
 * was accepted without checking that it quoted a live connection, a next-hop MTU of 68 was stored,
 * every later SYN from that host computed MSS 28 and threw. ICMP errors are now validated against
 * live state (RFC 5927 section 4: the quoted connection must exist and its quoted sequence number lie
 * in SND.UNA..SND.NXT; a UDP error must quote a bound socket), the path MTU is floored at 552 as
 * Linux does (net.ipv4.route.min_pmtu), only ever lowered (RFC 1191), and a lowered path MTU lowers
 * the MSS of the connection that was quoted. Two hosts over the memory link, virtual time.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World } from './lib/world';
import { A, B, drops, held, icmpErrorFrame, inject, injectFrame, quote, tap } from './lib/inject';
import { connect, createServer, Socket } from '../stack/api/net';
import { TcpState, TH_ACK, TH_SYN } from '../protocols/tcp/types';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, parseIpv4 } from '../protocols/ipv4';
import {
  ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_HOST_UNREACH, ICMP_PORT_UNREACH, ICMP_TIME_EXCEEDED,
} from '../protocols/icmp';
import type { TcpConnection } from '../protocols/tcp/connection';

const FN = [ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED] as const;

/** A server on host a (port 80) with one connection from host b; the server has data in flight. */
async function established(w: World, port = 80): Promise<{ conn: TcpConnection; cport: number; server: Socket; got: () => number }> {
  let server: Socket | null = null;
  let n = 0;
  createServer(w.a.ctx(), (s: Socket) => { server = s; }).listen(port);
  const c = connect(w.b.ctx(), port, '10.1.1.1');
  c.on('data', (d: Buffer) => { n += d.length; });
  assert.ok(await w.run(() => server !== null, 1_000_000), 'connected');
  const conn = (server! as Socket).connection!.conn;
  return { conn, cport: conn.tuple.remotePort, server: server!, got: () => n };
}

/** One more connection to a listener already on host a; returns the server side. */
async function another(w: World, port = 80): Promise<TcpConnection> {
  const c = connect(w.b.ctx(), port, '10.1.1.1');
  let up = false;
  c.on('connect', () => { up = true; });
  assert.ok(await w.run(() => up, 1_000_000));
  const lport = c.localPort!;
  const e = w.a.engine.tcp.find(w.a.vs[0]!, A, port, B, lport)!;
  return e.conn;
}

async function send(w: World, frame: Uint8Array): Promise<void> {
  injectFrame(w, frame);
  await w.run(() => false, 5_000);
}

test('a forged frag-needed (MTU 68, 8, 0) quoting no connection changes no path MTU, is counted, and SYNs still get a full MSS', async () => {
  const w = twoHosts();
  const fromA = tap(w.link.a);
  createServer(w.a.ctx(), (s: Socket) => { s.on('data', (d) => s.write(d)); }).listen(80);
  await w.run(() => false, 1000);
  const vs = w.a.vs[0]!;
  for (const mtu of [68, 8, 0]) {
    await send(w, icmpErrorFrame(w, ...FN, mtu, quote(IPPROTO_TCP, A, 80, B, 40000 + mtu, 123456)));
  }
  assert.is(vs.pmtu.get(B), undefined, 'no path MTU stored for the quoted host');
  assert.is(w.a.engine.mtuTo(vs, B), 1500);
  assert.is(drops(w, 'a', 'icmp-no-flow'), 3);
  // A real client still connects and is echoed (host a learns b's MAC on the way).
  let echoed = '';
  const c = connect(w.b.ctx(), 80, '10.1.1.1', () => c.write('hello'));
  c.on('data', (d) => { echoed += d; });
  assert.ok(await w.run(() => echoed === 'hello', 5_000_000), `echo: ${echoed}`);
  // The attack as reported: thousands of SYNs from that host after the forged error. Each is
  // answered (SYN-ACK or cookie) with the MSS of a 1500-byte path, and nothing throws or leaks.
  const mark = fromA.length;
  for (let p = 0; p < 2000; p++) inject(w, { sport: 20000 + p, dport: 80, flags: TH_SYN, seq: 7000 + p, mss: 1460 });
  await w.run(() => false, 200_000);
  const synAcks = fromA.slice(mark).filter((s) => s.flags === (TH_SYN | TH_ACK));
  assert.is(new Set(synAcks.map((s) => s.dport)).size, 2000, 'every SYN answered');
  assert.ok(synAcks.every((s) => s.mss === 1460), 'MSS of the real path');
  assert.is(w.a.engine.internalErrors, 0);
  c.destroy();
  await w.run(() => false, 200_000_000); // the half-open entries and TIME_WAITs go away
  assert.equal(held(w), [0, 0], 'every frame back in the pool');
});

test('a frag-needed quoting a live connection with a sequence number outside SND.UNA..SND.NXT changes nothing', async () => {
  const w = twoHosts();
  const fromA = tap(w.link.a);
  const { conn, cport, server } = await established(w);
  server.write(Buffer.alloc(60_000, 1));
  await w.run(() => fromA.some((s) => s.len === 1448), 1_000_000);
  assert.ok(conn.sndMax !== conn.sndUna, 'data in flight');
  assert.is(conn.sndMss, 1448);
  const vs = w.a.vs[0]!;
  const outside = [(conn.sndUna - 1) >>> 0, (conn.sndMax + 1) >>> 0, (conn.sndUna + 0x40000000) >>> 0, (conn.sndUna - 0x7000000) >>> 0];
  for (const seq of outside) await send(w, icmpErrorFrame(w, ...FN, 1000, quote(IPPROTO_TCP, A, 80, B, cport, seq)));
  assert.is(vs.pmtu.get(B), undefined, 'path MTU unchanged');
  assert.is(conn.sndMss, 1448, 'MSS unchanged');
  assert.is(drops(w, 'a', 'icmp-out-of-window'), outside.length);
  // The same error quoting a sequence number in flight is believed (RFC 5927 4.1 is not "drop all").
  await send(w, icmpErrorFrame(w, ...FN, 1000, quote(IPPROTO_TCP, A, 80, B, cport, conn.sndUna)));
  assert.is(vs.pmtu.get(B)?.mtu, 1000);
  assert.is(conn.sndMss, 1000 - 40 - 12);
});

test('next-hop MTU 68, 8 or 0 from a live connection stores 552 (min_pmtu), its MSS follows, and new SYNs get MSS 512', async () => {
  for (const mtu of [68, 8, 0]) {
    const w = twoHosts();
    const fromA = tap(w.link.a);
    const { conn, cport, server, got } = await established(w);
    server.write(Buffer.alloc(50_000, 2));
    await w.run(() => fromA.some((s) => s.len === 1448), 1_000_000);
    await send(w, icmpErrorFrame(w, ...FN, mtu, quote(IPPROTO_TCP, A, 80, B, cport, conn.sndUna)));
    const vs = w.a.vs[0]!;
    assert.is(vs.pmtu.get(B)?.mtu, 552, `MTU ${mtu} is stored as 552`);
    assert.is(w.a.engine.mtuTo(vs, B), 552);
    assert.is(conn.sndMss, 552 - 40 - 12, 'the quoted connection sends smaller segments');
    // The rest of the data arrives in segments that fit the path.
    const mark = fromA.length;
    server.end(Buffer.alloc(100_000, 3));
    assert.ok(await w.run(() => got() === 150_000, 30_000_000), `received ${got()}`);
    assert.ok(fromA.slice(mark).filter((s) => s.len > 0 && s.seq !== conn.sndUna).every((s) => s.frameLen <= 18 + 552));
    // A new connection from that host: SYN-ACK with MSS 552 - 40, no exception anywhere.
    const m2 = fromA.length;
    inject(w, { sport: 33333, dport: 80, flags: TH_SYN, seq: 99, mss: 1460 });
    await w.run(() => false, 10_000);
    const sa = fromA.slice(m2).find((s) => s.flags === (TH_SYN | TH_ACK) && s.dport === 33333);
    assert.ok(sa, 'SYN answered');
    assert.is(sa!.mss, 512);
    assert.is(w.a.engine.internalErrors, 0);
  }
});

test('an MTU at or above the path MTU is ignored (RFC 1191); another connection quoted at the stored MTU follows it', async () => {
  const w = twoHosts();
  const fromA = tap(w.link.a);
  const { conn, cport, server } = await established(w);
  const conn2 = await another(w);
  const vs = w.a.vs[0]!;
  server.write(Buffer.alloc(30_000, 1));
  await w.run(() => fromA.some((s) => s.len === 1448), 1_000_000);
  await send(w, icmpErrorFrame(w, ...FN, 1000, quote(IPPROTO_TCP, A, 80, B, cport, conn.sndUna)));
  assert.is(vs.pmtu.get(B)?.mtu, 1000);
  for (const mtu of [1400, 1000, 1600, 65535]) {
    await send(w, icmpErrorFrame(w, ...FN, mtu, quote(IPPROTO_TCP, A, 80, B, cport, conn.sndUna)));
    assert.is(vs.pmtu.get(B)?.mtu, 1000, `MTU ${mtu} does not raise the path MTU`);
  }
  assert.is(conn.sndMss, 948);
  // The second connection still has its full MSS; an error quoting it at the stored MTU lowers it.
  assert.is(conn2.sndMss, 1448);
  await send(w, icmpErrorFrame(w, ...FN, 1000, quote(IPPROTO_TCP, A, 80, B, conn2.tuple.remotePort, conn2.sndUna)));
  assert.is(conn2.sndMss, 948, 'the quoted connection follows the path MTU already stored');
  assert.is(vs.pmtu.get(B)?.mtu, 1000);
});

test('forged "port unreachable" and other errors outside the window do not end a connection being opened', async () => {
  const w = twoHosts();
  createServer(w.a.ctx(), () => {}).listen(80);
  await w.run(() => false, 1000);
  const vs = w.a.vs[0]!;
  // A SYN from a host that never answers: the connection on a waits in SYN_RECEIVED.
  const spoof = parseIpv4('10.1.1.77'); // answers nothing (not even ARP); a router reports errors
  inject(w, { src: spoof, sport: 41000, dport: 80, flags: TH_SYN, seq: 5000, mss: 1460 });
  await w.run(() => false, 10_000);
  const e = w.a.engine.tcp.find(vs, A, 80, spoof, 41000)!;
  assert.ok(e, 'half-open connection');
  assert.is(e.conn.state, TcpState.SynReceived);
  const iss = e.conn.iss;
  for (const [type, code] of [[ICMP_DEST_UNREACH, ICMP_PORT_UNREACH], [ICMP_DEST_UNREACH, 2], [ICMP_DEST_UNREACH, ICMP_HOST_UNREACH], [ICMP_TIME_EXCEEDED, 0]]) {
    await send(w, icmpErrorFrame(w, type!, code!, 0, quote(IPPROTO_TCP, A, 80, spoof, 41000, (iss + 5000) >>> 0)));
  }
  assert.is(w.a.engine.tcp.find(vs, A, 80, spoof, 41000)?.conn.state, TcpState.SynReceived, 'still opening');
  assert.is(drops(w, 'a', 'icmp-out-of-window'), 4);
  // Port unreachable quoting the SYN-ACK itself (seq = ISS) is a hard error (RFC 1122 4.2.3.9).
  await send(w, icmpErrorFrame(w, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, quote(IPPROTO_TCP, A, 80, spoof, 41000, iss)));
  assert.is(w.a.engine.tcp.find(vs, A, 80, spoof, 41000), null, 'refused');
});

test('UDP: frag-needed quoting no bound socket changes nothing; quoting a bound socket lowers the path MTU (floored at 552)', async () => {
  const w = twoHosts();
  await w.run(() => false, 1000);
  const vs = w.a.vs[0]!;
  await send(w, icmpErrorFrame(w, ...FN, 68, quote(IPPROTO_UDP, A, 5353, B, 53)));
  assert.is(vs.pmtu.get(B), undefined);
  assert.is(drops(w, 'a', 'icmp-no-flow'), 1);
  const sock = w.a.engine.createUdpSocket(vs);
  sock.bind(5353);
  await w.run(() => false, 1000);
  await send(w, icmpErrorFrame(w, ...FN, 68, quote(IPPROTO_UDP, A, 5353, B, 53)));
  assert.is(vs.pmtu.get(B)?.mtu, 552);
  // A connected socket only believes errors about its own peer.
  const C = parseIpv4('10.1.1.3');
  const s2 = w.a.engine.createUdpSocket(vs);
  s2.bind(6000);
  s2.connect(53, '10.1.1.3');
  await w.run(() => false, 1000);
  await send(w, icmpErrorFrame(w, ...FN, 1000, quote(IPPROTO_UDP, A, 6000, parseIpv4('10.1.1.4'), 53)));
  assert.is(vs.pmtu.get(parseIpv4('10.1.1.4')), undefined);
  await send(w, icmpErrorFrame(w, ...FN, 1000, quote(IPPROTO_UDP, A, 6000, C, 53)));
  assert.is(vs.pmtu.get(C)?.mtu, 1000);
  assert.is(drops(w, 'a', 'icmp-no-flow'), 2);
  sock.close();
  s2.close();
});

test('errors that cannot be ours change nothing: other source address, non-first fragment, ICMP or unknown protocol quoted', async () => {
  const w = twoHosts();
  const fromA = tap(w.link.a);
  const { conn, cport, server } = await established(w);
  server.write(Buffer.alloc(30_000, 1));
  await w.run(() => fromA.some((s) => s.len === 1448), 1_000_000);
  const vs = w.a.vs[0]!;
  // Quoting a datagram from another address than the one the error came to.
  await send(w, icmpErrorFrame(w, ...FN, 1000, quote(IPPROTO_TCP, parseIpv4('10.1.1.9'), 80, B, cport, conn.sndUna)));
  // A non-first fragment (no ports in it).
  await send(w, icmpErrorFrame(w, ...FN, 1000, quote(IPPROTO_TCP, A, 80, B, cport, conn.sndUna, { fragOff: 1480 })));
  // ICMP and an unknown protocol quoted.
  await send(w, icmpErrorFrame(w, ...FN, 1000, quote(IPPROTO_ICMP, A, 80, B, cport)));
  await send(w, icmpErrorFrame(w, ...FN, 1000, quote(47, A, 80, B, cport)));
  assert.is(vs.pmtu.get(B), undefined);
  assert.is(conn.sndMss, 1448);
  assert.is(drops(w, 'a', 'icmp-no-flow'), 4);
  await send(w, icmpErrorFrame(w, ...FN, 1000, quote(IPPROTO_TCP, A, 80, B, cport, conn.sndUna)));
  assert.is(vs.pmtu.get(B)?.mtu, 1000);
});

test('an MSS computed from a tiny MTU is clamped to 88, never thrown; bad listener options are an error of listen()', async () => {
  const w = twoHosts();
  const fromA = tap(w.link.a);
  const fromB = tap(w.link.b);
  // A link MTU of 100 (the engine accepts 68..): MTU - 40 = 60 is below the smallest MSS (88).
  w.a.vs[0]!.links[0]!.mtu = 100;
  w.b.vs[0]!.links[0]!.mtu = 100;
  createServer(w.a.ctx(), () => {}).listen(80);
  await w.run(() => false, 1000);
  inject(w, { sport: 30000, dport: 80, flags: TH_SYN, seq: 1, mss: 1460 });
  await w.run(() => false, 10_000);
  const sa = fromA.find((s) => s.flags === (TH_SYN | TH_ACK));
  assert.ok(sa, 'SYN answered');
  assert.is(sa!.mss, 88);
  let err: Error | null = null;
  const c = connect(w.b.ctx(), 80, '10.1.1.1');
  c.on('error', (e) => { err = e; });
  await w.run(() => false, 10_000);
  assert.is(err, null);
  const syn = fromB.find((s) => s.flags === TH_SYN && s.sport !== 30000);
  assert.ok(syn, 'connect() sent its SYN');
  assert.is(syn!.mss, 88);
  assert.equal([w.a.engine.internalErrors, w.b.engine.internalErrors], [0, 0]);
  c.destroy();
  // Options the application gives are still checked, at listen() (not at the first SYN).
  let listenErr: Error | null = null;
  createServer(w.a.ctx(), { tcp: { rcvBuf: -1 } }, () => {}).on('error', (e) => { listenErr = e; }).listen(81);
  await w.run(() => false, 1000);
  assert.instance(listenErr, RangeError);
  assert.match(String(listenErr), /rcvBuf/);
});

test.run();
