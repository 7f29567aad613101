/**
 * Regression: no zero-window probes when the peer's window was already zero at write time. The
 * persist timer must run whenever data waits, the send window is zero and no retransmission timer
 * runs (RFC 1122 4.2.2.17, RFC 9293 3.8.6.1), whatever closed the window and whenever the
 * application wrote.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TcpConnection } from '../protocols/tcp/connection';
import { TcpState, TH_ACK, TH_SYN } from '../protocols/tcp/types';
import { mkSeg, pattern, RecHost, SECRET, TUPLE_A, TUPLE_B } from './tcp-harness';
import { twoHosts } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import { realTimeHosts, until } from './lib/realtime';

const B_ISS = 1000;

function activeOpen(window: number): { h: RecHost; c: TcpConnection; iss: number } {
  const h = new RecHost();
  const c = new TcpConnection(h, TUPLE_A, {}, SECRET);
  h.conn = c;
  c.connect(0);
  const syn = h.take()[0]!;
  c.input(mkSeg({ seq: B_ISS, ack: syn.seq + 1, flags: TH_SYN | TH_ACK, window, mss: 1000 }), 10_000);
  assert.is(c.state, TcpState.Established);
  h.take();
  return { h, c, iss: syn.seq };
}

/** Fires the timer `n` times (the peer answers each probe with a zero window); returns the probe times. */
function probes(o: { h: RecHost; c: TcpConnection; iss: number }, n: number): number[] {
  const at: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = o.h.deadline;
    assert.ok(t < Infinity, `timer armed before probe ${i + 1}`);
    o.c.onTimer(t);
    const s = o.h.take();
    assert.is(s.length, 1, `one probe at ${t}`);
    assert.equal([s[0]!.seq, s[0]!.payloadLen, s[0]!.flags], [o.iss, 0, TH_ACK], 'probe: SEG.SEQ = SND.UNA - 1, no data');
    at.push(t);
    o.c.input(mkSeg({ seq: B_ISS + 1, ack: o.iss + 1, flags: TH_ACK, window: 0 }), t + 100);
    assert.is(o.h.take().length, 0);
  }
  return at;
}

function backoff(at: number[], start: number): void {
  const gaps = at.map((t, i) => t - (i ? at[i - 1]! : start));
  for (let i = 1; i < gaps.length; i++) assert.is(gaps[i], gaps[i - 1]! * 2, `exponential backoff (gaps ${gaps})`);
}

test('window zero in the SYN-ACK, then write(): persist probes with backoff; the opening resumes the transfer', () => {
  const o = activeOpen(0);
  o.c.write(pattern(0, 3000), 0, 3000, 20_000);
  assert.is(o.h.take().length, 0, 'nothing fits the zero window');
  const at = probes(o, 4);
  backoff(at, 20_000);
  assert.is(o.c.state, TcpState.Established);
  o.c.input(mkSeg({ seq: B_ISS + 1, ack: o.iss + 1, flags: TH_ACK, window: 5000 }), at[3]! + 200);
  const data = o.h.take().filter((s) => s.payloadLen > 0);
  assert.equal(data.map((s) => s.payloadLen), [1000, 1000, 1000], 'the transfer resumes');
});

test('everything acknowledged with a zero window, the application writes later: persist probes', () => {
  const o = activeOpen(4000);
  o.c.write(pattern(0, 2000), 0, 2000, 20_000);
  assert.is(o.h.take().length, 2);
  // The peer acknowledges all of it and its window is now zero; no data waits at that moment.
  o.c.input(mkSeg({ seq: B_ISS + 1, ack: o.iss + 2001, flags: TH_ACK, window: 0 }), 30_000);
  o.h.take();
  assert.is(o.h.deadline, Infinity, 'nothing to send: no timer');
  o.c.write(pattern(0, 500), 0, 500, 5_000_000);
  assert.is(o.h.take().length, 0);
  const at = probes({ ...o, iss: o.iss + 2000 }, 3);
  backoff(at, 5_000_000);
  o.c.input(mkSeg({ seq: B_ISS + 1, ack: o.iss + 2001, flags: TH_ACK, window: 4000 }), at[2]! + 200);
  assert.equal(o.h.take().filter((s) => s.payloadLen > 0).map((s) => s.payloadLen), [500]);
});

test('write() without a time (queued, flushed later) into a zero window: persist probes', () => {
  const o = activeOpen(0);
  o.c.write(pattern(0, 1000), 0, 1000);
  o.c.flush(20_000);
  assert.is(o.h.take().length, 0);
  backoff(probes(o, 3), 20_000);
});

test('passive open: the handshake-completing ACK closes the window, then write(): persist probes', () => {
  const h = new RecHost(TUPLE_B.localAddr as number, TUPLE_B.remoteAddr as number);
  const syn = mkSeg({ seq: 5000, flags: TH_SYN, window: 29200, mss: 1000, srcPort: 1234, dstPort: 80 });
  const c = TcpConnection.acceptSyn(h, TUPLE_B, {}, SECRET, syn, 0);
  const sa = h.take()[0]!;
  c.input(mkSeg({ seq: 5001, ack: sa.seq + 1, flags: TH_ACK, window: 0, srcPort: 1234, dstPort: 80 }), 2000);
  assert.is(c.state, TcpState.Established);
  h.take();
  c.write(pattern(0, 800), 0, 800, 10_000);
  assert.is(h.take().length, 0);
  const t = h.deadline;
  assert.ok(t > 10_000 && t < Infinity, 'persist timer armed');
  c.onTimer(t);
  const p = h.take();
  assert.equal([p.length, p[0]!.seq, p[0]!.payloadLen], [1, sa.seq, 0], 'a probe');
});

test('through the stack: the peer acknowledged everything with a zero window before the application writes again', async () => {
  const w = twoHosts();
  let server: Socket | null = null;
  createServer(w.a.ctx(), (s: Socket) => { server = s; }).listen(80);
  const c = connect(w.b.ctx(), 80, '10.1.1.1');
  c.pause(); // the client reads nothing: its window closes
  assert.ok(await w.run(() => server !== null, 1_000_000));
  const srv = server as unknown as Socket;
  const e = srv.connection!;
  // Fill the client's window exactly: everything is acknowledged, the window is zero.
  let sent = 0;
  for (let i = 0; i < 10 && (sent === 0 || e.conn.sndWnd > 0); i++) {
    const n = sent === 0 ? 200 * 1024 : e.conn.sndWnd;
    srv.write(Buffer.alloc(n, 1));
    sent += n;
    await w.run(() => false, 2_000_000);
  }
  assert.is(e.conn.sndWnd, 0, 'the client advertises a zero window');
  assert.is(e.conn.sndUna, e.conn.sndMax, 'all acknowledged');
  const probesBefore = e.conn.stats.windowProbes;
  srv.write(Buffer.alloc(1000, 2));
  await w.run(() => false, 10_000_000);
  assert.ok(e.conn.stats.windowProbes - probesBefore >= 2, `zero-window probes sent: ${e.conn.stats.windowProbes - probesBefore}`);
  let got = 0;
  c.on('data', (d: Buffer) => { got += d.length; });
  c.resume();
  assert.ok(await w.run(() => got === sent + 1000, 30_000_000), `received ${got}`);
});

test('real time: a write into a zero window wakes the sleeping runtime for the persist timer; the transfer resumes', async () => {
  const w = realTimeHosts();
  try {
    let server: Socket | null = null;
    createServer(w.a.ctx, (s: Socket) => { server = s; }).listen(80);
    const c = connect(w.b.ctx, 80, '10.1.1.1');
    c.pause();
    assert.ok(await until(() => server !== null, 10_000), 'connected');
    const srv = server as unknown as Socket;
    const e = srv.connection!;
    let sent = 0;
    for (let i = 0; i < 10 && (sent === 0 || e.conn.sndWnd > 0); i++) {
      const n = sent === 0 ? 200 * 1024 : e.conn.sndWnd;
      srv.write(Buffer.alloc(n, 1));
      sent += n;
      assert.ok(await until(() => e.conn.sndUna === e.conn.sndMax, 10_000), 'acknowledged');
      await until(() => false, 100); // the client's last window update
    }
    assert.is(e.conn.sndWnd, 0, 'zero window, nothing in flight');
    await until(() => false, 300); // both runtimes go to sleep (nothing due)
    const probes0 = e.conn.stats.windowProbes;
    srv.write(Buffer.alloc(1000, 2));
    // The RTO after a LAN handshake is the 200 ms floor: probes at about 0.2 s, 0.6 s, 1.4 s.
    assert.ok(await until(() => e.conn.stats.windowProbes - probes0 >= 2, 10_000), `probes sent: ${e.conn.stats.windowProbes - probes0}`);
    let got = 0;
    c.on('data', (d: Buffer) => { got += d.length; });
    c.resume();
    assert.ok(await until(() => got === sent + 1000, 15_000), `received ${got} of ${sent + 1000}`);
    c.destroy();
  } finally {
    w.stop();
  }
});

test.run();
