/**
 * UDP over IPv6 through the engine and the dgram-like API, against RFC 8200 8.1 and Node's dgram
 * documentation: the mandatory checksum, a 'udp6' socket on :: hearing IPv4 peers as
 * ::ffff:a.b.c.d (family 'IPv6') unless `ipv6Only`, address()/rinfo families, and scoped
 * link-local destinations (fe80::2%link).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World } from './lib/world';
import { ip6ToString, linkLocalFromMac } from '../protocols/ip/addr';
import { A6, C6, frame6, udp6, send, tap6, icmpOf, held, drops } from './lib/engine6';
import type { UdpSocket } from '../stack/api/dgram';
import { optsHdr } from './lib/ipv6-frames';

const opts = { ipv6: true, engine: { ndp: { dadTransmits: 0 } } };
type Rinfo = { address: string; family: string; port: number; size: number };

async function settle(w: World): Promise<void> {
  await w.run(() => false, 10_000);
}

function inbox(s: UdpSocket): [Buffer, Rinfo][] {
  const got: [Buffer, Rinfo][] = [];
  s.on('message', (m: Buffer, r: Rinfo) => got.push([m, r]));
  return got;
}

test('a zero UDP checksum over IPv6 is dropped and counted (RFC 8200 8.1)', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  const got = inbox(s);
  s.bind(7000);
  await settle(w);
  const d = udp6(C6, 5000, A6, 7000, Buffer.from('zero'));
  d[6] = 0; d[7] = 0;
  send(w, frame6(w, { src: C6, dst: A6, nh: 17, l4: d }));
  send(w, frame6(w, { src: C6, dst: A6, nh: 17, l4: udp6(C6, 5000, A6, 7000, Buffer.from('good')) }));
  // Behind Hop-by-Hop and Destination Options headers: delivered as well.
  send(w, frame6(w, { src: C6, dst: A6, nh: 17, exts: [optsHdr(0, [1, 0]), optsHdr(60, [1, 2, 0, 0])], l4: udp6(C6, 5000, A6, 7000, Buffer.from('ext')) }));
  await settle(w);
  assert.equal(got.map(([m]) => String(m)), ['good', 'ext']);
  assert.is(drops(w, 'a', 'udp6-zero-checksum'), 1);
  s.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('udp6 on :: hears IPv4 peers as ::ffff:a.b.c.d (family IPv6) and its replies reach them; IPv6 peers as they are', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const srv = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  const atSrv = inbox(srv);
  srv.on('message', (m: Buffer, r: Rinfo) => srv.send(Buffer.concat([Buffer.from('re:'), m]), r.port, r.address));
  srv.bind(7000);
  await settle(w);
  assert.equal(srv.address(), { address: '::', family: 'IPv6', port: 7000 });
  const c4 = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp4' });
  const at4 = inbox(c4);
  c4.bind(4444);
  const c6 = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp6' });
  const at6 = inbox(c6);
  c6.bind(6666);
  await settle(w);
  assert.equal(c4.address(), { address: '0.0.0.0', family: 'IPv4', port: 4444 });
  c4.send('v4', 7000, '10.1.1.1');
  c6.send('v6', 7000, 'fd00::1');
  assert.ok(await w.run(() => at4.length === 1 && at6.length === 1, 1_000_000), 'both answered');
  const r4 = atSrv.find(([m]) => String(m) === 'v4')![1];
  assert.equal(r4, { address: '::ffff:10.1.1.2', family: 'IPv6', port: 4444, size: 2 });
  const r6 = atSrv.find(([m]) => String(m) === 'v6')![1];
  assert.equal(r6, { address: 'fd00::2', family: 'IPv6', port: 6666, size: 2 });
  assert.is(String(at4[0]![0]), 're:v4');
  assert.equal(at4[0]![1], { address: '10.1.1.1', family: 'IPv4', port: 7000, size: 5 });
  assert.is(String(at6[0]![0]), 're:v6');
  assert.equal(at6[0]![1], { address: 'fd00::1', family: 'IPv6', port: 7000, size: 5 });
  for (const s of [srv, c4, c6]) s.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('ipv6Only refuses IPv4 peers (port unreachable) and shares its port with an IPv4 socket; without it the port clashes', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const v6 = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6', ipv6Only: true });
  const at6 = inbox(v6);
  v6.bind(7000);
  await settle(w);
  const c4 = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp4' });
  c4.send('v4', 7000, '10.1.1.1');
  await settle(w);
  assert.is(at6.length, 0, 'not heard');
  assert.is(drops(w, 'a', 'udp-no-socket'), 1);
  // An IPv4 socket may take the same port (Linux: no clash with an IPv6-only socket).
  const v4 = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp4' });
  const at4 = inbox(v4);
  let e4: Error | null = null;
  v4.on('error', (e: Error) => { e4 = e; });
  v4.bind(7000);
  await settle(w);
  assert.is(e4, null, 'no EADDRINUSE');
  c4.send('v4b', 7000, '10.1.1.1');
  await settle(w);
  assert.is(at4.length, 1);
  // A dual-stack socket on the same port clashes with both.
  const dual = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  let ed: (Error & { code?: string }) | null = null;
  dual.on('error', (e: Error) => { ed = e; });
  dual.bind(7000);
  await settle(w);
  assert.is(ed && (ed as { code?: string }).code, 'EADDRINUSE');
  for (const s of [v6, v4, c4]) s.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('the unspecified address in another spelling (0::0) binds the wildcard as :: does', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  const got = inbox(s);
  let err: Error | null = null;
  s.on('error', (e: Error) => { err = e; });
  s.bind(7400, '0:0::0');
  await settle(w);
  assert.is(err, null);
  assert.equal(s.address(), { address: '::', family: 'IPv6', port: 7400 });
  const c = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp4' });
  c.send('v4', 7400, '10.1.1.1');
  assert.ok(await w.run(() => got.length === 1, 1_000_000), 'hears IPv4 too');
  s.close();
  c.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('udp6 bound to an IPv6 address, connected: address() and remoteAddress() families', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  s.bind(7100, 'fd00::1');
  await settle(w);
  assert.equal(s.address(), { address: 'fd00::1', family: 'IPv6', port: 7100 });
  s.connect(7200, 'fd00::2');
  await settle(w);
  assert.equal(s.remoteAddress(), { address: 'fd00::2', family: 'IPv6', port: 7200 });
  const r = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp6' });
  const got = inbox(r);
  r.bind(7200);
  await settle(w);
  s.send('c');
  assert.ok(await w.run(() => got.length === 1, 1_000_000));
  assert.equal(got[0]![1], { address: 'fd00::1', family: 'IPv6', port: 7100, size: 1 });
  s.close();
  r.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('scoped link-local: send to fe80::…%eth0.10 leaves on that link from our link-local address; without a scope a clear error', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const llA = ip6ToString(linkLocalFromMac(w.link.a.mac));
  const llB = ip6ToString(linkLocalFromMac(w.link.b.mac));
  const r = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp6' });
  const got = inbox(r);
  r.bind(7300);
  await settle(w);
  const ta = tap6(w.link.a);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  s.send('ll', 7300, `${llB}%eth0.10`);
  assert.ok(await w.run(() => got.length === 1, 2_000_000), 'received');
  assert.ok(got[0]![1].address.startsWith(llA), `from our link-local address (${got[0]![1].address})`);
  const u = ta.filter((o) => o.nh === 17);
  assert.is(u[0]!.src, llA);
  assert.is(u[0]!.dst, llB);
  // The reply path: b answers to what it heard.
  // Without a scope: EINVAL naming the missing link; with an unknown link: EINVAL too.
  const errs: (Error & { code?: string })[] = [];
  s.send('x', 7300, llB, (e: Error | null) => { if (e) errs.push(e); });
  s.send('x', 7300, `${llB}%nosuch`, (e: Error | null) => { if (e) errs.push(e); });
  await settle(w);
  assert.is(errs.length, 2);
  assert.is(errs[0]!.code, 'EINVAL');
  assert.match(errs[0]!.message, /link/);
  assert.is(errs[1]!.code, 'EINVAL');
  assert.match(errs[1]!.message, /nosuch/);
  // connect() with a scope, then send.
  const c = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  c.connect(7300, `${llB}%eth0.10`);
  await settle(w);
  c.send('cc');
  assert.ok(await w.run(() => got.length === 2, 2_000_000), 'connected send received');
  for (const x of [s, c, r]) x.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
  void icmpOf;
});

test.run();
