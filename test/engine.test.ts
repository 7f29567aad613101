/** The sans-IO engine under virtual time: virtual servers, ARP, ICMP, UDP, routing, drops, frames. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Burst, parseMac } from '../driver/types';
import { FramePool } from '../umem/pool';
import { Engine } from '../stack/engine';
import { ip, arpFrame, icmpEchoFrame, udpFrame, fragmentFrame, push, drain, BCAST, ZERO } from './lib/frames';
import { ipv4ToString } from '../protocols/ipv4';
import { Ipv4Reassembler } from '../protocols/reassembly';
import { Ipv4Header } from '../protocols/ipv4';
import { UdpHeader } from '../protocols/udp';
import { NSTATE_NAMES } from '../stack/neighbor';

const DEV_MAC = parseMac('02:00:00:00:00:01');
const PEER_A = parseMac('02:00:00:00:0a:02');
const PEER_B = parseMac('02:00:00:00:0b:02');

function setup(vlans = [10, 20]) {
  const pool = new FramePool({ frameSize: 2048, frameCount: 512 });
  const e = new Engine();
  e.addDevice({ name: 'eth0', pool, mac: DEV_MAC, mtu: 1500 });
  const vses = vlans.map((v, i) => {
    const vs = e.createVs(`vs${i + 1}`);
    const mac = parseMac(`02:00:00:00:0${i + 1}:01`);
    e.addLink(vs, { device: 'eth0', vlan: v, mac });
    e.addAddress(vs, `eth0.${v}`, '10.1.1.1/24');
    return { vs, mac };
  });
  const out = e.devices[0]!.out;
  drain(pool, out); // gratuitous ARPs
  const burst = new Burst();
  return { pool, e, vses, out, burst };
}

function run(s: ReturnType<typeof setup>, frames: Uint8Array[], now = 1000) {
  for (let i = 0; i < frames.length; i += s.burst.capacity) {
    for (const f of frames.slice(i, i + s.burst.capacity)) push(s.pool, s.burst, f);
    s.e.input(0, s.burst, now);
  }
  s.e.advance(now);
  return drain(s.pool, s.out);
}

test('gratuitous ARP announces a new address', () => {
  const pool = new FramePool({ frameSize: 2048, frameCount: 64 });
  const e = new Engine();
  e.addDevice({ name: 'eth0', pool, mac: DEV_MAC, mtu: 1500 });
  const vs = e.createVs('a');
  e.addLink(vs, { device: 'eth0', vlan: 7 });
  e.addAddress(vs, 'eth0.7', '192.0.2.5/24');
  const out = drain(pool, e.devices[0]!.out);
  assert.is(out.length, 1);
  assert.is(out[0]!.vlan, 7);
  assert.is(out[0]!.dst, 'ff:ff:ff:ff:ff:ff');
  assert.equal([out[0]!.arp!.spa, out[0]!.arp!.tpa], [ip('192.0.2.5'), ip('192.0.2.5')]);
  assert.equal(pool.check().free, 64);
});

test('ARP requests are answered by the VS of their VLAN only, with its own MAC', () => {
  const s = setup();
  const out = run(s, [
    arpFrame(1, 10, BCAST, PEER_A, '10.1.1.2', ZERO, '10.1.1.1'),
    arpFrame(1, 20, BCAST, PEER_B, '10.1.1.2', ZERO, '10.1.1.1'),
    arpFrame(1, 30, BCAST, PEER_B, '10.1.1.2', ZERO, '10.1.1.1'), // no VS on VLAN 30
    arpFrame(1, 10, BCAST, PEER_A, '10.1.1.2', ZERO, '10.1.1.99'), // not ours
  ]);
  assert.is(out.length, 2);
  assert.is(out[0]!.vlan, 10);
  assert.is(out[0]!.arp!.op, 2);
  assert.is(out[0]!.arp!.sha, '02:00:00:00:01:01');
  assert.is(out[0]!.dst, '02:00:00:00:0a:02');
  assert.is(out[1]!.vlan, 20);
  assert.is(out[1]!.arp!.sha, '02:00:00:00:02:01');
  assert.is(out[1]!.arp!.tha, '02:00:00:00:0b:02');
  assert.is(s.e.devices[0]!.counters.toJSON().drops.reasons['vlan-no-link'], 1);
  assert.is(s.vses[0]!.vs.counters.toJSON().drops.reasons['arp-not-our-address'], 1);
  // Each VS learned its own peer.
  assert.is(NSTATE_NAMES[s.vses[0]!.vs.links[0]!.neigh.peek(ip('10.1.1.2'))!.state], 'STALE');
  assert.is(s.pool.check().free, 512);
});

test('ICMP echo is answered in place through the link and MAC it came from', () => {
  const s = setup();
  const data = new TextEncoder().encode('ping payload 0123456789');
  const out = run(s, [
    icmpEchoFrame(10, s.vses[0]!.mac, PEER_A, '10.1.1.2', '10.1.1.1', 77, 1, data),
    icmpEchoFrame(20, s.vses[1]!.mac, PEER_B, '10.1.1.2', '10.1.1.1', 78, 2, data),
  ]);
  assert.is(out.length, 2);
  const [a, b] = out;
  assert.is(a!.vlan, 10);
  assert.is(a!.dst, '02:00:00:00:0a:02');
  assert.is(a!.src, '02:00:00:00:01:01');
  assert.equal([a!.icmp!.type, a!.icmp!.id, a!.icmp!.seq], [0, 77, 1]);
  assert.equal(a!.icmp!.data, data);
  assert.is(a!.ipv4!.src, ip('10.1.1.1'));
  assert.is(a!.ipv4!.dst, ip('10.1.1.2'));
  assert.is(b!.vlan, 20);
  assert.is(b!.icmp!.id, 78);
  assert.is(s.vses[0]!.vs.counters.txPackets, 2); // gratuitous ARP + reply
  assert.is(s.vses[1]!.vs.counters.txPackets, 2);
  assert.is(s.pool.check().free, 512);
});

test('UDP: same port and address in two VSes, each socket hears only its own VLAN; sends to an unknown neighbor resolve ARP', () => {
  const s = setup();
  const got: string[][] = [[], []];
  const socks = s.vses.map(({ vs }, i) => {
    const sock = s.e.createUdpSocket(vs);
    sock.bind(7);
    // Forwarded to another host of the subnet, whose MAC nobody knows yet (a reply to the sender
    // itself would be reflected to the MAC it came from, without ARP).
    sock.on('message', (m: Buffer, r) => { got[i]!.push(`${m.toString()}@${r.address}:${r.port}`); sock.send(m, r.port, '10.1.1.3'); });
    return sock;
  });
  const out1 = run(s, [
    udpFrame(10, s.vses[0]!.mac, PEER_A, '10.1.1.2', 5000, '10.1.1.1', 7, new TextEncoder().encode('to-vs1')),
    udpFrame(20, s.vses[1]!.mac, PEER_B, '10.1.1.2', 5001, '10.1.1.1', 7, new TextEncoder().encode('to-vs2')),
  ]);
  s.e.flushEvents();
  assert.equal(got, [['to-vs1@10.1.1.2:5000'], ['to-vs2@10.1.1.2:5001']]);
  assert.is(out1.length, 0);
  // The forwarded datagrams wait for ARP: two broadcast requests, one per VLAN.
  const arps = drain(s.pool, s.out);
  assert.is(arps.length, 2);
  assert.equal(arps.map((d) => [d.vlan, d.arp!.op, d.arp!.tpa, d.dst]), [[10, 1, ip('10.1.1.3'), 'ff:ff:ff:ff:ff:ff'], [20, 1, ip('10.1.1.3'), 'ff:ff:ff:ff:ff:ff']]);
  // Only VLAN 10 answers: its queued reply leaves; VLAN 20's stays queued.
  const out2 = run(s, [arpFrame(2, 10, s.vses[0]!.mac, PEER_A, '10.1.1.3', s.vses[0]!.mac, '10.1.1.1')], 2000);
  assert.is(out2.length, 1);
  assert.is(out2[0]!.vlan, 10);
  assert.is(out2[0]!.dst, '02:00:00:00:0a:02');
  assert.equal([out2[0]!.udp!.srcPort, out2[0]!.udp!.dstPort], [7, 5000]);
  assert.is(new TextDecoder().decode(out2[0]!.udp!.data), 'to-vs1');
  // VLAN 20's neighbor never answers: 3 probes, then the queued frame is dropped as unreachable.
  let probes = 0;
  for (let t = 1_000_000; t <= 5_000_000; t += 500_000) {
    s.e.advance(t);
    probes += drain(s.pool, s.out).filter((d) => d.arp && d.vlan === 20).length;
  }
  assert.is(probes, 2); // first request went out at send time; two retries
  assert.is(s.vses[1]!.vs.counters.toJSON().drops.reasons['neighbor-unreachable'], 1);
  assert.is(s.vses[1]!.vs.links[0]!.neigh.size, 0);
  socks.forEach((k) => k.close());
  assert.is(s.pool.check().free, 512);
});

test('unknown UDP port → ICMP port unreachable (rate-limited), counted', () => {
  const s = setup([10]);
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 80; i++) frames.push(udpFrame(10, s.vses[0]!.mac, PEER_A, '10.1.1.2', 4000 + i, '10.1.1.1', 9999, new Uint8Array(10)));
  const out = run(s, frames, 5_000_000);
  assert.is(out.length, 50); // burst of the token bucket
  assert.equal([out[0]!.icmp!.type, out[0]!.icmp!.code], [3, 3]);
  const c = s.vses[0]!.vs.counters.toJSON();
  assert.is(c.drops.reasons['udp-no-socket'], 80);
  assert.is(c.drops.reasons['icmp-rate-limited'], 30);
  assert.is(s.pool.check().free, 512);
});

test('malformed frames are dropped with a reason and never throw', () => {
  const s = setup([10]);
  const good = icmpEchoFrame(10, s.vses[0]!.mac, PEER_A, '10.1.1.2', '10.1.1.1', 1, 1, new Uint8Array(32));
  const frames: Uint8Array[] = [];
  frames.push(good.subarray(0, 10)); // truncated Ethernet
  const badCsum = good.slice(); badCsum[18 + 10] ^= 0xff; frames.push(badCsum);
  const badVer = good.slice(); badVer[18] = 0x65; frames.push(badVer);
  const badIcmp = good.slice(); badIcmp[18 + 20 + 9] ^= 1; frames.push(badIcmp);
  const unknownType = good.slice(); unknownType[16] = 0x12; unknownType[17] = 0x34; frames.push(unknownType);
  const notOurs = udpFrame(10, PEER_B, PEER_A, '10.1.1.2', 1, '10.1.1.1', 7, new Uint8Array(4)); frames.push(notOurs);
  // random garbage
  let seed = 12345;
  for (let i = 0; i < 500; i++) {
    const g = good.slice();
    for (let k = 0; k < 4; k++) { seed = (seed * 1103515245 + 12345) >>> 0; g[18 + (seed % (g.length - 18))] = seed >>> 24; }
    frames.push(g.subarray(0, 14 + (seed % (g.length - 13))));
  }
  for (let i = 0; i < frames.length; i += 64) run(s, frames.slice(i, i + 64));
  const vsDrops = s.vses[0]!.vs.counters.toJSON().drops.reasons;
  const devDrops = s.e.devices[0]!.counters.toJSON().drops.reasons;
  assert.is(devDrops['eth-truncated'], 1);
  assert.is(devDrops['not-for-us'], 1);
  assert.ok(vsDrops['ipv4-bad-checksum']! >= 1);
  assert.ok(vsDrops['ipv4-bad-version']! >= 1);
  assert.ok(vsDrops['icmp-bad-checksum']! >= 1);
  assert.ok(vsDrops['eth-unknown-type']! >= 1);
  assert.is(s.pool.check().free, 512);
});

test('fragmented echo request is reassembled and the reply fragmented for the MTU', () => {
  const s = setup([10]);
  const data = new Uint8Array(3000).map((_, i) => i & 0xff);
  const full = icmpEchoFrame(10, s.vses[0]!.mac, PEER_A, '10.1.1.2', '10.1.1.1', 5, 9, data);
  const frags = fragmentFrame(full, 10, 1480, 4242);
  assert.is(frags.length, 3);
  const out = run(s, [frags[2]!, frags[0]!, frags[1]!]);
  assert.is(out.length, 3);
  const r = new Ipv4Reassembler();
  const h = new Ipv4Header();
  let whole: Uint8Array | null = null;
  for (const d of out) {
    assert.is(d.dst, '02:00:00:00:0a:02');
    assert.ok(d.raw.length - 18 <= 1500);
    assert.is(h.parse(d.raw, 18, d.raw.length - 18), 0);
    assert.is(r.push(1, h, d.raw, 0), 0);
    if (r.done) whole = r.datagram.slice();
  }
  assert.ok(whole);
  assert.is(whole![0], 0); // echo reply
  assert.equal(whole!.subarray(8), data);
  assert.is(s.pool.check().free, 512);
});

test('UDP send larger than the MTU is fragmented; PMTU from ICMP frag-needed lowers it', () => {
  const s = setup([10]);
  const vs = s.vses[0]!.vs;
  // Learn the peer first (its ARP request for our address; an unsolicited reply would teach nothing).
  run(s, [arpFrame(1, 10, BCAST, PEER_A, '10.1.1.2', ZERO, '10.1.1.1')]);
  const sock = s.e.createUdpSocket(vs);
  sock.bind(1234);
  const payload = new Uint8Array(4000).map((_, i) => (i * 7) & 0xff);
  sock.send(payload, 9, '10.1.1.2');
  let out = drain(s.pool, s.out);
  assert.is(out.length, 3);
  assert.ok(out.every((d) => d.raw.length <= 18 + 1500));
  // Reassemble and verify the UDP checksum over the whole datagram.
  const r = new Ipv4Reassembler();
  const h = new Ipv4Header();
  for (const d of out) { h.parse(d.raw, 18, d.raw.length - 18); r.push(1, h, d.raw, 0); }
  assert.ok(r.done);
  const u = new UdpHeader();
  assert.is(u.parse(r.datagram, 0, r.datagram.length, ip('10.1.1.1'), ip('10.1.1.2')), 0);
  assert.equal(r.datagram.slice(8), payload);
  // A router says the path MTU is 1000.
  const quoted = out[0]!.raw.slice(18, 18 + 28);
  const icmpLen = 8 + quoted.length;
  const fn = new Uint8Array(18 + 20 + icmpLen);
  const base = icmpEchoFrame(10, s.vses[0]!.mac, PEER_A, '10.1.1.254', '10.1.1.1', 0, 0, quoted);
  fn.set(base.subarray(0, base.length));
  const o = 18 + 20;
  fn[o] = 3; fn[o + 1] = 4; fn[o + 4] = 0; fn[o + 5] = 0; fn[o + 6] = 1000 >> 8; fn[o + 7] = 1000 & 0xff; fn[o + 2] = 0; fn[o + 3] = 0;
  const { fold, sum16 } = require('../protocols/checksum');
  const c = fold(sum16(fn, o, icmpLen)); fn[o + 2] = c >> 8; fn[o + 3] = c & 0xff;
  run(s, [fn]);
  assert.is(vs.pmtu.get(ip('10.1.1.2'))!.mtu, 1000);
  sock.send(payload, 9, '10.1.1.2');
  out = drain(s.pool, s.out);
  assert.ok(out.length >= 5);
  assert.ok(out.every((d) => d.raw.length <= 18 + 1000));
  sock.close();
  assert.is(s.pool.check().free, 512);
});

test('routing: default gateway, policy rule by fwmark, no route → ENETUNREACH', () => {
  const s = setup([10]);
  const vs = s.vses[0]!.vs;
  s.e.addRoute(vs, { dst: 'default', via: '10.1.1.254' });
  s.e.addRoute(vs, { dst: '198.51.100.0/24', via: '10.1.1.253', table: 100 });
  s.e.addRule(vs, { priority: 100, fwmark: 7, table: 100 });
  const sock = s.e.createUdpSocket(vs);
  sock.bind(2000);
  sock.send(new Uint8Array(8), 9, '198.51.100.9');
  let out = drain(s.pool, s.out);
  assert.is(out[0]!.arp!.tpa, ip('10.1.1.254')); // main table: default gateway
  sock.mark = 7;
  sock.send(new Uint8Array(8), 9, '198.51.100.9');
  out = drain(s.pool, s.out);
  assert.is(out[0]!.arp!.tpa, ip('10.1.1.253')); // marked: table 100
  const vs2 = s.e.createVs('isolated');
  s.e.addLink(vs2, { device: 'eth0', vlan: 99 });
  s.e.addAddress(vs2, 'eth0.99', '172.16.0.1/24');
  drain(s.pool, s.out);
  const s2 = s.e.createUdpSocket(vs2);
  let err: { code?: string } | null = null;
  s2.bind(1);
  try { s.e.udpSend(s2, new Uint8Array(1), 9, ip('8.8.8.8')); } catch (e) { err = e as { code?: string }; }
  assert.is(err?.code, 'ENETUNREACH');
  sock.close(); s2.close();
  // Let the neighbor entries fail so their queued frames are freed.
  s.e.advance(10_000_000);
  drain(s.pool, s.out);
  assert.is(s.pool.check().free, 512);
});

test('VS lifecycle: destroy frees everything, a recreated VS gets a new identity, others keep working', () => {
  const s = setup([10, 20]);
  const id1 = s.vses[0]!.vs.id;
  const sock = s.e.createUdpSocket(s.vses[0]!.vs);
  sock.bind(7);
  s.e.destroyVs('vs1');
  assert.throws(() => s.e.vs('vs1'), /no virtual server 'vs1'/);
  let out = run(s, [arpFrame(1, 10, BCAST, PEER_A, '10.1.1.2', ZERO, '10.1.1.1'), arpFrame(1, 20, BCAST, PEER_B, '10.1.1.2', ZERO, '10.1.1.1')]);
  assert.is(out.length, 1);
  assert.is(out[0]!.vlan, 20);
  const again = s.e.createVs('vs1');
  assert.is.not(again.id, id1);
  s.e.addLink(again, { device: 'eth0', vlan: 10 });
  s.e.addAddress(again, 'eth0.10', '10.1.1.1/24');
  drain(s.pool, s.out);
  out = run(s, [arpFrame(1, 10, BCAST, PEER_A, '10.1.1.2', ZERO, '10.1.1.1')]);
  assert.is(out.length, 1);
  assert.is(out[0]!.vlan, 10);
  assert.throws(() => s.e.addAddress(again, 'eth0.10', '10.1.1.1/24'), /already used/);
  assert.throws(() => s.e.createVs('vs1'), /already exists/);
  assert.is(s.pool.check().free, 512);
});

test('UDP socket API errors are Node-shaped', async () => {
  const s = setup([10]);
  const vs = s.vses[0]!.vs;
  const a = s.e.createUdpSocket(vs);
  const b = s.e.createUdpSocket(vs);
  a.bind(53);
  const err = await new Promise<{ code: string }>((res) => { b.on('error', res); b.bind(53); });
  assert.is(err.code, 'EADDRINUSE');
  const c = s.e.createUdpSocket(vs);
  assert.throws(() => c.address(), /getsockname EBADF/); // unbound: as Node (EBADF)
  const d = s.e.createUdpSocket(vs);
  const e2 = await new Promise<{ code: string }>((res) => { d.on('error', res); d.bind(54, '10.9.9.9'); });
  assert.is(e2.code, 'EADDRNOTAVAIL');
  assert.throws(() => a.send('x', 70000, '10.1.1.2'), /Port should be/);
  a.close();
  assert.throws(() => a.close(), /Not running/);
  assert.is(ipv4ToString(ip('10.1.1.2')), '10.1.1.2');
});

test('ARP entries age: REACHABLE → STALE → removed; unanswered resolution fails after 3 tries', () => {
  const s = setup([10]);
  const link = s.vses[0]!.vs.links[0]!;
  // A reply we did not ask for creates no entry (as Linux with arp_accept 0: not believed).
  run(s, [arpFrame(2, 10, s.vses[0]!.mac, PEER_A, '10.1.1.2', s.vses[0]!.mac, '10.1.1.1')], 0);
  assert.is(link.neigh.peek(ip('10.1.1.2')), undefined);
  // Resolved: the VS asks (a datagram to send), the peer's reply makes it REACHABLE.
  const sock = s.e.createUdpSocket(s.vses[0]!.vs);
  sock.bind(1234);
  sock.send('x', 9, '10.1.1.2');
  assert.equal(drain(s.pool, s.out).map((d) => d.arp?.op), [1], 'an ARP request');
  run(s, [arpFrame(2, 10, s.vses[0]!.mac, PEER_A, '10.1.1.2', s.vses[0]!.mac, '10.1.1.1')], 0);
  sock.close();
  assert.is(NSTATE_NAMES[link.neigh.peek(ip('10.1.1.2'))!.state], 'REACHABLE');
  s.e.advance(31_000_000);
  assert.is(NSTATE_NAMES[link.neigh.peek(ip('10.1.1.2'))!.state], 'STALE');
  s.e.advance(92_000_000);
  assert.is(link.neigh.peek(ip('10.1.1.2')), undefined);
  assert.is(s.pool.check().free, 512);
});

test.run();
