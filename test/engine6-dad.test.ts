/**
 * Duplicate address detection (RFC 4862 5.4) and the MLDv2 reports for the solicited-node groups
 * (RFC 3810) through the engine under virtual time: a new address is tentative (not answered for,
 * not used as a source), becomes preferred after DupAddrDetectTransmits × RetransTimer and is
 * announced; another node's DAD or advertisement for it makes it a duplicate, reported once and
 * never used. The link-local address comes with the first IPv6 address (RFC 4291 2.1, 4862 5.3).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World } from './lib/world';
import { ANY6, Ip6, ip6ToString, linkLocalFromMac, parseIp6 } from '../protocols/ip/addr';
import { addressRow } from '../stack/show';
import { optsHdr } from './lib/ipv6-frames';
import { A6, B6, C6, PEER_MAC, frame6, ns6, na6, echo6, icmp6, send, tap6, icmpOf, held, drops, solicitedNode, mac, addrAt } from './lib/engine6';

const NS = 135;
const NA = 136;
const MLDV2_REPORT = 143;
const snmMacOf = (a: Ip6) => Uint8Array.from([0x33, 0x33, 0xff, (a.w3 >>> 16) & 0xff, (a.w3 >>> 8) & 0xff, a.w3 & 0xff]);

function world(log: string[], dadTransmits = 1): World {
  return twoHosts({ ipv6: true, engine: { ndp: { dadTransmits, retransUs: 1_000_000 }, log: (m) => log.push(m) } });
}

function addrState(w: World, text: string): string | undefined {
  const l = w.a.vs[0]!.links[0]!;
  const a = l.addrs.find((x) => typeof x.addr !== 'number' && ip6ToString(x.addr) === text);
  return a ? addressRow('vs10', l.name, a).state : undefined;
}

/** The target of an NS or NA. */
const target = (l4: Uint8Array): string => addrAt(l4, 8);

/** Another node's DAD probe for A6: an NS from :: to its solicited-node group (RFC 4862 5.4.2). */
function dadProbe(w: World): Uint8Array {
  const g = solicitedNode(A6);
  return frame6(w, { src: ANY6, dst: g, nh: 58, hop: 255, ethDst: snmMacOf(A6), l4: ns6(A6, ANY6, g, null) });
}

const ROUTER6 = parseIp6('fe80::99');

/**
 * An MLDv2 query (type 130, Maximum Response Code 1000) from a link-local router, hop limit 1 with
 * Router Alert: a General Query to ff02::1, or with `group` a Multicast Address Specific Query to
 * that group (its address the body's first 16 bytes).
 */
function mldQuery(w: World, group?: Ip6, ethDst = Uint8Array.from([0x33, 0x33, 0, 0, 0, 1])): Uint8Array {
  const body = new Uint8Array(20);
  if (group) {
    for (let i = 0; i < 4; i++) {
      const x = [group.w0, group.w1, group.w2, group.w3][i]!;
      body[i * 4] = x >>> 24; body[i * 4 + 1] = (x >>> 16) & 0xff; body[i * 4 + 2] = (x >>> 8) & 0xff; body[i * 4 + 3] = x & 0xff;
    }
  }
  const dst = group ?? parseIp6('ff02::1');
  const q = icmp6(130, 0, ROUTER6, dst, (1000 << 16) >>> 0, body);
  return frame6(w, { src: ROUTER6, dst, nh: 58, hop: 1, ethDst, exts: [optsHdr(0, [5, 2, 0, 0])], l4: q });
}

test('a new address is tentative: not answered for, not used as a source; preferred after DAD, announced by an unsolicited NA', async () => {
  const log: string[] = [];
  const w = world(log);
  const ta = tap6(w.link.a);
  assert.is(addrState(w, 'fd00::1'), 'tentative');
  // An echo request to the tentative address is not answered (RFC 4862 5.4).
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, l4: echo6(C6, A6, 1, 1) }));
  // A datagram sent now cannot come from the tentative address.
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  let sendErr: (Error & { code?: string }) | null | undefined;
  s.send('early', 7000, 'fd00::2', (e: Error | null) => { sendErr = e; });
  await w.run(() => false, 500_000);
  assert.is(icmpOf(ta, 129).length, 0, 'no echo reply from a tentative address');
  assert.ok(drops(w, 'a', 'ipv6-address-tentative') >= 1, 'counted');
  assert.ok(ta.every((o) => o.src !== 'fd00::1'), 'fd00::1 is never a source while tentative');
  if (!sendErr) assert.ok(ta.filter((o) => o.nh === 17).every((o) => o.src !== 'fd00::1'), 'a send picks another source');
  else assert.is(sendErr.code, 'EADDRNOTAVAIL');
  // DAD's probe: from ::, to the solicited-node group, hop limit 255, no SLLA (RFC 4862 5.4.2).
  const probes = icmpOf(ta, NS).filter((o) => target(o.l4) === 'fd00::1');
  assert.is(probes.length, 1, 'DupAddrDetectTransmits = 1 probe');
  assert.is(probes[0]!.src, '::');
  assert.is(probes[0]!.dst, ip6ToString(solicitedNode(A6)));
  assert.is(probes[0]!.hop, 255);
  assert.is(probes[0]!.l4.length, 32, 'no Source Link-Layer Address option; a Nonce option (RFC 7527)');
  assert.is(probes[0]!.l4[24], 14, 'the option after the target is the Nonce, not an SLLA');
  await w.run(() => addrState(w, 'fd00::1') === 'preferred', 1_000_000);
  assert.is(addrState(w, 'fd00::1'), 'preferred', 'preferred after 1 × RetransTimer');
  assert.ok(w.now() >= 1_000_000, 'not before RetransTimer');
  const nas = icmpOf(ta, NA).filter((o) => target(o.l4) === 'fd00::1');
  assert.is(nas.length, 1, 'an unsolicited advertisement');
  assert.is(nas[0]!.dst, 'ff02::1');
  assert.is(nas[0]!.hop, 255);
  assert.is(nas[0]!.l4[4]! & 0x60, 0x20, 'Override set, Solicited clear (RFC 4861 7.2.6)');
  assert.is(nas[0]!.l4[24], 2, 'with the Target Link-Layer Address');
  assert.is(mac(nas[0]!.l4.subarray(26, 32)), mac(w.link.a.mac));
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, l4: echo6(C6, A6, 1, 2) }));
  await w.run(() => icmpOf(ta, 129).length > 0, 2_000_000);
  assert.is(icmpOf(ta, 129).length, 1, 'answered once preferred');
  assert.is(log.length, 0, 'nothing reported');
  s.close();
  await w.run(() => false, 10_000);
  assert.equal(held(w), [0, 0]);
});

test('a socket bound to a tentative address cannot send from it until DAD passes (RFC 4862 5.4)', async () => {
  const log: string[] = [];
  const w = world(log);
  const ta = tap6(w.link.a);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  s.bind(7100, 'fd00::1');
  await w.run(() => false, 1000);
  const errs: (Error & { code?: string })[] = [];
  s.send('early', 7000, 'fd00::2', (e: Error | null) => { if (e) errs.push(e); });
  await w.run(() => false, 500_000);
  assert.is(errs.length, 1, 'the send fails');
  assert.is(errs[0]!.code, 'EADDRNOTAVAIL');
  assert.ok(ta.every((o) => o.src !== 'fd00::1'), 'nothing from the tentative address');
  // Once preferred, it sends.
  const got: Buffer[] = [];
  const r = w.b.engine.createUdpSocket(w.b.vs[0]!, { type: 'udp6' });
  r.on('message', (m: Buffer) => got.push(m));
  r.bind(7000);
  await w.run(() => addrState(w, 'fd00::1') === 'preferred' && w.b.vs[0]!.links[0]!.addrs.every((a) => a.state === 'preferred'), 2_000_000);
  s.send('late', 7000, 'fd00::2', (e: Error | null) => { if (e) errs.push(e); });
  assert.ok(await w.run(() => got.length === 1, 2_000_000), 'sent once preferred');
  assert.is(errs.length, 1);
  s.close();
  r.close();
  await w.run(() => false, 10_000);
  assert.equal(held(w), [0, 0]);
});

test('DupAddrDetectTransmits 3: three probes RetransTimer apart, preferred only RetransTimer after the last', async () => {
  const log: string[] = [];
  const w = twoHosts({ ipv6: true, engine: { ndp: { dadTransmits: 3, retransUs: 500_000 }, log: (m) => log.push(m) } });
  const ta = tap6(w.link.a);
  const times: number[] = [];
  const n0 = () => icmpOf(ta, NS).filter((o) => target(o.l4) === 'fd00::1').length;
  for (let k = 0; k < 40 && addrState(w, 'fd00::1') === 'tentative'; k++) {
    const before = n0();
    await w.run(() => n0() > before || addrState(w, 'fd00::1') !== 'tentative', 2_000_000);
    if (n0() > before) times.push(w.now());
  }
  assert.is(times.length, 3, 'three probes');
  assert.ok(times[1]! - times[0]! >= 500_000 && times[2]! - times[1]! >= 500_000, `RetransTimer apart (${times})`);
  assert.is(addrState(w, 'fd00::1'), 'preferred');
  assert.ok(w.now() >= times[2]! + 500_000, 'not before RetransTimer after the last');
  assert.ok(w.now() < times[2]! + 600_000, 'and not much later');
  await w.run(() => false, 10_000);
  assert.equal(held(w), [0, 0]);
});

test('destroying a VS in the middle of DAD, resolution and reassembly leaves no frame held and no timer behind', async () => {
  const log: string[] = [];
  const w = world(log);
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  s.on('error', () => {});
  await w.run(() => addrState(w, 'fd00::1') === 'preferred', 2_000_000);
  // Frames queued for an unresolved neighbor, a new address in DAD, a fragment held.
  for (let i = 0; i < 3; i++) s.send('q', 7000, 'fd00::99');
  w.a.engine.addAddress(w.a.vs[0]!, 'eth0.10', 'fd00::7/64');
  const big = echo6(C6, A6, 1, 1, new Uint8Array(2000));
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, exts: [{ type: 44, body: Uint8Array.from([58, 0, 0, 1, 0, 0, 0, 9]) }], l4: big.subarray(0, 1232) }));
  await w.run(() => false, 1000);
  w.a.engine.destroyVs('vs10');
  await w.run(() => false, 70_000_000);
  assert.is(w.a.engine.internalErrors, 0);
  assert.equal(log.filter((m) => m.includes('internal')), []);
  assert.equal(held(w), [0, 0]);
});

test('the link-local address (modified EUI-64 of the link MAC) appears with the first IPv6 address and goes with the last', async () => {
  const log: string[] = [];
  const w = world(log, 0);
  const l = w.a.vs[0]!.links[0]!;
  const m = w.link.a.mac;
  const hex = (x: number, y: number) => ((x << 8) | y).toString(16);
  const ll = `fe80::${hex(m[0]! ^ 2, m[1]!)}:${hex(m[2]!, 0xff)}:${hex(0xfe, m[3]!)}:${hex(m[4]!, m[5]!)}`;
  assert.is(ip6ToString(linkLocalFromMac(m)), ip6ToString(parseIp6(ll)));
  assert.ok(l.addrs.some((a) => typeof a.addr !== 'number' && ip6ToString(a.addr) === ip6ToString(parseIp6(ll))), `has ${ll}`);
  const row = l.addrs.map((a) => addressRow('vs10', l.name, a)).find((r) => r.address.startsWith('fe80::'));
  assert.is(row?.address, `${ip6ToString(parseIp6(ll))}/64`);
  w.a.engine.removeAddress(w.a.vs[0]!, 'eth0.10', 'fd00::1/64');
  assert.ok(!l.addrs.some((a) => typeof a.addr !== 'number'), 'no IPv6 address left');
  await w.run(() => false, 10_000);
  assert.equal(held(w), [0, 0]);
});

test('DAD conflict: an NS from :: for the tentative address makes it duplicate, reported once, never used', async () => {
  const log: string[] = [];
  const w = world(log);
  const ta = tap6(w.link.a);
  send(w, dadProbe(w));
  await w.run(() => false, 200_000);
  send(w, dadProbe(w));
  await w.run(() => false, 5_000_000);
  assert.is(addrState(w, 'fd00::1'), 'duplicate', '`show addresses` state');
  assert.is(log.filter((x) => x.includes('fd00::1')).length, 1, 'reported once through the engine log');
  assert.ok(ta.every((o) => o.src !== 'fd00::1'), 'never a source');
  assert.is(icmpOf(ta, NA).filter((o) => target(o.l4) === 'fd00::1').length, 0, 'never advertised');
  send(w, frame6(w, { src: C6, dst: A6, nh: 58, l4: echo6(C6, A6, 1, 1) }));
  await w.run(() => false, 10_000);
  assert.is(icmpOf(ta, 129).length, 0, 'not answered for');
  // A send to the prefix must not use it either.
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!, { type: 'udp6' });
  let sendErr: (Error & { code?: string }) | null | undefined;
  s.send('late', 7000, 'fd00::2', (e: Error | null) => { sendErr = e; });
  await w.run(() => false, 3_000_000);
  if (sendErr) assert.is(sendErr.code, 'EADDRNOTAVAIL');
  assert.ok(ta.every((o) => o.src !== 'fd00::1'), 'never a source');
  assert.is(addrState(w, 'fd00::1'), 'duplicate');
  // The link-local address was not in conflict: it is preferred.
  assert.ok(w.a.vs[0]!.links[0]!.addrs.some((a) => typeof a.addr !== 'number' && a.auto && a.state === 'preferred'));
  s.close();
  await w.run(() => false, 10_000);
  assert.equal(held(w), [0, 0]);
});

test('DAD loop detection (RFC 7527): our own probe coming back (its Nonce) is no conflict; a probe with another nonce is', async () => {
  const log: string[] = [];
  const w = world(log);
  const ta = tap6(w.link.a);
  await w.run(() => icmpOf(ta, NS).some((o) => target(o.l4) === 'fd00::1'), 100_000);
  const ours = icmpOf(ta, NS).find((o) => target(o.l4) === 'fd00::1')!;
  // The probe carries a Nonce option (type 14, length 1: 6 bytes) after the target.
  assert.is(ours.l4[24], 14, 'Nonce option');
  assert.is(ours.l4[25], 1);
  // A switch reflects it back to us, as received: not a duplicate.
  send(w, Uint8Array.from(ours.raw));
  await w.run(() => false, 2_000_000);
  assert.is(addrState(w, 'fd00::1'), 'preferred', 'our own looped probe does not make the address duplicate');
  assert.is(w.a.engine.ndp.loopedProbes, 1);
  // The same probe with another nonce is another node's DAD for the address.
  const w2 = world(log);
  const t2 = tap6(w2.link.a);
  await w2.run(() => icmpOf(t2, NS).some((o) => target(o.l4) === 'fd00::1'), 100_000);
  send(w2, dadProbe(w2));
  await w2.run(() => false, 2_000_000);
  assert.is(addrState(w2, 'fd00::1'), 'duplicate');
  assert.equal(held(w), [0, 0]);
  assert.equal(held(w2), [0, 0]);
});

test('another node\'s DAD for our preferred address is answered to all nodes, Solicited clear (RFC 4861 7.2.4); the address stays ours', async () => {
  const log: string[] = [];
  const w = world(log, 0);
  await w.run(() => false, 10_000);
  const ta = tap6(w.link.a);
  send(w, dadProbe(w));
  await w.run(() => false, 10_000);
  const nas = icmpOf(ta, NA);
  assert.is(nas.length, 1);
  assert.is(nas[0]!.dst, 'ff02::1');
  assert.is(nas[0]!.ethDst, '33:33:00:00:00:01');
  assert.is(nas[0]!.l4[4]! & 0x60, 0x20, 'Override set, Solicited clear');
  assert.is(target(nas[0]!.l4), 'fd00::1');
  assert.is(addrState(w, 'fd00::1'), 'preferred');
  assert.is(log.length, 0);
  assert.equal(held(w), [0, 0]);
});

test('DAD conflict: an NA for the tentative address makes it duplicate', async () => {
  const log: string[] = [];
  const w = world(log);
  const all = parseIp6('ff02::1');
  send(w, frame6(w, { src: C6, dst: all, nh: 58, hop: 255, ethDst: Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]), l4: na6(A6, 0x20, PEER_MAC, C6, all) }));
  await w.run(() => false, 3_000_000);
  assert.is(addrState(w, 'fd00::1'), 'duplicate');
  assert.is(log.length, 1);
  assert.match(log[0]!, /fd00::1/);
  await w.run(() => false, 10_000);
  assert.equal(held(w), [0, 0]);
});

/** The MLDv2 records (type, group) of a report. */
function records(o: { l4: Uint8Array }): [number, string][] {
  const n = (o.l4[6]! << 8) | o.l4[7]!;
  const r: [number, string][] = [];
  for (let i = 0; i < n; i++) {
    const p = 8 + i * 20;
    r.push([o.l4[p]!, addrAt(o.l4, p + 4)]);
  }
  return r;
}

test('MLDv2: reports for the solicited-node groups on add (TO_EX) and remove (TO_IN), current state to a general query', async () => {
  const log: string[] = [];
  const w = world(log, 0);
  const ta = tap6(w.link.a);
  await w.run(() => false, 10_000);
  const ll = linkLocalFromMac(w.link.a.mac);
  const joins = icmpOf(ta, MLDV2_REPORT);
  assert.ok(joins.length >= 1, 'reports sent');
  for (const r of joins) {
    assert.is(r.dst, 'ff02::16');
    assert.is(r.ethDst, '33:33:00:00:00:16');
    assert.is(r.hop, 1, 'hop limit 1 (RFC 3810 5)');
    assert.equal(r.exts, [0], 'behind a Hop-by-Hop header');
    assert.is(r.raw[18 + 40 + 2], 5, 'with Router Alert (RFC 3810 5, RFC 2711)');
  }
  const joined = joins.flatMap(records);
  assert.ok(joined.some(([t, g]) => t === 4 && g === ip6ToString(solicitedNode(A6))), 'CHANGE_TO_EXCLUDE {} for ff02::1:ff00:1');
  assert.ok(joined.some(([t, g]) => t === 4 && g === ip6ToString(solicitedNode(ll))), 'and for the link-local address group');
  // A general query (from a link-local router, to all nodes, hop limit 1, Router Alert).
  ta.length = 0;
  send(w, mldQuery(w));
  await w.run(() => icmpOf(ta, MLDV2_REPORT).length > 0, 11_000_000);
  const answers = icmpOf(ta, MLDV2_REPORT).flatMap(records);
  assert.ok(answers.length >= 2, 'answered');
  assert.ok(answers.every(([t]) => t === 2), `Current State records MODE_IS_EXCLUDE (RFC 3810 6.2, 5.2.12), got ${answers.map(([t]) => t)}`);
  assert.ok(answers.some(([, g]) => g === ip6ToString(solicitedNode(A6))));
  assert.ok(answers.some(([, g]) => g === ip6ToString(solicitedNode(ll))));
  // Removing the address leaves its group (and the link-local one, gone with the last address).
  ta.length = 0;
  w.a.engine.removeAddress(w.a.vs[0]!, 'eth0.10', 'fd00::1/64');
  await w.run(() => false, 10_000);
  const left = icmpOf(ta, MLDV2_REPORT).flatMap(records);
  assert.ok(left.some(([t, g]) => t === 3 && g === ip6ToString(solicitedNode(A6))), 'CHANGE_TO_INCLUDE {} for ff02::1:ff00:1');
  assert.ok(left.some(([t, g]) => t === 3 && g === ip6ToString(solicitedNode(ll))), 'and for the link-local group');
  assert.equal(held(w), [0, 0]);
  void B6;
});

test('MLDv2: a Multicast Address Specific Query is answered for that group only (RFC 3810 6.2); one for a group not ours is not', async () => {
  const log: string[] = [];
  const w = world(log, 0);
  await w.run(() => false, 10_000);
  const ta = tap6(w.link.a);
  const g = solicitedNode(A6);
  send(w, mldQuery(w, g, snmMacOf(A6)));
  await w.run(() => icmpOf(ta, MLDV2_REPORT).length > 0, 11_000_000);
  const answers = icmpOf(ta, MLDV2_REPORT).flatMap(records);
  assert.equal(answers, [[2, ip6ToString(g)]], 'one Current State record, for the group asked about');
  ta.length = 0;
  const other = solicitedNode(parseIp6('fd00::77'));
  send(w, mldQuery(w, other, Uint8Array.from([0x33, 0x33, 0xff, 0, 0, 0x77])));
  await w.run(() => false, 11_000_000);
  assert.is(icmpOf(ta, MLDV2_REPORT).length, 0, 'not about us');
  assert.equal(held(w), [0, 0]);
});

test('MLDv2: a General Query on a VLAN shared by two VSes is answered for the groups of both', async () => {
  const log: string[] = [];
  const w = world(log, 0);
  const e = w.a.engine;
  const vs2 = e.createVs('second');
  const mac2 = Uint8Array.from([0x02, 0x00, 0x00, 0x00, 0x02, 0x02]);
  e.addLink(vs2, { device: 'eth0', vlan: 10, mac: mac2 });
  e.addAddress(vs2, 'eth0.10', 'fd00::5/64');
  await w.run(() => false, 10_000);
  const ta = tap6(w.link.a);
  send(w, mldQuery(w));
  await w.run(() => icmpOf(ta, MLDV2_REPORT).length >= 2, 11_000_000);
  const reps = icmpOf(ta, MLDV2_REPORT);
  const groups = new Set(reps.flatMap(records).map(([, g]) => g));
  assert.ok(groups.has(ip6ToString(solicitedNode(A6))), 'the first VS\'s group');
  assert.ok(groups.has(ip6ToString(solicitedNode(parseIp6('fd00::5')))), 'the second VS\'s group');
  assert.ok(reps.some((r) => r.ethSrc === mac(mac2)), 'reported from the second VS\'s link');
  assert.equal(held(w), [0, 0]);
});

test('MLDv2: the answer to a General Query for many groups is split into reports that fit the link MTU (RFC 3810 5.2.15)', async () => {
  const log: string[] = [];
  const w = world(log, 0);
  for (let i = 0; i < 150; i++) w.a.engine.addAddress(w.a.vs[0]!, 'eth0.10', `fd00::${(0x1000 + i).toString(16)}/64`);
  await w.run(() => false, 10_000);
  const ta = tap6(w.link.a);
  send(w, mldQuery(w));
  await w.run(() => icmpOf(ta, MLDV2_REPORT).length > 0, 11_000_000);
  const reps = icmpOf(ta, MLDV2_REPORT);
  assert.ok(reps.length >= 3, `several reports (${reps.length})`);
  assert.ok(reps.every((r) => r.raw.length - 18 <= 1500), 'each within the MTU');
  const groups = new Set(reps.flatMap(records).map(([, g]) => g));
  assert.is(groups.size, 152, 'every group (150 + fd00::1 + the link-local one)');
  assert.is(w.a.engine.internalErrors, 0);
  assert.equal(held(w), [0, 0]);
});

test.run();
