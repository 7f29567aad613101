/**
 * ICMP errors about a ping's requests, under virtual time (two engines on the memory link). An
 * error quotes the request's IP header and its first 8 ICMP bytes (RFC 792; RFC 4443 2.4(c)),
 * hence its identifier and sequence number: iputils' ping prints "From ROUTER icmp_seq=N
 * Destination Host Unreachable", stops waiting for that request, and counts "+N errors". When the
 * next hop never answers address resolution, a kernel's ping hears "Destination Host Unreachable"
 * (IPv6: "Destination unreachable: Address unreachable") from its own address (RFC 1122 2.3.2.1,
 * RFC 4861 7.2.2: the sender is told the destination is unreachable).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World } from './lib/world';
import { icmpEchoFrame } from './lib/frames';
import { echo6, frame6, icmp6, send } from './lib/engine6';
import { icmpErrorText, PingIcmpError, PingReply, PingSession, PingSummary, pingText } from '../stack/ping';
import { addrKey, parseAddr, parseIp6 } from '../protocols/ip/addr';
import { fold, sum16 } from '../protocols/checksum';

interface Run { s: PingSession; replies: PingReply[]; errors: PingIcmpError[]; done: () => PingSummary | null }

/** A ping from host a's VS. */
function ping(w: World, target: string, opts: ConstructorParameters<typeof PingSession>[3]): Run {
  const replies: PingReply[] = [];
  const errors: PingIcmpError[] = [];
  let sum: PingSummary | null = null;
  const s = new PingSession(w.a.engine, w.a.vs[0]!, target, opts, {
    onReply: (r) => replies.push(r), onUnreachable: (u) => errors.push(u), onDone: (x) => { sum = x; },
  });
  return { s, replies, errors, done: () => sum };
}

/** The identifier of the one echo socket open at host a. */
function identOf(w: World): number {
  const socks = (w.a.engine.echo as unknown as { socks: Map<number, { ident: number }> }).socks;
  assert.is(socks.size, 1);
  return socks.values().next().value!.ident;
}

/**
 * An ICMPv4 error (type, code, 4 bytes `rest`) from `from` to host a (10.1.1.1), quoting the
 * IPv4 header and first 8 bytes of an Echo Request 10.1.1.1 → `target` with `ident`/`seq`.
 */
function icmp4Error(w: World, from: string, type: number, code: number, rest: number, target: string, ident: number, seq: number): Uint8Array {
  const req = icmpEchoFrame(10, w.link.b.mac, w.link.a.mac, '10.1.1.1', target, ident, seq, new Uint8Array(56));
  const quote = req.subarray(18, 18 + 28);
  const f = icmpEchoFrame(10, w.link.a.mac, w.link.b.mac, from, '10.1.1.1', 0, 0, quote);
  const o = 18 + 20;
  f[o] = type; f[o + 1] = code; f[o + 2] = 0; f[o + 3] = 0;
  f[o + 4] = rest >>> 24; f[o + 5] = (rest >>> 16) & 0xff; f[o + 6] = (rest >>> 8) & 0xff; f[o + 7] = rest & 0xff;
  const c = fold(sum16(f, o, f.length - o));
  f[o + 2] = c >>> 8; f[o + 3] = c & 0xff;
  return f;
}

/** An ICMPv6 error from `from` to fd00::1 quoting an Echo Request fd00::1 → `target` (its IPv6 header and the message). */
function icmp6Error(w: World, from: string, type: number, code: number, rest: number, target: string, ident: number, seq: number): Uint8Array {
  const src = parseIp6('fd00::1');
  const req = frame6(w, { src, dst: parseIp6(target), nh: 58, l4: echo6(src, parseIp6(target), ident, seq, new Uint8Array(56)) });
  const quote = req.subarray(18);
  return frame6(w, { src: parseIp6(from), dst: src, nh: 58, l4: icmp6(type, code, parseIp6(from), src, rest, quote) });
}

const drop = (w: World, reason: string) => w.a.vs[0]!.counters.toJSON().drops.reasons[reason] ?? 0;

test('IPv4: a router\'s Destination Host Unreachable answers its request: printed as ping does, counted as an error, not waited for', async () => {
  // Replies toward the pinging host take 100 ms: the errors injected at 1 ms come first.
  const w = twoHosts({ link: { ba: { delayUs: 100_000 } } });
  const p = ping(w, '10.1.1.2', { count: 2, interval: 0.5, timeout: 2 });
  await w.run(() => false, 1_000);
  const ident = identOf(w);
  const noFlow = drop(w, 'icmp-no-flow');
  send(w, icmp4Error(w, '10.1.1.254', 3, 1, 0, '10.1.1.2', ident, 1));
  // The same error again (seq 1 is answered already) and one quoting another identifier: nothing more.
  send(w, icmp4Error(w, '10.1.1.254', 3, 1, 0, '10.1.1.2', ident, 1));
  send(w, icmp4Error(w, '10.1.1.254', 3, 1, 0, '10.1.1.2', (ident + 1) & 0xffff, 1));
  assert.ok(await w.run(() => p.done() !== null, 5_000_000), 'the ping ended');
  assert.equal(p.errors, [{ seq: 1, from: '10.1.1.254', type: 3, code: 1, message: 'Destination Host Unreachable' }]);
  assert.is(pingText.unreachable(p.errors[0]!), 'From 10.1.1.254 icmp_seq=1 Destination Host Unreachable');
  // The real reply to seq 1 came after the error: not counted (the request was answered), seq 2's is.
  assert.equal(p.replies.map((r) => r.seq), [2]);
  const s = p.done()!;
  assert.equal([s.transmitted, s.received, s.errors, s.lossPercent], [2, 1, 1, 50]);
  assert.match(pingText.summary(s)[1]!, /^2 packets transmitted, 1 received, \+1 errors, 50% packet loss, time \d+ms$/);
  assert.is(drop(w, 'icmp-no-flow') - noFlow, 1, 'the error for a foreign identifier quotes nothing of ours');
});

test('IPv4: Time Exceeded and fragmentation needed in ping\'s words; the next-hop MTU of a ping\'s request is believed', async () => {
  const w = twoHosts({ link: { ba: { delayUs: 100_000 } } });
  const p = ping(w, '10.1.1.2', { count: 2, interval: 0.01, size: 1400, timeout: 1 });
  await w.run(() => false, 15_000);
  const ident = identOf(w);
  send(w, icmp4Error(w, '10.1.1.254', 11, 0, 0, '10.1.1.2', ident, 1));
  send(w, icmp4Error(w, '10.1.1.254', 3, 4, 1280, '10.1.1.2', ident, 2));
  assert.ok(await w.run(() => p.done() !== null, 5_000_000));
  assert.equal(p.errors.map((e) => pingText.unreachable(e)), [
    'From 10.1.1.254 icmp_seq=1 Time to live exceeded',
    'From 10.1.1.254 icmp_seq=2 Frag needed and DF set (mtu = 1280)',
  ]);
  assert.is(p.done()!.received, 0);
  assert.is(w.a.vs[0]!.pmtu.get(addrKey(parseAddr('10.1.1.2')))?.mtu, 1280, 'the path MTU toward the target');
});

test('IPv4: the next hop never answers ARP: each queued request hears Destination Host Unreachable from our own address', async () => {
  const w = twoHosts();
  const p = ping(w, '10.1.1.77', { count: 2, interval: 0.5, timeout: 10 });
  assert.ok(await w.run(() => p.done() !== null, 20_000_000), 'the ping ended');
  assert.equal(p.errors.map((e) => pingText.unreachable(e)), [
    'From 10.1.1.1 icmp_seq=1 Destination Host Unreachable',
    'From 10.1.1.1 icmp_seq=2 Destination Host Unreachable',
  ]);
  const s = p.done()!;
  assert.equal([s.transmitted, s.received, s.errors, s.lossPercent, s.rtt], [2, 0, 2, 100, null]);
  // Resolution gives up after 3 solicitations 1 s apart: the ping ends then, not after its 10 s wait.
  assert.ok(s.timeMs >= 2_900 && s.timeMs <= 3_500, `ended at ${s.timeMs} ms`);
  assert.is(pingText.summary(s)[1], `2 packets transmitted, 0 received, +2 errors, 100% packet loss, time ${s.timeMs}ms`);
});

test('IPv6: a router\'s Destination Unreachable and Packet Too Big, in ping\'s words; the MTU is believed', async () => {
  const w = twoHosts({ ipv6: true, engine: { ndp: { dadTransmits: 0 } }, link: { ba: { delayUs: 100_000 } } });
  const p = ping(w, 'fd00::2', { count: 3, interval: 0.01, size: 1400, timeout: 1 });
  await w.run(() => false, 25_000);
  const ident = identOf(w);
  send(w, icmp6Error(w, 'fd00::99', 1, 0, 0, 'fd00::2', ident, 1));
  send(w, icmp6Error(w, 'fd00::99', 2, 0, 1280, 'fd00::2', ident, 2));
  send(w, icmp6Error(w, 'fd00::99', 3, 0, 0, 'fd00::2', ident, 3));
  assert.ok(await w.run(() => p.done() !== null, 5_000_000));
  assert.equal(p.errors.map((e) => pingText.unreachable(e)), [
    'From fd00::99 icmp_seq=1 Destination unreachable: No route',
    'From fd00::99 icmp_seq=2 Packet too big: mtu=1280',
    'From fd00::99 icmp_seq=3 Time exceeded: Hop limit',
  ]);
  assert.equal([p.done()!.received, p.done()!.errors], [0, 3]);
  assert.is(w.a.vs[0]!.pmtu.get(addrKey(parseAddr('fd00::2')))?.mtu, 1280);
});

test('IPv6: the next hop never answers Neighbor Solicitations: Address unreachable from our own address', async () => {
  const w = twoHosts({ ipv6: true, engine: { ndp: { dadTransmits: 0 } } });
  const p = ping(w, 'fd00::77', { count: 1, timeout: 10 });
  assert.ok(await w.run(() => p.done() !== null, 20_000_000));
  assert.equal(p.errors.map((e) => pingText.unreachable(e)), ['From fd00::1 icmp_seq=1 Destination unreachable: Address unreachable']);
  assert.equal([p.done()!.transmitted, p.done()!.received, p.done()!.errors], [1, 0, 1]);
});

test('ICMP and ICMPv6 errors in iputils\' words', () => {
  const t = (v4: boolean, type: number, code: number, info = 0) => icmpErrorText(v4, type, code, info);
  assert.is(t(true, 3, 0), 'Destination Net Unreachable');
  assert.is(t(true, 3, 3), 'Destination Port Unreachable');
  assert.is(t(true, 3, 13), 'Packet filtered');
  assert.is(t(true, 3, 99), 'Dest Unreachable, Bad Code: 99');
  assert.is(t(true, 11, 1), 'Frag reassembly time exceeded');
  assert.is(t(true, 12, 0, 9), 'Parameter problem: pointer = 9');
  assert.is(t(false, 1, 1), 'Destination unreachable: Administratively prohibited');
  assert.is(t(false, 1, 4), 'Destination unreachable: Port unreachable');
  assert.is(t(false, 1, 7), 'Destination unreachable: Unknown code 7');
  assert.is(t(false, 3, 1), 'Time exceeded: Defragmentation failure');
  assert.is(t(false, 4, 1, 40), 'Parameter problem: Unknown header at 40');
});

test.run();
