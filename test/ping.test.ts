/**
 * Ping from inside a virtual server, under virtual time (two engines on the memory link, and a
 * group of shards): Echo Requests (RFC 792 / RFC 4443 4.1) from the VS's address by its routes,
 * replies matched by identifier and sequence number, round-trip times as the link makes them, loss,
 * duplicates, fragmented replies, the errors a ping socket gives, and a reply that reaches another
 * shard's queue handed to the shard that sent the request.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World } from './lib/world';
import { shardWorld } from './lib/shard-world';
import { PingReply, PingSession, PingSummary, pingText } from '../stack/ping';
import { icmpEchoFrame } from './lib/frames';
import { Burst } from '../driver/types';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createStack } from '../stack/stack';
import { ControlServer } from '../stack/control/control';
import { ShardedStack } from '../stack/shard/threads';
import type { StackConfig } from '../stack/control/config';
import { cliAt } from './lib/control';
import { spawn } from 'node:child_process';

function ping(w: World, target: string, opts: ConstructorParameters<typeof PingSession>[3], vsIndex = 0): { s: PingSession; replies: PingReply[]; errors: string[]; done: () => PingSummary | null } {
  const replies: PingReply[] = [];
  const errors: string[] = [];
  let sum: PingSummary | null = null;
  const s = new PingSession(w.b.engine, w.b.vs[vsIndex]!, target, opts, {
    onReply: (r) => replies.push(r), onError: (_, m) => errors.push(m), onDone: (x) => { sum = x; },
  });
  return { s, replies, errors, done: () => sum };
}

test('IPv4: three requests, three replies; RTT = the link\'s two delays; iputils\' summary', async () => {
  const w = twoHosts({ link: { delayUs: 500 } });
  // A first ping resolves the neighbors (ARP), so the measured one sees the link alone.
  const warm = ping(w, '10.1.1.1', { count: 1 });
  assert.ok(await w.run(() => warm.done() !== null, 1_000_000));
  assert.is(warm.done()!.received, 1);
  const p = ping(w, '10.1.1.1', { count: 3, interval: 0.2 });
  assert.equal(p.s.start, { vs: 'vs10', target: '10.1.1.1', source: '10.1.1.2', family: 4, size: 56, packetBytes: 84 });
  assert.ok(await w.run(() => p.done() !== null, 5_000_000), 'the ping ended');
  const s = p.done()!;
  assert.equal(p.replies.map((r) => [r.seq, r.from, r.bytes, r.ttl, r.dup]), [[1, '10.1.1.1', 64, 64, false], [2, '10.1.1.1', 64, 64, false], [3, '10.1.1.1', 64, 64, false]]);
  // Each request and its reply cross the link once each way: 2 × 500 µs.
  assert.equal(p.replies.map((r) => r.rttMs), [1, 1, 1]);
  assert.equal([s.transmitted, s.received, s.duplicates, s.errors, s.lossPercent], [3, 3, 0, 0, 0]);
  assert.equal(s.rtt, { min: 1, avg: 1, max: 1, mdev: 0 });
  assert.is(s.timeMs, 401, 'from the first request (0) to the last reply (400 ms + 1 ms)');
  assert.equal(pingText.summary(s), [
    '--- 10.1.1.1 ping statistics ---',
    '3 packets transmitted, 3 received, 0% packet loss, time 401ms',
    'rtt min/avg/max/mdev = 1.000/1.000/1.000/0.000 ms',
  ]);
  assert.is(pingText.reply(p.replies[1]!), '64 bytes from 10.1.1.1: icmp_seq=2 ttl=64 time=1.000 ms');
  assert.is(pingText.header(p.s.start), 'PING 10.1.1.1 (10.1.1.1) from 10.1.1.2 vs vs10: 56(84) bytes of data.');
  assert.is(w.b.engine.echo.size, 0, 'the echo socket is closed');
});

test('IPv6: echo requests from the VS\'s IPv6 address; replies with their hop limit', async () => {
  const w = twoHosts({ ipv6: true, engine: { ndp: { dadTransmits: 0 } } });
  const p = ping(w, 'fd00::1', { count: 2, interval: 0.1, size: 100 });
  assert.equal(p.s.start, { vs: 'vs10', target: 'fd00::1', source: 'fd00::2', family: 6, size: 100, packetBytes: 148 });
  assert.ok(await w.run(() => p.done() !== null, 5_000_000));
  assert.equal(p.replies.map((r) => [r.seq, r.from, r.bytes, r.ttl]), [[1, 'fd00::1', 108, 64], [2, 'fd00::1', 108, 64]]);
  assert.is(p.done()!.received, 2);
  assert.is(pingText.header(p.s.start), 'PING fd00::1(fd00::1) from fd00::2 vs vs10: 100 data bytes');
});

test('nothing answers: 100% loss after the timeout, no reply, the summary without rtt', async () => {
  const w = twoHosts();
  const p = ping(w, '10.1.1.77', { count: 2, interval: 0.5, timeout: 1 });
  assert.ok(await w.run(() => p.done() !== null, 10_000_000));
  const s = p.done()!;
  assert.equal([s.transmitted, s.received, s.lossPercent, s.rtt], [2, 0, 100, null]);
  assert.is(s.timeMs, 1500, 'the last request at 0.5 s, then the 1 s timeout');
  assert.equal(p.replies, []);
  assert.is(pingText.summary(s)[1], '2 packets transmitted, 0 received, 100% packet loss, time 1500ms');
});

test('a link that duplicates every frame: each reply counted once, the copies reported as duplicates', async () => {
  const w = twoHosts({ link: { ba: { duplicate: 1 } } });
  const p = ping(w, '10.1.1.1', { count: 2, interval: 0.2 });
  assert.ok(await w.run(() => p.done() !== null, 5_000_000));
  await w.run(() => false, 100_000); // the last copies arrive
  const s = p.done()!;
  assert.is(s.received, 2);
  assert.ok(s.duplicates >= 1, `duplicates ${s.duplicates}`);
  assert.ok(p.replies.some((r) => r.dup), 'a reply marked as a duplicate');
  assert.match(pingText.summary(s)[1]!, /2 received, \+\d+ duplicates, 0% packet loss/);
});

test('large pings travel as fragments both ways; the reassembled reply has no single TTL', async () => {
  const w = twoHosts();
  const p = ping(w, '10.1.1.1', { count: 1, size: 4000 });
  assert.ok(await w.run(() => p.done() !== null, 5_000_000));
  assert.equal(p.replies.map((r) => [r.bytes, r.ttl]), [[4008, null]]);
  assert.is(pingText.reply(p.replies[0]!).replace(/time=.*/, ''), '4008 bytes from 10.1.1.1: icmp_seq=1 ');
});

test('a reply carrying another identifier is not ours: counted as icmp-echo-no-socket; a forged source is ignored', async () => {
  // Frames toward the pinging host take 20 ms: the forged replies injected at 1 ms come first.
  const w = twoHosts({ link: { ab: { delayUs: 20_000 } } });
  const p = ping(w, '10.1.1.1', { count: 1, timeout: 1 });
  await w.run(() => false, 1_000);
  // A reply with a foreign identifier, and one with ours from the wrong host, before the real one.
  const mine = w.b.engine.echo;
  assert.is(mine.size, 1);
  const ident = (mine as unknown as { socks: Map<number, { ident: number }> }).socks.values().next().value!.ident;
  const macA = w.link.a.mac;
  const macB = w.link.b.mac;
  const reply = (id: number, src: string) => { const f = icmpEchoFrame(10, macB, macA, src, '10.1.1.2', id, 1, new Uint8Array(56)); f[18 + 20] = 0; f[18 + 22] = 0; f[18 + 23] = 0; return f; };
  // Recompute the checksums of the edited frames (type 0 instead of 8).
  const fix = (f: Uint8Array) => {
    let sum = 0;
    for (let i = 38; i < f.length; i += 2) sum += (f[i]! << 8) | (f[i + 1] ?? 0);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    const c = ~sum & 0xffff;
    f[40] = c >> 8; f[41] = c & 0xff;
    return f;
  };
  const before = w.b.vs[0]!.counters.toJSON().drops.reasons['icmp-echo-no-socket'] ?? 0;
  injectFrameAt(w, fix(reply((ident + 1) & 0xffff, '10.1.1.1')));
  injectFrameAt(w, fix(reply(ident, '10.1.1.9')));
  await w.run(() => p.done() !== null, 2_000_000);
  const s = p.done()!;
  assert.is(s.received, 1, 'only the real reply counts');
  assert.equal(p.replies.map((r) => r.from), ['10.1.1.1']);
  assert.is((w.b.vs[0]!.counters.toJSON().drops.reasons['icmp-echo-no-socket'] ?? 0) - before, 1, 'the foreign identifier was dropped and counted');
});

/** Injects a frame at host b (as if host a had sent it). */
function injectFrameAt(w: World, f: Uint8Array): void {
  const ep = w.link.a;
  const fr = ep.pool.alloc();
  const at = ep.pool.dataStart(fr);
  ep.pool.bytes.set(f, at);
  const b = new Burst();
  b.push(fr, at, f.length);
  ep.tx(b, w.now());
}

test('errors: no route, no IPv6 address, bad targets and options are clear errors at once', () => {
  const w = twoHosts();
  const vs = w.b.vs[0]!;
  const e = w.b.engine;
  const err = (t: string, o: ConstructorParameters<typeof PingSession>[3], re: RegExp) => assert.throws(() => new PingSession(e, vs, t, o), (x: unknown) => re.test((x as Error).message));
  err('192.0.2.1', {}, /ping 192\.0\.2\.1: network unreachable \(no route in virtual server 'vs10'\)/);
  err('fd00::1', {}, /network unreachable|no usable IPv6 source/);
  err('10.1.1.255', {}, /one unicast host/);
  err('224.0.0.1', {}, /one unicast host/);
  err('127.0.0.1', {}, /loopback addresses are not reachable inside a virtual server/);
  err('fe80::1', {}, /a link-local address needs its link/);
  err('fe80::1%nope', {}, /virtual server 'vs10' has no link 'nope'/);
  err('not-an-address', {}, /ping target must be an IPv4 or IPv6 address/);
  err('10.1.1.1', { count: 0 }, /count must be a positive integer/);
  err('10.1.1.1', { interval: 0.001 }, /interval must be 0\.01\.\.3600 seconds/);
  err('10.1.1.1', { size: 70000 }, /size must be 0\.\.65507/);
  err('10.1.1.1', { timeout: -1 }, /timeout must be 0\.\.3600/);
  assert.is(e.echo.size, 0, 'no echo socket left open by a refused ping');
});

test('an exception thrown by an event handler goes to onCallbackError (as a socket callback\'s); the ping goes on', async () => {
  const caught: unknown[] = [];
  const w = twoHosts({ engine: { onCallbackError: (e) => caught.push(e) } });
  let done: PingSummary | null = null;
  new PingSession(w.b.engine, w.b.vs[0]!, '10.1.1.1', { count: 2, interval: 0.1 }, {
    onReply: () => { throw new Error('handler bug'); }, onDone: (x) => { done = x; },
  });
  assert.ok(await w.run(() => done !== null, 2_000_000));
  assert.is(done!.received, 2);
  assert.equal(caught.map((e) => (e as Error).message), ['handler bug', 'handler bug']);
  assert.is(w.b.engine.internalErrors, 0, 'not an internal error of the stack');
});

test('pinging the VS\'s own address loops back inside it', async () => {
  const w = twoHosts();
  const p = ping(w, '10.1.1.2', { count: 2, interval: 0.1 });
  assert.ok(await w.run(() => p.done() !== null, 2_000_000));
  assert.is(p.done()!.received, 2);
  assert.is(p.s.start.source, '10.1.1.2');
});

test('stop() ends an endless ping with the counts so far; a destroyed VS ends it too', async () => {
  const w = twoHosts();
  const p = ping(w, '10.1.1.1', { interval: 0.1 });
  await w.run(() => p.replies.length >= 4, 5_000_000);
  p.s.stop();
  const s = p.done()!;
  assert.ok(s.transmitted >= 4 && s.received >= 4, JSON.stringify(s));
  const q = ping(w, '10.1.1.1', { interval: 0.1 });
  await w.run(() => q.replies.length >= 1, 5_000_000);
  w.b.engine.destroyVs('vs10');
  assert.ok(await w.run(() => q.done() !== null, 1_000_000), 'the ping ended with its VS');
});

test('shards: each shard pings with identifiers of its share; a reply on another shard\'s queue is handed over', async () => {
  const w = shardWorld({ shards: 2 });
  const sums: (PingSummary | null)[] = [null, null];
  const replies: PingReply[][] = [[], []];
  for (const i of [0, 1]) {
    w.group.stacks[i]!.vs('a').ping('10.1.1.2', { count: 3, interval: 0.1 }, { onReply: (r) => replies[i]!.push(r), onDone: (s) => { sums[i] = s; } });
  }
  assert.ok(await w.run(() => sums.every((s) => s !== null), 5_000_000));
  for (const i of [0, 1]) assert.is(sums[i]!.received, 3, `shard ${i}: every reply`);
  // The peer's replies all land on one queue (the link hashes them by source): the other shard's
  // came through the ring between the shards.
  const forwarded = w.group.stacks.map((s) => s.engine.steer!.counters.forwarded.reduce((a, b) => a + b, 0));
  assert.ok(forwarded.some((n) => n >= 3), `replies handed over: ${forwarded.join(', ')}`);
});

test('a stack of shards (worker threads) pings through shard 0: the library call and the control socket', async () => {
  const s = await ShardedStack.start({
    name: 'pshard', engine: { dadTransmits: 0 }, devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24', 'fd00::1/64'] }] }],
  } as StackConfig, { shards: 2, log: () => {} });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-ping-shards-'));
  const sock = path.join(dir, 's.sock');
  const server = await ControlServer.listen(s, sock);
  try {
    // Memory devices in workers have no peer: the VS pings its own addresses (looped back in the shard).
    const seen: number[] = [];
    const sum = await s.ping('a', '10.1.1.1', { count: 3, interval: 0.05 }, { onReply: (r) => seen.push(r.seq) });
    assert.equal([sum.transmitted, sum.received, sum.source], [3, 3, '10.1.1.1']);
    assert.equal(seen, [1, 2, 3]);
    const r = await cliAt(sock, ['ping', '--vs', 'a', 'fd00::1', '--count', '2', '--interval', '0.05']);
    assert.is(r.code, 0, r.err);
    assert.match(r.out, /2 packets transmitted, 2 received, 0% packet loss/);
    // ping(8)'s short options as iputils spells them: -c count, -i interval, -s size, -W timeout.
    const short = await cliAt(sock, ['ping', '--vs', 'a', '10.1.1.1', '-c', '2', '-i', '0.05', '-s', '100', '-W', '1']);
    assert.is(short.code, 0, short.err);
    assert.match(short.out, /108 bytes from 10\.1\.1\.1/);
    assert.match(short.out, /2 packets transmitted, 2 received, 0% packet loss/);
    const bad = await cliAt(sock, ['ping', '--vs', 'nope', '10.1.1.1', '--count', '1']);
    assert.is(bad.code, 1);
    assert.match(bad.err, /no virtual server 'nope'/);
    // An on-link address nobody answers ARP for: shard 0's ping hears it from its own address.
    const unreach: string[] = [];
    const us = await s.ping('a', '10.1.1.77', { count: 1, timeout: 10 }, { onUnreachable: (u) => unreach.push(pingText.unreachable(u)) });
    assert.equal(unreach, ['From 10.1.1.1 icmp_seq=1 Destination Host Unreachable']);
    assert.equal([us.transmitted, us.received, us.errors], [1, 0, 1]);
  } finally {
    await server.close();
    await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('xdpstack ping over the control socket: ping\'s lines, exit 0 with replies, 1 without, 2 for bad arguments', async () => {
  // Stack A (control socket) and stack B on the two ends of one memory link, both in real time.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-ping-'));
  const a = createStack({
    name: 'pa', engine: { dadTransmits: 0 }, devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24', 'fd00::1/64'] }] }],
  } as StackConfig);
  const b = createStack({
    name: 'pb', engine: { dadTransmits: 0 }, devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:02' }],
    virtualServers: [{ name: 'b', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.2/24', 'fd00::2/64'] }] }],
  } as StackConfig, { drivers: { m0: a.peer('m0') } });
  const sock = path.join(dir, 'pa.sock');
  const server = await ControlServer.listen(a, sock);
  a.start();
  b.start();
  try {
    let r = await cliAt(sock, ['ping', '--vs', 'a', '10.1.1.2', '--count', '3', '--interval', '0.05']);
    assert.is(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.is(lines[0], 'PING 10.1.1.2 (10.1.1.2) from 10.1.1.1 vs a: 56(84) bytes of data.');
    for (let i = 1; i <= 3; i++) assert.match(lines[i]!, new RegExp(`^64 bytes from 10\\.1\\.1\\.2: icmp_seq=${i} ttl=64 time=\\d+\\.\\d+ ms$`));
    assert.is(lines[5], '--- 10.1.1.2 ping statistics ---');
    assert.match(lines[6]!, /^3 packets transmitted, 3 received, 0% packet loss, time \d+ms$/);
    assert.match(lines[7]!, /^rtt min\/avg\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms$/);
    r = await cliAt(sock, ['ping', '--vs', 'a', 'fd00::2', '--count', '2', '--interval', '0.05', '--size', '1200']);
    assert.is(r.code, 0, r.err);
    assert.match(r.out, /^PING fd00::2\(fd00::2\) from fd00::1 vs a: 1200 data bytes\n1208 bytes from fd00::2: icmp_seq=1 ttl=64/);
    r = await cliAt(sock, ['ping', '--vs', 'a', '10.1.1.99', '--count', '2', '--interval', '0.05', '--timeout', '0.3']);
    assert.is(r.code, 1, 'no reply: exit 1');
    assert.match(r.out, /2 packets transmitted, 0 received, 100% packet loss/);
    assert.not.match(r.out, /rtt/);
    // Waiting longer than address resolution takes (3 solicitations, 1 s apart): ping's error line.
    r = await cliAt(sock, ['ping', '--vs', 'a', '10.1.1.98', '-c', '1', '-W', '10']);
    assert.is(r.code, 1, 'no reply: exit 1');
    assert.match(r.out, /^From 10\.1\.1\.1 icmp_seq=1 Destination Host Unreachable$/m);
    assert.match(r.out, /^1 packets transmitted, 0 received, \+1 errors, 100% packet loss, time \d+ms$/m);
    r = await cliAt(sock, ['ping', '--vs', 'a', '192.0.2.1', '--count', '1']);
    assert.is(r.code, 1);
    assert.match(r.err, /xdpstack: ping 192\.0\.2\.1: network unreachable \(no route in virtual server 'a'\)/);
    r = await cliAt(sock, ['ping', '--vs', 'nope', '10.1.1.2', '--count', '1']);
    assert.is(r.code, 1);
    assert.match(r.err, /no virtual server 'nope'/);
    // Without --count it runs until Ctrl-C, then prints the summary of what it did (exit 0: replies came).
    const bin = path.join(__dirname, '..', '..', 'bin', 'xdpstack.js');
    const child = spawn(process.execPath, [bin, 'ping', '--vs', 'a', '10.1.1.2', '--interval', '0.05', '--socket', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    for (let i = 0; i < 300 && (out.match(/bytes from/g) ?? []).length < 3; i++) await new Promise((res) => setTimeout(res, 20));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((res) => child.on('close', res));
    assert.is(code, 0, out);
    const m = /(\d+) packets transmitted, (\d+) received, (\d+)% packet loss/.exec(out);
    assert.ok(m, `the summary after Ctrl-C: ${out}`);
    assert.ok(Number(m![2]) >= 3 && Number(m![1]) >= Number(m![2]), out);
    for (const [args, re] of [
      [['ping', '10.1.1.2'], /option --vs NAME is required/],
      [['ping', '--vs', 'a'], /expected an address to ping/],
      [['ping', '--vs', 'a', 'ten.one'], /ping target must be an IPv4 or IPv6 address/],
      [['ping', '--vs', 'a', '10.1.1.2', '--count', '0'], /count must be a positive integer/],
      [['ping', '--vs', 'a', '10.1.1.2', '--interval', 'fast'], /'--interval' expects seconds/],
      [['ping', '--vs', 'a', '10.1.1.2', '--interval', '0.001'], /interval must be 0\.01\.\.3600 seconds/],
      [['ping', '--vs', 'a', '10.1.1.2', '--size', '70000'], /size must be 0\.\.65507/],
    ] as [string[], RegExp][]) {
      const u = await cliAt(sock, args);
      assert.is(u.code, 2, args.join(' '));
      assert.match(u.err, re);
    }
  } finally {
    await server.close();
    b.close();
    a.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
