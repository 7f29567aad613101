/**
 * IPv6 reassembly (RFC 8200 4.5): order, the unfragmentable part, RFC 5722 overlaps (the whole
 * datagram and its later fragments), RFC 6946 atomic fragments, Parameter Problem cases, limits,
 * timeouts with the first fragment for Time Exceeded, tenant separation.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Drop } from '../protocols/drop';
import { Ipv6Header, writeIpv6, writeFragHdr, IPV6_HLEN, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS, IPPROTO_HOPOPTS } from '../protocols/ipv6';
import { Ipv6Reassembler } from '../protocols/reassembly6';
import { Ipv4Reassembler } from '../protocols/reassembly';
import { parseIp6, Ip6 } from '../protocols/ip/addr';
import { packet, optsHdr, frag as fragExt } from './lib/ipv6-frames';

const SRC = parseIp6('fd00::2');
const DST = parseIp6('fd00::1');
const UDP = 17;
const hdr = new Ipv6Header();

function payload(n: number, seed = 1): Uint8Array {
  const p = new Uint8Array(n);
  for (let i = 0; i < n; i++) p[i] = (i * 7 + seed * 13) & 0xff;
  return p;
}

/** Fragment [off, off+len) of `data` as a full packet, parsed into `hdr`. Optional Hop-by-Hop before the Fragment header. */
function frag(data: Uint8Array, off: number, len: number, more: boolean, id = 42, src: Ip6 = SRC, dst: Ip6 = DST, hbh = false): Uint8Array {
  const pre = hbh ? 8 : 0;
  const b = new Uint8Array(IPV6_HLEN + pre + 8 + len);
  writeIpv6(b, 0, src, dst, hbh ? IPPROTO_HOPOPTS : IPPROTO_FRAGMENT, pre + 8 + len, 64);
  if (hbh) { b[40] = IPPROTO_FRAGMENT; b[41] = 0; b[42] = 1; b[43] = 4; }
  writeFragHdr(b, IPV6_HLEN + pre, UDP, off, more, id);
  b.set(data.subarray(off, off + len), IPV6_HLEN + pre + 8);
  assert.is(hdr.parse(b, 0, b.length), Drop.None);
  assert.ok(hdr.isFragment);
  return b;
}

function push(r: Ipv6Reassembler, ctx: number, data: Uint8Array, off: number, len: number, more: boolean, now = 0, id = 42): Drop {
  const b = frag(data, off, len, more, id);
  return r.push(ctx, hdr, b, now);
}

test('in order: completes on the last fragment; packet re-parses as unfragmented UDP', () => {
  const r = new Ipv6Reassembler();
  const data = payload(3000);
  assert.is(push(r, 1, data, 0, 1448, true), Drop.None);
  assert.not.ok(r.done);
  assert.is(push(r, 1, data, 1448, 1448, true), Drop.None);
  assert.equal([r.pending, r.heldBytes], [1, 2896]);
  assert.is(push(r, 1, data, 2896, 104, false), Drop.None);
  assert.ok(r.done);
  assert.equal([...r.datagram], [...data]);
  assert.equal([r.nextHeader, r.unfragLen, r.doneCtx, r.doneId], [UDP, 40, 1, 42]);
  const h = new Ipv6Header();
  assert.is(h.parse(r.packet, 0, r.packet.length), Drop.None);
  assert.equal([h.nextHeader, h.payloadLen, h.l4Off, h.l4Len, h.isFragment, h.fragHdrOff], [UDP, 3000, 40, 3000, false, -1]);
  assert.is(r.packet.subarray(8, 24).join(), SRC.bytes().join());
  assert.is(r.packet.subarray(24, 40).join(), DST.bytes().join());
  assert.equal([r.pending, r.heldBytes, r.nextDeadline()], [0, 0, Infinity]);
});

test('out of order; the unfragmentable part and Next Header come from the offset-0 fragment', () => {
  const r = new Ipv6Reassembler();
  const data = payload(2000, 3);
  const pieces: [number, number, boolean][] = [[1600, 400, false], [800, 800, true], [0, 800, true]];
  for (let i = 0; i < pieces.length; i++) {
    const [o, l, m] = pieces[i];
    const b = frag(data, o, l, m, 42, SRC, DST, o === 0);
    if (o !== 0) b[IPV6_HLEN] = 99; // a different Next Header in a later fragment is ignored (RFC 8200 4.5)
    assert.is(hdr.parse(b, 0, b.length), Drop.None);
    assert.is(r.push(0, hdr, b, 0), Drop.None);
    assert.is(r.done, i === 2);
  }
  assert.equal([r.nextHeader, r.unfragLen], [UDP, 48]);
  const h = new Ipv6Header();
  assert.is(h.parse(r.packet, 0, r.packet.length), Drop.None);
  assert.equal([h.extCount, h.nextHeader, h.l4Off, h.l4Len], [1, UDP, 48, 2000]);
  assert.equal([...r.datagram], [...data]);
});

test('headers after the Fragment header are in the datagram: re-parsing the packet walks them', () => {
  const r = new Ipv6Reassembler();
  const inner = new Uint8Array(8 + 100);
  inner[0] = UDP; // Destination Options → UDP
  inner[1] = 0;
  inner.set(payload(100), 8);
  const f1 = packet([fragExt(0, true, 5)], IPPROTO_DSTOPTS, inner.subarray(0, 56));
  const f2 = packet([fragExt(56, false, 5)], IPPROTO_DSTOPTS, inner.subarray(56));
  for (const f of [f2, f1]) {
    assert.is(hdr.parse(f, 0, f.length), Drop.None);
    assert.is(r.push(3, hdr, f, 0), Drop.None);
  }
  assert.ok(r.done);
  assert.is(r.nextHeader, IPPROTO_DSTOPTS);
  const h = new Ipv6Header();
  assert.is(h.parse(r.packet, 0, r.packet.length), Drop.None);
  assert.equal([h.nextHeader, h.l4Off, h.l4Len], [UDP, 48, 100]);
});

test('RFC 5722: an overlap discards the whole datagram, and its later fragments until the deadline', () => {
  const r = new Ipv6Reassembler({ timeoutUs: 1000 });
  const data = payload(3000);
  assert.is(push(r, 0, data, 0, 1448, true, 0), Drop.None);
  assert.is(push(r, 0, data, 1440, 800, true, 10), Drop.Ipv6FragOverlap);
  assert.is(r.heldBytes, 0, 'data freed at once');
  assert.is(r.pending, 1, 'remembered');
  // Every fragment of it afterwards is dropped, even ones that would complete it.
  assert.is(push(r, 0, data, 1448, 1448, true, 20), Drop.Ipv6FragOverlap);
  assert.is(push(r, 0, data, 0, 1448, true, 30), Drop.Ipv6FragOverlap);
  assert.is(push(r, 0, data, 2896, 104, false, 40), Drop.Ipv6FragOverlap);
  assert.not.ok(r.done);
  assert.is(r.stats[Drop.Ipv6FragOverlap], 4);
  // After the deadline, the same key starts afresh (silently: no Time Exceeded for it).
  let calls = 0;
  assert.is(r.expire(1000, () => { calls++; }), 1);
  assert.is(calls, 0);
  assert.is(push(r, 0, data, 0, 1448, true, 1001), Drop.None);
  assert.is(push(r, 0, data, 1448, 1552, false, 1002), Drop.None);
  assert.ok(r.done);
  assert.equal([...r.datagram], [...data]);
});

test('an exact duplicate drops only itself', () => {
  const r = new Ipv6Reassembler();
  const data = payload(1000);
  assert.is(push(r, 0, data, 0, 504, true), Drop.None);
  assert.is(push(r, 0, data, 0, 504, true), Drop.Ipv6FragmentDuplicate);
  assert.is(push(r, 0, data, 504, 496, false), Drop.None);
  assert.ok(r.done);
  assert.equal([...r.datagram], [...data]);
});

test('IPv4 keeps its behaviour: an overlap discards the datagram but is not remembered', async () => {
  const { Ipv4Header, writeIpv4, IP_MF } = await import('../protocols/ipv4');
  const r = new Ipv4Reassembler();
  const h = new Ipv4Header();
  const b = new Uint8Array(2000);
  const f = (off: number, len: number, mf: boolean) => {
    writeIpv4(b, 0, 1, 2, UDP, len, 64, 9, (mf ? IP_MF : 0) | (off >> 3), 0);
    assert.is(h.parse(b, 0, 20 + len), Drop.None);
    return r.push(0, h, b, 0);
  };
  assert.is(f(0, 800, true), Drop.None);
  assert.is(f(792, 800, true), Drop.Ipv4ReassemblyOverlap);
  assert.is(r.pending, 0);
  assert.is(f(0, 800, true), Drop.None);
});

test('Parameter Problem: M=1 with a length not a multiple of 8 (pointer 4); beyond 65535 (pointer at Fragment Offset)', () => {
  const r = new Ipv6Reassembler();
  const data = payload(70000);
  assert.is(push(r, 0, data, 0, 1001, true), Drop.Ipv6FragmentInvalid);
  assert.equal([r.ppCode, r.ppPointer], [0, 4]);
  assert.is(push(r, 0, data, 65000, 536, true), Drop.Ipv6FragmentInvalid);
  assert.equal([r.ppCode, r.ppPointer], [0, 42]);
  // Behind a Hop-by-Hop header the Fragment Offset field is 8 bytes further.
  const b = frag(data, 65528, 16, false, 42, SRC, DST, true);
  assert.is(r.push(0, hdr, b, 0), Drop.Ipv6FragmentInvalid);
  assert.equal([r.ppCode, r.ppPointer], [0, 50]);
  // Exactly 65535 bytes of payload is fine; a valid push resets ppCode.
  assert.is(push(r, 0, data, 65528, 7, false), Drop.None);
  assert.is(r.ppCode, -1);
  assert.is(r.stats[Drop.Ipv6FragmentInvalid], 3);
});

test('a datagram whose offset-0 fragment brings a longer unfragmentable part past 65535 bytes is refused', () => {
  const r = new Ipv6Reassembler();
  const data = payload(65535);
  // The last fragment (no extension headers) ends the payload at exactly 65535: fine on its own.
  assert.is(push(r, 0, data, 65528, 7, false), Drop.None);
  for (let o = 8; o < 65528; o += 8184) assert.is(push(r, 0, data, o, Math.min(8184, 65528 - o), true), Drop.None);
  // The offset-0 fragment carries an 8-byte Hop-by-Hop header: reassembled, 65543 bytes.
  const b = frag(data, 0, 8, true, 42, SRC, DST, true);
  assert.is(r.push(0, hdr, b, 0), Drop.Ipv6FragmentInvalid);
  assert.not.ok(r.done);
  assert.equal([r.pending, r.heldBytes], [0, 0]);
});

test('inconsistent fragments: a second different last fragment, data beyond the end', () => {
  const r = new Ipv6Reassembler();
  const data = payload(4000);
  assert.is(push(r, 0, data, 1000, 1000, false), Drop.None);
  assert.is(push(r, 0, data, 2000, 1000, true), Drop.Ipv6FragmentInvalid);
  assert.is(r.pending, 0);
  assert.is(push(r, 0, data, 0, 1000, true, 0, 43), Drop.None);
  assert.is(push(r, 0, data, 1000, 8, false, 0, 43), Drop.None);
  assert.ok(r.done);
});

test('atomic fragments (RFC 6946) do not touch a reassembly in progress with the same id', () => {
  const r = new Ipv6Reassembler();
  const data = payload(2000);
  assert.is(push(r, 0, data, 0, 1000, true, 0, 7), Drop.None);
  const a2 = packet([fragExt(0, false, 7)], UDP, payload(64, 9), DST, SRC); // same key as the fragments
  assert.is(hdr.parse(a2, 0, a2.length), Drop.None);
  assert.ok(hdr.atomic);
  assert.not.ok(hdr.isFragment);
  // Pushed anyway, it completes at once as itself.
  assert.is(r.push(0, hdr, a2, 0), Drop.None);
  assert.ok(r.done);
  assert.equal([...r.datagram], [...payload(64, 9)]);
  assert.equal([r.pending, r.heldBytes], [1, 1000], 'the datagram in progress is untouched');
  assert.is(push(r, 0, data, 1000, 1000, false, 0, 7), Drop.None);
  assert.ok(r.done);
  assert.equal([...r.datagram], [...data]);
});

test('timeout: expire hands the offset-0 fragment as received for Time Exceeded code 1 (RFC 8200 4.5)', () => {
  const got: { first: Uint8Array; ctx: number }[] = [];
  const r = new Ipv6Reassembler({ timeoutUs: 60_000_000 });
  assert.is(r.timeoutUs, 60_000_000);
  assert.is(new Ipv6Reassembler().timeoutUs, 60_000_000, 'default 60 s');
  const data = payload(3000);
  const first = frag(data, 0, 1448, true, 11, SRC, DST, true).slice();
  assert.is(hdr.parse(first, 0, first.length), Drop.None);
  assert.is(r.push(5, hdr, first, 1000), Drop.None);
  assert.is(push(r, 5, data, 2896, 104, false, 2000, 11), Drop.None);
  // A second datagram without its first fragment: no callback for it.
  assert.is(push(r, 6, data, 1448, 1448, true, 3000, 12), Drop.None);
  assert.is(r.nextDeadline(), 60_001_000);
  assert.is(r.expire(60_000_999, (f, c) => got.push({ first: f.slice(), ctx: c })), 0);
  assert.is(r.expire(60_003_000, (f, c) => got.push({ first: f.slice(), ctx: c })), 2);
  assert.is(got.length, 1);
  assert.is(got[0].ctx, 5);
  assert.equal([...got[0].first], [...first], 'the fragment byte for byte');
  assert.is(r.stats[Drop.Ipv6ReassemblyTimeout], 2);
  assert.equal([r.pending, r.heldBytes], [0, 0]);
});

test('timeout found by a late fragment uses the constructor callback', () => {
  const got: number[] = [];
  const r = new Ipv6Reassembler({ timeoutUs: 100, onTimeout: (f, c) => got.push(c * 100000 + f.length) });
  const data = payload(2000);
  assert.is(push(r, 2, data, 0, 1000, true, 0), Drop.None);
  assert.is(push(r, 2, data, 1000, 1000, false, 500), Drop.None, 'starts a new datagram');
  assert.not.ok(r.done);
  assert.equal(got, [2 * 100000 + 40 + 8 + 1000]);
  assert.is(r.stats[Drop.Ipv6ReassemblyTimeout], 1);
});

test('keys: context, source, destination and identification keep datagrams apart', () => {
  const r = new Ipv6Reassembler();
  const d1 = payload(1000, 1), d2 = payload(1000, 2);
  const other = parseIp6('fd00::3');
  const pushK = (ctx: number, data: Uint8Array, off: number, len: number, more: boolean, id: number, src: Ip6, dst: Ip6) => {
    const b = frag(data, off, len, more, id, src, dst);
    return r.push(ctx, hdr, b, 0);
  };
  assert.is(pushK(1, d1, 0, 504, true, 1, SRC, DST), Drop.None);
  assert.is(pushK(2, d2, 0, 504, true, 1, SRC, DST), Drop.None);
  assert.is(pushK(1, d2, 0, 504, true, 1, other, DST), Drop.None);
  assert.is(pushK(1, d2, 0, 504, true, 1, SRC, other), Drop.None);
  assert.is(pushK(1, d2, 0, 504, true, 0x10001, SRC, DST), Drop.None, '32-bit identification');
  assert.is(r.pending, 5);
  assert.is(pushK(2, d2, 504, 496, false, 1, SRC, DST), Drop.None);
  assert.ok(r.done);
  assert.equal([...r.datagram], [...d2]);
  assert.is(pushK(1, d1, 504, 496, false, 1, SRC, DST), Drop.None);
  assert.ok(r.done);
  assert.equal([...r.datagram], [...d1]);
});

test('limits: datagrams, bytes, fragments per datagram; state stays bounded under a flood', () => {
  const r = new Ipv6Reassembler({ maxDatagrams: 4, maxBytes: 8000, maxFragments: 4 });
  const data = payload(8000);
  for (let id = 0; id < 4; id++) assert.is(push(r, 0, data, 0, 1000, true, 0, id), Drop.None);
  assert.is(push(r, 0, data, 0, 1000, true, 0, 99), Drop.Ipv6ReassemblyOverflow);
  assert.is(r.datagramsFull, 1);
  assert.is(push(r, 0, data, 1000, 4000, true, 0, 0), Drop.None);
  assert.is(push(r, 0, data, 5000, 2000, true, 0, 1), Drop.Ipv6ReassemblyOverflow, 'memory');
  assert.is(r.memoryFull, 1);
  const r2 = new Ipv6Reassembler({ maxFragments: 3 });
  for (let i = 0; i < 3; i++) assert.is(push(r2, 0, data, i * 8, 8, true), Drop.None);
  assert.is(push(r2, 0, data, 24, 8, true), Drop.Ipv6ReassemblyOverflow);
  assert.is(r2.pending, 0);
  // Flood: many ids, the table never exceeds its bounds and nothing throws.
  const r3 = new Ipv6Reassembler({ maxDatagrams: 16, maxBytes: 20000 });
  for (let i = 0; i < 5000; i++) {
    const d = push(r3, i & 3, data, (i * 8) % 4000, 8 + (i % 5) * 8, (i & 1) === 0, i * 10, i % 40);
    assert.ok(d >= 0 && d < Drop.Count);
    assert.ok(r3.pending <= 16 && r3.heldBytes <= 20000);
    if (i % 500 === 0) r3.expire(i * 10);
  }
  r3.clear();
  assert.equal([r3.pending, r3.heldBytes], [0, 0]);
});

test('a zero-length fragment and an over-long unfragmentable part are refused', () => {
  const r = new Ipv6Reassembler();
  const data = payload(100);
  assert.is(push(r, 0, data, 8, 0, true), Drop.Ipv6FragmentInvalid);
  const exts = Array.from({ length: 7 }, () => optsHdr(IPPROTO_DSTOPTS, new Array(294).fill(0).map((_, i) => (i === 0 ? 1 : i === 1 ? 292 : 0))));
  const b = packet([...exts, fragExt(0, true, 1)], UDP, new Uint8Array(16));
  assert.is(hdr.parse(b, 0, b.length), Drop.None);
  assert.ok(hdr.unfragLen > 2048);
  assert.is(r.push(0, hdr, b, 0), Drop.Ipv6ReassemblyOverflow);
});

test.run();
