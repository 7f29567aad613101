/**
 * TCP over IPv6 through the engine and the net-like API, against RFC 9293, RFC 8200 8.3 (MSS =
 * MTU − 60), RFC 6437 (flow labels), RFC 4987 (SYN cookies) and Node's net documentation
 * (listen on ::, 0.0.0.0 or an address; EADDRINUSE as Linux; address()/remoteAddress/remoteFamily),
 * a 5 MB transfer each way, and VSes sharing one IPv6 prefix on different VLANs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World, pattern } from './lib/world';
import { connect, createServer, Server, Socket } from '../stack/api/net';
import { TcpSegmentOut } from '../protocols/tcp/types';
import { tcpHeaderLen, writeTcp } from '../protocols/tcp';
import { Ip6, ip6ToString, linkLocalFromMac } from '../protocols/ip/addr';
import { A6, C6, frame6, send, tap6, held, Out6 } from './lib/engine6';

const opts = { ipv6: true, engine: { ndp: { dadTransmits: 0 } } };
const SYN = 0x02;
const ACK = 0x10;

async function settle(w: World): Promise<void> {
  await w.run(() => false, 10_000);
}

/** The MSS option of a TCP segment (0 when absent). */
function mssOf(l4: Uint8Array): number {
  const hl = (l4[12]! >>> 4) * 4;
  for (let p = 20; p < hl;) {
    const k = l4[p]!;
    if (k === 0) break;
    if (k === 1) { p++; continue; }
    if (k === 2) return (l4[p + 2]! << 8) | l4[p + 3]!;
    p += l4[p + 1]! || 1;
  }
  return 0;
}
const flags = (o: Out6) => o.l4[13]!;
const sport = (o: Out6) => (o.l4[0]! << 8) | o.l4[1]!;
const dport = (o: Out6) => (o.l4[2]! << 8) | o.l4[3]!;
const seqOf = (o: Out6) => ((o.l4[4]! << 24) | (o.l4[5]! << 16) | (o.l4[6]! << 8) | o.l4[7]!) >>> 0;

function listenOn(w: World, side: 'a' | 'b', args: unknown[], onConn?: (s: Socket) => void, vsi = 0): Promise<{ srv: Server; err: (Error & { code?: string }) | null }> {
  const srv = createServer(w[side].ctx(vsi), onConn ?? (() => {}));
  return new Promise((resolve) => {
    srv.once('listening', () => resolve({ srv, err: null }));
    srv.once('error', (e: Error) => resolve({ srv, err: e }));
    (srv.listen as (...a: unknown[]) => Server)(...args);
  });
}

test('connect({ host: "fd00::1" }): MSS offered = MTU − 60, addresses and families as Node', async () => {
  const w = twoHosts(opts);
  await settle(w);
  let acc: Socket | null = null;
  const { srv } = await listenOn(w, 'a', [80], (s) => { acc = s; });
  assert.equal(srv.address(), { address: '::', family: 'IPv6', port: 80 });
  const tb = tap6(w.link.b);
  const ta = tap6(w.link.a);
  const c = connect(w.b.ctx(), { host: 'fd00::1', port: 80 });
  assert.ok(await w.run(() => acc !== null && !c.pending, 2_000_000), 'connected');
  const syn = tb.find((o) => o.nh === 6 && flags(o) === SYN)!;
  assert.is(mssOf(syn.l4), 1440, 'SYN: 1500 − 40 − 20');
  const synAck = ta.find((o) => o.nh === 6 && flags(o) === (SYN | ACK))!;
  assert.is(mssOf(synAck.l4), 1440, 'SYN-ACK too');
  assert.is(c.remoteAddress, 'fd00::1');
  assert.is(c.remoteFamily, 'IPv6');
  assert.is(c.remotePort, 80);
  assert.is(c.localAddress, 'fd00::2');
  assert.equal(c.address(), { address: 'fd00::2', family: 'IPv6', port: c.localPort }, 'socket.address() of an IPv6 connection');
  const s = acc! as Socket;
  assert.is(s.remoteAddress, 'fd00::2');
  assert.is(s.remoteFamily, 'IPv6');
  assert.equal(s.address(), { address: 'fd00::1', family: 'IPv6', port: 80 });
  // An IPv4 client of the same (::) server is seen IPv4-mapped.
  let acc4: Socket | null = null;
  srv.removeAllListeners('connection');
  srv.on('connection', (x: Socket) => { acc4 = x; });
  const c4 = connect(w.b.ctx(), { host: '10.1.1.1', port: 80 });
  assert.ok(await w.run(() => acc4 !== null && !c4.pending, 2_000_000));
  const s4 = acc4! as Socket;
  assert.is(s4.remoteAddress, '::ffff:10.1.1.2');
  assert.is(s4.remoteFamily, 'IPv6');
  assert.equal(s4.address(), { address: '::ffff:10.1.1.1', family: 'IPv6', port: 80 });
  assert.is(c4.remoteFamily, 'IPv4');
  assert.equal(c4.address(), { address: '10.1.1.2', family: 'IPv4', port: c4.localPort });
  for (const x of [c, c4, s, s4]) x.destroy();
  srv.close();
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
});

test('connect to an IPv4-mapped address (::ffff:10.1.1.1): IPv4 on the wire, addresses shown mapped with family IPv6 as Node', async () => {
  const w = twoHosts(opts);
  await settle(w);
  let acc: Socket | null = null;
  const { srv } = await listenOn(w, 'a', [80, '0.0.0.0'], (s) => { acc = s; });
  const c = connect(w.b.ctx(), { host: '::ffff:10.1.1.1', port: 80 });
  assert.ok(await w.run(() => acc !== null && !c.pending, 2_000_000), 'connected (over IPv4)');
  assert.is(c.remoteAddress, '::ffff:10.1.1.1');
  assert.is(c.remoteFamily, 'IPv6');
  assert.is(c.localAddress, '::ffff:10.1.1.2');
  assert.equal(c.address(), { address: '::ffff:10.1.1.2', family: 'IPv6', port: c.localPort });
  assert.is((acc! as Socket).remoteAddress, '10.1.1.2', 'the IPv4 server sees IPv4');
  c.destroy();
  (acc! as Socket).destroy();
  srv.close();
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
});

test('flow label: set, constant for a flow, different between flows (RFC 6437)', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const echo = (s: Socket) => s.on('data', (d: Buffer) => s.write(d));
  await listenOn(w, 'a', [80], echo);
  const ta = tap6(w.link.a);
  const tb = tap6(w.link.b);
  const socks: Socket[] = [];
  const got = [0, 0];
  for (let i = 0; i < 2; i++) {
    const c = connect(w.b.ctx(), { host: 'fd00::1', port: 80 }, () => c.write(pattern(20_000, i)));
    c.on('data', (d: Buffer) => { got[i] += d.length; });
    socks.push(c);
  }
  assert.ok(await w.run(() => got[0] === 20_000 && got[1] === 20_000, 5_000_000));
  for (const t of [ta, tb]) {
    const tcp = t.filter((o) => o.nh === 6);
    const byFlow = new Map<string, Set<number>>();
    for (const o of tcp) {
      const k = `${o.src} ${sport(o)} ${o.dst} ${dport(o)}`;
      if (!byFlow.has(k)) byFlow.set(k, new Set());
      byFlow.get(k)!.add(o.flow);
    }
    assert.is(byFlow.size, 2);
    const labels = [...byFlow.values()].map((s) => [...s]);
    for (const l of labels) {
      assert.is(l.length, 1, 'one label per flow');
      assert.ok(l[0]! !== 0, 'not zero');
    }
    assert.ok(labels[0]![0] !== labels[1]![0], 'flows differ');
  }
  for (const c of socks) c.destroy();
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
});

/** A hand-made TCP/IPv6 segment C6:sp → A6:80. */
function seg6(w: World, sp: number, fl: number, seq: number, ack: number, mss = 0): Uint8Array {
  const out = new TcpSegmentOut();
  out.srcPort = sp; out.dstPort = 80; out.seq = seq; out.ack = ack; out.flags = fl; out.window = 65535;
  if (mss) out.mss = mss;
  const hl = tcpHeaderLen(out);
  const b = new Uint8Array(hl);
  writeTcp(b, 0, out, 0, C6, A6);
  return frame6(w, { src: C6, dst: A6, nh: 6, l4: b });
}

test('SYN cookies over IPv6: a full SYN queue answers with cookies, and a cookie\'s ACK opens the connection', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const accepted: Socket[] = [];
  const { srv } = await listenOn(w, 'a', [{ port: 80, backlog: 1 }], (s) => accepted.push(s));
  const ta = tap6(w.link.a);
  for (let i = 0; i < 24; i++) send(w, seg6(w, 10_000 + i, SYN, 1000 + i, 0, 1440));
  await w.run(() => false, 1000);
  const synAcks = ta.filter((o) => o.nh === 6 && flags(o) === (SYN | ACK));
  assert.is(synAcks.length, 24, 'every SYN answered');
  const listener = (srv as unknown as { listener: { synCookiesSent: number } }).listener;
  assert.ok(listener.synCookiesSent >= 8, `cookies sent (${listener.synCookiesSent})`);
  const last = synAcks.find((o) => dport(o) === 10_023)!;
  assert.is(mssOf(last.l4), 1440, 'the cookie SYN-ACK offers MTU − 60');
  send(w, seg6(w, 10_023, ACK, 1024, (seqOf(last) + 1) >>> 0));
  await w.run(() => accepted.length > 0, 100_000);
  assert.is(accepted.length, 1, 'the cookie connection is accepted');
  assert.is(accepted[0]!.remoteAddress, 'fd00::99');
  assert.is(accepted[0]!.remotePort, 10_023);
  accepted[0]!.destroy();
  srv.close();
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
});

test('listen on ::, 0.0.0.0 and an IPv6 address: who is heard, server.address(), EADDRINUSE as Linux', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const v4 = await listenOn(w, 'a', [81, '0.0.0.0']);
  assert.is(v4.err, null);
  assert.equal(v4.srv.address(), { address: '0.0.0.0', family: 'IPv4', port: 81 });
  const v6a = await listenOn(w, 'a', [82, 'fd00::1']);
  assert.equal(v6a.srv.address(), { address: 'fd00::1', family: 'IPv6', port: 82 });
  const tryConnect = async (host: string, port: number): Promise<string> => {
    let r = '';
    const c = connect(w.b.ctx(), { host, port }, () => { r = 'ok'; });
    c.on('error', (e: Error & { code?: string }) => { r = e.code ?? 'error'; });
    await w.run(() => r !== '', 5_000_000);
    c.destroy();
    return r;
  };
  assert.is(await tryConnect('10.1.1.1', 81), 'ok');
  assert.is(await tryConnect('fd00::1', 81), 'ECONNREFUSED', '0.0.0.0 does not hear IPv6');
  assert.is(await tryConnect('fd00::1', 82), 'ok');
  assert.is(await tryConnect('10.1.1.1', 82), 'ECONNREFUSED', 'an IPv6 address does not hear IPv4');
  // EADDRINUSE between :: and 0.0.0.0 (Linux, bindv6only 0), none with ipv6Only.
  assert.is((await listenOn(w, 'a', [81])).err?.code, 'EADDRINUSE', ':: after 0.0.0.0');
  assert.is((await listenOn(w, 'a', [{ port: 81, ipv6Only: true }])).err, null, ':: ipv6Only after 0.0.0.0');
  const d = await listenOn(w, 'a', [83]);
  assert.is(d.err, null);
  assert.is((await listenOn(w, 'a', [83, '0.0.0.0'])).err?.code, 'EADDRINUSE', '0.0.0.0 after ::');
  assert.is((await listenOn(w, 'a', [83, '10.1.1.1'])).err?.code, 'EADDRINUSE', 'an IPv4 address after ::');
  assert.is((await listenOn(w, 'a', [83, 'fd00::1'])).err?.code, 'EADDRINUSE', 'an IPv6 address after ::');
  // Another spelling of :: is ::.
  const z = await listenOn(w, 'a', [85, '0:0:0:0:0:0:0:0']);
  assert.is(z.err, null);
  assert.equal(z.srv.address(), { address: '::', family: 'IPv6', port: 85 });
  assert.is(await tryConnect('10.1.1.1', 85), 'ok');
  await listenOn(w, 'a', [{ port: 84, ipv6Only: true }]);
  assert.is((await listenOn(w, 'a', [84, '10.1.1.1'])).err, null, 'an IPv4 address after :: ipv6Only');
  assert.is((await listenOn(w, 'a', [84, 'fd00::1'])).err?.code, 'EADDRINUSE');
  assert.is(await tryConnect('10.1.1.1', 84), 'ok');
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
});

test('connect to a scoped link-local address (fe80::…%eth0.10); without the scope a clear error', async () => {
  const w = twoHosts(opts);
  await settle(w);
  let acc: Socket | null = null;
  await listenOn(w, 'a', [80], (s) => { acc = s; });
  const llA = ip6ToString(linkLocalFromMac(w.link.a.mac));
  const llB = ip6ToString(linkLocalFromMac(w.link.b.mac));
  const c = connect(w.b.ctx(), { host: `${llA}%eth0.10`, port: 80 });
  assert.ok(await w.run(() => acc !== null && !c.pending, 2_000_000), 'connected');
  assert.is((acc! as Socket).remoteAddress, llB);
  assert.is(c.localAddress, llB);
  let err: (Error & { code?: string }) | null = null;
  const bad = connect(w.b.ctx(), { host: llA, port: 80 });
  bad.on('error', (e: Error) => { err = e; });
  await settle(w);
  assert.is(err && (err as { code?: string }).code, 'EINVAL');
  assert.match(String(err && (err as Error).message), /link/);
  c.destroy();
  (acc! as Socket).destroy();
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
  void Ip6;
});

test('a VS talking to its own IPv6 addresses (global and scoped link-local): TCP and UDP, nothing on the wire', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  let acc: Socket | null = null;
  await listenOn(w, 'a', [80], (s) => { acc = s; s.on('data', (d: Buffer) => s.end(d)); });
  let echoed = '';
  let local: string | undefined;
  const c = connect(w.a.ctx(), { host: 'fd00::1', port: 80 }, () => { local = c.localAddress; c.write('self'); });
  c.on('data', (d: Buffer) => { echoed += String(d); });
  assert.ok(await w.run(() => echoed === 'self', 1_000_000), 'TCP to itself');
  assert.is(c.remoteAddress, 'fd00::1');
  assert.is(local, 'fd00::1');
  assert.is((acc! as Socket).remoteAddress, 'fd00::1');
  const got: [Buffer, { address: string; family: string }][] = [];
  const r = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  r.on('message', (m: Buffer, ri: { address: string; family: string }) => got.push([m, ri]));
  r.bind(7000);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  const llA = ip6ToString(linkLocalFromMac(w.link.a.mac));
  s.send('g', 7000, 'fd00::1');
  s.send('ll', 7000, `${llA}%eth0.10`);
  assert.ok(await w.run(() => got.length === 2, 1_000_000), 'UDP to itself');
  assert.equal(got.map(([m, ri]) => [String(m), ri.address, ri.family]), [['g', 'fd00::1', 'IPv6'], ['ll', llA, 'IPv6']]);
  assert.is(ta.filter((o) => o.nh === 6 || o.nh === 17).length, 0, 'nothing on the wire');
  c.destroy();
  s.close();
  r.close();
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
});

test('5 MB each way over TCP/IPv6, byte-exact', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const up = pattern(5 << 20, 11);
  const down = pattern(5 << 20, 12);
  const atServer: Buffer[] = [];
  const atClient: Buffer[] = [];
  let sDone = false;
  let cDone = false;
  await listenOn(w, 'a', [80], (s) => {
    s.on('data', (d: Buffer) => atServer.push(d));
    s.on('end', () => { sDone = true; });
    s.end(down);
  });
  const c = connect(w.b.ctx(), { host: 'fd00::1', port: 80 }, () => c.end(up));
  c.on('data', (d: Buffer) => atClient.push(d));
  c.on('end', () => { cDone = true; });
  assert.ok(await w.run(() => sDone && cDone, 120_000_000), 'both ends done');
  assert.ok(Buffer.concat(atServer).equals(up), 'client → server exact');
  assert.ok(Buffer.concat(atClient).equals(down), 'server → client exact');
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
});

test('VSes with the same IPv6 prefix on different VLANs never see each other\'s traffic', async () => {
  const vlans = [10, 20, 30, 40];
  const w = twoHosts({ ...opts, vlans });
  await settle(w);
  const ta = tap6(w.link.a);
  for (let i = 0; i < vlans.length; i++) {
    await listenOn(w, 'a', [80], (s) => s.end(`vs${vlans[i]}`), i);
  }
  const answers: string[] = vlans.map(() => '');
  const heard: string[][] = vlans.map(() => []);
  const udps = vlans.map((_, i) => {
    const u = w.b.engine.createUdpSocket(w.b.vs[i]!, { type: 'udp6' });
    u.on('message', (m: Buffer) => heard[i]!.push(String(m)));
    u.bind(7000);
    return u;
  });
  for (let i = 0; i < vlans.length; i++) {
    const c = connect(w.b.ctx(i), { host: 'fd00::1', port: 80 });
    c.on('data', (d: Buffer) => { answers[i] += String(d); });
  }
  const sa = w.a.engine.createUdpSocket(w.a.vs[2]!, { type: 'udp6' });
  sa.send('only-30', 7000, 'fd00::2');
  assert.ok(await w.run(() => answers.every((x, i) => x === `vs${vlans[i]}`) && heard[2]!.length === 1, 5_000_000), `answers ${answers}`);
  assert.equal(heard, [[], [], ['only-30'], []], 'a datagram reaches only the VS of its VLAN');
  for (const o of ta) {
    if (o.nh !== 6) continue;
    const i = vlans.indexOf(o.vlan);
    assert.ok(i >= 0);
  }
  assert.ok(ta.filter((o) => o.nh === 6).length > 0);
  for (let i = 0; i < vlans.length; i++) {
    const n = w.a.vs[i]!.links[0]!.neigh.size;
    assert.is(n, 1, `vs${vlans[i]} knows its own peer only`);
  }
  for (const u of udps) u.close();
  sa.close();
  await w.run(() => false, 200_000_000);
  assert.equal(held(w), [0, 0]);
});

test.run();
