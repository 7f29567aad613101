/**
 * Regression: an IPv6 packet with something to answer by Parameter Problem (an unknown option of
 * type 10xxxxxx, RFC 8200 4.2) was answered before its source was checked, so a source that is
 * never a node's (the loopback ::1, an IPv4-mapped ::ffff:a.b.c.d) got an ICMPv6 error: from inside
 * a tunnel, where the VS answers from the VIP, routed, the error went to the gateway addressed to
 * ::1 (RFC 4291 2.5.3: a packet to the loopback address is never sent outside a node; RFC 4291
 * 2.5.5.2 / RFC 4038: mapped addresses never appear on the wire). Such a packet is dropped as the
 * source check drops it: nothing sent (not even the gateway's resolution).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ipv6, udp } from './lib/decap-frames';
import { CL6, decapHost, fromLb, VIP6 } from './lib/decap-host';

/** A UDP packet src → VIP6 with a Destination Options header holding an unknown option of type 0x80. */
function badOption(src: string): Uint8Array {
  const dopt = { type: 60, body: Uint8Array.from([0, 0, 0x80, 4, 0, 0, 0, 0]) };
  return ipv6(src, VIP6, 17, udp(src, 1000, VIP6, 2000, new Uint8Array(4)), [dopt]);
}

for (const src of ['::1', '::ffff:10.1.1.5']) {
  test(`inside a tunnel, from ${src}: no Parameter Problem sent anywhere`, () => {
    const h = decapHost();
    const sent = h.input([fromLb(badOption(src))]);
    assert.equal(sent, [], 'nothing sent');
    assert.equal(h.drops(), { 'ipv6-unknown-option': 1 });
    assert.is(h.pool.check().held, 0);
  });
}

test('from a client the Parameter Problem is sent, from the VIP (the check refuses bad sources only)', () => {
  const h = decapHost();
  const sent = [...h.input([fromLb(badOption(CL6))])];
  assert.equal(sent.map((w) => w.nsTarget), ['fd00:1::fe'], 'the gateway resolved for the error');
});

test.run();
