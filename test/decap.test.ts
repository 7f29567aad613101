/**
 * VIPs behind an L4 load balancer (direct server return), at the engine: the load balancer sends
 * the VS its clients' packets inside IPv4 (RFC 2003 IPIP: protocol 4; IPv6 in IPv4: protocol 41)
 * or IPv6 (RFC 2473: next header 41; IPv4 in IPv6: next header 4) to an address of a VS link, from
 * an address in the VS's `decap.from`; the inner packet is to a VIP of the VS. The VS answers from
 * the VIP straight to the client, routed by its own tables (here: a default route through a
 * gateway), never back to the load balancer. Anything else encapsulated is a counted drop.
 * A VS with no VIPs and no load balancers is a host without tunnels: protocol 4/41 is unknown.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseMac } from '../driver/types';
import { FramePool } from '../umem/pool';
import { Engine } from '../stack/engine';
import type { VirtualServer } from '../stack/vs';
import type { UdpSocket } from '../stack/api/dgram';
import { IPPROTO_UDP } from '../protocols/ipv4';
import { frag } from './lib/ipv6-frames';
import { writeNs } from '../protocols/ndp';
import { parseIp6 } from '../protocols/ip/addr';
import { feeder } from './lib/decap-host';
import {
  arpReply, echoRequest, encap, eth, GW_MAC, ipv4, ipv6, LB_MAC, macText, naPacket, udp, udpPacket, Wire,
} from './lib/decap-frames';

const DEV_MAC = parseMac('02:00:00:00:00:01');
const VS_MAC = parseMac('02:00:00:00:01:01');
const VS2_MAC = parseMac('02:00:00:00:02:01');
const ADDR4 = '10.1.1.1', ADDR6 = 'fd00:1::1';
const GW4 = '10.1.1.254', GW6 = 'fd00:1::fe';
const LB4 = '10.1.1.100', LB6 = 'fd00:1::100';
const VIP4 = '198.51.100.10', VIP6 = '2001:db8::10';
const CL4 = '203.0.113.7', CL6 = '2001:db8:c::7';
const enc = (s: string) => new TextEncoder().encode(s);
const tick = () => new Promise<void>((r) => setImmediate(r));

interface Host {
  pool: FramePool;
  e: Engine;
  vs: VirtualServer;
  /** Puts frames in as received on eth0, delivers socket events; returns what was transmitted. */
  input(frames: Uint8Array[]): Promise<Wire[]>;
  /** Drop counts of the VS (by name). */
  drops(): Record<string, number>;
}

/**
 * One engine, VS 't' on VLAN 10 (10.1.1.1/24, fd00:1::1/64, default routes through 10.1.1.254 and
 * fd00:1::fe), with `vips` and `from` (undefined: no decap set).
 */
function host(o: { vips?: string[]; from?: string[]; overhead?: number; second?: boolean } = {}): Host {
  const pool = new FramePool({ frameSize: 2048, frameCount: 256 });
  const e = new Engine({ ndp: { dadTransmits: 0 } });
  e.addDevice({ name: 'eth0', pool, mac: DEV_MAC, mtu: 1500 });
  const vs = e.createVs('t');
  e.addLink(vs, { device: 'eth0', vlan: 10, mac: VS_MAC });
  e.addAddress(vs, 'eth0.10', `${ADDR4}/24`);
  e.addAddress(vs, 'eth0.10', `${ADDR6}/64`);
  e.addRoute(vs, { dst: 'default', via: GW4 });
  e.addRoute(vs, { dst: '::/0', via: GW6 });
  for (const v of o.vips ?? []) e.addVip(vs, v);
  if (o.from) e.setDecap(vs, { from: o.from, overhead: o.overhead });
  const f = feeder(e, pool);
  return {
    pool, e, vs,
    async input(frames) {
      f.put(frames);
      await tick();
      e.flushEvents();
      return f.drain();
    },
    drops: () => vs.counters.toJSON().drops.reasons,
  };
}

/** An encapsulated frame from the load balancer's MAC to the VS's, on VLAN `vlan`. */
const tunnelled = (outerSrc: string, outerDst: string, inner: Uint8Array, o: Parameters<typeof encap>[3] = {}, vlan = 10, dstMac = VS_MAC) =>
  eth(vlan, dstMac, LB_MAC, encap(outerSrc, outerDst, inner, o));

interface Got { data: string; address: string; port: number; family: string }

/** A socket of `vs` of `type` bound to `port` (at `addr`, or every address) that records what it gets and echoes it. */
async function echoSocket(e: Engine, vs: VirtualServer, type: 'udp4' | 'udp6', port: number, addr?: string): Promise<{ s: UdpSocket; got: Got[] }> {
  const s = e.createUdpSocket(vs, { type });
  const got: Got[] = [];
  s.on('message', (m: Buffer, r) => {
    got.push({ data: m.toString(), address: r.address, port: r.port, family: r.family });
    s.send(m, r.port, r.address);
  });
  if (addr) s.bind(port, addr); else s.bind(port);
  await tick();
  return { s, got };
}

/** The gateway's answer to the VS's ARP request or Neighbor Solicitation. */
function gatewayAnswer(v6: boolean, vlan = 10, vsMac = VS_MAC, gw4 = GW4, gw6 = GW6, addr4 = ADDR4, addr6 = ADDR6): Uint8Array {
  return v6 ? eth(vlan, vsMac, GW_MAC, naPacket(gw6, GW_MAC, addr6)) : arpReply(vlan, GW_MAC, gw4, vsMac, addr4);
}

/** The frame asks the gateway's address (ARP request, or Neighbor Solicitation for it). */
function asksGateway(w: Wire, v6: boolean, gw4 = GW4, gw6 = GW6): boolean {
  return v6 ? w.nsTarget === gw6 : w.arp?.op === 1 && w.arp.tpa === gw4;
}

/**
 * Puts `frames` in; every resolution of a gateway the VS asks for is answered (the gateway is
 * 10.1.1.254 / fd00:1::fe on VLAN 10, or `gw` per VLAN). Returns everything transmitted: the
 * resolutions first seen, then the rest.
 */
async function viaGateway(h: Host, frames: Uint8Array[]): Promise<{ asked: Wire[]; sent: Wire[] }> {
  const asked: Wire[] = [];
  const sent: Wire[] = [];
  let out = await h.input(frames);
  for (let round = 0; round < 4 && out.length; round++) {
    const answers: Uint8Array[] = [];
    for (const w of out) {
      if (w.arp?.op === 1 || w.nsTarget !== undefined) {
        asked.push(w);
        const gw = GATEWAYS[`${w.vlan}/${w.arp ? w.arp.tpa : w.nsTarget}`];
        if (gw) answers.push(gw);
      } else sent.push(w);
    }
    out = answers.length ? await h.input(answers) : [];
  }
  return { asked, sent };
}

const GATEWAYS: Record<string, Uint8Array> = {
  [`10/${GW4}`]: arpReply(10, GW_MAC, GW4, VS_MAC, ADDR4),
  [`10/${GW6}`]: eth(10, VS_MAC, GW_MAC, naPacket(GW6, GW_MAC, ADDR6)),
  '20/10.2.2.254': arpReply(20, GW_MAC, '10.2.2.254', VS2_MAC, '10.2.2.1'),
  '20/fd00:2::fe': eth(20, VS2_MAC, GW_MAC, naPacket('fd00:2::fe', GW_MAC, 'fd00:2::1')),
};

const FOUR: { name: string; outer: [string, string]; vip: string; client: string; proto: number }[] = [
  { name: 'IPv4 in IPv4 (protocol 4, RFC 2003)', outer: [LB4, ADDR4], vip: VIP4, client: CL4, proto: 4 },
  { name: 'IPv6 in IPv6 (next header 41, RFC 2473)', outer: [LB6, ADDR6], vip: VIP6, client: CL6, proto: 41 },
  { name: 'IPv6 in IPv4 (protocol 41)', outer: [LB4, ADDR4], vip: VIP6, client: CL6, proto: 41 },
  { name: 'IPv4 in IPv6 (next header 4)', outer: [LB6, ADDR6], vip: VIP4, client: CL4, proto: 4 },
];

for (const c of FOUR) {
  test(`${c.name}: UDP to a VIP is delivered with the inner source; the reply leaves from the VIP to the client, routed through the gateway`, async () => {
    const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
    const v6 = c.vip.includes(':');
    const { s, got } = await echoSocket(h.e, h.vs, v6 ? 'udp6' : 'udp4', 53, c.vip);
    const inner = udpPacket(c.client, 40001, c.vip, 53, enc('query'));
    const frame = tunnelled(c.outer[0], c.outer[1], inner);
    assert.is(frame[18 + (c.outer[0].includes(':') ? 6 : 9)], c.proto, 'outer protocol / next header');
    const sent = await h.input([frame]);
    assert.equal(got, [{ data: 'query', address: c.client, port: 40001, family: v6 ? 'IPv6' : 'IPv4' }], 'delivered with the inner source');
    // The reply is routed: the gateway's address is resolved first; nothing goes to the load balancer.
    assert.is(sent.length, 1, 'one frame: the resolution of the gateway');
    assert.ok(asksGateway(sent[0]!, v6), `asks for the gateway: ${JSON.stringify(sent[0])}`);
    const after = await h.input([gatewayAnswer(v6)]);
    assert.is(after.length, 1, 'the reply, once the gateway is known');
    const r = after[0]!;
    assert.is(r.ethDst, macText(GW_MAC), 'to the gateway');
    assert.is(r.ethSrc, macText(VS_MAC));
    assert.is(r.vlan, 10);
    assert.is(r.ip!.src, c.vip, 'from the VIP');
    assert.is(r.ip!.dst, c.client, 'to the client');
    assert.equal([r.udp!.sport, r.udp!.dport, new TextDecoder().decode(r.udp!.data)], [53, 40001, 'query']);
    assert.ok([...sent, ...after].every((w) => w.ethDst !== macText(LB_MAC)), 'never a frame to the load balancer');
    assert.is(h.vs.counters.decapsulated, 1, 'counted as decapsulated');
    assert.equal(h.drops(), {});
    s.close();
    assert.is(h.pool.check().held, 0, 'every frame back');
  });
}

test('a socket bound to every address answers from the VIP the datagram came to (RFC 1122 4.1.3.5), routed', async () => {
  const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
  const a = await echoSocket(h.e, h.vs, 'udp4', 53);
  const b = await echoSocket(h.e, h.vs, 'udp6', 54);
  const { sent } = await viaGateway(h, [
    tunnelled(LB4, ADDR4, udpPacket(CL4, 40001, VIP4, 53, enc('four'))),
    tunnelled(LB6, ADDR6, udpPacket(CL6, 40002, VIP6, 54, enc('six'))),
  ]);
  assert.equal(a.got.map((g) => g.address), [CL4]);
  assert.equal(b.got.map((g) => g.address), [CL6]);
  assert.equal(sent.map((w) => [w.ethDst, w.ip!.src, w.ip!.dst, w.udp!.sport]),
    [[macText(GW_MAC), VIP4, CL4, 53], [macText(GW_MAC), VIP6, CL6, 54]]);
  a.s.close();
  b.s.close();
  assert.is(h.pool.check().held, 0);
});

test('an inner IPv4 datagram in fragments, each fragment in its own tunnel packet, is reassembled and delivered (RFC 2003 3.1)', async () => {
  const h = host({ vips: [VIP4], from: [`${LB4}/32`] });
  const { s, got } = await echoSocket(h.e, h.vs, 'udp4', 53, VIP4);
  const data = new Uint8Array(64).map((_, i) => 65 + (i % 26));
  const whole = udp(CL4, 40001, VIP4, 53, data); // 72 bytes: fragments of 40 and 32
  const f1 = ipv4(CL4, VIP4, IPPROTO_UDP, whole.subarray(0, 40), { id: 77, flagsFrag: 0x2000 });
  const f2 = ipv4(CL4, VIP4, IPPROTO_UDP, whole.subarray(40), { id: 77, flagsFrag: 40 >>> 3 });
  const { sent } = await viaGateway(h, [tunnelled(LB4, ADDR4, f1), tunnelled(LB4, ADDR4, f2)]);
  assert.equal(got.map((g) => [g.data, g.address, g.port]), [[new TextDecoder().decode(data), CL4, 40001]]);
  assert.is(sent.length, 1);
  assert.equal([sent[0]!.ethDst, sent[0]!.ip!.src, sent[0]!.ip!.dst], [macText(GW_MAC), VIP4, CL4]);
  s.close();
  assert.is(h.pool.check().held, 0);
});

test('an IPv6 tunnel packet with a Tunnel Encapsulation Limit option (RFC 2473 5.1) or an atomic fragment header (RFC 6946) is taken', async () => {
  const h = host({ vips: [VIP6], from: [`${LB6}/128`] });
  const { s, got } = await echoSocket(h.e, h.vs, 'udp6', 53, VIP6);
  // Destination Options header: Tunnel Encapsulation Limit (type 4, length 1, limit 4) and PadN.
  const dstOpts = { type: 60, body: Uint8Array.from([0, 0, 4, 1, 4, 1, 1, 0]) };
  const atomic = frag(0, false, 99);
  const { sent } = await viaGateway(h, [
    tunnelled(LB6, ADDR6, udpPacket(CL6, 40001, VIP6, 53, enc('limit')), { exts: [dstOpts] }),
    tunnelled(LB6, ADDR6, udpPacket(CL6, 40002, VIP6, 53, enc('atomic')), { exts: [atomic] }),
  ]);
  assert.equal(got.map((g) => g.data), ['limit', 'atomic']);
  assert.equal(sent.map((w) => [w.ip!.src, w.ip!.dst, w.udp!.dport]), [[VIP6, CL6, 40001], [VIP6, CL6, 40002]]);
  assert.equal(h.drops(), {});
  s.close();
  assert.is(h.pool.check().held, 0);
});

/** Every socket a refused packet could have reached: port 53 at the wildcard address of both families (dual-stack). */
async function catchAll(h: Host): Promise<{ got: () => number; close(): void }> {
  const a = await echoSocket(h.e, h.vs, 'udp6', 53);
  return { got: () => a.got.length, close: () => a.s.close() };
}

const REFUSALS: { name: string; reason: string; cfg?: { vips: string[]; from?: string[] }; frames: () => Uint8Array[] }[] = [
  {
    name: 'an outer source not in decap.from', reason: 'decap-source-refused',
    frames: () => [
      tunnelled('10.1.1.101', ADDR4, udpPacket(CL4, 1, VIP4, 53, enc('x'))),
      tunnelled('fd00:1::101', ADDR6, udpPacket(CL6, 1, VIP6, 53, enc('x'))),
      // A load balancer of the other family is no load balancer of this one.
      tunnelled(LB6.replace('100', '1:0'), ADDR6, udpPacket(CL4, 1, VIP4, 53, enc('x'))),
    ],
  },
  {
    name: 'a VS with VIPs but no decap.from', reason: 'decap-source-refused', cfg: { vips: [VIP4, VIP6] },
    frames: () => [tunnelled(LB4, ADDR4, udpPacket(CL4, 1, VIP4, 53, enc('x'))), tunnelled(LB6, ADDR6, udpPacket(CL6, 1, VIP6, 53, enc('x')))],
  },
  {
    name: 'an inner destination that is no VIP (the VS\'s own addresses, another address)', reason: 'decap-not-vip',
    frames: () => [
      tunnelled(LB4, ADDR4, udpPacket(CL4, 1, ADDR4, 53, enc('x'))),
      tunnelled(LB6, ADDR6, udpPacket(CL6, 1, ADDR6, 53, enc('x'))),
      tunnelled(LB4, ADDR4, udpPacket(CL4, 1, '198.51.100.11', 53, enc('x'))),
      tunnelled(LB6, ADDR6, udpPacket(CL6, 1, '2001:db8::11', 53, enc('x'))),
    ],
  },
  {
    name: 'a VS with load balancers but no VIPs', reason: 'decap-not-vip', cfg: { vips: [], from: [`${LB4}/32`, `${LB6}/128`] },
    frames: () => [tunnelled(LB4, ADDR4, udpPacket(CL4, 1, VIP4, 53, enc('x'))), tunnelled(LB6, ADDR6, udpPacket(CL6, 1, VIP6, 53, enc('x')))],
  },
  {
    name: 'nested encapsulation', reason: 'decap-nested',
    frames: () => [
      tunnelled(LB4, ADDR4, encap(CL4, VIP4, udpPacket(CL4, 1, VIP4, 53, enc('x')))),
      tunnelled(LB6, ADDR6, encap(CL6, VIP6, udpPacket(CL6, 1, VIP6, 53, enc('x')))),
      tunnelled(LB4, ADDR4, encap(CL4, VIP4, udpPacket(CL6, 1, VIP6, 53, enc('x')))),
      tunnelled(LB6, ADDR6, encap(CL6, VIP6, udpPacket(CL4, 1, VIP4, 53, enc('x')))),
    ],
  },
  {
    name: 'an inner packet shorter than its header', reason: 'decap-bad-inner',
    frames: () => [
      tunnelled(LB4, ADDR4, udpPacket(CL4, 1, VIP4, 53, enc('x')).subarray(0, 19)),
      tunnelled(LB6, ADDR6, udpPacket(CL6, 1, VIP6, 53, enc('x')).subarray(0, 39)),
      tunnelled(LB4, ADDR4, new Uint8Array(0), { proto: 4 }),
      tunnelled(LB6, ADDR6, new Uint8Array(0), { proto: 41 }),
    ],
  },
  {
    name: 'an inner version other than the outer protocol names', reason: 'decap-bad-inner',
    frames: () => [
      tunnelled(LB4, ADDR4, udpPacket(CL6, 1, VIP6, 53, enc('x')), { proto: 4 }),
      tunnelled(LB4, ADDR4, udpPacket(CL4, 1, VIP4, 53, enc('x')), { proto: 41 }),
      tunnelled(LB6, ADDR6, udpPacket(CL6, 1, VIP6, 53, enc('x')), { proto: 4 }),
      tunnelled(LB6, ADDR6, udpPacket(CL4, 1, VIP4, 53, enc('x')), { proto: 41 }),
    ],
  },
];

for (const r of REFUSALS) {
  test(`refused: ${r.name} (${r.reason}): nothing delivered, nothing sent, every frame freed`, async () => {
    const cfg = r.cfg ?? { vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] };
    const h = host(cfg);
    const sink = await catchAll(h);
    const frames = r.frames();
    const sent = await h.input(frames);
    assert.is(sink.got(), 0, 'nothing delivered');
    assert.equal(sent, [], 'nothing sent');
    assert.equal(h.drops(), { [r.reason]: frames.length }, 'each counted, with its reason');
    assert.is(h.vs.counters.decapsulated, 0);
    assert.is(h.vs.counters.rxPackets, frames.length);
    sink.close();
    assert.is(h.pool.check().held, 0, 'every frame freed');
  });
}

/** The outer fragments a load balancer's kernel makes of a tunnel packet (IPv4: first, middle, last; IPv6: first, last). */
function outerFragments(v6: boolean, from: string, size = 64, id = 5): Uint8Array[] {
  if (!v6) {
    const inner = udpPacket(CL4, 1, VIP4, 53, new Uint8Array(size));
    return [
      tunnelled(from, ADDR4, inner.subarray(0, 48), { flagsFrag: 0x2000, id }),
      tunnelled(from, ADDR4, inner.subarray(48, 80), { flagsFrag: 0x2000 | 6, id }),
      tunnelled(from, ADDR4, inner.subarray(80), { flagsFrag: 10, id }),
    ];
  }
  const inner = udpPacket(CL6, 1, VIP6, 53, new Uint8Array(size));
  return [
    tunnelled(from, ADDR6, inner.subarray(0, 64), { exts: [frag(0, true, id)] }),
    tunnelled(from, ADDR6, inner.subarray(64), { exts: [frag(64, false, id)] }),
  ];
}

for (const v6 of [false, true]) {
  const fam = v6 ? 'IPv6 (Fragment header, RFC 2473 section 7)' : 'IPv4 (RFC 2003 section 5.1)';
  test(`outer ${fam} fragments from a load balancer: reassembled, then decapsulated and delivered once`, async () => {
    const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
    const sink = await catchAll(h);
    const frames = outerFragments(v6, v6 ? LB6 : LB4);
    const { sent } = await viaGateway(h, frames);
    assert.is(sink.got(), 1, 'the inner datagram delivered');
    assert.equal(sent.map((w) => [w.ethDst, w.ip!.src, w.ip!.dst]), [[macText(GW_MAC), v6 ? VIP6 : VIP4, v6 ? CL6 : CL4]], 'answered from the VIP, routed');
    assert.equal(h.drops(), {});
    assert.is(h.vs.counters.decapsulated, 1);
    assert.is(h.vs.counters.rxPackets, frames.length + 1, 'received: the fragments and the gateway\'s answer (the packet rebuilt from them is not counted again)');
    sink.close();
    assert.is(h.pool.check().held, 0, 'every frame freed');
  });

  test(`outer ${fam} fragments from no load balancer: each refused (decap-source-refused), none held for reassembly`, async () => {
    const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
    const sink = await catchAll(h);
    const frames = outerFragments(v6, v6 ? 'fd00:1::101' : '10.1.1.101');
    const sent = await h.input(frames);
    assert.is(sink.got(), 0);
    assert.equal(sent, []);
    assert.equal(h.drops(), { 'decap-source-refused': frames.length });
    assert.is(v6 ? h.e.ip6.reasm.pending : h.e.reasm.pending, 0, 'nothing held');
    sink.close();
    assert.is(h.pool.check().held, 0);
  });

  test(`outer ${fam} fragments whose whole packet is longer than a frame holds: counted decap-fragmented, nothing delivered`, async () => {
    const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
    const sink = await catchAll(h);
    // 2 KiB frames: an inner datagram of 2100 bytes in three (IPv4) or two (IPv6) pieces.
    const inner = v6 ? udpPacket(CL6, 1, VIP6, 53, new Uint8Array(2100)) : udpPacket(CL4, 1, VIP4, 53, new Uint8Array(2100));
    const cut = 1200;
    const frames = v6
      ? [tunnelled(LB6, ADDR6, inner.subarray(0, cut), { exts: [frag(0, true, 7)] }), tunnelled(LB6, ADDR6, inner.subarray(cut), { exts: [frag(cut, false, 7)] })]
      : [tunnelled(LB4, ADDR4, inner.subarray(0, cut), { flagsFrag: 0x2000, id: 7 }), tunnelled(LB4, ADDR4, inner.subarray(cut), { flagsFrag: cut / 8, id: 7 })];
    await h.input(frames);
    assert.is(sink.got(), 0);
    assert.equal(h.drops(), { 'decap-fragmented': 1 });
    sink.close();
    assert.is(h.pool.check().held, 0);
  });
}

test('an inner source that is a VIP or an address of the VS is a martian source', async () => {
  const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
  const sink = await catchAll(h);
  const sent = await h.input([
    tunnelled(LB4, ADDR4, udpPacket(VIP4, 53, VIP4, 53, enc('x'))),
    tunnelled(LB4, ADDR4, udpPacket(ADDR4, 53, VIP4, 53, enc('x'))),
    tunnelled(LB6, ADDR6, udpPacket(VIP6, 53, VIP6, 53, enc('x'))),
  ]);
  assert.is(sink.got(), 0);
  assert.equal(sent, []);
  assert.equal(h.drops(), { 'ipv4-bad-source': 2, 'ipv6-bad-source': 1 });
  sink.close();
  assert.is(h.pool.check().held, 0);
});

test('an inner packet whose length field claims more than the tunnel carries is a counted drop; nothing delivered or sent', async () => {
  const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
  const sink = await catchAll(h);
  const in4 = udpPacket(CL4, 1, VIP4, 53, new Uint8Array(40));
  const in6 = udpPacket(CL6, 1, VIP6, 53, new Uint8Array(40));
  const sent = await h.input([tunnelled(LB4, ADDR4, in4.subarray(0, 40)), tunnelled(LB6, ADDR6, in6.subarray(0, 60))]);
  assert.is(sink.got(), 0);
  assert.equal(sent, []);
  // The reasons of the same defect in a packet that came without a tunnel.
  assert.equal(h.drops(), { 'ipv4-bad-total-length': 1, 'ipv6-truncated': 1 });
  assert.is(h.vs.counters.decapsulated, 0);
  sink.close();
  assert.is(h.pool.check().held, 0);
});

test('an unknown protocol inside the tunnel, to a VIP: protocol unreachable / Parameter Problem from the VIP to the client, routed', async () => {
  const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
  const in4 = ipv4(CL4, VIP4, 253, new Uint8Array(16));
  const in6 = ipv6(CL6, VIP6, 253, new Uint8Array(16));
  const { sent } = await viaGateway(h, [tunnelled(LB4, ADDR4, in4), tunnelled(LB6, ADDR6, in6)]);
  const gw = macText(GW_MAC);
  assert.equal(sent.map((w) => [w.ethDst, w.ip!.src, w.ip!.dst, w.icmp!.type, w.icmp!.code]), [[gw, VIP4, CL4, 3, 2], [gw, VIP6, CL6, 4, 1]]);
  assert.is(sent[1]!.icmp!.rest, 6, 'pointer: the Next Header field of the inner header');
  assert.equal(sent[0]!.icmp!.body.subarray(0, 28), in4.subarray(0, 28));
  assert.equal(sent[1]!.icmp!.body, in6);
  assert.equal(h.drops(), { 'ipv4-unknown-protocol': 1, 'ipv6-unknown-next-header': 1 });
  assert.is(h.pool.check().held, 0);
});

test('Neighbor Discovery inside a tunnel (hop limit 255, to a VIP) changes no neighbor entry and is not answered: NDP is link-scoped (RFC 4861 7.1)', async () => {
  const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
  const { s, got } = await echoSocket(h.e, h.vs, 'udp6', 53, VIP6);
  // The gateway is resolved through the link, as it should be.
  const first = await viaGateway(h, [tunnelled(LB6, ADDR6, udpPacket(CL6, 40001, VIP6, 53, enc('one')))]);
  assert.equal(first.sent.map((w) => w.ethDst), [macText(GW_MAC)]);
  const EVIL = parseMac('02:00:00:00:0e:01');
  // An advertisement for the gateway's address with another MAC (override), and a solicitation
  // from the gateway's address carrying another MAC, both with hop limit 255, inside the tunnel.
  const na = naPacket(GW6, EVIL, VIP6);
  const nsBody = new Uint8Array(32);
  const n = writeNs(nsBody, 0, parseIp6(ADDR6), EVIL, parseIp6(GW6), parseIp6(VIP6));
  const ns = ipv6(GW6, VIP6, 58, nsBody.subarray(0, n));
  ns[7] = 255;
  const sent = await h.input([tunnelled(LB6, ADDR6, na), tunnelled(LB4, ADDR4, na), tunnelled(LB6, ADDR6, ns)]);
  assert.equal(sent, [], 'nothing answered');
  assert.equal(h.drops(), { 'decap-link-scoped': 3 });
  // The next reply still goes to the gateway's own MAC.
  const after = await viaGateway(h, [tunnelled(LB6, ADDR6, udpPacket(CL6, 40002, VIP6, 53, enc('two')))]);
  assert.equal(after.sent.map((w) => w.ethDst), [macText(GW_MAC)]);
  assert.equal(got.map((g) => g.data), ['one', 'two']);
  s.close();
  assert.is(h.pool.check().held, 0);
});

test('a VS with no VIPs and no decap: protocol 4 and 41 are unknown (ICMP protocol unreachable; ICMPv6 Parameter Problem code 1 at the Next Header field)', async () => {
  const h = host();
  assert.is(h.vs.vips, null);
  const sink = await catchAll(h);
  const in4 = encap(LB4, ADDR4, udpPacket(CL4, 1, VIP4, 53, enc('x')));
  const in6 = encap(LB6, ADDR6, udpPacket(CL6, 1, VIP6, 53, enc('x')));
  const sent = await h.input([
    eth(10, VS_MAC, LB_MAC, in4),
    eth(10, VS_MAC, LB_MAC, encap(LB4, ADDR4, udpPacket(CL6, 1, VIP6, 53, enc('x')))),
    eth(10, VS_MAC, LB_MAC, in6),
    eth(10, VS_MAC, LB_MAC, encap(LB6, ADDR6, udpPacket(CL4, 1, VIP4, 53, enc('x')))),
  ]);
  assert.is(sink.got(), 0);
  assert.is(sent.length, 4);
  // RFC 1122 3.2.2.1 / RFC 792: destination unreachable, protocol unreachable, quoting the packet.
  for (const w of sent.slice(0, 2)) {
    assert.equal([w.ethDst, w.ip!.src, w.ip!.dst, w.icmp!.type, w.icmp!.code], [macText(LB_MAC), ADDR4, LB4, 3, 2]);
  }
  assert.equal(sent[0]!.icmp!.body.subarray(0, 28), in4.subarray(0, 28), 'the quoted header and 8 bytes');
  // RFC 8200 4 / RFC 4443 3.4: Parameter Problem, code 1, pointer 6 (the IPv6 header's Next Header).
  for (const w of sent.slice(2)) {
    assert.equal([w.ethDst, w.ip!.src, w.ip!.dst, w.icmp!.type, w.icmp!.code, w.icmp!.rest], [macText(LB_MAC), ADDR6, LB6, 4, 1, 6]);
  }
  assert.equal(h.drops(), { 'ipv4-unknown-protocol': 2, 'ipv6-unknown-next-header': 2 });
  sink.close();
  assert.is(h.pool.check().held, 0);
});

test('two VSes on two VLANs serve the same VIP behind two load balancers: each takes only its own load balancer\'s packets to its own address', async () => {
  const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
  const e = h.e;
  const u = e.createVs('u');
  e.addLink(u, { device: 'eth0', vlan: 20, mac: VS2_MAC });
  e.addAddress(u, 'eth0.20', '10.2.2.1/24');
  e.addAddress(u, 'eth0.20', 'fd00:2::1/64');
  e.addRoute(u, { dst: 'default', via: '10.2.2.254' });
  e.addRoute(u, { dst: '::/0', via: 'fd00:2::fe' });
  e.addVip(u, VIP4);
  e.addVip(u, VIP6);
  e.setDecap(u, { from: ['10.2.2.100/32', 'fd00:2::100/128'] });
  await h.input([]);
  const onT = await echoSocket(e, h.vs, 'udp4', 53, VIP4);
  const onT6 = await echoSocket(e, h.vs, 'udp6', 53, VIP6);
  const onU = await echoSocket(e, u, 'udp4', 53, VIP4);
  const onU6 = await echoSocket(e, u, 'udp6', 53, VIP6);
  const { asked, sent } = await viaGateway(h, [
    tunnelled(LB4, ADDR4, udpPacket(CL4, 1001, VIP4, 53, enc('A'))),
    tunnelled('10.2.2.100', '10.2.2.1', udpPacket(CL4, 1002, VIP4, 53, enc('B')), {}, 20, VS2_MAC),
    tunnelled('fd00:2::100', 'fd00:2::1', udpPacket(CL6, 1003, VIP6, 53, enc('B6')), {}, 20, VS2_MAC),
    // LB-A to VS-B's address, on VS-B's VLAN: not a load balancer of VS-B.
    tunnelled(LB4, '10.2.2.1', udpPacket(CL4, 1004, VIP4, 53, enc('A-to-B')), {}, 20, VS2_MAC),
    tunnelled(LB6, 'fd00:2::1', udpPacket(CL6, 1005, VIP6, 53, enc('A6-to-B')), {}, 20, VS2_MAC),
    // LB-B to VS-A's address, on VS-A's VLAN.
    tunnelled('10.2.2.100', ADDR4, udpPacket(CL4, 1006, VIP4, 53, enc('B-to-A'))),
  ]);
  assert.equal(onT.got.map((g) => g.data), ['A']);
  assert.equal(onT6.got.map((g) => g.data), []);
  assert.equal(onU.got.map((g) => g.data), ['B']);
  assert.equal(onU6.got.map((g) => g.data), ['B6']);
  assert.equal(h.drops(), { 'decap-source-refused': 1 });
  assert.equal(u.counters.toJSON().drops.reasons, { 'decap-source-refused': 2 });
  assert.is(h.vs.counters.decapsulated, 1);
  assert.is(u.counters.decapsulated, 2);
  // Each VS resolves its own gateway on its own VLAN (the replies are routed by each VS's tables).
  const asks = asked.map((w) => `${w.vlan} ${w.arp?.tpa ?? w.nsTarget}`).sort();
  assert.equal(asks, [`10 ${GW4}`, '20 10.2.2.254', '20 fd00:2::fe']);
  const replies = sent.map((w) => `${w.vlan} ${w.ethSrc} ${w.ethDst} ${w.ip!.src} ${w.ip!.dst} ${new TextDecoder().decode(w.udp!.data)}`).sort();
  const gw = macText(GW_MAC);
  assert.equal(replies, [
    `10 ${macText(VS_MAC)} ${gw} ${VIP4} ${CL4} A`,
    `20 ${macText(VS2_MAC)} ${gw} ${VIP4} ${CL4} B`,
    `20 ${macText(VS2_MAC)} ${gw} ${VIP6} ${CL6} B6`,
  ]);
  for (const x of [onT, onT6, onU, onU6]) x.s.close();
  assert.is(h.pool.check().held, 0);
});

test('ICMP echo to a VIP is answered from the VIP, routed through the gateway (both families)', async () => {
  for (const v6 of [false, true]) {
    const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
    const [lb, addr, vip, cl] = v6 ? [LB6, ADDR6, VIP6, CL6] : [LB4, ADDR4, VIP4, CL4];
    const data = enc('ping-data-0123456789');
    const first = await h.input([tunnelled(lb, addr, echoRequest(cl, vip, 0x1234, 7, data))]);
    assert.is(first.length, 1);
    assert.ok(asksGateway(first[0]!, v6), 'the gateway is resolved first');
    const sent = await h.input([gatewayAnswer(v6)]);
    assert.is(sent.length, 1);
    const r = sent[0]!;
    assert.equal([r.ethDst, r.ip!.src, r.ip!.dst, r.icmp!.type, r.icmp!.code], [macText(GW_MAC), vip, cl, v6 ? 129 : 0, 0]);
    assert.is(r.icmp!.rest, (0x1234 << 16) | 7, 'identifier and sequence number');
    assert.equal(r.icmp!.body, data, 'the data echoed');
    assert.is(h.vs.counters.decapsulated, 1);
    assert.is(h.pool.check().held, 0);
  }
});

test('UDP to a VIP port without a socket: port unreachable from the VIP to the client, routed, quoting the inner packet', async () => {
  for (const v6 of [false, true]) {
    const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`, `${LB6}/128`] });
    const [lb, addr, vip, cl] = v6 ? [LB6, ADDR6, VIP6, CL6] : [LB4, ADDR4, VIP4, CL4];
    const inner = udpPacket(cl, 40001, vip, 9, enc('nobody'));
    const { asked, sent } = await viaGateway(h, [tunnelled(lb, addr, inner)]);
    assert.equal(asked.map((w) => asksGateway(w, v6)), [true], 'the gateway is resolved');
    assert.is(sent.length, 1);
    const r = sent[0]!;
    // RFC 792 / RFC 4443 3.1: destination unreachable, port unreachable (code 3 / code 4).
    assert.equal([r.ethDst, r.ip!.src, r.ip!.dst, r.icmp!.type, r.icmp!.code], [macText(GW_MAC), vip, cl, v6 ? 1 : 3, v6 ? 4 : 3]);
    const n = v6 ? inner.length : 28;
    assert.equal(r.icmp!.body.subarray(0, n), inner.subarray(0, n), 'quotes the packet to the VIP, not the tunnel');
    assert.equal(h.drops(), { 'udp-no-socket': 1 });
    assert.is(h.pool.check().held, 0);
  }
});

test('the VS sending to its own VIP: delivered inside the VS (as to its own address), nothing on the wire', async () => {
  const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`] });
  const got: string[] = [];
  const a = h.e.createUdpSocket(h.vs, { type: 'udp4' });
  const a6 = h.e.createUdpSocket(h.vs, { type: 'udp6' });
  a.on('message', (m: Buffer, r) => got.push(`${m} from ${r.address}`));
  a6.on('message', (m: Buffer, r) => got.push(`${m} from ${r.address}`));
  a.bind(53, VIP4);
  a6.bind(53, VIP6);
  const b = h.e.createUdpSocket(h.vs, { type: 'udp4' });
  const b6 = h.e.createUdpSocket(h.vs, { type: 'udp6' });
  await tick();
  b.send('four', 53, VIP4);
  b6.send('six', 53, VIP6);
  const sent = await h.input([]);
  assert.equal(got.sort(), [`four from ${VIP4}`, `six from ${VIP6}`]);
  assert.equal(sent, [], 'nothing to the gateway or the load balancer');
  for (const s of [a, a6, b, b6]) s.close();
  assert.is(h.pool.check().held, 0);
});

test('bind on a VIP works (both families); bind on an address that is neither an interface address nor a VIP is EADDRNOTAVAIL', async () => {
  const h = host({ vips: [VIP4, VIP6], from: [`${LB4}/32`] });
  for (const [type, addr] of [['udp4', VIP4], ['udp6', VIP6]] as const) {
    const s = h.e.createUdpSocket(h.vs, { type });
    let err: Error | null = null;
    s.on('error', (e: Error) => { err = e; });
    s.bind(5353, addr);
    await tick();
    await tick();
    assert.is(err, null, `bind ${addr}`);
    assert.equal(s.address(), { address: addr, family: type === 'udp4' ? 'IPv4' : 'IPv6', port: 5353 });
    s.close();
  }
  for (const [type, addr] of [['udp4', '198.51.100.11'], ['udp6', '2001:db8::11']] as const) {
    const s = h.e.createUdpSocket(h.vs, { type });
    let err = null as (Error & { code?: string }) | null;
    s.on('error', (e: Error) => { err = e; });
    s.bind(5353, addr);
    await tick();
    await tick();
    assert.is(err?.code, 'EADDRNOTAVAIL', `bind ${addr}`);
    s.close();
  }
  // A VIP removed is no longer bindable.
  h.e.removeVip(h.vs, VIP4);
  const s = h.e.createUdpSocket(h.vs, { type: 'udp4' });
  let err = null as (Error & { code?: string }) | null;
  s.on('error', (e: Error) => { err = e; });
  s.bind(5353, VIP4);
  await tick();
  await tick();
  assert.is(err?.code, 'EADDRNOTAVAIL');
  s.close();
});

test.run();
