/**
 * IPv6, ICMPv6, NDP and MLD conformance (RFC 8200, 4443, 4861, 2710, 3810), engine under virtual
 * time over two hosts, frames injected at host a and its output recorded. Each case is a
 * deviation found against the RFCs and Linux as a peer:
 *
 * - RFC 4443 2.4(e.4, e.5): no ICMPv6 error about a packet sent as a link-layer multicast or
 *   broadcast (Linux icmp6_send: only about PACKET_HOST frames), except Packet Too Big and
 *   Parameter Problem code 2. A UDP packet to a closed port of our unicast address in a frame to
 *   the broadcast MAC was answered with port unreachable.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World, pattern } from './lib/world';
import { optsHdr } from './lib/ipv6-frames';
import { A6, C6, frame6, udp6, send, tap6, icmpOf, held, drops } from './lib/engine6';

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

test.run();
