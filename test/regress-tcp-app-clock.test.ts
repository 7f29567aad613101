/**
 * Regression: time used by application calls was stale. After the stack had been idle (no step ran),
 * connect() stamped its SYN with the last step's time: the retransmission timer had long expired
 * when the next step ran, so the SYN and its retransmissions left back to back (same millisecond,
 * timestamps seconds apart) and a connect could fail with ETIMEDOUT within seconds. Every call from
 * the application must see the current time (the runtime's clock: monotonic in real time, the
 * virtual clock here).
 *
 * Two engines over the memory link with a virtual clock that the test advances WITHOUT stepping
 * the engines (an idle real-time stack: nothing due, so no step runs).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMemoryLink, MemoryEndpoint } from '../driver/memory';
import { Burst } from '../driver/types';
import { Engine } from '../stack/engine';
import { Runtime } from '../stack/runtime';
import { connect, createServer, NetContext, Socket } from '../stack/api/net';
import type { ZeroCopyChunk } from '../stack/transport/tcp';
import { realTimeHosts, until } from './lib/realtime';
import { TcpHeader } from '../protocols/tcp';
import { TH_SYN } from '../protocols/tcp/types';
import { ETH_P_IPV4 } from '../protocols/ethernet';

const SECRET = new Uint8Array(16).map((_, i) => i * 29 + 1);

interface Sent { at: number; proto: number; flags: number; tsVal: number; arp: boolean }

/** Records what an endpoint transmits, with the time of the transmission. */
function tap(ep: MemoryEndpoint): Sent[] {
  const seen: Sent[] = [];
  const h = new TcpHeader();
  const orig = ep.tx.bind(ep);
  ep.tx = (b: Burst, now: number) => {
    const bytes = ep.pool.bytes;
    for (let i = 0; i < b.n; i++) {
      const off = b.off[i]!;
      let l3 = off + 14;
      let et = (bytes[off + 12]! << 8) | bytes[off + 13]!;
      if (et === 0x8100) { et = (bytes[off + 16]! << 8) | bytes[off + 17]!; l3 += 4; }
      if (et === 0x0806) { seen.push({ at: now, proto: 0, flags: 0, tsVal: 0, arp: true }); continue; }
      if (et !== ETH_P_IPV4) continue;
      const proto = bytes[l3 + 9]!;
      const ihl = (bytes[l3]! & 15) * 4;
      const tot = (bytes[l3 + 2]! << 8) | bytes[l3 + 3]!;
      const rd = (o: number) => ((bytes[o]! << 24) | (bytes[o + 1]! << 16) | (bytes[o + 2]! << 8) | bytes[o + 3]!) >>> 0;
      if (proto === 6 && h.parse(bytes, l3 + ihl, tot - ihl, rd(l3 + 12), rd(l3 + 16)) === 0) {
        seen.push({ at: now, proto, flags: h.flags, tsVal: h.tsVal, arp: false });
      } else seen.push({ at: now, proto, flags: 0, tsVal: 0, arp: false });
    }
    return orig(b, now);
  };
  return seen;
}

function world() {
  const link = createMemoryLink({ frameCount: 2048, wireFrames: 2048 });
  let now = 5_000_000;
  const mk = (ep: typeof link.a, addr: string) => {
    const engine = new Engine({ secret: SECRET, now });
    engine.addDevice({ name: 'eth0', pool: ep.pool, mac: ep.mac, mtu: ep.mtu });
    const runtime = new Runtime(engine, [ep], { clock: () => now });
    const vs = engine.createVs('vs');
    engine.addLink(vs, { device: 'eth0', vlan: 10 });
    engine.addAddress(vs, 'eth0.10', addr);
    const ctx: NetContext = { engine, vs, now: () => now };
    return { engine, runtime, vs, ctx };
  };
  const a = mk(link.a, '10.1.1.1/24');
  const b = mk(link.b, '10.1.1.2/24');
  const turn = () => new Promise<void>((r) => setImmediate(r));
  /** Steps both hosts from deadline to deadline for `us` of virtual time. */
  async function run(us: number): Promise<void> {
    const end = now + us;
    for (let i = 0; i < 1_000_000; i++) {
      const na = a.runtime.step(now);
      const nb = b.runtime.step(now);
      await turn();
      const next = Math.min(na, nb, a.runtime.step(now), b.runtime.step(now), link.nextDeadline());
      if (next > end) { await turn(); now = end; return; }
      now = next > now ? next : Math.floor(now / 1000) * 1000 + 1000;
    }
    throw new Error('virtual run did not settle');
  }
  /** The clock moves on while nothing runs (an idle stack). */
  const idle = (us: number) => { now += us; };
  return { link, a, b, run, idle, now: () => now };
}

/**
 * Neighbors learn each other (A refuses port 81 with a RST: the exchange resolves ARP both ways),
 * then A hears nothing more from B: every SYN from B goes unanswered.
 */
async function unanswered(w: ReturnType<typeof world>): Promise<void> {
  let refused = '';
  const c0 = connect(w.b.ctx, 81, '10.1.1.1');
  c0.on('error', (e: NodeJS.ErrnoException) => { refused = e.code ?? ''; });
  await w.run(100_000);
  assert.is(refused, 'ECONNREFUSED');
  w.link.setImpairments('ba', { loss: 1 });
}

test('connect() after an idle spell: the SYN leaves at once, retransmissions follow the RTO (1 s, 2 s, 4 s), TSvals follow the clock', async () => {
  const w = world();
  const fromB = tap(w.link.b);
  await unanswered(w);
  const lastStep = w.now();
  w.idle(20_000_000); // 20 s without a step (nothing was due)
  const t0 = w.now();
  let err = '';
  const c = connect(w.b.ctx, 80, '10.1.1.1');
  c.on('error', (e: NodeJS.ErrnoException) => { err = e.code ?? ''; });
  const before = fromB.length;
  await w.run(8_000_000);
  assert.is(err, '', 'no error within 8 s (6 SYN retries take 127 s)');
  const syns = fromB.slice(before).filter((s) => s.proto === 6 && s.flags === TH_SYN);
  assert.ok(syns.length >= 4, `SYNs sent: ${syns.length}`);
  assert.ok(syns[0]!.at - t0 < 2000, `first SYN at once (${syns[0]!.at - t0} µs after connect())`);
  const gaps = syns.slice(1, 4).map((s, i) => s.at - syns[i]!.at);
  // RFC 6298 2.1 and 5.5: initial RTO 1 s, doubled on each timeout.
  [1_000_000, 2_000_000, 4_000_000].forEach((want, i) => {
    assert.ok(Math.abs(gaps[i]! - want) <= 2000, `gap ${i + 1} is ${gaps[i]} µs, want ${want} (gaps ${gaps})`);
  });
  // Timestamps (RFC 7323, 1 ms ticks) advance as the SYNs' times do, and start from the current time.
  for (let i = 1; i < 4; i++) {
    const dTs = (syns[i]!.tsVal - syns[0]!.tsVal) >>> 0;
    const dT = (syns[i]!.at - syns[0]!.at) / 1000;
    assert.ok(Math.abs(dTs - dT) <= 2, `TSval step ${dTs} ms for ${dT} ms`);
  }
  assert.ok(t0 - lastStep >= 20_000_000);
  c.destroy();
});

test('real time: a step that comes 10 s late fires each due timer once (no burst of SYN retransmissions, no early ETIMEDOUT)', async () => {
  const w = world();
  const fromB = tap(w.link.b);
  await unanswered(w);
  // As Runtime.start() sets it for real time: a late timer sees the time it runs.
  w.b.engine.wheel.replayLate = false;
  let err = '';
  const c = connect(w.b.ctx, 80, '10.1.1.1');
  c.on('error', (e: NodeJS.ErrnoException) => { err = e.code ?? ''; });
  await w.run(10_000);
  const before = fromB.length;
  const synsSince = (k: number) => fromB.slice(k).filter((x) => x.proto === 6 && x.flags === TH_SYN);
  // The process was stopped (or the event loop busy) for 10 s: the RTO was due after 1 s, and
  // replaying the missed deadlines would send the retransmissions due at 1, 3 and 7 s at once.
  w.idle(10_000_000);
  w.b.runtime.step(w.now());
  const late = synsSince(before);
  assert.is(late.length, 1, `SYNs sent by the late step: ${late.length}`);
  // The next retransmission follows the doubled RTO from now (RFC 6298 5.5), not from the missed deadline.
  const mark = fromB.length;
  await w.run(1_500_000);
  assert.is(synsSince(mark).length, 0, 'no retransmission within 1.5 s of the late one');
  await w.run(1_000_000);
  assert.is(synsSince(mark).length, 1, 'one retransmission 2 s after the late one');
  assert.is(err, '', 'the connect is still going (6 SYN retries take 127 s)');
  c.destroy();
});

test('a zero-copy reader releasing its chunks after an idle spell: the window update carries the current TSval', async () => {
  const w = world();
  const fromA = tap(w.link.a);
  const held: ZeroCopyChunk[] = [];
  createServer(w.a.ctx, (s: Socket) => { s.setZeroCopyReader((ch) => held.push(ch)); }).listen(80);
  const c = connect(w.b.ctx, 80, '10.1.1.1', () => c.write(Buffer.alloc(400_000, 3)));
  await w.run(3_000_000);
  const got = held.reduce((n, ch) => n + ch.length, 0);
  assert.ok(got >= 200_000 && got < 400_000, `the receive window closed on held chunks (${got} bytes held)`);
  const lastTs = fromA.filter((s) => s.proto === 6).pop()!.tsVal;
  w.idle(30_000_000); // 30 s without a step
  const t0 = w.now();
  const before = fromA.length;
  for (const ch of held.splice(0)) ch.release(); // the window reopens: an update leaves
  await w.run(1000);
  const upd = fromA.slice(before).filter((s) => s.proto === 6);
  assert.ok(upd.length >= 1, 'a window update was sent');
  assert.ok(upd[0]!.at - t0 < 2000, 'at once');
  // RFC 7323 4.1: the TSval is the current clock. A stale one (30 s old) would be echoed by the
  // peer and read back as a 30 s RTT sample.
  const dTs = (upd[0]!.tsVal - lastTs) >>> 0;
  assert.ok(dTs >= 29_990 && dTs <= 33_100, `TSval advanced by ${dTs} ms over 30 s`);
  c.destroy();
});

test('UDP send() after an idle spell: ARP for a new neighbor is retried each second, not all at once', async () => {
  const w = world();
  const fromB = tap(w.link.b);
  await w.run(10_000);
  w.idle(15_000_000);
  const t0 = w.now();
  const u = w.b.engine.createUdpSocket(w.b.vs);
  u.send(Buffer.from('x'), 9, '10.1.1.77'); // nobody has this address: ARP requests go unanswered
  await w.run(2_500_000);
  const arps = fromB.filter((s) => s.arp && s.at >= t0);
  assert.ok(arps.length >= 2, `ARP requests: ${arps.length}`);
  assert.ok(arps[0]!.at - t0 < 2000, 'the first at once');
  assert.ok(Math.abs(arps[1]!.at - arps[0]!.at - 1_000_000) <= 2000, `then one second later (${arps[1]!.at - arps[0]!.at} µs)`);
  u.close();
});

test('real time: setKeepAlive() on an idle connection wakes the sleeping runtime; the probe leaves after the idle delay', async () => {
  const w = realTimeHosts();
  try {
    let server: Socket | null = null;
    createServer(w.a.ctx, (s: Socket) => { server = s; }).listen(80);
    const c = connect(w.b.ctx, 80, '10.1.1.1');
    assert.ok(await until(() => server !== null, 3000), 'connected');
    await until(() => false, 300); // both runtimes asleep: nothing is due
    const srv = server as unknown as Socket;
    const conn = srv.connection!.conn;
    const t0 = Date.now();
    srv.setKeepAlive(true, 1000); // whole seconds, as Node's (libuv) TCP_KEEPIDLE
    assert.ok(await until(() => conn.stats.keepAliveProbes >= 1, 3000), 'a keepalive probe was sent');
    const dt = Date.now() - t0;
    assert.ok(dt >= 980, `not before the idle delay (${dt} ms)`);
    assert.is(conn.stateName, 'ESTABLISHED');
    c.destroy();
  } finally {
    w.stop();
  }
});

test.run();
