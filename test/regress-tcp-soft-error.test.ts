/**
 * Regression: soft errors of a synchronized connection (RFC 1122 4.2.3.9: ICMP net or host
 * unreachable, time exceeded; a next hop that no longer answers address resolution) do not abort
 * it — it keeps retransmitting — but "SHOULD make the information available to the application":
 * when the connection then times out, the error is the last soft error (EHOSTUNREACH,
 * ENETUNREACH), not ETIMEDOUT, as a Linux socket reports sk_err_soft. An ACK of new data clears it.
 * The connection used to end with ETIMEDOUT whatever was heard.
 * Virtual time over the memory link: host a connects to an echo server on host b.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import { injectFrame } from './lib/inject';
import { fold, sum16 } from '../protocols/checksum';
import { writeEth, ETH_P_IPV4 } from '../protocols/ethernet';
import { IPPROTO_ICMP, writeIpv4 } from '../protocols/ipv4';
import { ip } from './lib/frames';

type NetErr = Error & { code?: string; syscall?: string };

/** An established connection a → b:7 (b echoes), and the last TCP segment a sent (its IP packet). */
async function established(w: World): Promise<{ s: Socket; err: () => NetErr | null; lastSeg: () => Uint8Array | null }> {
  createServer(w.b.ctx(), (c: Socket) => { c.on('data', (d: Buffer) => c.write(d)); c.on('error', () => {}); }).listen(7);
  let last: Uint8Array | null = null;
  const orig = w.link.a.tx.bind(w.link.a);
  w.link.a.tx = (b, now) => {
    const p = w.link.a.pool.bytes;
    for (let i = 0; i < b.n; i++) {
      const o = b.off[i]! + 18;
      if (p[o - 2] === 0x08 && p[o - 1] === 0x00 && p[o + 9] === 6) last = p.slice(o, o + 28);
    }
    return orig(b, now);
  };
  let err: NetErr | null = null;
  let connected = false;
  const s = connect(w.a.ctx(), 7, '10.1.1.2', () => { connected = true; });
  s.on('error', (e: NetErr) => { err = e; });
  assert.ok(await w.run(() => connected, 2_000_000), 'connected');
  let echoed = 0;
  s.on('data', (d: Buffer) => { echoed += d.length; });
  s.write('hello');
  assert.ok(await w.run(() => echoed === 5, 2_000_000), 'echoed');
  return { s, err: () => err, lastSeg: () => last };
}

/** An ICMP Destination Unreachable `code` from router 10.1.1.254 to a, quoting `quote` (IP header + 8 bytes). */
function unreachFrame(w: World, code: number, quote: Uint8Array): Uint8Array {
  const f = new Uint8Array(18 + 20 + 8 + quote.length);
  writeEth(f, 0, w.link.a.mac, 0, w.link.b.mac, 0, ETH_P_IPV4, 10);
  writeIpv4(f, 18, ip('10.1.1.254'), ip('10.1.1.1'), IPPROTO_ICMP, 8 + quote.length, 64, 1, 0, 0);
  const o = 38;
  f[o] = 3; f[o + 1] = code;
  f.set(quote, o + 8);
  const c = fold(sum16(f, o, 8 + quote.length));
  f[o + 2] = c >>> 8; f[o + 3] = c & 0xff;
  return f;
}

test('the peer vanishes: its neighbor entry fails while data is retransmitted; the connection ends with EHOSTUNREACH, not ETIMEDOUT', async () => {
  const w = twoHosts();
  const c = await established(w);
  w.link.setImpairments('ab', { loss: 1 });
  w.link.setImpairments('ba', { loss: 1 });
  c.s.write('lost');
  // Retransmissions back off to the RTO ceiling; the entry goes STALE, DELAY, PROBE and fails, then
  // the retry limit is reached (minutes of virtual time).
  assert.ok(await w.run(() => c.err() !== null, 3_000_000_000), 'the connection gave up');
  assert.is(c.err()!.code, 'EHOSTUNREACH');
  assert.match(c.err()!.message, /EHOSTUNREACH/);
});

test('an ICMP net unreachable about a segment in flight: the connection keeps retransmitting, then ends with ENETUNREACH', async () => {
  // Few retransmissions: the connection gives up within seconds, while b's neighbor entry is still
  // REACHABLE (a longer outage would also fail it, a later soft error: EHOSTUNREACH).
  const w = twoHosts({ tcp: { maxRetransmits: 5 } });
  const c = await established(w);
  w.link.setImpairments('ab', { loss: 1 });
  c.s.write('lost');
  await w.run(() => false, 50_000);
  const seg = c.lastSeg();
  assert.ok(seg, 'a segment was sent');
  injectFrame(w, unreachFrame(w, 0, seg!));
  await w.run(() => false, 100_000);
  assert.is(c.err(), null, 'a soft error does not abort the connection');
  // b's frames still reach a (only a → b is cut), but nothing new is acknowledged.
  assert.ok(await w.run(() => c.err() !== null, 30_000_000), 'the connection gave up within 30 s');
  assert.is(c.err()!.code, 'ENETUNREACH');
});

test('an ACK of new data clears a soft error: a later timeout is ETIMEDOUT again', async () => {
  const w = twoHosts({ tcp: { maxRetransmits: 5 } });
  const c = await established(w);
  w.link.setImpairments('ab', { loss: 1 });
  c.s.write('lost');
  await w.run(() => false, 50_000);
  injectFrame(w, unreachFrame(w, 1, c.lastSeg()!));
  await w.run(() => false, 100_000);
  // The path heals: the retransmission is acknowledged (and echoed).
  w.link.setImpairments('ab', {});
  let echoed = 0;
  c.s.on('data', (d: Buffer) => { echoed += d.length; });
  assert.ok(await w.run(() => echoed === 4, 10_000_000), 'the retransmission got through');
  // Now a silent outage with no error heard: ETIMEDOUT.
  w.link.setImpairments('ab', { loss: 1 });
  c.s.write('again');
  assert.ok(await w.run(() => c.err() !== null, 30_000_000), 'the connection gave up within 30 s');
  assert.is(c.err()!.code, 'ETIMEDOUT');
});

test.run();
