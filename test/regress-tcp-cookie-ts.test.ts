/**
 * Regression: SYN-cookie timestamps ran ahead of the connection's clock. The cookie put its option
 * bits in the low 6 bits of the SYN-ACK's TSval, `(clock & ~0x3f) | bits`, up to 63 ms ahead of
 * the clock; the connection built from the cookie then sent its first data with a smaller TSval,
 * and a Linux client's PAWS check (RFC 7323 5.3) dropped it. Linux (cookie_init_timestamp) takes
 * the previous 64 ms step when the cookie TSval would be ahead of the clock.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TcpConnection } from '../protocols/tcp/connection';
import { seqGeq, seqLeq } from '../protocols/tcp/seq';
import { check, synAckFor } from '../protocols/tcp/syncookie';
import { TcpSegmentOut, TcpState, TH_ACK, TH_SYN } from '../protocols/tcp/types';
import { mkSeg, pattern, RecHost, SECRET, TUPLE_B } from './tcp-harness';

const BASE = 5_000_000_000; // µs

/** The clock a normal (non-cookie) passive open of this tuple would put in its SYN-ACK at `now`. */
function clockAt(syn: ReturnType<typeof mkSeg>, now: number): number {
  const h = new RecHost(TUPLE_B.localAddr as number, TUPLE_B.remoteAddr as number);
  TcpConnection.acceptSyn(h, TUPLE_B, {}, SECRET, syn, now);
  return h.take()[0]!.tsVal;
}

test('the cookie SYN-ACK TSval is never ahead of the connection clock, in every 1 ms phase of the 64 ms step', () => {
  // Window scale 7 and SACK: option bits 0x37, ahead of the clock in most phases.
  const syn = mkSeg({ seq: 7000, flags: TH_SYN, mss: 1460, wscale: 7, sackOk: true, ts: [100, 0], srcPort: 1234, dstPort: 80 });
  const out = new TcpSegmentOut();
  let ahead = 0;
  for (let k = 0; k < 128; k++) {
    const now = BASE + k * 1000;
    synAckFor(syn, out, TUPLE_B, 1460, SECRET, now, {});
    const clock = clockAt(syn, now);
    if (!seqLeq(out.tsVal, clock)) ahead++;
    assert.ok(seqLeq(clock - 64, out.tsVal), 'at most one step behind');
  }
  assert.is(ahead, 0, `cookie TSval ahead of the clock in ${ahead} of 128 phases`);
});

test('the first data segment of a cookie connection carries a TSval >= the SYN-ACK\'s (client PAWS), across clock phases', () => {
  const out = new TcpSegmentOut();
  let bad = 0;
  for (let k = 0; k < 200; k++) {
    const now = BASE + k * 977; // phases that are not multiples of 1 ms too
    const opts = k % 2 === 0 ? { wscale: 7, sackOk: true } : { wscale: 2, sackOk: false };
    const syn = mkSeg({ seq: 7000 + k, flags: TH_SYN, mss: 1460, ...opts, ts: [100 + k, 0], srcPort: 1234, dstPort: 80 });
    const cookie = synAckFor(syn, out, TUPLE_B, 1460, SECRET, now, {});
    const synAckTs = out.tsVal;
    // The client's ACK comes back fast (a LAN), echoing the SYN-ACK's TSval.
    const tAck = now + 300 + (k % 5) * 100;
    const ack = mkSeg({ seq: 7001 + k, ack: cookie + 1, flags: TH_ACK, window: 500, ts: [101 + k, synAckTs], srcPort: 1234, dstPort: 80 });
    const info = check(ack, TUPLE_B, SECRET, tAck);
    assert.ok(info, 'valid cookie');
    const h = new RecHost(TUPLE_B.localAddr as number, TUPLE_B.remoteAddr as number);
    const c = TcpConnection.fromCookie(h, TUPLE_B, {}, ack, info!, tAck);
    h.conn = c;
    c.input(ack, tAck);
    assert.is(c.state, TcpState.Established);
    c.write(pattern(0, 100), 0, 100, tAck + 50);
    const data = h.take().find((s) => s.payloadLen > 0)!;
    assert.ok(data, 'data sent');
    if (!seqGeq(data.tsVal, synAckTs)) bad++;
  }
  assert.is(bad, 0, `first data TSval behind the SYN-ACK's in ${bad} of 200 connections`);
});

test.run();
