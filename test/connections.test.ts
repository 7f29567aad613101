/**
 * `show connections` (like `ss -tuani`), `socket.tcpInfo()` and the TCP counters of `show counters`,
 * checked against what the figures mean (RFC 9293 states under ss's names, RFC 6298 RTT/RTO,
 * RFC 6928 initial window, RFC 7323/2018 options, RFC 4987 SYN cookies, Linux's Tcp/TcpExt MIB
 * counters), not against the code: a stack on the in-memory link and a peer host under virtual time,
 * with losses made on the link where a figure needs them.
 */
import { UDP_DGRAM_OVERHEAD } from '../stack/api/dgram';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, createServer, Socket } from '../stack/api/net';
import { connectionRows, ConnectionRow, parseStateFilter, TcpInfo, TcpListenRow, UdpRow } from '../stack/connections';
import { ControlServer, controlRequest } from '../stack/control/control';
import { TH_ACK, TH_SYN } from '../protocols/tcp/types';
import { stackConfig, stackWorld, StackWorld } from './lib/stack-peer';
import { pattern } from './lib/world';
import { inject } from './lib/inject';
import { ip } from './lib/frames';
import { cliAt } from './lib/control';
import { shardConfig, shardWorld } from './lib/shard-world';
import type { Stack } from '../stack/stack';
import { createStack } from '../stack/index';
import type { ShardedStack } from '../stack/shard/threads';

type Counters = Record<string, number>;

function rows(w: StackWorld, opts: { vs?: string; state?: string; port?: number } = {}): ConnectionRow[] {
  return w.stack.show('connections', opts) as ConnectionRow[];
}
/** The stack's TCP connection whose remote (or local) port is `port`. */
function conn(w: StackWorld, port: number): TcpInfo | undefined {
  return rows(w).find((r): r is TcpInfo => r.proto === 'tcp' && r.state !== 'LISTEN' && (r.remote!.endsWith(`:${port}`) || r.local.endsWith(`:${port}`)));
}
/** The peer's view of its connections (the same row builder over the peer's virtual servers). */
function peerConn(w: StackWorld, port: number): TcpInfo | undefined {
  return connectionRows(w.b.vs).find((r): r is TcpInfo => r.proto === 'tcp' && r.state !== 'LISTEN' && (r.remote!.endsWith(`:${port}`) || r.local.endsWith(`:${port}`)));
}
function listener(w: StackWorld, port: number): TcpListenRow {
  const l = rows(w).find((r): r is TcpListenRow => r.state === 'LISTEN' && r.local.endsWith(`:${port}`));
  if (!l) throw new Error(`no listener on ${port}`);
  return l;
}
function tcpCounters(w: StackWorld, vs: string): Counters {
  const c = w.stack.show('counters') as { vs: { vs: string; tcp: Counters }[] };
  return c.vs.find((r) => r.vs === vs)!.tcp;
}
const ms = (n: number) => n * 1000;

test('states through the handshake and both closes, as ss names them (RFC 9293 states)', async () => {
  const w = stackWorld();
  try {
    let peerSide: Socket | null = null;
    createServer(w.b.ctx(), { allowHalfOpen: true }, (s) => { peerSide = s; s.resume(); }).listen(9000);
    // Active open whose SYN is lost: SYN-SENT, and the SYN's retransmission is counted (as Linux's total_retrans).
    w.link.setImpairments('ab', { loss: 1 });
    const c = connect(w.a.ctx(), 9000, '10.1.1.2');
    c.resume();
    await w.run(() => false, ms(100));
    assert.is(conn(w, 9000)?.state, 'SYN-SENT');
    await w.run(() => false, ms(1100)); // the 1 s initial RTO (RFC 6298 2.1) expired once
    let r = conn(w, 9000)!;
    assert.is(r.state, 'SYN-SENT');
    assert.is(r.timeouts, 1);
    assert.is(r.retrans, 1, 'the SYN was sent again');
    assert.is(r.backoff, 1);
    assert.is(r.rtoMs, 2000, 'RFC 6298 5.5: the RTO doubles after a timeout');
    w.link.setImpairments('ab', {});
    assert.ok(await w.run(() => conn(w, 9000)?.state === 'ESTAB' && peerSide !== null, ms(5000)), 'established');
    assert.is(peerConn(w, 9000)!.state, 'ESTAB');

    // Passive open whose SYN-ACK is lost: SYN-RECV, counted in the listener's SYN queue.
    let accepted: Socket | null = null;
    createServer(w.a.ctx(), (s) => { accepted = s; s.resume(); }).listen(80);
    createServer(w.a.ctx(), (s) => s.resume()).listen(79);
    const first = connect(w.b.ctx(), 79, '10.1.1.1'); // the peer resolves our address first
    first.resume();
    assert.ok(await w.run(() => conn(w, 79)?.state === 'ESTAB', ms(1000)));
    w.link.setImpairments('ab', { loss: 1 });
    const p = connect(w.b.ctx(), 80, '10.1.1.1');
    p.resume();
    await w.run(() => false, ms(100));
    assert.is(conn(w, 80)?.state, 'SYN-RECV');
    assert.is(listener(w, 80).synQueue, 1, 'a half-open connection is in the SYN queue');
    assert.is(peerConn(w, 80)?.state, 'SYN-SENT');
    w.link.setImpairments('ab', {});
    assert.ok(await w.run(() => accepted !== null, ms(5000)));
    assert.is(conn(w, 80)!.state, 'ESTAB');
    assert.is(listener(w, 80).synQueue, 0);

    // Active close from the stack while the peer's ACKs are lost: FIN-WAIT-1; the peer got the FIN: CLOSE-WAIT.
    w.link.setImpairments('ba', { loss: 1 });
    c.end();
    await w.run(() => false, ms(50));
    assert.is(conn(w, 9000)!.state, 'FIN-WAIT-1');
    assert.is(peerConn(w, 9000)!.state, 'CLOSE-WAIT');
    // The FIN acknowledged, the peer not closed yet (half-open): FIN-WAIT-2.
    w.link.setImpairments('ba', {});
    assert.ok(await w.run(() => conn(w, 9000)!.state === 'FIN-WAIT-2', ms(5000)), `FIN-WAIT-2 (${conn(w, 9000)!.state})`);
    // The peer closes while our ACK of its FIN is lost: it waits in LAST-ACK, we are in TIME-WAIT.
    w.link.setImpairments('ab', { loss: 1 });
    (peerSide as unknown as Socket).end();
    await w.run(() => false, ms(50));
    assert.is(conn(w, 9000)!.state, 'TIME-WAIT', 'the side that closed first waits 2 MSL (RFC 9293 3.6)');
    assert.is(peerConn(w, 9000)!.state, 'LAST-ACK');
    assert.is(conn(w, 9000)!.sendQ, 0);
    w.link.setImpairments('ab', {});
    assert.ok(await w.run(() => peerConn(w, 9000) === undefined, ms(5000)), 'the peer closed once its FIN was acknowledged');
    assert.is(conn(w, 9000)!.state, 'TIME-WAIT');
    assert.ok(await w.run(() => conn(w, 9000) === undefined, ms(61_000)), 'TIME-WAIT ends after 2 MSL (60 s)');
  } finally {
    w.stack.close();
  }
});

test('receive queue: bytes received in order that the application has not read', async () => {
  const w = stackWorld();
  try {
    let srv: Socket | null = null;
    createServer(w.a.ctx(), (s) => { srv = s; /* never reads until told */ }).listen(80);
    const c = connect(w.b.ctx(), 80, '10.1.1.1');
    assert.ok(await w.run(() => srv !== null && conn(w, 80)?.state === 'ESTAB', ms(1000)));
    c.write(pattern(5000, 1));
    assert.ok(await w.run(() => conn(w, 80)!.bytesReceived === 5000, ms(1000)));
    assert.is(conn(w, 80)!.recvQ, 5000);
    assert.is(srv!.tcpInfo()!.recvQ, 5000);
    // More than a stream's buffer: all of it waits for the reader (the window closes by as much).
    c.write(pattern(95_000, 2));
    assert.ok(await w.run(() => conn(w, 80)!.bytesReceived === 100_000, ms(2000)));
    await w.run(() => false, ms(50)); // the delayed ACK (40 ms) of the last segment left too
    let r = conn(w, 80)!;
    assert.is(r.recvQ, 100_000);
    const peer = peerConn(w, 80)!;
    assert.is(peer.sndWnd, r.rcvWnd, 'the peer sees the window we advertised');
    assert.ok(r.rcvWnd < 262_144 - 90_000, `the advertised window shrank by the unread bytes (${r.rcvWnd})`);
    // The application reads 30 000 bytes: 70 000 left.
    const got = srv!.read(30_000) as Buffer | null;
    assert.is(got?.length, 30_000);
    assert.is(conn(w, 80)!.recvQ, 70_000);
    while (srv!.read() !== null) { /* drain */ }
    r = conn(w, 80)!;
    assert.is(r.recvQ, 0);
    assert.is(srv!.tcpInfo()!.recvQ, 0);
  } finally {
    w.stack.close();
  }
});

test('send queue: bytes written and not acknowledged; retransmissions and timeouts while the peer cannot ACK', async () => {
  const w = stackWorld();
  try {
    let srv: Socket | null = null;
    createServer(w.a.ctx(), (s) => { srv = s; }).listen(80);
    const c = connect(w.b.ctx(), 80, '10.1.1.1');
    let peerGot = 0;
    c.on('data', (d: Buffer) => { peerGot += d.length; });
    assert.ok(await w.run(() => srv !== null, ms(1000)));
    const before = tcpCounters(w, 'a');
    w.link.setImpairments('ba', { loss: 1 }); // the peer's ACKs never arrive
    srv!.write(pattern(20_000, 3));
    await w.run(() => false, ms(10));
    let r = conn(w, 80)!;
    assert.is(r.sendQ, 20_000, 'nothing acknowledged: all the written bytes are queued');
    assert.is(r.notsent, 20_000 - r.bytesSent, 'of them, the bytes not sent yet');
    assert.ok(r.notsent > 0, 'the initial window (RFC 6928: 10 segments) holds back the rest');
    assert.is(r.cwnd, 10);
    assert.is(r.bytesAcked, 0);
    assert.is(r.retrans, 0);
    await w.run(() => false, ms(1500));
    r = conn(w, 80)!;
    assert.is(r.sendQ, 20_000);
    assert.ok(r.timeouts >= 2 && r.retrans >= r.timeouts, `RTO expired and segments were sent again (${r.timeouts} timeouts, ${r.retrans} retransmissions)`);
    assert.is(r.backoff, r.timeouts, 'each timeout backs the RTO off once');
    assert.ok(r.bytesRetrans > 0);
    assert.is(r.cwnd, 1, 'RFC 5681 3.1: after a timeout cwnd is one segment');
    assert.ok(r.ssthresh !== null && r.ssthresh >= 2, `ssthresh set by the loss (${r.ssthresh})`);
    const mid = tcpCounters(w, 'a');
    assert.is(mid.retransSegs - before.retransSegs, r.retrans, 'the VS counts the same retransmissions');
    assert.is(mid.timeouts - before.timeouts, r.timeouts);
    assert.is(tcpCounters(w, 'b').retransSegs, 0, 'another VS counts none');
    w.link.setImpairments('ba', {});
    assert.ok(await w.run(() => conn(w, 80)!.sendQ === 0 && peerGot === 20_000, ms(20_000)), 'everything acknowledged');
    r = conn(w, 80)!;
    assert.is(r.bytesAcked, 20_000);
    assert.is(r.bytesSent, 20_000 + r.bytesRetrans, 'bytes sent count retransmissions, as Linux bytes_sent');
    assert.is(peerConn(w, 80)!.bytesReceived, 20_000, 'the peer received each byte once');
    assert.is(r.backoff, 0, 'a new ACK ends the backoff');
  } finally {
    w.stack.close();
  }
});

test('RTT, RTO, MSS, window and options in use agree with the path and with the peer\'s view', async () => {
  // 5 ms each way: RTT 10 ms.
  const w = stackWorld({ link: { delayUs: 5000 } });
  try {
    let srv: Socket | null = null;
    createServer(w.a.ctx(), (s) => { srv = s; s.on('data', () => undefined); }).listen(80);
    createServer(w.a.ctx(), { tcp: { cc: 'newreno' } }, (s) => s.resume()).listen(81);
    const c = connect(w.b.ctx(), 80, '10.1.1.1');
    c.resume();
    assert.ok(await w.run(() => srv !== null, ms(1000)));
    let r = conn(w, 80)!;
    assert.is(r.local, '10.1.1.1:80');
    assert.is(r.remote, `10.1.1.2:${c.localPort}`);
    assert.is(r.rttMs, 10, 'one sample from the handshake: the path RTT');
    assert.is(r.rttvarMs, 5, 'RFC 6298 2.2: RTTVAR = R/2 after the first sample');
    assert.is(r.rtoMs, 200, 'RTO = max(SRTT + 4 RTTVAR, 200 ms minimum)');
    // MSS: the MTU less 40 (RFC 9293 3.7.1) less the 12 bytes of the timestamp option (RFC 7323).
    assert.is(r.mss, 1448);
    assert.is(r.advmss, 1448);
    assert.ok(r.sack && r.timestamps, 'SACK and timestamps offered by both SYNs');
    const p = peerConn(w, 80)!;
    assert.ok(r.sndWscale !== null && r.rcvWscale !== null);
    assert.is(r.sndWscale, p.rcvWscale, 'our send shift is the peer\'s receive shift');
    assert.is(r.rcvWscale, p.sndWscale);
    assert.is(p.mss, r.advmss, 'the peer sends segments of the MSS we advertised');
    assert.is(r.cwnd, 10, 'RFC 6928 initial window');
    assert.ok(r.cwndBytes >= 10 * 1448 && r.cwndBytes < 11 * 1448, `${r.cwndBytes} bytes`);
    assert.is(r.ssthresh, null, 'no loss yet: no slow start threshold');
    assert.is(r.cc, 'cubic');
    // Bytes each way.
    c.write(pattern(3000, 4));
    srv!.write(pattern(2000, 5));
    assert.ok(await w.run(() => conn(w, 80)!.bytesAcked === 2000 && conn(w, 80)!.bytesReceived === 3000 && peerConn(w, 80)!.bytesAcked === 3000, ms(1000)));
    r = conn(w, 80)!;
    assert.is(r.bytesSent, 2000);
    assert.is(r.bytesRetrans, 0);
    assert.is(r.retrans, 0);
    assert.is(peerConn(w, 80)!.bytesReceived, 2000);
    assert.is(r.sendQ, 0);
    assert.ok(r.rttMs! >= 10 && r.rttMs! < 60, `RTT samples of data (${r.rttMs} ms)`);
    assert.is(r.rtoMs, Math.max(200, Math.round((r.rttMs! + Math.max(1, 4 * r.rttvarMs!)) * 1000) / 1000));
    // tcpInfo() on the socket is the row of show connections.
    assert.equal(srv!.tcpInfo(), conn(w, 80));
    assert.is(new Socket(w.a.ctx()).tcpInfo(), null, 'no connection: no figures');

    // A peer without window scaling, SACK or timestamps: none in use; the whole MSS carries data.
    const w2 = stackWorld({ peerTcp: { windowScale: false, sack: false, timestamps: false } });
    try {
      let s2: Socket | null = null;
      createServer(w2.a.ctx(), (s) => { s2 = s; }).listen(80);
      const c2 = connect(w2.b.ctx(), 80, '10.1.1.1');
      c2.resume();
      assert.ok(await w2.run(() => s2 !== null, ms(1000)));
      const q = conn(w2, 80)!;
      assert.is(q.sack, false);
      assert.is(q.timestamps, false);
      assert.is(q.sndWscale, null);
      assert.is(q.rcvWscale, null);
      assert.is(q.mss, 1460);
      assert.is(q.advmss, 1460);
      // IPv6: the MTU less 60 (RFC 8200 8.3) less the timestamp option; addresses in brackets.
      let s6: Socket | null = null;
      createServer(w.a.ctx(), (s) => { s6 = s; }).listen(443);
      const c6 = connect(w.b.ctx(), 443, 'fd00::1');
      c6.resume();
      assert.ok(await w.run(() => s6 !== null, ms(1000)));
      const v6 = conn(w, 443)!;
      assert.is(v6.local, '[fd00::1]:443');
      assert.is(v6.remote, `[fd00::2]:${c6.localPort}`);
      assert.is(v6.mss, 1428);
      // The listener's congestion control reaches its connections.
      const cn = connect(w.b.ctx(), 81, '10.1.1.1');
      cn.resume();
      assert.ok(await w.run(() => conn(w, 81)?.state === 'ESTAB', ms(1000)));
      assert.is(conn(w, 81)!.cc, 'newreno');
    } finally {
      w2.stack.close();
    }
  } finally {
    w.stack.close();
  }
});

test('listeners: the SYN queue against its limit, SYN cookies sent, validated and failed (RFC 4987)', async () => {
  const cfg = stackConfig();
  (cfg.virtualServers[0] as { limits?: unknown }).limits = { tcpSynQueue: 2 };
  const w = stackWorld({ config: cfg });
  try {
    let accepted = 0;
    createServer(w.a.ctx(), (s) => { accepted++; s.resume(); }).listen(80);
    await w.run(() => false, ms(1));
    let l = listener(w, 80);
    assert.equal([l.synQueue, l.synQueueMax, l.acceptQueue, l.acceptQueueMax], [0, 2, 0, 511]);
    assert.equal([l.recvQ, l.sendQ], [0, 511], 'as ss: the accept queue and the backlog');
    // Two SYNs from a host that never answers fill the SYN queue; a third is answered with a cookie.
    for (let i = 0; i < 3; i++) inject(w, { src: ip('10.1.1.99'), sport: 1000 + i, dport: 80, flags: TH_SYN, seq: 7000 * (i + 1), mss: 1460 });
    await w.run(() => false, ms(5));
    l = listener(w, 80);
    assert.is(l.synQueue, 2);
    assert.is(l.syncookiesSent, 1);
    assert.is(rows(w, { state: 'syn-recv' }).length, 2, 'the half-open connections show as SYN-RECV');
    let n = tcpCounters(w, 'a');
    assert.is(n.syncookiesSent, 1);
    assert.is(n.passiveOpens, 2, 'RFC 1213 tcpPassiveOpens: LISTEN -> SYN-RCVD');
    // A real client while the queue is full: answered with a cookie, its ACK validates it.
    const c = connect(w.b.ctx(), 80, '10.1.1.1');
    c.resume();
    assert.ok(await w.run(() => accepted === 1, ms(1000)), 'connected through a SYN cookie');
    n = tcpCounters(w, 'a');
    assert.is(n.syncookiesSent, 2);
    assert.is(n.syncookiesRecv, 1);
    assert.is(n.syncookiesFailed, 0);
    assert.is(n.passiveOpens, 3);
    assert.is(conn(w, c.localPort!)!.state, 'ESTAB');
    // An ACK whose cookie is wrong: failed, answered with a RST.
    const rsts = n.outRsts;
    inject(w, { src: ip('10.1.1.98'), sport: 2000, dport: 80, flags: TH_ACK, seq: 5, ack: 12345 });
    await w.run(() => false, ms(5));
    n = tcpCounters(w, 'a');
    assert.is(n.syncookiesFailed, 1);
    assert.is(n.syncookiesRecv, 1);
    assert.is(n.outRsts, rsts + 1);
    assert.is(listener(w, 80).syncookiesSent, 2);
  } finally {
    w.stack.close();
  }
});

test('listeners: the accept queue counts connections established and not yet accepted', async () => {
  // One connection's events per step: several completed at once wait for their turn to be accepted.
  const w = stackWorld({ config: stackConfig({ engine: { dadTransmits: 0, stepEvents: 1 } }) });
  try {
    let accepted = 0;
    createServer(w.a.ctx(), (s) => { accepted++; s.resume(); }).listen({ port: 80, backlog: 7 });
    await w.run(() => false, ms(1));
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) connect(w.b.ctx(), 80, '10.1.1.1').resume();
    assert.ok(await w.run(() => {
      const l = listener(w, 80);
      seen.push(l.acceptQueue);
      // Every connection the stack completed is either accepted or in the queue.
      const estab = rows(w, { state: 'established', port: 80 }).length;
      if (estab !== accepted + l.acceptQueue) throw new Error(`${estab} established, ${accepted} accepted, ${l.acceptQueue} queued`);
      assert.is(l.recvQ, l.acceptQueue);
      assert.is(l.sendQ, 7, 'the backlog');
      return accepted === 4;
    }, ms(1000)));
    assert.ok(Math.max(...seen) >= 2, `connections waited in the accept queue (${seen.join(',')})`);
    assert.is(listener(w, 80).acceptQueue, 0);
  } finally {
    w.stack.close();
  }
});

test('UDP sockets: bound address, connected peer, datagrams received and not delivered', async () => {
  const w = stackWorld();
  try {
    const h = w.stack.vs('a');
    const u4 = h.createSocket('udp4').bind(5353);
    const u6 = h.createSocket('udp6').bind(5354);
    const u6only = h.createSocket({ type: 'udp6', ipv6Only: true }).bind(5355);
    const uc = h.createSocket('udp4').bind(5356);
    uc.connect(7, '10.1.1.2');
    await w.run(() => false, ms(1));
    const udp = () => rows(w).filter((r): r is UdpRow => r.proto === 'udp');
    assert.equal(udp().map((r) => [r.state, r.local, r.remote]), [
      ['UNCONN', '0.0.0.0:5353', null], ['UNCONN', '*:5354', null], ['UNCONN', '[::]:5355', null], ['ESTAB', '10.1.1.1:5356', '10.1.1.2:7'],
    ]); // connect() takes the route's source address, as Linux's ip4_datagram_connect: ss shows it
    assert.equal(rows(w, { state: 'closed' }).map((r) => r.local), ['0.0.0.0:5353', '*:5354', '[::]:5355'], 'ss calls UNCONN the closed state');
    assert.equal(rows(w, { state: 'established' }).map((r) => r.local), ['10.1.1.1:5356']);
    // Three datagrams arrive and the events that deliver them have not run yet: they are the receive queue.
    let got = 0;
    u4.on('message', () => { got++; });
    const peer = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp4' });
    for (let i = 0; i < 3; i++) peer.send(Buffer.alloc(100 + i), 5353, '10.1.1.1');
    const flush = w.stack.engine.flushEvents;
    w.stack.engine.flushEvents = () => undefined;
    await w.run(() => udp()[0]!.recvDatagrams === 3, ms(100));
    let r = udp()[0]!;
    assert.equal([r.recvQ, r.recvDatagrams, r.sendQ], [303, 3, 0]);
    // ss -m: rb is the doubled default SO_RCVBUF (2 x 212992), r what the queue takes of it (payload + overhead each).
    assert.equal([r.recvBuffer, r.recvBufferUsed], [425984, 303 + 3 * UDP_DGRAM_OVERHEAD]);
    w.stack.engine.flushEvents = flush;
    assert.ok(await w.run(() => got === 3, ms(100)));
    r = udp()[0]!;
    assert.equal([r.recvQ, r.recvDatagrams], [0, 0]);
    for (const s of [u4, u6, u6only, uc]) s.close();
  } finally {
    w.stack.close();
  }
});

test('TCP counters per VS: opens, resets each way, failed attempts, established now, out-of-order segments', async () => {
  const w = stackWorld();
  try {
    const servers: Socket[] = [];
    createServer(w.a.ctx(), (s) => { servers.push(s); s.resume(); s.on('error', () => undefined); }).listen(80);
    createServer(w.b.ctx(), (s) => s.resume()).listen(9000);
    const errs: string[] = [];
    // Two passive opens, one active open.
    const p1 = connect(w.b.ctx(), 80, '10.1.1.1'); p1.resume(); p1.on('error', () => undefined);
    const p2 = connect(w.b.ctx(), 80, '10.1.1.1'); p2.resume(); p2.on('error', () => undefined);
    const a1 = connect(w.a.ctx(), 9000, '10.1.1.2'); a1.resume();
    // A connect refused by the peer's RST (RFC 9293 3.10.7.3: RST in SYN-SENT), and a SYN to a closed port here.
    const refused = connect(w.a.ctx(), 9001, '10.1.1.2');
    refused.on('error', (e: NodeJS.ErrnoException) => errs.push(`a:${e.code}`));
    const closed = connect(w.b.ctx(), 81, '10.1.1.1');
    closed.on('error', (e: NodeJS.ErrnoException) => errs.push(`b:${e.code}`));
    assert.ok(await w.run(() => servers.length === 2 && errs.length === 2 && a1.readyState === 'open', ms(1000)));
    assert.equal(errs.sort(), ['a:ECONNREFUSED', 'b:ECONNREFUSED']);
    let n = tcpCounters(w, 'a');
    assert.is(n.activeOpens, 2, 'both connect() calls sent a SYN');
    assert.is(n.passiveOpens, 2);
    assert.is(n.inRsts, 1, 'the RST that refused our SYN');
    assert.is(n.attemptFails, 1, 'RFC 1213 tcpAttemptFails: SYN-SENT -> CLOSED');
    assert.is(n.outRsts, 1, 'the RST answering a SYN to a closed port');
    assert.is(n.currEstab, 3);
    assert.is(n.currEstab, rows(w, { vs: 'a', state: 'established,close-wait' }).length);
    assert.is(n.estabResets, 0);
    // An established connection reset by the application: RFC 1213 tcpEstabResets, one more RST out.
    servers[0]!.resetAndDestroy(); // Node's way to reset (destroy() closes with a FIN, as Node)
    await w.run(() => false, ms(10));
    n = tcpCounters(w, 'a');
    assert.is(n.estabResets, 1);
    assert.is(n.outRsts, 2);
    assert.is(n.currEstab, 2);
    assert.is(n.ofoQueue, 0, 'no reordering, nothing queued out of order');
    // Reordering on the way in: out-of-order segments go to the reorder buffer (TcpExt TCPOFOQueue).
    w.link.setImpairments('ba', { reorder: 0.2, reorderDelayUs: 2000 });
    p2.write(pattern(300_000, 6));
    assert.ok(await w.run(() => servers[1]!.bytesRead === 300_000, ms(10_000)));
    n = tcpCounters(w, 'a');
    assert.ok(n.ofoQueue > 0, `out-of-order segments queued (${n.ofoQueue})`);
    // The other VS saw none of it.
    assert.equal(Object.values(tcpCounters(w, 'b')), Object.values(tcpCounters(w, 'b')).map(() => 0));
  } finally {
    w.stack.close();
  }
});

test('filters: --vs, states by ss\'s filter names and groups, local or remote port; bad values are refused', async () => {
  const w = stackWorld();
  try {
    createServer(w.a.ctx(), (s) => s.resume()).listen(80);
    createServer(w.stack.vs('b').netContext, (s) => s.resume()).listen(8080);
    w.stack.vs('a').createSocket('udp4').bind(53);
    const c1 = connect(w.b.ctx(), { port: 80, host: '10.1.1.1', localPort: 40000 }); c1.resume();
    const c2 = connect(w.b.ctx(1), 8080, '10.2.2.1'); c2.resume();
    createServer(w.b.ctx(), { allowHalfOpen: true }, (s) => { s.resume(); }).listen(9000);
    const out = connect(w.a.ctx(), 9000, '10.1.1.2'); out.resume();
    assert.ok(await w.run(() => rows(w, { state: 'established' }).length === 3, ms(1000)));
    out.end();
    assert.ok(await w.run(() => conn(w, 9000)!.state === 'FIN-WAIT-2', ms(1000)));
    const states = (o: { vs?: string; state?: string; port?: number }) => rows(w, o).map((r) => `${r.vs}/${r.proto}/${r.state}`).sort();
    assert.equal(states({}), ['a/tcp/ESTAB', 'a/tcp/FIN-WAIT-2', 'a/tcp/LISTEN', 'a/udp/UNCONN', 'b/tcp/ESTAB', 'b/tcp/LISTEN']);
    assert.equal(states({ vs: 'b' }), ['b/tcp/ESTAB', 'b/tcp/LISTEN']);
    assert.equal(states({ state: 'listening' }), ['a/tcp/LISTEN', 'b/tcp/LISTEN']);
    assert.equal(states({ state: 'LISTEN' }), ['a/tcp/LISTEN', 'b/tcp/LISTEN'], 'names in any case');
    assert.equal(states({ state: 'connected' }), ['a/tcp/ESTAB', 'a/tcp/FIN-WAIT-2', 'b/tcp/ESTAB'], 'connected: all but listening and closed');
    assert.equal(states({ state: 'big' }), states({}), 'big: all but syn-recv and time-wait');
    assert.equal(states({ state: 'bucket' }), []);
    assert.equal(states({ state: 'fin-wait-2,established', vs: 'a' }), ['a/tcp/ESTAB', 'a/tcp/FIN-WAIT-2']);
    assert.equal(states({ port: 80 }), ['a/tcp/ESTAB', 'a/tcp/LISTEN'], 'local port 80');
    assert.equal(states({ port: 9000 }), ['a/tcp/FIN-WAIT-2'], 'remote port 9000');
    assert.equal(states({ port: 40000 }), ['a/tcp/ESTAB'], 'the peer\'s port');
    assert.equal(states({ port: 80, state: 'listening' }), ['a/tcp/LISTEN']);
    assert.throws(() => rows(w, { state: 'estab' }), /unknown state 'estab' \(one or more of established, syn-sent, syn-recv/);
    assert.throws(() => rows(w, { state: '' }), /'state' must name states/);
    assert.throws(() => rows(w, { port: 0 }), /port number \(1-65535\)/);
    assert.throws(() => rows(w, { port: 65536 }), /port number/);
    assert.throws(() => w.stack.show('routes', { state: 'established' }), /narrows 'show connections' only/);
    assert.throws(() => rows(w, { vs: 'nope' }), /nope/);
    assert.equal([...parseStateFilter('synchronized')].sort(),
      ['CLOSE-WAIT', 'CLOSING', 'ESTAB', 'FIN-WAIT-1', 'FIN-WAIT-2', 'LAST-ACK', 'SYN-RECV', 'TIME-WAIT'], 'ss: connected but syn-sent');
  } finally {
    w.stack.close();
  }
});

test('CLI: show connections as a table with ss-style detail lines, --json, filters, and clear errors', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-conn-'));
  const sock = path.join(tmp, 'conn.sock');
  const w = stackWorld();
  const server = await ControlServer.listen(w.stack, sock);
  try {
    createServer(w.a.ctx(), (s) => s.resume()).listen(80);
    w.stack.vs('a').createSocket('udp6').bind(53);
    const c = connect(w.b.ctx(), 80, '10.1.1.1');
    c.resume();
    assert.ok(await w.run(() => rows(w, { state: 'established' }).length === 1, ms(1000)));
    let r = await cliAt(sock, ['show', 'connections']);
    assert.is(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.match(lines[0]!, /^VS\s+PROTO\s+STATE\s+RECV-Q\s+SEND-Q\s+LOCAL\s+REMOTE$/);
    assert.match(lines[1]!, /^a\s+tcp\s+LISTEN\s+0\s+511\s+\*:80\s+\*:\*$/);
    assert.match(lines[2]!, /^\t synq:0\/511 acceptq:0\/511$/);
    assert.match(lines[3]!, new RegExp(`^a\\s+tcp\\s+ESTAB\\s+0\\s+0\\s+10\\.1\\.1\\.1:80\\s+10\\.1\\.1\\.2:${c.localPort}$`));
    assert.match(lines[4]!, /^\t ts sack cubic wscale:\d+,\d+ rto:200 rtt:[\d.]+\/[\d.]+ mss:1448 advmss:1448 cwnd:10 bytes_sent:0 bytes_acked:0 bytes_received:0 /);
    assert.match(lines[5]!, /^a\s+udp\s+UNCONN\s+0\s+0\s+\*:53\s+\*:\*$/);
    assert.is(lines.length, 6);
    r = await cliAt(sock, ['show', 'connections', '--json']);
    assert.is(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out), rows(w));
    r = await cliAt(sock, ['show', 'connections', '--json', '--state', 'listening,established', '--port', '80', '--vs', 'a']);
    assert.equal((JSON.parse(r.out) as ConnectionRow[]).map((x) => x.state), ['LISTEN', 'ESTAB']);
    r = await cliAt(sock, ['show', 'connections', '--state', 'time-wait']);
    assert.is(r.out, '(none)');
    // Errors: exit code 2 and the valid names.
    r = await cliAt(sock, ['show', 'connections', '--state', 'estab']);
    assert.is(r.code, 2);
    assert.match(r.err, /--state: unknown state 'estab' \(one or more of established, .*listening, closing, all, connected, synchronized, bucket, big/);
    r = await cliAt(sock, ['show', 'connections', '--port', '0']);
    assert.is(r.code, 2);
    assert.match(r.err, /--port expects a port number \(1-65535\), got 0/);
    r = await cliAt(sock, ['show', 'connections', '--port', 'http']);
    assert.is(r.code, 2);
    r = await cliAt(sock, ['show', 'routes', '--state', 'established']);
    assert.is(r.code, 2);
    assert.match(r.err, /--state narrows 'show connections' only/);
    // The control socket checks the same request fields.
    const ask = (req: Record<string, unknown>) => controlRequest(sock, { cmd: 'show', kind: 'connections', ...req }, { timeoutMs: 5000 });
    assert.match((await ask({ state: 'nope' })).error!, /unknown state 'nope' \(one or more of established/);
    assert.match((await ask({ state: 5 })).error!, /'state' must be a non-empty string/);
    assert.match((await ask({ port: '80' })).error!, /'port' must be a non-negative integer/);
    assert.match((await ask({ port: 70000 })).error!, /'port' must be a port number \(1-65535\)/);
    assert.match((await controlRequest(sock, { cmd: 'show', kind: 'links', port: 80 })).error!, /narrows 'show connections' only/);
    const ok = await ask({ state: 'established', port: 80 });
    assert.ok(ok.ok);
    assert.is((ok.data as ConnectionRow[]).length, 1);
    // show counters: the TCP section.
    r = await cliAt(sock, ['show', 'counters']);
    assert.is(r.code, 0, r.err);
    assert.match(r.out, /\nTCP:\n\s+VS\s+ACTIVEOPENS\s+PASSIVEOPENS\s+ATTEMPTFAILS\s+ESTABRESETS\s+CURRESTAB\s+OUTRSTS\s+INRSTS\s+RETRANSSEGS\s+TIMEOUTS\s+SYNCOOKIESSENT\s+SYNCOOKIESRECV\s+SYNCOOKIESFAILED\s+OFOQUEUE\n\s+a\s+0\s+1\s+0\s+0\s+1\s/);
    r = await cliAt(sock, ['show', 'counters', '--json']);
    const cj = JSON.parse(r.out) as { vs: { vs: string; tcp: Counters }[] };
    assert.is(cj.vs[0]!.tcp.passiveOpens, 1);
    assert.is(cj.vs[0]!.tcp.currEstab, 1);
  } finally {
    await server.close();
    w.stack.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('shards: every shard\'s connections with a shard field; TCP counters summed over the shards', async () => {
  const w = shardWorld({
    config: shardConfig(),
    app: (s: Stack) => { s.vs('a').createServer((c) => c.resume()).listen(8); },
  });
  try {
    const socks = Array.from({ length: 8 }, () => { const c = connect(w.peer.ctx(), 8, '10.1.1.1'); c.resume(); return c; });
    const estab = () => (w.group.show('connections', { state: 'established' }) as (TcpInfo & { shard: number })[]);
    assert.ok(await w.run(() => estab().length === 8, ms(2000)), 'all 8 established');
    const all = w.group.show('connections') as (ConnectionRow & { shard: number })[];
    assert.equal(all.filter((r) => r.state === 'LISTEN').map((r) => r.shard), [0, 1], 'each shard listens');
    const per = (w.group.show('connections', { perShard: true }) as { shard: number; data: ConnectionRow[] }[]);
    for (const r of estab()) {
      assert.ok(per[r.shard]!.data.some((x) => x.state === 'ESTAB' && x.remote === r.remote), 'the row comes from the shard that owns the connection');
    }
    assert.equal(new Set(estab().map((r) => r.remote)).size, 8);
    assert.equal(estab().map((r) => r.remote).sort(), socks.map((c) => `10.1.1.2:${c.localPort}`).sort());
    // Counters: the merged VS row sums the shards'.
    const counters = w.group.show('counters') as { vs: { tcp: Counters }[] };
    const parts = w.group.show('counters', { perShard: true }) as { data: { vs: { tcp: Counters }[] } }[];
    const sum = (k: string) => parts.reduce((n, p) => n + p.data.vs[0]!.tcp[k]!, 0);
    assert.is(counters.vs[0]!.tcp.passiveOpens, 8);
    assert.is(sum('passiveOpens'), 8);
    assert.is(counters.vs[0]!.tcp.currEstab, 8);
    assert.ok(parts.every((p) => p.data.vs[0]!.tcp.currEstab < 8) || parts.length === 1, 'split over the shards');
    assert.throws(() => w.group.show('connections', { state: 'nope' }), /unknown state 'nope'/);
  } finally {
    w.group.close();
  }
});

test('threaded shards: show connections over the control socket lists each shard\'s rows; filters reach every shard', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-conn-thr-'));
  const app = path.join(tmp, 'app.js');
  fs.writeFileSync(app, `module.exports = (stack, { shard }) => {
    stack.vs('a').createServer(() => {}).listen(80);
    stack.vs('a').createSocket('udp4').bind(6000 + shard);
  };`);
  const s = await createStack(stackConfig({ devices: [{ name: 'eth0', driver: 'memory' }] } as never), { shards: 2, app, log: () => undefined });
  const sock = path.join(tmp, 'thr.sock');
  const server = await ControlServer.listen(s, sock);
  try {
    let r = await cliAt(sock, ['show', 'connections', '--json']);
    assert.is(r.code, 0, r.err);
    const all = JSON.parse(r.out) as (ConnectionRow & { shard: number })[];
    assert.equal(all.map((x) => `${x.shard} ${x.state} ${x.local}`), ['0 LISTEN *:80', '0 UNCONN 0.0.0.0:6000', '1 LISTEN *:80', '1 UNCONN 0.0.0.0:6001']);
    r = await cliAt(sock, ['show', 'connections', '--state', 'closed']);
    assert.is(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.match(lines[0]!, /^SHARD\s+VS\s+PROTO\s+STATE/);
    assert.match(lines[1]!, /^\s*0\s+a\s+udp\s+UNCONN\s+0\s+0\s+0\.0\.0\.0:6000\s+\*:\*$/);
    assert.match(lines[2]!, /^\s*1\s+a\s+udp\s+UNCONN\s+0\s+0\s+0\.0\.0\.0:6001\s+\*:\*$/);
    assert.is(lines.length, 3);
    r = await cliAt(sock, ['show', 'connections', '--port', '6001', '--json']);
    assert.equal((JSON.parse(r.out) as { shard: number }[]).map((x) => x.shard), [1]);
    const bad = await controlRequest(sock, { cmd: 'show', kind: 'connections', state: 'nope' }, { timeoutMs: 5000 });
    assert.is(bad.ok, false);
    assert.match(bad.error!, /unknown state 'nope'/);
    const c = await controlRequest(sock, { cmd: 'show', kind: 'counters' }, { timeoutMs: 5000 });
    const tcp = (c.data as { vs: { tcp: Counters }[] }).vs[0]!.tcp;
    assert.equal([tcp.passiveOpens, tcp.currEstab, tcp.syncookiesSent], [0, 0, 0], 'summed TCP counters, nothing happened yet');
  } finally {
    await server.close();
    await (s as ShardedStack).close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
