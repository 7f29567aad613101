/**
 * Scripted-segment tests for the TCP state machine (packetdrill spirit): inject a segment, expect
 * segments with given flags/seq/ack/window/options, advance the virtual clock.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Drop } from '../protocols/drop';
import { TcpHeader } from '../protocols/tcp';
import { TcpConnection } from '../protocols/tcp/connection';
import {
  TcpSegmentOut, TcpState, TH_ACK, TH_FIN, TH_PSH, TH_RST, TH_SYN,
} from '../protocols/tcp/types';
import { rstFor } from '../protocols/tcp/rst';
import { giveRing, RING_POOL_MAX_BYTES, ringPoolBytes, takeRing } from '../protocols/tcp/rings';
import { check as cookieCheck, synAckFor } from '../protocols/tcp/syncookie';
import { isnFor } from '../protocols/tcp/isn';
import { hashKey } from '../protocols/tcp/hash';
import { B_ISS, F_SA, fmt, mkSeg, none, one, Open, openActive, payload, pattern, RecHost, SECRET, SegSpec, TUPLE_A, TUPLE_B } from './tcp-harness';


/** Peer segment with the usual ack/ts. */
function peer(o: Open, s: Partial<SegSpec> & { seq?: number }, tsVal = 6000): TcpHeader {
  const spec: SegSpec = { seq: B_ISS + 1, ack: o.seq(0), flags: TH_ACK, window: 1000, ...s } as SegSpec;
  if (o.c.timestamps && !s.ts) spec.ts = [tsVal, 0];
  return mkSeg(spec);
}

// ------------------------------------------------------------------------------------ handshakes

test('active open negotiates MSS, window scale, SACK and timestamps', () => {
  const h = new RecHost();
  const c = new TcpConnection(h, TUPLE_A, { rcvBuf: 1 << 20 }, SECRET);
  c.connect(0);
  assert.is(c.state, TcpState.SynSent);
  const syn = one(h);
  assert.equal([syn.flags, syn.mss, syn.wscale, syn.sackOk, syn.hasTs, syn.tsEcr], [TH_SYN, 1460, 5, true, true, 0]);
  assert.is(syn.window, 65535);
  assert.is(h.deadline, 1_000_000, 'initial RTO 1 s');
  c.input(mkSeg({ seq: B_ISS, ack: syn.seq + 1, flags: F_SA, mss: 1400, wscale: 7, sackOk: true, ts: [777, syn.tsVal] }), 20_000);
  const ack = one(h);
  assert.equal([ack.seq, ack.ack, ack.flags, ack.tsEcr], [syn.seq + 1, B_ISS + 1, TH_ACK, 777]);
  assert.is(ack.window, (1 << 20) >>> 5);
  assert.equal([c.sndMss, c.sendWscale, c.recvWscale, c.sack, c.timestamps], [1388, 7, 5, true, true]);
  assert.ok(c.srtt > 0, 'RTT sampled from the handshake');
  assert.is(c.sndWnd, 65535, "window of a SYN-ACK is never scaled");
});

test('active open when the peer offers no options: MSS 536, nothing scaled', () => {
  const o = openActive({}, { mss: undefined, wscale: undefined, sackOk: false, ts: undefined });
  assert.equal([o.c.sndMss, o.c.sendWscale, o.c.recvWscale, o.c.sack, o.c.timestamps], [536, 0, 0, false, false]);
  o.c.write(pattern(0, 100), 0, 100, 20_000);
  const d = one(o.h);
  assert.not.ok(d.hasTs);
  assert.is(d.window, 65535);
  assert.is(d.payloadLen, 100);
});

test('passive open: SYN-ACK mirrors the offered options, ACK establishes', () => {
  const h = new RecHost(TUPLE_B.localAddr as number, TUPLE_B.remoteAddr as number);
  const syn = mkSeg({ seq: 5000, flags: TH_SYN, window: 29200, mss: 1460, wscale: 7, sackOk: true, ts: [100, 0], srcPort: 1234, dstPort: 80 });
  const c = TcpConnection.acceptSyn(h, TUPLE_B, {}, SECRET, syn, 0);
  assert.is(c.state, TcpState.SynReceived);
  const sa = one(h);
  assert.equal([sa.flags, sa.ack, sa.mss, sa.sackOk, sa.hasTs, sa.tsEcr, sa.wscale], [F_SA, 5001, 1460, true, true, 100, 3]);
  // A retransmitted SYN gets the SYN-ACK again.
  c.input(syn, 1000);
  assert.is(one(h).seq, sa.seq);
  assert.is(h.established, 0);
  c.input(mkSeg({ seq: 5001, ack: sa.seq + 1, flags: TH_ACK, window: 500, ts: [101, sa.tsVal], srcPort: 1234, dstPort: 80 }), 2000);
  assert.is(c.state, TcpState.Established);
  assert.is(h.established, 1);
  assert.is(c.sndWnd, 500 << 7);
});

test('passive open without options and an ACK for the wrong sequence gets RST', () => {
  const h = new RecHost();
  const syn = mkSeg({ seq: 5000, flags: TH_SYN, srcPort: 1234, dstPort: 80 });
  const c = TcpConnection.acceptSyn(h, TUPLE_B, {}, SECRET, syn, 0);
  const sa = one(h);
  assert.equal([sa.mss, sa.wscale, sa.sackOk, sa.hasTs], [1460, -1, false, false]);
  assert.is(c.input(mkSeg({ seq: 5001, ack: sa.seq + 77, flags: TH_ACK, srcPort: 1234, dstPort: 80 }), 10), Drop.TcpBadAck);
  const rst = one(h);
  assert.equal([rst.flags, rst.seq], [TH_RST, sa.seq + 77]);
  assert.is(c.state, TcpState.SynReceived);
});

test('simultaneous open: SYN in SYN_SENT -> SYN_RECEIVED -> ESTABLISHED', () => {
  const h = new RecHost();
  const c = new TcpConnection(h, TUPLE_A, {}, SECRET);
  c.connect(0);
  const syn = one(h);
  c.input(mkSeg({ seq: B_ISS, flags: TH_SYN, mss: 1460, ts: [1, 0], sackOk: true, wscale: 2 }), 100);
  assert.is(c.state, TcpState.SynReceived);
  const sa = one(h);
  assert.equal([sa.flags, sa.seq, sa.ack], [F_SA, syn.seq, B_ISS + 1]);
  // The peer's SYN-ACK (same ISN) is answered with an ACK; the peer's ACK establishes.
  c.input(mkSeg({ seq: B_ISS, ack: syn.seq + 1, flags: F_SA, mss: 1460, ts: [2, sa.tsVal], sackOk: true, wscale: 2 }), 200);
  c.input(mkSeg({ seq: B_ISS + 1, ack: syn.seq + 1, flags: TH_ACK, ts: [3, sa.tsVal] }), 300);
  assert.is(c.state, TcpState.Established);
  assert.is(h.established, 1);
});

test('SYN_SENT: RST with an acceptable ACK refuses; bad ACK gets RST; SYN retries time out', () => {
  const h = new RecHost();
  const c = new TcpConnection(h, TUPLE_A, {}, SECRET);
  c.connect(0);
  const syn = one(h);
  assert.is(c.input(mkSeg({ seq: 0, ack: syn.seq + 5, flags: TH_ACK }), 1), Drop.TcpBadAck);
  assert.equal([one(h).flags], [TH_RST]);
  assert.is(c.input(mkSeg({ seq: 0, flags: TH_RST }), 1), Drop.TcpBadAck, 'RST without ACK ignored');
  c.input(mkSeg({ seq: 0, ack: syn.seq + 1, flags: TH_RST | TH_ACK }), 2);
  assert.is(c.state, TcpState.Closed);
  assert.equal(h.closed, ['ECONNREFUSED']);
  assert.is(h.released, 1);

  const h2 = new RecHost();
  const c2 = new TcpConnection(h2, TUPLE_A, { synRetries: 3 }, SECRET);
  c2.connect(0);
  const times: number[] = [];
  while (c2.state !== TcpState.Closed && h2.deadline < Infinity) {
    const t = h2.deadline;
    c2.onTimer(t);
    times.push(t);
  }
  assert.equal(times, [1e6, 3e6, 7e6, 15e6], 'exponential backoff 1, 2, 4, 8 s');
  assert.is(h2.take().filter((s) => s.flags === TH_SYN).length, 4);
  assert.equal(h2.closed, ['ETIMEDOUT']);
});

// ------------------------------------------------------------------------------------ data in

test('delayed ACK: one segment waits 40 ms, the second is ACKed at once', () => {
  const o = openActive();
  o.c.input(peer(o, { data: 100 }), 20_000);
  none(o.h);
  assert.is(o.h.deadline, 60_000);
  o.c.onTimer(60_000);
  const a = one(o.h);
  assert.equal([a.ack, a.flags], [B_ISS + 101, TH_ACK]);
  o.c.input(peer(o, { seq: B_ISS + 101, data: 1000 }), 70_000);
  none(o.h);
  o.c.input(peer(o, { seq: B_ISS + 1101, data: 1000 }), 71_000);
  assert.is(one(o.h).ack, B_ISS + 2101);
  assert.is(o.h.rxBytes, 2100);
});

test('out-of-order data: immediate duplicate ACK with SACK blocks, delivery in order after the hole fills', () => {
  const o = openActive();
  const d = pattern(0, 3000);
  o.c.input(peer(o, { seq: B_ISS + 1001, data: d.subarray(1000, 2000) }), 20_000);
  let a = one(o.h);
  assert.is(a.ack, B_ISS + 1);
  assert.equal([a.sackCount, a.sackStart[0], a.sackEnd[0]], [1, B_ISS + 1001, B_ISS + 2001]);
  o.c.input(peer(o, { seq: B_ISS + 2501, data: d.subarray(2500, 3000) }), 20_100);
  a = one(o.h);
  assert.equal([a.sackCount, a.sackStart[0], a.sackEnd[0], a.sackStart[1], a.sackEnd[1]], [2, B_ISS + 2501, B_ISS + 3001, B_ISS + 1001, B_ISS + 2001], 'most recent block first');
  assert.is(o.h.rxBytes, 0);
  o.c.input(peer(o, { seq: B_ISS + 1, data: d.subarray(0, 1000) }), 20_200);
  a = one(o.h);
  assert.equal([a.ack, a.sackCount], [B_ISS + 2001, 1]);
  o.c.input(peer(o, { seq: B_ISS + 1801, data: d.subarray(1800, 2600) }), 20_300); // overlaps both sides
  a = one(o.h);
  assert.equal([a.ack, a.sackCount, a.sackStart[0], a.sackEnd[0]], [B_ISS + 3001, 1, B_ISS + 1801, B_ISS + 2001],
    'the part already received is reported as a duplicate (D-SACK)');
  assert.ok(Buffer.compare(Buffer.from(o.h.received()), Buffer.from(d)) === 0);
});

test('D-SACK (RFC 2883): a duplicate segment is reported once as the first SACK block', () => {
  const o = openActive();
  const d = pattern(0, 3000);
  o.c.input(peer(o, { seq: B_ISS + 1, data: d.subarray(0, 1000) }), 20_000);
  o.c.input(peer(o, { seq: B_ISS + 1001, data: d.subarray(1000, 2000) }), 20_001);
  let a = one(o.h);
  assert.equal([a.ack, a.sackCount], [B_ISS + 2001, 0]);
  // A spurious retransmission of the first segment (entirely below RCV.NXT).
  o.c.input(peer(o, { seq: B_ISS + 1, data: d.subarray(0, 1000) }), 20_100);
  a = one(o.h);
  assert.equal([a.ack, a.sackCount, a.sackStart[0], a.sackEnd[0]], [B_ISS + 2001, 1, B_ISS + 1, B_ISS + 1001]);
  // Duplicate of out-of-order data: the D-SACK block, then the block that contains it.
  o.c.input(peer(o, { seq: B_ISS + 2501, data: d.subarray(2500, 3000) }), 20_200);
  a = one(o.h);
  assert.equal([a.sackCount, a.sackStart[0], a.sackEnd[0]], [1, B_ISS + 2501, B_ISS + 3001], 'reported once only');
  o.c.input(peer(o, { seq: B_ISS + 2601, data: d.subarray(2600, 2800) }), 20_300);
  a = one(o.h);
  assert.equal([a.ack, a.sackCount, a.sackStart[0], a.sackEnd[0], a.sackStart[1], a.sackEnd[1]],
    [B_ISS + 2001, 2, B_ISS + 2601, B_ISS + 2801, B_ISS + 2501, B_ISS + 3001]);
  o.c.input(peer(o, { seq: B_ISS + 2001, data: d.subarray(2000, 2500) }), 20_400);
  a = one(o.h);
  assert.equal([a.ack, a.sackCount], [B_ISS + 3001, 0]);
  assert.ok(Buffer.compare(Buffer.from(o.h.received()), Buffer.from(d)) === 0);
});

test('after a timeout, an ACK echoing a timestamp older than the retransmission gives no RTT sample', () => {
  const o = openActive();
  const srtt0 = o.c.srtt;
  o.c.write(pattern(0, 1000), 0, 1000, 20_000);
  const first = one(o.h);
  // The ACK of the first transmission is lost: the retransmission timer fires, twice.
  o.c.onTimer(o.h.deadline);
  const rx1 = one(o.h);
  o.c.onTimer(o.h.deadline);
  const rx2 = one(o.h);
  assert.equal([rx1.seq, rx2.seq], [first.seq, first.seq]);
  assert.ok(rx2.tsVal > first.tsVal);
  // A late ACK that echoes the first transmission (sent 3 s ago): only ACK loss, not the path.
  const late = o.h.deadline - 1000;
  o.c.input(peer(o, { ack: o.seq(1000), ts: [6001, first.tsVal] }), late);
  assert.is(o.c.srtt, srtt0, 'no sample from the stale echo');
  // Later ACKs echoing fresh timestamps are sampled again.
  o.c.write(pattern(0, 1000), 0, 1000, late + 1000);
  const next = one(o.h);
  o.c.input(peer(o, { ack: o.seq(2000), ts: [6002, next.tsVal] }), late + 6000);
  assert.ok(o.c.srtt !== srtt0 && o.c.srtt < srtt0 + 10_000, `sampled (srtt ${o.c.srtt})`);
});

test('Karn in the handshake: a SYN-ACK after SYN timeouts gives no RTT sample, even echoing a timestamp', () => {
  const h = new RecHost();
  const c = new TcpConnection(h, TUPLE_A, {}, SECRET);
  c.connect(0);
  const syn1 = one(h);
  c.onTimer(h.deadline);
  one(h);
  c.onTimer(h.deadline);
  one(h);
  const t = h.deadline - 1000;
  c.input(mkSeg({ seq: B_ISS, ack: syn1.seq + 1, flags: F_SA, mss: 1460, wscale: 7, sackOk: true, ts: [777, syn1.tsVal] }), t);
  assert.is(c.state, TcpState.Established);
  assert.is(c.srtt, 0, 'no sample spanning the SYN timeouts');
});

test('passive open: a retransmitted SYN is answered echoing its timestamp; the completing ACK after a SYN-ACK timeout gives no sample', () => {
  const h = new RecHost();
  const syn = mkSeg({ seq: 5000, flags: TH_SYN, window: 29200, mss: 1460, wscale: 7, sackOk: true, ts: [100, 0], srcPort: 1234, dstPort: 80 });
  const c = TcpConnection.acceptSyn(h, TUPLE_B, {}, SECRET, syn, 0);
  assert.is(one(h).tsEcr, 100);
  c.input(mkSeg({ seq: 5000, flags: TH_SYN, window: 29200, mss: 1460, wscale: 7, sackOk: true, ts: [1100, 0], srcPort: 1234, dstPort: 80 }), 1_000_000);
  const sa2 = one(h);
  assert.is(sa2.tsEcr, 1100, 'echoes the newest SYN');
  c.onTimer(h.deadline); // our SYN-ACK times out too
  const sa3 = one(h);
  c.input(mkSeg({ seq: 5001, ack: (sa3.seq + 1) >>> 0, flags: TH_ACK, window: 29200, ts: [4000, sa2.tsVal], srcPort: 1234, dstPort: 80 }), 4_000_000);
  assert.is(c.state, TcpState.Established);
  assert.is(c.srtt, 0, 'no sample after our SYN-ACK was retransmitted');
});

test('D-SACK needs SACK: without it a duplicate gets a plain ACK', () => {
  const o = openActive({}, { mss: 1460, wscale: 7, sackOk: false, ts: [5000, 0] });
  const d = pattern(0, 1000);
  o.c.input(peer(o, { seq: B_ISS + 1, data: d }), 20_000);
  o.c.onTimer(o.h.deadline);
  assert.is(one(o.h).ack, B_ISS + 1001);
  o.c.input(peer(o, { seq: B_ISS + 1, data: d }), 20_100);
  const a = one(o.h);
  assert.equal([a.ack, a.sackCount], [B_ISS + 1001, 0]);
});

test('receive window follows unconsumed data, no silly window, window update on read', () => {
  const o = openActive({ rcvBuf: 8192, windowScale: false }, { mss: 1000 });
  o.h.autoConsume = false;
  for (let i = 0; i < 8; i++) o.c.input(peer(o, { seq: B_ISS + 1 + i * 1000, data: 1000 }), 20_000 + i);
  const acks = o.h.take();
  const last = acks[acks.length - 1]!;
  assert.equal([last.ack, last.window], [B_ISS + 8001, 192]);
  // Beyond the window: dropped and ACKed.
  assert.is(o.c.input(peer(o, { seq: B_ISS + 8001, data: 1000 }), 30_000), Drop.None);
  const a = one(o.h);
  assert.is(a.ack, B_ISS + 8193, 'only the part inside the window was taken');
  assert.is(a.window, 0);
  // Reading a little does not announce a small window (SWS); reading more does.
  o.c.consumed(500, 31_000);
  none(o.h);
  o.c.consumed(4000, 32_000);
  const u = one(o.h);
  assert.is(u.window, 4500);
});

// ------------------------------------------------------------------------------------ data out

test('initial window of 10 segments, Nagle holds a small tail, noDelay sends it', () => {
  const o = openActive({}, { mss: 1000, ts: undefined, sackOk: false, wscale: undefined });
  const n = o.c.write(pattern(0, 20_500), 0, 20_500, 20_000);
  assert.is(n, 20_500);
  const segs = o.h.take();
  assert.is(segs.length, 10);
  assert.ok(segs.every((s, i) => s.seq === o.seq(i * 1000) && s.payloadLen === 1000));
  // Everything acknowledged: the rest goes out; the 500-byte tail waits for the ACK (Nagle).
  o.c.input(peer(o, { ack: o.seq(10_000), window: 65535 }), 30_000);
  const s2 = o.h.take();
  assert.is(s2.length, 10);
  assert.is(s2[9]!.payloadLen, 1000);
  o.c.input(peer(o, { ack: o.seq(15_000), window: 65535 }), 40_000);
  none(o.h);
  o.c.input(peer(o, { ack: o.seq(20_000), window: 65535 }), 41_000);
  const tail = one(o.h);
  assert.equal([tail.payloadLen, tail.flags], [500, TH_ACK | TH_PSH]);
  o.c.setNoDelay(true);
  o.c.write(pattern(0, 10), 0, 10, 42_000);
  assert.is(one(o.h).payloadLen, 10, 'noDelay: small segment with data in flight');
});

test('RTO: retransmission, exponential backoff, Karn, ETIMEDOUT after maxRetransmits', () => {
  const o = openActive({ maxRetransmits: 3 }, { mss: 1000, ts: undefined });
  const rto = o.c.rto;
  assert.ok(rto >= 200_000, `rto ${rto} >= 200 ms minimum`);
  o.c.write(pattern(0, 1000), 0, 1000, 100_000);
  const d = one(o.h);
  assert.is(o.h.deadline, 100_000 + rto);
  let t = o.h.deadline;
  o.c.onTimer(t);
  let r = one(o.h);
  assert.equal([r.seq, r.payloadLen], [d.seq, 1000]);
  assert.is(o.c.cwnd, 1000, 'loss window');
  assert.is(o.h.deadline - t, 2 * rto);
  t = o.h.deadline; o.c.onTimer(t); one(o.h);
  assert.is(o.h.deadline - t, 4 * rto);
  t = o.h.deadline; o.c.onTimer(t); one(o.h);
  t = o.h.deadline; o.c.onTimer(t);
  r = one(o.h);
  assert.is(r.flags & TH_RST, TH_RST);
  assert.equal(o.h.closed, ['ETIMEDOUT']);
  assert.is(o.c.stats.rtoExpirations, 4);
});

test('RTT estimation (RFC 6298) from timestamps and the RTO follows it', () => {
  const o = openActive({}, { mss: 1000 });
  let now = 100_000;
  for (let i = 0; i < 40; i++) {
    o.c.write(pattern(0, 1000), 0, 1000, now);
    const s = one(o.h);
    now += 300_000;
    o.c.input(peer(o, { ack: (s.seq + 1000) >>> 0, window: 65535, ts: [6000 + i, s.tsVal] }), now);
  }
  assert.ok(Math.abs(o.c.srtt - 300_000) < 5000, `srtt ${o.c.srtt}`);
  assert.ok(o.c.rto >= 300_000 && o.c.rto < 400_000, `rto ${o.c.rto}`);
});

function fillFlight(o: Open, n: number, now: number): TcpHeader[] {
  o.c.write(pattern(0, n * 1000), 0, n * 1000, now);
  const s = o.h.take();
  assert.is(s.length, n);
  return s;
}

test('fast retransmit and NewReno recovery without SACK (partial ACK, full ACK)', () => {
  const o = openActive({ cc: 'newreno' }, { mss: 1000, ts: undefined, sackOk: false, window: 65535 });
  fillFlight(o, 10, 20_000);
  for (let i = 0; i < 2; i++) o.c.input(peer(o, { ack: o.seq(0), window: 65535 }), 30_000 + i);
  none(o.h);
  o.c.input(peer(o, { ack: o.seq(0), window: 65535 }), 30_010);
  const r = one(o.h);
  assert.equal([r.seq, r.payloadLen], [o.seq(0), 1000]);
  assert.is(o.c.stats.fastRetransmits, 1);
  assert.is(o.c.ssthresh, 5000);
  assert.is(o.c.cwnd, 8000, 'ssthresh + 3 SMSS');
  // More dup ACKs inflate the window; new data goes out once it exceeds the flight.
  for (let i = 0; i < 3; i++) o.c.input(peer(o, { ack: o.seq(0), window: 65535 }), 30_020 + i);
  assert.is(o.c.cwnd, 11_000);
  o.c.write(pattern(0, 5000), 0, 5000, 30_030);
  const fresh = o.h.take();
  assert.ok(fresh.length >= 1 && fresh[0]!.seq === o.seq(10_000), 'new data sent during recovery');
  // Partial ACK: the next hole is retransmitted at once.
  o.c.input(peer(o, { ack: o.seq(3000), window: 65535 }), 40_000);
  const p = o.h.take();
  assert.ok(p.some((s) => s.seq === o.seq(3000)), 'partial ACK retransmits the next segment');
  // Full ACK ends recovery with cwnd <= ssthresh.
  o.c.input(peer(o, { ack: o.c.sndMax, window: 65535 }), 50_000);
  assert.ok(o.c.cwnd <= 5000 + 1000);
});

test('SACK recovery (RFC 6675): retransmits the holes only', () => {
  const o = openActive({ cc: 'newreno' }, { mss: 1000, ts: undefined, sackOk: true, window: 65535 });
  fillFlight(o, 10, 20_000);
  // Segments 1 and 5 lost; SACKs arrive for the others.
  const S = (a: number, b: number): [number, number] => [o.seq(a * 1000), o.seq(b * 1000)];
  o.c.input(peer(o, { ack: o.seq(1000), window: 65535 }), 30_000);
  o.h.take();
  o.c.input(peer(o, { ack: o.seq(1000), window: 65535, sack: [S(2, 3)] }), 30_001);
  o.c.input(peer(o, { ack: o.seq(1000), window: 65535, sack: [S(2, 4)] }), 30_002);
  none(o.h);
  o.c.input(peer(o, { ack: o.seq(1000), window: 65535, sack: [S(2, 5)] }), 30_003);
  const r1 = o.h.take();
  assert.ok(r1.length >= 1);
  assert.equal([r1[0]!.seq, r1[0]!.payloadLen], [o.seq(1000), 1000], 'first hole retransmitted');
  assert.is(o.c.stats.sackRecoveries, 1);
  o.c.input(peer(o, { ack: o.seq(1000), window: 65535, sack: [S(6, 10), S(2, 5)] }), 30_004);
  const r2 = o.h.take();
  assert.ok(r2.some((s) => s.seq === o.seq(5000)), `second hole retransmitted: ${r2.map(fmt).join(' | ')}`);
  assert.not.ok(r2.some((s) => s.seq === o.seq(2000) || s.seq === o.seq(6000)), 'SACKed data not resent');
  o.c.input(peer(o, { ack: o.seq(10_000), window: 65535 }), 40_000);
  assert.is(o.c.sndUna, o.seq(10_000));
});

test('SACK recovery (RFC 6675 NextSeg rule 4): one rescue retransmission repairs a lost tail', () => {
  const o = openActive({ cc: 'newreno' }, { mss: 1000, ts: undefined, sackOk: true, window: 65535 });
  fillFlight(o, 10, 20_000);
  // Segment 1 and the tail (8, 9) lost; SACKs for 2..7 arrive.
  const S = (a: number, b: number): [number, number] => [o.seq(a * 1000), o.seq(b * 1000)];
  o.c.input(peer(o, { ack: o.seq(1000), window: 65535 }), 30_000);
  o.h.take();
  for (let k = 3; k <= 8; k++) o.c.input(peer(o, { ack: o.seq(1000), window: 65535, sack: [S(2, k)] }), 30_000 + k);
  const r = o.h.take();
  assert.ok(r.some((x) => x.seq === o.seq(1000)), `hole retransmitted: ${r.map(fmt).join(' | ')}`);
  const rescue = r.filter((x) => x.seq === o.seq(9000));
  assert.is(rescue.length, 1, `the highest unSACKed segment is resent once: ${r.map(fmt).join(' | ')}`);
  assert.not.ok(r.some((x) => x.seq === o.seq(8000)), 'only one rescue segment');
  assert.is(o.c.stats.rescueRetransmits, 1);
  // More SACKs in the same recovery: no second rescue.
  o.c.input(peer(o, { ack: o.seq(1000), window: 65535, sack: [S(2, 8), S(9, 10)] }), 31_000);
  o.c.input(peer(o, { ack: o.seq(8000), window: 65535, sack: [S(9, 10)] }), 31_001);
  const r2 = o.h.take();
  assert.is(o.c.stats.rescueRetransmits, 1);
  assert.ok(r2.some((x) => x.seq === o.seq(8000)), `segment 8 (now below a SACK block) is a normal hole: ${r2.map(fmt).join(' | ')}`);
  o.c.input(peer(o, { ack: o.seq(10_000), window: 65535 }), 32_000);
  assert.is(o.c.sndUna, o.seq(10_000));
});

test('early retransmit (RFC 5827): two segments out, the first lost, one duplicate ACK retransmits it', () => {
  for (const sackOk of [true, false]) {
    const o = openActive({ cc: 'newreno' }, { mss: 1000, ts: undefined, sackOk, window: 65535 });
    fillFlight(o, 2, 20_000);
    o.c.input(peer(o, { ack: o.seq(0), window: 65535, sack: sackOk ? [[o.seq(1000), o.seq(2000)]] : undefined }), 30_000);
    const r = one(o.h);
    assert.equal([r.seq, r.payloadLen], [o.seq(0), 1000], `retransmitted at once (sack ${sackOk})`);
    assert.is(o.c.stats.fastRetransmits, 1);
  }
  // With new data allowed out, the usual three duplicate ACKs are needed.
  const o = openActive({ cc: 'newreno' }, { mss: 1000, ts: undefined, sackOk: false, window: 65535 });
  o.c.write(pattern(0, 2000), 0, 2000, 20_000);
  o.h.take();
  o.c.write(pattern(0, 500), 0, 500, 20_001); // held by Nagle, but the window would allow it
  none(o.h);
  o.c.input(peer(o, { ack: o.seq(0), window: 65535 }), 30_000);
  assert.is(o.c.stats.fastRetransmits, 0);
});

test('zero window: persist probes with backoff, data resumes when the window opens', () => {
  const o = openActive({}, { mss: 1000, ts: undefined, window: 2000 });
  o.c.write(pattern(0, 5000), 0, 5000, 20_000);
  assert.is(o.h.take().length, 2);
  o.c.input(peer(o, { ack: o.seq(2000), window: 0 }), 30_000);
  none(o.h);
  const t1 = o.h.deadline;
  assert.ok(t1 > 30_000 && t1 < Infinity, 'persist timer armed');
  o.c.onTimer(t1);
  const probe = one(o.h);
  assert.equal([probe.seq, probe.payloadLen, probe.flags], [o.seq(1999), 0, TH_ACK]);
  assert.is(o.h.deadline - t1, 2 * (t1 - 30_000), 'probe backoff');
  // The peer answers probes with a zero window: the connection never times out.
  for (let i = 0; i < 20; i++) {
    const t = o.h.deadline;
    o.c.onTimer(t);
    one(o.h);
    o.c.input(peer(o, { ack: o.seq(2000), window: 0 }), t + 1);
  }
  assert.is(o.c.state, TcpState.Established);
  o.c.input(peer(o, { ack: o.seq(2000), window: 3000 }), o.h.deadline - 1);
  const s = o.h.take();
  assert.equal(s.map((x) => x.payloadLen), [1000, 1000, 1000]);
});

// ------------------------------------------------------------------------------------ closing

test('active close: FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT -> CLOSED after 2 MSL', () => {
  const o = openActive();
  o.c.write(pattern(0, 100), 0, 100); // queued only: sent with the FIN
  o.c.shutdown(20_000);
  const s = o.h.take();
  assert.is(s.length, 1);
  assert.equal([s[0]!.flags, s[0]!.payloadLen], [TH_ACK | TH_PSH | TH_FIN, 100], 'FIN rides on the last data');
  assert.is(o.c.state, TcpState.FinWait1);
  assert.is(o.c.write(pattern(0, 1), 0, 1), 0, 'no writes after shutdown');
  o.c.input(peer(o, { ack: o.seq(101) }), 30_000);
  assert.is(o.c.state, TcpState.FinWait2);
  // Half-closed: data still flows in.
  o.c.input(peer(o, { data: 50, ack: o.seq(101) }), 31_000);
  assert.is(o.h.rxBytes, 50);
  o.c.input(peer(o, { seq: B_ISS + 51, ack: o.seq(101), flags: TH_ACK | TH_FIN }), 32_000);
  const a = o.h.take().pop()!;
  assert.equal([a.ack, a.flags], [B_ISS + 52, TH_ACK]);
  assert.is(o.c.state, TcpState.TimeWait);
  assert.is(o.h.remoteClosed, 1);
  assert.equal(o.h.closed, [null]);
  // A retransmitted FIN is ACKed again and restarts the timer.
  o.c.input(peer(o, { seq: B_ISS + 51, ack: o.seq(101), flags: TH_ACK | TH_FIN }), 10_000_000);
  assert.is(one(o.h).ack, B_ISS + 52);
  assert.is(o.h.deadline, 70_000_000);
  // RST in TIME_WAIT is ignored (RFC 1337).
  o.c.input(peer(o, { seq: B_ISS + 52, flags: TH_RST }), 11_000_000);
  assert.is(o.c.state, TcpState.TimeWait);
  const syn = mkSeg({ seq: B_ISS + 100_000, flags: TH_SYN, ts: [9000, 0] });
  assert.ok(o.c.timeWaitAcceptsSyn(syn), 'a SYN with a newer timestamp may reuse the tuple');
  o.c.onTimer(70_000_000);
  assert.is(o.c.state, TcpState.Closed);
  assert.is(o.h.released, 1);
});

test('passive close: CLOSE_WAIT -> LAST_ACK -> CLOSED', () => {
  const o = openActive();
  o.c.input(peer(o, { flags: TH_ACK | TH_FIN }), 20_000);
  none(o.h); // the ACK of a FIN in ESTABLISHED waits for our answer (delayed ACK)
  assert.is(o.c.state, TcpState.CloseWait);
  assert.is(o.h.remoteClosed, 1);
  o.c.write(pattern(0, 10), 0, 10, 21_000);
  const d = one(o.h);
  assert.is(d.payloadLen, 10, 'we may still send');
  assert.is(d.ack, B_ISS + 2, 'and the data carries the ACK of the FIN');
  o.c.shutdown(22_000);
  assert.is(o.c.state, TcpState.LastAck);
  const fin = one(o.h);
  assert.equal([fin.flags, fin.seq], [TH_ACK | TH_FIN, o.seq(10)]);
  o.c.input(peer(o, { seq: B_ISS + 2, ack: o.seq(11) }), 30_000);
  assert.is(o.c.state, TcpState.Closed);
  assert.equal(o.h.closed, [null]);
  assert.is(o.h.released, 1);
});

test('passive close: the ACK of a FIN leaves with the delayed-ACK timer when the application stays silent', () => {
  const o = openActive();
  o.c.input(peer(o, { flags: TH_ACK | TH_FIN }), 20_000);
  none(o.h);
  assert.is(o.h.deadline, 20_000 + 40_000, 'delayed-ACK deadline');
  o.c.onTimer(o.h.deadline);
  const a = one(o.h);
  assert.equal([a.flags, a.ack], [TH_ACK, B_ISS + 2]);
  assert.is(o.c.state, TcpState.CloseWait);
});

test('passive close: a FIN after a segment still waiting for its ACK is acknowledged at once', () => {
  const o = openActive();
  o.c.input(peer(o, { data: pattern(0, 1000) }), 20_000);
  none(o.h); // delayed ACK
  o.c.input(peer(o, { seq: B_ISS + 1001, flags: TH_ACK | TH_FIN }), 20_100);
  assert.is(one(o.h).ack, B_ISS + 1002, 'second segment: ACK now (RFC 9293 3.8.6.3)');
  assert.is(o.c.state, TcpState.CloseWait);
});

test('passive close without delayed ACK: the FIN is acknowledged at once', () => {
  const o = openActive({ delayedAck: false });
  o.c.input(peer(o, { flags: TH_ACK | TH_FIN }), 20_000);
  assert.is(one(o.h).ack, B_ISS + 2);
});

test('rings: a closed connection gives its send ring back and the next connection takes it', () => {
  const o = openActive();
  o.c.write(pattern(0, 100), 0, 100, 21_000);
  one(o.h);
  const before = ringPoolBytes(); // the first write took a 4 KiB ring (pooled or new)
  o.c.input(peer(o, { ack: o.seq(100) }), 22_000);
  o.c.input(peer(o, { seq: B_ISS + 1, ack: o.seq(100), flags: TH_ACK | TH_FIN }), 23_000);
  o.c.shutdown(24_000);
  one(o.h);
  o.c.input(peer(o, { seq: B_ISS + 2, ack: o.seq(101) }), 25_000);
  assert.is(o.c.state, TcpState.Closed);
  if (before + 4096 <= RING_POOL_MAX_BYTES) { // (earlier tests may have filled the pool)
    assert.is(ringPoolBytes(), before + 4096, 'the 4 KiB send ring is pooled');
    const o2 = openActive();
    o2.c.write(pattern(0, 10), 0, 10, 21_000);
    assert.is(ringPoolBytes(), before, 'and taken again');
    assert.is(one(o2.h).payloadLen, 10);
  }
});

test('rings: pooled by power-of-two size, bounded in total', () => {
  const a = takeRing(8192);
  assert.is(a.length, 8192);
  const before = ringPoolBytes();
  assert.is(giveRing(a).length, 0, 'the caller keeps an empty ring');
  assert.is(ringPoolBytes(), before + 8192);
  assert.is(takeRing(8192), a, 'same size: the same ring');
  assert.is(giveRing(new Uint8Array(3000)).length, 0);
  assert.is(ringPoolBytes(), before, 'odd sizes are not kept');
  const big: Uint8Array[] = [];
  for (let i = 0; i <= RING_POOL_MAX_BYTES / (1 << 20); i++) big.push(new Uint8Array(1 << 20));
  for (const r of big) giveRing(r);
  assert.ok(ringPoolBytes() <= RING_POOL_MAX_BYTES, 'never more than the bound');
  for (const _ of big) takeRing(1 << 20);
});

test('simultaneous close: FIN_WAIT_1 -> CLOSING -> TIME_WAIT; lost FIN is retransmitted', () => {
  const o = openActive();
  o.c.shutdown(20_000);
  const fin = one(o.h);
  assert.is(fin.flags, TH_ACK | TH_FIN);
  o.c.input(peer(o, { ack: o.seq(0), flags: TH_ACK | TH_FIN }), 21_000);
  assert.is(o.c.state, TcpState.Closing);
  one(o.h);
  o.c.onTimer(o.h.deadline);
  const rfin = one(o.h);
  assert.equal([rfin.flags, rfin.seq], [TH_ACK | TH_FIN, fin.seq]);
  o.c.input(peer(o, { seq: B_ISS + 2, ack: o.seq(1) }), 2_000_000);
  assert.is(o.c.state, TcpState.TimeWait);
  assert.equal(o.h.closed, [null]);
});

test('close() with unread data aborts with RST; abort() sends RST', () => {
  const o = openActive();
  o.h.autoConsume = false;
  o.c.input(peer(o, { data: 10 }), 20_000);
  o.h.take();
  o.c.close(21_000);
  const r = one(o.h);
  assert.is(r.flags & TH_RST, TH_RST);
  assert.is(o.c.state, TcpState.Closed);
  const o2 = openActive();
  o2.c.abort(5);
  assert.equal([one(o2.h).flags & TH_RST, o2.c.state, o2.h.released], [TH_RST, TcpState.Closed, 1]);
});

// ------------------------------------------------------------------------------------ RFC 5961, PAWS

test('RST: exact sequence resets, in-window gets a challenge ACK, out of window is dropped', () => {
  const o = openActive();
  assert.is(o.c.input(peer(o, { seq: B_ISS + 1 + 100, flags: TH_RST }), 20_000), Drop.TcpChallenged);
  const ch = one(o.h);
  assert.equal([ch.flags, ch.ack], [TH_ACK, B_ISS + 1]);
  assert.is(o.c.state, TcpState.Established);
  assert.is(o.c.input(peer(o, { seq: B_ISS + 1 + 10_000_000, flags: TH_RST }), 20_001), Drop.TcpOutOfWindow);
  none(o.h);
  o.c.input(peer(o, { seq: B_ISS + 1, flags: TH_RST }), 20_002);
  assert.is(o.c.state, TcpState.Closed);
  assert.equal(o.h.closed, ['ECONNRESET']);
});

test('SYN in ESTABLISHED: challenge ACK, rate limited per second', () => {
  const o = openActive({ challengeAckLimit: 3 });
  for (let i = 0; i < 5; i++) assert.is(o.c.input(peer(o, { seq: B_ISS + 1 + i, flags: TH_SYN }), 20_000 + i), Drop.TcpChallenged);
  assert.is(o.h.take().length, 3);
  assert.is(o.c.stats.challengeAcks, 3);
  assert.is(o.c.state, TcpState.Established);
  o.c.input(peer(o, { flags: TH_SYN }), 1_100_000);
  assert.is(one(o.h).ack, B_ISS + 1);
});

test('ACK for data never sent: challenge ACK, dropped; ACK flag off: dropped', () => {
  const o = openActive();
  assert.is(o.c.input(peer(o, { ack: o.seq(5000), data: 10 }), 20_000), Drop.TcpBadAck);
  assert.is(one(o.h).ack, B_ISS + 1);
  assert.is(o.h.rxBytes, 0);
  assert.is(o.c.input(peer(o, { flags: 0, data: 10 }), 20_001), Drop.TcpNoAck);
  assert.is(o.c.input(peer(o, { flags: TH_SYN | TH_FIN }), 20_002), Drop.TcpBadFlags);
});

test('PAWS: a data segment with an old timestamp is dropped and ACKed', () => {
  const o = openActive();
  o.c.input(peer(o, { data: 10 }, 8000), 20_000);
  assert.is(o.h.rxBytes, 10);
  o.h.take();
  assert.is(o.c.input(peer(o, { seq: B_ISS + 11, data: 10 }, 7000), 21_000), Drop.TcpPaws);
  assert.is(one(o.h).ack, B_ISS + 11);
  assert.is(o.h.rxBytes, 10);
  assert.is(o.c.stats.pawsDrops, 1);
  // Sequence-number wrap of TSval is handled modulo 2^32.
  assert.is(o.c.input(peer(o, { seq: B_ISS + 11, data: 10 }, 8000 + 0x7fff0000), 22_000), Drop.None);
});

test('keepalive: probes after idle, ETIMEDOUT after keepCnt unanswered', () => {
  const o = openActive({ keepAlive: true, keepIdleUs: 10_000_000, keepIntvlUs: 1_000_000, keepCnt: 3 });
  assert.is(o.h.deadline, 10_010_000);
  o.c.onTimer(o.h.deadline);
  const p = one(o.h);
  assert.equal([p.seq, p.payloadLen], [o.seq(-1), 0]);
  // An answer resets the idle timer.
  o.c.input(peer(o, {}), 10_500_000);
  assert.is(o.h.deadline, 20_500_000);
  for (let i = 0; i < 3; i++) { o.c.onTimer(o.h.deadline); one(o.h); }
  o.c.onTimer(o.h.deadline);
  assert.is(one(o.h).flags & TH_RST, TH_RST);
  assert.equal(o.h.closed, ['ETIMEDOUT']);
});

// ------------------------------------------------------------------------------------ helpers

test('rstFor: replies to segments without a connection (RFC 9293 3.10.7.1)', () => {
  const out = new TcpSegmentOut();
  assert.ok(rstFor(mkSeg({ seq: 100, ack: 555, flags: TH_ACK }), out));
  assert.equal([out.flags, out.seq, out.srcPort, out.dstPort], [TH_RST, 555, 1234, 80]);
  assert.ok(rstFor(mkSeg({ seq: 100, flags: TH_SYN, data: 5 }), out));
  assert.equal([out.flags, out.seq, out.ack], [TH_RST | TH_ACK, 0, 106]);
  assert.not.ok(rstFor(mkSeg({ seq: 100, flags: TH_RST }), out));
});

test('ISNs (RFC 6528) differ per tuple and advance with a 4 us clock', () => {
  const k = hashKey(SECRET);
  const a = isnFor(k, 1, 2, 3, 4, 0);
  assert.is.not(a, isnFor(k, 1, 2, 3, 5, 0));
  assert.is((isnFor(k, 1, 2, 3, 4, 4000) - a) >>> 0, 1000);
  assert.is.not(a, isnFor(hashKey(new Uint8Array(16)), 1, 2, 3, 4, 0));
});

test('SYN cookies: encode MSS, WS and SACK through timestamps; reject tampering and old cookies', () => {
  const syn = mkSeg({ seq: 7000, flags: TH_SYN, mss: 1400, wscale: 6, sackOk: true, ts: [4242, 0], srcPort: 1234, dstPort: 80 });
  const out = new TcpSegmentOut();
  const now = 1_000_000_000;
  const cookie = synAckFor(syn, out, TUPLE_B, 1460, SECRET, now, {});
  assert.equal([out.flags, out.seq, out.ack, out.mss, out.sackOk, out.hasTs, out.tsEcr], [F_SA, cookie, 7001, 1460, true, true, 4242]);
  assert.ok(out.wscale >= 0);
  const ack = (t: number, delta = 0, ts = out.tsVal) => mkSeg({ seq: 7001, ack: cookie + 1 + delta, flags: TH_ACK, ts: [4243, ts], window: 100, srcPort: 1234, dstPort: 80, data: 5 });
  const info = cookieCheck(ack(now), TUPLE_B, SECRET, now + 5_000_000);
  assert.ok(info);
  assert.equal([info!.mss, info!.sndWscale, info!.sackOk, info!.tsOk, info!.tsRecent], [1400, 6, true, true, 4243]);
  assert.is(cookieCheck(ack(now, 1), TUPLE_B, SECRET, now), null, 'wrong cookie');
  assert.is(cookieCheck(ack(now, 0, out.tsVal ^ 0x10), TUPLE_B, SECRET, now), null, 'tampered options');
  assert.is(cookieCheck(ack(now), TUPLE_A, SECRET, now), null, 'other tuple');
  assert.ok(cookieCheck(ack(now), TUPLE_B, SECRET, now + 40_000_000), 'valid in the next period');
  assert.is(cookieCheck(ack(now), TUPLE_B, SECRET, now + 200_000_000), null, 'expired');
  // The connection built from the cookie is established and takes the ACK's data.
  const h = new RecHost(TUPLE_B.localAddr as number, TUPLE_B.remoteAddr as number);
  const c = TcpConnection.fromCookie(h, TUPLE_B, {}, ack(now), info!, now + 1000);
  assert.is(c.state, TcpState.Established);
  assert.is(h.established, 1);
  assert.is(c.input(ack(now), now + 1000), Drop.None);
  assert.is(h.rxBytes, 5);
  assert.is(c.sndWnd, 100 << 6);
  // Without timestamps: MSS only.
  const syn2 = mkSeg({ seq: 9000, flags: TH_SYN, mss: 1300, wscale: 6, sackOk: true, srcPort: 1234, dstPort: 80 });
  const ck2 = synAckFor(syn2, out, TUPLE_B, 1460, SECRET, now, {});
  assert.equal([out.hasTs, out.wscale, out.sackOk], [false, -1, false]);
  const info2 = cookieCheck(mkSeg({ seq: 9001, ack: ck2 + 1, flags: TH_ACK, srcPort: 1234, dstPort: 80 }), TUPLE_B, SECRET, now);
  assert.equal([info2!.mss, info2!.sndWscale, info2!.sackOk, info2!.tsOk], [1300, -1, false, false]);
});

test.run();
