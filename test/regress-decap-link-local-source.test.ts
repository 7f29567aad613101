/**
 * Regression: an inner packet from a link-local source (fe80::/10, 169.254.0.0/16) was taken from
 * a tunnel and answered from the VIP, routed: a link-local destination through the VS's tables,
 * onto a link the client is not on. A link-local packet never leaves its link (RFC 4291 2.5.6,
 * RFC 3927 2.7), so one that came through a load balancer is forged or misrouted. Expected:
 * nothing sent, each counted as decap-link-scoped; the same packets from a global client are
 * answered.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { echoRequest, udpPacket } from './lib/decap-frames';
import { ipPacket } from './lib/encap-frames';
import { IPPROTO_TCP } from '../protocols/ipv4';
import { decapHost, fromLb, VIP4, VIP6 } from './lib/decap-host';

function inners(src: string, vip: string): Uint8Array[] {
  return [
    echoRequest(src, vip, 1, 1, new Uint8Array(16)),
    udpPacket(src, 40000, vip, 9, new Uint8Array(8)),
    ipPacket({ src, dst: vip, proto: IPPROTO_TCP, sport: 40001, dport: 80 }),
  ];
}

for (const [src, vip] of [['169.254.1.2', VIP4], ['fe80::1234', VIP6], ['febf::1', VIP6]] as const) {
  test(`an inner packet from the link-local ${src} to a VIP: nothing sent, decap-link-scoped`, () => {
    const h = decapHost();
    const srv = h.e.tcp.listen(h.vs, 0, 80, { backlog: 8, synBacklog: 16, tcp: {}, onConnection: () => {} }, false);
    const sent = h.input(inners(src, vip).map(fromLb));
    assert.equal(sent, [], 'nothing sent (no reply, no ARP/NDP for it)');
    assert.equal(h.drops(), { 'decap-link-scoped': 3 });
    assert.is(h.vs.counters.decapsulated, 0);
    assert.is(h.e.internalErrors, 0);
    h.e.tcp.unlisten(srv);
    assert.is(h.pool.check().held, 0, 'every frame back');
  });
}

for (const [src, vip] of [['169.255.1.2', VIP4], ['fec0::1', VIP6]] as const) {
  test(`an inner packet from ${src} (just outside the link-local range) is taken`, () => {
    const h = decapHost();
    h.input(inners(src, vip).map(fromLb));
    assert.is(h.vs.counters.decapsulated, 3);
    assert.is(h.drops()['decap-link-scoped'] ?? 0, 0);
  });
}

test.run();
