/**
 * Regression (found by lab6-tcp against a kernel router): with a route via a link-local gateway
 * (`default via fe80::…%link`), datagrams and connections to a global destination left with the
 * link-local address as their source, which a router must not forward (RFC 4291 2.5.6; Linux
 * answers "beyond scope of source address"). RFC 6724 section 5, rule 2: the source is chosen for
 * the destination's scope, not the next hop's. Two engines on the memory link, virtual time.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts } from './lib/world';
import { addrToString, linkLocalFromMac } from '../protocols/ip/addr';
import { connect, createServer, Socket } from '../stack/api/net';

function world() {
  const w = twoHosts({ ipv6: true, engine: { ndp: { dadTransmits: 0 } } });
  // Host b also holds a global address of another prefix (a host behind the gateway, in effect);
  // host a reaches it only through its default route via b's link-local address.
  w.b.engine.addAddress(w.b.vs[0]!, 'eth0.10', 'fd00:72::2/64');
  const bLl = addrToString(linkLocalFromMac(w.b.vs[0]!.links[0]!.mac));
  w.a.engine.addRoute(w.a.vs[0]!, { dst: '::/0', via: bLl, link: 'eth0.10' });
  return w;
}

test('UDP to a global destination through a link-local gateway leaves from a global address', async () => {
  const w = world();
  const heard: string[] = [];
  const rx = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp6' });
  rx.bind(9);
  rx.on('message', (m: Buffer, r: { address: string }) => heard.push(`${r.address} ${m.toString()}`));
  const tx = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  tx.bind(0);
  tx.send('via gw', 9, 'fd00:72::2');
  assert.ok(await w.run(() => heard.length > 0, 5_000_000), 'delivered');
  assert.equal(heard, ['fd00::1 via gw']);
});

test('TCP to a global destination through a link-local gateway binds a global source', async () => {
  const w = world();
  let seen = '';
  createServer(w.b.ctx(), (s: Socket) => { seen = `${s.remoteAddress}`; s.end(); }).listen(80);
  const c = connect(w.a.ctx(), { port: 80, host: 'fd00:72::2' });
  let local = '';
  c.on('connect', () => { local = `${c.localAddress}`; });
  c.on('error', () => {});
  assert.ok(await w.run(() => seen !== '', 5_000_000), 'connected');
  assert.is(local, 'fd00::1');
  assert.is(seen, 'fd00::1');
  c.destroy();
});

test('a link-local destination still gets the link-local source', async () => {
  const w = world();
  const heard: string[] = [];
  const rx = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp6' });
  rx.bind(9);
  rx.on('message', (m: Buffer, r: { address: string }) => heard.push(r.address));
  const tx = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  tx.bind(0);
  const bLl = addrToString(linkLocalFromMac(w.b.vs[0]!.links[0]!.mac));
  tx.send('ll', 9, `${bLl}%eth0.10`);
  assert.ok(await w.run(() => heard.length > 0, 5_000_000), 'delivered');
  assert.equal(heard, [addrToString(linkLocalFromMac(w.a.vs[0]!.links[0]!.mac))]);
});

test.run();
