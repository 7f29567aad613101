/**
 * IPv6 fragments through the engine under virtual time (RFC 8200 4.5): reassembly in and out of
 * order, overlapping fragments dropping the whole datagram (RFC 5722), atomic fragments (RFC
 * 6946), the datagram limit, Time Exceeded code 1 when a datagram whose first fragment came times
 * out; and UDP/IPv6 sends beyond the path MTU fragmented by the source and reassembled by the peer.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World, pattern } from './lib/world';
import { parseIp6 } from '../protocols/ip/addr';
import { writeIpv6 } from '../protocols/ipv6';
import { icmp6Checksum } from '../protocols/icmpv6';
import { frag } from './lib/ipv6-frames';
import { A6, B6, C6, frame6, echo6, icmp6, udp6, send, tap6, icmpOf, held, drops, Out6 } from './lib/engine6';

const opts = { ipv6: true, engine: { ndp: { dadTransmits: 0 } } };

async function settle(w: World): Promise<void> {
  await w.run(() => false, 10_000);
}

/** Fragment frames of the upper-layer message `l4` (protocol `nh`) src → A6, `chunk` bytes each (multiple of 8). */
function fragments(w: World, l4: Uint8Array, nh: number, id: number, chunk: number, src = C6): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let pos = 0; pos < l4.length; pos += chunk) {
    const n = Math.min(chunk, l4.length - pos);
    out.push(frame6(w, { src, dst: A6, nh, exts: [frag(pos, pos + n < l4.length, id)], l4: l4.subarray(pos, pos + n) }));
  }
  return out;
}

/** Reassembles the fragments (by offset) of recorded frames with Fragment headers. */
function joinFrags(fs: Out6[]): Buffer {
  const sorted = [...fs].sort((x, y) => x.frag!.offset - y.frag!.offset);
  return Buffer.concat(sorted.map((f) => Buffer.from(f.l4)));
}

test('an echo request in fragments, in order and out of order, is answered (the reply fragmented with a Fragment header)', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const data = pattern(3000, 5);
  const req = echo6(C6, A6, 7, 1, data);
  for (const f of fragments(w, req, 58, 0x1001, 1232)) send(w, f);
  await w.run(() => false, 10_000);
  const req2 = echo6(C6, A6, 7, 2, data);
  const fs = fragments(w, req2, 58, 0x1002, 1000);
  for (const f of [fs[2]!, fs[0]!, fs[3]!, fs[1]!]) send(w, f);
  await w.run(() => false, 10_000);
  const replies = ta.filter((o) => o.nh === 58 && o.frag);
  const ids = [...new Set(replies.map((o) => o.frag!.id))];
  assert.is(ids.length, 2, 'two fragmented replies');
  for (const [k, id] of ids.entries()) {
    const parts = replies.filter((o) => o.frag!.id === id);
    assert.ok(parts.every((o) => o.raw.length - 18 <= 1500), 'each piece fits the link MTU');
    assert.ok(parts.every((o) => o.frag!.offset % 8 === 0));
    assert.is(parts.filter((o) => !o.frag!.more).length, 1, 'one last fragment');
    const msg = joinFrags(parts);
    assert.is(msg[0], 129, 'echo reply');
    assert.is((msg[6]! << 8) | msg[7]!, k + 1, 'sequence');
    assert.equal(msg.subarray(8), data, 'the data');
  }
  assert.equal(held(w), [0, 0]);
});

test('overlapping fragments drop the whole datagram, also its later fragments (RFC 5722)', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const req = echo6(C6, A6, 7, 1, pattern(3000, 5));
  const fs = fragments(w, req, 58, 0x2001, 1000);
  // A fragment covering [992, 1992) overlaps the first [0, 1000).
  send(w, fs[0]!);
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, exts: [frag(992, true, 0x2001)], l4: req.subarray(992, 1992) }));
  await w.run(() => false, 1000);
  assert.is(drops(w, 'a', 'ipv6-frag-overlap') >= 1, true, 'counted');
  for (const f of fs.slice(1)) send(w, f);
  await w.run(() => false, 10_000);
  assert.is(icmpOf(ta, 129).length + ta.filter((o) => o.frag).length, 0, 'never answered');
  await w.run(() => false, 70_000_000);
  assert.equal(held(w), [0, 0]);
});

test('an atomic fragment is processed at once, apart from a pending datagram of the same identification (RFC 6946)', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const big = echo6(C6, A6, 7, 1, pattern(2000, 5));
  const fs = fragments(w, big, 58, 0x3001, 1232);
  send(w, fs[0]!);
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, exts: [frag(0, false, 0x3001)], l4: echo6(C6, A6, 7, 9, pattern(16, 1)) }));
  await w.run(() => false, 1000);
  const r = icmpOf(ta, 129);
  assert.is(r.length, 1, 'the atomic fragment answered');
  assert.is(r[0]!.l4[7], 9);
  send(w, fs[1]!);
  await w.run(() => false, 10_000);
  assert.ok(ta.some((o) => o.frag && o.frag.offset === 0 && o.l4[0] === 129), 'the pending datagram completes too');
  assert.equal(held(w), [0, 0]);
});

test('reassembly limits: datagrams beyond the limit are dropped and counted; frames all accounted for', async () => {
  const w = twoHosts({ ...opts, engine: { ...opts.engine, reassembly: { maxDatagrams: 4 } } });
  await settle(w);
  for (let i = 0; i < 12; i++) send(w, fragments(w, echo6(C6, A6, 7, i, pattern(2000, i)), 58, 0x4000 + i, 1232)[0]!);
  await w.run(() => false, 10_000);
  assert.ok(drops(w, 'a', 'ipv6-reassembly-overflow') >= 8, `overflow counted (${drops(w, 'a', 'ipv6-reassembly-overflow')})`);
  assert.ok(w.a.engine.ip6.reasm.nextDeadline() < Infinity, 'some held');
  // A fragment ending beyond the 65535-byte datagram limit: Parameter Problem code 0 pointing at
  // the Fragment Offset field (RFC 8200 4.5).
  const ta = tap6(w.link.a);
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, exts: [frag(65528, false, 0x4999)], l4: new Uint8Array(16) }));
  await w.run(() => false, 10_000);
  assert.is(drops(w, 'a', 'ipv6-fragment-invalid'), 1);
  const pp = icmpOf(ta, 4);
  assert.is(pp.length, 1);
  assert.is(pp[0]!.code, 0);
  assert.is(((pp[0]!.l4[4]! << 24) | (pp[0]!.l4[5]! << 16) | (pp[0]!.l4[6]! << 8) | pp[0]!.l4[7]!) >>> 0, 42, 'pointer: the Fragment Offset field');
  await w.run(() => false, 70_000_000);
  assert.is(w.a.engine.ip6.reasm.nextDeadline(), Infinity, 'all expired');
  assert.equal(held(w), [0, 0]);
});

test('timeout: Time Exceeded code 1 quoting the first fragment when it came (RFC 8200 4.5); none when it did not', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const tb = tap6(w.link.b);
  // From fd00::2 (host b, which answers address resolution): only the first of two fragments.
  const req = echo6(B6, A6, 7, 1, pattern(2000, 5));
  const fs = fragments(w, req, 58, 0x5001, 1232, B6);
  send(w, fs[0]!);
  // And a datagram of which only the last fragment came.
  send(w, fragments(w, echo6(B6, A6, 7, 2, pattern(2000, 6)), 58, 0x5002, 1232, B6)[1]!);
  await w.run(() => false, 59_000_000);
  assert.is(icmpOf(ta, 3).length, 0, 'not before 60 s');
  await w.run(() => icmpOf(ta, 3).length > 0, 3_000_000);
  const te = icmpOf(ta, 3);
  assert.is(te.length, 1, 'one Time Exceeded');
  assert.is(te[0]!.code, 1, 'fragment reassembly time exceeded');
  assert.is(te[0]!.dst, 'fd00::2');
  assert.is(te[0]!.src, 'fd00::1');
  assert.is(icmp6Checksum(te[0]!.l4, 0, te[0]!.l4.length, A6, B6), (te[0]!.l4[2]! << 8) | te[0]!.l4[3]!, 'checksum');
  const quoted = te[0]!.l4.subarray(8);
  assert.equal(Buffer.from(quoted.subarray(0, 48)), Buffer.from(fs[0]!.subarray(18, 18 + 48)), 'quotes the first fragment');
  assert.is(w.a.engine.counters.toJSON().drops.reasons['ipv6-reassembly-timeout'], 2, 'both counted');
  void tb;
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('a reassembled UDP datagram to a closed port: Destination Unreachable code 4 quoting the datagram', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const dg = udp6(C6, 5000, A6, 9999, pattern(2000, 3));
  for (const f of fragments(w, dg, 17, 0x6001, 1232)) send(w, f);
  await settle(w);
  const e = icmpOf(ta, 1);
  assert.is(e.length, 1, 'port unreachable');
  assert.is(e[0]!.code, 4);
  assert.is(e[0]!.dst, 'fd00::99');
  assert.ok(e[0]!.raw.length - 18 <= 1280, 'within the minimum MTU (RFC 4443 2.4(c))');
  const q = e[0]!.l4.subarray(8);
  assert.is(q[6], 17, 'the quoted packet is the UDP datagram (no Fragment header)');
  assert.equal(Buffer.from(q.subarray(40, 48)), Buffer.from(dg.subarray(0, 8)), 'its UDP header');
  assert.is(drops(w, 'a', 'udp-no-socket'), 1);
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('UDP/IPv6 larger than the path MTU: fragmented with a Fragment header by the source, reassembled by the other engine', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const got: Buffer[] = [];
  const rb = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp6' });
  rb.on('message', (m: Buffer) => got.push(m));
  rb.bind(7000);
  const ta = tap6(w.link.a);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  s.bind(5353);
  const data = pattern(5000, 8);
  s.send(data, 7000, 'fd00::2');
  assert.ok(await w.run(() => got.length === 1, 2_000_000), 'received');
  assert.equal(got[0], data, 'byte-exact');
  const fr = ta.filter((o) => o.frag && o.nh === 17);
  assert.ok(fr.length >= 4, 'fragments');
  assert.ok(fr.every((o) => o.raw.length - 18 <= 1500 && o.exts.includes(44)));
  assert.is(new Set(fr.map((o) => o.frag!.id)).size, 1);
  // A Packet Too Big quoting the socket's datagram lowers the path MTU: the next pieces are ≤ 1280.
  const q = new Uint8Array(48);
  writeIpv6(q, 0, A6, B6, 17, 1452, 64);
  q[40] = 5353 >>> 8; q[41] = 5353 & 0xff; q[42] = 7000 >>> 8; q[43] = 7000 & 0xff;
  const R6 = parseIp6('fd00::fe');
  send(w, frame6(w, { src: R6, dst: A6, nh: 58, l4: icmp6(2, 0, R6, A6, 1280, q) }));
  await settle(w);
  assert.is(w.a.engine.mtuTo(w.a.vs[0]!, B6), 1280);
  ta.length = 0;
  s.send(data, 7000, 'fd00::2');
  assert.ok(await w.run(() => got.length === 2, 2_000_000));
  assert.equal(got[1], data);
  const fr2 = ta.filter((o) => o.frag && o.nh === 17);
  assert.ok(fr2.length > 0 && fr2.every((o) => o.raw.length - 18 <= 1280), 'within 1280');
  s.close();
  rb.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test.run();
