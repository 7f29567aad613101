/**
 * Regression: an echo request to a VIP whose reply has no route back (the VS has no route to the
 * client) made the reply's output path throw ENETUNREACH through the receive stage for an ICMPv6
 * request, and for a request of either family that came in fragments (reassembled): counted as an
 * `internal-error` and reported in the log as a bug of the stack, although it is the network's
 * doing (wire input never throws: it is a counted drop). The IPv4 whole-packet case was right.
 * Expected: no reply, the missing route counted (ipv4-no-route / ipv6-no-route), no internal
 * error, every frame back in the pool.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arpReply, echoRequest, eth, GW_MAC, ipv4, ipv6, macText, naPacket } from './lib/decap-frames';
import { frag } from './lib/ipv6-frames';
import { IPPROTO_ICMP } from '../protocols/ipv4';
import { IPPROTO_ICMPV6 } from '../protocols/ipv6';
import { ADDR4, ADDR6, CL4, CL6, decapHost, fromLb, VIP4, VIP6, VS_MAC } from './lib/decap-host';

function noInternalError(h: ReturnType<typeof decapHost>, noRoute: string): void {
  assert.is(h.e.internalErrors, 0, `no internal error: ${h.logs.join('\n')}`);
  assert.equal(h.drops(), { [noRoute]: 1 }, 'the missing route counted, nothing else');
  assert.is(h.vs.counters.decapsulated > 0, true, 'the request was taken in');
  assert.is(h.pool.check().held, 0, 'every frame back');
}

test('ICMPv6 echo request to a VIP, no route back to the client: a counted no-route, not an internal error', () => {
  const h = decapHost({ routes: false });
  const sent = h.input([fromLb(echoRequest(CL6, VIP6, 1, 1, new Uint8Array(16)))]);
  assert.equal(sent, [], 'nothing sent');
  noInternalError(h, 'ipv6-no-route');
});

test('ICMP echo request to a VIP in two fragments (reassembled), no route back: a counted no-route, not an internal error', () => {
  const h = decapHost({ routes: false });
  const icmp = echoRequest(CL4, VIP4, 1, 1, new Uint8Array(56)).subarray(20); // 64 bytes of ICMP
  const f1 = ipv4(CL4, VIP4, IPPROTO_ICMP, icmp.subarray(0, 32), { id: 7, flagsFrag: 0x2000 });
  const f2 = ipv4(CL4, VIP4, IPPROTO_ICMP, icmp.subarray(32), { id: 7, flagsFrag: 32 >>> 3 });
  const sent = h.input([fromLb(f1), fromLb(f2)]);
  assert.equal(sent, [], 'nothing sent');
  noInternalError(h, 'ipv4-no-route');
});

test('ICMPv6 echo request to a VIP in two fragments (reassembled), no route back: a counted no-route, not an internal error', () => {
  const h = decapHost({ routes: false });
  const icmp = echoRequest(CL6, VIP6, 1, 1, new Uint8Array(56)).subarray(40);
  const f1 = ipv6(CL6, VIP6, IPPROTO_ICMPV6, icmp.subarray(0, 32), [frag(0, true, 9)]);
  const f2 = ipv6(CL6, VIP6, IPPROTO_ICMPV6, icmp.subarray(32), [frag(32, false, 9)]);
  const sent = h.input([fromLb(f1), fromLb(f2)]);
  assert.equal(sent, [], 'nothing sent');
  noInternalError(h, 'ipv6-no-route');
});

test('with a route back, the same requests are answered from the VIP (the fix drops nothing it should send)', () => {
  const h = decapHost();
  const icmp = echoRequest(CL4, VIP4, 1, 1, new Uint8Array(56)).subarray(20);
  const f1 = ipv4(CL4, VIP4, IPPROTO_ICMP, icmp.subarray(0, 32), { id: 8, flagsFrag: 0x2000 });
  const f2 = ipv4(CL4, VIP4, IPPROTO_ICMP, icmp.subarray(32), { id: 8, flagsFrag: 32 >>> 3 });
  // Routed through the gateway: its resolution goes out first (the replies wait for it).
  const sent = h.input([fromLb(echoRequest(CL6, VIP6, 1, 1, new Uint8Array(16))), fromLb(f1), fromLb(f2)]);
  assert.equal(sent.map((w) => w.arp ? `arp ${w.arp.tpa}` : `ns ${w.nsTarget}`).sort(), ['arp 10.1.1.254', 'ns fd00:1::fe']);
  const replies = h.input([arpReply(10, GW_MAC, '10.1.1.254', VS_MAC, ADDR4), eth(10, VS_MAC, GW_MAC, naPacket('fd00:1::fe', GW_MAC, ADDR6))]);
  assert.equal(replies.map((w) => [w.ethDst, w.ip!.src, w.ip!.dst, w.icmp!.type, w.icmp!.body.length]).sort(),
    [[macText(GW_MAC), VIP6, CL6, 129, 16], [macText(GW_MAC), VIP4, CL4, 0, 56]].sort(), 'both echo replies, from the VIPs, to the gateway');
  assert.is(h.e.internalErrors, 0);
  assert.equal(h.drops(), {});
  assert.is(h.pool.check().held, 0);
});

test.run();
