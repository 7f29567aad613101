/**
 * NDP (RFC 4861) and MLDv2 (RFC 3810): NS/NA/MLD writers against scapy byte for byte, the
 * validity checks of RFC 4861 6.1 / 7.1.1 / 7.1.2 / 8.1, the MLD query parser, captures and
 * malformed input.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Drop } from '../protocols/drop';
import { Ipv6Header, writeIpv6, IPV6_HLEN, IPPROTO_ICMPV6, IPPROTO_HOPOPTS } from '../protocols/ipv6';
import { Icmp6Packet, setIcmp6Checksum, ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT, ND_ROUTER_ADVERT, ND_ROUTER_SOLICIT, ND_REDIRECT, MLD_LISTENER_QUERY } from '../protocols/icmpv6';
import { NdpPacket, writeNs, writeNa, validateNs, NA_FLAG_SOLICITED, NA_FLAG_OVERRIDE, NA_FLAG_ROUTER, NDP_HOP_LIMIT } from '../protocols/ndp';
import {
  writeMldv2Report, writeRouterAlertHbh, MldQuery, mldv2MaxRecords, ROUTER_ALERT_HBH_LEN, MLD_HOP_LIMIT,
} from '../protocols/mld';
import { parseIp6, solicitedNode, ALL_MLDV2_ROUTERS6, ALL_NODES6, ANY6, Ip6 } from '../protocols/ip/addr';
import { parseMac } from '../protocols/ethernet';
import { SAMPLE_PCAPS } from './lib/env';
import { readPcap } from './lib/ipv6-frames';

const toHex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const LL1 = parseIp6('fe80::1');
const LL2 = parseIp6('fe80::2');
const G2 = parseIp6('fd00::2');
const MAC1 = parseMac('02:00:00:00:00:01');
const MAC2 = parseMac('02:00:00:00:00:02');

// Built with scapy 2.5:
// IPv6(src=fe80::1, dst=ff02::1:ff00:2, hlim=255)/ICMPv6ND_NS(tgt=fe80::2)/ICMPv6NDOptSrcLLAddr(lladdr=02:00:00:00:00:01)
const SCAPY_NS = '6000000000203afffe800000000000000000000000000001ff0200000000000000000001ff00000287007a9700000000fe8000000000000000000000000000020101020000000001';
// IPv6(src=::, dst=ff02::1:ff00:2, hlim=255)/ICMPv6ND_NS(tgt=fd00::2)
const SCAPY_DAD = '6000000000183aff00000000000000000000000000000000ff0200000000000000000001ff00000287007da300000000fd000000000000000000000000000002';
// IPv6(src=fe80::2, dst=fe80::1, hlim=255)/ICMPv6ND_NA(tgt=fe80::2, R=0, S=1, O=1)/ICMPv6NDOptDstLLAddr(lladdr=02:00:00:00:00:02)
const SCAPY_NA = '6000000000203afffe800000000000000000000000000002fe8000000000000000000000000000018800181a60000000fe8000000000000000000000000000020201020000000002';
// IPv6(src=fd00::2, dst=ff02::1, hlim=255)/ICMPv6ND_NA(tgt=fd00::2, R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr=02:00:00:00:00:02)
const SCAPY_UNA = '6000000000203afffd000000000000000000000000000002ff02000000000000000000000000000188005a9820000000fd0000000000000000000000000000020201020000000002';
// IPv6(src=fe80::1, dst=ff02::16, hlim=1)/IPv6ExtHdrHopByHop(options=[RouterAlert(value=0), PadN()])/
//   ICMPv6MLReport2(records=[MultAddrRec(rtype=4, dst=ff02::1:ff00:1), MultAddrRec(rtype=4, dst=ff02::1:ff00:2)])
const SCAPY_MLD_JOIN = '6000000000380001fe800000000000000000000000000001ff0200000000000000000000000000163a000502000001008f006eeb0000000204000000ff0200000000000000000001ff00000104000000ff0200000000000000000001ff000002';
// The same with one record of type 3 (CHANGE_TO_INCLUDE, no sources) for ff02::1:ff00:1
const SCAPY_MLD_LEAVE = '6000000000240001fe800000000000000000000000000001ff0200000000000000000000000000163a000502000001008f0072070000000103000000ff0200000000000000000001ff000001';

const ip = new Ipv6Header();
const icmp = new Icmp6Packet();
const nd = new NdpPacket();

/** IPv6 header + an NDP message written by `w` at 40; returns the packet. */
function ndPacket(src: Ip6, dst: Ip6, w: (b: Uint8Array, off: number) => number, hop = NDP_HOP_LIMIT): Uint8Array {
  const b = new Uint8Array(200);
  const n = w(b, IPV6_HLEN);
  writeIpv6(b, 0, src, dst, IPPROTO_ICMPV6, n, hop);
  return b.subarray(0, IPV6_HLEN + n);
}

/** The full receive path: IPv6, ICMPv6 checksum, NDP checks. */
function parseNd(b: Uint8Array): Drop {
  assert.is(ip.parse(b, 0, b.length), Drop.None);
  const d = icmp.parse(b, ip.l4Off, ip.l4Len, ip.srcOff, ip.dstOff);
  if (d !== Drop.None) return d;
  return nd.parse(b, ip.l4Off, ip.l4Len, ip.srcOff, ip.dstOff, ip.hopLimit);
}

/** A raw NDP message (type, body after the 4-byte header) with a correct checksum. */
function rawNd(src: Ip6, dst: Ip6, type: number, body: number[], hop = NDP_HOP_LIMIT, code = 0): Uint8Array {
  return ndPacket(src, dst, (b, off) => {
    b[off] = type;
    b[off + 1] = code;
    b.set(body, off + 4);
    setIcmp6Checksum(b, off, 4 + body.length, src, dst);
    return 4 + body.length;
  }, hop);
}

const addrBytes = (a: Ip6) => [...a.bytes()];

test('writeNs / writeNa match scapy (NS with SLLA, DAD probe, solicited NA, unsolicited NA)', () => {
  assert.is(toHex(ndPacket(LL1, solicitedNode(LL2), (b, o) => writeNs(b, o, LL2, MAC1, LL1, solicitedNode(LL2)))), SCAPY_NS);
  assert.is(toHex(ndPacket(ANY6, solicitedNode(G2), (b, o) => writeNs(b, o, G2, null, ANY6, solicitedNode(G2)))), SCAPY_DAD);
  assert.is(toHex(ndPacket(LL2, LL1, (b, o) => writeNa(b, o, LL2, NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE, MAC2, LL2, LL1))), SCAPY_NA);
  assert.is(toHex(ndPacket(G2, ALL_NODES6, (b, o) => writeNa(b, o, G2, NA_FLAG_OVERRIDE, MAC2, G2, ALL_NODES6))), SCAPY_UNA);
});

test('NS / NA parse: target, flags, link-layer address options', () => {
  let b = hex(SCAPY_NS);
  assert.is(parseNd(b), Drop.None);
  assert.equal([nd.type, nd.targetOff, nd.sllaOff, nd.tllaOff, nd.srcUnspecified, nd.dstMulticast], [ND_NEIGHBOR_SOLICIT, 48, 66, -1, false, true]);
  assert.equal([...b.subarray(nd.sllaOff, nd.sllaOff + 6)], [...MAC1]);
  b = hex(SCAPY_NA);
  assert.is(parseNd(b), Drop.None);
  assert.equal([nd.type, nd.router, nd.solicited, nd.override, nd.tllaOff, nd.sllaOff], [ND_NEIGHBOR_ADVERT, false, true, true, 66, -1]);
  assert.equal([...b.subarray(nd.tllaOff, nd.tllaOff + 6)], [...MAC2]);
  b = hex(SCAPY_DAD);
  assert.is(parseNd(b), Drop.None);
  assert.ok(nd.srcUnspecified);
  // The nonce option of an enhanced DAD probe (RFC 7527), from a capture.
  const [cap] = readPcap(path.join(SAMPLE_PCAPS, 'icmpv6-ns-nonce.pcap'));
  const c = cap.subarray(14);
  assert.is(parseNd(c), Drop.None);
  assert.ok(nd.srcUnspecified);
  assert.ok(nd.nonceOff > 0);
  assert.is(toHex(c.subarray(nd.nonceOff, nd.nonceOff + 6)), '6069604c0aaa');
});

test('hop limit other than 255 → ndp-bad-hop-limit (RFC 4861 7.1.1)', () => {
  for (const hop of [254, 64, 1, 0]) {
    const b = ndPacket(LL1, solicitedNode(LL2), (x, o) => writeNs(x, o, LL2, MAC1, LL1, solicitedNode(LL2)), hop);
    assert.is(parseNd(b), Drop.NdpBadHopLimit);
  }
});

test('RFC 4861 7.1.1 / 7.1.2 checks: code, length, multicast target, option lengths, DAD rules, S flag to multicast', () => {
  const ns = (body: number[], src = LL1, dst = solicitedNode(LL2), code = 0) => rawNd(src, dst, ND_NEIGHBOR_SOLICIT, body, 255, code);
  const tgt = addrBytes(LL2);
  assert.is(parseNd(ns([0, 0, 0, 0, ...tgt])), Drop.None);
  assert.is(parseNd(ns([0, 0, 0, 0, ...tgt], LL1, solicitedNode(LL2), 1)), Drop.NdpInvalid, 'code 1');
  assert.is(parseNd(ns([0, 0, 0, 0, ...tgt.slice(0, 15)])), Drop.NdpInvalid, '23 bytes');
  assert.is(parseNd(ns([0, 0, 0, 0, ...addrBytes(ALL_NODES6)])), Drop.NdpInvalid, 'multicast target');
  assert.is(parseNd(ns([0, 0, 0, 0, ...tgt, 1, 0, 0, 0, 0, 0, 0, 0])), Drop.NdpInvalid, 'option length 0');
  assert.is(parseNd(ns([0, 0, 0, 0, ...tgt, 1, 2, 0, 0, 0, 0, 0, 0])), Drop.NdpInvalid, 'option past the end');
  assert.is(parseNd(ns([0, 0, 0, 0, ...tgt, 1, 2, ...new Array(14).fill(0)])), Drop.NdpInvalid, 'SLLA of 16 bytes: not Ethernet');
  assert.is(parseNd(ns([0, 0, 0, 0, ...tgt, 99, 1, 0, 0, 0, 0, 0, 0])), Drop.None, 'unknown option skipped');
  // From ::, to a solicited-node group, with no SLLA.
  assert.is(parseNd(ns([0, 0, 0, 0, ...tgt], ANY6, solicitedNode(LL2))), Drop.None);
  assert.is(parseNd(ns([0, 0, 0, 0, ...tgt], ANY6, LL2)), Drop.NdpInvalid, 'DAD probe to unicast');
  assert.is(parseNd(ns([0, 0, 0, 0, ...tgt], ANY6, ALL_NODES6)), Drop.NdpInvalid, 'DAD probe to all-nodes');
  assert.is(parseNd(ns([0, 0, 0, 0, ...tgt, 1, 1, ...MAC1], ANY6, solicitedNode(LL2))), Drop.NdpInvalid, 'DAD probe with SLLA');
  assert.ok(validateNs(false, false) && validateNs(true, true));
  assert.not.ok(validateNs(true, false));
  // NA to multicast with S set.
  const na = (flags: number, dst: Ip6) => rawNd(LL2, dst, ND_NEIGHBOR_ADVERT, [flags, 0, 0, 0, ...tgt]);
  assert.is(parseNd(na(NA_FLAG_SOLICITED, ALL_NODES6)), Drop.NdpInvalid);
  assert.is(parseNd(na(NA_FLAG_SOLICITED, LL1)), Drop.None);
  assert.is(parseNd(na(NA_FLAG_ROUTER | NA_FLAG_OVERRIDE, ALL_NODES6)), Drop.None);
  assert.ok(nd.router && nd.override && !nd.solicited);
});

test('RS / RA / Redirect: counted with their checks (RFC 4861 6.1.1, 6.1.2, 8.1)', () => {
  assert.is(parseNd(rawNd(LL1, parseIp6('ff02::2'), ND_ROUTER_SOLICIT, [0, 0, 0, 0])), Drop.None);
  assert.is(parseNd(rawNd(ANY6, parseIp6('ff02::2'), ND_ROUTER_SOLICIT, [0, 0, 0, 0, 1, 1, ...MAC1])), Drop.NdpInvalid, 'RS from :: with SLLA');
  const ra = [64, 0, 0, 15, 0, 0, 0, 0, 0, 0, 0, 0];
  assert.is(parseNd(rawNd(LL1, ALL_NODES6, ND_ROUTER_ADVERT, ra)), Drop.None);
  assert.equal([nd.type, nd.raHopLimit, nd.raLifetime], [ND_ROUTER_ADVERT, 64, 15]);
  assert.is(parseNd(rawNd(G2, ALL_NODES6, ND_ROUTER_ADVERT, ra)), Drop.NdpInvalid, 'RA from a global address');
  assert.is(parseNd(rawNd(LL1, ALL_NODES6, ND_ROUTER_ADVERT, ra.slice(0, 8))), Drop.NdpInvalid, 'RA of 12 bytes');
  const red = [0, 0, 0, 0, ...addrBytes(LL2), ...addrBytes(G2)];
  assert.is(parseNd(rawNd(LL1, G2, ND_REDIRECT, red)), Drop.None);
  assert.equal([nd.targetOff, nd.destOff], [48, 64]);
  assert.is(parseNd(rawNd(G2, G2, ND_REDIRECT, red)), Drop.NdpInvalid, 'Redirect from a global address');
  assert.is(parseNd(rawNd(LL1, G2, ND_REDIRECT, [0, 0, 0, 0, ...addrBytes(G2), ...addrBytes(LL2)])), Drop.NdpInvalid, 'global target differing from the destination');
  // Router advertisements from captures.
  let n = 0;
  for (const name of ['icmpv6-ra-pref64.pcap', 'icmpv6.pcap']) {
    for (const f of readPcap(path.join(SAMPLE_PCAPS, name))) {
      const b = f.subarray(14);
      if (ip.parse(b, 0, b.length) !== Drop.None || b[ip.l4Off] !== ND_ROUTER_ADVERT) continue;
      assert.is(parseNd(b), Drop.None, name);
      assert.ok(nd.sllaOff > 0);
      n++;
    }
  }
  assert.is(n, 5);
});

test('NDP from captures (ipv6-bad-version.pcap, version 6 frames): NS and NA parse', () => {
  const fr = readPcap(path.join(SAMPLE_PCAPS, 'ipv6-bad-version.pcap'));
  assert.is(parseNd(fr[0].subarray(14)), Drop.None);
  assert.is(nd.type, ND_NEIGHBOR_SOLICIT);
  assert.is(parseNd(fr[2].subarray(14)), Drop.None);
});

test('MLDv2 report writer and Router Alert header match scapy (join, leave)', () => {
  const build = (groups: Ip6[], leave: boolean) => {
    const b = new Uint8Array(400);
    writeRouterAlertHbh(b, IPV6_HLEN, IPPROTO_ICMPV6);
    const n = writeMldv2Report(b, IPV6_HLEN + ROUTER_ALERT_HBH_LEN, groups, LL1, ALL_MLDV2_ROUTERS6, leave);
    writeIpv6(b, 0, LL1, ALL_MLDV2_ROUTERS6, IPPROTO_HOPOPTS, ROUTER_ALERT_HBH_LEN + n, MLD_HOP_LIMIT);
    return b.subarray(0, IPV6_HLEN + ROUTER_ALERT_HBH_LEN + n);
  };
  const join = build([solicitedNode(parseIp6('fe80::1')), solicitedNode(parseIp6('fe80::2'))], false);
  assert.is(toHex(join), SCAPY_MLD_JOIN);
  assert.is(toHex(build([solicitedNode(parseIp6('fe80::1'))], true)), SCAPY_MLD_LEAVE);
  // It parses back: Router Alert recognized, checksum good.
  assert.is(ip.parse(join, 0, join.length), Drop.None);
  assert.ok(ip.routerAlertOff > 0);
  assert.is(icmp.parse(join, ip.l4Off, ip.l4Len, ip.srcOff, ip.dstOff), Drop.None);
  assert.is(mldv2MaxRecords(1280), 61);
  assert.is(mldv2MaxRecords(1500), 72);
  // Current-state record (answer to a query): MODE_IS_EXCLUDE.
  const b = new Uint8Array(100);
  writeMldv2Report(b, 0, [ALL_NODES6], LL1, ALL_MLDV2_ROUTERS6, false, true);
  assert.is(b[8], 2);
});

test('MLD query parser: MLDv2 general query from a capture, MLDv1, source list bounds, non link-local source', () => {
  const [, , q] = readPcap(path.join(SAMPLE_PCAPS, 'icmpv6.pcap'));
  const b = q.subarray(14);
  assert.is(ip.parse(b, 0, b.length), Drop.None);
  assert.is(icmp.parse(b, ip.l4Off, ip.l4Len, ip.srcOff, ip.dstOff), Drop.None);
  assert.is(icmp.type, MLD_LISTENER_QUERY);
  const mq = new MldQuery();
  assert.is(mq.parse(b, ip.l4Off, ip.l4Len, ip.srcOff), Drop.None);
  assert.equal([mq.version, mq.general, mq.maxRespMs, mq.qrv, mq.qqic, mq.nSources], [2, true, 10000, 2, 60, 0]);
  const m = new Uint8Array(200);
  const g = parseIp6('ff05::1:3');
  const v1 = (src: Ip6, len: number, nSrc = 0, code = 1000) => {
    m.fill(0);
    m[40] = MLD_LISTENER_QUERY;
    m[44] = code >>> 8; m[45] = code & 0xff;
    m.set(g.bytes(), 48);
    m[66] = nSrc >>> 8; m[67] = nSrc & 0xff;
    m.set(src.bytes(), 8);
    return mq.parse(m, 40, len, 8);
  };
  assert.is(v1(LL1, 24), Drop.None);
  assert.equal([mq.version, mq.general, mq.maxRespMs, mq.groupOff], [1, false, 1000, 48]);
  assert.is(v1(G2, 24), Drop.MldInvalid, 'query from a global source (RFC 3810 5.1.14)');
  assert.is(v1(LL1, 26), Drop.MldInvalid);
  assert.is(v1(LL1, 28 + 32, 2), Drop.None);
  assert.is(mq.nSources, 2);
  assert.is(v1(LL1, 28 + 31, 2), Drop.MldInvalid, 'source list past the end');
  // RFC 3810 5.1.3: exponent 1, mantissa 0 → (0x1000) << 4.
  assert.is(v1(LL1, 28, 0, 0x9000), Drop.None);
  assert.is(mq.maxRespMs, 0x1000 << 4);
  assert.is(v1(LL1, 23), Drop.MldInvalid);
});

test('malformed NDP and MLD input never throws', () => {
  const seeds = [hex(SCAPY_NS), hex(SCAPY_NA), hex(SCAPY_DAD), rawNd(LL1, G2, ND_REDIRECT, [0, 0, 0, 0, ...addrBytes(LL2), ...addrBytes(G2), 1, 1, ...MAC1])];
  const mq = new MldQuery();
  let x = 7;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 16;
  for (const s of seeds) {
    for (let n = 0; n <= s.length - 40; n++) {
      assert.ok(nd.parse(s, 40, n, 8, 24, 255) < Drop.Count);
      assert.ok(mq.parse(s, 40, n, 8) < Drop.Count);
    }
    for (let i = 0; i < 3000; i++) {
      const c = s.slice();
      for (let k = 0; k < 3; k++) c[rnd() % c.length] = rnd() & 0xff;
      const d = nd.parse(c, 40, c.length - 40, 8, 24, 255);
      assert.ok(d >= 0 && d < Drop.Count);
      if (d === Drop.None) {
        for (const o of [nd.sllaOff, nd.tllaOff, nd.nonceOff, nd.targetOff]) assert.ok(o === -1 || (o >= 40 && o + 6 <= c.length));
      }
      assert.ok(mq.parse(c, 40, c.length - 40, 8) < Drop.Count);
    }
  }
});

test.run();
