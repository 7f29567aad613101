/**
 * Regression: an inner IPv4 packet whose source is the subnet broadcast address of a link of the
 * VS (10.1.1.255 for 10.1.1.1/24) was taken, and everything the VS answered from the VIP (echo
 * reply, port unreachable, SYN-ACK, RST), being routed, went to that broadcast address: to
 * ff:ff:ff:ff:ff:ff on the VS's own segment. Anyone who can send to the VIP through the load
 * balancer (any client, with a forged source) could make the VS broadcast on its LAN. RFC 1122
 * 3.2.1.3: a directed broadcast is never a source, such a datagram is silently discarded (as Linux
 * does: a martian source), and 3.2.2: no ICMP error for it. Expected: nothing sent, each counted
 * as ipv4-bad-source. Also for the broadcast of another link of the VS (the reply would be routed
 * out there).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { answered, CL4, decapHost, fromLb, VIP4 } from './lib/decap-host';

const BCAST_MAC = 'ff:ff:ff:ff:ff:ff';

const inners = (src: string) => answered(src, VIP4);

for (const [what, src] of [['its own link', '10.1.1.255'], ['another link of the VS', '10.2.2.255']] as const) {
  test(`an inner packet from the subnet broadcast address of ${what} (${src}) is discarded: nothing sent, ipv4-bad-source`, () => {
    const h = decapHost({ second: true });
    const srv = h.e.tcp.listen(h.vs, 0, 80, { backlog: 8, synBacklog: 16, tcp: {}, onConnection: () => {} }, false);
    const sent = h.input(inners(src).map(fromLb));
    assert.equal(sent.filter((w) => w.ethDst === BCAST_MAC && !w.arp), [], 'nothing broadcast');
    assert.equal(sent.filter((w) => w.ip), [], 'nothing sent');
    assert.equal(h.drops(), { 'ipv4-bad-source': 4 });
    assert.is(h.e.internalErrors, 0);
    h.e.tcp.unlisten(srv);
    assert.is(h.pool.check().held, 0, 'every frame back');
  });
}

test('the same packets from a client are answered (the check refuses broadcasts only)', () => {
  const h = decapHost({ second: true });
  const srv = h.e.tcp.listen(h.vs, 0, 80, { backlog: 8, synBacklog: 16, tcp: {}, onConnection: () => {} }, false);
  const sent = h.input(inners(CL4).map(fromLb));
  // Routed through the gateway, whose address is resolved first: the replies wait for it.
  assert.equal(sent.map((w) => w.arp?.tpa), ['10.1.1.254']);
  assert.equal(h.drops(), { 'udp-no-socket': 1, 'tcp-no-socket': 1 }, 'the closed ports (answered by port unreachable and RST)');
  assert.is(h.vs.counters.decapsulated, 4);
  h.e.tcp.unlisten(srv);
});

test.run();
