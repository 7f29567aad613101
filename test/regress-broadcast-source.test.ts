/**
 * Regression: a datagram from the wire whose source is the subnet broadcast address of the segment
 * it came on (10.1.1.255 for 10.1.1.1/24) was answered: the echo reply, port unreachable,
 * SYN-ACK and RST went to ff:ff:ff:ff:ff:ff, to every host on the segment. RFC 1122 3.2.1.3: a
 * directed broadcast address is never a source, and a host silently discards a datagram with an
 * invalid source (Linux: a martian source); 3.2.2: no ICMP error about it. Expected: nothing sent,
 * each counted as ipv4-bad-source. A host of the subnet is still answered.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseMac } from '../driver/types';
import { eth } from './lib/decap-frames';
import { ADDR4, answered, decapHost, VS_MAC } from './lib/decap-host';

const BCAST_MAC = 'ff:ff:ff:ff:ff:ff';
const PEER_MAC = parseMac('02:00:00:00:00:77');

const frames = (src: string, dst: string) => answered(src, dst).map((p) => eth(10, VS_MAC, PEER_MAC, p));

test('datagrams from the subnet broadcast address of the segment (10.1.1.255) are discarded: nothing sent, ipv4-bad-source', () => {
  const h = decapHost();
  const srv = h.e.tcp.listen(h.vs, 0, 80, { backlog: 8, synBacklog: 16, tcp: {}, onConnection: () => {} }, false);
  const sent = h.input(frames('10.1.1.255', ADDR4));
  assert.equal(sent.filter((w) => w.ethDst === BCAST_MAC && !w.arp), [], 'nothing broadcast');
  assert.equal(sent.filter((w) => w.ip), [], 'nothing sent');
  assert.equal(h.drops(), { 'ipv4-bad-source': 4 });
  assert.is(h.e.internalErrors, 0);
  h.e.tcp.unlisten(srv);
  assert.is(h.pool.check().held, 0, 'every frame back');
});

test('the same datagrams from a host of the subnet are answered, to its MAC', () => {
  const h = decapHost();
  const srv = h.e.tcp.listen(h.vs, 0, 80, { backlog: 8, synBacklog: 16, tcp: {}, onConnection: () => {} }, false);
  const sent = h.input(frames('10.1.1.7', ADDR4)).filter((w) => w.ip);
  assert.is(sent.length, 4, 'echo reply, port unreachable, SYN-ACK, RST');
  assert.ok(sent.every((w) => w.ethDst === '02:00:00:00:00:77' && w.ip!.dst === '10.1.1.7'));
  h.e.tcp.unlisten(srv);
});

test.run();
