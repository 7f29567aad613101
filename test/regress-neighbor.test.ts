/**
 * Regressions: what the neighbor table learns from ARP and what it evicts at its cap.
 *
 * - ARP requests from senders outside every connected prefix of the link used to create entries
 *   until the table was full. RFC 826 learning is about the hosts of the network the link is on:
 *   only a sender in a connected prefix of the link creates an entry (its request is still answered).
 * - At the cap, eviction used to take the oldest STALE entry in insertion order: the peer the
 *   stack had resolved first (and was still talking to) went before any flooding sender. Entries
 *   learned from the wire and never used go first; an entry in use is never evicted for them.
 * The engine under virtual time with a small cap, frames in and out at the wire.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Burst, parseMac } from '../driver/types';
import { FramePool } from '../umem/pool';
import { Engine } from '../stack/engine';
import { ip, arpFrame, push, drain, BCAST, ZERO, Decoded } from './lib/frames';
import { NSTATE_NAMES } from '../stack/neighbor';
import { ipv4ToString } from '../protocols/ipv4';

const DEV_MAC = parseMac('02:00:00:00:00:01');
const VS_MAC = parseMac('02:00:00:00:01:01');
const PEER = parseMac('02:00:00:00:0a:02');
const CAP = 16;

function setup() {
  const pool = new FramePool({ frameSize: 2048, frameCount: 1024 });
  const e = new Engine({ neighbor: { maxEntries: CAP } });
  e.addDevice({ name: 'eth0', pool, mac: DEV_MAC, mtu: 1500 });
  const vs = e.createVs('t');
  const link = e.addLink(vs, { device: 'eth0', vlan: 10, mac: VS_MAC });
  e.addAddress(vs, 'eth0.10', '10.1.1.1/24');
  drain(pool, e.devices[0]!.out);
  const burst = new Burst();
  const sock = e.createUdpSocket(vs);
  sock.bind(4000);
  return { pool, e, vs, link, burst, sock };
}
type S = ReturnType<typeof setup>;

function input(s: S, frames: Uint8Array[], now: number): Decoded[] {
  for (let i = 0; i < frames.length; i += s.burst.capacity) {
    for (const f of frames.slice(i, i + s.burst.capacity)) push(s.pool, s.burst, f);
    s.e.input(0, s.burst, now);
  }
  s.e.advance(now);
  s.e.flushEvents();
  return drain(s.pool, s.e.devices[0]!.out);
}

function macOf(i: number): Uint8Array {
  return parseMac(`02:00:00:01:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`);
}

/** ARP requests for our address from `n` senders built by `addr(i)`. */
function flood(n: number, addr: (i: number) => string): Uint8Array[] {
  const f: Uint8Array[] = [];
  for (let i = 0; i < n; i++) f.push(arpFrame(1, 10, BCAST, macOf(i), addr(i), ZERO, '10.1.1.1'));
  return f;
}

/** Resolves `peer` the way the stack does when it sends to it: broadcast request, the peer's reply. */
function talkTo(s: S, peer: string, mac: Uint8Array, now: number): void {
  s.e.udpSend(s.sock, new Uint8Array([1]), 9, ip(peer));
  const req = drain(s.pool, s.e.devices[0]!.out);
  assert.ok(req.some((d) => d.arp?.op === 1 && d.arp.tpa === ip(peer) && d.dst === 'ff:ff:ff:ff:ff:ff'), `ARP request for ${peer}`);
  const out = input(s, [arpFrame(2, 10, VS_MAC, mac, peer, VS_MAC, '10.1.1.1')], now);
  assert.ok(out.some((d) => d.udp && d.ipv4!.dst === ip(peer)), `the datagram to ${peer} left once resolved`);
}

test('an ARP flood from off-subnet senders creates no neighbor entries (each request is still answered)', () => {
  const s = setup();
  const out = input(s, flood(3 * CAP, (i) => `203.0.113.${i + 1}`), 1000);
  assert.is(s.link.neigh.size, 0, `entries: ${[...s.link.neigh.entries.keys()].map((k) => ipv4ToString(k as number))}`);
  assert.is(out.filter((d) => d.arp?.op === 2).length, 3 * CAP, 'every request answered');
  // On-subnet senders are learned as before (RFC 826).
  input(s, flood(2, (i) => `10.1.1.${i + 10}`), 2000);
  assert.is(s.link.neigh.size, 2);
  assert.is(NSTATE_NAMES[s.link.neigh.peek(ip('10.1.1.10'))!.state], 'STALE');
  s.sock.close();
  assert.is(s.pool.check().free, 1024);
});

test('an off-subnet on-link gateway the stack is resolving is still learned from its ARP reply', () => {
  const s = setup();
  s.e.addRoute(s.vs, { dst: 'default', via: '192.0.2.1', link: 'eth0.10', onlink: true });
  s.e.udpSend(s.sock, new Uint8Array([1]), 53, ip('198.51.100.53'));
  const req = drain(s.pool, s.e.devices[0]!.out);
  assert.ok(req.some((d) => d.arp?.op === 1 && d.arp.tpa === ip('192.0.2.1')));
  const out = input(s, [arpFrame(2, 10, VS_MAC, PEER, '192.0.2.1', VS_MAC, '10.1.1.1')], 1000);
  assert.is(out.length, 1);
  assert.is(out[0]!.dst, '02:00:00:00:0a:02');
  assert.is(out[0]!.ipv4!.dst, ip('198.51.100.53'));
  assert.is(NSTATE_NAMES[s.link.neigh.peek(ip('192.0.2.1'))!.state], 'REACHABLE');
  s.sock.close();
});

test('a flood of on-subnet senders up to the cap does not evict the peer the stack is talking to', () => {
  const s = setup();
  talkTo(s, '10.1.1.2', PEER, 1000);
  // Quiet for a while: the entry goes STALE (reachable time 30 s), the conversation goes on.
  s.e.advance(31_000_000);
  assert.is(NSTATE_NAMES[s.link.neigh.peek(ip('10.1.1.2'))!.state], 'STALE');
  input(s, flood(4 * CAP, (i) => `10.1.1.${i + 100}`), 31_500_000);
  assert.ok(s.link.neigh.size <= CAP, `cap kept: ${s.link.neigh.size}`);
  const n = s.link.neigh.peek(ip('10.1.1.2'));
  assert.ok(n, 'the peer is still in the table');
  assert.ok(s.link.neigh.evicted > 0, 'flooding senders were evicted instead');
  // The next datagram to the peer leaves at once, to its MAC, without a broadcast ARP request.
  s.e.udpSend(s.sock, new Uint8Array([2]), 9, ip('10.1.1.2'));
  const out = drain(s.pool, s.e.devices[0]!.out);
  assert.is(out.length, 1);
  assert.is(out[0]!.dst, '02:00:00:00:0a:02');
  assert.ok(out[0]!.udp);
  s.sock.close();
});

test('entries in use are never evicted for flooding senders; the newest learned-only entries churn', () => {
  const s = setup();
  const peers: string[] = [];
  for (let i = 0; i < CAP - 2; i++) {
    const p = `10.1.1.${i + 2}`;
    peers.push(p);
    talkTo(s, p, macOf(1000 + i), 1000 + i);
  }
  input(s, flood(5 * CAP, (i) => `10.1.1.${i + 100}`), 2_000_000);
  assert.is(s.link.neigh.size, CAP);
  for (const p of peers) {
    const n = s.link.neigh.peek(ip(p));
    assert.ok(n, `peer ${p} kept`);
    assert.is(NSTATE_NAMES[n!.state], 'REACHABLE');
  }
  // The table is full of entries in use plus two learned-only slots, which the last senders hold.
  assert.ok(s.link.neigh.peek(ip(`10.1.1.${5 * CAP - 1 + 100}`)), 'the newest sender is in a learned-only slot');
  s.sock.close();
});

test.run();
