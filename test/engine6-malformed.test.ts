/**
 * Malformed IPv6 frames through the whole engine: each is dropped and counted with its reason (and
 * answered with the ICMPv6 error RFC 8200 asks for), never thrown; frame accounting stays exact.
 * Then mutations of valid frames (bounded, seeded) with the same guarantees.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World, pattern } from './lib/world';
import { parseIp6 } from '../protocols/ip/addr';
import { optsHdr, routing, frag } from './lib/ipv6-frames';
import { A6, C6, PEER_MAC, frame6, echo6, ns6, na6, udp6, icmp6, send, tap6, icmpOf, held, drops, solicitedNode } from './lib/engine6';

const opts = { ipv6: true, engine: { ndp: { dadTransmits: 0 } } };
const u32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

async function settle(w: World): Promise<void> {
  await w.run(() => false, 10_000);
}

function totalDrops(w: World): number {
  const d = w.a.vs[0]!.counters.toJSON().drops.reasons;
  const e = w.a.engine.devices[0]!.counters.toJSON().drops.reasons;
  return Object.values(d).reduce((a, b) => a + b, 0) + Object.values(e).reduce((a, b) => a + b, 0);
}

test('each malformed IPv6 frame is dropped with its reason (and its ICMPv6 error where RFC 8200 asks)', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const good = () => frame6(w, { src: C6, dst: A6, nh: 58, l4: echo6(C6, A6, 1, 1) });
  const cases: [string, Uint8Array][] = [];
  // Truncated IPv6 header.
  cases.push(['ipv6-truncated', good().subarray(0, 18 + 30)]);
  // Version 4 inside an IPv6 EtherType.
  { const f = good(); f[18] = 0x45; cases.push(['ipv6-bad-version', f]); }
  // Payload length beyond the frame.
  { const f = good(); f[18 + 4] = 0x05; cases.push(['ipv6-truncated', f]); }
  // Hop-by-Hop after another header.
  cases.push(['ipv6-hbh-not-first', frame6(w, { src: C6, dst: A6, nh: 58, exts: [optsHdr(60, [1, 0]), optsHdr(0, [1, 0])], l4: echo6(C6, A6, 1, 2) })]);
  // Too many extension headers.
  cases.push(['ipv6-ext-chain-too-long', frame6(w, { src: C6, dst: A6, nh: 58, exts: Array.from({ length: 12 }, () => optsHdr(60, [1, 0])), l4: echo6(C6, A6, 1, 3) })]);
  // Routing header type 0 with segments left (RFC 5095).
  cases.push(['ipv6-routing-type0', frame6(w, { src: C6, dst: A6, nh: 58, exts: [routing(0, 1)], l4: echo6(C6, A6, 1, 4) })]);
  // An option running past its header.
  cases.push(['ipv6-bad-option', frame6(w, { src: C6, dst: A6, nh: 58, exts: [{ type: 60, body: Uint8Array.from([0, 0, 0x1e, 9, 0, 0, 0, 0]) }], l4: echo6(C6, A6, 1, 5) })]);
  // A non-last fragment whose length is not a multiple of 8.
  cases.push(['ipv6-fragment-invalid', frame6(w, { src: C6, dst: A6, nh: 58, exts: [frag(0, true, 77)], l4: echo6(C6, A6, 1, 6, new Uint8Array(13)) })]);
  // Bad ICMPv6 checksum.
  { const l4 = echo6(C6, A6, 1, 7); l4[2] ^= 0xff; cases.push(['icmpv6-bad-checksum', frame6(w, { src: C6, dst: A6, nh: 58, l4 })]); }
  // Truncated ICMPv6.
  cases.push(['icmpv6-truncated', frame6(w, { src: C6, dst: A6, nh: 58, l4: Uint8Array.from([128, 0]) })]);
  // UDP whose length field exceeds the payload.
  { const l4 = udp6(C6, 1, A6, 2, pattern(16, 1)); l4[5] = 200; cases.push(['udp-bad-length', frame6(w, { src: C6, dst: A6, nh: 17, l4 })]); }
  // Truncated TCP header.
  cases.push(['tcp-truncated', frame6(w, { src: C6, dst: A6, nh: 6, l4: new Uint8Array(10) })]);
  // NS shorter than 24 bytes; NS with an option of length 0 (RFC 4861 7.1.1); NA for a multicast target.
  const snm = solicitedNode(A6);
  const snmMac = Uint8Array.from([0x33, 0x33, 0xff, 0, 0, 1]);
  cases.push(['icmpv6-truncated|ndp-invalid', frame6(w, { src: C6, dst: snm, ethDst: snmMac, nh: 58, hop: 255, l4: icmp6(135, 0, C6, snm, 0, new Uint8Array(8)) })]);
  { const l4 = ns6(A6, C6, snm, PEER_MAC); l4[25] = 0; const f = frame6(w, { src: C6, dst: snm, ethDst: snmMac, nh: 58, hop: 255, l4 });
    const o = f.length - l4.length; const fixed = icmp6(135, 0, C6, snm, 0, l4.subarray(8)); f.set(fixed, o); f[o + 25] = 0;
    const again = icmp6(135, 0, C6, snm, 0, f.subarray(o + 8)); f.set(again, o); cases.push(['ndp-invalid', f]); }
  cases.push(['ndp-invalid', frame6(w, { src: C6, dst: A6, nh: 58, hop: 255, l4: na6(parseIp6('ff02::1'), 0x20, PEER_MAC, C6, A6) })]);
  // NA to a group with Solicited set; NS from :: carrying a source link-layer address (RFC 4861 7.1).
  { const all = parseIp6('ff02::1');
    cases.push(['ndp-invalid', frame6(w, { src: C6, dst: all, ethDst: Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]), nh: 58, hop: 255, l4: na6(C6, 0x60, PEER_MAC, C6, all) })]);
    const any = parseIp6('::');
    cases.push(['ndp-invalid', frame6(w, { src: any, dst: snm, ethDst: snmMac, nh: 58, hop: 255, l4: ns6(A6, any, snm, PEER_MAC) })]); }
  // A first fragment without the upper-layer header (RFC 8200 4.5): Parameter Problem code 3.
  cases.push(['ipv6-ext-truncated', frame6(w, { src: C6, dst: A6, nh: 60, exts: [frag(0, true, 78)], l4: Uint8Array.from([58, 0, 1, 0, 0, 0, 0, 0]) })]);
  for (const [reason, f] of cases) {
    const before = totalDrops(w);
    const names = reason.split('|');
    const named = () => names.reduce((a, n) => a + drops(w, 'a', n) + (w.a.engine.devices[0]!.counters.toJSON().drops.reasons[n] ?? 0), 0);
    const nb = named();
    send(w, f);
    await w.run(() => false, 1000);
    assert.is(totalDrops(w) - before, 1, `${reason}: one drop`);
    assert.is(named() - nb, 1, `counted as ${reason}`);
  }
  assert.is(w.a.engine.internalErrors, 0, 'nothing thrown');
  const pp = icmpOf(ta, 4);
  const codes = pp.map((o) => `${o.code}:${u32(o.l4, 4)}`);
  assert.ok(codes.includes('1:40'), `Hop-by-Hop not first: code 1 pointing at the field naming it (${codes})`);
  assert.ok(codes.includes('0:42'), `Routing type 0: code 0 pointing at the Routing Type (RFC 5095 3) (${codes})`);
  assert.ok(codes.includes('0:4'), `fragment length: code 0, pointer 4 (payload length) (RFC 8200 4.5) (${codes})`);
  assert.ok(pp.some((o) => o.code === 3), `incomplete chain in the first fragment: code 3 (${codes})`);
  assert.is(icmpOf(ta, 129).length, 0, 'no echo answered');
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('mutated IPv6 frames (seeded, bounded): never a throw, frame accounting exact', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const snm = solicitedNode(A6);
  const snmMac = Uint8Array.from([0x33, 0x33, 0xff, 0, 0, 1]);
  const seeds: Uint8Array[] = [
    frame6(w, { src: C6, dst: A6, nh: 58, l4: echo6(C6, A6, 1, 1, pattern(64, 1)) }),
    frame6(w, { src: C6, dst: A6, nh: 58, exts: [optsHdr(0, [5, 2, 0, 0]), optsHdr(60, [1, 0])], l4: echo6(C6, A6, 1, 1) }),
    frame6(w, { src: C6, dst: A6, nh: 58, exts: [frag(0, true, 9)], l4: echo6(C6, A6, 1, 1, pattern(64, 2)) }),
    frame6(w, { src: C6, dst: A6, nh: 58, exts: [frag(72, false, 9)], l4: pattern(40, 3) }),
    frame6(w, { src: C6, dst: snm, ethDst: snmMac, nh: 58, hop: 255, l4: ns6(A6, C6, snm, PEER_MAC) }),
    frame6(w, { src: C6, dst: A6, nh: 58, hop: 255, l4: na6(C6, 0x60, PEER_MAC, C6, A6) }),
    frame6(w, { src: C6, dst: A6, nh: 17, l4: udp6(C6, 1, A6, 7, pattern(20, 4)) }),
    frame6(w, { src: C6, dst: A6, nh: 6, l4: pattern(40, 5) }),
    frame6(w, { src: C6, dst: A6, nh: 58, exts: [routing(4, 0)], l4: icmp6(1, 4, C6, A6, 0, pattern(48, 6)) }),
  ];
  let x = 12345;
  const rnd = (n: number) => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return (x >>> 8) % n; };
  const rx0 = w.a.engine.devices[0]!.counters.rxPackets;
  const N = 3000;
  for (let i = 0; i < N; i++) {
    const s = seeds[i % seeds.length]!;
    let f: Uint8Array = Uint8Array.from(s);
    const k = 1 + rnd(4);
    for (let m = 0; m < k; m++) {
      const at = 18 + rnd(Math.max(1, f.length - 18));
      f[at] = rnd(3) === 0 ? 0 : rnd(3) === 0 ? 0xff : rnd(256);
    }
    if (rnd(8) === 0) f = f.subarray(0, 18 + rnd(f.length - 17));
    send(w, f);
    if (i % 100 === 99) await w.run(() => false, 2000);
  }
  await w.run(() => false, 70_000_000);
  assert.is(w.a.engine.devices[0]!.counters.rxPackets - rx0 >= N, true, 'all received');
  assert.is(w.a.engine.internalErrors, 0, 'nothing thrown');
  assert.is(w.b.engine.internalErrors, 0);
  assert.equal(held(w), [0, 0], 'every frame accounted for');
});

test.run();
