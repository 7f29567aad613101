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
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World, pattern } from './lib/world';
import { optsHdr } from './lib/ipv6-frames';
import { A6, C6, PEER_MAC, frame6, udp6, ns6, na6, send, tap6, icmpOf, held, drops, mac } from './lib/engine6';
import { parseIp6 } from '../protocols/ip/addr';

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

test.run();
