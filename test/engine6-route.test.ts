/**
 * IPv6 routes through a link-local gateway (fe80::…%link) under virtual time: the next hop is
 * resolved by NDP on that link, and the source address is chosen for the destination (RFC 6724
 * rule 2, scope: a global destination gets a global source), not for the link-local gateway.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import { ip6At, ip6ToString, linkLocalFromMac } from '../protocols/ip/addr';
import { tap6, held } from './lib/engine6';

const opts = { ipv6: true, engine: { ndp: { dadTransmits: 0 } } };

async function settle(w: World): Promise<void> {
  await w.run(() => false, 10_000);
}

/** Host b also holds fd01::2/64; host a reaches fd01::/64 via b's link-local address. */
function routed(): World {
  const w = twoHosts(opts);
  w.b.engine.addAddress(w.b.vs[0]!, 'eth0.10', 'fd01::2/64');
  const llB = ip6ToString(linkLocalFromMac(w.link.b.mac));
  w.a.engine.addRoute(w.a.vs[0]!, { dst: 'fd01::/64', via: llB, link: 'eth0.10' });
  return w;
}

test('UDP via a link-local gateway: next hop resolved on the link, global source for a global destination', async () => {
  const w = routed();
  await settle(w);
  const got: [Buffer, { address: string }][] = [];
  const r = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp6' });
  r.on('message', (m: Buffer, ri: { address: string }) => got.push([m, ri]));
  r.bind(7000);
  const ta = tap6(w.link.a);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  s.send('via-ll', 7000, 'fd01::2');
  assert.ok(await w.run(() => got.length === 1, 2_000_000), 'delivered');
  const llB = ip6ToString(linkLocalFromMac(w.link.b.mac));
  const ns = ta.find((o) => o.type === 135)!;
  assert.ok(ns, 'a solicitation');
  assert.is(ip6ToString(ip6At(ns.l4, 8)), llB, 'for the gateway');
  const u = ta.find((o) => o.nh === 17)!;
  assert.is(u.dst, 'fd01::2');
  assert.is(u.src, 'fd00::1', 'a global source (RFC 6724 rule 2), not the link-local one');
  assert.is(got[0]![1].address, 'fd00::1');
  s.close();
  r.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('TCP via a link-local gateway: connects from the global address', async () => {
  const w = routed();
  await settle(w);
  let acc: Socket | null = null;
  createServer(w.b.ctx(), (x: Socket) => { acc = x; }).listen(80);
  const c = connect(w.a.ctx(), { host: 'fd01::2', port: 80 });
  assert.ok(await w.run(() => acc !== null && !c.pending, 3_000_000), 'connected');
  assert.is(c.localAddress, 'fd00::1');
  assert.is((acc! as Socket).remoteAddress, 'fd00::1');
  c.destroy();
  (acc! as Socket).destroy();
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
});

test.run();
