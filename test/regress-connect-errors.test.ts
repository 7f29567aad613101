/**
 * Regressions: how connect() ends when the peer cannot be reached, and TCP to the VS's own address.
 *
 * - A destination (or gateway) that does not answer ARP: a kernel gives up resolving after
 *   mcast_solicit (3) requests one retrans_time (1 s) apart and reports EHOSTUNREACH to the
 *   connecting socket in about 3 s; the stack used to retransmit SYNs into the neighbor queue until
 *   ETIMEDOUT after 127 s. Datagrams waiting for such a neighbor are dropped and counted.
 * - connect() to an address of the VS itself used to sit in SYN_SENT (its SYN went to ARP for its
 *   own address); now it is looped back inside the VS like UDP to an own address: a server of the
 *   same VS accepts it, data flows both ways, both ends close; with no listener the RST comes back
 *   at once (ECONNREFUSED).
 * Virtual time over the memory link; only host a of the world is used (host b answers ARP only for
 * its own address).
 */
import { suite, test } from 'uvu';
import * as assert from 'uvu/assert';
import { constants as osConstants } from 'node:os';
import { twoHosts, World, pattern, sha } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import { ip } from './lib/frames';
import { TcpState } from '../protocols/tcp/types';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, Rig, startRig } from './lib/rig';
import { monotonicUs } from '../stack/runtime';
import type { VirtualServer } from '../stack/vs';
import type { NetContext } from '../stack/api/net';

interface Sent { arpTpa: number[]; tcp: number; ipv4: number }

/** Counts what host a puts on the wire (VLAN-tagged frames): ARP requests by target, TCP segments. */
function watchWire(w: World): Sent {
  const sent: Sent = { arpTpa: [], tcp: 0, ipv4: 0 };
  const orig = w.link.a.tx.bind(w.link.a);
  w.link.a.tx = (b, now) => {
    const p = w.link.a.pool.bytes;
    for (let i = 0; i < b.n; i++) {
      const o = b.off[i]! + 18; // after the 802.1Q tag
      const et = (p[o - 2]! << 8) | p[o - 1]!;
      // ARP requests, not counting gratuitous ones (sender address = target address).
      const spa = ((p[o + 14]! << 24) | (p[o + 15]! << 16) | (p[o + 16]! << 8) | p[o + 17]!) >>> 0;
      const tpa = ((p[o + 24]! << 24) | (p[o + 25]! << 16) | (p[o + 26]! << 8) | p[o + 27]!) >>> 0;
      if (et === 0x0806 && p[o + 7] === 1 && spa !== tpa) sent.arpTpa.push(tpa);
      if (et === 0x0800) {
        sent.ipv4++;
        if (p[o + 9] === 6) sent.tcp++;
      }
    }
    return orig(b, now);
  };
  return sent;
}

type ConnErr = Error & { code?: string; errno?: number; syscall?: string; address?: string; port?: number };

async function connectAndWait(w: World, host: string, port: number, maxUs: number): Promise<{ err: ConnErr | null; at: number; connected: boolean; s: Socket }> {
  const t0 = w.now();
  let err: ConnErr | null = null;
  let at = -1;
  let connected = false;
  const s = connect(w.a.ctx(), port, host);
  s.on('error', (e: ConnErr) => { err = e; at = w.now() - t0; });
  s.on('connect', () => { connected = true; });
  await w.run(() => err !== null || connected, maxUs);
  return { err, at, connected, s };
}

test('connect() to an on-link address that does not answer ARP fails with EHOSTUNREACH in about 3 s', async () => {
  const w = twoHosts();
  const sent = watchWire(w);
  const r = await connectAndWait(w, '10.1.1.9', 8080, 20_000_000);
  assert.not.ok(r.connected);
  assert.ok(r.err, 'an error was emitted within 20 s');
  const e = r.err!;
  assert.is(e.code, 'EHOSTUNREACH');
  assert.is(e.errno, -osConstants.errno.EHOSTUNREACH);
  assert.is(e.syscall, 'connect');
  assert.is(e.address, '10.1.1.9');
  assert.is(e.port, 8080);
  assert.match(e.message, /connect EHOSTUNREACH 10\.1\.1\.9:8080/);
  assert.ok(r.at >= 2_500_000 && r.at <= 4_000_000, `failed after ${r.at} µs (a kernel: about 3 s)`);
  assert.equal(sent.arpTpa.filter((t) => t === ip('10.1.1.9')).length, 3, 'three ARP requests, then the neighbor failed');
  assert.is(sent.tcp, 0, 'no SYN reached the wire');
  await w.run(() => false, 1_000_000);
  assert.is(w.a.engine.tcp.connCount, 0, 'the connection is gone');
  assert.is(w.a.engine.devices[0]!.pool.check().held, 0, 'every queued SYN frame was freed');
});

test('connect() through a gateway that does not answer ARP fails with EHOSTUNREACH for the destination', async () => {
  const w = twoHosts();
  w.a.engine.addRoute(w.a.vs[0]!, { dst: '192.0.2.0/24', via: '10.1.1.254' });
  const sent = watchWire(w);
  const r = await connectAndWait(w, '192.0.2.7', 443, 20_000_000);
  assert.ok(r.err, 'an error was emitted within 20 s');
  assert.is(r.err!.code, 'EHOSTUNREACH');
  assert.is(r.err!.address, '192.0.2.7');
  assert.is(r.err!.port, 443);
  assert.ok(r.at >= 2_500_000 && r.at <= 4_000_000, `failed after ${r.at} µs`);
  assert.ok(sent.arpTpa.every((t) => t === ip('10.1.1.254')) && sent.arpTpa.length === 3, 'ARP asked for the gateway');
});

test('ten connects at once to an address that does not answer ARP all fail with EHOSTUNREACH at the neighbor failure', async () => {
  // More SYNs wait than the neighbor queue holds (it keeps the newest frames): those that fell out
  // of it are told too.
  const w = twoHosts();
  const got: [string, number][] = [];
  for (let i = 0; i < 10; i++) {
    const s = connect(w.a.ctx(), 8000 + i, '10.1.1.9');
    s.on('error', (e: ConnErr) => got.push([e.code ?? '', w.now()]));
  }
  await w.run(() => got.length === 10, 30_000_000);
  assert.is(got.length, 10);
  for (const [code, at] of got) {
    assert.is(code, 'EHOSTUNREACH');
    assert.ok(at <= 4_000_000, `failed at ${at} µs`);
  }
  assert.is(w.a.engine.tcp.connCount, 0);
});

test('a datagram to an address that does not answer ARP is dropped and counted as neighbor-unreachable', async () => {
  const w = twoHosts();
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!);
  let sendErr: Error | null | undefined;
  s.send('hello', 9999, '10.1.1.9', (e: Error | null) => { sendErr = e; });
  await w.run(() => false, 5_000_000);
  assert.is(sendErr, null, 'send() itself succeeds (the error is only known later)');
  assert.is(w.a.vs[0]!.counters.toJSON().drops.reasons['neighbor-unreachable'], 1);
  assert.is(w.a.engine.devices[0]!.pool.check().held, 0);
  s.close();
});

test('a connection that resolved its neighbor and got established is not failed by a later ARP failure elsewhere', async () => {
  const w = twoHosts();
  let served: Socket | null = null;
  createServer(w.b.ctx(), (x: Socket) => { served = x; x.resume(); }).listen(80);
  const ok = await connectAndWait(w, '10.1.1.2', 80, 2_000_000);
  assert.ok(ok.connected && served, 'connected to the peer that answers');
  const bad = await connectAndWait(w, '10.1.1.9', 80, 20_000_000);
  assert.is(bad.err?.code, 'EHOSTUNREACH');
  assert.not.ok(ok.s.destroyed, 'the working connection is untouched');
  assert.is(ok.s.connection!.conn.state, TcpState.Established);
});

test('TCP to an own address of the VS: accepted by a server of the same VS, data both ways, both ends close', async () => {
  const w = twoHosts();
  const sent = watchWire(w);
  const up = pattern(300_000, 7);
  const down = pattern(200_000, 9);
  const atServer: Buffer[] = [];
  const atClient: Buffer[] = [];
  let serverEnd = false;
  let clientEnd = false;
  let serverClosed = false;
  let clientClosed = false;
  let remote = '';
  createServer(w.a.ctx(), (s: Socket) => {
    remote = `${s.remoteAddress}`;
    s.on('data', (d: Buffer) => atServer.push(d));
    s.on('end', () => { serverEnd = true; });
    s.on('close', () => { serverClosed = true; });
    s.end(down);
  }).listen(8080);
  const c = connect(w.a.ctx(), 8080, '10.1.1.1', () => c.end(up));
  c.on('data', (d: Buffer) => atClient.push(d));
  c.on('end', () => { clientEnd = true; });
  c.on('close', () => { clientClosed = true; });
  c.on('error', (e: Error) => assert.unreachable(`client error ${e.message}`));
  const done = await w.run(() => serverEnd && clientEnd && serverClosed && clientClosed, 30_000_000);
  assert.ok(done, `exchange ended (serverEnd ${serverEnd} clientEnd ${clientEnd} state ${c.connection?.conn.state})`);
  assert.is(remote, '::ffff:10.1.1.1', 'a server listening on :: (no host) sees an IPv4 peer IPv4-mapped, as Node');
  assert.is(sha(Buffer.concat(atServer)), sha(up), 'client → server byte-exact');
  assert.is(sha(Buffer.concat(atClient)), sha(down), 'server → client byte-exact');
  assert.is(sent.tcp, 0, 'no segment left on the wire');
  assert.not.ok(sent.arpTpa.includes(ip('10.1.1.1')), 'no ARP for its own address');
  // TIME_WAIT ends; every looped-back frame is back in the pool.
  assert.ok(await w.run(() => w.a.engine.tcp.connCount === 0, 200_000_000), 'connections released');
  assert.is(w.a.engine.devices[0]!.pool.check().held, 0);
});

test('TCP to an own address with no listener: ECONNREFUSED at once', async () => {
  const w = twoHosts();
  const sent = watchWire(w);
  const r = await connectAndWait(w, '10.1.1.1', 8081, 5_000_000);
  assert.not.ok(r.connected);
  assert.is(r.err?.code, 'ECONNREFUSED');
  assert.is(r.err?.syscall, 'connect');
  assert.is(r.err?.address, '10.1.1.1');
  assert.is(r.err?.port, 8081);
  assert.is(r.at, 0, `refused without waiting (after ${r.at} µs)`);
  assert.is(sent.tcp, 0);
  assert.is(w.a.vs[0]!.counters.toJSON().drops.reasons['tcp-no-socket'], 1, 'the SYN was counted as for no socket');
});

test.run();

// ---- In the lab, over AF_XDP with a Linux peer: an address nobody owns, and a client behind a
// "router" (the peer sends from an off-subnet address of its own, with its MAC as the router's).
const privileged = canRunPrivileged();
if (privileged) {
  const lab = suite('lab');
  const PREFIX = labPrefix('xe');
  let l: Lab;
  let rig: Rig;
  let vs: VirtualServer;
  let ctx: NetContext;
  lab.before(() => {
    l = labUp({ prefix: PREFIX, peers: [{ vlan: 10, ipv4: '10.1.1.2/24' }] });
    rig = startRig(l.stackDevice);
    vs = rig.engine.createVs('e1');
    rig.engine.addLink(vs, { device: l.stackDevice, vlan: 10 });
    rig.engine.addAddress(vs, `${l.stackDevice}.10`, '10.1.1.1/24');
    ctx = { engine: rig.engine, vs, now: monotonicUs };
  });
  lab.after(() => {
    rig?.close();
    labDown(PREFIX);
  });

  lab('connect() to a lab address nobody owns: EHOSTUNREACH after the ARP retries, as the kernel peer gets', async () => {
    const t0 = performance.now();
    const s = connect(ctx, 80, '10.1.1.77');
    const e = await new Promise<ConnErr | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), 20_000);
      s.once('error', (x: ConnErr) => { clearTimeout(timer); resolve(x); });
      s.once('connect', () => { clearTimeout(timer); resolve(null); });
    });
    const ms = performance.now() - t0;
    assert.ok(e, 'an error within 20 s');
    assert.is(e!.code, 'EHOSTUNREACH');
    assert.is(e!.address, '10.1.1.77');
    // Three ARP requests one second apart; the first is stamped with the engine's clock of the last
    // step, which may lag real time by a fraction of a second while the stack is idle.
    assert.ok(ms >= 1500, `not before the ARP retries (${ms.toFixed(0)} ms)`);
    // The kernel peer, asked the same: EHOSTUNREACH (No route to host) too.
    const py = 'import socket,errno,time\ns=socket.socket()\ns.settimeout(30)\nt=time.monotonic()\ntry:\n  s.connect(("10.1.1.78",80))\nexcept OSError as x:\n  print(errno.errorcode.get(x.errno), int((time.monotonic()-t)*1000))';
    const r = await nsRun(l.peers[0]!.ns, '/usr/bin/python3', ['-c', py], { timeout: 40_000 });
    assert.is(r.stdout.trim().split(' ')[0], 'EHOSTUNREACH', r.stdout + r.stderr);
    console.log(`# EHOSTUNREACH after: stack ${ms.toFixed(0)} ms, kernel peer ${r.stdout.trim().split(' ')[1]} ms`);
  });

  lab('a client behind a router gets UDP echo and TCP answers with no route and no ARP for it', async () => {
    const p = l.peers[0]!;
    await nsRun(p.ns, 'ip', ['addr', 'add', '198.51.100.7/32', 'dev', p.ifname]);
    const u = rig.engine.createUdpSocket(vs);
    u.bind(7);
    u.on('message', (m: Buffer, r) => u.send(m, r.port, r.address));
    createServer(ctx, (x: Socket) => { x.on('data', (d: Buffer) => x.write(d)); x.on('end', () => x.end()); }).listen(8080);
    const py = [
      'import socket',
      'u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nu.bind(("198.51.100.7",0))\nu.settimeout(3)',
      'u.sendto(b"udp-behind-router",("10.1.1.1",7))\nprint(u.recvfrom(100)[0].decode())',
      't=socket.socket()\nt.bind(("198.51.100.7",0))\nt.settimeout(5)\nt.connect(("10.1.1.1",8080))',
      't.sendall(b"tcp-behind-router")\nprint(t.recv(100).decode())\nt.close()',
    ].join('\n');
    const r = await nsRun(p.ns, '/usr/bin/python3', ['-c', py], { timeout: 20_000 });
    assert.equal(r.stdout.trim().split('\n'), ['udp-behind-router', 'tcp-behind-router'], r.stdout + r.stderr);
    assert.is(vs.links[0]!.neigh.peek(ip('198.51.100.7')), undefined, 'no neighbor entry for the off-subnet client');
    assert.is(vs.counters.toJSON().drops.reasons['ipv4-no-route'] ?? 0, 0);
    u.close();
  });

  lab.run();
}
