/**
 * The encapsulated-packet builders of test/lib/encap-frames.ts against the layouts of the RFCs:
 * IPv4 in IPv4 (protocol 4, RFC 2003 3.1: outer total length = outer header + the whole inner
 * datagram), IPv6 in IPv6 (next header 41, RFC 2473 5), IPv6 in IPv4 (protocol 41, RFC 4213 3.5),
 * IPv4 in IPv6 (next header 4), nesting, truncated inner packets, bad inner checksums, outer
 * fragments (RFC 791 flags and offset, RFC 8200 4.5 Fragment header), Ethernet framing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  craftEncapsulated, decapsulate, ethFrame, ipInfo, ipPacket, IPPROTO_IPIP, IPPROTO_IPV6,
} from './lib/encap-frames';
import { UdpHeader } from '../protocols/udp';
import { TcpHeader } from '../protocols/tcp';
import { Drop } from '../protocols/drop';
import { parseAddr } from '../protocols/ip/addr';
import { TH_SYN } from '../protocols/tcp/types';

const O4 = { src: '10.1.1.100', dst: '10.1.1.3' };
const O6 = { src: 'fd00:1::100', dst: 'fd00:1::3' };
const I4 = { src: '192.0.2.7', dst: '198.51.100.10', payload: Uint8Array.of(1, 2, 3), sport: 5000, dport: 53 };
const I6 = { src: '2001:db8:7::7', dst: '2001:db8::10', payload: Uint8Array.of(4, 5, 6, 7), sport: 5001, dport: 53 };

function udpOk(p: Uint8Array): boolean {
  const h = ipInfo(p)!;
  return new UdpHeader().parse(p, h.headerLen, h.totalLen - h.headerLen, parseAddr(h.src), parseAddr(h.dst)) === Drop.None;
}

test('plain packets: valid IPv4/IPv6 headers, UDP and TCP checksums, fields as asked', () => {
  const p4 = ipPacket({ ...I4, ttl: 9, tos: 0x2a, id: 0x1234 });
  const h4 = ipInfo(p4)!;
  assert.is(p4.length, 20 + 8 + 3);
  assert.equal([h4.version, h4.src, h4.dst, h4.proto, h4.ttl, h4.tos, h4.id, h4.totalLen, h4.df, h4.checksumOk],
    [4, I4.src, I4.dst, 17, 9, 0x2a, 0x1234, 31, true, true]);
  assert.ok(udpOk(p4));
  assert.is(ipInfo(ipPacket({ ...I4, df: false }))!.df, false);
  const p6 = ipPacket({ ...I6, tos: 0xb8, flowLabel: 0x12345 });
  const h6 = ipInfo(p6)!;
  assert.equal([h6.version, h6.src, h6.dst, h6.proto, h6.ttl, h6.tos, h6.flowLabel, h6.totalLen], [6, I6.src, I6.dst, 17, 64, 0xb8, 0x12345, 52]);
  assert.ok(udpOk(p6));
  const syn = ipPacket({ ...I6, proto: 6, payload: undefined, tcp: { mss: 1400 } });
  const t = new TcpHeader();
  assert.is(t.parse(syn, 40, syn.length - 40, parseAddr(I6.src), parseAddr(I6.dst)), Drop.None);
  assert.is(t.flags, TH_SYN);
  assert.is(t.mss, 1400);
  const bad = ipPacket({ ...I4, badChecksum: true });
  assert.is(ipInfo(bad)!.checksumOk, false);
  assert.throws(() => ipPacket({ ...I4, dst: '2001:db8::1' }), RangeError);
  assert.throws(() => ipPacket({ ...I6, badChecksum: true }), RangeError);
});

test('the four kinds: outer protocol 4 / 41 by the inner version, lengths cover exactly the inner packet', () => {
  const cases = [
    { o: O4, i: I4, kind: '4in4', proto: IPPROTO_IPIP },
    { o: O6, i: I6, kind: '6in6', proto: IPPROTO_IPV6 },
    { o: O4, i: I6, kind: '6in4', proto: IPPROTO_IPV6 },
    { o: O6, i: I4, kind: '4in6', proto: IPPROTO_IPIP },
  ] as const;
  for (const c of cases) {
    const inner = ipPacket(c.i);
    const p = craftEncapsulated({ outer: c.o, inner: c.i });
    const d = decapsulate(p)!;
    assert.is(d.kind, c.kind);
    assert.is(d.outer.proto, c.proto, `${c.kind}: protocol / next header`);
    assert.is(d.outer.src, c.o.src);
    assert.is(d.outer.dst, c.o.dst);
    assert.is(d.outer.totalLen, p.length, `${c.kind}: outer length`);
    assert.is(p.length, d.outer.headerLen + inner.length);
    assert.ok(d.outer.checksumOk);
    assert.equal(d.inner, inner, `${c.kind}: the inner packet unchanged`);
    assert.ok(udpOk(d.inner));
    // Given as bytes, the same packet.
    assert.equal(craftEncapsulated({ outer: c.o, inner }), p);
  }
  // The outer fields asked for.
  const d = decapsulate(craftEncapsulated({ outer: { ...O4, ttl: 3, tos: 4, df: false, id: 99 }, inner: I4 }))!;
  assert.equal([d.outer.ttl, d.outer.tos, d.outer.df, d.outer.id, d.outer.mf, d.outer.fragOffset], [3, 4, false, 99, false, 0]);
  assert.is(decapsulate(craftEncapsulated({ outer: { ...O6, proto: 17 }, inner: I4 }))!.kind, null, 'another next header: not an encapsulation');
  assert.throws(() => craftEncapsulated({ outer: { src: O4.src, dst: O6.dst }, inner: I4 }), RangeError);
});

test('nesting: IPIP inside IPIP, outermost first', () => {
  const p = craftEncapsulated({ outer: [O4, { src: '10.9.9.9', dst: '10.8.8.8' }, O6], inner: I4 });
  const a = decapsulate(p)!;
  assert.is(a.kind, '4in4');
  assert.is(a.outer.src, O4.src);
  const b = decapsulate(a.inner)!;
  assert.is(b.kind, '6in4');
  assert.is(b.outer.src, '10.9.9.9');
  const c = decapsulate(b.inner)!;
  assert.is(c.kind, '4in6');
  assert.is(c.outer.src, O6.src);
  assert.equal(c.inner, ipPacket(I4));
});

test('truncated inner packets: the outer counts what is kept, the inner header still claims its length', () => {
  const full = ipPacket(I4);
  const p = craftEncapsulated({ outer: O4, inner: I4, truncateInner: 12 });
  const d = decapsulate(p)!;
  assert.is(d.outer.totalLen, 32);
  assert.equal(d.inner, full.slice(0, 12));
  assert.is(ipInfo(d.inner), null, 'a truncated inner header does not decode');
  const p6 = craftEncapsulated({ outer: O6, inner: I6, truncateInner: 44 });
  const d6 = decapsulate(p6)!;
  assert.is(d6.inner.length, 44);
  assert.is(ipInfo(d6.inner)!.totalLen, 52, 'claims more than it carries');
  assert.throws(() => craftEncapsulated({ outer: O4, inner: I4, truncateInner: 99 }), RangeError);
});

test('inner IPv4 with a bad header checksum inside a good outer header', () => {
  const d = decapsulate(craftEncapsulated({ outer: O4, inner: { ...I4, badChecksum: true } }))!;
  assert.ok(d.outer.checksumOk);
  assert.is(ipInfo(d.inner)!.checksumOk, false);
  assert.is(ipInfo(craftEncapsulated({ outer: { ...O4, badChecksum: true }, inner: I4 }))!.checksumOk, false);
});

test('outer fragments: IPv4 flags and offset (DF clear), IPv6 Fragment header before the next header 4/41', () => {
  const f4 = ipInfo(craftEncapsulated({ outer: { ...O4, fragment: { offset: 0, more: true, id: 77 } }, inner: I4 }))!;
  assert.equal([f4.mf, f4.fragOffset, f4.df, f4.id, f4.proto, f4.checksumOk], [true, 0, false, 77, IPPROTO_IPIP, true]);
  const l4 = ipInfo(craftEncapsulated({ outer: { ...O4, fragment: { offset: 1480, more: false } }, inner: I4 }))!;
  assert.equal([l4.mf, l4.fragOffset], [false, 1480]);
  const p6 = craftEncapsulated({ outer: { ...O6, fragment: { offset: 8, more: false, id: 78 } }, inner: I6 });
  assert.is(p6[6], 44, 'next header: Fragment');
  const f6 = ipInfo(p6)!;
  assert.equal([f6.proto, f6.mf, f6.fragOffset, f6.id, f6.headerLen, f6.totalLen], [IPPROTO_IPV6, false, 8, 78, 48, p6.length]);
  assert.throws(() => craftEncapsulated({ outer: { ...O4, fragment: { offset: 5, more: true } }, inner: I4 }), RangeError);
});

test('Ethernet framing: ethertype from the IP version, optional 802.1Q tag, padding to 60 bytes', () => {
  const p = ipPacket({ ...I4, payload: new Uint8Array(0) });
  const f = ethFrame(p, { dst: '02:00:00:00:00:01', src: '02:00:00:00:00:02' });
  assert.is(f.length, 60);
  assert.equal([f[12], f[13]], [0x08, 0x00]);
  assert.equal(f.subarray(14, 14 + p.length), p);
  const g = ethFrame(craftEncapsulated({ outer: O6, inner: I4 }), { dst: '02:00:00:00:00:01', src: '02:00:00:00:00:02', vlan: 10 });
  assert.equal([g[12], g[13], g[14], g[15], g[16], g[17]], [0x81, 0x00, 0, 10, 0x86, 0xdd]);
});

test.run();
