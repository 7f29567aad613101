import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readCapture } from '../driver/pcap';
import { Drop } from '../protocols/drop';
import { TcpHeader, tcpHeaderLen, writeTcp } from '../protocols/tcp';
import { TcpSegmentOut, TH_ACK, TH_SYN } from '../protocols/tcp/types';
import { fold, pseudoSum4, sum16 } from '../protocols/checksum';
import * as path from 'node:path';
import { SAMPLE_PCAPS } from './lib/env';

/** Parses the TCP segment of an untagged Ethernet (link type 1) or Linux cooked (113) IPv4 frame. */
function parseFrame(f: Uint8Array, linkType: number): { h: TcpHeader; r: Drop } {
  const ip = linkType === 113 ? 16 : 14;
  const ihl = (f[ip]! & 15) * 4;
  const total = (f[ip + 2]! << 8) | f[ip + 3]!;
  const src = ((f[ip + 12]! << 24) | (f[ip + 13]! << 16) | (f[ip + 14]! << 8) | f[ip + 15]!) >>> 0;
  const dst = ((f[ip + 16]! << 24) | (f[ip + 17]! << 16) | (f[ip + 18]! << 8) | f[ip + 19]!) >>> 0;
  const h = new TcpHeader();
  const r = h.parse(f, ip + ihl, total - ihl, src, dst);
  return { h, r };
}

test('capture: handshake with MSS, SACK-permitted, timestamps and window scale', () => {
  const recs = readCapture(path.join(SAMPLE_PCAPS, 'tcp-handshake-nano.pcap'));
  assert.is(recs.length, 3);
  const [syn, synack, ack] = recs.map((r) => parseFrame(r.data, r.linkType));
  for (const x of [syn!, synack!, ack!]) assert.is(x.r, Drop.None);
  const s = syn!.h;
  assert.equal([s.srcPort, s.dstPort, s.seq, s.ack, s.flags, s.window], [46656, 80, 797190859, 0, TH_SYN, 27200]);
  assert.equal([s.mss, s.sackOk, s.hasTs, s.tsVal, s.tsEcr, s.wscale], [1360, true, true, 1131021154, 0, 7]);
  const sa = synack!.h;
  assert.equal([sa.seq, sa.ack, sa.flags, sa.window], [3078856592, 797190860, TH_SYN | TH_ACK, 8192]);
  assert.equal([sa.mss, sa.sackOk, sa.tsVal, sa.tsEcr, sa.wscale], [1440, true, 234205008, 1131021154, 8]);
  const a = ack!.h;
  assert.equal([a.flags, a.window, a.mss, a.wscale, a.sackOk, a.tsVal, a.tsEcr], [TH_ACK, 213, 0, -1, false, 1131021186, 234205008]);
  assert.is(a.payloadLen, 0);
});

test('capture: all eight flags set parse (the connection rejects the combination, not the parser)', () => {
  const recs = readCapture(path.join(SAMPLE_PCAPS, 'tcp_eight_lowest_weight_flags_set.pcap'));
  const { h, r } = parseFrame(recs[0]!.data, recs[0]!.linkType);
  assert.is(r, Drop.None);
  assert.is(h.flags, 0xff);
  assert.equal([h.srcPort, h.dstPort, h.seq, h.ack, h.window], [6260, 80, 576462951, 486026015, 512]);
});

test('emit/parse round trip with every option and SACK blocks', () => {
  const o = new TcpSegmentOut();
  o.srcPort = 1; o.dstPort = 2; o.seq = 0xfffffff0; o.ack = 5; o.flags = TH_SYN | TH_ACK; o.window = 1234;
  o.mss = 1460; o.wscale = 9; o.sackOk = true; o.hasTs = true; o.tsVal = 0xdeadbeef; o.tsEcr = 7;
  const hl = tcpHeaderLen(o);
  assert.is(hl, 20 + 4 + 12 + 4);
  const b = new Uint8Array(hl + 3);
  b.set([9, 8, 7], hl);
  writeTcp(b, 0, o, 3, 0x01020304, 0x05060708);
  const h = new TcpHeader();
  assert.is(h.parse(b, 0, b.length, 0x01020304, 0x05060708), Drop.None);
  assert.equal([h.seq, h.ack, h.flags, h.window, h.mss, h.wscale, h.sackOk, h.tsVal, h.tsEcr], [0xfffffff0, 5, 0x12, 1234, 1460, 9, true, 0xdeadbeef, 7]);
  assert.equal(Array.from(b.subarray(h.payloadOff, h.payloadOff + h.payloadLen)), [9, 8, 7]);
  // Checksum verifies, a flipped bit does not.
  b[hl + 1] ^= 1;
  assert.is(h.parse(b, 0, b.length, 0x01020304, 0x05060708), Drop.TcpBadChecksum);

  const q = new TcpSegmentOut();
  q.flags = TH_ACK; q.hasTs = true; q.sackCount = 4;
  for (let i = 0; i < 4; i++) { q.sackStart[i] = 100 * i; q.sackEnd[i] = 100 * i + 50; }
  // With timestamps only three blocks fit in 40 option bytes.
  assert.is(tcpHeaderLen(q), 20 + 12 + 4 + 24);
  const qb = new Uint8Array(tcpHeaderLen(q));
  writeTcp(qb, 0, q, 0, 1, 2);
  assert.is(h.parse(qb, 0, qb.length, 1, 2), Drop.None);
  assert.is(h.sackCount, 3);
  assert.equal([h.sackStart[2], h.sackEnd[2]], [200, 250]);
  q.hasTs = false;
  assert.is(tcpHeaderLen(q), 20 + 4 + 32);
});

function raw(opts: number[], payload = 0): Uint8Array {
  const hl = 20 + ((opts.length + 3) & ~3);
  const b = new Uint8Array(hl + payload);
  b[12] = (hl / 4) << 4;
  b[13] = TH_ACK;
  b.set(opts, 20);
  const c = fold(sum16(b, 0, b.length, pseudoSum4(1, 2, 6, b.length)));
  b[16] = c >> 8; b[17] = c & 255;
  return b;
}

test('unknown options are skipped, malformed ones stop parsing without throwing', () => {
  const h = new TcpHeader();
  // Unknown kind 30 (MPTCP) with length 6, then MSS.
  assert.is(h.parse(raw([30, 6, 1, 2, 3, 4, 2, 4, 5, 0xb4]), 0, 32, 1, 2), Drop.None);
  assert.is(h.mss, 1460);
  assert.not.ok(h.badOptions);
  // Option length 0 (would loop forever) and length beyond the header.
  assert.is(h.parse(raw([2, 4, 5, 0xb4, 99, 0]), 0, 28, 1, 2), Drop.None);
  assert.ok(h.badOptions);
  assert.is(h.mss, 1460);
  assert.is(h.parse(raw([1, 1, 8, 30]), 0, 24, 1, 2), Drop.None);
  assert.ok(h.badOptions);
  assert.not.ok(h.hasTs);
  // Wrong length for known options.
  assert.is(h.parse(raw([3, 4, 7, 0, 8, 6, 0, 0, 0, 0]), 0, 32, 1, 2), Drop.None);
  assert.is(h.wscale, -1);
  assert.not.ok(h.hasTs);
  // Window scale above 14 is clamped (RFC 7323 2.3). EOL ends the list.
  assert.is(h.parse(raw([3, 3, 20, 0, 2, 4, 1, 1]), 0, 28, 1, 2), Drop.None);
  assert.is(h.wscale, 14);
  assert.is(h.mss, 0);
  // SACK with a ragged length.
  assert.is(h.parse(raw([5, 7, 0, 0, 0, 1, 0]), 0, 28, 1, 2), Drop.None);
  assert.is(h.sackCount, 0);
  assert.ok(h.badOptions);
});

test('truncated segments and bad data offsets are drop reasons', () => {
  const h = new TcpHeader();
  assert.is(h.parse(new Uint8Array(19), 0, 19, 1, 2), Drop.TcpTruncated);
  const b = raw([]);
  b[12] = 4 << 4;
  assert.is(h.parse(b, 0, 20, 1, 2, false), Drop.TcpBadOffset);
  b[12] = 6 << 4;
  assert.is(h.parse(b, 0, 20, 1, 2, false), Drop.TcpBadOffset);
});

test('fuzz: random bytes never throw', () => {
  let x = 12345;
  const h = new TcpHeader();
  const b = new Uint8Array(80);
  for (let i = 0; i < 20000; i++) {
    for (let j = 0; j < b.length; j++) { x = (x * 1103515245 + 12345) >>> 0; b[j] = x >>> 24; }
    const len = (x >>> 8) % 81;
    h.parse(b, 0, len, 1, 2, false);
    assert.ok(h.sackCount <= 4);
  }
});

test.run();
