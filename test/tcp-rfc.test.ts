/**
 * TCP conformance cases written from the RFCs (RFC 9293, 5681, 6298, 3042, 7323, 5961, 1122) and
 * Linux's behaviour as a peer: scripted segments into one connection under virtual time, and
 * hand-made segments into the engine for the listener cases. Each case names the clause it checks.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Drop } from '../protocols/drop';
import { TcpHeader } from '../protocols/tcp';
import { TcpConnection } from '../protocols/tcp/connection';
import { check as cookieCheck, synAckFor } from '../protocols/tcp/syncookie';
import { parseIp6 } from '../protocols/ip/addr';
import {
  TcpSegmentOut, TcpState, TcpTuple, TH_ACK, TH_FIN, TH_PSH, TH_RST, TH_SYN, TH_URG,
} from '../protocols/tcp/types';
import { B_ISS, F_SA, fmt, mkSeg, none, one, Open, openActive, pattern, RecHost, SECRET, SegSpec, TUPLE_A, TUPLE_B } from './tcp-harness';
import { twoHosts } from './lib/world';
import { createServer, Socket } from '../stack/api/net';
import { drops, inject, tap } from './lib/inject';


/** A segment from the peer with the usual ACK (and a timestamp when negotiated). */
function peer(o: Open, s: Partial<SegSpec>, tsVal = 6000): TcpHeader {
  const spec: SegSpec = { seq: B_ISS + 1, ack: o.seq(0), flags: TH_ACK, window: 65535, ...s } as SegSpec;
  if (o.c.timestamps && !s.ts) spec.ts = [tsVal, 0];
  return mkSeg(spec);
}

// ------------------------------------------------------------------------------------------ MSS

test('RFC 9293 3.7.1 (MUST-15): no MSS option from an IPv6 peer means 1220, from an IPv4 peer 536', () => {
  const A6 = parseIp6('fd00::1');
  const B6 = parseIp6('fd00::2');
  const t6: TcpTuple = { localAddr: A6, localPort: 1234, remoteAddr: B6, remotePort: 80 };
  // Active open, SYN-ACK without options.
  const h = new RecHost(A6, B6);
  const c = new TcpConnection(h, t6, {}, SECRET);
  c.connect(0);
  const syn = one(h);
  c.input(mkSeg({ seq: B_ISS, ack: syn.seq + 1, flags: F_SA }, B6, A6), 1000);
  assert.is(c.state, TcpState.Established);
  assert.is(c.sndMss, 1220, 'IPv6 default send MSS');
  c.write(pattern(0, 5000), 0, 5000, 2000);
  const segs = h.take().filter((s) => s.payloadLen > 0);
  assert.ok(segs.length > 0 && segs.every((s) => s.payloadLen <= 1220), segs.map(fmt).join(' | '));
  assert.is(segs[0]!.payloadLen, 1220);
  // Passive open, SYN without options but with timestamps: 1220 less the option room.
  const hp = new RecHost(A6, B6);
  const tp: TcpTuple = { localAddr: A6, localPort: 80, remoteAddr: B6, remotePort: 1234 };
  const sp = mkSeg({ seq: 5000, flags: TH_SYN, ts: [1, 0], srcPort: 1234, dstPort: 80 }, B6, A6);
  const cp = TcpConnection.acceptSyn(hp, tp, {}, SECRET, sp, 0);
  assert.is(cp.sndMss, 1220 - 12);
  // IPv4 is unchanged: 536.
  const h4 = new RecHost();
  const c4 = TcpConnection.acceptSyn(h4, TUPLE_B, {}, SECRET, mkSeg({ seq: 5000, flags: TH_SYN, srcPort: 1234, dstPort: 80 }), 0);
  assert.is(c4.sndMss, 536);
  // An MSS option of 0 is no option (as Linux): the default again.
  const hz = new RecHost(A6, B6);
  const cz = TcpConnection.acceptSyn(hz, tp, {}, SECRET, mkSeg({ seq: 5000, flags: TH_SYN, mss: 0, srcPort: 1234, dstPort: 80 }, B6, A6), 0);
  assert.is(cz.sndMss, 1220);
});

test('RFC 9293 3.7.1: a SYN cookie for an IPv6 SYN without MSS encodes the IPv6 default, not 536', () => {
  const A6 = parseIp6('fd00::1');
  const B6 = parseIp6('fd00::2');
  const t: TcpTuple = { localAddr: A6, localPort: 80, remoteAddr: B6, remotePort: 1234 };
  const syn = mkSeg({ seq: 7000, flags: TH_SYN, srcPort: 1234, dstPort: 80 }, B6, A6);
  const out = new TcpSegmentOut();
  const iss = synAckFor(syn, out, t, 1440, SECRET, 1_000_000);
  const ack = mkSeg({ seq: 7001, ack: iss + 1, flags: TH_ACK, srcPort: 1234, dstPort: 80 }, B6, A6);
  const info = cookieCheck(ack, t, SECRET, 1_500_000);
  assert.ok(info, 'the cookie is valid');
  assert.ok(info!.mss >= 1200 && info!.mss <= 1220, `cookie MSS ${info!.mss}`);
});

test('RFC 6691 / RFC 7323 2.3: segments never exceed the peer MSS less options; WS above 14 is used as 14', () => {
  const o = openActive({}, { mss: 1000, wscale: 15, sackOk: true, ts: [5000, 0] });
  assert.is(o.c.sendWscale, 14);
  assert.is(o.c.sndMss, 1000 - 12);
  o.c.write(pattern(0, 20_000), 0, 20_000, 20_000);
  const segs = o.h.take();
  assert.ok(segs.length > 1);
  for (const s of segs) assert.ok(s.payloadLen + s.hdrLen - 20 <= 1000, `payload + options within the MSS: ${fmt(s)} hl=${s.hdrLen}`);
});

test('hostile SYN options: a length of 0 or 1, a length past the header, a wrong MSS length: parsing stops there, the SYN still opens', () => {
  // Raw SYNs (checksum not checked here): options as bytes after the 20-byte header.
  const raw = (opts: number[]): TcpHeader => {
    const n = (opts.length + 3) & ~3;
    const b = new Uint8Array(20 + n);
    b[0] = 1234 >> 8; b[1] = 1234 & 0xff; b[2] = 0; b[3] = 80; // ports
    b[4] = 0; b[5] = 0; b[6] = 0x13; b[7] = 0x88; // seq 5000
    b[12] = ((20 + n) / 4) << 4;
    b[13] = TH_SYN;
    b[14] = 0xff; b[15] = 0xff;
    b.set(opts, 20);
    const h = new TcpHeader();
    assert.is(h.parse(b, 0, b.length, TUPLE_B.remoteAddr, TUPLE_B.localAddr, false), Drop.None);
    return h;
  };
  const cases: [string, number[], number, boolean][] = [
    ['MSS then a length-1 option', [2, 4, 0x03, 0xe8, 8, 1], 1000, false],
    ['MSS then a length-0 option', [2, 4, 0x03, 0xe8, 4, 0], 1000, false],
    ['timestamps cut by the header end', [2, 4, 0x03, 0xe8, 8, 10, 0, 0], 1000, false],
    ['MSS with length 3', [2, 3, 0x05, 1, 1, 1, 1, 1], 536, false],
    ['WS 200 (used as 14) and SACK-permitted with a wrong length', [3, 3, 200, 4, 3, 0, 1, 1], 536, false],
  ];
  for (const [name, opts, mss, ts] of cases) {
    const syn = raw(opts);
    const h = new RecHost(TUPLE_B.localAddr, TUPLE_B.remoteAddr);
    const c = TcpConnection.acceptSyn(h, TUPLE_B, {}, SECRET, syn, 0);
    assert.is(c.state, TcpState.SynReceived, name);
    assert.is(c.sndMss, mss, `${name}: send MSS`);
    assert.is(c.timestamps, ts, `${name}: timestamps`);
    const sa = one(h);
    assert.equal([sa.flags, sa.ack], [F_SA, 5001], name);
    if (name.startsWith('WS')) assert.is(c.sendWscale, 14);
    assert.is(c.sack, false, `${name}: no SACK`);
  }
});

test('RFC 9293 3.10.7.3: in SYN-SENT the ACK is checked, then RST, then SYN: SYN+RST+ACK with an acceptable ACK refuses the connect', () => {
  const h = new RecHost();
  const c = new TcpConnection(h, TUPLE_A, {}, SECRET);
  c.connect(0);
  const syn = one(h);
  // An unacceptable ACK: answered with a RST (the RST bit set: silence), the connection stays.
  assert.is(c.input(mkSeg({ seq: 0, ack: syn.seq + 9, flags: TH_SYN | TH_RST | TH_ACK }), 1), Drop.TcpBadAck);
  none(h);
  assert.is(c.state, TcpState.SynSent);
  assert.is(c.input(mkSeg({ seq: 0, ack: syn.seq + 1, flags: TH_SYN | TH_RST | TH_ACK }), 2), Drop.None);
  assert.is(c.state, TcpState.Closed);
  assert.equal(h.closed, ['ECONNREFUSED']);
  // SYN+FIN is still nonsense there: dropped, nothing answered.
  const h2 = new RecHost();
  const c2 = new TcpConnection(h2, TUPLE_A, {}, SECRET);
  c2.connect(0);
  const syn2 = one(h2);
  assert.is(c2.input(mkSeg({ seq: 0, ack: syn2.seq + 1, flags: TH_SYN | TH_FIN | TH_ACK }), 1), Drop.TcpBadFlags);
  none(h2);
  assert.is(c2.state, TcpState.SynSent);
});

test('RFC 7323 2.2: the window of a SYN or SYN-ACK is never scaled; the first ACK after it is', () => {
  // Active: SYN-ACK with window 1000 and WS 7 allows 1000 bytes, not 128000.
  const o = openActive({}, { mss: 1000, wscale: 7, ts: undefined, sackOk: false, window: 1000 });
  assert.is(o.c.sndWnd, 1000);
  o.c.write(pattern(0, 5000), 0, 5000, 20_000);
  const segs = o.h.take();
  assert.is(segs.reduce((n, x) => n + x.payloadLen, 0), 1000, `one window of data: ${segs.map(fmt).join(' | ')}`);
  o.c.input(peer(o, { ack: o.seq(1000), window: 1000 }), 30_000);
  assert.is(o.c.sndWnd, 1000 << 7, 'scaled from the first ACK on');
  // Passive: the SYN's window unscaled until the completing ACK.
  const h = new RecHost(TUPLE_B.localAddr, TUPLE_B.remoteAddr);
  const c = TcpConnection.acceptSyn(h, TUPLE_B, {}, SECRET, mkSeg({ seq: 5000, flags: TH_SYN, window: 700, wscale: 9, srcPort: 1234, dstPort: 80 }), 0);
  assert.is(c.sndWnd, 700);
  const sa = one(h);
  assert.is(sa.window, 65535, 'our SYN-ACK window is not scaled either');
  c.input(mkSeg({ seq: 5001, ack: sa.seq + 1, flags: TH_ACK, window: 700, srcPort: 1234, dstPort: 80 }), 1000);
  assert.is(c.sndWnd, 700 << 9);
});

// --------------------------------------------------------------------------------- send window

test('RFC 9293 3.10.7.4: an old ACK (below SND.UNA) does not update the send window; its data is taken', () => {
  const o = openActive({}, { mss: 1000, ts: undefined, sackOk: false, window: 65535 });
  o.c.write(pattern(0, 2000), 0, 2000, 20_000);
  assert.is(o.h.take().length, 2);
  o.c.input(peer(o, { ack: o.seq(2000), window: 40000, data: 10 }), 30_000);
  assert.is(o.c.sndUna, o.seq(2000));
  assert.is(o.c.sndWnd, 40000);
  // A later segment (higher SEG.SEQ, so WL1 alone would let it through) acknowledging less than
  // SND.UNA and offering a zero window: the stale window must not close ours.
  const r = o.c.input(peer(o, { seq: B_ISS + 11, ack: o.seq(1000), window: 0, data: 100 }), 31_000);
  assert.is(r, Drop.None);
  assert.is(o.c.sndWnd, 40000, 'window unchanged by an ACK below SND.UNA');
  assert.is(o.h.rxBytes, 110, 'the data is delivered');
  // A current ACK still updates it.
  o.c.input(peer(o, { seq: B_ISS + 111, ack: o.seq(2000), window: 1000 }), 32_000);
  assert.is(o.c.sndWnd, 1000);
});

test('RFC 9293 3.10.7.4: the four acceptability cases, with a closed and an open receive window', () => {
  const o = openActive({ rcvBuf: 4096, delayedAck: false }, { mss: 1000, ts: undefined, sackOk: false, window: 65535 });
  o.h.autoConsume = false;
  const data = pattern(0, 4096);
  let seq = B_ISS + 1;
  for (let off = 0; off < 4096; off += 1000) {
    const n = Math.min(1000, 4096 - off);
    assert.is(o.c.input(peer(o, { seq, data: data.subarray(off, off + n) }), 20_000 + off), Drop.None);
    seq += n;
  }
  const acks = o.h.take();
  assert.is(acks[acks.length - 1]!.window, 0, 'the window is closed');
  const nxt = B_ISS + 1 + 4096;
  assert.is(o.c.rcvNxt, nxt);
  // Zero length, zero window: acceptable only at RCV.NXT (it still carries ACK and window).
  assert.is(o.c.input(peer(o, { seq: nxt, window: 30000 }), 30_000), Drop.None);
  none(o.h);
  assert.is(o.c.sndWnd, 30000, 'the ACK at RCV.NXT updated the send window');
  assert.is(o.c.input(peer(o, { seq: nxt + 1 }), 30_001), Drop.TcpOutOfWindow);
  assert.equal([one(o.h).ack], [nxt], 'not acceptable: ACK');
  // Data, zero window: never acceptable; answered with the closed window; nothing delivered.
  assert.is(o.c.input(peer(o, { seq: nxt, data: 1 }), 30_002), Drop.TcpOutOfWindow);
  const zw = one(o.h);
  assert.equal([zw.ack, zw.window], [nxt, 0]);
  assert.is(o.h.rxBytes, 4096);
  // The application reads: the window opens (an update is sent).
  o.c.consumed(4096, 31_000);
  const upd = one(o.h);
  assert.ok(upd.window > 0, 'window update');
  const wnd = upd.window;
  // Zero length, open window: RCV.NXT =< SEG.SEQ < RCV.NXT + RCV.WND.
  assert.is(o.c.input(peer(o, { seq: nxt + wnd - 1 }), 32_000), Drop.None);
  assert.is(o.c.input(peer(o, { seq: nxt + wnd }), 32_001), Drop.TcpOutOfWindow);
  assert.is(one(o.h).ack, nxt);
  // Data, open window: the first or the last byte in the window; only the new part is taken.
  const more = pattern(7, 300);
  assert.is(o.c.input(peer(o, { seq: nxt - 100, data: more }), 33_000), Drop.None, 'overlapping RCV.NXT: acceptable');
  assert.is(o.h.rxBytes, 4096 + 200, 'only the 200 new bytes delivered');
  const right = nxt + 200 + (o.c.advertisedWindow);
  assert.is(o.c.input(peer(o, { seq: right, data: 10 }), 33_001), Drop.TcpOutOfWindow, 'starting at the right edge: not acceptable');
  assert.is(o.h.rxBytes, 4096 + 200);
});

test('RFC 9293 3.8.6 / 3.10.7.4: after the peer closes its window on our data in flight, our ACKs carry SEQ = its RCV.NXT, which it can accept', () => {
  const o = openActive({ delayedAck: false }, { mss: 1000, ts: undefined, sackOk: false, window: 65535 });
  o.c.write(pattern(0, 3000), 0, 3000, 20_000);
  assert.is(o.h.take().length, 3);
  // The peer takes the first 1000 bytes and shrinks its window to zero (the other 2000 dropped).
  o.c.input(peer(o, { ack: o.seq(1000), window: 0 }), 30_000);
  assert.is(o.c.sndWnd, 0);
  // It sends data: our ACK must sit at its RCV.NXT (the only acceptable SEQ with RCV.WND = 0),
  // not at SND.MAX (2000 beyond its window), or it drops the acknowledgment.
  o.c.input(peer(o, { ack: o.seq(1000), window: 0, data: 50 }), 31_000);
  const acks = o.h.take();
  assert.ok(acks.length >= 1);
  for (const a of acks) assert.equal([a.flags, a.ack, a.seq], [TH_ACK, B_ISS + 51, o.seq(1000)], fmt(a));
  // A RST now (abort) takes that sequence too: at SND.MAX it would be outside the closed window.
  const s2 = openActive({ delayedAck: false }, { mss: 1000, ts: undefined, sackOk: false, window: 65535 });
  s2.c.write(pattern(0, 3000), 0, 3000, 20_000);
  s2.h.take();
  s2.c.input(peer(s2, { ack: s2.seq(1000), window: 0 }), 30_000);
  s2.h.take();
  s2.c.abort(31_000);
  const r = one(s2.h);
  assert.equal([r.flags, r.seq], [TH_RST | TH_ACK, s2.seq(1000)]);
  // With the window open again, ACKs go back to SND.MAX.
  o.c.input(peer(o, { seq: B_ISS + 51, ack: o.seq(1000), window: 65535, data: 50 }), 32_000);
  const b = o.h.take().filter((x) => x.payloadLen === 0);
  assert.ok(b.length >= 1 && b[b.length - 1]!.seq === o.seq(3000), `ACK at SND.MAX: ${b.map(fmt).join(' | ')}`);
});

// --------------------------------------------------------------------- Limited Transmit (RFC 3042)

for (const sackOk of [false, true]) {
  test(`RFC 3042: the first two duplicate ACKs each send one new segment beyond cwnd (SACK ${sackOk}); ssthresh leaves them out`, () => {
    const o = openActive({ cc: 'newreno' }, { mss: 1000, ts: undefined, sackOk, window: 65535 });
    assert.is(o.c.cwnd, 10_000);
    o.c.write(pattern(0, 15_000), 0, 15_000, 20_000);
    const first = o.h.take();
    assert.is(first.length, 10, 'initial window of 10 segments');
    const S = (a: number, b: number): [number, number][] | undefined => sackOk ? [[o.seq(a * 1000), o.seq(b * 1000)]] : undefined;
    // Segment 0 lost; segments 1 and 2 arrive: two duplicate ACKs.
    o.c.input(peer(o, { ack: o.seq(0), sack: S(1, 2) }), 30_000);
    const lt1 = one(o.h);
    assert.equal([lt1.seq, lt1.payloadLen], [o.seq(10_000), 1000], 'first duplicate ACK: one new segment');
    o.c.input(peer(o, { ack: o.seq(0), sack: S(1, 3) }), 30_001);
    const lt2 = one(o.h);
    assert.equal([lt2.seq, lt2.payloadLen], [o.seq(11_000), 1000], 'second duplicate ACK: one more');
    assert.is(o.c.cwnd, 10_000, 'cwnd itself unchanged');
    assert.is(o.c.stats.limitedTransmits, 2);
    // Third: fast retransmit; ssthresh from the flight without the two limited-transmit segments.
    o.c.input(peer(o, { ack: o.seq(0), sack: S(1, 4) }), 30_002);
    const fr = o.h.take();
    assert.ok(fr.length >= 1 && fr[0]!.seq === o.seq(0), `fast retransmit: ${fr.map(fmt).join(' | ')}`);
    assert.is(o.c.stats.fastRetransmits, 1);
    assert.is(o.c.ssthresh, 5000, 'FlightSize/2 over the 10 segments sent under cwnd');
  });
}

test('RFC 3042: limited transmit respects the receive window and never exceeds cwnd + 2 SMSS', () => {
  // Peer window of exactly 10 segments: nothing new may go out on duplicate ACKs.
  const o = openActive({ cc: 'newreno' }, { mss: 1000, ts: undefined, sackOk: false, window: 10_000 });
  o.c.write(pattern(0, 15_000), 0, 15_000, 20_000);
  assert.is(o.h.take().length, 10);
  o.c.input(peer(o, { ack: o.seq(0), window: 10_000 }), 30_000);
  none(o.h);
  // A wide window: a third duplicate ACK is fast retransmit, never a third limited transmit.
  const p = openActive({ cc: 'newreno' }, { mss: 1000, ts: undefined, sackOk: false, window: 65535 });
  p.c.write(pattern(0, 30_000), 0, 30_000, 20_000);
  assert.is(p.h.take().length, 10);
  for (let i = 0; i < 2; i++) { p.c.input(peer(p, { ack: p.seq(0) }), 30_000 + i); assert.is(one(p.h).seq, p.seq(10_000 + i * 1000)); }
  p.c.input(peer(p, { ack: p.seq(0) }), 30_010);
  const r = p.h.take();
  assert.is(r[0]!.seq, p.seq(0));
  assert.is(p.c.stats.limitedTransmits, 2);
});

// -------------------------------------------------------------- handshake loss (5681, 6298)

test('RFC 5681 3.1 / RFC 6298 5.7: after a retransmitted SYN the transfer starts with one segment and a 3 s RTO', () => {
  const h = new RecHost();
  const c = new TcpConnection(h, TUPLE_A, { cc: 'newreno' }, SECRET);
  c.connect(0);
  const syn = one(h);
  c.onTimer(1_000_000); // the SYN is lost
  assert.is(one(h).flags, TH_SYN);
  c.input(mkSeg({ seq: B_ISS, ack: syn.seq + 1, flags: F_SA, mss: 1000, window: 65535 }), 1_100_000);
  assert.is(c.state, TcpState.Established);
  h.take();
  assert.is(c.cwnd, 1000, 'one segment');
  assert.is(c.rto, 3_000_000, 'RTO re-initialized to 3 s (no RTT sample: Karn)');
  c.write(pattern(0, 5000), 0, 5000, 1_200_000);
  const segs = h.take();
  assert.is(segs.length, 1, `one segment in flight: ${segs.map(fmt).join(' | ')}`);
  assert.is(h.deadline, 1_200_000 + 3_000_000);
  // Without a lost SYN: the initial window (RFC 6928) and the 1 s RTO stand.
  const o = openActive({ cc: 'newreno' }, { mss: 1000, ts: undefined, window: 65535 });
  assert.is(o.c.cwnd, 10_000);
  assert.ok(o.c.rto < 3_000_000);
});

test('RFC 5681 3.1: after a SYN-ACK retransmitted by its timer the passive side starts with one segment', () => {
  const h = new RecHost(TUPLE_B.localAddr, TUPLE_B.remoteAddr);
  const syn = mkSeg({ seq: 5000, flags: TH_SYN, mss: 1000, srcPort: 1234, dstPort: 80 });
  const c = TcpConnection.acceptSyn(h, TUPLE_B, { cc: 'newreno' }, SECRET, syn, 0);
  const sa = one(h);
  c.onTimer(1_000_000);
  assert.is(one(h).flags, F_SA);
  c.input(mkSeg({ seq: 5001, ack: sa.seq + 1, flags: TH_ACK, window: 65535, srcPort: 1234, dstPort: 80 }), 1_050_000);
  assert.is(c.state, TcpState.Established);
  assert.is(c.cwnd, 1000);
  assert.is(c.rto, 3_000_000);
});

// ------------------------------------------------------------------- retransmission timer

test('RFC 5681 (4): a segment timed out again keeps ssthresh; only cwnd goes back to one segment (CUBIC and NewReno)', () => {
  for (const cc of ['cubic', 'newreno'] as const) {
    const o = openActive({ cc }, { mss: 1000, ts: undefined, sackOk: false, window: 65535 });
    o.c.write(pattern(0, 10_000), 0, 10_000, 20_000);
    assert.is(o.h.take().length, 10);
    const t1 = o.h.deadline;
    o.c.onTimer(t1);
    assert.is(one(o.h).seq, o.seq(0), 'first timeout: the first segment again');
    const ss = o.c.ssthresh;
    assert.is(ss, cc === 'cubic' ? 7000 : 5000, `${cc}: ssthresh from the flight at the first timeout`);
    assert.is(o.c.cwnd, 1000);
    for (let k = 2; k <= 4; k++) {
      o.c.onTimer(o.h.deadline);
      assert.is(one(o.h).seq, o.seq(0));
      assert.is(o.c.backoffCount, k);
      assert.is(o.c.ssthresh, ss, `${cc}: ssthresh held at timeout ${k}`);
      assert.is(o.c.cwnd, 1000);
    }
    // The ACK ends the outage: slow start up to the held ssthresh.
    o.c.input(peer(o, { ack: o.seq(1000) }), o.h.now + 100_000);
    assert.is(o.c.ssthresh, ss);
  }
});

// -------------------------------------------------------------------- closing, orphan data

test('RFC 1122 4.2.2.13: after close(), a retransmission with no new data but the FIN closes normally; new data resets', () => {
  for (const newData of [false, true]) {
    const o = openActive({}, { mss: 1000, ts: undefined, sackOk: false, window: 65535 });
    o.c.input(peer(o, { data: 100 }), 20_000);
    assert.is(o.h.rxBytes, 100);
    o.h.take();
    o.c.close(21_000);
    const fin = one(o.h);
    assert.ok(fin.flags & TH_FIN);
    o.c.input(peer(o, { seq: B_ISS + 101, ack: o.seq(1) }), 22_000);
    assert.is(o.c.state, TcpState.FinWait2);
    // The peer resends its 100 bytes (our ACK was lost), now with its FIN; or sends 50 new bytes.
    const seg = newData
      ? peer(o, { seq: B_ISS + 101, ack: o.seq(1), flags: TH_ACK | TH_FIN, data: 50 })
      : peer(o, { seq: B_ISS + 1, ack: o.seq(1), flags: TH_ACK | TH_FIN, data: 100 });
    o.c.input(seg, 23_000);
    const out = o.h.take();
    if (newData) {
      assert.ok(out.some((s) => s.flags & TH_RST), `new data after close is answered with RST: ${out.map(fmt).join(' | ')}`);
      assert.is(o.c.state, TcpState.Closed);
    } else {
      assert.not.ok(out.some((s) => s.flags & TH_RST), `no RST for old data: ${out.map(fmt).join(' | ')}`);
      assert.is(o.c.state, TcpState.TimeWait);
      assert.ok(out.some((s) => s.flags === TH_ACK && s.ack === B_ISS + 102), 'the FIN is acknowledged');
    }
  }
});

test('RFC 9293 3.10.7.4: FIN with data out of order is held; CLOSE_WAIT only when the hole fills, data intact', () => {
  const o = openActive({}, { mss: 1000, ts: undefined, sackOk: true, window: 65535 });
  const data = pattern(0, 300);
  o.c.input(peer(o, { seq: B_ISS + 101, flags: TH_ACK | TH_FIN, data: data.subarray(100) }), 20_000);
  assert.is(o.c.state, TcpState.Established, 'FIN beyond a hole does not close');
  assert.is(o.h.remoteClosed, 0);
  const dup = one(o.h);
  assert.is(dup.ack, B_ISS + 1, 'immediate duplicate ACK');
  o.c.input(peer(o, { seq: B_ISS + 1, data: data.subarray(0, 100) }), 21_000);
  assert.is(o.c.state, TcpState.CloseWait);
  assert.is(o.h.remoteClosed, 1);
  assert.equal(Array.from(o.h.received()), Array.from(data));
  assert.is(o.c.rcvNxt, B_ISS + 1 + 300 + 1);
});

test('RFC 9293 3.10.7.4 (CLOSE-WAIT): segment text after the peer\'s FIN is ignored and acknowledged', () => {
  const o = openActive({}, { mss: 1000, ts: undefined, sackOk: false, window: 65535 });
  o.c.input(peer(o, { flags: TH_ACK | TH_FIN }), 20_000);
  assert.is(o.c.state, TcpState.CloseWait);
  o.h.take();
  const r = o.c.input(peer(o, { seq: B_ISS + 2, data: 10 }), 21_000);
  assert.is(r, Drop.None);
  assert.is(o.h.rxBytes, 0, 'nothing delivered after the FIN');
  const a = one(o.h);
  assert.equal([a.flags, a.ack], [TH_ACK, B_ISS + 2]);
  assert.is(o.c.state, TcpState.CloseWait);
});

// --------------------------------------------------------------------------- urgent data

test('RFC 9293 3.8.5 / RFC 6093: urgent data stays inline; the stream is not altered', () => {
  const o = openActive({}, { mss: 1000, ts: undefined, sackOk: false, window: 65535 });
  const data = pattern(0, 200);
  const s1 = peer(o, { flags: TH_ACK | TH_URG | TH_PSH, data: data.subarray(0, 100) });
  s1.urgent = 50;
  o.c.input(s1, 20_000);
  const s2 = peer(o, { seq: B_ISS + 101, flags: TH_ACK | TH_URG, data: data.subarray(100) });
  s2.urgent = 0xffff; // urgent pointer beyond the segment
  o.c.input(s2, 20_001);
  assert.equal(Array.from(o.h.received()), Array.from(data));
  assert.is(o.c.rcvNxt, B_ISS + 201);
});

// --------------------------------------------------------------------- timestamps, PAWS

test('RFC 7323 4.3: TS.Recent is updated only by a segment that covers Last.ACK.sent', () => {
  const o = openActive({ delayedAck: false }, { mss: 1000, ts: [5000, 0], sackOk: true, window: 65535 });
  // Out of order (beyond Last.ACK.sent) with a newer TSval: held, TS.Recent unchanged.
  o.c.input(peer(o, { seq: B_ISS + 101, data: 100, ts: [7000, 0] }), 20_000);
  const d = one(o.h);
  assert.is(d.tsEcr, 5000, 'echoes the old TS.Recent');
  // The in-order segment (SEG.SEQ = Last.ACK.sent) updates it.
  o.c.input(peer(o, { seq: B_ISS + 1, data: 100, ts: [6000, 0] }), 20_001);
  const acks = o.h.take();
  const a = acks[acks.length - 1]!;
  assert.is(a.ack, B_ISS + 201);
  assert.ok(acks.every((x) => x.tsEcr === 6000), acks.map((x) => x.tsEcr).join(','));
});

test('RFC 7323 5.3: PAWS drops an old data segment with an ACK but accepts a RST whatever its timestamp', () => {
  const o = openActive({}, { mss: 1000, ts: [5000, 0], sackOk: true, window: 65535 });
  o.c.input(peer(o, { data: 10, ts: [9000, 0] }), 20_000);
  o.h.take();
  const r = o.c.input(peer(o, { seq: B_ISS + 11, data: 10, ts: [8000, 0] }), 21_000);
  assert.is(r, Drop.TcpPaws);
  const a = one(o.h);
  assert.equal([a.flags, a.ack, a.tsEcr], [TH_ACK, B_ISS + 11, 9000]);
  assert.is(o.h.rxBytes, 10);
  o.c.input(peer(o, { seq: B_ISS + 11, flags: TH_RST, ts: [1, 0] }), 22_000);
  assert.is(o.c.state, TcpState.Closed);
  assert.equal(o.h.closed, ['ECONNRESET']);
});

// ------------------------------------------------------------------------ listener (engine)

test('RFC 9293 3.10.7.2: LISTEN drops a segment with neither SYN, ACK nor RST (no RST); a closed port answers it', async () => {
  const w = twoHosts();
  const fromA = tap(w.link.a);
  createServer(w.a.ctx(), (s: Socket) => { s.resume(); }).listen(80);
  await w.run(() => false, 1000);
  const noAck = drops(w, 'a', 'tcp-no-ack');
  inject(w, { sport: 41000, dport: 80, flags: TH_FIN, seq: 100 });
  inject(w, { sport: 41001, dport: 80, flags: TH_PSH, seq: 100, data: new Uint8Array(20) });
  inject(w, { sport: 41002, dport: 80, flags: 0, seq: 100 });
  await w.run(() => false, 10_000);
  assert.is(fromA.length, 0, `no answer from a listener: ${fromA.map((s) => s.flags).join(',')}`);
  assert.is(drops(w, 'a', 'tcp-no-ack'), noAck + 3);
  assert.is(w.a.engine.tcp.connCount, 0);
  // A RST to the listener is ignored (3.10.7.2 first).
  inject(w, { sport: 41005, dport: 80, flags: TH_RST, seq: 100 });
  inject(w, { sport: 41005, dport: 80, flags: TH_RST | TH_ACK, seq: 100, ack: 7 });
  await w.run(() => false, 10_000);
  assert.is(fromA.length, 0, 'no answer to a RST');
  // An ACK to the listener is answered by <SEQ=SEG.ACK><CTL=RST>.
  inject(w, { sport: 41003, dport: 80, flags: TH_ACK, seq: 100, ack: 4242 });
  await w.run(() => false, 10_000);
  assert.is(fromA.length, 1);
  assert.equal([fromA[0]!.flags, fromA[0]!.seq], [TH_RST, 4242]);
  // The same bare FIN to a closed port: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (3.10.7.1).
  inject(w, { sport: 41004, dport: 81, flags: TH_FIN, seq: 100 });
  await w.run(() => false, 10_000);
  assert.is(fromA.length, 2);
  assert.equal([fromA[1]!.flags, fromA[1]!.seq, fromA[1]!.ack], [TH_RST | TH_ACK, 0, 101]);
});

test('LISTEN: SYN+FIN opens nothing and gets no SYN-ACK (as Linux), counted as bad flags', async () => {
  const w = twoHosts();
  const fromA = tap(w.link.a);
  createServer(w.a.ctx(), (s: Socket) => { s.resume(); }).listen(80);
  await w.run(() => false, 1000);
  const bad = drops(w, 'a', 'tcp-bad-flags');
  inject(w, { sport: 42000, dport: 80, flags: TH_SYN | TH_FIN, seq: 100, mss: 1460 });
  await w.run(() => false, 10_000);
  assert.is(fromA.length, 0);
  assert.is(w.a.engine.tcp.connCount, 0);
  assert.is(drops(w, 'a', 'tcp-bad-flags'), bad + 1);
  // A plain SYN from the same port still opens.
  inject(w, { sport: 42000, dport: 80, flags: TH_SYN, seq: 100, mss: 1460 });
  await w.run(() => false, 10_000);
  assert.is(fromA.length, 1);
  assert.is(fromA[0]!.flags, F_SA);
  assert.is(fromA[0]!.ack, 101);
});

test.run();
