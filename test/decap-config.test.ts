/**
 * VIPs and decapsulation in the configuration: the config file's `vips` and `decap` (validated
 * with every problem at its path), the control requests vip.add / vip.del / decap.set (refused
 * with a clear message, nothing changed), `show vips` (settings and counts of what came through
 * the tunnel), and `show config` writing them back in a form the validator accepts and that builds
 * the same VS. A Stack from createStack with a memory device; frames put on its wire by hand.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMemoryLink, MemoryLink } from '../driver/memory';
import { Burst } from '../driver/types';
import { ConfigError, StackConfig, validateConfig } from '../stack/control/config';
import { handleRequest } from '../stack/control/control';
import { createStack, Stack } from '../stack/stack';
import { VirtualClock } from './lib/virtual-loop';
import { decodeWire, encap, eth, LB_MAC, naPacket, udpPacket, Wire } from './lib/decap-frames';

const VIP4 = '198.51.100.10', VIP6 = '2001:db8::10';
const CL4 = '203.0.113.7', CL6 = '2001:db8:c::7';

function base(vs: Record<string, unknown> = {}): StackConfig {
  return {
    name: 'dcfg',
    control: false,
    engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [
      { name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24', 'fd00:1::1/64'] }], ...vs },
      { name: 'b', links: [{ device: 'm0', vlan: 20, addresses: ['10.2.2.1/24'] }] },
    ],
  } as StackConfig;
}

/** The problems the validator finds in `cfg` (none: []). */
function problems(cfg: unknown): { path: string; message: string }[] {
  try {
    validateConfig(cfg, 'test.json');
    return [];
  } catch (e) {
    assert.instance(e, ConfigError);
    return (e as ConfigError).problems;
  }
}

test('config: vips and decap (either family, overhead optional) are accepted', () => {
  assert.equal(problems(base({ vips: [VIP4, VIP6], decap: { from: ['10.1.1.100/32', 'fd00:1::/64'], overhead: 48 } })), []);
  assert.equal(problems(base({ vips: [VIP4], decap: { from: ['10.1.1.100/32'] } })), []);
  assert.equal(problems(base({ vips: [VIP4] })), [], 'VIPs without load balancers yet');
  assert.equal(problems(base({ decap: { from: [] } })), [], 'an empty list takes nothing');
  assert.equal(problems(base({ decap: { from: ['10.1.1.100/32'], overhead: 0 } })), []);
  assert.equal(problems(base({ decap: { from: ['10.1.1.100/32'], overhead: 512 } })), []);
  // The same VIP on two VSes (each behind its own load balancer), and a VIP that is another VS's interface address.
  const two = base({ vips: [VIP4, '10.2.2.1'] });
  (two.virtualServers[1] as unknown as Record<string, unknown>).vips = [VIP4];
  assert.equal(problems(two), []);
  // A service may listen on a VIP of its VS.
  assert.equal(problems({ ...base({ vips: [VIP4] }), services: [{ type: 'udp-echo', vs: 'a', address: VIP4, port: 7 }] }), []);
  assert.equal(problems({ ...base({ vips: [VIP4] }), services: [{ type: 'udp-echo', vs: 'b', address: VIP4, port: 7 }] }).map((p) => p.path),
    ['services[0].address'], 'but not on a VIP of another VS');
});

const BAD_VIPS: { vips: unknown; path: string; re: RegExp }[] = [
  { vips: ['198.51.100.10/32'], path: 'vips[0]', re: /without a prefix length/ },
  { vips: ['2001:db8::10/128'], path: 'vips[0]', re: /without a prefix length/ },
  { vips: ['0.0.0.0'], path: 'vips[0]', re: /not a usable unicast address/ },
  { vips: ['127.0.0.1'], path: 'vips[0]', re: /not a usable unicast address/ },
  { vips: ['224.0.0.5'], path: 'vips[0]', re: /not a usable unicast address/ },
  { vips: ['255.255.255.255'], path: 'vips[0]', re: /not a usable unicast address/ },
  { vips: ['::'], path: 'vips[0]', re: /not a usable unicast address/ },
  { vips: ['::1'], path: 'vips[0]', re: /not a usable unicast address/ },
  { vips: ['ff02::1'], path: 'vips[0]', re: /not a usable unicast address/ },
  { vips: ['::ffff:198.51.100.10'], path: 'vips[0]', re: /not a usable unicast address/ },
  { vips: ['fe80::10'], path: 'vips[0]', re: /link-local/ },
  { vips: ['169.254.10.10'], path: 'vips[0]', re: /link-local/ },
  { vips: [VIP4, VIP4], path: 'vips[1]', re: /already a VIP of virtual server 'a'/ },
  { vips: [VIP6, '2001:DB8:0::10'], path: 'vips[1]', re: /already a VIP of virtual server 'a'/ },
  { vips: ['10.1.1.1'], path: 'vips[0]', re: /address of link 'm0.10' of virtual server 'a'/ },
  { vips: ['fd00:1::1'], path: 'vips[0]', re: /address of link 'm0.10' of virtual server 'a'/ },
  { vips: ['not-an-address'], path: 'vips[0]', re: /./ },
  { vips: [7], path: 'vips[0]', re: /must be a string/ },
  { vips: VIP4, path: 'vips', re: /array/ },
];

for (const c of BAD_VIPS) {
  test(`config: vips ${JSON.stringify(c.vips)} is refused at ${c.path}`, () => {
    const p = problems(base({ vips: c.vips }));
    assert.is(p.length, 1, JSON.stringify(p));
    assert.is(p[0]!.path, `virtualServers[0].${c.path}`);
    assert.match(p[0]!.message, c.re);
  });
}

const BAD_DECAP: { decap: unknown; path: string; re: RegExp }[] = [
  { decap: { from: ['10.1.1.100/24'] }, path: 'decap.from[0]', re: /host bits set.*10\.1\.1\.0\/24/ },
  { decap: { from: ['fd00:1::100/64'] }, path: 'decap.from[0]', re: /host bits set.*fd00:1::\/64/ },
  { decap: { from: ['10.1.1.0/24', '10.1.1.0/24'] }, path: 'decap.from[1]', re: /listed twice/ },
  { decap: { from: ['fd00:1::/64', 'FD00:1:0::/64'] }, path: 'decap.from[1]', re: /listed twice/ },
  { decap: { from: ['10.1.1.100/33'] }, path: 'decap.from[0]', re: /./ },
  { decap: { from: ['bogus'] }, path: 'decap.from[0]', re: /./ },
  { decap: { from: [100] }, path: 'decap.from[0]', re: /must be a string/ },
  { decap: { from: '10.1.1.100/32' }, path: 'decap.from', re: /array/ },
  { decap: {}, path: 'decap.from', re: /./ },
  { decap: [], path: 'decap', re: /object/ },
  { decap: { from: [], overhead: -1 }, path: 'decap.overhead', re: /./ },
  { decap: { from: [], overhead: 513 }, path: 'decap.overhead', re: /./ },
  { decap: { from: [], overhead: 20.5 }, path: 'decap.overhead', re: /./ },
  { decap: { from: [], overhead: '20' }, path: 'decap.overhead', re: /./ },
  { decap: { from: [], overheads: 20 }, path: 'decap.overheads', re: /unknown|not a|known/i },
];

for (const c of BAD_DECAP) {
  test(`config: decap ${JSON.stringify(c.decap)} is refused at ${c.path}`, () => {
    const p = problems(base({ decap: c.decap }));
    assert.is(p.length, 1, JSON.stringify(p));
    assert.is(p[0]!.path, `virtualServers[0].${c.path}`);
    assert.match(p[0]!.message, c.re);
  });
}

test('config: every problem is reported at its own path, an unknown key of the VS too', () => {
  const cfg = base({ vips: ['198.51.100.10/32', 'fe80::1', VIP4, VIP4], decap: { from: ['10.1.1.100/24', 'x'], overhead: 999, extra: 1 }, vip: [VIP4] });
  const p = problems(cfg).map((x) => x.path).sort();
  assert.equal(p, [
    'virtualServers[0].decap.extra', 'virtualServers[0].decap.from[0]', 'virtualServers[0].decap.from[1]', 'virtualServers[0].decap.overhead',
    'virtualServers[0].vip', 'virtualServers[0].vips[0]', 'virtualServers[0].vips[1]', 'virtualServers[0].vips[3]',
  ].sort());
});

// ---------------------------------------------------------------- a running stack

interface Running {
  stack: Stack;
  link: MemoryLink;
  /** Puts frames on the wire toward the stack, runs it, returns what it transmitted. */
  send(frames: Uint8Array[]): Promise<Wire[]>;
  req(r: Record<string, unknown>): unknown;
  /** The message of the error a request throws. */
  refused(r: Record<string, unknown>): string;
}

function running(cfg: StackConfig): Running {
  const link = createMemoryLink({ frameCount: 512, wireFrames: 512 });
  const clock = new VirtualClock();
  const stack = createStack(cfg, { drivers: { m0: link.a }, log: () => undefined });
  stack.engine.clock = clock.read;
  stack.runtime.engineKick = clock.kick;
  const ep = link.b;
  const take = (): Wire[] => {
    const out: Wire[] = [];
    const burst = new Burst(64);
    for (let round = 0; round < 64; round++) {
      burst.n = 0;
      const n = ep.rx(burst, clock.now);
      for (let i = 0; i < n; i++) {
        out.push(decodeWire(ep.pool.bytes.slice(burst.off[i]!, burst.off[i]! + burst.len[i]!)));
        ep.pool.free(burst.frame[i]!);
      }
      if (n === 0) break;
    }
    return out;
  };
  return {
    stack, link,
    async send(frames) {
      take();
      const burst = new Burst(Math.max(1, frames.length));
      for (const f of frames) {
        const x = ep.pool.alloc();
        const off = ep.pool.dataStart(x);
        ep.pool.bytes.set(f, off);
        burst.push(x, off, f.length);
      }
      ep.tx(burst, clock.now);
      // Only frames toward the stack are waited for (nothing reads the other direction meanwhile).
      await clock.run([stack.runtime], { nextDeadline: () => link.a.nextDeadline() } as MemoryLink, () => false, 10_000, true);
      return take();
    },
    req: (r) => handleRequest(stack, r as never),
    refused(r) {
      try {
        handleRequest(stack, r as never);
      } catch (e) {
        return (e as Error).message;
      }
      assert.unreachable(`request ${JSON.stringify(r)} was accepted`);
      return '';
    },
  };
}

/** VS a's MAC (its link on VLAN 10). */
const macA = (r: Running) => r.stack.vs('a').raw.links[0]!.mac;
/** A tunnel packet on VLAN 10 from the load balancer's MAC to VS a's, inner UDP to `vip`. */
const tunnelTo = (r: Running, outerSrc: string, outerDst: string, innerSrc: string, vip: string) =>
  eth(10, macA(r), LB_MAC, encap(outerSrc, outerDst, udpPacket(innerSrc, 4000, vip, 53, new Uint8Array(8))));

type VipRow = { vs: string; vips: string[]; from: string[]; overhead: number; overheadDefault: boolean; decapsulated: number;
  refusedSource: number; refusedVip: number; drops: { total: number; reasons: Record<string, number> } };

test('runtime: vip.add / vip.del / decap.set through the control requests, each refusal clear and changing nothing; show vips', async () => {
  const r = running(base());
  const show = () => r.req({ cmd: 'show', kind: 'vips', vs: 'a' }) as VipRow[];
  assert.equal(r.req({ cmd: 'show', kind: 'vips' }), [], 'no VS with VIPs yet');
  assert.equal(show().map((x) => [x.vs, x.vips, x.from, x.overhead, x.overheadDefault]), [['a', [], [], 20, true]], 'asked by name: listed anyway');
  assert.is(r.req({ cmd: 'vip.add', vs: 'a', addr: VIP4 }), null);
  assert.is(r.req({ cmd: 'vip.add', vs: 'a', addr: VIP6 }), null);
  assert.is(r.req({ cmd: 'decap.set', vs: 'a', from: ['10.1.1.100/32'] }), null);
  const state = () => JSON.stringify([show(), r.req({ cmd: 'show', kind: 'links' }), r.req({ cmd: 'show', kind: 'addresses' })]);
  const before = state();
  assert.equal(show().map((x) => [x.vips, x.from, x.overhead, x.overheadDefault]), [[[VIP4, VIP6], ['10.1.1.100/32'], 20, true]]);
  const refusals: [Record<string, unknown>, RegExp][] = [
    [{ cmd: 'vip.add', vs: 'a', addr: VIP4 }, /already a VIP of virtual server 'a'/],
    [{ cmd: 'vip.add', vs: 'a', addr: '198.51.100.11/32' }, /without a prefix length/],
    [{ cmd: 'vip.add', vs: 'a', addr: 'fe80::1' }, /link-local/],
    [{ cmd: 'vip.add', vs: 'a', addr: '169.254.1.1' }, /link-local/],
    [{ cmd: 'vip.add', vs: 'a', addr: '224.0.0.1' }, /not a usable unicast address/],
    [{ cmd: 'vip.add', vs: 'a', addr: '10.1.1.1' }, /address of link 'm0.10'/],
    [{ cmd: 'vip.add', vs: 'a', addr: 'nonsense' }, /./],
    [{ cmd: 'vip.add', vs: 'nosuch', addr: VIP4 }, /nosuch/],
    [{ cmd: 'vip.add', vs: 'a' }, /addr/],
    [{ cmd: 'vip.del', vs: 'a', addr: '198.51.100.99' }, /has no VIP 198\.51\.100\.99/],
    [{ cmd: 'vip.del', vs: 'a', addr: 'nonsense' }, /./],
    [{ cmd: 'decap.set', vs: 'a', from: ['10.1.1.100/24'] }, /host bits set/],
    [{ cmd: 'decap.set', vs: 'a', from: ['10.1.1.100/32', '10.1.1.100/32'] }, /listed twice/],
    [{ cmd: 'decap.set', vs: 'a', from: ['10.1.1.100/32'], overhead: 513 }, /overhead/],
    [{ cmd: 'decap.set', vs: 'a', from: ['10.1.1.100/32'], overhead: -1 }, /overhead/],
    [{ cmd: 'decap.set', vs: 'a', from: '10.1.1.100/32' }, /from/],
    [{ cmd: 'decap.set', vs: 'a' }, /from/],
    // Tunnels from anyone: an open relay for the VIPs.
    [{ cmd: 'decap.set', vs: 'a', from: ['0.0.0.0/0'] }, /from\[0\]: 0\.0\.0\.0\/0 would take tunnels from anyone/],
    [{ cmd: 'decap.set', vs: 'a', from: ['10.1.1.100/32', '::/0'] }, /from\[1\]: ::\/0 would take tunnels from anyone/],
    // A key the config file refuses is refused here too (one validator).
    [{ cmd: 'decap.set', vs: 'a', from: ['10.1.1.100/32'], overhed: 20 }, /unknown key 'overhed'/],
    // An interface address that is a VIP: the load balancer answers ARP/NDP for it, the VS must not.
    [{ cmd: 'address.add', vs: 'a', link: 'm0.10', cidr: `${VIP4}/24` }, /is a VIP of virtual server 'a'/],
    [{ cmd: 'address.add', vs: 'a', link: 'm0.10', cidr: `${VIP6}/64` }, /is a VIP of virtual server 'a'/],
    [{ cmd: 'link.add', vs: 'a', device: 'm0', vlan: 30, addresses: [`${VIP4}/24`] }, /is a VIP of virtual server 'a'/],
  ];
  for (const [req, re] of refusals) {
    const msg = r.refused(req);
    assert.match(msg, re, `${JSON.stringify(req)}: ${msg}`);
    assert.is(state(), before, `${JSON.stringify(req)} changed nothing`);
  }
  // Another VS may take the same VIP (its own load balancer, its own outer address).
  assert.is(r.req({ cmd: 'vip.add', vs: 'b', addr: VIP4 }), null);
  // Settings change: another load balancer of the other family, overhead configured.
  r.req({ cmd: 'decap.set', vs: 'a', from: ['10.1.1.100/32', 'fd00:1::100/128'] });
  assert.equal(show().map((x) => [x.from, x.overhead, x.overheadDefault]), [[['10.1.1.100/32', 'fd00:1::100/128'], 40, true]], 'default 40 with an IPv6 load balancer');
  r.req({ cmd: 'decap.set', vs: 'a', from: ['10.1.1.100/32', 'fd00:1::100/128'], overhead: 60 });
  assert.equal(show().map((x) => [x.overhead, x.overheadDefault]), [[60, false]]);
  assert.is(r.req({ cmd: 'vip.del', vs: 'a', addr: '2001:DB8::10' }), null, 'any spelling of the address');
  assert.equal(show()[0]!.vips, [VIP4]);
  r.stack.close();
});

test('runtime: show vips counts what came through the tunnel (decapsulated, refused by source, refused by VIP, every reason)', async () => {
  const r = running(base({ vips: [VIP4, VIP6], decap: { from: ['10.1.1.100/32', 'fd00:1::100/128'] } }));
  const sock = r.stack.vs('a').createSocket('udp6');
  let got = 0;
  sock.on('message', () => { got++; });
  sock.bind(53);
  await r.send([]);
  await r.send([
    tunnelTo(r, '10.1.1.100', '10.1.1.1', CL4, VIP4),
    tunnelTo(r, 'fd00:1::100', 'fd00:1::1', CL6, VIP6),
    tunnelTo(r, 'fd00:1::100', 'fd00:1::1', CL4, VIP4),
    tunnelTo(r, '10.1.1.99', '10.1.1.1', CL4, VIP4),
    tunnelTo(r, '10.1.1.100', '10.1.1.1', CL4, '198.51.100.99'),
    tunnelTo(r, '10.1.1.100', '10.1.1.1', CL4, '10.1.1.1'),
    eth(10, macA(r), LB_MAC, encap('10.1.1.100', '10.1.1.1', encap(CL4, VIP4, udpPacket(CL4, 1, VIP4, 53, new Uint8Array(4))))),
    eth(10, macA(r), LB_MAC, encap('10.1.1.100', '10.1.1.1', new Uint8Array(10), { proto: 4 })),
    // Neighbor Discovery inside the tunnel: taken off, then refused (link-scoped).
    eth(10, macA(r), LB_MAC, encap('fd00:1::100', 'fd00:1::1', naPacket('fd00:1::fe', LB_MAC, VIP6))),
  ]);
  assert.is(got, 3);
  const row = (r.req({ cmd: 'show', kind: 'vips' }) as VipRow[]).find((x) => x.vs === 'a')!;
  assert.equal({ decapsulated: row.decapsulated, refusedSource: row.refusedSource, refusedVip: row.refusedVip, drops: row.drops }, {
    decapsulated: 4, refusedSource: 1, refusedVip: 2,
    drops: { total: 6, reasons: { 'decap-source-refused': 1, 'decap-not-vip': 2, 'decap-nested': 1, 'decap-bad-inner': 1, 'decap-link-scoped': 1 } },
  });
  // The same counts in the VS's counters; cleared with them.
  const c = r.req({ cmd: 'show', kind: 'counters', vs: 'a' }) as { vs: { vs: string; drops: { reasons: Record<string, number> } }[] };
  assert.equal(c.vs[0]!.drops.reasons, row.drops.reasons);
  r.req({ cmd: 'counters.clear', vs: 'a' });
  const cleared = (r.req({ cmd: 'show', kind: 'vips', vs: 'a' }) as VipRow[])[0]!;
  assert.equal([cleared.decapsulated, cleared.refusedSource, cleared.refusedVip, cleared.drops.total], [0, 0, 0, 0]);
  sock.close();
  r.stack.close();
});

test('services: one on a VIP and one on the interface address may share a port (their addresses do not overlap); each gets its own datagrams', async () => {
  const cfg = {
    ...base({ vips: [VIP4], decap: { from: ['10.1.1.100/32'] }, routes: [{ dst: 'default', via: '10.1.1.254' }] }),
    services: [{ type: 'udp-echo', vs: 'a', address: VIP4, port: 7 }, { type: 'udp-echo', vs: 'a', address: '10.1.1.1', port: 7 }],
  } as StackConfig;
  assert.equal(problems(cfg), []);
  // Not a wildcard beside them: it overlaps both (as a socket's bind would be EADDRINUSE).
  const wild = { ...cfg, services: [...cfg.services!, { type: 'udp-echo', vs: 'a', port: 7 }] } as StackConfig;
  assert.equal(problems(wild).map((p) => p.path), ['services[2].port']);
  const r = running(cfg);
  const peer = new Uint8Array([2, 0, 0, 0, 0, 7]);
  const out = await r.send([
    eth(10, macA(r), peer, udpPacket('10.1.1.7', 4000, '10.1.1.1', 7, new Uint8Array([1, 2, 3]))),
    eth(10, macA(r), LB_MAC, encap('10.1.1.100', '10.1.1.1', udpPacket(CL4, 4001, VIP4, 7, new Uint8Array([4, 5])))),
  ]);
  // The echo from the interface address goes back to its sender; the VIP's is routed (the gateway resolved first).
  assert.equal(out.filter((w) => w.udp).map((w) => [w.ip!.src, w.ip!.dst, w.udp!.dport]), [['10.1.1.1', '10.1.1.7', 4000]]);
  assert.is(out.filter((w) => w.arp && w.arp.tpa === '10.1.1.254').length, 1, 'the gateway resolved for the VIP\'s reply');
  const reasons = (r.req({ cmd: 'show', kind: 'counters', vs: 'a' }) as { vs: { drops: { reasons: Record<string, number> } }[] }).vs[0]!.drops.reasons;
  assert.is(reasons['udp-no-socket'] ?? 0, 0, 'both delivered to a socket');
  r.stack.close();
});

test('show config writes vips and decap back; the validator accepts it and it builds the same VIPs and load balancers', async () => {
  const r = running(base());
  r.req({ cmd: 'vip.add', vs: 'a', addr: VIP6 });
  r.req({ cmd: 'vip.add', vs: 'a', addr: VIP4 });
  r.req({ cmd: 'decap.set', vs: 'a', from: ['fd00:1::/64', '10.1.1.100/32'], overhead: 48 });
  r.req({ cmd: 'vip.add', vs: 'b', addr: VIP4 });
  const cfg = r.req({ cmd: 'show', kind: 'config' }) as StackConfig;
  const a = cfg.virtualServers.find((v) => v.name === 'a')!;
  const b = cfg.virtualServers.find((v) => v.name === 'b')!;
  assert.equal(a.vips, [VIP6, VIP4], 'in the order added');
  assert.equal(a.decap, { from: ['fd00:1::/64', '10.1.1.100/32'], overhead: 48 });
  assert.equal(b.vips, [VIP4]);
  assert.is(b.decap, undefined, 'no decap set: none written');
  const again = validateConfig(JSON.parse(JSON.stringify(cfg)), 'show-config.json');
  const link2 = createMemoryLink({ frameCount: 256, wireFrames: 256 });
  const s2 = createStack(again, { drivers: { m0: link2.a }, log: () => undefined });
  const settings = (st: Stack) => (st.show('vips') as VipRow[]).map((x) => [x.vs, x.vips, x.from, x.overhead, x.overheadDefault]);
  assert.equal(settings(s2), settings(r.stack));
  assert.equal(settings(s2), [['a', [VIP6, VIP4], ['fd00:1::/64', '10.1.1.100/32'], 48, false], ['b', [VIP4], [], 20, true]]);
  // A default overhead is not written (it follows the load balancers' family).
  r.req({ cmd: 'decap.set', vs: 'a', from: ['10.1.1.100/32'] });
  const cfg2 = r.req({ cmd: 'show', kind: 'config' }) as StackConfig;
  assert.equal(cfg2.virtualServers.find((v) => v.name === 'a')!.decap, { from: ['10.1.1.100/32'] });
  assert.equal(problems(cfg2), []);
  s2.close();
  r.stack.close();
});

test('removing every VIP and load balancer returns the VS to a host without tunnels: protocol 4 and 41 unknown again', async () => {
  const r = running(base({ vips: [VIP4], decap: { from: ['10.1.1.100/32', 'fd00:1::100/128'] } }));
  const inner = udpPacket(CL4, 1, VIP4, 53, new Uint8Array(4));
  await r.send([]); // the stack's own announcements at start
  const before = await r.send([eth(10, macA(r), LB_MAC, encap('10.1.1.99', '10.1.1.1', inner))]);
  assert.equal(before.filter((w) => w.ip), [], 'while it has VIPs: refused silently');
  r.req({ cmd: 'vip.del', vs: 'a', addr: VIP4 });
  const mid = await r.send([eth(10, macA(r), LB_MAC, encap('10.1.1.99', '10.1.1.1', inner))]);
  assert.equal(mid.filter((w) => w.ip), [], 'load balancers still set: refused silently');
  r.req({ cmd: 'decap.set', vs: 'a', from: [] });
  assert.equal(r.req({ cmd: 'show', kind: 'vips' }), [], 'no VS with VIPs or load balancers');
  const cfg = r.req({ cmd: 'show', kind: 'config' }) as StackConfig;
  const a = cfg.virtualServers.find((v) => v.name === 'a')!;
  assert.equal([a.vips, a.decap], [undefined, undefined], 'nothing written back');
  const after = await r.send([
    eth(10, macA(r), LB_MAC, encap('10.1.1.100', '10.1.1.1', inner)),
    eth(10, macA(r), LB_MAC, encap('fd00:1::100', 'fd00:1::1', udpPacket(CL6, 1, VIP6, 53, new Uint8Array(4)))),
  ]);
  const errs = after.filter((w) => w.icmp).map((w) => [w.ip!.src, w.ip!.dst, w.icmp!.type, w.icmp!.code]);
  assert.equal(errs, [['10.1.1.1', '10.1.1.100', 3, 2], ['fd00:1::1', 'fd00:1::100', 4, 1]], 'protocol unreachable; Parameter Problem (unrecognized next header)');
  const d = r.stack.vs('a').raw.counters.toJSON().drops.reasons;
  assert.equal([d['ipv4-unknown-protocol'], d['ipv6-unknown-next-header']], [1, 1]);
  r.stack.close();
});

test.run();
