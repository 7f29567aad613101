/**
 * IPv6 neighbor discovery through the engine under virtual time (RFC 4861): address resolution,
 * neighbor unreachability detection, NA handling (7.2.5), hop limit and target checks, and the
 * neighbor table bound against a flood of solicitations from many sources (RFC 6583).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World } from './lib/world';
import { connect } from '../stack/api/net';
import { Ip6, ip6ToString, parseIp6 } from '../protocols/ip/addr';
import { NSTATE_NAMES } from '../stack/neighbor';
import { A6, B6, C6, PEER_MAC, frame6, ns6, na6, send, tap6, icmpOf, held, drops, solicitedNode, mac, addrAt } from './lib/engine6';

const NS = 135;
const NA = 136;
const opts = { ipv6: true, engine: { ndp: { dadTransmits: 0 } } };

function state(w: World, addr: Ip6): string | undefined {
  const n = w.a.vs[0]!.links[0]!.neigh.peek(addr);
  return n ? NSTATE_NAMES[n.state] : undefined;
}

/** Host b listens on UDP 7000 (udp6 on ::); returns what it received. */
function sink(w: World): Buffer[] {
  const got: Buffer[] = [];
  const s = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp6' });
  s.on('message', (m: Buffer) => got.push(m));
  s.bind(7000);
  return got;
}

async function settle(w: World): Promise<void> {
  await w.run(() => false, 10_000);
}

/** Host a reaches fd00::2 (resolved, REACHABLE) with a datagram from a udp6 socket to b's sink. */
async function resolved(w: World): Promise<{ got: Buffer[]; s: ReturnType<World['a']['engine']['createUdpSocket']> }> {
  await settle(w);
  const got = sink(w);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  s.send('x', 7000, 'fd00::2');
  assert.ok(await w.run(() => got.length === 1, 5_000_000));
  return { got, s };
}

test('resolution: NS to the solicited-node group with SLLA and hop limit 255, NA solicited+override, queued frames released in order', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const got = sink(w);
  const ta = tap6(w.link.a);
  const tb = tap6(w.link.b);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  for (let i = 0; i < 3; i++) s.send(Buffer.from(`m${i}`), 7000, 'fd00::2');
  assert.ok(await w.run(() => got.length === 3, 5_000_000), 'the three datagrams arrive');
  assert.equal(got.map(String), ['m0', 'm1', 'm2'], 'released in order');
  const nss = icmpOf(ta, NS);
  assert.is(nss.length, 1, 'one solicitation');
  const n = nss[0]!;
  assert.is(n.dst, ip6ToString(solicitedNode(B6)), 'to the solicited-node group of the target (RFC 4861 7.2.2)');
  assert.is(n.ethDst, '33:33:ff:00:00:02');
  assert.is(n.hop, 255, 'hop limit 255 (RFC 4861 7.1.1)');
  assert.is(n.src, 'fd00::1');
  assert.is(addrAt(n.l4, 8), 'fd00::2', 'target');
  assert.is(n.l4[24], 1, 'Source Link-Layer Address option');
  assert.is(mac(n.l4.subarray(26, 32)), mac(w.link.a.mac));
  const nas = icmpOf(tb, NA).filter((x) => x.dst === 'fd00::1');
  assert.is(nas.length, 1, 'one solicited advertisement back');
  assert.is(nas[0]!.hop, 255);
  assert.is(nas[0]!.l4[4]! & 0x60, 0x60, 'Solicited and Override set');
  assert.is(state(w, B6), 'REACHABLE');
  const udps = ta.filter((x) => x.nh === 17);
  assert.is(udps.length, 3);
  assert.ok(udps.every((x) => x.ethDst === mac(w.link.b.mac)), 'released to the resolved MAC');
  s.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('frames beyond the queue of an IPv6 neighbor being resolved are dropped and counted as ndp-queue-full', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  // Nobody holds fd00::99: the frames wait for its resolution, a bounded queue (4 by default).
  for (let i = 0; i < 10; i++) s.send(Buffer.from(`m${i}`), 7000, 'fd00::99');
  await settle(w);
  assert.is(drops(w, 'a', 'ndp-queue-full'), 6, 'six over the queue of four');
  assert.is(drops(w, 'a', 'arp-queue-full'), 0, 'not counted as ARP');
  s.close();
  await w.run(() => false, 5_000_000); // resolution fails: the queued frames are freed
  assert.equal(held(w), [0, 0]);
});

test('NUD: REACHABLE → STALE → DELAY → PROBE (unicast NS) → REACHABLE; unanswered probes → entry gone after maxProbes', async () => {
  const w = twoHosts(opts);
  const { got, s } = await resolved(w);
  assert.is(state(w, B6), 'REACHABLE');
  await w.run(() => false, 31_000_000); // ReachableTime (30 s) passes
  assert.is(state(w, B6), 'STALE', 'REACHABLE → STALE after ReachableTime');
  const ta = tap6(w.link.a);
  s.send('y', 7000, 'fd00::2');
  await w.run(() => false, 1000);
  assert.is(state(w, B6), 'DELAY', 'STALE + a packet sent → DELAY (RFC 4861 7.3.3)');
  assert.is(got.length, 2, 'the packet went with the cached MAC');
  await w.run(() => icmpOf(ta, NS).length > 0, 6_000_000);
  const probe = icmpOf(ta, NS)[0]!;
  assert.is(probe.dst, 'fd00::2', 'the probe is unicast to the neighbor (RFC 4861 7.3.3)');
  assert.is(probe.ethDst, mac(w.link.b.mac));
  assert.is(probe.hop, 255);
  await w.run(() => state(w, B6) === 'REACHABLE', 2_000_000);
  assert.is(state(w, B6), 'REACHABLE', 'the solicited NA confirms it');

  // Now the neighbor goes away: its probes stay unanswered.
  w.b.engine.removeAddress(w.b.vs[0]!, 'eth0.10', 'fd00::2/64');
  await w.run(() => false, 31_000_000);
  assert.is(state(w, B6), 'STALE');
  ta.length = 0;
  s.send('z', 7000, 'fd00::2');
  await w.run(() => false, 1000);
  assert.is(state(w, B6), 'DELAY');
  await w.run(() => state(w, B6) === undefined, 15_000_000);
  assert.is(state(w, B6), undefined, 'FAILED: the entry is removed');
  const probes = icmpOf(ta, NS);
  assert.is(probes.length, 3, 'MAX_UNICAST_SOLICIT (3) probes, as ARP');
  assert.ok(probes.every((p) => p.dst === 'fd00::2' && p.ethDst === mac(w.link.b.mac)), 'all unicast');
  s.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('TCP connect to an IPv6 neighbor that never answers fails EHOSTUNREACH (as IPv4)', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const st: { err: (Error & { code?: string }) | null } = { err: null };
  const c = connect(w.a.ctx(), { port: 80, host: 'fd00::99' });
  c.on('error', (e: Error) => { st.err = e; });
  await w.run(() => st.err !== null, 20_000_000);
  assert.ok(st.err, 'the connect failed');
  assert.is(st.err!.code, 'EHOSTUNREACH');
  const nss = icmpOf(ta, NS);
  assert.is(nss.length, 3, 'MAX_MULTICAST_SOLICIT (3) solicitations');
  assert.ok(nss.every((n) => n.dst === ip6ToString(solicitedNode(C6))));
  assert.ok(w.now() < 10_000_000, 'well before the TCP connect timeout');
  assert.ok(drops(w, 'a', 'neighbor-unreachable') >= 1, 'the queued SYN counted');
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('NA per RFC 4861 7.2.5: Override clear with a different MAC does not replace it; Override set does', async () => {
  const w = twoHosts(opts);
  const { got, s } = await resolved(w);
  const n = () => w.a.vs[0]!.links[0]!.neigh.peek(B6)!;
  assert.is(state(w, B6), 'REACHABLE');
  const other = Uint8Array.from([0x02, 0x66, 0x66, 0x66, 0x66, 0x66]);
  // Solicited, Override clear, different TLLA.
  send(w, frame6(w, { src: B6, dst: A6, nh: 58, hop: 255, l4: na6(B6, 0x40, other, B6, A6) }));
  await w.run(() => false, 1000);
  assert.is(mac(n().mac), mac(w.link.b.mac), 'the cached MAC is kept');
  assert.is(state(w, B6), 'STALE', 'REACHABLE → STALE');
  // Unsolicited with Override set: the new MAC is taken, STALE.
  send(w, frame6(w, { src: B6, dst: A6, nh: 58, hop: 255, l4: na6(B6, 0x20, other, B6, A6) }));
  await w.run(() => false, 1000);
  assert.is(mac(n().mac), mac(other), 'Override set replaces the MAC');
  assert.is(state(w, B6), 'STALE');
  // An NA never creates an entry (RFC 4861 7.2.5).
  const noEntry = drops(w, 'a', 'ndp-no-entry'); // b's own announcements (to all nodes) counted so far
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, hop: 255, l4: na6(C6, 0x60, PEER_MAC, C6, A6) }));
  await w.run(() => false, 1000);
  assert.is(state(w, C6), undefined);
  assert.is(drops(w, 'a', 'ndp-no-entry'), noEntry + 1, 'and is counted');
  s.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('NS and NA with a hop limit below 255 are dropped and counted; NS for an address not ours counted', async () => {
  const w = twoHosts(opts);
  await settle(w);
  const ta = tap6(w.link.a);
  const snm = solicitedNode(A6);
  const snmMac = Uint8Array.from([0x33, 0x33, 0xff, 0x00, 0x00, 0x01]);
  send(w, frame6(w, { src: C6, dst: snm, nh: 58, hop: 254, ethDst: snmMac, l4: ns6(A6, C6, snm, PEER_MAC) }));
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, hop: 64, l4: na6(C6, 0x20, PEER_MAC, C6, A6) }));
  await w.run(() => false, 1000);
  assert.is(drops(w, 'a', 'ndp-bad-hop-limit'), 2);
  assert.is(icmpOf(ta, NA).length, 0, 'not answered');
  assert.is(state(w, C6), undefined, 'not learned');
  // A solicitation for fd00::77 (not ours) to its own solicited-node group.
  const before = drops(w, 'a', 'ipv6-not-our-address');
  const t = parseIp6('fd00::77');
  const g = solicitedNode(t);
  send(w, frame6(w, { src: C6, dst: g, nh: 58, hop: 255, ethDst: Uint8Array.from([0x33, 0x33, 0xff, 0x00, 0x00, 0x77]), l4: ns6(t, C6, g, PEER_MAC) }));
  await w.run(() => false, 1000);
  assert.is(drops(w, 'a', 'ipv6-not-our-address') - before, 1);
  assert.is(icmpOf(ta, NA).length, 0);
  assert.is(state(w, C6), undefined);
  // The valid one is answered (solicited NA to the sender, at its SLLA) and the sender learned STALE.
  send(w, frame6(w, { src: C6, dst: snm, nh: 58, hop: 255, ethDst: snmMac, l4: ns6(A6, C6, snm, PEER_MAC) }));
  await w.run(() => false, 1000);
  const nas = icmpOf(ta, NA);
  assert.is(nas.length, 1);
  assert.is(nas[0]!.dst, 'fd00::99');
  assert.is(nas[0]!.ethDst, mac(PEER_MAC));
  assert.is(nas[0]!.l4[4]! & 0x60, 0x60);
  assert.is(state(w, C6), 'STALE', 'RFC 4861 7.2.3');
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test('neighbor table bounded against an NS flood from many sources (RFC 6583); a neighbor in use survives', async () => {
  const w = twoHosts({ ...opts, engine: { ...opts.engine, limits: { neighbors: 32 } } });
  const { got, s } = await resolved(w);
  const snm = solicitedNode(A6);
  const snmMac = Uint8Array.from([0x33, 0x33, 0xff, 0x00, 0x00, 0x01]);
  for (let i = 0; i < 1000; i++) {
    const src = new Ip6(0xfd000000, 0, 0, 0x10000 + i);
    const m = Uint8Array.from([0x02, 0x99, 0, 0, (i >> 8) & 0xff, i & 0xff]);
    send(w, frame6(w, { src, dst: snm, nh: 58, hop: 255, ethDst: snmMac, ethSrc: m, l4: ns6(A6, src, snm, m) }));
    if (i % 64 === 63) await w.run(() => false, 1000);
  }
  await w.run(() => false, 10_000);
  const cache = w.a.vs[0]!.links[0]!.neigh;
  assert.ok(cache.size <= 32, `table bounded (${cache.size})`);
  assert.ok(state(w, B6) !== undefined, 'the neighbor in use is kept');
  s.send('y', 7000, 'fd00::2');
  assert.ok(await w.run(() => got.length === 2, 1_000_000), 'and still reached');
  s.close();
  await settle(w);
  assert.equal(held(w), [0, 0]);
});

test.run();
