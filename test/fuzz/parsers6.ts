/**
 * Fuzz targets for the IPv6 wire parsers (protocols/): the IPv6 header and its extension header
 * chain, ICMPv6 (with the quoted packet of errors), NDP and MLD queries, IPv6 reassembly.
 *
 * Invariants as for the IPv4 parsers (parsers.ts): never a throw, a drop of the parser's own
 * family or None, nothing read outside the input (two buffers with different surroundings give
 * the same result), offsets inside the input on None, and structured inputs built with the
 * project's emitters parse back to what they were built from.
 */
import * as fc from 'fast-check';
import { Drop } from '../../protocols/drop';
import {
  Ipv6Header, writeIpv6, writeFragHdr, IPV6_HLEN, IPV6_MAX_EXT_HEADERS, IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_ROUTING,
  IPPROTO_FRAGMENT, IPPROTO_ICMPV6,
} from '../../protocols/ipv6';
import { Icmp6Packet, writeIcmp6Error, icmp6Checksum, ICMP6_ECHO_REQUEST, ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT, MLD_LISTENER_QUERY } from '../../protocols/icmpv6';
import { NdpPacket, writeNs, writeNa } from '../../protocols/ndp';
import { MldQuery, writeMldv2Report } from '../../protocols/mld';
import { Ipv6Reassembler } from '../../protocols/reassembly6';
import { Ip6, parseIp6, solicitedNode, ALL_MLDV2_ROUTERS6 } from '../../protocols/ip/addr';
import { fold, sum16 } from '../../protocols/checksum';
import { pseudoSum6At } from '../../protocols/ipv6';
import { Target, fenced, expect, inFamily, PAD, fragPlan, fragPlanFields } from './lib';
import { captureFrames } from './corpus';


const SRC = parseIp6('fe80::2');
const DST = parseIp6('fd00::1');
const addr6Arb: fc.Arbitrary<Ip6> = fc.oneof(
  fc.constantFrom(SRC, DST, parseIp6('::'), parseIp6('ff02::1'), parseIp6('ff02::1:ff00:1'), parseIp6('fe80::1')),
  fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.nat()).map(([a, b, c, d]) => new Ip6(a * 2, b * 2, c * 2, d * 2)),
);

/** IPv6 packets of the sample captures (Ethernet, untagged), for the mutation corpus. */
function capturePackets(): Uint8Array[] {
  return captureFrames().filter((f) => f.length > 54 && f[12] === 0x86 && f[13] === 0xdd).map((f) => f.slice(14));
}

// ------------------------------------------------------------------ IPv6 header and chain

const IP6_FAMILY = [Drop.Ipv6Truncated, Drop.Ipv6BadVersion, Drop.Ipv6ExtTruncated, Drop.Ipv6ExtChainTooLong, Drop.Ipv6HbhNotFirst,
  Drop.Ipv6BadOption, Drop.Ipv6UnknownOption, Drop.Ipv6RoutingType0, Drop.Ipv6RoutingUnknown];
const ip6 = new Ipv6Header();
const ip6Snap = (d: Drop) => `${d}|${ip6.ppCode}|${ip6.ppPointer}|${ip6.optAction}|` + (d !== Drop.None ? '' :
  `${ip6.tclass}|${ip6.flowLabel}|${ip6.payloadLen}|${ip6.hopLimit}|${ip6.nextHeader}|${ip6.nhFieldOff}|${ip6.l4Off}|${ip6.l4Len}|${ip6.extCount}|` +
  `${ip6.isFragment}|${ip6.atomic}|${ip6.fragOffset}|${ip6.more}|${ip6.fragId}|${ip6.fragHdrOff}|${ip6.unfragLen}|${ip6.routerAlertOff}`);

function checkIp6(body: Uint8Array): Drop {
  const d = fenced(body, (b, o, n) => ip6.parse(b, o, n), ip6Snap);
  inFamily(d, IP6_FAMILY);
  if (ip6.ppCode >= 0) expect(d !== Drop.None && ip6.ppCode <= 3 && ip6.ppPointer >= 0 && ip6.ppPointer < Math.max(body.length, 40), `pp ${ip6.ppCode}/${ip6.ppPointer}`);
  if (d === Drop.None) {
    expect(body.length >= 40 + ip6.payloadLen, 'payload length beyond the input');
    expect(ip6.l4Off >= PAD + 40 && ip6.l4Off + ip6.l4Len === PAD + 40 + ip6.payloadLen && ip6.l4Len >= 0, `l4 ${ip6.l4Off}/${ip6.l4Len}`);
    expect(ip6.extCount <= IPV6_MAX_EXT_HEADERS, `extCount ${ip6.extCount}`);
    expect(ip6.nhFieldOff >= PAD && ip6.nhFieldOff < ip6.l4Off, 'nhFieldOff');
    if (ip6.isFragment) expect(ip6.fragHdrOff >= PAD + 40 && ip6.unfragLen === ip6.fragHdrOff - PAD && ip6.l4Off === ip6.fragHdrOff + 8, 'fragment offsets');
    expect(!(ip6.isFragment && ip6.atomic), 'fragment and atomic');
    expect(ip6.ppCode === -1, 'pp on None');
  }
  return d;
}

interface Ext { kind: number; len8: number; opts: Uint8Array; rtype: number; segLeft: number; fragOff: number; more: boolean; id: number }
interface Ip6In { src: Ip6; dst: Ip6; exts: Ext[]; nh: number; payload: Uint8Array; tclass: number; flow: number; hop: number; lenDelta: number; version: number }

const extArb: fc.Arbitrary<Ext> = fc.record({
  kind: fc.constantFrom(IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT),
  len8: fc.integer({ min: 0, max: 3 }),
  opts: fc.oneof(
    fc.constant(new Uint8Array(0)),
    fc.constantFrom(Uint8Array.of(0), Uint8Array.of(1, 0), Uint8Array.of(5, 2, 0, 0), Uint8Array.of(0x1e, 1, 0), Uint8Array.of(0x5e, 0),
      Uint8Array.of(0x9e, 0), Uint8Array.of(0xde, 0), Uint8Array.of(0xc2, 4, 0, 1, 0, 0)),
    fc.uint8Array({ maxLength: 12 }),
  ),
  rtype: fc.constantFrom(0, 2, 3, 4, 200),
  segLeft: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 255 })),
  fragOff: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8191 }).map((x) => x * 8)),
  more: fc.boolean(),
  id: fc.integer({ min: 0, max: 0xffffffff }),
});

function extBytes(e: Ext): Uint8Array {
  if (e.kind === IPPROTO_FRAGMENT) {
    const b = new Uint8Array(8);
    writeFragHdr(b, 0, 0, e.fragOff, e.more, e.id);
    return b;
  }
  const b = new Uint8Array((e.len8 + 1) * 8);
  b[1] = e.len8;
  if (e.kind === IPPROTO_ROUTING) {
    b[2] = e.rtype;
    b[3] = e.segLeft;
    return b;
  }
  // Options then PadN/Pad1 to the end.
  const room = b.length - 2;
  const n = Math.min(e.opts.length, room);
  b.set(e.opts.subarray(0, n), 2);
  const rest = room - n;
  if (rest === 1) b[2 + n] = 0;
  else if (rest >= 2) { b[2 + n] = 1; b[3 + n] = rest - 2; }
  return b;
}

function buildIp6(x: Ip6In): Uint8Array {
  const parts = x.exts.map(extBytes);
  const extLen = parts.reduce((a, p) => a + p.length, 0);
  const b = new Uint8Array(IPV6_HLEN + extLen + x.payload.length);
  const plen = Math.max(0, Math.min(0xffff, extLen + x.payload.length + x.lenDelta));
  writeIpv6(b, 0, x.src, x.dst, x.exts.length ? x.exts[0]!.kind : x.nh, plen, x.hop, x.flow, x.tclass);
  b[0] = (x.version << 4) | (b[0]! & 0x0f);
  let p = IPV6_HLEN;
  for (let i = 0; i < parts.length; i++) {
    b.set(parts[i]!, p);
    b[p] = i + 1 < parts.length ? x.exts[i + 1]!.kind : x.nh;
    p += parts[i]!.length;
  }
  b.set(x.payload, p);
  return b;
}

export const ipv6Target: Target<Ip6In> = {
  name: 'ipv6',
  arb: fc.record({
    src: addr6Arb, dst: addr6Arb,
    exts: fc.array(extArb, { maxLength: 10 }),
    nh: fc.oneof(fc.constantFrom(6, 17, 58, 59), fc.integer({ min: 0, max: 255 })),
    payload: fc.uint8Array({ maxLength: 64 }),
    tclass: fc.integer({ min: 0, max: 255 }),
    flow: fc.integer({ min: 0, max: 0xfffff }),
    hop: fc.integer({ min: 0, max: 255 }),
    lenDelta: fc.oneof(fc.constant(0), fc.integer({ min: -20, max: 20 })),
    version: fc.oneof(fc.constant(6), fc.integer({ min: 0, max: 15 })),
  }),
  toBytes: (x) => buildIp6(x),
  execStructured(x) {
    const b = buildIp6(x);
    const d = checkIp6(b);
    if (x.version !== 6) { expect(d === Drop.Ipv6BadVersion, `version ${x.version} accepted: ${d}`); return; }
    if (x.lenDelta > 0) { expect(d === Drop.Ipv6Truncated, `payload length beyond the frame accepted: ${d}`); return; }
    if (x.lenDelta === 0 && x.exts.length === 0 && ![0, 43, 44, 60].includes(x.nh)) {
      expect(d === Drop.None && ip6.nextHeader === x.nh && ip6.tclass === x.tclass && ip6.flowLabel === x.flow && ip6.hopLimit === x.hop &&
        ip6.l4Len === x.payload.length, `plain round trip: ${ip6Snap(d)}`);
    }
    // A chain of only well-formed skippable headers parses to the upper layer.
    const plain = x.lenDelta === 0 && x.exts.length <= IPV6_MAX_EXT_HEADERS && ![0, 43, 44, 60].includes(x.nh) &&
      x.exts.every((e, i) => (e.kind === IPPROTO_DSTOPTS && e.opts.length === 0) || (e.kind === IPPROTO_HOPOPTS && i === 0 && e.opts.length === 0) ||
        (e.kind === IPPROTO_ROUTING && e.segLeft === 0) || (e.kind === IPPROTO_FRAGMENT && e.fragOff === 0 && !e.more));
    if (plain) expect(d === Drop.None && ip6.nextHeader === x.nh && ip6.l4Len === x.payload.length, `walkable chain refused: ${ip6Snap(d)}`);
    if (x.lenDelta === 0 && x.exts.length === 1 && x.exts[0]!.kind === IPPROTO_ROUTING && x.exts[0]!.segLeft > 0) {
      expect((d === Drop.Ipv6RoutingType0) === (x.exts[0]!.rtype === 0) && ip6.ppCode === 0 && ip6.ppPointer === 42, `routing: ${ip6Snap(d)}`);
    }
  },
  corpus: () => capturePackets(),
  execBytes: (b) => { checkIp6(b); },
  structuredShare: 0.2,
  maxLen: 1600,
};

// ------------------------------------------------------------------ ICMPv6, NDP, MLD

const ICMP6_FAMILY = [Drop.Icmpv6Truncated, Drop.Icmpv6BadChecksum, Drop.Icmpv6UnknownType];
const ND_FAMILY = [Drop.NdpBadHopLimit, Drop.NdpInvalid];
const icmp6 = new Icmp6Packet();
const nd = new NdpPacket();
const mq = new MldQuery();
const icmp6Snap = (d: Drop) => `${d}|${icmp6.type}|${icmp6.code}|${icmp6.id}|${icmp6.seq}|${icmp6.mtu}|${icmp6.pointer}|${icmp6.innerOff}|${icmp6.innerLen}|` +
  `${icmp6.innerNextHeader}|${icmp6.innerL4Off}|${icmp6.innerL4Len}`;
const ndSnap = (d: Drop) => `${d}|${nd.type}|${nd.targetOff}|${nd.destOff}|${nd.router}|${nd.solicited}|${nd.override}|${nd.sllaOff}|${nd.tllaOff}|${nd.nonceOff}|${nd.srcUnspecified}|${nd.dstMulticast}`;
const mqSnap = (d: Drop) => `${d}|${mq.version}|${mq.maxRespMs}|${mq.general}|${mq.nSources}|${mq.qrv}|${mq.qqic}`;

/**
 * Checks an ICMPv6 message given as a whole IPv6 packet (the addresses are inside the input),
 * then NDP / MLD when it is one. `fix` repairs the ICMPv6 checksum first, to get past it.
 */
function checkIcmp6(pkt: Uint8Array, fix: boolean): Drop {
  if (pkt.length < IPV6_HLEN + 4) return Drop.Icmpv6Truncated;
  const n = pkt.length - IPV6_HLEN;
  if (fix) {
    pkt[IPV6_HLEN + 2] = 0; pkt[IPV6_HLEN + 3] = 0;
    const c = fold(sum16(pkt, IPV6_HLEN, n, pseudoSum6At(pkt, 8, 24, IPPROTO_ICMPV6, n)));
    pkt[IPV6_HLEN + 2] = c >>> 8; pkt[IPV6_HLEN + 3] = c & 0xff;
  }
  const d = fenced(pkt, (b, o, len) => icmp6.parse(b, o + IPV6_HLEN, len - IPV6_HLEN, o + 8, o + 24), icmp6Snap);
  inFamily(d, ICMP6_FAMILY);
  if (d !== Drop.None) return d;
  expect(fold(sum16(pkt, IPV6_HLEN, n, pseudoSum6At(pkt, 8, 24, IPPROTO_ICMPV6, n))) === 0, 'accepted with a bad checksum');
  if (icmp6.type < 128) {
    expect(icmp6.innerOff === PAD + 48 && icmp6.innerLen === n - 8 && icmp6.innerLen >= 40, 'quote bounds');
    if (icmp6.innerL4Off >= 0) expect(icmp6.innerL4Off >= icmp6.innerOff + 40 && icmp6.innerL4Len >= 0 && icmp6.innerL4Off + icmp6.innerL4Len <= PAD + pkt.length, 'quoted L4 bounds');
  }
  if (icmp6.type >= 133 && icmp6.type <= 137) {
    const dn = fenced(pkt, (b, o, len) => nd.parse(b, o + IPV6_HLEN, len - IPV6_HLEN, o + 8, o + 24, pkt[7]!), ndSnap);
    inFamily(dn, ND_FAMILY);
    if (dn === Drop.None) {
      expect(pkt[7] === 255, 'NDP accepted with hop limit != 255');
      for (const o of [nd.sllaOff, nd.tllaOff, nd.nonceOff]) expect(o === -1 || (o >= PAD + 48 && o + 6 <= PAD + pkt.length), `option offset ${o}`);
      if (nd.targetOff >= 0) expect(nd.targetOff + 16 <= PAD + pkt.length && pkt[nd.targetOff - PAD] !== 0xff, 'target');
    }
  }
  if (icmp6.type === MLD_LISTENER_QUERY) {
    const dm = fenced(pkt, (b, o, len) => mq.parse(b, o + IPV6_HLEN, len - IPV6_HLEN, o + 8), mqSnap);
    inFamily(dm, [Drop.MldInvalid]);
    if (dm === Drop.None) expect(mq.version === 1 ? n === 24 : 28 + 16 * mq.nSources <= n, 'MLD query length');
  }
  return d;
}

interface Icmp6In { kind: number; src: Ip6; dst: Ip6; target: Ip6; mac: Uint8Array | null; flags: number; quote: Ip6In | null; raw: Uint8Array; hop: number; cut: number }

function buildIcmp6(x: Icmp6In): Uint8Array {
  const b = new Uint8Array(2000);
  let n: number;
  switch (x.kind) {
    case 0: n = writeNs(b, IPV6_HLEN, x.target, x.mac, x.src, x.dst); break;
    case 1: n = writeNa(b, IPV6_HLEN, x.target, x.flags, x.mac, x.src, x.dst); break;
    case 2: n = writeMldv2Report(b, IPV6_HLEN, [solicitedNode(x.target), x.dst], x.src, ALL_MLDV2_ROUTERS6, (x.flags & 1) !== 0); break;
    case 3: {
      const q = x.quote ? buildIp6(x.quote) : x.raw;
      n = writeIcmp6Error(b, IPV6_HLEN, 1 + (x.flags & 3), x.flags >>> 4, x.flags, q, 0, q.length, x.src, x.dst);
      break;
    }
    default: {
      b[IPV6_HLEN] = x.kind === 4 ? ICMP6_ECHO_REQUEST : x.kind === 5 ? MLD_LISTENER_QUERY : x.flags;
      b.set(x.raw, IPV6_HLEN + 4);
      n = 4 + x.raw.length;
      const c = icmp6Checksum(b, IPV6_HLEN, n, x.src, x.dst);
      b[IPV6_HLEN + 2] = c >>> 8; b[IPV6_HLEN + 3] = c & 0xff;
    }
  }
  writeIpv6(b, 0, x.src, x.kind === 2 ? ALL_MLDV2_ROUTERS6 : x.dst, IPPROTO_ICMPV6, n, x.hop);
  return b.slice(0, IPV6_HLEN + n);
}

export const icmpv6Target: Target<Icmp6In> = {
  name: 'icmpv6',
  arb: fc.record({
    kind: fc.integer({ min: 0, max: 6 }),
    src: addr6Arb, dst: addr6Arb, target: addr6Arb,
    mac: fc.option(fc.uint8Array({ minLength: 6, maxLength: 6 })),
    flags: fc.integer({ min: 0, max: 255 }),
    quote: fc.option(ipv6Target.arb, { freq: 3 }),
    raw: fc.uint8Array({ maxLength: 80 }),
    hop: fc.oneof(fc.constant(255), fc.integer({ min: 0, max: 255 })),
    cut: fc.integer({ min: 0, max: 200 }),
  }),
  toBytes: (x) => buildIcmp6(x),
  execStructured(x) {
    const full = buildIcmp6(x);
    const pkt = x.cut < 100 ? full : full.subarray(0, Math.max(0, full.length - (x.cut - 100)));
    const d = checkIcmp6(pkt.slice(), false);
    if (pkt !== full) return;
    const want = x.kind <= 2 ? d === Drop.None
      : x.kind === 3 ? d === Drop.None || d === Drop.Icmpv6Truncated
      : x.kind <= 5 ? d === (x.raw.length >= 4 ? Drop.None : Drop.Icmpv6Truncated)
      : true;
    expect(want, `emitted message (kind ${x.kind}) refused: ${icmp6Snap(d)}`);
    if (x.kind === 0 || x.kind === 1) {
      const dn = nd.parse(full, IPV6_HLEN, full.length - IPV6_HLEN, 8, 24, x.hop);
      const srcUnspec = (x.src.w0 | x.src.w1 | x.src.w2 | x.src.w3) === 0;
      const validNs = x.kind === 0 && x.hop === 255 && (x.target.w0 >>> 24) !== 0xff && (!srcUnspec || (x.mac === null && solicitedNode(x.target).w3 === x.dst.w3 && x.dst.w0 === 0xff020000 && x.dst.w1 === 0 && x.dst.w2 === 1 && (x.dst.w3 >>> 24) === 0xff));
      if (validNs) expect(dn === Drop.None && nd.type === ND_NEIGHBOR_SOLICIT && nd.sllaOff === (x.mac ? 66 : -1), `NS round trip: ${ndSnap(dn)}`);
      const validNa = x.kind === 1 && x.hop === 255 && (x.target.w0 >>> 24) !== 0xff && !((x.dst.w0 >>> 24) === 0xff && (x.flags & 0x40));
      if (validNa) expect(dn === Drop.None && nd.type === ND_NEIGHBOR_ADVERT && nd.solicited === ((x.flags & 0x40) !== 0) && nd.tllaOff === (x.mac ? 66 : -1), `NA round trip: ${ndSnap(dn)}`);
      if (x.hop !== 255) expect(dn === Drop.NdpBadHopLimit, `hop limit ${x.hop} accepted`);
    }
  },
  corpus: () => capturePackets().filter((p) => p[6] === IPPROTO_ICMPV6),
  execBytes: (b) => {
    checkIcmp6(b.slice(), false);
    checkIcmp6(b.slice(), true);
  },
  structuredShare: 0.2,
  maxLen: 1400,
};

// ------------------------------------------------------------------ IPv6 reassembly

const REASM6_FAMILY = [Drop.Ipv6FragmentInvalid, Drop.Ipv6ReassemblyOverflow, Drop.Ipv6FragOverlap, Drop.Ipv6FragmentDuplicate, Drop.Ipv6ReassemblyTimeout];
const LIMITS6 = { maxDatagrams: 8, maxBytes: 16 * 1024, timeoutUs: 60_000_000, maxFragments: 32 };
const shared6 = new Ipv6Reassembler(LIMITS6);
let shared6Now = 0;
const rh = new Ipv6Header();

function checkReasm6State(r: Ipv6Reassembler): void {
  expect(r.pending >= 0 && r.pending <= r.maxDatagrams, `pending ${r.pending}`);
  expect(r.heldBytes >= 0 && r.heldBytes <= r.maxBytes, `held ${r.heldBytes}`);
  if (r.pending === 0) expect(r.heldBytes === 0 && r.nextDeadline() === Infinity, 'empty table holds bytes');
}

function frag6(id: number, off: number, more: boolean, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(IPV6_HLEN + 8 + data.length);
  writeIpv6(b, 0, SRC, DST, IPPROTO_FRAGMENT, 8 + data.length, 64);
  writeFragHdr(b, IPV6_HLEN, 17, off, more, id);
  b.set(data, IPV6_HLEN + 8);
  return b;
}

interface Reasm6In { payload: Uint8Array; cuts: number[]; order: number[]; dups: number[]; id: number; overlap: { off: number; len: number } | null }

export const reassembly6Target: Target<Reasm6In> = {
  name: 'ipv6-reassembly',
  arb: fc.record({
    ...fragPlanFields,
    id: fc.integer({ min: 0, max: 0xffffffff }),
    overlap: fc.option(fc.record({ off: fc.integer({ min: 0, max: 370 }).map((x) => x * 8), len: fc.integer({ min: 1, max: 100 }).map((x) => x * 8) }), { freq: 3 }),
  }),
  execStructured(x) {
    // Split at multiples of 8, shuffled, with exact duplicates: the datagram comes out whole and
    // identical, exactly once (RFC 8200 4.5). With an overlapping fragment before the last
    // piece: never completes (RFC 5722).
    let timeouts = 0;
    const r = new Ipv6Reassembler({ ...LIMITS6, maxFragments: 64, onTimeout: () => { timeouts++; } });
    const plan = fragPlan(x);
    if (!plan) return;
    const { pieces, seq } = plan;
    let completed = 0;
    let poisoned = false; // an overlap was seen: nothing may complete afterwards (RFC 5722)
    let disturbed = false; // the extra fragment changed the outcome: no completion count expected
    const seen = new Set<number>();
    for (let k = 0; k < seq.length; k++) {
      const i = seq[k]!;
      if (k === seq.length - 1 && x.overlap && !completed) {
        const o = x.overlap;
        const end = Math.min(o.off + o.len, x.payload.length);
        if (end > o.off && (end - o.off) % 8 === 0) {
          const fb = frag6(x.id, o.off, true, x.payload.subarray(o.off, end));
          expect(rh.parse(fb, 0, fb.length) === Drop.None, 'fragment header');
          const d = r.push(7, rh, fb, 1000);
          inFamily(d, REASM6_FAMILY);
          if (d !== Drop.Ipv6FragmentDuplicate) disturbed = true;
          if (d === Drop.Ipv6FragOverlap) poisoned = true;
          checkReasm6State(r);
        }
      }
      const [s, e] = pieces[i]!;
      if (completed && seen.has(i)) continue; // a duplicate after completion would start a new datagram
      const fb = frag6(x.id, s, e < x.payload.length, x.payload.subarray(s, e));
      expect(rh.parse(fb, 0, fb.length) === Drop.None, 'fragment header');
      const d = r.push(7, rh, fb, 1000);
      inFamily(d, REASM6_FAMILY);
      if (d === Drop.Ipv6FragOverlap) poisoned = true;
      if (!disturbed && seen.has(i) && !completed) expect(d === Drop.Ipv6FragmentDuplicate, `duplicate fragment gave ${d}`);
      if (!disturbed && !seen.has(i)) expect(d === Drop.None, `fragment ${s}..${e} refused: ${d}`);
      seen.add(i);
      if (r.done) {
        completed++;
        expect(!poisoned, 'completed after an overlap');
        expect(Buffer.compare(Buffer.from(r.datagram), Buffer.from(x.payload)) === 0, 'reassembled bytes differ');
        const h = new Ipv6Header();
        expect(h.parse(r.packet, 0, r.packet.length) === Drop.None && h.nextHeader === 17 && h.l4Len === x.payload.length, 'packet re-parse');
      }
      checkReasm6State(r);
    }
    if (!disturbed) expect(completed === 1, `completed ${completed} times`);
    r.expire(1000 + LIMITS6.timeoutUs);
    expect(r.pending === 0 && timeouts <= 1, `after expiry: ${r.pending} pending, ${timeouts} timeouts`);
  },
  corpus: () => {
    const out: Uint8Array[] = [];
    const p = new Uint8Array(200).map((_, i) => i);
    for (let id = 1; id < 4; id++) out.push(frag6(id, 0, true, p.subarray(0, 64)), frag6(id, 64, true, p.subarray(64, 128)), frag6(id, 128, false, p.subarray(128)));
    return out;
  },
  execBytes(b) {
    // Any IPv6 fragment that parses goes to one long-lived reassembler; time moves on.
    if (rh.parse(b, 0, b.length) !== Drop.None || !rh.isFragment) return;
    shared6Now += 50_000;
    const d = shared6.push(b[3]! & 3, rh, b, shared6Now);
    inFamily(d, REASM6_FAMILY);
    if (d !== Drop.None) expect(shared6.ppCode === -1 || d === Drop.Ipv6FragmentInvalid, 'pp without invalid');
    if (d === Drop.None && shared6.done) {
      expect(shared6.packet.length <= 65535 + 40 && shared6.datagram.length === shared6.packet.length - shared6.unfragLen, 'datagram bounds');
      const h = new Ipv6Header();
      const dd = h.parse(shared6.packet, 0, shared6.packet.length);
      expect(dd !== Drop.Ipv6Truncated && dd !== Drop.Ipv6BadVersion, `reassembled packet malformed: ${dd}`);
    }
    if ((shared6Now & 0xfffff) === 0) shared6.expire(shared6Now, (f) => { expect(f.length >= 48, 'first fragment'); });
    checkReasm6State(shared6);
  },
  structuredShare: 0.1,
  maxLen: 1600,
};
