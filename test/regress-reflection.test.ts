/**
 * Regressions: traffic reflection for UDP and TCP (README "Traffic reflection": replies leave
 * through the link and towards the MAC the request came from).
 *
 * A tenant's clients behind a router arrive from off-subnet addresses with the router's MAC as
 * source. The VS has no route back to them (or only a default route through another gateway that
 * does not answer ARP). UDP answers and the segments of passively opened TCP connections used to be
 * routed: no route (dropped) or an ARP request for the gateway, and no answer. They must go back to
 * the MAC and link the request came from, without any ARP request.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World, pattern, sha } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import { parseMac, Burst } from '../driver/types';
import { ip, udpFrame, push, drain, oneVs } from './lib/frames';
import { ipv4ToString } from '../protocols/ipv4';
import { UDP_RETURN_PATHS_MAX } from '../stack/api/dgram';

/** Host b becomes 198.51.100.7/24, a client behind a "router" (its own MAC) reaching 10.1.1.0/24 on-link. */
function behindRouter(): { w: World; arpFromA: number[] } {
  const w = twoHosts();
  const bvs = w.b.vs[0]!;
  w.b.engine.removeAddress(bvs, 'eth0.10', '10.1.1.2/24');
  w.b.engine.addAddress(bvs, 'eth0.10', '198.51.100.7/24');
  w.b.engine.addRoute(bvs, { dst: '10.1.1.0/24', link: 'eth0.10' });
  // Host a: its only way off-subnet is a gateway that never answers ARP.
  w.a.engine.addRoute(w.a.vs[0]!, { dst: 'default', via: '10.1.1.254' });
  const arpFromA: number[] = [];
  const orig = w.link.a.tx.bind(w.link.a);
  w.link.a.tx = (b, now) => {
    const p = w.link.a.pool.bytes;
    for (let i = 0; i < b.n; i++) {
      const o = b.off[i]! + 18;
      if (p[o - 2] === 0x08 && p[o - 1] === 0x06 && p[o + 7] === 1) {
        const spa = ((p[o + 14]! << 24) | (p[o + 15]! << 16) | (p[o + 16]! << 8) | p[o + 17]!) >>> 0;
        const tpa = ((p[o + 24]! << 24) | (p[o + 25]! << 16) | (p[o + 26]! << 8) | p[o + 27]!) >>> 0;
        if (spa !== tpa) arpFromA.push(tpa); // gratuitous ARPs aside
      }
    }
    return orig(b, now);
  };
  return { w, arpFromA };
}

test('UDP: the answer to a datagram from behind a router goes back to the router\'s MAC, no ARP', async () => {
  const { w, arpFromA } = behindRouter();
  const server = w.a.engine.createUdpSocket(w.a.vs[0]!);
  server.bind(7);
  server.on('message', (m: Buffer, r) => server.send(m, r.port, r.address));
  const client = w.b.engine.createUdpSocket(w.b.vs[0]!);
  const got: string[] = [];
  client.on('message', (m: Buffer, r) => got.push(`${m.toString()}@${r.address}:${r.port}`));
  client.bind(5353);
  await w.run(() => false, 1000);
  for (let i = 0; i < 3; i++) client.send(`ping${i}`, 7, '10.1.1.1');
  assert.ok(await w.run(() => got.length === 3, 3_000_000), `answers: ${got}`);
  assert.equal(got, ['ping0@10.1.1.1:7', 'ping1@10.1.1.1:7', 'ping2@10.1.1.1:7']);
  assert.equal(arpFromA.map(ipv4ToString), [], 'no ARP request from the server');
  assert.is(w.a.vs[0]!.counters.toJSON().drops.reasons['neighbor-unreachable'] ?? 0, 0);
  server.close();
  client.close();
});

test('TCP: a passively opened connection from behind a router answers through the router, data both ways, close', async () => {
  const { w, arpFromA } = behindRouter();
  const up = pattern(100_000, 3);
  const down = pattern(150_000, 4);
  const atServer: Buffer[] = [];
  const atClient: Buffer[] = [];
  let serverEnd = false;
  let clientEnd = false;
  let peer = '';
  createServer(w.a.ctx(), (s: Socket) => {
    peer = `${s.remoteAddress}:${s.remotePort}`;
    s.on('data', (d: Buffer) => atServer.push(d));
    s.on('end', () => { serverEnd = true; });
    s.end(down);
  }).listen(80);
  const c = connect(w.b.ctx(), 80, '10.1.1.1', () => c.end(up));
  c.on('data', (d: Buffer) => atClient.push(d));
  c.on('end', () => { clientEnd = true; });
  let err: Error | null = null;
  c.on('error', (e: Error) => { err = e; });
  assert.ok(await w.run(() => (serverEnd && clientEnd) || err !== null, 30_000_000), 'the exchange ended');
  assert.is(err, null);
  assert.match(peer, /^::ffff:198\.51\.100\.7:/); // listening on :: (no host): IPv4 peers IPv4-mapped, as Node
  assert.is(sha(Buffer.concat(atServer)), sha(up));
  assert.is(sha(Buffer.concat(atClient)), sha(down));
  assert.equal(arpFromA.map(ipv4ToString), [], 'no ARP request from the server');
  assert.is(w.a.vs[0]!.counters.toJSON().drops.reasons['ipv4-no-route'] ?? 0, 0);
});

test('TCP: a RST for a closed port goes back through the router (the client is refused at once)', async () => {
  const { w, arpFromA } = behindRouter();
  let code = '';
  const c = connect(w.b.ctx(), 81, '10.1.1.1');
  c.on('error', (e: Error & { code?: string }) => { code = e.code ?? ''; });
  assert.ok(await w.run(() => code !== '', 2_000_000), 'refused within 2 s');
  assert.is(code, 'ECONNREFUSED');
  assert.equal(arpFromA.map(ipv4ToString), []);
});

test('UDP reflection at the frame level: the router\'s MAC, the link it came on, from the address it was sent to', () => {
  // The secondary address 10.1.1.5 is the one the request goes to.
  const { pool, e, vs, vsMac } = oneVs(64, ['10.1.1.1/24', '10.1.1.5/24']);
  const router = parseMac('02:00:00:00:99:01');
  const s = e.createUdpSocket(vs);
  s.bind(53);
  s.on('message', (m: Buffer, r) => s.send(m, r.port, r.address));
  const burst = new Burst();
  push(pool, burst, udpFrame(10, vsMac, router, '203.0.113.9', 4000, '10.1.1.5', 53, new TextEncoder().encode('q')));
  e.input(0, burst, 1000);
  e.flushEvents();
  const out = drain(pool, e.devices[0]!.out);
  assert.is(out.length, 1, `one frame out: ${JSON.stringify(out.map((d) => [d.dst, d.etherType]))}`);
  const r = out[0]!;
  assert.is(r.vlan, 10);
  assert.is(r.dst, '02:00:00:00:99:01');
  assert.is(r.src, '02:00:00:00:01:01');
  assert.equal([r.ipv4!.src, r.ipv4!.dst], [ip('10.1.1.5'), ip('203.0.113.9')]);
  assert.equal([r.udp!.srcPort, r.udp!.dstPort], [53, 4000]);
  // Sending to a peer never heard from is routed as before: no route here.
  let err: (Error & { code?: string }) | null = null;
  try { e.udpSend(s, new Uint8Array(1), 4000, ip('203.0.113.10')); } catch (x) { err = x as Error; }
  assert.is(err?.code, 'ENETUNREACH');
  s.close();
  assert.is(pool.check().free, 64);
});

test('the return paths a UDP socket remembers are bounded; a peer heard again stays', () => {
  const { pool, e, vs, vsMac } = oneVs(256, ['10.1.1.1/24']);
  const s = e.createUdpSocket(vs);
  s.bind(53);
  s.on('message', () => {});
  const router = parseMac('02:00:00:00:99:01');
  const burst = new Burst();
  const n = UDP_RETURN_PATHS_MAX + 200;
  const keep = ip('203.0.113.9') * 65536 + 1000;
  for (let i = 0; i < n; i++) {
    push(pool, burst, udpFrame(10, vsMac, router, '203.0.113.9', 1000 + i, '10.1.1.1', 53, new Uint8Array([1])));
    // The first peer is heard again now and then, as a client in a conversation.
    if (i % 300 === 299) push(pool, burst, udpFrame(10, vsMac, router, '203.0.113.9', 1000, '10.1.1.1', 53, new Uint8Array([2])));
    if (burst.n >= 32) { e.input(0, burst, 1000 + i); e.flushEvents(); }
  }
  e.input(0, burst, 1_000_000);
  e.flushEvents();
  assert.is(s.returnPaths!.size, UDP_RETURN_PATHS_MAX);
  assert.ok(s.returnPaths!.has(keep), 'the peer in conversation kept its return path');
  assert.not.ok(s.returnPaths!.has(ip('203.0.113.9') * 65536 + 1001), 'the least recently heard went first');
  s.close();
  assert.is(pool.check().free, 256);
});

test.run();
