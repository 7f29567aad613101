/**
 * TCP states through the engine (two hosts over the memory link, virtual time): SYN flood and SYN
 * cookies, RST to a closed port (and silence in reply to a RST), TIME_WAIT expiry, simultaneous
 * close, half-close, abort, keepalive against a dead peer, path MTU changes, destroying a VS with
 * live connections. Segments are observed on the wire by tapping the link's transmit side.
 */
import { tcpState } from '../stack/transport/tcp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World, sha } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import { TcpHeader } from '../protocols/tcp';
import { TcpState, TH_ACK, TH_FIN, TH_RST, TH_SYN } from '../protocols/tcp/types';
import { parseIpv4, writeIpv4, IPPROTO_ICMP } from '../protocols/ipv4';
import { writeEth, ETH_P_IPV4 } from '../protocols/ethernet';
import { writeIcmpError, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED } from '../protocols/icmp';
import { A, B, tap, inject, injectFrame } from './lib/inject';

function heldZero(w: World): void {
  for (const h of [w.a, w.b]) assert.is(h.engine.devices[0]!.pool.check().held, 0, 'no frame held');
}

function drop(w: World, side: 'a' | 'b', name: string): number {
  return (w[side].vs[0]!.counters.toJSON().drops.reasons[name]) ?? 0;
}

// ------------------------------------------------------------------------------------------------

test('SYN flood beyond the SYN backlog: cookies answer, a legitimate client still connects and transfers', async () => {
  const w = twoHosts();
  const fromA = tap(w.link.a);
  const got: Buffer[] = [];
  let ended = 0;
  createServer(w.a.ctx(), (s: Socket) => {
    s.on('data', (d) => got.push(d));
    s.on('end', () => { ended++; s.end('ok'); });
  }).listen({ port: 80, backlog: 16 });
  await w.run(() => false, 1000);
  const l = tcpState(w.a.vs[0]!).listeners.get(80)![0]!;
  // 300 SYNs from a spoofed address that never answers (its SYN-ACKs go nowhere).
  const spoof = parseIpv4('10.1.1.77');
  for (let p = 0; p < 300; p++) inject(w, { src: spoof, sport: 2000 + p, dport: 80, flags: TH_SYN, seq: 5000 + p, mss: 1460 });
  await w.run(() => false, 50_000);
  assert.is(l.synQueue, 16, 'the SYN queue is full');
  assert.ok(l.synCookiesSent >= 284, `cookies sent: ${l.synCookiesSent}`);
  const cookies = fromA.filter((s) => (s.flags & (TH_SYN | TH_ACK)) === (TH_SYN | TH_ACK) && s.dst === spoof);
  assert.ok(cookies.length >= 284, 'every flooding SYN beyond the backlog got a stateless SYN-ACK');
  assert.is(w.a.engine.tcp.connCount, 16, 'no state kept for the cookie SYNs');

  // Legitimate clients connect meanwhile (through cookies: the queue is still full) and transfer.
  const data = Buffer.alloc(300_000, 7);
  const answers: string[] = [];
  for (let i = 0; i < 5; i++) {
    const c = connect(w.b.ctx(), 80, '10.1.1.1', () => c.end(data));
    let a = '';
    c.on('data', (d) => { a += d; });
    c.on('end', () => answers.push(a));
  }
  assert.ok(await w.run(() => answers.length === 5, 20_000_000), `answers ${answers.length}`);
  assert.equal(answers, ['ok', 'ok', 'ok', 'ok', 'ok']);
  assert.is(ended, 5);
  assert.is(Buffer.concat(got).length, 5 * data.length);
  assert.ok(l.synCookiesAccepted >= 5, `cookie ACKs established connections (${l.synCookiesAccepted})`);

  // A forged ACK with a wrong cookie creates nothing and is answered by a RST.
  const before = fromA.length;
  const accepted = l.synCookiesAccepted;
  inject(w, { src: B, sport: 9999, dport: 80, flags: TH_ACK, seq: 1234, ack: 0xdeadbeef });
  await w.run(() => false, 10_000);
  assert.is(l.synCookiesAccepted, accepted);
  const rst = fromA.slice(before).find((s) => s.dport === 9999);
  assert.ok(rst && (rst.flags & TH_RST) && rst.seq === 0xdeadbeef, 'RST with SEQ = the forged ACK');
  // The half-open flood entries give up after their SYN-ACK retries.
  assert.ok(await w.run(() => l.synQueue === 0, 200_000_000), `SYN queue drained (${l.synQueue})`);
  assert.ok(await w.run(() => w.a.engine.tcp.connCount === 0 && w.b.engine.tcp.connCount === 0, 200_000_000));
  heldZero(w);
});

test('RST to a closed port; no RST in reply to a RST; both counted', async () => {
  const w = twoHosts();
  const fromA = tap(w.link.a);
  await w.run(() => false, 1000);
  inject(w, { sport: 40000, dport: 9, flags: TH_SYN, seq: 777, mss: 1460 });
  await w.run(() => false, 10_000);
  assert.is(fromA.length, 1);
  const r = fromA[0]!;
  assert.is(r.flags, TH_RST | TH_ACK);
  assert.is(r.seq, 0);
  assert.is(r.ack, 778, 'ACK = SYN seq + 1');
  assert.is(r.sport, 9);
  assert.is(r.dport, 40000);
  // Data segment with ACK: RST with SEQ = its ACK, no ACK bit.
  inject(w, { sport: 40001, dport: 9, flags: TH_ACK, seq: 100, ack: 5555, data: new Uint8Array(10) });
  await w.run(() => false, 10_000);
  assert.is(fromA.length, 2);
  assert.is(fromA[1]!.flags, TH_RST);
  assert.is(fromA[1]!.seq, 5555);
  const noSock = drop(w, 'a', 'tcp-no-socket');
  inject(w, { sport: 40002, dport: 9, flags: TH_RST, seq: 1 });
  inject(w, { sport: 40002, dport: 9, flags: TH_RST | TH_ACK, seq: 1, ack: 9 });
  await w.run(() => false, 10_000);
  assert.is(fromA.length, 2, 'never a RST for a RST');
  assert.is(drop(w, 'a', 'tcp-no-socket'), noSock + 2);
  heldZero(w);
});

test('TIME_WAIT: the active closer keeps the tuple for 2 MSL (60 s), then it is gone', async () => {
  const w = twoHosts();
  createServer(w.a.ctx(), (s: Socket) => { s.resume(); s.on('end', () => s.end()); }).listen(80);
  let closed = false;
  const c = connect(w.b.ctx(), 80, '10.1.1.1', () => c.end('x'));
  c.on('close', () => { closed = true; });
  assert.ok(await w.run(() => closed, 5_000_000));
  const e = c.connection!;
  const t = e.conn.tuple;
  assert.is(e.conn.state, TcpState.TimeWait);
  const t0 = w.now();
  assert.is(w.b.engine.tcp.connCount, 1, 'the TIME_WAIT entry is kept');
  assert.ok(await w.run(() => w.a.engine.tcp.connCount === 0, 1_000_000), `the passive closer is gone after LAST_ACK (${[...tcpState(w.a.vs[0]!).conns.values()].map((x) => x.conn.state)})`);
  await w.run(() => false, 59_000_000);
  assert.is(w.b.engine.tcp.connCount, 1, 'still in TIME_WAIT at 59 s');
  assert.ok(await w.run(() => w.b.engine.tcp.connCount === 0, 2_000_000), 'gone at 60 s');
  assert.ok(w.now() - t0 >= 60_000_000 && w.now() - t0 <= 60_100_000, `after ${w.now() - t0} µs`);
  assert.is(w.b.engine.tcp.find(w.b.vs[0]!, t.localAddr, t.localPort, t.remoteAddr, t.remotePort), null);
  assert.is(tcpState(w.b.vs[0]!).localPorts.size, 0, 'the ephemeral port is free again');
  heldZero(w);
});

test('simultaneous close: FINs cross, both sides go through CLOSING to TIME_WAIT, no error', async () => {
  const w = twoHosts({ link: { delayUs: 5000 } });
  let server: Socket | null = null;
  createServer(w.a.ctx(), { allowHalfOpen: true }, (s: Socket) => { server = s; }).listen(80);
  const c = connect({ ...w.b.ctx() } as ReturnType<typeof w.b.ctx>, { port: 80, host: '10.1.1.1', allowHalfOpen: true });
  assert.ok(await w.run(() => server !== null, 1_000_000));
  await w.run(() => false, 100_000);
  const errors: Error[] = [];
  let closed = 0;
  for (const s of [c, server! as Socket]) {
    s.on('error', (e) => errors.push(e));
    s.on('close', () => { closed++; });
    s.resume();
  }
  const fromA = tap(w.link.a);
  const fromB = tap(w.link.b);
  c.end();
  server!.end();
  const states = new Set<number>();
  const ce = c.connection!.conn;
  const se = (server! as Socket).connection!.conn;
  assert.ok(await w.run(() => { states.add(ce.state); states.add(se.state); return closed === 2; }, 5_000_000), 'both closed');
  assert.equal(errors, []);
  assert.ok(await w.run(() => ce.state === TcpState.TimeWait && se.state === TcpState.TimeWait, 1_000_000), 'both in TIME_WAIT');
  assert.ok(states.has(TcpState.Closing), 'CLOSING seen');
  // Each side sent exactly one FIN (plus the ACK of the other's).
  assert.is(fromA.filter((s) => s.flags & TH_FIN).length, 1);
  assert.is(fromB.filter((s) => s.flags & TH_FIN).length, 1);
  assert.ok(await w.run(() => w.a.engine.tcp.connCount + w.b.engine.tcp.connCount === 0, 70_000_000));
  heldZero(w);
});

test('half-close (allowHalfOpen): the server keeps sending after the client ended', async () => {
  const w = twoHosts();
  const reply = Buffer.alloc(500_000, 3);
  let serverGot = '';
  createServer(w.a.ctx(), { allowHalfOpen: true }, (s: Socket) => {
    s.on('data', (d) => { serverGot += d; });
    s.on('end', () => {
      // The client's side is finished; ours is open: send a lot, then end.
      assert.ok(s.writable);
      s.write(reply.subarray(0, 250_000));
      setImmediate(() => s.end(reply.subarray(250_000)));
    });
  }).listen(80);
  const got: Buffer[] = [];
  let ended = false;
  let closed = false;
  const c = connect(w.b.ctx(), { port: 80, host: '10.1.1.1', allowHalfOpen: true }, () => c.end('request'));
  c.on('data', (d) => got.push(d));
  c.on('end', () => { ended = true; });
  c.on('close', () => { closed = true; });
  let sawFinWait2 = false;
  assert.ok(await w.run(() => { if (c.tcpState === 'FIN_WAIT_2') sawFinWait2 = true; return ended && closed; }, 20_000_000));
  assert.ok(sawFinWait2, 'the client waited in FIN_WAIT_2 while receiving');
  assert.is(serverGot, 'request');
  assert.is(sha(Buffer.concat(got)), sha(reply));
});

test('abort (destroy with unread data / error) resets: the peer gets ECONNRESET', async () => {
  const w = twoHosts();
  let server: Socket | null = null;
  createServer(w.a.ctx(), (s: Socket) => { server = s; }).listen(80);
  let err: (Error & { code?: string }) | null = null;
  const c = connect(w.b.ctx(), 80, '10.1.1.1', () => c.write('hello'));
  c.on('error', (e) => { err = e; });
  assert.ok(await w.run(() => server !== null && (server as Socket).bytesRead === 5, 1_000_000));
  const fromA = tap(w.link.a);
  (server! as Socket).destroy(new Error('boom'));
  (server! as Socket).on('error', () => {});
  assert.ok(await w.run(() => err !== null, 1_000_000));
  assert.is(err!.code, 'ECONNRESET');
  assert.ok(fromA.some((s) => s.flags & TH_RST), 'a RST went out');
  assert.is(w.a.engine.tcp.connCount, 0);
  assert.ok(await w.run(() => w.b.engine.tcp.connCount === 0, 1_000_000));
  heldZero(w);
});

test('keepalive: an idle connection probes; a live peer answers; a dead peer gives ETIMEDOUT', async () => {
  const w = twoHosts();
  const tcp = { keepIntvlUs: 1_000_000, keepCnt: 3 };
  createServer(w.a.ctx(), () => {}).listen(80);
  let err: (Error & { code?: string }) | null = null;
  let closedAt = 0;
  const c = connect(w.b.ctx(), { port: 80, host: '10.1.1.1', keepAlive: true, keepAliveInitialDelay: 5000, tcp });
  c.on('error', (e) => { err = e; });
  c.on('close', () => { closedAt = w.now(); });
  assert.ok(await w.run(() => c.tcpState === 'ESTABLISHED', 1_000_000));
  const conn = c.connection!.conn;
  // Idle for 20 s with a live peer: probes every 5 s are answered, nothing breaks.
  await w.run(() => false, 20_000_000);
  assert.ok(conn.stats.keepAliveProbes >= 3, `probes: ${conn.stats.keepAliveProbes}`);
  assert.is(err, null);
  assert.is(c.tcpState, 'ESTABLISHED');
  // The peer vanishes (link drops everything).
  w.link.setImpairments('ab', { loss: 1 });
  w.link.setImpairments('ba', { loss: 1 });
  const t0 = w.now();
  assert.ok(await w.run(() => err !== null, 30_000_000), 'dead peer detected');
  assert.is(err!.code, 'ETIMEDOUT');
  // idle (≤ 5 s) + keepCnt probes 1 s apart.
  assert.ok(closedAt - t0 <= 5_000_000 + 3 * 1_000_000 + 100_000, `detected after ${closedAt - t0} µs`);
  assert.is(w.b.engine.tcp.connCount, 0);
});

test('path MTU: ICMP fragmentation-needed lowers the MSS of a live connection; the transfer still completes', async () => {
  const w = twoHosts();
  const fromA = tap(w.link.a);
  const got: Buffer[] = [];
  let server: Socket | null = null;
  let done = false;
  createServer(w.a.ctx(), (s: Socket) => { server = s; }).listen(80);
  const c = connect(w.b.ctx(), 80, '10.1.1.1');
  c.on('data', (d) => got.push(d));
  c.on('end', () => { done = true; });
  assert.ok(await w.run(() => server !== null, 1_000_000));
  const sconn = (server! as Socket).connection!.conn;
  assert.is(sconn.sndMss, 1448);
  // A router between them (here: host b's address) reports MTU 1000 for a full-size segment.
  const data = Buffer.alloc(1_000_000, 9);
  (server! as Socket).write(data.subarray(0, 100_000));
  await w.run(() => fromA.some((s) => s.len === 1448), 1_000_000);
  const big = fromA.find((s) => s.len === 1448)!;
  const ipOff = 18; // VLAN-tagged Ethernet header
  const frame = new Uint8Array(18 + 20 + 8 + 28);
  writeEth(frame, 0, w.link.a.mac, 0, w.link.b.mac, 0, ETH_P_IPV4, 10);
  const il = writeIcmpError(frame, 18 + 20, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 1000, big.raw, ipOff, 28);
  writeIpv4(frame, 18, B, A, IPPROTO_ICMP, il, 64, 1, 0, 0);
  injectFrame(w, frame.subarray(0, 18 + 20 + il));
  await w.run(() => false, 10_000);
  assert.is(w.a.vs[0]!.pmtu.get(B)?.mtu, 1000, 'path MTU cached');
  assert.is(w.a.engine.mtuTo(w.a.vs[0]!, B), 1000);
  assert.ok(sconn.sndMss <= 1000 - 40 - 12, `live connection MSS lowered (sndMss ${sconn.sndMss})`);
  const mark = fromA.length;
  (server! as Socket).end(data.subarray(100_000));
  assert.ok(await w.run(() => done, 30_000_000));
  assert.is(Buffer.concat(got).length, data.length);
  const later = fromA.slice(mark).filter((s) => s.len > 0);
  assert.ok(later.length > 0 && later.every((s) => s.frameLen <= 18 + 1000), 'every later data frame fits the path MTU');
});

test('MSS follows the link MTU (jumbo frames): MTU - 40 offered, full segments used; an mss option lowers it', async () => {
  const w = twoHosts({ link: { mtu: 3000, frameSize: 4096 } });
  const fromA = tap(w.link.a);
  let server: Socket | null = null;
  createServer(w.a.ctx(), (s: Socket) => { server = s; }).listen(80);
  const c = connect(w.b.ctx(), 80, '10.1.1.1');
  const got: Buffer[] = [];
  let ended = false;
  c.on('data', (d) => got.push(d));
  c.on('end', () => { ended = true; });
  assert.ok(await w.run(() => server !== null, 1_000_000));
  const synAck = fromA.find((x) => x.flags === (TH_SYN | TH_ACK))!;
  const h = new TcpHeader();
  assert.is(h.parse(synAck.raw, 18 + 20, synAck.raw.length - 18 - 20, synAck.src, synAck.dst), 0);
  assert.is(h.mss, 2960, 'SYN-ACK offers MTU - 40');
  assert.is((server! as Socket).connection!.conn.sndMss, 2960 - 12, 'timestamps take 12 bytes');
  const data = Buffer.alloc(200_000, 7);
  (server! as Socket).end(data);
  assert.ok(await w.run(() => ended, 10_000_000));
  assert.is(Buffer.concat(got).length, data.length);
  assert.ok(fromA.some((x) => x.len === 2948), 'full jumbo segments on the wire');
  assert.ok(fromA.every((x) => x.frameLen <= 18 + 3000), 'none beyond the MTU');

  const w2 = twoHosts({ link: { mtu: 3000, frameSize: 4096 } });
  let s2: Socket | null = null;
  createServer(w2.a.ctx(), { tcp: { mss: 1200 } }, (s: Socket) => { s2 = s; }).listen(80);
  const c2 = connect(w2.b.ctx(), 80, '10.1.1.1');
  assert.ok(await w2.run(() => s2 !== null, 1_000_000));
  assert.is(c2.connection!.conn.sndMss, 1200 - 12, 'the peer sends at most the lowered MSS');
});

test('MSS follows the route the connection takes: a source rule onto a smaller-MTU link lowers it', async () => {
  const w = twoHosts({ link: { mtu: 3000, frameSize: 4096 } });
  const e = w.b.engine;
  const vs = w.b.vs[0]!;
  e.addLink(vs, { name: 'small', device: 'eth0', vlan: 20, mtu: 1500 });
  e.addAddress(vs, 'small', '10.1.2.2/24');
  e.addRoute(vs, { dst: '10.1.1.0/24', via: '10.1.2.1', link: 'small', table: 100 });
  // A router on that link (host a answers ARP for 10.1.2.1 on VLAN 20).
  w.a.engine.addLink(w.a.vs[0]!, { name: 'small', device: 'eth0', vlan: 20, mtu: 1500 });
  w.a.engine.addAddress(w.a.vs[0]!, 'small', '10.1.2.1/24');
  e.addRule(vs, { priority: 100, from: '10.1.2.2', table: 100 });
  assert.is(e.mtuTo(vs, A), 3000, 'the main table takes the jumbo link');
  assert.is(e.mtuTo(vs, A, parseIpv4('10.1.2.2')), 1500, 'the source rule takes the small one');
  const fromB = tap(w.link.b);
  createServer(w.a.ctx(), () => {}).listen(80);
  connect(w.b.ctx(), { port: 80, host: '10.1.1.1', localAddress: '10.1.2.2' }).on('error', () => {});
  await w.run(() => fromB.some((x) => x.flags === TH_SYN), 1_000_000);
  const syn = fromB.find((x) => x.flags === TH_SYN)!;
  assert.is(syn.src, parseIpv4('10.1.2.2'));
  const h = new TcpHeader();
  assert.is(h.parse(syn.raw, 18 + 20, syn.raw.length - 18 - 20, syn.src, syn.dst), 0);
  assert.is(h.mss, 1460, 'MSS of the link the SYN leaves on');
});

test('destroyVs with live connections resets them at the peers and frees everything', async () => {
  const w = twoHosts({ vlans: [10, 20] });
  const servers: Socket[] = [];
  for (const i of [0, 1]) createServer(w.a.ctx(i), (s: Socket) => { servers.push(s); s.on('error', () => {}); }).listen(80);
  const errs: string[] = [];
  const clients: Socket[] = [];
  for (const i of [0, 1, 1, 1]) {
    const c = connect(w.b.ctx(i), 80, '10.1.1.1', () => c.write('hi'));
    c.on('error', (e: Error & { code?: string }) => errs.push(`${i}:${e.code}`));
    clients.push(c);
  }
  assert.ok(await w.run(() => servers.length === 4 && servers.every((s) => s.bytesRead === 2), 2_000_000));
  // Some unsent data in flight too.
  servers.forEach((s) => s.write(Buffer.alloc(100_000)));
  w.a.engine.destroyVs('vs20');
  assert.ok(await w.run(() => errs.length === 3, 2_000_000), `errors ${errs}`);
  assert.equal(errs, ['1:ECONNRESET', '1:ECONNRESET', '1:ECONNRESET']);
  assert.is(tcpState(w.a.vs[1]!).conns.size, 0);
  assert.is(tcpState(w.a.vs[1]!).listeners.size, 0);
  assert.is(w.a.engine.tcp.connCount, 1, 'the other VS keeps its connection');
  assert.is(clients[0]!.tcpState, 'ESTABLISHED');
  await w.run(() => false, 1_000_000);
  assert.is(tcpState(w.b.vs[1]!).conns.size, 0);
  heldZero(w);
});

test.run();
