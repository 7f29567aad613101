/**
 * IPv6, ICMPv6, NDP and MLD conformance (RFC 8200, 4443, 4861, 2710, 3810), engine under virtual
 * time over two hosts, frames injected at host a and its output recorded. Each case is a
 * deviation found against the RFCs and Linux as a peer:
 *
 * - RFC 4443 2.4(e.4, e.5): no ICMPv6 error about a packet sent as a link-layer multicast or
 *   broadcast (Linux icmp6_send: only about PACKET_HOST frames), except Packet Too Big and
 *   Parameter Problem code 2. A UDP packet to a closed port of our unicast address in a frame to
 *   the broadcast MAC was answered with port unreachable.
 * - RFC 4861 7.2.5/7.2.6 with several VSes on one (device, VLAN): an unsolicited Neighbor
 *   Advertisement to all nodes updated the cache of the first VS only; every VS on the link, each
 *   with its own cache, now updates its entry.
 * - A Source/Target Link-Layer Address option holding a group MAC (broadcast, multicast) was
 *   learned: unicast traffic to that neighbor then went to every node. It is a counted drop.
 * - RFC 3810 8.2.1 / RFC 2710: an MLDv1 query was answered with MLDv2 reports, which an MLDv1
 *   router ignores (so it, or a snooping switch, stops sending us solicitations). An MLDv1 query
 *   now puts the link in MLDv1 Host Compatibility Mode for the Older Version Querier Present
 *   Timeout (260 s, 9.12): MLDv1 Reports to each group, Dones to ff02::2; then MLDv2 again.
 * - RFC 4443 4.1: an Echo Reply SHOULD be sent to an Echo Request to a multicast address (Linux
 *   answers one to ff02::1 or a group it joined), from a unicast address of the interface (4.2).
 *   Such requests were dropped; every VS on the (device, VLAN) that listens to the group now
 *   answers from its own address, and VSes on other VLANs never see it.
 * - RFC 8200 4 / RFC 4443 3.4: a packet of an unknown next header that came in fragments was
 *   dropped unanswered once reassembled; it gets Parameter Problem code 1 as a whole one does.
 * - RFC 8200 4.5: Time Exceeded code 1 when reassembly times out after the first fragment came.
 *   It was sent when the timer found the datagram, not when a late fragment did (before the timer
 *   ran in that step): the datagram was then discarded silently.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World, pattern } from './lib/world';
import { frag, optsHdr, packet } from './lib/ipv6-frames';
import { FramePool } from '../umem/pool';
import { Engine } from '../stack/engine';
import { Burst } from '../driver/types';
import { writeEth, ETH_P_IPV6 } from '../protocols/ethernet';
import { decode6 } from './lib/engine6';
import { A6, C6, PEER_MAC, F6, frame6, icmp6, echo6, udp6, ns6, na6, send, tap6, icmpOf, held, drops, mac, solicitedNode as solicitedNodeOf } from './lib/engine6';
import { Ip6, ip6ToString, linkLocalFromMac, parseIp6 } from '../protocols/ip/addr';

const opts = { ipv6: true, engine: { ndp: { dadTransmits: 0 } } };
const BCAST = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const GROUP_MAC = Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]);

async function settle(w: World): Promise<void> {
  await w.run(() => false, 10_000);
}

test('no port unreachable nor Parameter Problem code 1 about a frame to a link-layer broadcast or multicast (RFC 4443 2.4(e))', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  for (const ethDst of [BCAST, GROUP_MAC]) {
    send(w, frame6(w, { src: C6, dst: A6, nh: 17, l4: udp6(C6, 5555, A6, 9999, pattern(16, 1)), ethDst }));
    send(w, frame6(w, { src: C6, dst: A6, nh: 200, l4: pattern(16, 2), ethDst }));
  }
  await settle(w);
  assert.is(icmpOf(ta, 1).length + icmpOf(ta, 4).length, 0, 'no error');
  assert.is(drops(w, 'a', 'udp-no-socket'), 2, 'the datagrams came to us');
  // Parameter Problem code 2 (an unknown option of type 10xxxxxx) is answered even so.
  send(w, frame6(w, { src: C6, dst: A6, nh: 17, exts: [optsHdr(60, [0x80, 2, 0, 0])], l4: udp6(C6, 5555, A6, 9999, pattern(8, 3)), ethDst: BCAST }));
  await settle(w);
  assert.equal(icmpOf(ta, 4).map((o) => o.code), [2], 'Parameter Problem code 2');
  // The same packet in a frame to our MAC is answered.
  send(w, frame6(w, { src: C6, dst: A6, nh: 17, l4: udp6(C6, 5555, A6, 9999, pattern(16, 1)) }));
  await settle(w);
  assert.equal(icmpOf(ta, 1).map((o) => o.code), [4], 'port unreachable');
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

const E6 = parseIp6('fd00::5');
const ALL_NODES = parseIp6('ff02::1');
const MAC2 = Uint8Array.from([0x02, 0x00, 0x00, 0x00, 0x02, 0x02]);
const NEW_MAC = Uint8Array.from([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x77]);

/** Host a with a second VS on VLAN 10 (fd00::5); both VSes learned C6 at PEER_MAC from its solicitations. */
async function twoVs(): Promise<World> {
  const w = twoHosts(opts);
  const e = w.a.engine;
  const vs2 = e.createVs('second');
  e.addLink(vs2, { device: 'eth0', vlan: 10, mac: MAC2 });
  e.addAddress(vs2, 'eth0.10', 'fd00::5/64');
  w.a.vs.push(vs2);
  await settle(w);
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, hop: 255, l4: ns6(A6, C6, A6, PEER_MAC) }));
  send(w, frame6(w, { src: C6, dst: E6, nh: 58, hop: 255, ethDst: MAC2, l4: ns6(E6, C6, E6, PEER_MAC) }));
  await settle(w);
  return w;
}

const cacheMac = (w: World, i: number): string | undefined => {
  const n = w.a.vs[i]!.links[0]!.neigh.peek(C6);
  return n ? mac(n.mac) : undefined;
};

test('an unsolicited NA to all nodes updates the entry of every VS on the VLAN (RFC 4861 7.2.5, 7.2.6)', async () => {
  const w = await twoVs();
  assert.equal([cacheMac(w, 0), cacheMac(w, 1)], [mac(PEER_MAC), mac(PEER_MAC)], 'both learned the neighbor');
  const noEntry = () => drops(w, 'a', 'ndp-no-entry', 0) + drops(w, 'a', 'ndp-no-entry', 1);
  const before = noEntry();
  // The neighbor's link-layer address changed: it tells all nodes (Override set, Solicited clear).
  send(w, frame6(w, { src: C6, dst: ALL_NODES, nh: 58, hop: 255, ethDst: Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]), l4: na6(C6, 0x20, NEW_MAC, C6, ALL_NODES) }));
  await settle(w);
  assert.equal([cacheMac(w, 0), cacheMac(w, 1)], [mac(NEW_MAC), mac(NEW_MAC)], 'both VSes updated');
  assert.is(noEntry(), before, 'taken, not dropped');
  // A VS on another VLAN with the same addresses never hears VLAN 10's advertisements.
  const e = w.a.engine;
  const vs3 = e.createVs('vlan20');
  e.addLink(vs3, { device: 'eth0', vlan: 20 });
  e.addAddress(vs3, 'eth0.20', 'fd00::1/64');
  w.a.vs.push(vs3);
  await settle(w);
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, hop: 255, vlan: 20, ethDst: vs3.links[0]!.mac, l4: ns6(A6, C6, A6, PEER_MAC) }));
  await settle(w);
  assert.is(cacheMac(w, 2), mac(PEER_MAC), 'VLAN 20 learned the neighbor');
  send(w, frame6(w, { src: C6, dst: ALL_NODES, nh: 58, hop: 255, ethDst: Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]), l4: na6(C6, 0x20, NEW_MAC, C6, ALL_NODES) }));
  await settle(w);
  assert.is(cacheMac(w, 2), mac(PEER_MAC), 'VLAN 20 unchanged');
  // A unicast NA to the first VS's MAC changes its cache only.
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, hop: 255, l4: na6(C6, 0x20, PEER_MAC, C6, A6) }));
  await settle(w);
  assert.equal([cacheMac(w, 0), cacheMac(w, 1)], [mac(PEER_MAC), mac(NEW_MAC)]);
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('a group MAC in a link-layer address option is never learned', async () => {
  const w = await twoVs();
  const group = Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]);
  send(w, frame6(w, { src: C6, dst: ALL_NODES, nh: 58, hop: 255, ethDst: group, l4: na6(C6, 0x20, Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), C6, ALL_NODES) }));
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, hop: 255, l4: na6(C6, 0x20, group, C6, A6) }));
  const D6 = parseIp6('fd00::98');
  send(w, frame6(w, { src: D6, dst: A6, nh: 58, hop: 255, l4: ns6(A6, D6, A6, group) }));
  await settle(w);
  assert.equal([cacheMac(w, 0), cacheMac(w, 1)], [mac(PEER_MAC), mac(PEER_MAC)], 'unchanged');
  assert.is(w.a.vs[0]!.links[0]!.neigh.peek(D6), undefined, 'not created');
  assert.is(drops(w, 'a', 'link-addr-group'), 3);
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

const ROUTER6 = parseIp6('fe80::99');

/** An MLD query from a link-local router to all nodes, hop limit 1 with Router Alert: MLDv1 (24 bytes) or MLDv2 (28). */
function query6(v: 1 | 2): F6 {
  const q = icmp6(130, 0, ROUTER6, ALL_NODES, (1000 << 16) >>> 0, new Uint8Array(v === 1 ? 16 : 20));
  return { src: ROUTER6, dst: ALL_NODES, nh: 58, hop: 1, ethDst: Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]), exts: [optsHdr(0, [5, 2, 0, 0])], l4: q };
}

function query(w: World, v: 1 | 2): Uint8Array {
  return frame6(w, query6(v));
}

const groupOf = (l4: Uint8Array): string => ip6ToString(new Ip6(
  ((l4[8]! << 24) | (l4[9]! << 16) | (l4[10]! << 8) | l4[11]!) >>> 0, ((l4[12]! << 24) | (l4[13]! << 16) | (l4[14]! << 8) | l4[15]!) >>> 0,
  ((l4[16]! << 24) | (l4[17]! << 16) | (l4[18]! << 8) | l4[19]!) >>> 0, ((l4[20]! << 24) | (l4[21]! << 16) | (l4[22]! << 8) | l4[23]!) >>> 0));

test('MLDv1 query: answered with MLDv1 Reports to each solicited-node group; MLDv1 mode for 260 s, then MLDv2 again (RFC 3810 8.2.1)', async () => {
  const w = twoHosts({ ipv6: true, engine: { ndp: { dadTransmits: 0, mldReportUs: 0 } } });
  // A VS with the same addresses on VLAN 20, where no MLDv1 querier is.
  const vs3 = w.a.engine.createVs('vlan20');
  w.a.engine.addLink(vs3, { device: 'eth0', vlan: 20 });
  w.a.engine.addAddress(vs3, 'eth0.20', 'fd00::1/64');
  await settle(w);
  const ta = tap6(w.link.a);
  const ll = linkLocalFromMac(w.link.a.mac);
  const want = [ip6ToString(solicitedNodeOf(A6)), ip6ToString(solicitedNodeOf(ll))].sort();
  send(w, query(w, 1));
  await settle(w);
  assert.is(icmpOf(ta, 143).length, 0, 'no MLDv2 report to an MLDv1 querier');
  const r1 = icmpOf(ta, 131);
  assert.equal(r1.map((o) => groupOf(o.l4)).sort(), want, 'one MLDv1 Report per group');
  for (const o of r1) {
    assert.is(o.dst, groupOf(o.l4), 'sent to the group it reports (RFC 2710 3)');
    assert.is(o.src, ip6ToString(ll), 'from the link-local address');
    assert.is(o.hop, 1);
    assert.equal(o.exts, [0], 'behind a Hop-by-Hop header');
    assert.is(o.raw[18 + 40 + 2], 5, 'with Router Alert');
    assert.is(o.l4.length, 24);
    assert.is(o.code, 0);
  }
  // Still in MLDv1 mode: an MLDv2 query meanwhile is answered in MLDv1 too; a leave is a Done.
  ta.length = 0;
  await w.run(() => false, 100_000_000);
  send(w, query(w, 2));
  await settle(w);
  assert.is(icmpOf(ta, 143).length, 0);
  assert.equal(icmpOf(ta, 131).map((o) => groupOf(o.l4)).sort(), want);
  ta.length = 0;
  w.a.engine.addAddress(w.a.vs[0]!, 'eth0.10', 'fd00::7/64');
  await settle(w);
  assert.equal(icmpOf(ta, 131).map((o) => [o.dst, groupOf(o.l4)]), [[ip6ToString(solicitedNodeOf(parseIp6('fd00::7'))), ip6ToString(solicitedNodeOf(parseIp6('fd00::7')))]], 'a join is an MLDv1 Report');
  ta.length = 0;
  w.a.engine.removeAddress(w.a.vs[0]!, 'eth0.10', 'fd00::7/64');
  await settle(w);
  const done = icmpOf(ta, 132);
  assert.equal(done.map((o) => [o.dst, o.ethDst, groupOf(o.l4)]), [['ff02::2', '33:33:00:00:00:02', ip6ToString(solicitedNodeOf(parseIp6('fd00::7')))]], 'a leave is an MLDv1 Done to all routers');
  assert.is(icmpOf(ta, 143).length, 0);
  // The VS on VLAN 20 did not hear the MLDv1 querier: MLDv2 there.
  ta.length = 0;
  send(w, frame6(w, { ...query6(2), vlan: 20 }));
  await settle(w);
  assert.is(icmpOf(ta, 131).length, 0, 'no MLDv1 on VLAN 20');
  assert.ok(icmpOf(ta, 143).filter((o) => o.vlan === 20).length >= 1, 'MLDv2 on VLAN 20');
  // 260 s after the MLDv1 query without another: MLDv2 again.
  await w.run(() => false, 170_000_000);
  ta.length = 0;
  send(w, query(w, 2));
  await settle(w);
  assert.is(icmpOf(ta, 131).length, 0, 'no MLDv1 report any more');
  assert.ok(icmpOf(ta, 143).length >= 1, 'an MLDv2 report');
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('echo to all nodes or to our solicited-node group: answered from a unicast address by every VS on the VLAN (RFC 4443 4.1, 4.2)', async () => {
  const w = await twoVs();
  // A third VS with the same addresses on another VLAN: never hears VLAN 10's groups.
  const e = w.a.engine;
  const vs3 = e.createVs('other-vlan');
  e.addLink(vs3, { device: 'eth0', vlan: 20 });
  e.addAddress(vs3, 'eth0.20', 'fd00::1/64');
  e.addAddress(vs3, 'eth0.20', 'fd00::5/64');
  await settle(w);
  const ta = tap6(w.link.a);
  const data = pattern(24, 7);
  const allMac = Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]);
  send(w, frame6(w, { src: C6, dst: ALL_NODES, ethDst: allMac, nh: 58, l4: echo6(C6, ALL_NODES, 0x77, 1, data) }));
  await settle(w);
  let r = icmpOf(ta, 129);
  assert.equal(r.map((o) => [o.src, o.dst, o.vlan]).sort(), [['fd00::1', 'fd00::99', 10], ['fd00::5', 'fd00::99', 10]], 'both VSes of VLAN 10, from their unicast addresses');
  for (const o of r) {
    assert.is(o.ethDst, mac(PEER_MAC));
    assert.equal([(o.l4[4]! << 8) | o.l4[5]!, (o.l4[6]! << 8) | o.l4[7]!], [0x77, 1]);
    assert.equal(Buffer.from(o.l4.subarray(8)), data);
  }
  // To the solicited-node group of fd00::5: only the VS that holds it.
  ta.length = 0;
  const g = solicitedNodeOf(E6);
  send(w, frame6(w, { src: C6, dst: g, ethDst: Uint8Array.from([0x33, 0x33, 0xff, 0, 0, 5]), nh: 58, l4: echo6(C6, g, 0x77, 2, data) }));
  // To the group of an address nobody holds: unanswered.
  const none = solicitedNodeOf(parseIp6('fd00::42'));
  send(w, frame6(w, { src: C6, dst: none, ethDst: Uint8Array.from([0x33, 0x33, 0xff, 0, 0, 0x42]), nh: 58, l4: echo6(C6, none, 0x77, 3, data) }));
  await settle(w);
  r = icmpOf(ta, 129);
  assert.equal(r.map((o) => [o.src, (o.l4[6]! << 8) | o.l4[7]!]), [['fd00::5', 2]]);
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('a reassembled packet of an unknown next header: Parameter Problem code 1 pointing at the field that names it', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const body = pattern(64, 5);
  send(w, frame6(w, { src: C6, dst: A6, nh: 200, exts: [frag(0, true, 0x5151)], l4: body.subarray(0, 32) }));
  const last = frame6(w, { src: C6, dst: A6, nh: 200, exts: [frag(32, false, 0x5151)], l4: body.subarray(32) });
  send(w, last);
  await settle(w);
  const pp = icmpOf(ta, 4);
  assert.is(pp.length, 1, 'one Parameter Problem');
  assert.is(pp[0]!.code, 1);
  const ptr = ((pp[0]!.l4[4]! << 24) | (pp[0]!.l4[5]! << 16) | (pp[0]!.l4[6]! << 8) | pp[0]!.l4[7]!) >>> 0;
  assert.is(pp[0]!.l4[8 + ptr], 200, 'the pointer lands on the unknown next header');
  assert.is(drops(w, 'a', 'ipv6-unknown-next-header'), 1);
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('hop limit 0 and 1 to our address are taken (a host is their destination: RFC 8200 3 decrements only when forwarding)', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  for (const hop of [0, 1]) send(w, frame6(w, { src: C6, dst: A6, nh: 58, hop, l4: echo6(C6, A6, 0x99, hop) }));
  await settle(w);
  assert.equal(icmpOf(ta, 129).map((o) => [(o.l4[6]! << 8) | o.l4[7]!, o.hop]), [[0, 64], [1, 64]]);
});

test('a late fragment that finds its datagram expired: Time Exceeded code 1 (RFC 8200 4.5)', () => {
  const pool = new FramePool({ frameSize: 2048, frameCount: 64 });
  const e = new Engine({ ndp: { dadTransmits: 0 } });
  const devMac = Uint8Array.from([2, 0, 0, 0, 0, 1]);
  e.addDevice({ name: 'eth0', pool, mac: devMac, mtu: 1500 });
  const vs = e.createVs('t');
  e.addLink(vs, { device: 'eth0', vlan: 10 });
  e.addAddress(vs, 'eth0.10', 'fd00::1/64');
  const out: ReturnType<typeof decode6>[] = [];
  const drainOut = () => {
    const o = e.devices[0]!.out;
    for (let i = 0; i < o.n; i++) { out.push(decode6(pool.bytes.slice(o.off[i]!, o.off[i]! + o.len[i]!))); pool.free(o.frame[i]!); }
    o.n = 0;
  };
  drainOut();
  out.length = 0;
  const burst = new Burst();
  const put = (ip: Uint8Array, now: number) => {
    const f = new Uint8Array(18 + ip.length);
    writeEth(f, 0, devMac, 0, PEER_MAC, 0, ETH_P_IPV6, 10);
    f.set(ip, 18);
    const fr = pool.alloc();
    pool.bytes.set(f, pool.dataStart(fr));
    burst.push(fr, pool.dataStart(fr), f.length);
    e.input(0, burst, now);
    drainOut();
  };
  // The peer is known (its solicitation), so the error leaves at once.
  put(packet([], 58, ns6(A6, C6, A6, PEER_MAC), A6, C6).map((x, i) => (i === 7 ? 255 : x)), 1000);
  out.length = 0;
  const body = pattern(64, 4);
  put(packet([frag(0, true, 0x7777)], 17, body.subarray(0, 32), A6, C6), 2000);
  assert.equal(out, [], 'nothing yet');
  // 61 s later (past the 60 s of RFC 8200 4.5), a fragment of it comes before any timer ran.
  put(packet([frag(32, false, 0x7777)], 17, body.subarray(32), A6, C6), 2000 + 61_000_000);
  const te = out.filter((o) => o && o.type === 3);
  assert.is(te.length, 1, 'one Time Exceeded');
  assert.is(te[0]!.code, 1);
  assert.is(te[0]!.dst, 'fd00::99');
  assert.is(pool.check().held, 0);
});

test.run();
