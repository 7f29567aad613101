/**
 * Regression: a TCP connection deadlocked once its receive window closed.
 * (a) The advertised window was rounded down to the window-scale unit after the no-shrink guard,
 *     so the right edge (RCV.NXT + RCV.WND) moved left (RFC 9293 3.8.6, RFC 7323 2.4 forbid it).
 * (b) With RCV.WND = 0, segments failing the acceptability test were dropped without processing
 *     their ACK (RFC 9293 3.10.7.4: "special allowance should be made to accept valid ACKs").
 * A peer that had already sent up to the old edge then had every ACK ignored, and the stack
 * retransmitted a segment the peer had acknowledged, forever.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TcpHeader } from '../protocols/tcp';
import { TcpConnection } from '../protocols/tcp/connection';
import { seqGeq } from '../protocols/tcp/seq';
import { TcpOptions, TcpState, TH_ACK, TH_SYN } from '../protocols/tcp/types';
import { mkSeg, pattern, RecHost, SECRET, SegSpec, TUPLE_A } from './tcp-harness';

const B_ISS = 1000;

interface Open { h: RecHost; c: TcpConnection; iss: number; peerWscale: number }

/** A (the stack) connects; the scripted peer B answers; no timestamps (plain sequence arithmetic). */
function open(opts: Partial<TcpOptions>, synack: Partial<SegSpec>): Open {
  const h = new RecHost();
  const c = new TcpConnection(h, TUPLE_A, opts, SECRET);
  h.conn = c;
  h.autoConsume = false; // the application does not read (an echo server blocked on its write)
  c.connect(0);
  const syn = h.take()[0]!;
  assert.is(syn.flags, TH_SYN);
  c.input(mkSeg({ seq: B_ISS, ack: syn.seq + 1, flags: TH_SYN | TH_ACK, window: 65535, mss: 1460, ...synack }), 10_000);
  assert.is(c.state, TcpState.Established);
  h.take();
  return { h, c, iss: syn.seq, peerWscale: synack.wscale ?? 0 };
}

/** Right edge advertised by one of our segments. */
function edge(s: TcpHeader, ws: number): number {
  return (s.ack + (s.window << ws)) >>> 0;
}

test('the advertised right edge never moves left while the window closes (window scale 3, odd segment sizes)', () => {
  const o = open({ rcvBuf: 256 * 1024 }, { wscale: 7 });
  const ws = o.c.recvWscale;
  assert.is(ws, 3);
  let last = -1;
  let seq = B_ISS + 1;
  let moves = 0;
  let acks = 0;
  // The peer sends 1001-byte segments (not a multiple of the scale unit) and nobody reads.
  for (let i = 0; i < 400 && o.c.rcvWnd > 0; i++) {
    o.c.input(mkSeg({ seq, ack: o.iss + 1, flags: TH_ACK, window: 1000, data: 1001 }), 20_000 + i * 10);
    seq += 1001;
    for (const s of o.h.take()) {
      if (!(s.flags & TH_ACK)) continue;
      acks++;
      const e = edge(s, ws);
      if (last >= 0 && !seqGeq(e, last)) moves++;
      if (last < 0 || seqGeq(e, last)) last = e;
    }
  }
  assert.ok(acks > 100, `enough ACKs seen (${acks})`);
  assert.is(moves, 0, `the right edge moved left ${moves} times`);
});

/**
 * The deadlock of the issue: the peer fills the whole first advertised window before any ACK
 * comes back (as a Linux sender with a large cwnd does), the stack's window closes, the stack
 * has data of its own in flight, and the peer acknowledges it. The peer behaves as Linux: a pure
 * ACK carries SEG.SEQ = its SND.NXT; its retransmission timeout resends its first unacknowledged
 * segment.
 */
test('window closed by a peer that sent up to the advertised edge: the peer\'s ACKs of our data are taken, no endless retransmission', () => {
  const o = open({ rcvBuf: 256 * 1024 }, { wscale: 7 });
  const ws = o.c.recvWscale;
  const firstEdge = (B_ISS + 1 + (65535 << ws)) >>> 0; // the window of our handshake ACK
  let seq = B_ISS + 1;
  let t = 20_000;
  // The peer's whole flight, 1001-byte segments cut at the edge, all sent before any ACK arrives.
  while (seq !== firstEdge) {
    const len = Math.min(1001, (firstEdge - seq) >>> 0);
    o.c.input(mkSeg({ seq, ack: o.iss + 1, flags: TH_ACK, window: 1000, data: len }), t);
    seq = (seq + len) >>> 0;
    t += 10;
  }
  const peerSndNxt = seq;
  o.h.take();
  // Our application writes; the peer's window (1000 << 7) lets it all go.
  o.c.write(pattern(0, 2920), 0, 2920, t);
  const out = o.h.take().filter((s) => s.payloadLen > 0);
  assert.is(out.length, 2);
  const ourEnd = (o.iss + 1 + 2920) >>> 0;
  // Linux-like peer: every segment it gets is acknowledged with a pure ACK at its SND.NXT; every
  // 1.5 s its retransmission timer resends [its SND.UNA, its SND.NXT) from our last ACK number.
  let peerUna = o.c.rcvNxt;
  let rtx = 0;
  let nextPeerRto = t + 1_500_000;
  for (let round = 0; round < 40 && o.c.sndUna !== ourEnd; round++) {
    t += 1000;
    o.c.input(mkSeg({ seq: peerSndNxt, ack: ourEnd, flags: TH_ACK, window: 1000 }), t);
    for (const s of o.h.take()) if (s.flags & TH_ACK) peerUna = s.ack;
    if (o.c.sndUna === ourEnd) break;
    // Nothing happened: the next event is our timer or the peer's.
    const next = Math.min(o.h.deadline, nextPeerRto);
    if (next === Infinity) break;
    t = next;
    if (next === nextPeerRto) {
      nextPeerRto = t + 1_500_000;
      if (peerUna !== peerSndNxt) {
        const len = Math.min(1001, (peerSndNxt - peerUna) >>> 0);
        o.c.input(mkSeg({ seq: peerUna, ack: ourEnd, flags: TH_ACK, window: 1000, data: len }), t);
      }
    } else {
      o.c.onTimer(t);
    }
    for (const s of o.h.take()) {
      if (s.payloadLen > 0) rtx++;
      if (s.flags & TH_ACK) peerUna = s.ack;
    }
  }
  assert.is(o.c.sndUna, ourEnd, `our data acknowledged by the peer stays unacknowledged after ${rtx} retransmissions`);
  assert.is(o.h.deadline, Infinity, 'no retransmission timer left running');
  assert.is(o.c.state, TcpState.Established);
});

test('RCV.WND = 0: a data segment at RCV.NXT is not taken but its ACK and window are (RFC 9293 3.10.7.4)', () => {
  const o = open({ rcvBuf: 4096, windowScale: false }, {});
  assert.is(o.c.recvWscale, 0);
  // Our data in flight.
  o.c.write(pattern(0, 1000), 0, 1000, 15_000);
  assert.is(o.h.take().filter((s) => s.payloadLen === 1000).length, 1);
  // The peer fills our 4096-byte window exactly.
  let seq = B_ISS + 1;
  for (let i = 0; i < 4; i++) {
    o.c.input(mkSeg({ seq, ack: o.iss + 1, flags: TH_ACK, window: 8000, data: 1024 }), 20_000 + i);
    seq += 1024;
  }
  const acks = o.h.take();
  assert.is(acks[acks.length - 1]!.window, 0, 'our window is closed');
  assert.is(o.c.rcvNxt, seq);
  // A new data segment at RCV.NXT (a probe with data) that also acknowledges our 1000 bytes and
  // opens the peer's window.
  o.c.input(mkSeg({ seq, ack: o.iss + 1001, flags: TH_ACK, window: 9000, data: 500 }), 30_000);
  assert.is(o.c.rcvNxt, seq, 'the data beyond the closed window is not taken');
  assert.is(o.h.rxBytes, 4096);
  assert.is(o.c.sndUna, (o.iss + 1001) >>> 0, 'the ACK is taken');
  assert.is(o.c.sndWnd, 9000, 'the window update is taken');
  assert.is(o.h.deadline, Infinity, 'the retransmission timer stops: everything is acknowledged');
  const r = o.h.take();
  assert.is(r.length, 1, 'answered with one ACK');
  assert.equal([r[0]!.ack, r[0]!.window, r[0]!.payloadLen], [seq, 0, 0]);
});

test('data in flight when the peer\'s window closes: retransmissions answered by zero-window ACKs never time the connection out (RFC 1122 4.2.2.17)', () => {
  const o = open({}, { wscale: 7 });
  o.c.write(pattern(0, 1000), 0, 1000, 20_000);
  assert.is(o.h.take().filter((s) => s.payloadLen === 1000).length, 1);
  // The peer's window closed before the data arrived: it keeps answering with ACK = SND.UNA, window 0.
  let t = 20_000;
  const rounds = 25; // more than maxRetransmits (15)
  for (let i = 0; i < rounds; i++) {
    t = o.h.deadline;
    assert.ok(t < Infinity, `timer armed (round ${i})`);
    o.c.onTimer(t);
    const s = o.h.take();
    assert.ok(s.length >= 1, 'a retransmission (a probe in effect)');
    o.c.input(mkSeg({ seq: B_ISS + 1, ack: o.iss + 1, flags: TH_ACK, window: 0 }), t + 500);
    o.h.take();
    assert.is(o.c.state, TcpState.Established, `still established after ${i + 1} answered retransmissions`);
  }
  assert.equal(o.h.closed, [], 'no ETIMEDOUT');
  // The window opens: the data is acknowledged, the transfer goes on.
  o.c.input(mkSeg({ seq: B_ISS + 1, ack: o.iss + 1001, flags: TH_ACK, window: 1000 }), t + 1000);
  assert.is(o.c.sndUna, (o.iss + 1001) >>> 0);
  assert.is(o.h.deadline, Infinity);
});

test('the window reopens after retransmission timeouts into it: the head is resent at once and the timer loses its backoff', () => {
  const o = open({}, { wscale: 7 });
  o.c.write(pattern(0, 1000), 0, 1000, 20_000);
  o.h.take();
  o.c.input(mkSeg({ seq: B_ISS + 1, ack: o.iss + 1, flags: TH_ACK, window: 0 }), 25_000);
  let t = 25_000;
  for (let i = 0; i < 6; i++) { // 6 timeouts: the timer is backed off 64-fold
    t = o.h.deadline;
    o.c.onTimer(t);
    o.h.take();
    o.c.input(mkSeg({ seq: B_ISS + 1, ack: o.iss + 1, flags: TH_ACK, window: 0 }), t + 500);
    o.h.take();
  }
  const rto = o.c.rto;
  assert.ok(o.h.deadline - (t + 500) > 16 * rto, 'backed off while the window was closed');
  // The window update: nothing new acknowledged (the data sent into the closed window was dropped).
  const now = t + 10_000;
  o.c.input(mkSeg({ seq: B_ISS + 1, ack: o.iss + 1, flags: TH_ACK, window: 1000 }), now);
  const s = o.h.take().filter((x) => x.payloadLen > 0);
  assert.is(s.length, 1, 'the first unacknowledged segment is resent at once');
  assert.is(s[0]!.seq, (o.iss + 1) >>> 0);
  assert.is(o.h.deadline, now + rto, 'the retransmission timer restarts without backoff');
  o.c.input(mkSeg({ seq: B_ISS + 1, ack: o.iss + 1001, flags: TH_ACK, window: 1000 }), now + 1000);
  assert.is(o.c.sndUna, (o.iss + 1001) >>> 0);
});

test('data in flight, the peer silent: the connection still times out (maxRetransmits)', () => {
  const o = open({ rtoMaxUs: 2_000_000 }, { wscale: 7 });
  o.c.write(pattern(0, 1000), 0, 1000, 20_000);
  o.c.input(mkSeg({ seq: B_ISS + 1, ack: o.iss + 1, flags: TH_ACK, window: 0 }), 30_000);
  for (let i = 0; i < 40 && !o.c.isClosed(); i++) o.c.onTimer(o.h.deadline);
  assert.equal(o.h.closed, ['ETIMEDOUT']);
});

test.run();
