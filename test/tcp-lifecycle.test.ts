/**
 * TCP connection lifecycle through the engine: TIME_WAIT reuse by a newer SYN and the bounded
 * TIME_WAIT table, ICMP errors reaching the right connection, sockets told when their VS goes away.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import { Burst, parseMac } from '../driver/types';
import { FramePool } from '../umem/pool';
import { Engine } from '../stack/engine';
import { arpFrame, drain, push } from './lib/frames';
import { writeEth, ETH_P_IPV4 } from '../protocols/ethernet';
import { writeIpv4, IPPROTO_ICMP, parseIpv4 } from '../protocols/ipv4';
import { writeIcmpError } from '../protocols/icmp';

/** Server closes first, so the server side ends in TIME_WAIT. */
async function serverClosesFirst(w: ReturnType<typeof twoHosts>, localPort?: number): Promise<Socket> {
  let done = false;
  const c = connect(w.b.ctx(), { port: 80, host: '10.1.1.1', localPort });
  c.on('data', () => {});
  c.on('end', () => c.end());
  c.on('close', () => { done = true; });
  assert.ok(await w.run(() => done, 5_000_000), 'connection closed');
  await w.run(() => false, 100_000); // the last ACK reaches the server
  return c;
}

test('a newer SYN reuses a 4-tuple in TIME_WAIT; the bounded table forgets the oldest', async () => {
  const w = twoHosts({ maxTimeWait: 3 });
  let accepted = 0;
  createServer(w.a.ctx(), (s: Socket) => { accepted++; s.end('x'); }).listen(80);
  const first = await serverClosesFirst(w, 40000);
  assert.is(first.bytesRead, 1);
  const tcp = w.a.engine.tcp;
  assert.is(tcp.timeWaitCount, 1, 'server side is in TIME_WAIT');
  // Same client port again at once: the SYN is newer, the old TIME_WAIT entry gives way.
  await serverClosesFirst(w, 40000);
  assert.is(accepted, 2);
  assert.is(tcp.timeWaitReused, 1);
  assert.is(tcp.timeWaitCount, 1);
  // Five more connections: at most 3 stay in TIME_WAIT.
  for (let i = 0; i < 5; i++) await serverClosesFirst(w);
  assert.is(tcp.timeWaitCount, 3);
  assert.is(tcp.timeWaitRecycled, 3);
  // After 2 MSL everything is gone.
  await w.run(() => false, 61_000_000);
  assert.is(tcp.timeWaitCount, 0);
  assert.is(tcp.connCount, 0);
});

test('ICMP port unreachable for our SYN fails the connect with ECONNREFUSED', async () => {
  const pool = new FramePool({ frameSize: 2048, frameCount: 256 });
  const e = new Engine({ secret: new Uint8Array(16) });
  const mac = parseMac('02:00:00:00:00:01');
  const peer = parseMac('02:00:00:00:00:02');
  e.addDevice({ name: 'eth0', pool, mac, mtu: 1500 });
  const vs = e.createVs('v');
  e.addLink(vs, { device: 'eth0' });
  e.addAddress(vs, 'eth0', '10.9.0.1/24');
  const burst = new Burst();
  // The peer's ARP request for our address teaches us its MAC (RFC 826 merge; an unsolicited reply would not).
  push(pool, burst, arpFrame(1, -1, mac, peer, '10.9.0.2', new Uint8Array(6), '10.9.0.1'));
  e.input(0, burst, 0);
  drain(pool, e.devices[0]!.out);
  const sock = connect({ engine: e, vs, now: () => 1000 }, 443, '10.9.0.2');
  let err: (Error & { code?: string }) | null = null;
  sock.on('error', (x) => { err = x; });
  await new Promise((r) => process.nextTick(r)); // the attempt starts on the next tick, as Node's
  const out = e.devices[0]!.out;
  assert.is(out.n, 1, 'the SYN is queued');
  const syn = pool.bytes.slice(out.off[0]!, out.off[0]! + out.len[0]!);
  drain(pool, out);
  // The peer's host answers with port unreachable quoting the SYN.
  const icmp = new Uint8Array(14 + 20 + 8 + 28);
  writeEth(icmp, 0, mac, 0, peer, 0, ETH_P_IPV4, -1);
  const n = writeIcmpError(icmp, 34, 3, 3, 0, syn, 14, 28);
  writeIpv4(icmp, 14, parseIpv4('10.9.0.2'), parseIpv4('10.9.0.1'), IPPROTO_ICMP, n, 64, 1, 0, 0);
  push(pool, burst, icmp.subarray(0, 34 + n));
  e.input(0, burst, 2000);
  e.flushEvents();
  await new Promise((r) => setImmediate(r));
  assert.is((err as (Error & { code?: string }) | null)?.code, 'ECONNREFUSED');
  assert.is(e.tcp.connCount, 0);
  assert.is(pool.check().held, 0);
});

test('destroying a VS tells its sockets (ECONNABORTED) and resets their peers (ECONNRESET)', async () => {
  const w = twoHosts();
  let server: Socket | null = null;
  createServer(w.a.ctx(), (s: Socket) => { server = s; }).listen(80);
  const c = connect(w.b.ctx(), 80, '10.1.1.1');
  let clientErr: (Error & { code?: string }) | null = null;
  c.on('error', (x) => { clientErr = x; });
  assert.ok(await w.run(() => server !== null, 5_000_000));
  let serverErr: (Error & { code?: string }) | null = null;
  let serverClosed = false;
  server!.on('error', (x) => { serverErr = x; });
  server!.on('close', () => { serverClosed = true; });
  w.a.engine.destroyVs(w.a.vs[0]!.name);
  assert.ok(await w.run(() => serverClosed && clientErr !== null, 5_000_000));
  assert.is((serverErr as (Error & { code?: string }) | null)?.code, 'ECONNABORTED');
  assert.is((clientErr as (Error & { code?: string }) | null)?.code, 'ECONNRESET');
});

test.run();
