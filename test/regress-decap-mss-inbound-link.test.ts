/**
 * Regression: the MSS offered on a VIP was the path MTU toward the client less the tunnel
 * overhead, whatever the MTU of the link the load balancer's packets come in on. With the replies
 * routed out of a link with a larger MTU than the load balancer's (here 1500 against 1400), the
 * client was offered segments that, once the load balancer adds its header, no longer fit the link
 * between them: the very thing the overhead is there to prevent (the load balancer fragments or
 * drops them). The client's segments come in through that link (RFC 9293 3.7.1: the MSS offered
 * is what this end can receive): the offer must fit it, the encapsulation included.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arpReply, eth, GW_MAC, naPacket, Wire } from './lib/decap-frames';
import { ipPacket } from './lib/encap-frames';
import { IPPROTO_TCP } from '../protocols/ipv4';
import { ANY6 } from '../protocols/ip/addr';
import { ADDR4, ADDR6, CL4, CL6, decapHost, LB4, LB6, VIP4, VIP6, VS2_MAC, VS_MAC } from './lib/decap-host';
import { encap, LB_MAC } from './lib/decap-frames';

const LB_LINK_MTU = 1400;

const CASES = [
  { name: 'IPv4 in IPv4', outer: 4, vip: VIP4, client: CL4, mss: LB_LINK_MTU - 20 - 40 },
  { name: 'IPv6 in IPv6', outer: 6, vip: VIP6, client: CL6, mss: LB_LINK_MTU - 40 - 60 },
  { name: 'IPv6 in IPv4', outer: 4, vip: VIP6, client: CL6, mss: LB_LINK_MTU - 20 - 60 },
  { name: 'IPv4 in IPv6', outer: 6, vip: VIP4, client: CL4, mss: LB_LINK_MTU - 40 - 40 },
] as const;

const GATEWAY_ANSWERS = [
  arpReply(20, GW_MAC, '10.2.2.254', VS2_MAC, '10.2.2.1'),
  eth(20, VS2_MAC, GW_MAC, naPacket('fd00:2::fe', GW_MAC, 'fd00:2::1')),
];

for (const c of CASES) {
  test(`${c.name}: the MSS offered on a VIP fits the load balancer's link (MTU ${LB_LINK_MTU}) with its header, though replies leave by a 1500 link`, () => {
    const h = decapHost({ second: true, routes: 'vlan20', mtu: LB_LINK_MTU });
    const l = h.e.tcp.listen(h.vs, ANY6, 80, { backlog: 8, synBacklog: 16, tcp: {}, onConnection: () => {} }, false);
    const syn = ipPacket({ src: c.client, dst: c.vip, proto: IPPROTO_TCP, sport: 40000, dport: 80, tcp: { mss: 1460 } });
    const frame = eth(10, VS_MAC, LB_MAC, encap(c.outer === 4 ? LB4 : LB6, c.outer === 4 ? ADDR4 : ADDR6, syn));
    const sent: Wire[] = [...h.input([frame]), ...h.input(GATEWAY_ANSWERS)];
    const synAck = sent.filter((w) => w.tcp);
    assert.is(synAck.length, 1, 'one SYN-ACK');
    assert.is(synAck[0]!.vlan, 20, 'routed out of the other link');
    assert.is(synAck[0]!.ip!.src, c.vip);
    assert.is(synAck[0]!.tcp!.mss, c.mss, `MSS: ${LB_LINK_MTU} less the outer header, less the inner IP and TCP headers`);
    h.e.tcp.unlisten(l);
  });
}

test('a SYN answered with a cookie (SYN queue full) offers the same', () => {
  const h = decapHost({ second: true, routes: 'vlan20', mtu: LB_LINK_MTU });
  const l = h.e.tcp.listen(h.vs, 0, 80, { backlog: 8, synBacklog: 0, tcp: {}, onConnection: () => {} }, false);
  const syn = ipPacket({ src: CL4, dst: VIP4, proto: IPPROTO_TCP, sport: 40000, dport: 80, tcp: { mss: 1460 } });
  const sent = [...h.input([eth(10, VS_MAC, LB_MAC, encap(LB4, ADDR4, syn))]), ...h.input(GATEWAY_ANSWERS)];
  const synAck = sent.filter((w) => w.tcp);
  assert.is(synAck.length, 1);
  assert.is(l.synCookiesSent, 1, 'a cookie');
  assert.is(synAck[0]!.tcp!.mss, LB_LINK_MTU - 20 - 40);
  h.e.tcp.unlisten(l);
});

test('the offer is still bounded by the path toward the client when that is the smaller (replies leave by a 1280 link)', () => {
  const h = decapHost({ second: true, routes: 'vlan20', mtu: 1500 });
  h.e.vs('t').link('eth0.20')!.mtu = 1280;
  const l = h.e.tcp.listen(h.vs, 0, 80, { backlog: 8, synBacklog: 16, tcp: {}, onConnection: () => {} }, false);
  const syn = ipPacket({ src: CL4, dst: VIP4, proto: IPPROTO_TCP, sport: 40000, dport: 80, tcp: { mss: 1460 } });
  const sent = [...h.input([eth(10, VS_MAC, LB_MAC, encap(LB4, ADDR4, syn))]), ...h.input(GATEWAY_ANSWERS)];
  const synAck = sent.filter((w) => w.tcp);
  assert.is(synAck.length, 1);
  assert.is(synAck[0]!.tcp!.mss, 1280 - 40 - 20);
  h.e.tcp.unlisten(l);
});

test.run();
