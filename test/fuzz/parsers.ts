/**
 * Fuzz targets for the wire parsers (protocols/): Ethernet/802.1Q/802.1ad, ARP, IPv4 (options,
 * fragments), IPv4 reassembly, ICMP, UDP, TCP with options.
 *
 * Invariants for every input:
 * - the parser returns (never throws) a Drop of its own family, or None;
 * - it reads nothing outside [off, off+len): the same bytes are parsed inside two buffers whose
 *   surroundings differ, and the results must be identical;
 * - on None, the offsets and lengths it reports lie inside the input and are consistent;
 * - structured inputs built with the project's emitters parse back to the fields they were built from.
 */
import * as fc from 'fast-check';
import { Drop } from '../../protocols/drop';
import { EthFrame, ETH_P_8021AD, ETH_P_8021Q, ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6 } from '../../protocols/ethernet';
import { ArpPacket, writeArp } from '../../protocols/arp';
import { Ipv4Header, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../../protocols/ipv4';
import { Ipv4Reassembler } from '../../protocols/reassembly';
import { IcmpPacket } from '../../protocols/icmp';
import { UdpHeader } from '../../protocols/udp';
import { TcpHeader } from '../../protocols/tcp';
import { MAX_SACK_BLOCKS, TcpSegmentOut } from '../../protocols/tcp/types';
import { fold, pseudoSum4, sum16 } from '../../protocols/checksum';
import { Target, layoutOf, fenced, expect, inFamily, PAD, fragPlan, fragPlanFields } from './lib';
import { captureFrames, emitterFrames, ipFrame, tcpFrameOf, udpFrameOf, FrameSpec } from './corpus';


const macArb = fc.uint8Array({ minLength: 6, maxLength: 6 });
const addrArb = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0x0a010101, 0x0a010102, 0xc0a80001, 0xffffffff, 0, 0x7f000001));
const bytesArb = (max: number) => fc.uint8Array({ maxLength: max });

// ------------------------------------------------------------------ Ethernet

const ETH_FAMILY = [Drop.EthTruncated, Drop.VlanTruncated, Drop.EthUnknownType];
const eth = new EthFrame();
const ethSnap = (d: Drop) => `${d}|${eth.vlan}|${eth.outerVlan}|${eth.pcp}|${eth.etherType}|${eth.hdrLen}|${eth.l3Off}|${eth.l3Len}`;

function checkEth(input: Uint8Array): Drop {
  const d = fenced(input, (b, o, n) => eth.parse(b, o, n), ethSnap);
  inFamily(d, ETH_FAMILY);
  if (d === Drop.None || d === Drop.EthUnknownType) {
    expect([14, 18, 22].includes(eth.hdrLen), `hdrLen ${eth.hdrLen}`);
    expect(eth.l3Off === PAD + eth.hdrLen && eth.l3Len === input.length - eth.hdrLen && eth.l3Len >= 0, `l3 ${eth.l3Off}/${eth.l3Len}`);
    expect(eth.vlan >= -1 && eth.vlan <= 4095 && eth.outerVlan >= -1 && eth.outerVlan <= 4095, 'vlan range');
  }
  return d;
}

interface EthIn { dst: Uint8Array; src: Uint8Array; tags: number[]; tagTypes: number[]; type: number; payload: Uint8Array; cut: number }

export const ethernetTarget: Target<EthIn> = {
  name: 'ethernet',
  arb: fc.record({
    dst: macArb, src: macArb,
    tags: fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 3 }),
    tagTypes: fc.array(fc.constantFrom(ETH_P_8021Q, ETH_P_8021AD), { minLength: 3, maxLength: 3 }),
    type: fc.oneof(fc.constantFrom(ETH_P_IPV4, ETH_P_ARP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_8021AD), fc.integer({ min: 0, max: 0xffff })),
    payload: bytesArb(64),
    cut: fc.integer({ min: 0, max: 100 }),
  }),
  toBytes: (x) => buildEth(x),
  execStructured(x) {
    const b = buildEth(x);
    const full = x.cut >= 50;
    const input = full ? b : b.subarray(0, Math.min(b.length, x.cut));
    const d = checkEth(input);
    if (!full) return;
    // A frame built from known tags parses back to them (the parser knows two levels of tags).
    const n = x.tags.length;
    if (n === 0 && x.type !== ETH_P_8021Q && x.type !== ETH_P_8021AD) {
      expect(d === Drop.None || d === Drop.EthUnknownType, `untagged: ${d}`);
      expect(eth.etherType === x.type && eth.vlan === -1 && eth.outerVlan === -1, 'etherType');
    } else if (n === 1 && x.tagTypes[0] === ETH_P_8021Q && x.type !== ETH_P_8021Q && x.type !== ETH_P_8021AD) {
      expect(eth.vlan === (x.tags[0]! & 0xfff) && eth.outerVlan === -1 && eth.etherType === x.type, `one 802.1Q tag: ${ethSnap(d)}`);
    } else if (n === 2 && x.tagTypes[0] === ETH_P_8021AD && x.tagTypes[1] === ETH_P_8021Q && x.type !== ETH_P_8021Q && x.type !== ETH_P_8021AD) {
      expect(eth.outerVlan === (x.tags[0]! & 0xfff) && eth.vlan === (x.tags[1]! & 0xfff) && eth.etherType === x.type, `QinQ: ${ethSnap(d)}`);
    }
  },
  corpus: () => [...captureFrames(), ...emitterFrames()],
  execBytes: (b) => { checkEth(b); },
  structuredShare: 0.1,
};

function buildEth(x: EthIn): Uint8Array {
  const b = new Uint8Array(14 + 4 * x.tags.length + x.payload.length);
  b.set(x.dst, 0); b.set(x.src, 6);
  let p = 12;
  for (let i = 0; i < x.tags.length; i++) {
    const t = x.tagTypes[i]!;
    b[p] = t >>> 8; b[p + 1] = t & 0xff; b[p + 2] = x.tags[i]! >>> 8; b[p + 3] = x.tags[i]! & 0xff;
    p += 4;
  }
  b[p] = x.type >>> 8; b[p + 1] = x.type & 0xff;
  b.set(x.payload, p + 2);
  return b;
}

// ------------------------------------------------------------------ ARP

const ARP_FAMILY = [Drop.ArpTruncated, Drop.ArpBadHardware, Drop.ArpBadProtocol, Drop.ArpBadOp];
const arp = new ArpPacket();
const arpSnap = (d: Drop) => `${d}|${arp.op}|${d === Drop.None ? `${arp.shaOff}|${arp.spa}|${arp.thaOff}|${arp.tpa}` : ''}`;

function checkArpAt(input: Uint8Array, l3: number): Drop {
  const body = input.subarray(Math.min(l3, input.length));
  const d = fenced(body, (b, o, n) => arp.parse(b, o, n), arpSnap);
  inFamily(d, ARP_FAMILY);
  if (d === Drop.None) {
    expect(body.length >= 28, 'ARP accepted shorter than 28 bytes');
    expect(arp.shaOff === PAD + 8 && arp.thaOff === PAD + 18, 'ARP offsets');
  }
  return d;
}

interface ArpIn { htype: number; ptype: number; hlen: number; plen: number; op: number; sha: Uint8Array; spa: number; tha: Uint8Array; tpa: number; pad: number; cut: number }

export const arpTarget: Target<ArpIn> = {
  name: 'arp',
  arb: fc.record({
    htype: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 0xffff })),
    ptype: fc.oneof(fc.constant(0x0800), fc.integer({ min: 0, max: 0xffff })),
    hlen: fc.oneof(fc.constant(6), fc.integer({ min: 0, max: 255 })),
    plen: fc.oneof(fc.constant(4), fc.integer({ min: 0, max: 255 })),
    op: fc.oneof(fc.constantFrom(1, 2), fc.integer({ min: 0, max: 0xffff })),
    sha: macArb, spa: addrArb, tha: macArb, tpa: addrArb,
    pad: fc.integer({ min: 0, max: 32 }),
    cut: fc.integer({ min: 0, max: 60 }),
  }),
  toBytes: (x) => buildArp(x),
  execStructured(x) {
    const b = buildArp(x);
    const input = x.cut >= 28 ? b : b.subarray(0, x.cut);
    const d = checkArpAt(input, 0);
    const std = x.htype === 1 && x.ptype === 0x0800 && x.hlen === 6 && x.plen === 4;
    if (std && x.cut >= 28 && (x.op === 1 || x.op === 2)) {
      expect(d === Drop.None && arp.op === x.op && arp.spa === x.spa >>> 0 && arp.tpa === x.tpa >>> 0, `ARP round trip: ${arpSnap(d)}`);
    }
    if (!std && x.cut >= 8) expect(d === Drop.ArpBadHardware || d === Drop.ArpBadProtocol, `non-Ethernet/IPv4 ARP accepted: ${d}`);
  },
  corpus: () => [...captureFrames(), ...emitterFrames()],
  execBytes: (b) => { checkArpAt(b, layoutL3(b)); },
  structuredShare: 0.1,
};

function buildArp(x: ArpIn): Uint8Array {
  const b = new Uint8Array(28 + x.pad);
  writeArp(b, 0, x.op, x.sha, 0, x.spa, x.tha, 0, x.tpa);
  b[0] = x.htype >>> 8; b[1] = x.htype & 0xff; b[2] = x.ptype >>> 8; b[3] = x.ptype & 0xff; b[4] = x.hlen; b[5] = x.plen;
  return b;
}

/** Network-layer offset of a frame, leniently (0 when it is too short). */
function layoutL3(b: Uint8Array): number {
  if (b.length < 14) return 0;
  let p = 14;
  let t = (b[12]! << 8) | b[13]!;
  for (let k = 0; k < 2 && (t === 0x8100 || t === 0x88a8) && p + 4 <= b.length; k++) { t = (b[p + 2]! << 8) | b[p + 3]!; p += 4; }
  return p;
}

// ------------------------------------------------------------------ IPv4

const IP_FAMILY = [Drop.Ipv4Truncated, Drop.Ipv4BadVersion, Drop.Ipv4BadHeaderLength, Drop.Ipv4BadTotalLength, Drop.Ipv4BadChecksum];
const ip = new Ipv4Header();
const ipSnap = (d: Drop) => d !== Drop.None ? `${d}` :
  `${d}|${ip.hdrLen}|${ip.tos}|${ip.totalLen}|${ip.id}|${ip.df}|${ip.mf}|${ip.fragOff}|${ip.ttl}|${ip.proto}|${ip.src}|${ip.dst}|${ip.payloadOff}|${ip.payloadLen}`;

function checkIp(body: Uint8Array): Drop {
  const d = fenced(body, (b, o, n) => ip.parse(b, o, n), ipSnap);
  inFamily(d, IP_FAMILY);
  if (d === Drop.None) {
    expect(ip.hdrLen >= 20 && ip.hdrLen <= 60 && (ip.hdrLen & 3) === 0, `IHL ${ip.hdrLen}`);
    expect(ip.totalLen >= ip.hdrLen && ip.totalLen <= body.length, `total ${ip.totalLen} of ${body.length}`);
    expect(ip.payloadOff === PAD + ip.hdrLen && ip.payloadLen === ip.totalLen - ip.hdrLen, 'payload bounds');
    expect(ip.fragOff <= 65528 && ip.fragOff % 8 === 0, 'fragment offset');
    expect(fold(sum16(body, 0, ip.hdrLen)) === 0, 'accepted with a bad header checksum');
  }
  return d;
}

interface IpIn { spec: FrameSpec; proto: number; payload: Uint8Array; options: Uint8Array; ihlDelta: number; totalDelta: number; breakSum: boolean; version: number }

/** IPv4 options as a list of well-formed or raw options (RFC 791 3.1), padded to 4 bytes. */
const ipOptionsArb = fc.array(fc.oneof(
  fc.constant(Uint8Array.of(1)), // NOP
  fc.constant(Uint8Array.of(0)), // EOL
  fc.integer({ min: 1, max: 9 }).map((n) => { const o = new Uint8Array(3 + 4 * n); o[0] = 7; o[1] = o.length; o[2] = 4; return o; }), // record route
  fc.integer({ min: 1, max: 4 }).map((n) => { const o = new Uint8Array(4 + 4 * n); o[0] = 68; o[1] = o.length; o[2] = 5; return o; }), // timestamp
  fc.constant(Uint8Array.of(148, 4, 0, 0)), // router alert
  fc.uint8Array({ minLength: 1, maxLength: 12 }),
), { maxLength: 6 }).map((parts) => {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const o = new Uint8Array(Math.min(40, (n + 3) & ~3));
  let p = 0;
  for (const x of parts) { const k = Math.min(x.length, o.length - p); o.set(x.subarray(0, k), p); p += k; }
  return o;
});

const specArb: fc.Arbitrary<FrameSpec> = fc.record({
  vlan: fc.constantFrom(-1, 10, 20),
  ipSrc: addrArb, ipDst: addrArb,
  ttl: fc.integer({ min: 0, max: 255 }),
  id: fc.integer({ min: 0, max: 0xffff }),
  flagsFrag: fc.oneof(fc.constant(0), fc.constant(0x4000), fc.integer({ min: 0, max: 0xffff })),
  tos: fc.integer({ min: 0, max: 255 }),
});

export const ipv4Target: Target<IpIn> = {
  name: 'ipv4',
  arb: fc.record({
    spec: specArb,
    proto: fc.oneof(fc.constantFrom(1, 6, 17), fc.integer({ min: 0, max: 255 })),
    payload: bytesArb(80),
    options: ipOptionsArb,
    ihlDelta: fc.oneof(fc.constant(0), fc.integer({ min: -5, max: 15 })),
    totalDelta: fc.oneof(fc.constant(0), fc.integer({ min: -30, max: 30 })),
    breakSum: fc.boolean(),
    version: fc.oneof(fc.constant(4), fc.integer({ min: 0, max: 15 })),
  }),
  toBytes: (x) => buildIp(x),
  execStructured(x) {
    const f = buildIp(x);
    const hl = x.spec.vlan! >= 0 ? 18 : 14;
    const body = f.subarray(hl);
    const d = checkIp(body);
    const clean = x.ihlDelta === 0 && x.totalDelta === 0 && !x.breakSum && x.version === 4;
    if (clean) {
      expect(d === Drop.None, `valid header refused: ${d}`);
      expect(ip.hdrLen === 20 + x.options.length && ip.src === x.spec.ipSrc! >>> 0 && ip.dst === x.spec.ipDst! >>> 0 && ip.proto === x.proto &&
        ip.id === x.spec.id && ip.ttl === x.spec.ttl && ip.payloadLen === x.payload.length &&
        ip.fragOff === (x.spec.flagsFrag! & 0x1fff) * 8 && ip.mf === ((x.spec.flagsFrag! & 0x2000) !== 0), `round trip: ${ipSnap(d)}`);
    }
    if (x.breakSum && x.version === 4 && x.ihlDelta === 0 && x.totalDelta === 0) expect(d === Drop.Ipv4BadChecksum, `broken checksum accepted: ${d}`);
    if (x.version !== 4) expect(d === Drop.Ipv4BadVersion, `version ${x.version} accepted: ${d}`);
  },
  corpus: () => [...captureFrames(), ...emitterFrames()],
  execBytes: (b) => { checkIp(b.subarray(Math.min(layoutL3(b), b.length))); },
  structuredShare: 0.1,
};

function buildIp(x: IpIn): Uint8Array {
  const f = ipFrame({ ...x.spec, options: x.options }, x.proto, x.payload.length, (b, o) => b.set(x.payload, o));
  const hl = x.spec.vlan! >= 0 ? 18 : 14;
  if (x.ihlDelta || x.totalDelta || x.version !== 4) {
    const ihl = ((f[hl]! & 15) + x.ihlDelta) & 15;
    f[hl] = (x.version << 4) | ihl;
    const total = (((f[hl + 2]! << 8) | f[hl + 3]!) + x.totalDelta) & 0xffff;
    f[hl + 2] = total >>> 8; f[hl + 3] = total & 0xff;
    const ihlB = Math.min(ihl * 4, f.length - hl);
    f[hl + 10] = 0; f[hl + 11] = 0;
    const c = fold(sum16(f, hl, ihlB));
    f[hl + 10] = c >>> 8; f[hl + 11] = c & 0xff;
  }
  if (x.breakSum) f[hl + 10] ^= 0x5a;
  return f;
}

// ------------------------------------------------------------------ IPv4 reassembly

interface ReasmIn { payload: Uint8Array; cuts: number[]; order: number[]; dups: number[]; id: number; proto: number; bogus: { off: number; len: number; mf: boolean }[] }

const REASM_LIMITS = { maxDatagrams: 8, maxBytes: 16 * 1024, timeoutUs: 30_000_000, maxFragments: 32 };
const shared = new Ipv4Reassembler(REASM_LIMITS);
let sharedNow = 0;
const rip = new Ipv4Header();

function checkReasmState(r: Ipv4Reassembler): void {
  expect(r.pending >= 0 && r.pending <= r.maxDatagrams, `pending ${r.pending}`);
  expect(r.heldBytes >= 0 && r.heldBytes <= r.maxBytes, `held ${r.heldBytes} > ${r.maxBytes}`);
  if (r.pending === 0) expect(r.heldBytes === 0, `held ${r.heldBytes} with nothing pending`);
}

const REASM_FAMILY = [Drop.Ipv4FragmentInvalid, Drop.Ipv4ReassemblyOverflow, Drop.Ipv4ReassemblyOverlap, Drop.Ipv4FragmentDuplicate, Drop.Ipv4ReassemblyTimeout];

/** Makes one IPv4 fragment header+payload for the reassembler. */
function fragBytes(id: number, proto: number, off: number, mf: boolean, data: Uint8Array): Uint8Array {
  return ipFrame({ vlan: -1, ipSrc: 0x0a010102, ipDst: 0x0a010101, id, flagsFrag: (mf ? 0x2000 : 0) | (off >> 3) }, proto, data.length, (b, o) => b.set(data, o)).subarray(14);
}

export const reassemblyTarget: Target<ReasmIn> = {
  name: 'ipv4-reassembly',
  arb: fc.record({
    ...fragPlanFields,
    id: fc.integer({ min: 0, max: 0xffff }),
    proto: fc.constantFrom(1, 6, 17, 99),
    bogus: fc.array(fc.record({ off: fc.integer({ min: 0, max: 8191 }).map((x) => x * 8), len: fc.integer({ min: 0, max: 1600 }), mf: fc.boolean() }), { maxLength: 2 }),
  }),
  execStructured(x) {
    // Split at multiples of 8, deliver in a shuffled order with exact duplicates: the datagram
    // must come out whole and identical, exactly once (RFC 791, RFC 815).
    const r = new Ipv4Reassembler({ ...REASM_LIMITS, maxFragments: 64 });
    const plan = fragPlan(x);
    if (!plan) return;
    const { pieces, seq } = plan;
    let completed = 0;
    let result: Uint8Array | null = null;
    const seen = new Set<number>();
    for (const i of seq) {
      const [s, e] = pieces[i]!;
      const fb = fragBytes(x.id, x.proto, s, e < x.payload.length, x.payload.subarray(s, e));
      expect(rip.parse(fb, 0, fb.length) === Drop.None, 'fragment header');
      const d = r.push(7, rip, fb, 1000);
      if (seen.has(i)) {
        if (completed) continue; // a duplicate after completion starts a new datagram: fine
        expect(d === Drop.Ipv4FragmentDuplicate, `duplicate fragment gave ${d}`);
      } else expect(d === Drop.None, `fragment ${s}..${e} refused: ${d}`);
      seen.add(i);
      if (r.done) { completed++; result = r.datagram.slice(); expect(r.doneProto === x.proto && r.doneId === x.id, 'key of the result'); }
      checkReasmState(r);
    }
    expect(completed === 1, `completed ${completed} times`);
    expect(result !== null && Buffer.compare(Buffer.from(result), Buffer.from(x.payload)) === 0, 'reassembled bytes differ');
    // Bogus fragments afterwards: never a throw, state stays within bounds.
    for (const g of x.bogus) {
      const fb = fragBytes(x.id, x.proto, g.off, g.mf, x.payload.subarray(0, Math.min(g.len, x.payload.length)));
      if (rip.parse(fb, 0, fb.length) !== Drop.None) continue;
      const d = r.push(7, rip, fb, 2000);
      inFamily(d, REASM_FAMILY);
      checkReasmState(r);
    }
  },
  corpus: () => {
    const out: Uint8Array[] = [];
    const p = new Uint8Array(200).map((_, i) => i);
    for (let id = 1; id < 4; id++) {
      out.push(fragBytes(id, 17, 0, true, p.subarray(0, 64)), fragBytes(id, 17, 64, true, p.subarray(64, 128)), fragBytes(id, 17, 128, false, p.subarray(128)));
    }
    return out;
  },
  execBytes(b) {
    // Any IPv4 header that parses goes to one long-lived reassembler; time moves on.
    if (rip.parse(b, 0, b.length) !== Drop.None) return;
    sharedNow += 50_000;
    const d = shared.push(b[4]! & 3, rip, b, sharedNow);
    inFamily(d, REASM_FAMILY);
    if (d === Drop.None && shared.done) {
      expect(shared.datagram.length === shared.doneHdr.payloadLen, 'datagram length');
      expect(shared.doneHdr.totalLen <= 65535 + 60, `datagram of ${shared.doneHdr.totalLen} bytes`);
    }
    if ((sharedNow & 0xfffff) === 0) shared.expire(sharedNow);
    checkReasmState(shared);
  },
  structuredShare: 0.1,
  maxLen: 1600,
};

// ------------------------------------------------------------------ ICMP

const ICMP_FAMILY = [Drop.IcmpTruncated, Drop.IcmpBadChecksum, Drop.IcmpUnknownType];
const icmp = new IcmpPacket();
const icmpSnap = (d: Drop) => `${d}|${icmp.type}|${icmp.code}|${icmp.id}|${icmp.seq}|${icmp.nextHopMtu}|${icmp.innerOff}|${icmp.innerLen}|${icmp.innerProto}|${icmp.innerSrc}|${icmp.innerDst}|${icmp.innerL4Off}`;

function checkIcmp(body: Uint8Array): Drop {
  const d = fenced(body, (b, o, n) => icmp.parse(b, o, n), icmpSnap);
  inFamily(d, ICMP_FAMILY);
  if (d === Drop.None) {
    expect(fold(sum16(body, 0, body.length)) === 0, 'accepted with a bad checksum');
    if (icmp.type === 3 || icmp.type === 11 || icmp.type === 12) {
      expect(icmp.innerL4Off >= PAD + 28 && icmp.innerL4Off + 8 <= PAD + body.length, `quote bounds ${icmp.innerL4Off}`);
    }
  }
  return d;
}

interface IcmpIn { type: number; code: number; rest: number; quote: IpIn | null; data: Uint8Array; breakSum: boolean }

export const icmpTarget: Target<IcmpIn> = {
  name: 'icmp',
  arb: fc.record({
    type: fc.oneof(fc.constantFrom(0, 3, 8, 11, 12), fc.integer({ min: 0, max: 255 })),
    code: fc.oneof(fc.constantFrom(0, 1, 3, 4), fc.integer({ min: 0, max: 255 })),
    rest: fc.integer({ min: 0, max: 0xffffffff }),
    quote: fc.option(ipv4Target.arb, { freq: 3 }),
    data: bytesArb(64),
    breakSum: fc.boolean(),
  }),
  toBytes: (x) => buildIcmp(x),
  execStructured(x) {
    const f = buildIcmp(x);
    const d = checkIcmp(f);
    if (x.breakSum) expect(d === Drop.IcmpBadChecksum, `broken checksum accepted: ${d}`);
    else if (x.type === 0 || x.type === 8) expect(d === Drop.None && icmp.id === x.rest >>> 16 && icmp.seq === (x.rest & 0xffff), `echo: ${icmpSnap(d)}`);
    else if (x.type === 3 && x.quote && x.quote.version === 4 && x.quote.ihlDelta === 0 && x.quote.totalDelta === 0 && x.quote.payload.length >= 8) {
      expect(d === Drop.None && icmp.innerSrc === x.quote.spec.ipSrc! >>> 0 && icmp.innerDst === x.quote.spec.ipDst! >>> 0 && icmp.innerProto === x.quote.proto, `error quote: ${icmpSnap(d)}`);
      if (x.code === 4) expect(icmp.nextHopMtu === (x.rest & 0xffff), 'next-hop MTU');
    }
  },
  corpus: () => [...captureFrames(), ...emitterFrames()].map((f) => l4Of(f, IPPROTO_ICMP)).filter((x): x is Uint8Array => x !== null),
  execBytes: (b) => { checkIcmp(b); },
  structuredShare: 0.1,
  maxLen: 700,
};

function buildIcmp(x: IcmpIn): Uint8Array {
  const q = x.quote ? buildIp(x.quote).subarray(x.quote.spec.vlan! >= 0 ? 18 : 14) : x.data;
  const b = new Uint8Array(8 + q.length);
  b[0] = x.type; b[1] = x.code;
  b[4] = x.rest >>> 24; b[5] = x.rest >>> 16; b[6] = x.rest >>> 8; b[7] = x.rest & 0xff;
  b.set(q, 8);
  const c = fold(sum16(b, 0, b.length));
  b[2] = c >>> 8; b[3] = c & 0xff;
  if (x.breakSum) b[2] ^= 0x11;
  return b;
}

/** The L4 bytes of a frame carrying `proto` (per the IPv4 total length), or null. */
function l4Of(f: Uint8Array, proto: number): Uint8Array | null {
  const L = layoutOf(f, f.length);
  if (L.l3 < 0 || L.l4 < 0 || L.proto !== proto) return null;
  return f.slice(L.l4, L.l4 + L.l4Len);
}

// ------------------------------------------------------------------ UDP

const UDP_FAMILY = [Drop.UdpTruncated, Drop.UdpBadLength, Drop.UdpBadChecksum];
const udp = new UdpHeader();
const udpSnap = (d: Drop) => `${d}|${udp.srcPort}|${udp.dstPort}|${udp.length}|${udp.checksum}|${udp.payloadOff}|${udp.payloadLen}`;
const SRC = 0x0a010102, DST = 0x0a010101;

function checkUdp(body: Uint8Array, src = SRC, dst = DST): Drop {
  const d = fenced(body, (b, o, n) => udp.parse(b, o, n, src, dst), udpSnap);
  inFamily(d, UDP_FAMILY);
  if (d === Drop.None) {
    expect(udp.length >= 8 && udp.length <= body.length, `length ${udp.length} of ${body.length}`);
    expect(udp.payloadOff === PAD + 8 && udp.payloadLen === udp.length - 8, 'payload bounds');
    if (udp.checksum !== 0) expect(fold(sum16(body, 0, udp.length, pseudoSum4(src, dst, 17, udp.length))) === 0, 'accepted with a bad checksum');
  }
  return d;
}

interface UdpIn { sport: number; dport: number; data: Uint8Array; lenDelta: number; sumMode: number; src: number; dst: number; pad: number }

export const udpTarget: Target<UdpIn> = {
  name: 'udp',
  arb: fc.record({
    sport: fc.integer({ min: 0, max: 0xffff }), dport: fc.integer({ min: 0, max: 0xffff }),
    data: bytesArb(64),
    lenDelta: fc.oneof(fc.constant(0), fc.integer({ min: -12, max: 12 })),
    sumMode: fc.integer({ min: 0, max: 2 }), // 0 correct, 1 none (zero), 2 wrong
    src: addrArb, dst: addrArb,
    pad: fc.integer({ min: 0, max: 8 }),
  }),
  toBytes: (x) => buildUdp(x),
  execStructured(x) {
    const b = buildUdp(x);
    const d = checkUdp(b, x.src >>> 0, x.dst >>> 0);
    if (x.lenDelta === 0) {
      if (x.sumMode === 2) expect(d === Drop.UdpBadChecksum, `wrong checksum accepted: ${d}`);
      else expect(d === Drop.None && udp.srcPort === x.sport && udp.dstPort === x.dport && udp.payloadLen === x.data.length, `round trip: ${udpSnap(d)}`);
    }
    if (8 + x.data.length + x.lenDelta > b.length || 8 + x.data.length + x.lenDelta < 8) expect(d === Drop.UdpBadLength, `bad length accepted: ${d}`);
  },
  corpus: () => [...captureFrames(), ...emitterFrames()].map((f) => l4Of(f, IPPROTO_UDP)).filter((x): x is Uint8Array => x !== null),
  execBytes: (b) => { checkUdp(b); },
  structuredShare: 0.1,
  maxLen: 700,
};

function buildUdp(x: UdpIn): Uint8Array {
  const f = udpFrameOf({ vlan: -1, ipSrc: x.src >>> 0, ipDst: x.dst >>> 0 }, x.sport, x.dport, x.data);
  const b = new Uint8Array(f.length - 34 + x.pad);
  b.set(f.subarray(34));
  if (x.lenDelta) {
    const l = (8 + x.data.length + x.lenDelta) & 0xffff;
    b[4] = l >>> 8; b[5] = l & 0xff;
  }
  if (x.sumMode === 1) { b[6] = 0; b[7] = 0; }
  if (x.sumMode === 2) { b[6] ^= 0x21; if (b[6] === 0 && b[7] === 0) b[7] = 1; }
  return b;
}

// ------------------------------------------------------------------ TCP

const TCP_FAMILY = [Drop.TcpTruncated, Drop.TcpBadOffset, Drop.TcpBadChecksum];
const tcp = new TcpHeader();
const tcpSnap = (d: Drop) => d !== Drop.None ? `${d}` : `${d}|${tcp.srcPort}|${tcp.dstPort}|${tcp.seq}|${tcp.ack}|${tcp.hdrLen}|${tcp.flags}|${tcp.window}|${tcp.urgent}|` +
  `${tcp.mss}|${tcp.wscale}|${tcp.sackOk}|${tcp.hasTs}|${tcp.tsVal}|${tcp.tsEcr}|${tcp.sackCount}|${tcp.sackStart.join(',')}|${tcp.sackEnd.join(',')}|${tcp.badOptions}|${tcp.payloadOff}|${tcp.payloadLen}`;

function checkTcp(body: Uint8Array, src = SRC, dst = DST, verify = true): Drop {
  const d = fenced(body, (b, o, n) => tcp.parse(b, o, n, src, dst, verify), tcpSnap);
  inFamily(d, TCP_FAMILY);
  if (d === Drop.None) {
    expect(tcp.hdrLen >= 20 && tcp.hdrLen <= 60 && tcp.hdrLen <= body.length, `hdrLen ${tcp.hdrLen}`);
    expect(tcp.payloadOff === PAD + tcp.hdrLen && tcp.payloadLen === body.length - tcp.hdrLen, 'payload bounds');
    expect(tcp.sackCount >= 0 && tcp.sackCount <= MAX_SACK_BLOCKS, `sackCount ${tcp.sackCount}`);
    expect(tcp.wscale >= -1 && tcp.wscale <= 14, `wscale ${tcp.wscale}`);
    expect(tcp.mss >= 0 && tcp.mss <= 0xffff, `mss ${tcp.mss}`);
    if (verify) expect(fold(sum16(body, 0, body.length, pseudoSum4(src, dst, 6, body.length))) === 0, 'accepted with a bad checksum');
  }
  return d;
}

interface TcpIn { seg: { sport: number; dport: number; seq: number; ack: number; flags: number; window: number; mss: number; wscale: number; sackOk: boolean; ts: [number, number] | null; sacks: [number, number][] }; data: Uint8Array; raw: Uint8Array | null; doff: number }

/** Raw option lists: well-formed kinds with right or wrong lengths, and garbage. */
const tcpRawOptionsArb = fc.array(fc.oneof(
  fc.constant(Uint8Array.of(1)), fc.constant(Uint8Array.of(0)),
  fc.integer({ min: 0, max: 0xffff }).map((m) => Uint8Array.of(2, 4, m >>> 8, m & 0xff)),
  fc.integer({ min: 0, max: 255 }).map((s) => Uint8Array.of(3, 3, s)),
  fc.constant(Uint8Array.of(4, 2)),
  fc.integer({ min: 0, max: 4 }).map((n) => { const o = new Uint8Array(2 + 8 * n); o[0] = 5; o[1] = o.length; return o; }),
  fc.constant(Uint8Array.of(8, 10, 0, 0, 0, 1, 0, 0, 0, 2)),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 10 })).map(([k, l, r]) => Uint8Array.from([k, l, ...r])),
), { maxLength: 8 }).map((parts) => {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const o = new Uint8Array(Math.min(40, (n + 3) & ~3));
  let p = 0;
  for (const x of parts) { const k = Math.min(x.length, o.length - p); o.set(x.subarray(0, k), p); p += k; }
  return o;
});

export const tcpTarget: Target<TcpIn> = {
  name: 'tcp',
  arb: fc.record({
    seg: fc.record({
      sport: fc.integer({ min: 0, max: 0xffff }), dport: fc.integer({ min: 0, max: 0xffff }),
      seq: fc.integer({ min: 0, max: 0xffffffff }), ack: fc.integer({ min: 0, max: 0xffffffff }),
      flags: fc.integer({ min: 0, max: 255 }), window: fc.integer({ min: 0, max: 0xffff }),
      mss: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 0xffff })),
      wscale: fc.integer({ min: -1, max: 20 }),
      sackOk: fc.boolean(),
      ts: fc.option(fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }))),
      sacks: fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 4 }),
    }),
    data: bytesArb(48),
    raw: fc.option(tcpRawOptionsArb, { freq: 2 }),
    doff: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 15 })),
  }),
  toBytes: (x) => buildTcp(x),
  execStructured(x) {
    const b = buildTcp(x);
    const d = checkTcp(b);
    if (x.raw === null && x.doff < 0) {
      const s = x.seg;
      expect(d === Drop.None, `valid segment refused: ${d}`);
      const nSack = Math.min(s.sacks.length, Math.floor((40 - ((s.mss ? 4 : 0) + (s.ts ? 12 : s.sackOk ? 4 : 0) + (s.wscale >= 0 ? 4 : 0)) - 4) / 8));
      expect(tcp.srcPort === s.sport && tcp.dstPort === s.dport && tcp.seq === s.seq && tcp.ack === s.ack && tcp.flags === s.flags &&
        tcp.window === s.window && tcp.mss === s.mss && tcp.wscale === (s.wscale >= 0 ? Math.min(s.wscale & 0xff, 14) : -1) &&
        tcp.sackOk === s.sackOk && tcp.hasTs === (s.ts !== null) && (!s.ts || (tcp.tsVal === s.ts[0] && tcp.tsEcr === s.ts[1])) &&
        tcp.sackCount === (s.sacks.length ? nSack : 0) && !tcp.badOptions && tcp.payloadLen === x.data.length, `round trip: ${tcpSnap(d)}`);
      for (let i = 0; i < tcp.sackCount; i++) expect(tcp.sackStart[i] === s.sacks[i]![0] && tcp.sackEnd[i] === s.sacks[i]![1], 'SACK block');
    }
    if (x.doff >= 0 && x.doff < 5) expect(d === Drop.TcpBadOffset, `data offset ${x.doff} accepted: ${d}`);
  },
  corpus: () => [...captureFrames(), ...emitterFrames()].map((f) => l4Of(f, IPPROTO_TCP)).filter((x): x is Uint8Array => x !== null),
  execBytes: (b) => {
    // The same bytes without and with the checksum check (checksum offload skips it).
    checkTcp(b, SRC, DST, false);
    checkTcp(b);
  },
  structuredShare: 0.15,
  maxLen: 700,
};

function buildTcp(x: TcpIn): Uint8Array {
  const s = new TcpSegmentOut();
  const g = x.seg;
  s.srcPort = g.sport; s.dstPort = g.dport; s.seq = g.seq; s.ack = g.ack; s.flags = g.flags; s.window = g.window;
  s.mss = g.mss; s.wscale = g.wscale; s.sackOk = g.sackOk;
  if (g.ts) { s.hasTs = true; s.tsVal = g.ts[0]; s.tsEcr = g.ts[1]; }
  s.sackCount = g.sacks.length;
  g.sacks.forEach(([a, b], i) => { s.sackStart[i] = a; s.sackEnd[i] = b; });
  let f = tcpFrameOf({ vlan: -1, ipSrc: SRC, ipDst: DST }, s, x.data).slice(34);
  if (x.raw !== null) {
    // Replace the options by the raw list.
    const nb = new Uint8Array(20 + x.raw.length + x.data.length);
    nb.set(f.subarray(0, 20));
    nb.set(x.raw, 20);
    nb.set(x.data, 20 + x.raw.length);
    nb[12] = ((20 + x.raw.length) >> 2) << 4;
    f = nb;
  }
  if (x.doff >= 0) f[12] = x.doff << 4;
  f[16] = 0; f[17] = 0;
  const c = fold(sum16(f, 0, f.length, pseudoSum4(SRC, DST, 6, f.length)));
  f[16] = c >>> 8; f[17] = c & 0xff;
  return f;
}
