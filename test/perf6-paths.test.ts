/**
 * The IPv6 per-packet path made cheaper for the benchmarks: `write6` writes exactly the 16 bytes,
 * `AddrMap.get6At` finds entries from frame bytes and reports the stored key (`lastKey6`), the
 * receive path's source address cache (one Ip6 value per recent peer, never a wrong one when two
 * peers share a cache slot), and the keyed flow label (RFC 6437 section 3: the same for a flow,
 * 20 bits, never 0, depending on the stack's secret).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AddrMap, hash6, Ip6, ip6At, parseIp6, pseudoSum6, write6 } from '../protocols/ip/addr';
import { writeEth, ETH_P_IPV6 } from '../protocols/ethernet';
import { writeIpv6, IPPROTO_ICMPV6 } from '../protocols/ipv6';
import { fold, sum16 } from '../protocols/checksum';
import { Burst, parseMac } from '../driver/types';
import { FramePool } from '../umem/pool';
import { Engine } from '../stack/engine';

const DEV_MAC = parseMac('02:00:00:00:00:01');
const VS_MAC = parseMac('02:00:00:00:01:01');
const PEER_MAC = parseMac('02:00:00:00:0a:02');
const OURS = parseIp6('fd00:1::1');
const VLAN = 10;
const L3 = 18;

test('write6 writes the 16 bytes of the address and nothing around them', () => {
  for (const text of ['::', '::1', 'fd00:1::1', 'fe80::23:b3ff:fe00:1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '2001:db8:85a3::8a2e:370:7334']) {
    const a = parseIp6(text);
    const b = new Uint8Array(20).fill(0xee);
    write6(b, 2, a);
    assert.is(b[0], 0xee);
    assert.is(b[1], 0xee);
    assert.is(b[18], 0xee);
    assert.is(b[19], 0xee);
    assert.is(ip6At(b, 2).toString(), a.toString(), text);
    assert.equal(Array.from(b.subarray(2, 18)), Array.from(a.bytes()));
  }
  // The byte order is the wire's (RFC 4291 2.2: the first group is the first two bytes).
  const b = new Uint8Array(16);
  write6(b, 0, parseIp6('102:304:506:708:90a:b0c:d0e:f10'));
  assert.equal(Array.from(b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
});

test('AddrMap.get6At finds IPv6 keys from bytes, reports the stored key, forgets deleted ones', () => {
  const m = new AddrMap<string>();
  const keys = ['fd00:1::1', 'fd00:1::2', 'fe80::1', '2001:db8::1'].map(parseIp6);
  keys.forEach((k, i) => m.set(k, `v${i}`));
  m.set(0x0a010101, 'v4'); // an IPv4 key beside them
  const b = new Uint8Array(40);
  keys.forEach((k, i) => {
    write6(b, 7, new Ip6(k.w0, k.w1, k.w2, k.w3)); // another value with the same words
    assert.is(m.get6At(b, 7), `v${i}`);
    assert.ok(m.lastKey6 === k, 'the stored key object, not a new one');
    assert.is(m.get(parseIp6(k.toString())), `v${i}`);
  });
  write6(b, 7, parseIp6('fd00:1::3'));
  assert.is(m.get6At(b, 7), undefined);
  assert.ok(m.delete(keys[1]!));
  write6(b, 7, keys[1]!);
  assert.is(m.get6At(b, 7), undefined);
  assert.is(m.get(keys[1]!), undefined);
  assert.is(m.get(0x0a010101), 'v4');
  assert.is(m.size, 4);
  m.set(keys[0]!, 'again');
  write6(b, 0, keys[0]!);
  assert.is(m.get6At(b, 0), 'again');
  assert.is(m.size, 4);
});

test('AddrMap.get6At: the same answers with few keys (scanned) and many (hashed), growing and shrinking', () => {
  const m = new AddrMap<number>();
  const keys = Array.from({ length: 40 }, (_, i) => parseIp6(`fd00:${i % 3}::${((i * 7919) & 0xffff).toString(16)}`));
  const b = new Uint8Array(16);
  const check = (live: number) => {
    keys.forEach((k, i) => {
      write6(b, 0, k);
      assert.is(m.get6At(b, 0), i < live ? i : undefined, `key ${i} with ${live} live`);
      if (i < live) assert.ok(m.lastKey6 === k);
    });
  };
  check(0);
  for (let i = 0; i < keys.length; i++) {
    m.set(keys[i]!, i);
    check(i + 1);
  }
  for (let i = keys.length - 1; i >= 0; i--) {
    assert.ok(m.delete(keys[i]!));
    check(i);
  }
  assert.is(m.size, 0);
  keys.slice(0, 6).forEach((k, i) => m.set(k, i));
  m.clear();
  check(0);
  m.set(keys[0]!, 0);
  check(1);
});

/** Two distinct addresses in fd00:1::/64 whose hashes fall in the same slot of a 256-entry cache, and a third in another slot. */
function slotMates(): [Ip6, Ip6, Ip6] {
  const first = parseIp6('fd00:1::100');
  const slot = first.hash & 255;
  let mate: Ip6 | null = null;
  let other: Ip6 | null = null;
  for (let i = 0x101; i < 0x101 + 100_000 && (!mate || !other); i++) {
    const a = new Ip6(first.w0, first.w1, first.w2, i);
    if ((a.hash & 255) === slot) mate ??= a;
    else other ??= a;
  }
  if (!mate || !other) throw new Error('no slot mate found');
  assert.is(mate.hash & 255, first.hash & 255);
  assert.is.not(mate.hash, hash6(first.w0, first.w1, first.w2, first.w3));
  return [first, mate, other];
}

function setup(secret: Uint8Array = new Uint8Array(16).fill(1)) {
  const pool = new FramePool({ frameSize: 2048, frameCount: 256 });
  const e = new Engine({ ndp: { dadTransmits: 0 }, secret });
  e.addDevice({ name: 'eth0', pool, mac: DEV_MAC, mtu: 1500 });
  const vs = e.createVs('t');
  e.addLink(vs, { device: 'eth0', vlan: VLAN, mac: VS_MAC });
  e.addAddress(vs, `eth0.${VLAN}`, 'fd00:1::1/64');
  const out = e.devices[0]!.out;
  const clear = () => { for (let i = 0; i < out.n; i++) pool.free(out.frame[i]!); out.n = 0; };
  clear(); // unsolicited NA, MLD reports
  const burst = new Burst(64);
  let now = 1000;
  /** Feeds frames, returns what was sent as raw copies (frames freed). */
  const run = (frames: Uint8Array[]): Uint8Array[] => {
    burst.n = 0;
    for (const f of frames) {
      const fr = pool.alloc();
      const off = pool.dataStart(fr);
      pool.bytes.set(f, off);
      burst.push(fr, off, f.length, now);
    }
    e.input(0, burst, now);
    e.advance(now);
    e.flushEvents();
    const sent: Uint8Array[] = [];
    for (let i = 0; i < out.n; i++) sent.push(pool.bytes.slice(out.off[i]!, out.off[i]! + out.len[i]!));
    clear();
    now += 1000;
    return sent;
  };
  return { pool, e, vs, run };
}

/** An Ethernet (VLAN) + IPv6 frame from `src` to our address carrying `l4` (checksum filled in at `ck`). */
function frame6(src: Ip6, nh: number, l4: Uint8Array, ck: number): Uint8Array {
  const b = new Uint8Array(L3 + 40 + l4.length);
  writeEth(b, 0, VS_MAC, 0, PEER_MAC, 0, ETH_P_IPV6, VLAN);
  writeIpv6(b, L3, src, OURS, nh, l4.length, 64);
  b.set(l4, L3 + 40);
  const c = fold(sum16(b, L3 + 40, l4.length, pseudoSum6(src, OURS, nh, l4.length)));
  const v = nh === 17 && c === 0 ? 0xffff : c;
  b[L3 + 40 + ck] = v >>> 8;
  b[L3 + 40 + ck + 1] = v & 0xff;
  return b;
}

function udp6(src: Ip6, sport: number, text: string): Uint8Array {
  const data = new TextEncoder().encode(text);
  const u = new Uint8Array(8 + data.length);
  u[0] = sport >>> 8; u[1] = sport & 0xff; u[2] = 0; u[3] = 7;
  u[4] = u.length >>> 8; u[5] = u.length & 0xff;
  u.set(data, 8);
  return frame6(src, 17, u, 6);
}

function echo6(src: Ip6, seq: number): Uint8Array {
  const u = new Uint8Array(8 + 16);
  u[0] = 128; u[4] = 0x12; u[5] = 0x34; u[7] = seq;
  for (let i = 8; i < u.length; i++) u[i] = i;
  return frame6(src, IPPROTO_ICMPV6, u, 2);
}

const dstOf = (f: Uint8Array) => ip6At(f, L3 + 24).toString();
const srcOf = (f: Uint8Array) => ip6At(f, L3 + 8).toString();
const flowOf = (f: Uint8Array) => ((f[L3 + 1]! & 0x0f) << 16) | (f[L3 + 2]! << 8) | f[L3 + 3]!;

test('UDP/IPv6: peers sharing a source-cache slot are each heard and answered as themselves', () => {
  const [p1, p2, p3] = slotMates();
  const s = setup();
  const sock = s.e.createUdpSocket(s.vs, { type: 'udp6', ipv6Only: true });
  sock.bind(7);
  const heard: string[] = [];
  sock.on('message', (m: Buffer, r: { address: string; port: number; family: string }) => {
    heard.push(`${m.toString()}@${r.address}:${r.port}/${r.family}`);
    sock.send(m, r.port, r.address);
  });
  const order = [p1, p2, p1, p3, p2, p2, p1];
  const sent = s.run(order.map((p, i) => udp6(p, 4000 + i, `m${i}`)));
  assert.equal(heard, order.map((p, i) => `m${i}@${p.toString()}:${4000 + i}/IPv6`));
  assert.is(sent.length, order.length);
  assert.equal(sent.map(dstOf), order.map((p) => p.toString()));
  assert.ok(sent.every((f) => srcOf(f) === 'fd00:1::1'));
  assert.is(s.pool.check().free, s.pool.check().total);
});

test('ICMPv6 echo: replies go to each requester (cache slot mates too), one flow label per flow', () => {
  const [p1, p2, p3] = slotMates();
  const s = setup();
  const order = [p1, p2, p1, p3, p2, p1];
  const sent = s.run(order.map((p, i) => echo6(p, i)));
  assert.is(sent.length, order.length);
  assert.equal(sent.map(dstOf), order.map((p) => p.toString()));
  for (const f of sent) {
    assert.is(f[L3 + 40], 129); // echo reply
    const len = (f[L3 + 4]! << 8) | f[L3 + 5]!;
    assert.is(fold(sum16(f, L3 + 40, len, pseudoSum6(ip6At(f, L3 + 8), ip6At(f, L3 + 24), IPPROTO_ICMPV6, len))), 0, 'checksum');
  }
  const flows = sent.map(flowOf);
  assert.ok(flows.every((x) => x > 0 && x <= 0xfffff), 'a 20-bit label, never 0 (RFC 6437 2)');
  assert.is(flows[0], flows[2]);
  assert.is(flows[0], flows[5]);
  assert.is(flows[1], flows[4]);
  // Different flows get (here) different labels, and the label depends on the stack's secret.
  assert.ok(flows[0] !== flows[1] && flows[0] !== flows[3] && flows[1] !== flows[3]);
  const other = setup(new Uint8Array(32).fill(7));
  const again = other.run([echo6(p1, 0)]);
  assert.is.not(flowOf(again[0]!), flows[0]);
});

test.run();
