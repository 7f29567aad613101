/**
 * Regression: with SACK, an ACK that SACKs new data is a duplicate ACK even when it changes the
 * advertised window (RFC 6675 section 2). Linux's receive window grows with almost every ACK it sends
 * while its application reads, so under the RFC 5681 rule alone (window unchanged) three duplicate
 * ACKs never came from a Linux receiver: every single loss waited for the retransmission timeout
 * (in the lab, 1 MB to Linux at 5 % loss took 3-8 s with 12-26 timeouts; Linux to xdpstack 0.1-1 s).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Drop } from '../protocols/drop';
import type { TcpHeader } from '../protocols/tcp';
import { TcpConnection } from '../protocols/tcp/connection';
import { TcpState, TH_ACK, TH_SYN } from '../protocols/tcp/types';
import { mkSeg, pattern, RecHost, SECRET, SegSpec, TUPLE_A } from './tcp-harness';

const B_ISS = 1000;

function open(sackOk: boolean): { h: RecHost; c: TcpConnection; seq: (n: number) => number } {
  const h = new RecHost();
  const c = new TcpConnection(h, TUPLE_A, { cc: 'newreno' }, SECRET);
  h.conn = c;
  c.connect(0);
  const [syn] = h.take();
  const iss = syn!.seq;
  assert.is(c.input(mkSeg({ seq: B_ISS, ack: iss + 1, flags: TH_SYN | TH_ACK, window: 65535, mss: 1000, wscale: 7, sackOk }), 10_000), Drop.None);
  h.take();
  assert.is(c.state, TcpState.Established);
  return { h, c, seq: (n) => (iss + 1 + n) >>> 0 };
}

function ack(o: ReturnType<typeof open>, a: number, window: number, sack?: [number, number][], data = 0): TcpHeader {
  const s: SegSpec = { seq: B_ISS + 1, ack: a, flags: TH_ACK, window, sack };
  if (data) s.data = data;
  return mkSeg(s);
}

test('SACK: three ACKs that SACK new data start fast retransmit although each one grows the window', () => {
  const o = open(true);
  o.c.write(pattern(0, 10_000), 0, 10_000, 20_000);
  assert.is(o.h.take().length, 10);
  const S = (a: number, b: number): [number, number] => [o.seq(a * 1000), o.seq(b * 1000)];
  // Segment 0 lost; like Linux, each ACK advertises a slightly larger window (units of 128 bytes).
  o.c.input(ack(o, o.seq(0), 400, [S(1, 2)]), 30_000);
  o.c.input(ack(o, o.seq(0), 403, [S(1, 3)]), 30_001);
  assert.is(o.c.stats.fastRetransmits, 0, 'two duplicate ACKs are not enough');
  o.c.input(ack(o, o.seq(0), 406, [S(1, 4)]), 30_002);
  const r = o.h.take();
  assert.ok(r.some((x) => x.seq === o.seq(0) && x.payloadLen === 1000), `the hole is retransmitted at once, not after the RTO: ${r.map((x) => x.seq - o.seq(0)).join(',')}`);
  assert.is(o.c.stats.fastRetransmits, 1);
  assert.is(o.c.stats.dupAcksIn, 3);
  assert.is(o.c.stats.rtoExpirations, 0);
});

test('SACK: an ACK carrying data that SACKs new octets counts as a duplicate ACK (RFC 6675 section 2)', () => {
  const o = open(true);
  o.c.write(pattern(0, 10_000), 0, 10_000, 20_000);
  o.h.take();
  const S = (a: number, b: number): [number, number] => [o.seq(a * 1000), o.seq(b * 1000)];
  // Both directions at once (an echo): the peer's ACKs carry its own data.
  let seq = B_ISS + 1;
  for (let k = 2; k <= 4; k++) {
    o.c.input(mkSeg({ seq, ack: o.seq(0), flags: TH_ACK, window: 400, sack: [S(1, k)], data: 100 }), 30_000 + k);
    seq += 100;
  }
  assert.ok(o.h.take().some((x) => x.seq === o.seq(0) && x.payloadLen === 1000), 'the hole is retransmitted');
  assert.is(o.c.stats.fastRetransmits, 1);
});

test('SACK: ACKs that SACK nothing new and change the window are not duplicate ACKs (RFC 5681 rule kept)', () => {
  const o = open(true);
  o.c.write(pattern(0, 10_000), 0, 10_000, 20_000);
  o.h.take();
  const S = (a: number, b: number): [number, number] => [o.seq(a * 1000), o.seq(b * 1000)];
  o.c.input(ack(o, o.seq(0), 400, [S(1, 2)]), 30_000);
  // The same SACK block again, window updates only: not duplicates.
  for (let i = 0; i < 4; i++) o.c.input(ack(o, o.seq(0), 401 + i, [S(1, 2)]), 30_001 + i);
  assert.is(o.c.stats.dupAcksIn, 1);
  assert.is(o.c.stats.fastRetransmits, 0);
});

test('without SACK the RFC 5681 definition holds: window changes make ACKs not duplicates', () => {
  const o = open(false);
  o.c.write(pattern(0, 10_000), 0, 10_000, 20_000);
  o.h.take();
  for (let i = 0; i < 4; i++) o.c.input(ack(o, o.seq(0), 400 + i), 30_000 + i);
  assert.is(o.c.stats.fastRetransmits, 0);
  for (let i = 0; i < 3; i++) o.c.input(ack(o, o.seq(0), 403), 31_000 + i);
  assert.is(o.c.stats.fastRetransmits, 1, 'three ACKs with an unchanged window are');
});

test.run();
