/**
 * IPv6 header view (RFC 8200): round trips, the extension header chain (RFC 8200 4, RFC 5095,
 * RFC 6946), option action bits (RFC 8200 4.2), Parameter Problem pointers, malformed input,
 * captures, the flow label (RFC 6437) and the drop table.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Drop, DROP_NAMES, dropName } from '../protocols/drop';
import {
  Ipv6Header, writeIpv6, writeFragHdr, flowLabelOf, pseudoSum6At, skipChain, isBadSource6At, isUnspecifiedAt, IPV6_HLEN, IPV6_MAX_EXT_HEADERS,
  IPPROTO_HOPOPTS, IPPROTO_FRAGMENT, IPPROTO_ICMPV6, IPPROTO_NONE, IPPROTO_DSTOPTS,
} from '../protocols/ipv6';
import { parseIp6, pseudoSum6, ip6At, isBadSource6, isUnspecified } from '../protocols/ip/addr';
import { sum16 } from '../protocols/checksum';
import { SAMPLE_PCAPS } from './lib/env';
import { packet, optsHdr, routing, frag, readPcap } from './lib/ipv6-frames';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const A = parseIp6('fd00::2');
const B = parseIp6('fd00::1');
const MC = parseIp6('ff02::1');
const UDP = 17;

// Built with scapy 2.5:
// IPv6(src=fd00::2, dst=fd00::1, hlim=64, fl=0x12345, tc=0xb8)/UDP(sport=1000, dport=2000)/(b'x'*40)
const SCAPY_UDP6 = '6b81234500301140fd000000000000000000000000000002fd00000000000000000000000000000103e807d00030906878787878787878787878787878787878787878787878787878787878787878787878787878787878';
// IPv6(fd00::2 → fd00::1)/IPv6ExtHdrHopByHop(PadN 4 bytes)/IPv6ExtHdrDestOpt(Pad1 x6)/IPv6ExtHdrRouting(type=0, segleft=0)/UDP(1, 2)/"hi"
const SCAPY_CHAIN = '6000000000220040fd000000000000000000000000000002fd0000000000000000000000000000013c000104000000002b00000000000000110000000000000000010002000a9d696869';
// IPv6(fd00::2 → fd00::1)/IPv6ExtHdrFragment(nh=17, offset=185, m=1, id=0xdeadbeef)/(b'y'*16)
const SCAPY_FRAG = '6000000000182c40fd000000000000000000000000000002fd000000000000000000000000000001110005c9deadbeef79797979797979797979797979797979';

test('drop table: enum and names aligned, IPv6 names present', () => {
  assert.is(DROP_NAMES.length, Drop.Count);
  assert.is(dropName(Drop.Ipv6ExtChainTooLong), 'ipv6-ext-chain-too-long');
  assert.is(dropName(Drop.Ipv6RoutingType0), 'ipv6-routing-type0');
  assert.is(dropName(Drop.Icmpv6BadChecksum), 'icmpv6-bad-checksum');
  assert.is(dropName(Drop.NdpBadHopLimit), 'ndp-bad-hop-limit');
  assert.is(dropName(Drop.NdpInvalid), 'ndp-invalid');
  assert.is(dropName(Drop.Ipv6FragOverlap), 'ipv6-frag-overlap');
  assert.is(dropName(Drop.MldInvalid), 'mld-invalid');
  assert.is(new Set(DROP_NAMES).size, DROP_NAMES.length, 'names unique');
});

test('writeIpv6 matches scapy byte for byte; parse reads every field back', () => {
  const want = hex(SCAPY_UDP6);
  const b = new Uint8Array(want.length);
  b.set(want.subarray(IPV6_HLEN), IPV6_HLEN);
  assert.is(writeIpv6(b, 0, A, B, UDP, want.length - IPV6_HLEN, 64, 0x12345, 0xb8), 40);
  assert.equal(Buffer.from(b).toString('hex'), SCAPY_UDP6);
  const h = new Ipv6Header();
  assert.is(h.parse(b, 0, b.length), Drop.None);
  assert.equal([h.tclass, h.flowLabel, h.payloadLen, h.hopLimit, h.nextHeader, h.nhFieldOff, h.l4Off, h.l4Len, h.srcOff, h.dstOff],
    [0xb8, 0x12345, 48, 64, UDP, 6, 40, 48, 8, 24]);
  assert.is(ip6At(b, h.srcOff).toString(), 'fd00::2');
  assert.is(ip6At(b, h.dstOff).toString(), 'fd00::1');
  assert.not.ok(h.isFragment || h.atomic);
  assert.is(h.ppCode, -1);
  // The UDP checksum scapy computed verifies with the pseudo-header read from the bytes.
  assert.is(sum16(b, h.l4Off, h.l4Len, pseudoSum6At(b, h.srcOff, h.dstOff, UDP, h.l4Len)) % 0xffff, 0);
  assert.is(pseudoSum6At(b, h.srcOff, h.dstOff, UDP, 48) % 0xffff, pseudoSum6(A, B, UDP, 48) % 0xffff);
});

test('offsets are absolute; link padding is trimmed; a short frame is truncated', () => {
  const p = hex(SCAPY_UDP6);
  const b = new Uint8Array(p.length + 30).fill(0xee);
  b.set(p, 14);
  const h = new Ipv6Header();
  assert.is(h.parse(b, 14, p.length + 16), Drop.None);
  assert.equal([h.hdrOff, h.srcOff, h.dstOff, h.l4Off, h.l4Len], [14, 22, 38, 54, 48]);
  assert.is(h.parse(b, 14, p.length - 1), Drop.Ipv6Truncated);
  assert.is(h.parse(b, 14, 39), Drop.Ipv6Truncated);
  b[14] = 0x45;
  assert.is(h.parse(b, 14, p.length), Drop.Ipv6BadVersion);
});

test('scapy chain: Hop-by-Hop (PadN), Destination Options (Pad1), Routing type 0 with Segments Left 0 → UDP', () => {
  const b = hex(SCAPY_CHAIN);
  const h = new Ipv6Header();
  assert.is(h.parse(b, 0, b.length), Drop.None);
  assert.is(h.nextHeader, UDP);
  assert.is(h.extCount, 3);
  assert.is(h.l4Off, 40 + 24);
  assert.is(h.l4Len, 10);
  assert.is(h.nhFieldOff, 40 + 16, 'the Routing header named UDP');
  assert.is(h.ppCode, -1);
});

test('Hop-by-Hop anywhere but first → Parameter Problem code 1 at the field that named it (RFC 8200 4.3)', () => {
  const b = packet([optsHdr(IPPROTO_DSTOPTS, []), optsHdr(IPPROTO_HOPOPTS, [])], UDP, new Uint8Array(8));
  const h = new Ipv6Header();
  assert.is(h.parse(b, 0, b.length), Drop.Ipv6HbhNotFirst);
  assert.is(h.ppCode, 1);
  assert.is(h.ppPointer, 40, 'Next Header of the Destination Options header');
});

test('Router Alert in Hop-by-Hop is recognized (MLD)', () => {
  const b = packet([optsHdr(IPPROTO_HOPOPTS, [5, 2, 0, 0])], IPPROTO_ICMPV6, new Uint8Array(8));
  const h = new Ipv6Header();
  assert.is(h.parse(b, 0, b.length), Drop.None);
  assert.is(h.routerAlertOff, 42);
  assert.is(h.nextHeader, IPPROTO_ICMPV6);
});

test('unknown option action bits (RFC 8200 4.2): 00 skip, 01 discard, 10 discard + PP 2, 11 discard + PP 2 unless multicast', () => {
  const h = new Ipv6Header();
  const at = 40 + 2; // first option of the first extension header
  for (const hdrType of [IPPROTO_HOPOPTS, IPPROTO_DSTOPTS]) {
    let b = packet([optsHdr(hdrType, [0x1e, 2, 9, 9])], UDP, new Uint8Array(8));
    assert.is(h.parse(b, 0, b.length), Drop.None, 'action 00: skipped');
    assert.is(h.nextHeader, UDP);
    b = packet([optsHdr(hdrType, [0x5e, 2, 9, 9])], UDP, new Uint8Array(8));
    assert.is(h.parse(b, 0, b.length), Drop.Ipv6UnknownOption);
    assert.equal([h.optAction, h.ppCode], [1, -1], 'action 01: silent');
    b = packet([optsHdr(hdrType, [1, 1, 0, 0x9e, 2, 9, 9])], UDP, new Uint8Array(8));
    assert.is(h.parse(b, 0, b.length), Drop.Ipv6UnknownOption);
    assert.equal([h.optAction, h.ppCode, h.ppPointer], [2, 2, at + 3], 'action 10: pointer at the option type, after a PadN');
    b = packet([optsHdr(hdrType, [0x9e, 2, 9, 9])], UDP, new Uint8Array(8), MC);
    assert.is(h.parse(b, 0, b.length), Drop.Ipv6UnknownOption);
    assert.equal([h.optAction, h.ppCode], [2, 2], 'action 10: also to multicast');
    b = packet([optsHdr(hdrType, [0xde, 2, 9, 9])], UDP, new Uint8Array(8));
    assert.is(h.parse(b, 0, b.length), Drop.Ipv6UnknownOption);
    assert.equal([h.optAction, h.ppCode, h.ppPointer], [3, 2, at]);
    b = packet([optsHdr(hdrType, [0xde, 2, 9, 9])], UDP, new Uint8Array(8), MC);
    assert.is(h.parse(b, 0, b.length), Drop.Ipv6UnknownOption);
    assert.equal([h.optAction, h.ppCode], [3, -1], 'action 11 to multicast: no error');
  }
});

test('an option running past its header is a drop', () => {
  const e = optsHdr(IPPROTO_DSTOPTS, [0x1e, 2, 0, 0]);
  e.body[3] = 40; // option length beyond the 8-byte header
  const b = packet([e], UDP, new Uint8Array(8));
  const h = new Ipv6Header();
  assert.is(h.parse(b, 0, b.length), Drop.Ipv6BadOption);
  const e2 = optsHdr(IPPROTO_DSTOPTS, [1, 3, 0, 0, 0, 0x1e]); // a TLV type as the last byte: no room for its length
  const b2 = packet([e2], UDP, new Uint8Array(8));
  assert.is(h.parse(b2, 0, b2.length), Drop.Ipv6BadOption);
});

test('Routing: type 0 with Segments Left > 0 refused (RFC 5095), other types too; Segments Left 0 ignored', () => {
  const h = new Ipv6Header();
  let b = packet([routing(0, 1)], UDP, new Uint8Array(8));
  assert.is(h.parse(b, 0, b.length), Drop.Ipv6RoutingType0);
  assert.equal([h.ppCode, h.ppPointer], [0, 42], 'Parameter Problem code 0 at the Routing Type');
  b = packet([routing(4, 2)], UDP, new Uint8Array(8));
  assert.is(h.parse(b, 0, b.length), Drop.Ipv6RoutingUnknown);
  assert.equal([h.ppCode, h.ppPointer], [0, 42]);
  for (const t of [0, 2, 3, 4, 253]) {
    b = packet([optsHdr(IPPROTO_HOPOPTS, []), routing(t, 0)], UDP, new Uint8Array(8));
    assert.is(h.parse(b, 0, b.length), Drop.None, `type ${t}, Segments Left 0`);
    assert.is(h.nextHeader, UDP);
    assert.is(h.l4Off, 40 + 8 + 24);
  }
});

test('fragment header: fields, unfragmentable part, scapy vector', () => {
  const b = hex(SCAPY_FRAG);
  const h = new Ipv6Header();
  assert.is(h.parse(b, 0, b.length), Drop.None);
  assert.ok(h.isFragment);
  assert.not.ok(h.atomic);
  assert.equal([h.fragOffset, h.more, h.fragId, h.fragHdrOff, h.unfragLen, h.fragNhFieldOff, h.nextHeader, h.l4Off, h.l4Len],
    [185 * 8, true, 0xdeadbeef, 40, 40, 6, UDP, 48, 16]);
  const w = new Uint8Array(8);
  writeFragHdr(w, 0, UDP, 185 * 8, true, 0xdeadbeef);
  assert.equal(Buffer.from(w).toString('hex'), SCAPY_FRAG.slice(80, 96));
  // Behind a Destination Options header, the unfragmentable part includes it.
  const b2 = packet([optsHdr(IPPROTO_HOPOPTS, []), frag(8, false, 7)], UDP, new Uint8Array(16));
  assert.is(h.parse(b2, 0, b2.length), Drop.None);
  assert.equal([h.isFragment, h.unfragLen, h.fragHdrOff, h.fragNhFieldOff, h.l4Off, h.fragOffset, h.more], [true, 48, 48, 40, 56, 8, false]);
});

test('atomic fragment (RFC 6946): processed as not fragmented, chain walked on', () => {
  const b = packet([frag(0, false, 99), optsHdr(IPPROTO_DSTOPTS, [])], UDP, new Uint8Array(12));
  const h = new Ipv6Header();
  assert.is(h.parse(b, 0, b.length), Drop.None);
  assert.ok(h.atomic);
  assert.not.ok(h.isFragment);
  assert.equal([h.nextHeader, h.l4Off, h.l4Len, h.fragId], [UDP, 56, 12, 99]);
});

test('a first fragment without the whole header chain → Parameter Problem code 3 (RFC 8200 4.5, RFC 7112)', () => {
  // Fragment header, then a Destination Options header claiming 64 bytes in a 16-byte fragment.
  const d = optsHdr(IPPROTO_DSTOPTS, []);
  d.body[1] = 7;
  const b = packet([frag(0, true, 5), d], UDP, new Uint8Array(8));
  const h = new Ipv6Header();
  assert.is(h.parse(b, 0, b.length), Drop.Ipv6ExtTruncated);
  assert.equal([h.ppCode, h.ppPointer], [3, 0]);
  // A non-first fragment is not checked (its data is not headers).
  const b2 = packet([frag(8, true, 5)], UDP, new Uint8Array(8));
  assert.is(h.parse(b2, 0, b2.length), Drop.None);
});

test('bounded chain: more than IPV6_MAX_EXT_HEADERS extension headers is a drop', () => {
  const h = new Ipv6Header();
  const exts = Array.from({ length: IPV6_MAX_EXT_HEADERS }, () => optsHdr(IPPROTO_DSTOPTS, []));
  let b = packet(exts, UDP, new Uint8Array(8));
  assert.is(h.parse(b, 0, b.length), Drop.None);
  assert.is(h.extCount, IPV6_MAX_EXT_HEADERS);
  b = packet([...exts, optsHdr(IPPROTO_DSTOPTS, [])], UDP, new Uint8Array(8));
  assert.is(h.parse(b, 0, b.length), Drop.Ipv6ExtChainTooLong);
});

test('extension header past the payload is a drop; No Next Header and unknown protocols go to the caller', () => {
  const h = new Ipv6Header();
  const d = optsHdr(IPPROTO_DSTOPTS, []);
  d.body[1] = 3;
  let b = packet([d], UDP, new Uint8Array(0));
  assert.is(h.parse(b, 0, b.length), Drop.Ipv6ExtTruncated);
  b = packet([], IPPROTO_DSTOPTS, new Uint8Array(4));
  assert.is(h.parse(b, 0, b.length), Drop.Ipv6ExtTruncated);
  b = packet([], IPPROTO_FRAGMENT, new Uint8Array(7));
  assert.is(h.parse(b, 0, b.length), Drop.Ipv6ExtTruncated);
  b = packet([optsHdr(IPPROTO_DSTOPTS, [])], IPPROTO_NONE, new Uint8Array(5));
  assert.is(h.parse(b, 0, b.length), Drop.None);
  assert.equal([h.nextHeader, h.l4Len], [IPPROTO_NONE, 5]);
  b = packet([optsHdr(IPPROTO_DSTOPTS, [])], 253, new Uint8Array(5));
  assert.is(h.parse(b, 0, b.length), Drop.None);
  assert.equal([h.nextHeader, h.nhFieldOff], [253, 40], 'the caller sends Parameter Problem code 1 pointing here');
});

test('unknownNextHeader: Parameter Problem code 1 at the field that named it', () => {
  const h = new Ipv6Header();
  let b = packet([optsHdr(IPPROTO_HOPOPTS, []), optsHdr(IPPROTO_DSTOPTS, [])], 253, new Uint8Array(4));
  assert.is(h.parse(b, 0, b.length), Drop.None);
  assert.is(h.unknownNextHeader(), Drop.Ipv6UnknownNextHeader);
  assert.equal([h.ppCode, h.ppPointer], [1, 48]);
  b = packet([], 253, new Uint8Array(4));
  const at = new Uint8Array(b.length + 18);
  at.set(b, 18);
  assert.is(h.parse(at, 18, b.length), Drop.None);
  h.unknownNextHeader();
  assert.equal([h.ppCode, h.ppPointer], [1, 6], 'relative to the IPv6 header, not the buffer');
});

test('source checks from bytes agree with isBadSource6 / isUnspecified', () => {
  for (const s of ['::', '::1', 'ff02::1', 'ff05::2', '::ffff:10.0.0.1', 'fe80::1', 'fd00::2', '2001:db8::1', '::2', '::ffff:0:1']) {
    const a = parseIp6(s);
    const b = new Uint8Array(20);
    b.set(a.bytes(), 4);
    assert.is(isBadSource6At(b, 4), isBadSource6(a), s);
    assert.is(isUnspecifiedAt(b, 4), isUnspecified(a), s);
  }
});

test('skipChain stops at the upper layer, after a non-first fragment, or reports a chain past the end', () => {
  const b = packet([optsHdr(IPPROTO_HOPOPTS, []), frag(16, true, 1)], UDP, new Uint8Array(8));
  assert.is(skipChain(b, 40, b.length, IPPROTO_HOPOPTS, 8), 56);
  assert.is(skipChain(b, 40, 50, IPPROTO_HOPOPTS, 8), -1);
  assert.is(skipChain(b, 40, b.length, IPPROTO_HOPOPTS, 1), -1);
});

test('captures: NDP frames parse; the wrong version frames are refused; the negative-length fragment is a drop', () => {
  const h = new Ipv6Header();
  const frames = (name: string) => readPcap(path.join(SAMPLE_PCAPS, name));
  let ok = 0, badVersion = 0;
  for (const f of frames('ipv6-bad-version.pcap')) {
    const d = h.parse(f, 14, f.length - 14);
    if (d === Drop.None) { ok++; assert.is(h.nextHeader, IPPROTO_ICMPV6); assert.is(h.hopLimit, 255); }
    else { badVersion++; assert.is(d, Drop.Ipv6BadVersion); }
  }
  assert.equal([ok, badVersion], [2, 2]);
  const [neg] = frames('ipv6_frag6_negative_len.pcap');
  assert.is(h.parse(neg, 14, neg.length - 14), Drop.Ipv6ExtTruncated, 'payload length 0 cannot hold a Fragment header');
  // MLDv2 reports and query behind a Hop-by-Hop header with Router Alert.
  const mld = frames('icmpv6.pcap');
  for (const f of mld.slice(1)) {
    assert.is(h.parse(f, 14, f.length - 14), Drop.None);
    assert.is(h.nextHeader, IPPROTO_ICMPV6);
    assert.ok(h.routerAlertOff > 0);
    assert.is(h.hopLimit, 1);
  }
});

test('every truncation and random corruption of valid packets returns a drop, never throws', () => {
  const h = new Ipv6Header();
  const seeds = [hex(SCAPY_UDP6), hex(SCAPY_CHAIN), hex(SCAPY_FRAG), packet([frag(0, false, 1), optsHdr(IPPROTO_HOPOPTS, [0xde, 1, 0])], UDP, new Uint8Array(3))];
  let x = 12345;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 16;
  for (const s of seeds) {
    for (let n = 0; n <= s.length; n++) {
      const d = h.parse(s, 0, n);
      assert.ok(d >= 0 && d < Drop.Count);
      if (d === Drop.None) assert.ok(h.l4Off + h.l4Len <= n);
    }
    for (let i = 0; i < 2000; i++) {
      const c = s.slice();
      for (let k = 0; k < 3; k++) c[rnd() % c.length] = rnd() & 0xff;
      const d = h.parse(c, 0, c.length);
      assert.ok(d >= 0 && d < Drop.Count);
      if (d === Drop.None) assert.ok(h.l4Off >= 40 && h.l4Off + h.l4Len <= c.length && h.extCount <= IPV6_MAX_EXT_HEADERS);
    }
  }
});

test('flow label (RFC 6437): 20 bits, never 0, stable per flow, differs across flows and secrets', () => {
  const seen = new Set<number>();
  for (let p = 0; p < 2000; p++) {
    const fl = flowLabelOf(A, 40000 + p, B, 443, 7);
    assert.ok(fl > 0 && fl <= 0xfffff);
    seen.add(fl);
  }
  assert.ok(seen.size > 1990, `labels spread: ${seen.size} distinct of 2000`);
  assert.is(flowLabelOf(A, 1, B, 2, 7), flowLabelOf(A, 1, B, 2, 7));
  assert.is.not(flowLabelOf(A, 1, B, 2, 7), flowLabelOf(A, 1, B, 2, 8));
  assert.is.not(flowLabelOf(A, 1, B, 2, 7), flowLabelOf(B, 1, A, 2, 7));
});

test.run();
