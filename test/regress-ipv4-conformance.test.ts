/**
 * IPv4 and ICMP conformance (RFC 791, 792, 1122), engine under virtual time, frames in and out at
 * the wire. Each case is a deviation found against the RFCs and Linux as a peer:
 *
 * - Reassembly timeout: RFC 1122 3.3.2 (and RFC 792) says a datagram whose reassembly times out
 *   MUST be discarded and, if fragment zero was received, answered with Time Exceeded code 1
 *   (Linux: ip_expire). The stack discarded it silently.
 * - RFC 1122 3.2.2: no ICMP error about a datagram sent as a link-layer broadcast or multicast
 *   (Linux: only about PACKET_HOST frames). A UDP datagram to a closed port of our unicast address
 *   in a broadcast frame was answered with port unreachable.
 * - RFC 826 merge with several VSes on one (device, VLAN): a broadcast ARP (gratuitous, or a request
 *   for another VS's address) refreshed the sender's entry of the first VS only; every VS that
 *   heard it, each with its own cache, now updates an entry it has (and creates none).
 * - An ARP sender hardware address that is a group address (ff:ff:ff:ff:ff:ff, multicast) was
 *   learned: unicast traffic to that neighbor then went to every node (RFC 1812 3.3.2 forbids
 *   believing it). It is a counted drop (link-addr-group).
 * - An unsolicited ARP reply (one for a neighbor the VS has no entry for) created a REACHABLE entry:
 *   anyone could plant the gateway's entry before the VS asked for it. As Linux (arp_accept 0), a
 *   reply now updates an existing entry only; a broadcast reply does not confirm reachability.
 * - An ARP request whose sender protocol address no host may hold (the subnet broadcast, multicast,
 *   loopback, 240/4, 0/8 other than a probe's 0.0.0.0) was answered, and learned when inside the
 *   subnet (10.1.1.255). Linux answers none of them (the sender is a martian); neither does the
 *   stack now (arp-bad-sender).
 * - IPv4 options were skipped unread: a malformed option (length 0 or beyond the header, a Record
 *   Route or Timestamp pointer below its minimum or with no room for its entry, a repeated option,
 *   a full Timestamp whose overflow count is 15) was taken. Linux (ip_options_compile) answers
 *   Parameter Problem pointing at the octet at fault and drops it (RFC 792, RFC 1122 3.2.2.5); so
 *   does the stack now (ipv4-bad-option). Source-routed datagrams (loose or strict) are discarded
 *   (RFC 7126 4.3.4/4.4.4, BCP 186: by default; Linux accept_source_route 0; one with hops to go
 *   anyway, RFC 1122 3.3.5), counted as ipv4-source-route; they were taken and answered without
 *   the route. Well-formed and unknown options are still taken (RFC 1122 3.2.1.8).
 * - RFC 1122 3.2.2.6: a Record Route option in an Echo Request SHOULD be updated with this host
 *   and returned in the Echo Reply (Linux ip_options_echo records its address as the request
 *   arrives and again as the reply leaves). The reply carried no options.
 * - RFC 1122 3.2.2.1: protocol unreachable for a protocol not supported. A datagram of an unknown
 *   protocol that came in fragments was dropped unanswered once reassembled (one that came whole
 *   was answered).
 * - A priority-tagged frame (802.1Q tag with VLAN id 0, IEEE 802.1Q 9.6) belongs to the untagged
 *   link (Linux receives it on the device itself); it was dropped as vlan-no-link.
 * - ICMP Timestamp (RFC 792, RFC 1122 3.2.2.8; Linux answers it): requests were dropped as an
 *   unknown type. A Timestamp Reply now carries the request's identifier, sequence number and
 *   originate timestamp, and the time in ms since midnight UT (non-standard, high bit set, when the
 *   engine has no wall clock); not to a broadcast.
 * - Martian sources: 0.0.0.0 was refused, the rest of 0/8 ({0, host}: RFC 1122 3.2.1.3(b), only
 *   while a host learns its own address; Linux: ipv4_is_zeronet, a martian) was taken and answered.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Burst, parseMac } from '../driver/types';
import { FramePool } from '../umem/pool';
import { Engine } from '../stack/engine';
import { ip, arpFrame, udpFrame, fragmentFrame, push, drain, BCAST, ZERO, Decoded, icmpEchoFrame } from './lib/frames';
import { pattern } from './lib/world';
import { NSTATE_NAMES } from '../stack/neighbor';

const DEV_MAC = parseMac('02:00:00:00:00:01');
const VS_MAC = parseMac('02:00:00:00:01:01');
const PEER = parseMac('02:00:00:00:0a:02');
const S = 1_000_000;

function setup(opts: ConstructorParameters<typeof Engine>[0] = {}) {
  const pool = new FramePool({ frameSize: 2048, frameCount: 256 });
  const e = new Engine(opts);
  e.addDevice({ name: 'eth0', pool, mac: DEV_MAC, mtu: 1500 });
  const vs = e.createVs('t');
  const link = e.addLink(vs, { device: 'eth0', vlan: 10, mac: VS_MAC });
  e.addAddress(vs, 'eth0.10', '10.1.1.1/24');
  drain(pool, e.devices[0]!.out);
  return { pool, e, vs, link, burst: new Burst() };
}
type Setup = ReturnType<typeof setup>;

function input(s: Setup, frames: Uint8Array[], now: number): Decoded[] {
  for (const f of frames) push(s.pool, s.burst, f);
  if (s.burst.n) s.e.input(0, s.burst, now);
  s.e.advance(now);
  s.e.flushEvents();
  return drain(s.pool, s.e.devices[0]!.out);
}

/** The peer 10.1.1.2 makes itself known (an ARP request for our address): its entry exists. */
function knownPeer(s: Setup, now: number): void {
  const out = input(s, [arpFrame(1, 10, BCAST, PEER, '10.1.1.2', ZERO, '10.1.1.1')], now);
  assert.is(out.filter((d) => d.arp?.op === 2).length, 1, 'ARP answered');
}

const u16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;

test('reassembly timeout after fragment zero came: one Time Exceeded code 1 quoting it (RFC 1122 3.3.2)', () => {
  const s = setup();
  knownPeer(s, 1000);
  const full = udpFrame(10, VS_MAC, PEER, '10.1.1.2', 5555, '10.1.1.1', 4000, pattern(2000, 3));
  const frags = fragmentFrame(full, 10, 1024, 0x4242);
  assert.is(frags.length, 2);
  // Fragment zero only; the rest never comes.
  assert.equal(input(s, [frags[0]!], 2000), [], 'nothing answered while waiting');
  assert.equal(input(s, [], 2000 + 29 * S), [], 'nothing before the timeout');
  const out = input(s, [], 2000 + 31 * S);
  const te = out.filter((d) => d.icmp?.type === 11);
  assert.is(te.length, 1, 'one Time Exceeded');
  const d = te[0]!;
  assert.is(d.icmp!.code, 1, 'code 1: fragment reassembly time exceeded');
  assert.is(d.ipv4!.src, ip('10.1.1.1'));
  assert.is(d.ipv4!.dst, ip('10.1.1.2'));
  assert.is(d.dst, '02:00:00:00:0a:02', 'to the peer');
  const q = d.icmp!.data; // the quoted datagram
  assert.ok(q.length >= 28, 'IP header and at least 8 bytes');
  assert.is(q[0]! >>> 4, 4);
  assert.is(u16(q, 4), 0x4242, 'the datagram\'s identification');
  assert.is(q[9], 17, 'its protocol');
  assert.equal([...q.subarray(12, 20)], [10, 1, 1, 2, 10, 1, 1, 1], 'its addresses');
  assert.is(u16(q, 6) & 0x1fff, 0, 'fragment zero');
  assert.equal([u16(q, 20), u16(q, 22)], [5555, 4000], 'its UDP header');
  assert.is(s.e.counters.toJSON().drops.reasons['ipv4-reassembly-timeout'], 1);
  assert.is(s.pool.check().held, 0);
});

test('reassembly timeout without fragment zero: no ICMP (RFC 1122 3.3.2)', () => {
  const s = setup();
  knownPeer(s, 1000);
  const full = udpFrame(10, VS_MAC, PEER, '10.1.1.2', 5555, '10.1.1.1', 4000, pattern(3000, 4));
  const frags = fragmentFrame(full, 10, 1024, 0x77);
  assert.equal(input(s, [frags[1]!, frags[2]!], 2000), []);
  assert.equal(input(s, [], 2000 + 31 * S), [], 'silently discarded');
  assert.is(s.e.counters.toJSON().drops.reasons['ipv4-reassembly-timeout'], 1);
});

test('a late fragment that finds its datagram timed out: Time Exceeded code 1 too', () => {
  const s = setup();
  knownPeer(s, 1000);
  const full = udpFrame(10, VS_MAC, PEER, '10.1.1.2', 5555, '10.1.1.1', 4000, pattern(3000, 5));
  const frags = fragmentFrame(full, 10, 1024, 0x99);
  input(s, [frags[0]!], 2000);
  // The next step is the late fragment's own (no advance in between).
  push(s.pool, s.burst, frags[1]!);
  s.e.input(0, s.burst, 2000 + 31 * S);
  const out = drain(s.pool, s.e.devices[0]!.out);
  assert.is(out.filter((d) => d.icmp?.type === 11 && d.icmp.code === 1).length, 1);
});

test('no Time Exceeded about a datagram to a broadcast address (RFC 1122 3.2.2)', () => {
  const s = setup();
  knownPeer(s, 1000);
  const full = udpFrame(10, BCAST, PEER, '10.1.1.2', 5555, '10.1.1.255', 4000, pattern(2000, 6));
  const frags = fragmentFrame(full, 10, 1024, 0x55);
  input(s, [frags[0]!], 2000);
  assert.equal(input(s, [], 2000 + 31 * S), []);
  assert.is(s.e.counters.toJSON().drops.reasons['ipv4-reassembly-timeout'], 1, 'it was held, then discarded');
});

test('Time Exceeded is rate-limited with the other ICMP errors', () => {
  const s = setup({ icmpBurst: 10 });
  knownPeer(s, 1000);
  for (let i = 0; i < 40; i++) {
    const full = udpFrame(10, VS_MAC, PEER, '10.1.1.2', 5555, '10.1.1.1', 4000, pattern(2000, i));
    input(s, [fragmentFrame(full, 10, 1024, 0x1000 + i)[0]!], 2000);
  }
  const out = input(s, [], 2000 + 31 * S);
  const n = out.filter((d) => d.icmp?.type === 11).length;
  assert.is(n, 10, 'the burst, then none');
  assert.ok((s.vs.counters.toJSON().drops.reasons['icmp-rate-limited'] ?? 0) > 0, 'the rest counted');
});

test('no port or protocol unreachable about a frame sent to a link-layer broadcast or multicast (RFC 1122 3.2.2)', () => {
  const s = setup();
  knownPeer(s, 1000);
  const data = new TextEncoder().encode('x');
  for (const dst of [BCAST, parseMac('01:00:5e:00:00:01')]) {
    const f = udpFrame(10, dst, PEER, '10.1.1.2', 5555, '10.1.1.1', 9, data);
    assert.equal(input(s, [f], 2000), [], 'no port unreachable');
    const g = udpFrame(10, dst, PEER, '10.1.1.2', 5555, '10.1.1.1', 9, data);
    g[18 + 9] = 200; // an unknown protocol (the header checksum patched)
    g[18 + 10] = 0; g[18 + 11] = 0;
    const c = sumHeader(g, 18);
    g[18 + 10] = c >>> 8; g[18 + 11] = c & 0xff;
    assert.equal(input(s, [g], 2000), [], 'no protocol unreachable');
  }
  // The same datagram in a frame to our MAC is answered (the rule is about the link layer only).
  const out = input(s, [udpFrame(10, VS_MAC, PEER, '10.1.1.2', 5555, '10.1.1.1', 9, data)], 3000);
  assert.equal(out.map((d) => [d.icmp?.type, d.icmp?.code]), [[3, 3]]);
  assert.is(s.vs.counters.toJSON().drops.reasons['udp-no-socket'], 3);
});

const VS2_MAC = parseMac('02:00:00:00:01:02');
const PEER2 = parseMac('02:00:00:00:0a:22');

/** A second VS on the same (device, VLAN) with 10.1.1.5; both know the peer 10.1.1.2 at PEER. */
function twoVs(): Setup & { vs2: ReturnType<Engine['createVs']>; link2: ReturnType<Engine['addLink']> } {
  const s = setup();
  const vs2 = s.e.createVs('second');
  const link2 = s.e.addLink(vs2, { device: 'eth0', vlan: 10, mac: VS2_MAC });
  s.e.addAddress(vs2, 'eth0.10', '10.1.1.5/24');
  drain(s.pool, s.e.devices[0]!.out);
  knownPeer(s, 1000);
  const out = input(s, [arpFrame(1, 10, BCAST, PEER, '10.1.1.2', ZERO, '10.1.1.5')], 1000);
  assert.is(out.filter((d) => d.arp?.op === 2 && d.src === '02:00:00:00:01:02').length, 1, 'the second VS answers');
  return { ...s, vs2, link2 };
}

const macText = (b: Uint8Array | undefined) => b ? Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':') : undefined;

test('a gratuitous ARP (broadcast) updates the sender\'s entry in every VS on the VLAN that has one (RFC 826 merge)', () => {
  const s = twoVs();
  assert.is(macText(s.link.neigh.peek(ip('10.1.1.2'))?.mac), '02:00:00:00:0a:02');
  assert.is(macText(s.link2.neigh.peek(ip('10.1.1.2'))?.mac), '02:00:00:00:0a:02');
  // The peer moved to another MAC and announces it (RFC 5227 3: a request with SPA = TPA).
  input(s, [arpFrame(1, 10, BCAST, PEER2, '10.1.1.2', ZERO, '10.1.1.2')], 2000);
  assert.is(macText(s.link.neigh.peek(ip('10.1.1.2'))?.mac), '02:00:00:00:0a:22', 'first VS');
  assert.is(macText(s.link2.neigh.peek(ip('10.1.1.2'))?.mac), '02:00:00:00:0a:22', 'second VS');
  // Nobody's entry is created by it.
  input(s, [arpFrame(1, 10, BCAST, PEER2, '10.1.1.3', ZERO, '10.1.1.3')], 3000);
  assert.is(s.link.neigh.peek(ip('10.1.1.3')), undefined);
  assert.is(s.link2.neigh.peek(ip('10.1.1.3')), undefined);
  // A broadcast request for the first VS's address from a moved sender: the second VS hears it too.
  input(s, [arpFrame(1, 10, BCAST, PEER, '10.1.1.2', ZERO, '10.1.1.1')], 4000);
  assert.is(macText(s.link2.neigh.peek(ip('10.1.1.2'))?.mac), '02:00:00:00:0a:02', 'second VS merged the request to the first');
  // A unicast one reaches its VS only.
  input(s, [arpFrame(1, 10, VS_MAC, PEER2, '10.1.1.2', ZERO, '10.1.1.1')], 5000);
  assert.is(macText(s.link.neigh.peek(ip('10.1.1.2'))?.mac), '02:00:00:00:0a:22');
  assert.is(macText(s.link2.neigh.peek(ip('10.1.1.2'))?.mac), '02:00:00:00:0a:02', 'not the second VS');
  // A VS on another VLAN with the same addresses never hears VLAN 10's broadcasts.
  const vs3 = s.e.createVs('vlan20');
  const link3 = s.e.addLink(vs3, { device: 'eth0', vlan: 20, mac: parseMac('02:00:00:00:01:03') });
  s.e.addAddress(vs3, 'eth0.20', '10.1.1.1/24');
  drain(s.pool, s.e.devices[0]!.out);
  input(s, [arpFrame(1, 20, BCAST, PEER, '10.1.1.2', ZERO, '10.1.1.1')], 6000);
  input(s, [arpFrame(1, 10, BCAST, PEER2, '10.1.1.2', ZERO, '10.1.1.2')], 7000);
  assert.is(macText(link3.neigh.peek(ip('10.1.1.2'))?.mac), '02:00:00:00:0a:02', 'VLAN 20 unchanged');
  assert.is(macText(s.link2.neigh.peek(ip('10.1.1.2'))?.mac), '02:00:00:00:0a:22', 'VLAN 10 updated');
  assert.is(s.pool.check().held, 0);
});

test('an ARP whose sender hardware address is a group address is never learned nor answered (RFC 1812 3.3.2)', () => {
  const s = twoVs();
  for (const sha of [BCAST, parseMac('01:00:5e:01:02:03')]) {
    const out = input(s, [arpFrame(1, 10, BCAST, sha, '10.1.1.2', ZERO, '10.1.1.1'), arpFrame(2, 10, VS_MAC, sha, '10.1.1.2', VS_MAC, '10.1.1.1'),
      arpFrame(1, 10, BCAST, sha, '10.1.1.7', ZERO, '10.1.1.1')], 2000);
    assert.equal(out, [], 'not answered');
  }
  assert.is(macText(s.link.neigh.peek(ip('10.1.1.2'))?.mac), '02:00:00:00:0a:02', 'entry unchanged');
  assert.is(s.link.neigh.peek(ip('10.1.1.7')), undefined, 'none created');
  assert.is(s.vs.counters.toJSON().drops.reasons['link-addr-group'], 6);
});

test('martian sources: 0/8, loopback, multicast, class E and limited broadcast are dropped unanswered (RFC 1122 3.2.1.3)', () => {
  const s = setup();
  knownPeer(s, 1000);
  const srcs = ['0.0.0.0', '0.1.2.3', '0.255.255.255', '127.0.0.1', '224.0.0.1', '239.1.2.3', '240.0.0.1', '255.255.255.255', '10.1.1.255'];
  for (const src of srcs) {
    assert.equal(input(s, [udpFrame(10, VS_MAC, PEER, src, 5555, '10.1.1.1', 9, new Uint8Array(4)),
      icmpEchoFrame(10, VS_MAC, PEER, src, '10.1.1.1', 1, 1, new Uint8Array(8))], 2000), [], src);
  }
  assert.is(s.vs.counters.toJSON().drops.reasons['ipv4-bad-source'], 2 * srcs.length);
  // 1.0.0.1 is an ordinary (if off-link) source.
  const out = input(s, [icmpEchoFrame(10, VS_MAC, PEER, '1.0.0.1', '10.1.1.1', 1, 1, new Uint8Array(8))], 3000);
  assert.equal(out.map((d) => d.icmp?.type), [0]);
});

test('a reassembled datagram of an unknown protocol: protocol unreachable quoting it (RFC 1122 3.2.2.1)', () => {
  const s = setup();
  knownPeer(s, 1000);
  const full = udpFrame(10, VS_MAC, PEER, '10.1.1.2', 5555, '10.1.1.1', 4000, pattern(2000, 8));
  full[18 + 9] = 200;
  full[28] = 0; full[29] = 0;
  const c = sumHeader(full, 18);
  full[28] = c >>> 8; full[29] = c & 0xff;
  const out = input(s, fragmentFrame(full, 10, 1024, 0x3131), 2000);
  assert.equal(out.map((d) => [d.icmp?.type, d.icmp?.code]), [[3, 2]]);
  const q = out[0]!.icmp!.data;
  assert.is(q[9], 200, 'the quoted header names the protocol');
  assert.is(u16(q, 2), 20 + 2008, 'for the whole datagram');
  assert.is(s.vs.counters.toJSON().drops.reasons['ipv4-unknown-protocol'], 1);
  // To the subnet broadcast: none.
  const bc = udpFrame(10, BCAST, PEER, '10.1.1.2', 5555, '10.1.1.255', 4000, pattern(2000, 8));
  bc[18 + 9] = 200;
  bc[28] = 0; bc[29] = 0;
  const c2 = sumHeader(bc, 18);
  bc[28] = c2 >>> 8; bc[29] = c2 & 0xff;
  assert.equal(input(s, fragmentFrame(bc, 10, 1024, 0x3132), 3000), []);
});

/** `f` (an IPv4 frame on VLAN 10) with `opts` (a multiple of 4 bytes) inserted as IP options. */
function withOptions(f: Uint8Array, opts: number[]): Uint8Array {
  assert.is(opts.length % 4, 0);
  const out = new Uint8Array(f.length + opts.length);
  out.set(f.subarray(0, 38), 0);
  out.set(opts, 38);
  out.set(f.subarray(38), 38 + opts.length);
  out[18] = 0x40 | ((20 + opts.length) >>> 2);
  const total = u16(f, 20) + opts.length;
  out[20] = total >>> 8; out[21] = total & 0xff;
  out[28] = 0; out[29] = 0;
  const c = sumHeader(out, 18, 20 + opts.length);
  out[28] = c >>> 8; out[29] = c & 0xff;
  return out;
}

const ADDR_OPT = [10, 1, 1, 9];

test('malformed IPv4 options: Parameter Problem pointing at the octet at fault, datagram dropped (RFC 792, RFC 1122 3.2.2.5)', () => {
  const s = setup();
  knownPeer(s, 1000);
  const sock = s.e.createUdpSocket(s.vs);
  sock.bind(4000);
  let got = 0;
  sock.on('message', () => { got++; });
  const cases: [string, number[], number][] = [
    ['option length 0', [0x99, 0, 0, 0], 20],
    ['option length 1', [1, 0x99, 1, 0], 21],
    ['option longer than the header', [1, 7, 40, 4, 0, 0, 0, 0], 21],
    ['type without a length at the end', [1, 1, 1, 0x99], 23],
    ['record route shorter than 3', [7, 2, 1, 0], 21],
    ['record route pointer below 4', [7, 7, 3, 0, 0, 0, 0, 0], 22],
    ['record route pointer with no room for an address', [7, 7, 5, 0, 0, 0, 0, 0], 22],
    ['record route twice', [7, 3, 4, 7, 3, 4, 0, 0], 23],
    ['timestamp shorter than 4', [68, 3, 5, 0], 21],
    ['timestamp pointer below 5', [68, 8, 4, 0, 0, 0, 0, 0], 22],
    ['timestamp with address, no room for both', [68, 8, 5, 1, 0, 0, 0, 0], 22],
    ['full timestamp with overflow 15', [68, 8, 9, 0xf0, 0, 0, 0, 0], 23],
    ['loose source route pointer below 4', [131, 7, 2, ...ADDR_OPT, 0], 22],
  ];
  for (const [name, opts, ptr] of cases) {
    const f = withOptions(udpFrame(10, VS_MAC, PEER, '10.1.1.2', 5555, '10.1.1.1', 4000, new TextEncoder().encode(name)), opts);
    const out = input(s, [f], 2000);
    assert.equal(out.map((d) => [d.icmp?.type, d.icmp?.code]), [[12, 0]], name);
    const icmp = out[0]!.raw.subarray(18 + 20);
    assert.is(icmp[4], ptr, `${name}: pointer`);
    assert.equal([...out[0]!.icmp!.data.subarray(0, 20 + opts.length)], [...f.subarray(18, 38 + opts.length)], `${name}: the header quoted`);
  }
  assert.is(got, 0, 'none delivered');
  assert.is(s.vs.counters.toJSON().drops.reasons['ipv4-bad-option'], cases.length);
  sock.close();
});

test('well-formed, unknown and padding IPv4 options are taken; an echo with options is answered with its id, sequence and data', () => {
  const s = setup();
  knownPeer(s, 1000);
  const sock = s.e.createUdpSocket(s.vs);
  sock.bind(4000);
  const got: string[] = [];
  sock.on('message', (m: Buffer) => { got.push(m.toString()); });
  const cases: [string, number[]][] = [
    ['nop and end of list', [1, 1, 0, 0]],
    ['end of list then garbage', [0, 0x99, 0, 7]],
    ['record route with room', [7, 7, 4, 0, 0, 0, 0, 0]],
    ['record route full', [7, 7, 8, ...ADDR_OPT, 0]],
    ['timestamp', [68, 8, 5, 0, 0, 0, 0, 0]],
    ['full timestamp, overflow counting', [68, 8, 9, 0x10, 0, 0, 0, 0]],
    ['router alert', [148, 4, 0, 0]],
    ['unknown option', [0x9e, 4, 1, 2]],
  ];
  for (const [name, opts] of cases) {
    const f = withOptions(udpFrame(10, VS_MAC, PEER, '10.1.1.2', 5555, '10.1.1.1', 4000, new TextEncoder().encode(name)), opts);
    assert.equal(input(s, [f], 2000), [], name);
  }
  s.e.flushEvents();
  assert.equal(got, cases.map(([n]) => n));
  const data = pattern(40, 9);
  const out = input(s, [withOptions(icmpEchoFrame(10, VS_MAC, PEER, '10.1.1.2', '10.1.1.1', 0x1234, 77, data), [7, 7, 4, 0, 0, 0, 0, 0])], 3000);
  assert.is(out.length, 1);
  assert.equal([out[0]!.icmp!.type, out[0]!.icmp!.id, out[0]!.icmp!.seq], [0, 0x1234, 77]);
  assert.equal(Buffer.from(out[0]!.icmp!.data), data);
  assert.is(out[0]!.ipv4!.dst, ip('10.1.1.2'));
  sock.close();
  assert.is(s.pool.check().held, 0);
});

test('echo with Record Route: the reply carries it, with our address recorded on arrival and departure while there is room (RFC 1122 3.2.2.6)', () => {
  const s = setup();
  knownPeer(s, 1000);
  const data = pattern(16, 2);
  const cases: [string, number[], number[]][] = [
    // [name, request options, reply options]
    ['two free slots', [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0], [7, 11, 12, 10, 1, 1, 1, 10, 1, 1, 1, 0]],
    ['one slot used by the sender', [7, 11, 8, 10, 1, 1, 2, 0, 0, 0, 0, 0], [7, 11, 12, 10, 1, 1, 2, 10, 1, 1, 1, 0]],
    ['one free slot', [7, 7, 4, 0, 0, 0, 0, 0], [7, 7, 8, 10, 1, 1, 1, 0]],
    ['full', [7, 7, 8, 10, 1, 1, 2, 0], [7, 7, 8, 10, 1, 1, 2, 0]],
    ['behind a nop, with a timestamp (not echoed)', [1, 68, 8, 5, 0, 0, 0, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0, 0, 0, 0], [7, 7, 8, 10, 1, 1, 1, 0]],
    ['timestamp only (not echoed)', [68, 8, 5, 0, 0, 0, 0, 0], []],
  ];
  let seq = 0;
  for (const [name, opts, want] of cases) {
    const out = input(s, [withOptions(icmpEchoFrame(10, VS_MAC, PEER, '10.1.1.2', '10.1.1.1', 0x4321, ++seq, data), opts)], 2000);
    assert.is(out.length, 1, name);
    const r = out[0]!;
    assert.equal([r.icmp!.type, r.icmp!.id, r.icmp!.seq], [0, 0x4321, seq], `${name}: the reply`);
    assert.equal(Buffer.from(r.icmp!.data), data, `${name}: its data`);
    const hl = (r.raw[18]! & 0x0f) * 4;
    assert.equal([...r.raw.subarray(38, 18 + hl)], want, `${name}: its options`);
    assert.is(sumHeader(r.raw, 18, hl), 0, `${name}: header checksum`);
  }
  assert.is(s.pool.check().held, 0);
});

test('source-routed datagrams are discarded unanswered, completed or not (RFC 7126 4.3.4, 4.4.4; RFC 1122 3.3.5)', () => {
  const s = setup();
  knownPeer(s, 1000);
  const sock = s.e.createUdpSocket(s.vs);
  sock.bind(4000);
  let got = 0;
  sock.on('message', () => { got++; });
  for (const t of [131, 137]) {
    for (const ptr of [4, 8]) { // hops to go; completed (we are its destination)
      const f = withOptions(udpFrame(10, VS_MAC, PEER, '10.1.1.2', 5555, '10.1.1.1', 4000, new Uint8Array(4)), [t, 7, ptr, ...ADDR_OPT, 0]);
      assert.equal(input(s, [f], 2000), []);
      assert.equal(input(s, [withOptions(icmpEchoFrame(10, VS_MAC, PEER, '10.1.1.2', '10.1.1.1', 1, ptr, new Uint8Array(8)), [t, 7, ptr, ...ADDR_OPT, 0])], 2000), [], 'echo not answered');
    }
  }
  s.e.flushEvents();
  assert.is(got, 0);
  assert.is(s.vs.counters.toJSON().drops.reasons['ipv4-source-route'], 8);
  sock.close();
});

test('no Parameter Problem about a broadcast, a fragment other than the first, or an ICMP error', () => {
  const s = setup();
  knownPeer(s, 1000);
  const bad = [7, 7, 3, 0, 0, 0, 0, 0];
  const out: Decoded[] = [];
  out.push(...input(s, [withOptions(udpFrame(10, BCAST, PEER, '10.1.1.2', 5555, '10.1.1.255', 9, new Uint8Array(4)), bad)], 2000));
  const frag = withOptions(udpFrame(10, VS_MAC, PEER, '10.1.1.2', 5555, '10.1.1.1', 9, new Uint8Array(16)), bad);
  frag[24] = 0x00; frag[25] = 0x02; // fragment offset 16, the header checksum patched
  frag[28] = 0; frag[29] = 0;
  const c = sumHeader(frag, 18, 28);
  frag[28] = c >>> 8; frag[29] = c & 0xff;
  out.push(...input(s, [frag], 2000));
  // A port unreachable (an ICMP error) whose header carries a malformed option.
  const err = icmpEchoFrame(10, VS_MAC, PEER, '10.1.1.2', '10.1.1.1', 0, 0, new Uint8Array(28));
  err[38] = 3; err[39] = 3; err[40] = 0; err[41] = 0;
  const ic = sumOf(err, 38, err.length - 38);
  err[40] = ic >>> 8; err[41] = ic & 0xff;
  out.push(...input(s, [withOptions(err, bad)], 2000));
  assert.equal(out, []);
  assert.is(s.vs.counters.toJSON().drops.reasons['ipv4-bad-option'], 3);
});

/** The Internet checksum of b[off..off+len). */
function sumOf(b: Uint8Array, off: number, len: number): number {
  let x = 0;
  for (let i = 0; i < len; i += 2) x += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
  while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
  return ~x & 0xffff;
}

test('an unsolicited ARP reply creates no entry; a reply updates an entry the VS has (unicast: REACHABLE, broadcast: STALE)', () => {
  const s = setup();
  const state = (a: string) => { const n = s.link.neigh.peek(ip(a)); return n ? `${NSTATE_NAMES[n.state]} ${macText(n.mac)}` : undefined; };
  input(s, [arpFrame(2, 10, VS_MAC, PEER, '10.1.1.2', VS_MAC, '10.1.1.1'), arpFrame(2, 10, BCAST, PEER, '10.1.1.3', ZERO, '10.1.1.1')], 1000);
  assert.is(state('10.1.1.2'), undefined, 'unicast reply: none');
  assert.is(state('10.1.1.3'), undefined, 'broadcast reply: none');
  // The peer's request makes a STALE entry; its replies then update it.
  knownPeer(s, 2000);
  assert.is(state('10.1.1.2'), 'STALE 02:00:00:00:0a:02');
  input(s, [arpFrame(2, 10, BCAST, PEER2, '10.1.1.2', ZERO, '10.1.1.1')], 3000);
  assert.is(state('10.1.1.2'), 'STALE 02:00:00:00:0a:22', 'a broadcast reply: updated, not confirmed');
  input(s, [arpFrame(2, 10, VS_MAC, PEER, '10.1.1.2', VS_MAC, '10.1.1.1')], 4000);
  assert.is(state('10.1.1.2'), 'REACHABLE 02:00:00:00:0a:02', 'a unicast reply confirms it');
  // One the VS is resolving: its answer is taken and the queued datagram leaves.
  const sock = s.e.createUdpSocket(s.vs);
  sock.bind(4000);
  sock.send('queued', 9, '10.1.1.4');
  assert.equal(drain(s.pool, s.e.devices[0]!.out).map((d) => [d.arp?.op, d.arp?.tpa]), [[1, ip('10.1.1.4')]]);
  const out = input(s, [arpFrame(2, 10, VS_MAC, PEER2, '10.1.1.4', VS_MAC, '10.1.1.1')], 5000);
  assert.equal(out.map((d) => [d.dst, d.udp?.dstPort]), [['02:00:00:00:0a:22', 9]]);
  assert.is(state('10.1.1.4'), 'REACHABLE 02:00:00:00:0a:22');
  sock.close();
  assert.is(s.pool.check().held, 0);
});

test('priority-tagged frames (VLAN id 0) reach the untagged link and are answered untagged', () => {
  const pool = new FramePool({ frameSize: 2048, frameCount: 64 });
  const e = new Engine();
  e.addDevice({ name: 'eth0', pool, mac: DEV_MAC, mtu: 1500 });
  const vs = e.createVs('untagged');
  e.addLink(vs, { device: 'eth0', mac: VS_MAC });
  e.addAddress(vs, 'eth0', '10.1.1.1/24');
  drain(pool, e.devices[0]!.out);
  const burst = new Burst();
  const arp = arpFrame(1, 0, BCAST, PEER, '10.1.1.2', ZERO, '10.1.1.1');
  arp[14] = 0xa0; // PCP 5, VLAN id 0
  push(pool, burst, arp);
  push(pool, burst, icmpEchoFrame(0, VS_MAC, PEER, '10.1.1.2', '10.1.1.1', 9, 1, new Uint8Array(8)));
  e.input(0, burst, 1000);
  const out = drain(pool, e.devices[0]!.out);
  assert.equal(out.map((d) => [d.vlan, d.arp?.op ?? d.icmp?.type]), [[-1, 2], [-1, 0]], 'ARP reply and echo reply, untagged');
  assert.is(e.devices[0]!.counters.toJSON().drops.reasons['vlan-no-link'] ?? 0, 0);
  assert.is(pool.check().held, 0);
});

test('TTL 0 and 1 to our address are taken (RFC 1122 3.2.1.7: not discarded for a TTL below 2); a zero UDP checksum is no checksum (RFC 768)', () => {
  const s = setup();
  knownPeer(s, 1000);
  const sock = s.e.createUdpSocket(s.vs);
  sock.bind(4000);
  const got: string[] = [];
  sock.on('message', (m: Buffer) => got.push(m.toString()));
  for (const ttl of [0, 1]) {
    const f = udpFrame(10, VS_MAC, PEER, '10.1.1.2', 5555, '10.1.1.1', 4000, new TextEncoder().encode(`ttl${ttl}`));
    const g = icmpEchoFrame(10, VS_MAC, PEER, '10.1.1.2', '10.1.1.1', 5, ttl, new Uint8Array(8));
    for (const x of [f, g]) {
      x[18 + 8] = ttl;
      x[28] = 0; x[29] = 0;
      const c = sumHeader(x, 18);
      x[28] = c >>> 8; x[29] = c & 0xff;
    }
    f[18 + 26] = 0; f[18 + 27] = 0; // no UDP checksum
    const out = input(s, [f, g], 2000);
    assert.equal(out.map((d) => [d.icmp?.type, d.icmp?.seq, d.ipv4?.ttl]), [[0, ttl, 64]], `echo with TTL ${ttl} answered with a fresh TTL`);
  }
  s.e.flushEvents();
  assert.equal(got, ['ttl0', 'ttl1']);
  sock.close();
});

test('ARP from a sender address no host may hold: neither answered nor learned; a probe from 0.0.0.0 is answered', () => {
  const s = setup();
  const bad = ['10.1.1.255', '255.255.255.255', '224.0.0.1', '127.0.0.1', '0.1.2.3', '240.0.0.1'];
  for (const spa of bad) {
    assert.equal(input(s, [arpFrame(1, 10, BCAST, PEER, spa, ZERO, '10.1.1.1')], 1000), [], spa);
    assert.is(s.link.neigh.peek(ip(spa)), undefined, `${spa} not learned`);
  }
  assert.is(s.vs.counters.toJSON().drops.reasons['arp-bad-sender'], bad.length);
  const out = input(s, [arpFrame(1, 10, BCAST, PEER, '0.0.0.0', ZERO, '10.1.1.1')], 2000);
  assert.equal(out.map((d) => [d.arp?.op, d.dst, d.arp?.tpa]), [[2, '02:00:00:00:0a:02', 0]], 'the probe is answered, to its sender');
  assert.is(s.link.neigh.size, 0);
});

/** An ICMP Timestamp request (type 13) with `originate`, in a frame to `ethDst` for `dst`. */
function timestampFrame(ethDst: Uint8Array, dst: string, id: number, seq: number, originate: number): Uint8Array {
  const f = icmpEchoFrame(10, ethDst, PEER, '10.1.1.2', dst, id, seq, new Uint8Array(12));
  const o = 38;
  f[o] = 13;
  f[o + 8] = originate >>> 24; f[o + 9] = (originate >>> 16) & 0xff; f[o + 10] = (originate >>> 8) & 0xff; f[o + 11] = originate & 0xff;
  f[o + 2] = 0; f[o + 3] = 0;
  const c = sumOf(f, o, 20);
  f[o + 2] = c >>> 8; f[o + 3] = c & 0xff;
  return f;
}

const u32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

test('ICMP Timestamp: answered with identifier, sequence, originate, and receive/transmit in ms since midnight UT (RFC 792, RFC 1122 3.2.2.8)', () => {
  const s = setup();
  knownPeer(s, 1000);
  // Virtual time: no wall clock, a non-standard value with the high-order bit set.
  let out = input(s, [timestampFrame(VS_MAC, '10.1.1.1', 0x1111, 7, 12345)], 5_000_000);
  assert.is(out.length, 1);
  let r = out[0]!.raw.subarray(38);
  assert.equal([r[0], r[1], (r[4]! << 8) | r[5]!, (r[6]! << 8) | r[7]!, u32(r, 8)], [14, 0, 0x1111, 7, 12345]);
  assert.is(out[0]!.ipv4!.payloadLen, 20, 'a 20-byte message');
  assert.is(sumOf(r, 0, 20), 0, 'checksum');
  assert.is(u32(r, 12), (0x80000000 | 5000) >>> 0, 'non-standard: high bit set');
  assert.is(u32(r, 16), u32(r, 12));
  assert.equal([out[0]!.ipv4!.src, out[0]!.ipv4!.dst, out[0]!.dst], [ip('10.1.1.1'), ip('10.1.1.2'), '02:00:00:00:0a:02']);
  // With a wall clock: 01:02:03.456 UT.
  const now = 9_000_000;
  s.e.epochOffsetUs = Date.UTC(2026, 0, 1, 1, 2, 3, 456) * 1000 - now;
  out = input(s, [timestampFrame(VS_MAC, '10.1.1.1', 0x2222, 8, 1)], now);
  r = out[0]!.raw.subarray(38);
  assert.equal([u32(r, 12), u32(r, 16)], [3_723_456, 3_723_456], 'ms since midnight UT');
  // To the subnet broadcast: not answered; a truncated one: dropped.
  assert.equal(input(s, [timestampFrame(BCAST, '10.1.1.255', 1, 1, 1)], now), []);
  const short = icmpEchoFrame(10, VS_MAC, PEER, '10.1.1.2', '10.1.1.1', 1, 1, new Uint8Array(4));
  short[38] = 13; short[40] = 0; short[41] = 0;
  const c = sumOf(short, 38, 12);
  short[40] = c >>> 8; short[41] = c & 0xff;
  assert.equal(input(s, [short], now), []);
  assert.is(s.vs.counters.toJSON().drops.reasons['icmp-truncated'], 1);
  assert.is(s.pool.check().held, 0);
});

/** The IPv4 header checksum of the header at `off` (its checksum field zeroed). */
function sumHeader(b: Uint8Array, off: number, hl = 20): number {
  return sumOf(b, off, hl);
}

test.run();
