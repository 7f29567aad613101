import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Drop } from '../protocols/drop';
import { sum16, fold, pseudoSum4, internetChecksum, checksumAdjust, copyBytes } from '../protocols/checksum';
import {
  EthFrame, writeEth, writeEthQinQ, isBroadcast, isMulticast, macEquals, parseMac, macToString,
  ETH_P_IPV4, ETH_P_ARP, ETH_P_IPV6, ETH_HLEN,
} from '../protocols/ethernet';
import { ArpPacket, writeArp, ARP_LEN, ARP_REPLY, ARP_REQUEST } from '../protocols/arp';
import {
  Ipv4Header, writeIpv4, parseIpv4, ipv4ToString, parseCidr4, prefixMask4, inSubnet4, decrementTtl,
  IPPROTO_UDP, IPPROTO_ICMP, IP_DF, IP_MF,
} from '../protocols/ipv4';
import {
  IcmpPacket, writeIcmpEchoReply, writeIcmpError, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED, ICMP_PORT_UNREACH, ICMP_TIME_EXCEEDED,
} from '../protocols/icmp';
import { UdpHeader, writeUdp, UDP_HLEN } from '../protocols/udp';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array, off = 0, len = b.length - off) => Buffer.from(b.buffer, b.byteOffset + off, len).toString('hex');
const MAC1 = parseMac('02:00:00:00:00:01');
const MAC2 = parseMac('02:00:00:00:00:02');
const BCAST = parseMac('ff:ff:ff:ff:ff:ff');

// Known-good frames, built with scapy 2.5 (see the commands in the comments).
// Ether(dst=ff..,src=02..01)/Dot1Q(vlan=100)/IP(src=10.0.0.1,dst=10.0.0.2,id=0x1234,ttl=64)/UDP(1234,5678)/"hello world"
const SCAPY_VLAN_UDP = 'ffffffffffff0200000000018100006408004500002712340000401154900a0000010a00000204d2162e00133ef768656c6c6f20776f726c64';
// Ether(02..02, 02..01)/IP(192.168.1.1 → .2, id=0x4321, ttl=64, DF)/ICMP(type=0,id=0x1234,seq=7)/"abcdefgh"
const SCAPY_ECHO_REPLY = '0200000000020200000000010800450000244321400040017464c0a80101c0a8010200005c2f123400076162636465666768';
// Ether(02..02, 02..01)/ARP(op=2, 02..01 10.1.1.1 → 02..02 10.1.1.2)
const SCAPY_ARP_REPLY = '020000000002020000000001080600010800060400020200000000010a0101010200000000020a010102';
// IP(10.0.0.2 → 10.0.0.1, id=5, ttl=63)/UDP(1000, 2000)/"x"*40
const SCAPY_INNER = '45000044000500003f1167a20a0000020a00000103e807d00030766a' + '78'.repeat(40);
// IP(10.0.0.1 → 10.0.0.2, id=9)/ICMP(type=3, code=4, nexthopmtu=1400)/first 28 bytes of SCAPY_INNER
const SCAPY_FRAG_NEEDED = '4500003800090000400166ba0a0000010a000002030475310000057845000044000500003f1167a20a0000020a00000103e807d00030766a';
// Ether(bcast, 02..01)/Dot1AD(vlan=200,prio=3)/Dot1Q(vlan=2001,prio=5)/IP(1.2.3.4 → 5.6.7.8, id=1)/UDP(53, 53)
const SCAPY_QINQ = 'ffffffffffff02000000000188a860c88100a7d108004500001c0001000040116abd0102030405060708003500350008ef60';
// IP(1.2.3.4 → 5.6.7.8, id=77, options=NOP*4)/UDP(9, 9)/"opt"
const SCAPY_IP_OPTIONS = '46000023004d00004011676801020304050607080101010100090009000b0c426f7074';

test('checksum: RFC 1071 example, odd lengths, chaining, incremental update', () => {
  const b = hex('0001f203f4f5f6f7');
  assert.is(sum16(b, 0, 8), 0xddf2); // RFC 1071 4.1: 0x2ddf0 folds to 0xddf2
  assert.is(fold(sum16(b, 0, 8)), ~0xddf2 & 0xffff);
  // Odd length: last byte padded with zero.
  assert.is(internetChecksum(hex('0102ff'), 0, 3), 0xfffc); // 0x0102 + 0xff00 = 0x10002 → 0x0003
  // Chaining equals one pass.
  const big = new Uint8Array(3001);
  for (let i = 0; i < big.length; i++) big[i] = (i * 131 + 7) & 0xff;
  const one = internetChecksum(big, 0, big.length);
  assert.is(fold(sum16(big, 1000, 2001, sum16(big, 0, 1000))), one);
  // Largest datagram of 0xff bytes stays exact.
  const ff = new Uint8Array(65535).fill(0xff);
  assert.is(internetChecksum(ff, 0, 65534), 0); // 0xffff words sum to 0xffff
  assert.is(internetChecksum(ff, 0, 65535), 0x00ff); // plus a padded 0xff00
  assert.ok(sum16(ff, 0, ff.length, 0x7fff0000) <= 0x1ffff);
  assert.is(pseudoSum4(0x0a000001, 0x0a000002, 17, 8), 0x0a00 + 1 + 0x0a00 + 2 + 17 + 8);
  // Incremental update matches recomputation.
  const h = new Uint8Array(20);
  writeIpv4(h, 0, 0x0a000001, 0x0a000002, 6, 100, 64, 1, IP_DF, 0);
  const oldC = (h[10] << 8) | h[11];
  const oldW = (h[8] << 8) | h[9];
  h[8] = 10;
  const newW = (h[8] << 8) | h[9];
  h[10] = 0; h[11] = 0;
  assert.is(checksumAdjust(oldC, oldW, newW), internetChecksum(h, 0, 20));
});

test('checksum: sum16 equals a reference over random ranges, buffers and accumulators', () => {
  const ref = (b: Uint8Array, off: number, len: number, acc: number) => {
    let s = acc;
    for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
    while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
    return ~s & 0xffff;
  };
  const bufs = [new Uint8Array(70000), new Uint8Array(5000), new Uint8Array(new ArrayBuffer(9000), 3, 4000)];
  let seed = 99;
  const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
  for (const b of bufs) for (let i = 0; i < b.length; i++) b[i] = rnd(256);
  for (let k = 0; k < 3000; k++) {
    const b = bufs[rnd(3)];
    const len = rnd(4) === 0 ? rnd(Math.min(b.length, 65535)) : rnd(200);
    const off = rnd(b.length - len + 1);
    const acc = rnd(3) === 0 ? rnd(0x7fffffff) : rnd(0x20000);
    assert.is(fold(sum16(b, off, len, acc)), ref(b, off, len, acc), `off ${off} len ${len}`);
  }
});

test('copyBytes handles overlap in both directions and across views', () => {
  const b = Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  copyBytes(b, 2, b, 0, 6);
  assert.equal([...b], [0, 1, 0, 1, 2, 3, 4, 5, 8, 9]);
  const c = Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const v = c.subarray(3);
  copyBytes(c, 5, v, 0, 4); // forward overlap through a different view
  assert.equal([...c], [0, 1, 2, 3, 4, 3, 4, 5, 6, 9]);
  const d = Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  copyBytes(d.subarray(1), 0, d, 4, 4); // backward overlap
  assert.equal([...d], [0, 4, 5, 6, 7, 5, 6, 7, 8, 9]);
});

test('ethernet: scapy 802.1Q frame parses; emit reproduces it', () => {
  const f = hex(SCAPY_VLAN_UDP);
  const e = new EthFrame();
  assert.is(e.parse(f, 0, f.length), Drop.None);
  assert.is(e.vlan, 100);
  assert.is(e.outerVlan, -1);
  assert.is(e.etherType, ETH_P_IPV4);
  assert.is(e.hdrLen, 18);
  assert.is(e.l3Off, 18);
  assert.is(e.l3Len, f.length - 18);
  assert.ok(isBroadcast(f, e.dstOff) && isMulticast(f, e.dstOff));
  assert.ok(macEquals(f, e.srcOff, MAC1, 0));
  const out = new Uint8Array(f.length);
  out.set(f.subarray(18), 18);
  assert.is(writeEth(out, 0, BCAST, 0, MAC1, 0, ETH_P_IPV4, 100), 18);
  assert.is(toHex(out), SCAPY_VLAN_UDP);
});

test('ethernet: QinQ (802.1ad + 802.1Q) with priorities, untagged, in-place MAC swap', () => {
  const f = hex(SCAPY_QINQ);
  const e = new EthFrame();
  assert.is(e.parse(f, 0, f.length), Drop.None);
  assert.is(e.outerVlan, 200);
  assert.is(e.vlan, 2001);
  assert.is(e.pcp, 5);
  assert.is(e.hdrLen, 22);
  assert.is(e.etherType, ETH_P_IPV4);
  const out = new Uint8Array(f.length);
  out.set(f.subarray(22), 22);
  assert.is(writeEthQinQ(out, 0, BCAST, 0, MAC1, 0, ETH_P_IPV4, (3 << 13) | 200, (5 << 13) | 2001), 22);
  assert.is(toHex(out), SCAPY_QINQ);

  // Untagged at a non-zero offset, swapping the MACs in place.
  const buf = new Uint8Array(64);
  assert.is(writeEth(buf, 10, MAC2, 0, MAC1, 0, ETH_P_ARP, -1), ETH_HLEN);
  assert.is(e.parse(buf, 10, 60 - 10 + 4), Drop.None);
  assert.equal([e.vlan, e.outerVlan, e.etherType, e.l3Off, e.dstOff, e.srcOff], [-1, -1, ETH_P_ARP, 24, 10, 16]);
  writeEth(buf, 10, buf, 16, buf, 10, ETH_P_IPV6, -1);
  assert.is(macToString(buf, 10), '02:00:00:00:00:01');
  assert.is(macToString(buf, 16), '02:00:00:00:00:02');
  assert.ok(!isMulticast(buf, 10) && !isBroadcast(buf, 10));
  assert.is(e.parse(buf, 10, 40), Drop.None);
  assert.is(e.etherType, ETH_P_IPV6);
});

test('ethernet: truncation, truncated tags, unknown ethertype', () => {
  const e = new EthFrame();
  const f = hex(SCAPY_QINQ);
  for (let n = 0; n < 14; n++) assert.is(e.parse(f, 0, n), Drop.EthTruncated, `len ${n}`);
  for (let n = 14; n < 22; n++) assert.is(e.parse(f, 0, n), Drop.VlanTruncated, `len ${n}`);
  assert.is(e.parse(f, 0, 22), Drop.None);
  const g = hex(SCAPY_VLAN_UDP);
  g[16] = 0x88; g[17] = 0xcc; // LLDP
  assert.is(e.parse(g, 0, g.length), Drop.EthUnknownType);
  assert.is(e.etherType, 0x88cc);
  g[12] = 0x00; g[13] = 0x40; // 802.3 length field
  assert.is(e.parse(g, 0, g.length), Drop.EthUnknownType);
  // Old-style double 802.1Q.
  const d = new Uint8Array(60);
  writeEth(d, 0, BCAST, 0, MAC1, 0, 0x8100, 7);
  d[18] = 0; d[19] = 9; d[20] = 0x08; d[21] = 0x00;
  assert.is(e.parse(d, 0, 60), Drop.None);
  assert.equal([e.outerVlan, e.vlan, e.hdrLen], [7, 9, 22]);
});

test('arp: scapy reply parses; emit reproduces it; in-place request → reply', () => {
  const f = hex(SCAPY_ARP_REPLY);
  const a = new ArpPacket();
  assert.is(a.parse(f, 14, f.length - 14), Drop.None);
  assert.is(a.op, ARP_REPLY);
  assert.is(ipv4ToString(a.spa), '10.1.1.1');
  assert.is(ipv4ToString(a.tpa), '10.1.1.2');
  assert.ok(macEquals(f, a.shaOff, MAC1, 0));
  assert.ok(macEquals(f, a.thaOff, MAC2, 0));
  const out = new Uint8Array(f.length);
  writeEth(out, 0, MAC2, 0, MAC1, 0, ETH_P_ARP, -1);
  assert.is(writeArp(out, 14, ARP_REPLY, MAC1, 0, parseIpv4('10.1.1.1'), MAC2, 0, parseIpv4('10.1.1.2')), ARP_LEN);
  assert.is(toHex(out), SCAPY_ARP_REPLY);

  // A request from MAC2 for 10.1.1.1 answered in place by MAC1.
  const r = new Uint8Array(60);
  writeEth(r, 0, BCAST, 0, MAC2, 0, ETH_P_ARP, -1);
  writeArp(r, 14, ARP_REQUEST, MAC2, 0, parseIpv4('10.1.1.2'), new Uint8Array(6), 0, parseIpv4('10.1.1.1'));
  assert.is(a.parse(r, 14, 46), Drop.None);
  assert.is(a.op, ARP_REQUEST);
  writeEth(r, 0, r, a.shaOff, MAC1, 0, ETH_P_ARP, -1);
  writeArp(r, 14, ARP_REPLY, MAC1, 0, a.tpa, r, a.shaOff, a.spa);
  assert.is(toHex(r, 0, 42), SCAPY_ARP_REPLY.replace('020000000002020000000001', '020000000002020000000001'));
});

test('arp: truncated, bad hardware, bad protocol, bad op', () => {
  const f = hex(SCAPY_ARP_REPLY);
  const a = new ArpPacket();
  for (let n = 0; n < 28; n++) assert.is(a.parse(f, 14, n), Drop.ArpTruncated, `len ${n}`);
  const g = f.slice();
  g[14 + 1] = 6; // IEEE 802 hardware
  assert.is(a.parse(g, 14, 28), Drop.ArpBadHardware);
  const h = f.slice();
  h[14 + 4] = 8; // hardware length
  assert.is(a.parse(h, 14, 28), Drop.ArpBadHardware);
  const p = f.slice();
  p[14 + 2] = 0x86; p[14 + 3] = 0xdd;
  assert.is(a.parse(p, 14, 28), Drop.ArpBadProtocol);
  const q = f.slice();
  q[14 + 5] = 16;
  assert.is(a.parse(q, 14, 28), Drop.ArpBadProtocol);
  const o = f.slice();
  o[14 + 7] = 3; // RARP request
  assert.is(a.parse(o, 14, 28), Drop.ArpBadOp);
});

test('ipv4: scapy headers parse (with and without options); emit reproduces them', () => {
  const f = hex(SCAPY_VLAN_UDP);
  const ip = new Ipv4Header();
  assert.is(ip.parse(f, 18, f.length - 18), Drop.None);
  assert.equal(
    [ip.hdrLen, ip.totalLen, ip.id, ip.ttl, ip.proto, ipv4ToString(ip.src), ipv4ToString(ip.dst), ip.df, ip.mf, ip.fragOff, ip.payloadOff, ip.payloadLen],
    [20, 39, 0x1234, 64, IPPROTO_UDP, '10.0.0.1', '10.0.0.2', false, false, 0, 38, 19],
  );
  assert.not.ok(ip.isFragment);
  const out = new Uint8Array(20);
  assert.is(writeIpv4(out, 0, ip.src, ip.dst, ip.proto, ip.payloadLen, ip.ttl, ip.id, 0, ip.tos), 20);
  assert.is(toHex(out), toHex(f, 18, 20));

  const e = hex(SCAPY_ECHO_REPLY);
  assert.is(ip.parse(e, 14, e.length - 14), Drop.None);
  assert.ok(ip.df);
  writeIpv4(out, 0, ip.src, ip.dst, IPPROTO_ICMP, ip.payloadLen, 64, 0x4321, IP_DF, 0);
  assert.is(toHex(out), toHex(e, 14, 20));

  const o = hex(SCAPY_IP_OPTIONS);
  assert.is(ip.parse(o, 0, o.length), Drop.None);
  assert.equal([ip.hdrLen, ip.payloadOff, ip.payloadLen, ip.id], [24, 24, 11, 77]);
  const u = new UdpHeader();
  assert.is(u.parse(o, ip.payloadOff, ip.payloadLen, ip.src, ip.dst), Drop.None);
  assert.is(Buffer.from(o.subarray(u.payloadOff, u.payloadOff + u.payloadLen)).toString(), 'opt');
});

test('ipv4: fragment fields, padding beyond total length, TTL decrement', () => {
  const b = new Uint8Array(80);
  writeIpv4(b, 4, 0xc0a80001, 0xc0a80002, IPPROTO_UDP, 16, 5, 999, IP_MF | (1480 / 8), 0x10);
  const ip = new Ipv4Header();
  assert.is(ip.parse(b, 4, 76), Drop.None); // trailing bytes are link padding
  assert.equal([ip.mf, ip.df, ip.fragOff, ip.tos, ip.totalLen, ip.payloadLen, ip.isFragment], [true, false, 1480, 0x10, 36, 16, true]);
  assert.is(decrementTtl(b, 4), 4);
  assert.is(ip.parse(b, 4, 76), Drop.None);
  assert.is(ip.ttl, 4);
});

test('ipv4: truncated at every length, bad version, IHL, total length, checksum', () => {
  const f = hex(SCAPY_IP_OPTIONS);
  const ip = new Ipv4Header();
  for (let n = 0; n < 24; n++) assert.is(ip.parse(f, 0, n), Drop.Ipv4Truncated, `len ${n}`);
  for (let n = 24; n < f.length; n++) assert.is(ip.parse(f, 0, n), Drop.Ipv4BadTotalLength, `len ${n}`);
  const fix = (g: Uint8Array) => {
    const hl = (g[0] & 15) * 4;
    g[10] = 0; g[11] = 0;
    const c = internetChecksum(g, 0, Math.min(hl, g.length));
    g[10] = c >> 8; g[11] = c & 0xff;
    return g;
  };
  const v = f.slice(); v[0] = 0x66;
  assert.is(ip.parse(fix(v), 0, v.length), Drop.Ipv4BadVersion);
  for (const ihl of [0, 1, 4]) {
    const g = f.slice(); g[0] = 0x40 | ihl;
    assert.is(ip.parse(g, 0, g.length), Drop.Ipv4BadHeaderLength, `ihl ${ihl}`);
  }
  const big = f.slice(); big[0] = 0x4f; // 60-byte header, only 35 bytes present
  assert.is(ip.parse(big, 0, big.length), Drop.Ipv4Truncated);
  const tl = f.slice(); tl[3] = 0x40; // total length 64 > 35 available
  assert.is(ip.parse(fix(tl), 0, tl.length), Drop.Ipv4BadTotalLength);
  const ts = f.slice(); ts[2] = 0; ts[3] = 20; // total length below the header length (24)
  assert.is(ip.parse(fix(ts), 0, ts.length), Drop.Ipv4BadTotalLength);
  const cs = f.slice(); cs[11] ^= 1;
  assert.is(ip.parse(cs, 0, cs.length), Drop.Ipv4BadChecksum);
  const opt = f.slice(); opt[21] = 0x02; // corrupt an option byte: covered by the checksum
  assert.is(ip.parse(opt, 0, opt.length), Drop.Ipv4BadChecksum);
});

test('ipv4: address parsing and formatting', () => {
  assert.is(parseIpv4('10.1.2.3'), 0x0a010203);
  assert.is(parseIpv4('255.255.255.255'), 0xffffffff);
  assert.is(parseIpv4('0.0.0.0'), 0);
  assert.is(ipv4ToString(0xc0a80101), '192.168.1.1');
  assert.is(ipv4ToString(parseIpv4('172.21.79.100')), '172.21.79.100');
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.x', ' 1.2.3.4', '01.2.3.4', '1.2.3.4/24', '::1']) {
    assert.throws(() => parseIpv4(bad), (e: unknown) => e instanceof RangeError && /not an IPv4 address/.test((e as Error).message), bad);
  }
  assert.equal(parseCidr4('10.1.1.7/24'), { addr: 0x0a010107, prefixLen: 24 });
  assert.equal(parseCidr4('0.0.0.0/0'), { addr: 0, prefixLen: 0 });
  for (const bad of ['10.1.1.0', '10.1.1.0/33', '10.1.1.0/', '10.1.1.0/a', '10.1.1/24', '10.1.1.0/-1']) {
    assert.throws(() => parseCidr4(bad), RangeError, bad);
  }
  assert.is(prefixMask4(24), 0xffffff00);
  assert.is(prefixMask4(0), 0);
  assert.is(prefixMask4(32), 0xffffffff);
  assert.ok(inSubnet4(parseIpv4('10.1.1.200'), parseIpv4('10.1.1.0'), 24));
  assert.not.ok(inSubnet4(parseIpv4('10.1.2.1'), parseIpv4('10.1.1.0'), 24));
});

test('icmp: scapy echo reply parses; in-place reply to a request reproduces it', () => {
  const e = hex(SCAPY_ECHO_REPLY);
  const icmp = new IcmpPacket();
  assert.is(icmp.parse(e, 34, 16), Drop.None);
  assert.equal([icmp.type, icmp.code, icmp.id, icmp.seq, icmp.innerOff, icmp.innerLen], [ICMP_ECHO_REPLY, 0, 0x1234, 7, 42, 8]);

  // Build the request, then answer it in place (data aliases the frame).
  const f = e.slice();
  f[34] = ICMP_ECHO_REQUEST; f[36] = 0; f[37] = 0;
  const c = internetChecksum(f, 34, 16);
  f[36] = c >> 8; f[37] = c & 0xff;
  assert.is(icmp.parse(f, 34, 16), Drop.None);
  assert.is(icmp.type, ICMP_ECHO_REQUEST);
  assert.is(writeIcmpEchoReply(f, 34, icmp.id, icmp.seq, f, icmp.innerOff, icmp.innerLen), 16);
  assert.is(toHex(f, 34), toHex(e, 34));
  // From a separate buffer at another offset.
  const g = new Uint8Array(40);
  assert.is(writeIcmpEchoReply(g, 3, 0x1234, 7, e, 42, 8), 16);
  assert.is(toHex(g, 3, 16), toHex(e, 34));
});

test('icmp: frag-needed error matches scapy, quoting is bounded, errors parse', () => {
  const inner = hex(SCAPY_INNER);
  const out = new Uint8Array(600);
  const n = writeIcmpError(out, 20, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 1400, inner, 0, 28);
  assert.is(n, 36);
  writeIpv4(out, 0, parseIpv4('10.0.0.1'), parseIpv4('10.0.0.2'), IPPROTO_ICMP, n, 64, 9, 0, 0);
  assert.is(toHex(out, 0, 20 + n), SCAPY_FRAG_NEEDED);
  const icmp = new IcmpPacket();
  assert.is(icmp.parse(out, 20, n), Drop.None);
  assert.equal([icmp.type, icmp.code, icmp.nextHopMtu, icmp.innerOff, icmp.innerLen], [3, 4, 1400, 28, 28]);
  assert.equal([ipv4ToString(icmp.innerSrc), ipv4ToString(icmp.innerDst), icmp.innerProto, icmp.innerL4Off], ['10.0.0.2', '10.0.0.1', IPPROTO_UDP, 48]);
  assert.is((out[icmp.innerL4Off] << 8) | out[icmp.innerL4Off + 1], 1000); // quoted source port
  const q = new Ipv4Header();
  // The quoted header is truncated (total 68, 28 quoted): callers read its fields directly.
  assert.is(q.parse(out, icmp.innerOff, icmp.innerLen), Drop.Ipv4BadTotalLength);

  // Whole datagram quoted when small; capped so the error datagram fits in 576 bytes.
  assert.is(writeIcmpError(out, 0, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, inner, 0, inner.length), 8 + inner.length);
  assert.is(icmp.parse(out, 0, 8 + inner.length), Drop.None);
  assert.is(icmp.nextHopMtu, 0);
  assert.is(toHex(out, 8, inner.length), SCAPY_INNER);
  const huge = new Uint8Array(1500).fill(7);
  huge[0] = 0x45;
  assert.is(writeIcmpError(out, 0, ICMP_TIME_EXCEEDED, 0, 0, huge, 0, 1500), 556);
  assert.is(icmp.parse(out, 0, 556), Drop.None);
  assert.is(icmp.type, ICMP_TIME_EXCEEDED);

  // In place: the original datagram sits where the quote must go (overlap moves it safely).
  const frame = new Uint8Array(200);
  frame.set(inner, 34);
  const m = writeIcmpError(frame, 34 + 20, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, frame, 34, inner.length);
  assert.is(toHex(frame, 34 + 28, inner.length), SCAPY_INNER);
  assert.is(icmp.parse(frame, 54, m), Drop.None);
});

test('icmp: truncated, bad checksum, unknown type, short quote', () => {
  const e = hex(SCAPY_ECHO_REPLY);
  const icmp = new IcmpPacket();
  for (let n = 0; n < 8; n++) assert.is(icmp.parse(e, 34, n), Drop.IcmpTruncated, `len ${n}`);
  for (let n = 8; n < 16; n++) assert.is(icmp.parse(e, 34, n), Drop.IcmpBadChecksum, `len ${n}`);
  const b = e.slice(); b[40] ^= 0x80;
  assert.is(icmp.parse(b, 34, 16), Drop.IcmpBadChecksum);
  const t = new Uint8Array(20);
  t[0] = 17; // address mask request (RFC 950): not served
  const c = internetChecksum(t, 0, 20);
  t[2] = c >> 8; t[3] = c & 0xff;
  assert.is(icmp.parse(t, 0, 20), Drop.IcmpUnknownType);
  // A timestamp request (RFC 792) is 20 bytes: taken; shorter, truncated.
  t[0] = 13; t[2] = 0; t[3] = 0;
  const c2 = internetChecksum(t, 0, 20);
  t[2] = c2 >> 8; t[3] = c2 & 0xff;
  assert.is(icmp.parse(t, 0, 20), Drop.None);
  const t16 = t.slice(0, 16); t16[2] = 0; t16[3] = 0;
  const c3 = internetChecksum(t16, 0, 16);
  t16[2] = c3 >> 8; t16[3] = c3 & 0xff;
  assert.is(icmp.parse(t16, 0, 16), Drop.IcmpTruncated);
  const s = new Uint8Array(8 + 20);
  writeIcmpError(s, 0, ICMP_DEST_UNREACH, 1, 0, new Uint8Array(20), 0, 20);
  assert.is(icmp.parse(s, 0, 28), Drop.IcmpTruncated);
  // A quote whose IP options leave no room for the 8 L4 bytes, or that is not IPv4.
  const qh = hex(SCAPY_INNER);
  const e2 = new Uint8Array(8 + 30);
  qh[0] = 0x46;
  writeIcmpError(e2, 0, ICMP_TIME_EXCEEDED, 0, 0, qh, 0, 30);
  assert.is(icmp.parse(e2, 0, 38), Drop.IcmpTruncated);
  qh[0] = 0x65;
  writeIcmpError(e2, 0, ICMP_TIME_EXCEEDED, 0, 0, qh, 0, 30);
  assert.is(icmp.parse(e2, 0, 38), Drop.IcmpTruncated);
  qh[0] = 0x45;
  writeIcmpError(e2, 0, ICMP_TIME_EXCEEDED, 0, 0, qh, 0, 30);
  assert.is(icmp.parse(e2, 0, 38), Drop.None);
});

test('udp: scapy datagram parses; emit reproduces it; zero checksum rules', () => {
  const f = hex(SCAPY_VLAN_UDP);
  const ip = new Ipv4Header();
  const u = new UdpHeader();
  assert.is(ip.parse(f, 18, f.length - 18), Drop.None);
  assert.is(u.parse(f, ip.payloadOff, ip.payloadLen, ip.src, ip.dst), Drop.None);
  assert.equal([u.srcPort, u.dstPort, u.length, u.checksum, u.payloadOff, u.payloadLen], [1234, 5678, 19, 0x3ef7, 46, 11]);
  const out = new Uint8Array(f.length);
  out.set(f.subarray(46), 46);
  assert.is(writeUdp(out, 38, 1234, 5678, 11, ip.src, ip.dst), UDP_HLEN);
  assert.is(toHex(out, 38), toHex(f, 38));
  const q = hex(SCAPY_QINQ);
  assert.is(u.parse(q, 42, 8, parseIpv4('1.2.3.4'), parseIpv4('5.6.7.8')), Drop.None);
  assert.is(u.payloadLen, 0);

  // No checksum (0) is accepted on IPv4.
  const z = f.slice(); z[44] = 0; z[45] = 0;
  assert.is(u.parse(z, 38, 19, ip.src, ip.dst), Drop.None);
  // A computed checksum of 0 is sent as 0xffff and verifies.
  const b = new Uint8Array(8 + 4);
  writeUdp(b, 0, 7, 7, 4, 1, 2);
  const c0 = (b[6] << 8) | b[7];
  b[8] = c0 >> 8; b[9] = c0 & 0xff; // this payload word makes the computed sum zero
  writeUdp(b, 0, 7, 7, 4, 1, 2);
  assert.is((b[6] << 8) | b[7], 0xffff);
  assert.is(u.parse(b, 0, 12, 1, 2), Drop.None);
});

test('udp: truncated, bad length, bad checksum (payload, pseudo-header)', () => {
  const f = hex(SCAPY_VLAN_UDP);
  const src = parseIpv4('10.0.0.1'), dst = parseIpv4('10.0.0.2');
  const u = new UdpHeader();
  for (let n = 0; n < 8; n++) assert.is(u.parse(f, 38, n, src, dst), Drop.UdpTruncated, `len ${n}`);
  for (let n = 8; n < 19; n++) assert.is(u.parse(f, 38, n, src, dst), Drop.UdpBadLength, `len ${n}`);
  const l = f.slice(); l[43] = 7;
  assert.is(u.parse(l, 38, 19, src, dst), Drop.UdpBadLength);
  const p = f.slice(); p[50] ^= 1;
  assert.is(u.parse(p, 38, 19, src, dst), Drop.UdpBadChecksum);
  assert.is(u.parse(f, 38, 19, src, dst + 1), Drop.UdpBadChecksum);
  // IP payload longer than the UDP length (trailing bytes are ignored).
  const big = new Uint8Array(64);
  big.set(f.subarray(38), 0);
  assert.is(u.parse(big, 0, 30, src, dst), Drop.None);
  assert.is(u.payloadLen, 11);
});

test('fuzz: parsers never throw on mutated and truncated frames', () => {
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  const seeds = [SCAPY_VLAN_UDP, SCAPY_ECHO_REPLY, SCAPY_ARP_REPLY, SCAPY_QINQ, '0000000000000000000000000800' + SCAPY_FRAG_NEEDED, '0000000000000000000000000800' + SCAPY_IP_OPTIONS].map(hex);
  const e = new EthFrame(), a = new ArpPacket(), ip = new Ipv4Header(), icmp = new IcmpPacket(), u = new UdpHeader();
  const buf = new Uint8Array(256);
  const seen = new Set<number>();
  for (let iter = 0; iter < 20000; iter++) {
    const s = seeds[iter % seeds.length];
    buf.fill(0);
    buf.set(s, 0);
    const flips = 1 + Math.floor(rnd() * 4);
    for (let k = 0; k < flips; k++) buf[Math.floor(rnd() * s.length)] = Math.floor(rnd() * 256);
    const len = rnd() < 0.3 ? Math.floor(rnd() * s.length) : s.length;
    let d = e.parse(buf, 0, len);
    seen.add(d);
    if (d !== Drop.None) continue;
    if (e.etherType === ETH_P_ARP) { seen.add(a.parse(buf, e.l3Off, e.l3Len)); continue; }
    if (e.etherType !== ETH_P_IPV4) continue;
    d = ip.parse(buf, e.l3Off, e.l3Len);
    seen.add(d);
    if (d !== Drop.None) continue;
    assert.ok(ip.payloadOff + ip.payloadLen <= len);
    if (ip.proto === IPPROTO_UDP) seen.add(u.parse(buf, ip.payloadOff, ip.payloadLen, ip.src, ip.dst));
    else if (ip.proto === IPPROTO_ICMP) seen.add(icmp.parse(buf, ip.payloadOff, ip.payloadLen));
  }
  // The mutations reached many different outcomes.
  assert.ok(seen.size >= 10, `outcomes ${[...seen].join(',')}`);
});

test.run();
