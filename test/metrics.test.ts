/**
 * Prometheus metrics (stack/control/metrics.ts): the text exposition served over HTTP by node:http
 * (https://prometheus.io/docs/instrumenting/exposition_formats/) carries the figures of `show
 * counters`, `show limits` and `show vips` exactly, labelled by device, VS, link and reason (label values
 * escaped as the format says); a stack of shards exposes its shards' figures summed; the config's
 * `metrics.listen` is validated with clear errors; an address in use is a clear error, not a crash;
 * closing the stack closes the endpoint.
 *
 * A stack on a memory device talks to a peer engine under virtual time (test/lib/stack-peer.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { peerWorld, PeerWorld } from './lib/peer-world';
import { Exposition, familyOf, parseExposition, valueOf } from './lib/prom';
import { udpFrame } from './lib/frames';
import { craftEncapsulated, ethFrame, ipPacket } from './lib/encap-frames';
import { createMemoryLink } from '../driver/memory';
import type { Burst, Driver, DriverStats } from '../driver/types';
import { ConfigError, StackConfig, validateConfig } from '../stack/control/config';
import { connect, Socket } from '../stack/api/net';
import { createStack } from '../stack/stack';
import { ShardedStack } from '../stack/shard/threads';
import { runStack } from '../stack/cli/stack-commands';
import { main } from '../stack/cli/cli';

type Row = Record<string, unknown>;
interface Counters { devices: Row[]; vs: Row[]; links: Row[]; pool: Row[] }

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-metrics-'));
const quiet = { log: () => {} };

async function scrape(url: string): Promise<{ status: number; type: string | null; text: string }> {
  const r = await fetch(url);
  return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
}

/** The exposition's own rules: every sample in a typed family, counters named _total, HELP for each. */
function checkShape(e: Exposition): void {
  for (const s of e.samples) {
    const fam = familyOf(e, s.name);
    assert.ok(fam, `sample ${s.name} belongs to a family with a TYPE`);
    if (!s.name.startsWith('xdpstack_')) continue;
    assert.ok(e.help.get(fam!), `${fam} has a HELP text`);
    if (e.types.get(fam!) === 'counter') assert.ok(s.name.endsWith('_total'), `counter ${s.name} ends in _total`);
    else assert.not.ok(s.name.endsWith('_total'), `gauge ${s.name} does not end in _total`);
    assert.ok(Number.isFinite(s.value) && (e.types.get(fam!) !== 'counter' || s.value >= 0), `${s.name} = ${s.value}`);
  }
}

/** The samples of `name`, as "label=value,..." → value. */
function series(e: Exposition, name: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of e.samples) if (s.name === name) m.set(Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(','), s.value);
  return m;
}

/** What the exposition must hold for `show counters` rows: every traffic figure and every drop reason, nothing else. */
function expectCounters(e: Exposition, c: Counters): void {
  const levels: [string, Row[], (r: Row) => Record<string, string>][] = [
    ['device', c.devices, (r) => ({ device: String(r.device) })],
    ['vs', c.vs, (r) => ({ vs: String(r.vs) })],
    ['link', c.links, (r) => ({ vs: String(r.vs), link: String(r.link) })],
  ];
  for (const [level, rows, labels] of levels) {
    for (const [field, metric] of [['rxPackets', 'rx_packets'], ['rxBytes', 'rx_bytes'], ['txPackets', 'tx_packets'], ['txBytes', 'tx_bytes']]) {
      const name = `xdpstack_${level}_${metric}_total`;
      assert.is(series(e, name).size, rows.length, `${name}: one series per row`);
      for (const r of rows) assert.is(valueOf(e, name, labels(r)), r[field], `${name}${JSON.stringify(labels(r))}`);
    }
    const dropName = `xdpstack_${level}_drops_total`;
    const want = new Map<string, number>();
    for (const r of rows) for (const [reason, n] of Object.entries((r.drops as { reasons: Record<string, number> }).reasons)) {
      want.set(Object.entries({ ...labels(r), reason }).map(([k, v]) => `${k}=${v}`).join(','), n);
    }
    assert.equal(series(e, dropName), want, `${dropName} equals the drops of show counters`);
  }
  const want = new Map<string, number>();
  for (const r of c.devices) for (const [reason, n] of Object.entries((r.driverDrops as { reasons: Record<string, number> }).reasons)) want.set(`device=${r.device},reason=${reason}`, n);
  assert.equal(series(e, 'xdpstack_driver_drops_total'), want, 'driver drops');
}

/** Sends `n` UDP datagrams of `size` bytes from the peer to 10.1.1.1:7 and waits for their echoes. */
async function udpTraffic(w: PeerWorld, n: number, size: number): Promise<number> {
  const s = w.peer.createUdpSocket(w.peer.vs('p'), { type: 'udp4' });
  let echoed = 0;
  s.on('message', () => { echoed++; });
  s.bind(5000);
  // The first one resolves the neighbor (RFC 1122 2.3.2.2: a host may queue as little as one packet meanwhile).
  s.send(Buffer.alloc(size, 0), 7, '10.1.1.1');
  await w.run(() => echoed === 1, 5_000_000);
  for (let i = 1; i < n; i++) s.send(Buffer.alloc(size, i), 7, '10.1.1.1');
  await w.run(() => echoed === n, 5_000_000);
  s.close();
  return echoed;
}

test('the exposition over HTTP equals show counters and show limits after known traffic', async () => {
  const w = peerWorld({ services: [{ type: 'udp-echo', vs: 'a', port: 7 }, { type: 'tcp-echo', vs: 'a', port: 7 }] }, quiet);
  const ep = await w.stack.serveMetrics('127.0.0.1:0');
  const clients: Socket[] = [];
  try {
    assert.is(await udpTraffic(w, 20, 100), 20, 'every datagram echoed');
    // Two TCP connections stay open.
    let connected = 0;
    for (let i = 0; i < 2; i++) {
      const c = connect(w.peerCtx(), { port: 7, host: '10.1.1.1' }, () => { connected++; });
      c.on('error', () => {});
      clients.push(c);
    }
    await w.run(() => connected === 2, 5_000_000);
    assert.is(connected, 2);
    // Three frames with a bad IPv4 header checksum (RFC 791: discarded), two on a VLAN no link has.
    const mac = w.link.a.mac;
    const bad = udpFrame(-1, mac, w.link.b.mac, '10.1.1.2', 5000, '10.1.1.1', 7, new Uint8Array(10));
    bad[14 + 10] ^= 0xff;
    const stray = udpFrame(99, mac, w.link.b.mac, '10.1.1.2', 5000, '10.1.1.1', 7, new Uint8Array(10));
    w.inject([bad, bad, bad, stray, stray]);
    await w.run(() => false, 100_000);

    const r = await scrape(ep.url);
    const counters = w.stack.show('counters') as Counters;
    const limits = w.stack.show('limits') as Row[];
    assert.is(r.status, 200);
    assert.is(r.type, 'text/plain; version=0.0.4; charset=utf-8');
    const e = parseExposition(r.text);
    checkShape(e);
    expectCounters(e, counters);
    // The known traffic, as RFC 791 and the config say it must have been counted.
    assert.is(valueOf(e, 'xdpstack_link_drops_total', { vs: 'a', link: 'eth0', reason: 'ipv4-bad-checksum' }), 3);
    assert.is(valueOf(e, 'xdpstack_device_drops_total', { device: 'eth0', reason: 'vlan-no-link' }), 2);
    assert.ok(valueOf(e, 'xdpstack_vs_rx_packets_total', { vs: 'a' })! >= 20 + 2 * 3, 'the datagrams and the handshakes');
    assert.ok(valueOf(e, 'xdpstack_vs_tx_bytes_total', { vs: 'a' })! >= 20 * (14 + 20 + 8 + 100), 'the echoes');
    assert.is(valueOf(e, 'xdpstack_tcp_connections', { vs: 'a' }), 2, 'two connections open');
    assert.is(valueOf(e, 'xdpstack_tcp_curr_estab', { vs: 'a' }), 2, 'RFC 1213 tcpCurrEstab: both ESTABLISHED');
    assert.is(valueOf(e, 'xdpstack_tcp_passive_opens_total', { vs: 'a' }), 2, 'the two connections were accepted');
    assert.is(valueOf(e, 'xdpstack_neighbor_entries', { vs: 'a', link: 'eth0' }), (w.stack.show('neighbors') as Row[]).length);
    assert.is(valueOf(e, 'xdpstack_neighbor_entries', { vs: 'a', link: 'eth0' }), 1, 'the peer');
    assert.is(valueOf(e, 'xdpstack_device_up', { device: 'eth0' }), 1);
    assert.is(valueOf(e, 'xdpstack_info', { name: 'w' }), 1);
    // Limits: used, max and hits of every row of show limits.
    for (const l of limits) {
      const labels = { ...(l.vs !== null ? { vs: String(l.vs) } : {}), scope: String(l.scope), limit: String(l.limit) };
      assert.is(valueOf(e, 'xdpstack_limit_used', labels), l.used, `used ${JSON.stringify(labels)}`);
      assert.is(valueOf(e, 'xdpstack_limit_max', labels), l.max, `max ${JSON.stringify(labels)}`);
      assert.is(valueOf(e, 'xdpstack_limit_reached_total', labels), l.hits, `hits ${JSON.stringify(labels)}`);
    }
    assert.is(series(e, 'xdpstack_limit_max').size, limits.length);
    // Every frame of the pool is in one state.
    const p = counters.pool[0]!;
    for (const st of ['free', 'kernel', 'tx', 'held']) assert.is(valueOf(e, 'xdpstack_pool_frames', { device: 'eth0', state: st }), p[st]);
    assert.is(valueOf(e, 'xdpstack_pool_capacity_frames', { device: 'eth0' }), p.total);
    assert.is(['free', 'kernel', 'tx', 'held'].reduce((a, st) => a + valueOf(e, 'xdpstack_pool_frames', { device: 'eth0', state: st })!, 0), p.total);
    // The process's own metrics are there too.
    assert.ok(e.samples.some((s) => s.name === 'process_resident_memory_bytes'), 'process metrics');
    // The library call gives the same exposition as the endpoint.
    const direct = parseExposition(await w.stack.metrics());
    expectCounters(direct, counters);
    // A scrape reads figures at scrape time: more traffic, higher counters.
    assert.is(await udpTraffic(w, 5, 100), 5);
    const after = parseExposition((await scrape(ep.url)).text);
    expectCounters(after, w.stack.show('counters') as Counters);
    assert.ok(valueOf(after, 'xdpstack_vs_rx_packets_total', { vs: 'a' })! >= valueOf(e, 'xdpstack_vs_rx_packets_total', { vs: 'a' })! + 5);
    // Optional: Prometheus's own checker, when the machine has it.
    if (hasPromtool()) {
      const lint = execFileSync('promtool', ['check', 'metrics'], { input: r.text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
      assert.not.match(lint, /error/i, lint);
    }
  } finally {
    for (const c of clients) c.destroy();
    w.stack.close();
  }
});

test('direct server return: decapsulated packets and VIPs per VS equal show vips; the refusals are drop reasons of the VS', async () => {
  const VIP = '198.51.100.10';
  // The peer (10.1.1.2) is the load balancer of VS a; VS b has neither VIPs nor load balancers.
  const w = peerWorld({
    virtualServers: [
      { name: 'a', links: [{ device: 'eth0', addresses: ['10.1.1.1/24'] }], routes: [{ dst: 'default', via: '10.1.1.2' }], vips: [VIP, '2001:db8::10'], decap: { from: ['10.1.1.2/32'] } },
      { name: 'b', links: [{ device: 'eth0', vlan: 20, addresses: ['10.2.2.1/24'] }] },
    ],
    services: [{ type: 'udp-echo', vs: 'a', address: VIP, port: 7 }],
  }, quiet);
  try {
    // An IPIP frame (RFC 2003) from `src` to the VS, carrying the client's datagram to `dst`:7.
    const ipipFrame = (src: string, inner: Uint8Array) => ethFrame(craftEncapsulated({ outer: { src, dst: '10.1.1.1' }, inner }), { dst: w.link.a.mac, src: w.link.b.mac });
    const outer = (src: string) => src;
    const client = (dst: string, i: number) => ipPacket({ src: '203.0.113.5', dst, sport: 40000 + i, dport: 7, payload: new Uint8Array(20) });
    // 6 datagrams to the VIP from the load balancer, 3 from a host that is none, 2 to an address that is no VIP.
    w.inject([
      ...Array.from({ length: 6 }, (_, i) => ipipFrame(outer('10.1.1.2'), client(VIP, i))),
      ...Array.from({ length: 3 }, (_, i) => ipipFrame(outer('10.1.1.3'), client(VIP, i))),
      ...Array.from({ length: 2 }, (_, i) => ipipFrame(outer('10.1.1.2'), client('198.51.100.99', i))),
    ]);
    await w.run(() => false, 200_000);
    const e = parseExposition(await w.stack.metrics());
    const rows = w.stack.show('vips') as Row[];
    checkShape(e);
    expectCounters(e, w.stack.show('counters') as Counters);
    assert.equal(rows.map((r) => r.vs), ['a'], 'show vips lists the VS with VIPs');
    const a = rows[0]!;
    // What was sent, as the brief of decapsulation says it is counted.
    assert.equal([a.decapsulated, a.refusedSource, a.refusedVip], [6, 3, 2]);
    // One series per row of show vips, each equal to it.
    assert.equal(series(e, 'xdpstack_vs_decap_packets_total'), new Map([['vs=a', a.decapsulated as number]]));
    assert.equal(series(e, 'xdpstack_vs_vips'), new Map([['vs=a', (a.vips as string[]).length]]));
    assert.is(valueOf(e, 'xdpstack_vs_vips', { vs: 'a' }), 2);
    assert.is(e.types.get('xdpstack_vs_decap_packets_total'), 'counter');
    assert.is(e.types.get('xdpstack_vs_vips'), 'gauge');
    // The refusals: drop reasons of the VS (and of show vips).
    assert.is(valueOf(e, 'xdpstack_vs_drops_total', { vs: 'a', reason: 'decap-source-refused' }), a.refusedSource);
    assert.is(valueOf(e, 'xdpstack_vs_drops_total', { vs: 'a', reason: 'decap-not-vip' }), a.refusedVip);
    for (const [reason, n] of Object.entries((a.drops as { reasons: Record<string, number> }).reasons)) {
      assert.is(valueOf(e, 'xdpstack_vs_drops_total', { vs: 'a', reason }), n, reason);
    }
    // Read at scrape time: a VIP removed, more traffic.
    w.stack.vs('a').removeVip('2001:db8::10');
    w.inject(Array.from({ length: 4 }, (_, i) => ipipFrame(outer('10.1.1.2'), client(VIP, i))));
    await w.run(() => false, 200_000);
    const after = parseExposition(await w.stack.metrics());
    const a2 = (w.stack.show('vips') as Row[])[0]!;
    assert.is(a2.decapsulated, 10);
    assert.is(valueOf(after, 'xdpstack_vs_decap_packets_total', { vs: 'a' }), a2.decapsulated);
    assert.is(valueOf(after, 'xdpstack_vs_vips', { vs: 'a' }), 1);
    if (hasPromtool()) {
      const lint = execFileSync('promtool', ['check', 'metrics'], { input: await w.stack.metrics(), encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
      assert.not.match(lint, /error/i, lint);
    }
  } finally {
    w.stack.close();
  }
});

/** What a new TCP connection to the host and port of `url` meets: 'connected', or the error's code. */
function connectError(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const c = net.connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) });
    c.once('connect', () => { c.destroy(); resolve('connected'); });
    c.once('error', (e: NodeJS.ErrnoException) => resolve(String(e.code)));
  });
}

function hasPromtool(): boolean {
  try { execFileSync('promtool', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

/** A memory driver whose driver drops carry an unusual reason (quote, backslash, newline, UTF-8). */
class OddDriver implements Driver {
  static readonly REASON = 'odd "reason" \\ two\nlines é';
  readonly kind = 'memory';
  constructor(private readonly inner: Driver) {}
  get name(): string { return this.inner.name; }
  get pool() { return this.inner.pool; }
  get mac(): Uint8Array { return this.inner.mac; }
  get mtu(): number { return this.inner.mtu; }
  rx(out: Burst, now: number): number { return this.inner.rx(out, now); }
  tx(b: Burst, now: number): number { return this.inner.tx(b, now); }
  service(now: number): void { this.inner.service(now); }
  nextDeadline(): number { return this.inner.nextDeadline(); }
  stats(): DriverStats { const s = this.inner.stats(); return { ...s, drops: { ...s.drops, [OddDriver.REASON]: 3 } }; }
  close(): void { this.inner.close(); }
}

test('label values are escaped as the text format says (backslash, double quote, newline)', async () => {
  const link = createMemoryLink({});
  const s = createStack({
    name: 'odd', control: false, devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'eth0', addresses: ['10.1.1.1/24'] }] }],
  }, { drivers: { eth0: new OddDriver(link.a) }, ...quiet });
  try {
    const text = await s.metrics();
    assert.ok(text.includes('reason="odd \\"reason\\" \\\\ two\\nlines é"'), 'escaped in the text');
    const e = parseExposition(text);
    assert.is(valueOf(e, 'xdpstack_driver_drops_total', { device: 'eth0', reason: OddDriver.REASON }), 3, 'read back as it was');
  } finally {
    s.close();
  }
});

test('HTTP: GET and HEAD /metrics; other paths 404, other methods 405; IPv6 loopback works', async () => {
  const s = createStack({
    name: 'h', control: false, devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'eth0', addresses: ['10.1.1.1/24'] }] }],
  }, quiet);
  try {
    const ep = await s.serveMetrics('[::1]:0');
    assert.match(ep.url, /^http:\/\/\[::1\]:\d+\/metrics$/);
    assert.is((await scrape(ep.url)).status, 200);
    assert.is((await scrape(`${ep.url}?x=1`)).status, 200, 'a query string is ignored');
    const head = await fetch(ep.url, { method: 'HEAD' });
    assert.is(head.status, 200);
    assert.is(await head.text(), '');
    assert.is((await scrape(ep.url.replace('/metrics', '/'))).status, 404);
    assert.is((await fetch(ep.url, { method: 'POST', body: 'x' })).status, 405);
  } finally {
    s.close();
  }
});

// ------------------------------------------------------------------------------- shards

/** Each shard sends (shard + 1) datagrams to neighbors nobody answers: ARP requests go out, then drops. */
const APP = path.join(dir, 'app.js');
fs.writeFileSync(APP, `module.exports = (stack, { shard }) => {
  const s = stack.vs('a').createSocket('udp4');
  s.bind(0);
  for (let i = 0; i <= shard; i++) s.send(Buffer.alloc(64), 9, '10.1.1.' + (100 + i));
};`);

test('a stack of shards: the exposition holds the shards\' figures summed, pools per shard', async () => {
  const s = await ShardedStack.start({
    name: 'shm', engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }], vips: ['198.51.100.10'] }],
  } as StackConfig, { shards: 2, app: APP, ...quiet });
  try {
    const ep = await s.serveMetrics('127.0.0.1:0');
    type Part = { shard: number; data: Counters };
    const perShard = async () => (await s.show('counters', { perShard: true })) as Part[];
    // The shards' figures change while their ARP requests are retried: compare when two reads agree.
    let e: Exposition | null = null;
    let parts: Part[] = [];
    for (let i = 0; i < 40 && !e; i++) {
      const before = await perShard();
      const text = (await scrape(ep.url)).text;
      parts = await perShard();
      if (JSON.stringify(before) === JSON.stringify(parts)) e = parseExposition(text);
      else await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(e, 'two reads of the shards agreed');
    checkShape(e!);
    assert.is(parts.length, 2);
    const sum = (rows: (p: Counters) => Row[], key: (r: Row) => boolean, field: string) =>
      parts.reduce((a, p) => a + Number(rows(p.data).find(key)![field]), 0);
    for (const [field, metric] of [['rxPackets', 'rx_packets'], ['txPackets', 'tx_packets'], ['txBytes', 'tx_bytes']]) {
      assert.is(valueOf(e!, `xdpstack_device_${metric}_total`, { device: 'm0' }), sum((c) => c.devices, () => true, field), `device ${field}`);
      assert.is(valueOf(e!, `xdpstack_vs_${metric}_total`, { vs: 'a' }), sum((c) => c.vs, (r) => r.vs === 'a', field), `vs ${field}`);
      assert.is(valueOf(e!, `xdpstack_link_${metric}_total`, { vs: 'a', link: 'm0.10' }), sum((c) => c.links, (r) => r.link === 'm0.10', field), `link ${field}`);
    }
    // Each shard resolved its own neighbors: shard 0 one, shard 1 two; at least one ARP request each.
    const tx = parts.map((p) => Number(p.data.devices[0]!.txPackets));
    assert.ok(tx[0]! >= 1 && tx[1]! >= 2, `ARP requests per shard: ${tx}`);
    // Drops by reason: summed over the shards.
    const drops = new Map<string, number>();
    for (const p of parts) for (const r of p.data.links) for (const [k, n] of Object.entries((r.drops as { reasons: Record<string, number> }).reasons)) drops.set(k, (drops.get(k) ?? 0) + n);
    for (const [reason, n] of drops) assert.is(valueOf(e!, 'xdpstack_link_drops_total', { vs: 'a', link: 'm0.10', reason }), n, reason);
    // Every shard holds the VIP: one VIP, not one per shard.
    assert.is(valueOf(e!, 'xdpstack_vs_vips', { vs: 'a' }), 1);
    assert.is(valueOf(e!, 'xdpstack_vs_decap_packets_total', { vs: 'a' }), 0);
    // Frame pools are per shard.
    for (const p of parts) {
      const pool = (p.data.pool as Row[])[0]!;
      assert.is(valueOf(e!, 'xdpstack_pool_capacity_frames', { device: 'm0', shard: String(p.shard) }), pool.total);
      assert.is(valueOf(e!, 'xdpstack_pool_frames', { device: 'm0', state: 'free', shard: String(p.shard) }), pool.free);
    }
    await s.close();
    // Closing the group closes its endpoint: a new connection is refused. (Not fetch(): its
    // kept-alive connection of the scrapes above may be taken before the client has read the
    // server's FIN, and fail as 'other side closed' instead.)
    assert.is(await connectError(ep.url), 'ECONNREFUSED');
  } finally {
    await s.close();
  }
});

// ------------------------------------------------------------------------------- config, errors, lifetime

function metricsConfig(metrics: unknown): unknown {
  return {
    devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'eth0', addresses: ['10.1.1.1/24'] }] }],
    metrics,
  };
}

test('config: metrics.listen is validated with the field path and a clear reason', () => {
  for (const ok of ['127.0.0.1:9464', '[::1]:9464', '0.0.0.0:9100', '[::]:0']) {
    assert.equal(validateConfig(metricsConfig({ listen: ok })).metrics, { listen: ok });
  }
  const bad: [unknown, RegExp][] = [
    [{ listen: '300.1.1.1:9464' }, /metrics\.listen: "300\.1\.1\.1:9464": "300\.1\.1\.1" is not an IPv4 or IPv6 address/],
    [{ listen: 'localhost:9464' }, /metrics\.listen: "localhost:9464": "localhost" is not an IPv4 or IPv6 address/],
    [{ listen: '127.0.0.1' }, /metrics\.listen: "127\.0\.0\.1" has no port/],
    [{ listen: '::1:9464' }, /metrics\.listen: "::1:9464": an IPv6 address is written in brackets/],
    [{ listen: '[127.0.0.1]:9464' }, /an IPv6 address is written in brackets, an IPv4 address without/],
    [{ listen: '127.0.0.1:65536' }, /metrics\.listen: "127\.0\.0\.1:65536": the port must be 0\.\.65535.*got "65536"/],
    [{ listen: '127.0.0.1:-1' }, /the port must be 0\.\.65535/],
    [{ listen: '127.0.0.1:http' }, /the port must be 0\.\.65535/],
    [{ listen: 9464 }, /metrics\.listen: must be a string ADDRESS:PORT/],
    [{}, /metrics\.listen: is required/],
    [{ listen: '127.0.0.1:9464', path: '/m' }, /metrics\.path: unknown key 'path' \(allowed: listen\)/],
    ['127.0.0.1:9464', /metrics: must be an object/],
  ];
  for (const [m, re] of bad) {
    let err: unknown = null;
    try { validateConfig(metricsConfig(m), 'stack.json'); } catch (e) { err = e; }
    assert.instance(err, ConfigError, JSON.stringify(m));
    assert.match((err as Error).message, re);
    assert.match((err as Error).message, /^stack\.json: /);
  }
});

test('an address in use is a clear error, not a crash; the stack serves on', async () => {
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const port = (busy.address() as net.AddressInfo).port;
  const s = createStack({
    name: 'busy', control: false, devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'eth0', addresses: ['10.1.1.1/24'] }] }],
    metrics: { listen: `127.0.0.1:${port}` },
  }, quiet);
  try {
    let err: Error | null = null;
    try { await s.serveMetrics(); } catch (e) { err = e as Error; }
    assert.ok(err, 'refused');
    assert.is(err!.message, `metrics: cannot listen on 127.0.0.1:${port}: the address is in use (another program or stack listens there) (EADDRINUSE)`);
    assert.match(await s.metrics(), /xdpstack_info\{name="busy"\} 1/);
    // A bad address given to the API is the validator's error.
    let bad = '';
    try { await s.serveMetrics('127.0.0.1:99999'); } catch (e) { bad = (e as Error).message; }
    assert.match(bad, /^metrics: listen "127\.0\.0\.1:99999": the port must be 0\.\.65535/);
    // The CLI: `run` says so and exits 1 (the stack it opened is closed again).
    const file = path.join(dir, 'busy.json');
    fs.writeFileSync(file, JSON.stringify({ name: 'busy-run', control: false, logLevel: 'warn', devices: [{ name: 'eth0', driver: 'memory' }],
      virtualServers: [{ name: 'a', links: [{ device: 'eth0', addresses: ['10.1.1.1/24'] }] }], metrics: { listen: `127.0.0.1:${port}` } }));
    const out: string[] = [];
    const code = await main(['run', file], { out: (l) => out.push(l), err: (l) => out.push(l) });
    assert.is(code, 1, out.join('\n'));
    assert.match(out.join('\n'), new RegExp(`xdpstack: metrics: cannot listen on 127\\.0\\.0\\.1:${port}: the address is in use`));
  } finally {
    s.close();
    busy.close();
  }
});

test('closing the stack closes the endpoint; serving a closed stack is refused', async () => {
  const s = createStack({
    name: 'cl', control: false, devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'eth0', addresses: ['10.1.1.1/24'] }] }],
  }, quiet);
  const ep = await s.serveMetrics('127.0.0.1:0');
  // A kept-alive connection does not hold the endpoint open.
  assert.is((await scrape(ep.url)).status, 200);
  s.close();
  let code = '';
  for (let i = 0; i < 20 && code === ''; i++) {
    try { await fetch(ep.url); await new Promise((r) => setTimeout(r, 50)); } catch (e) { code = String((e as { cause?: { code?: string } }).cause?.code); }
  }
  assert.is(code, 'ECONNREFUSED');
  let err = '';
  try { await s.serveMetrics('127.0.0.1:0'); } catch (e) { err = (e as Error).message; }
  assert.is(err, 'stack is closed');
  let none = '';
  const t = createStack({ name: 'n', control: false, devices: [{ name: 'eth0', driver: 'memory' }], virtualServers: [] }, quiet);
  try { await t.serveMetrics(); } catch (e) { none = (e as Error).message; } finally { t.close(); }
  assert.match(none, /metrics: no address to listen on \(config 'metrics': \{ "listen": "127\.0\.0\.1:9464" \}/);
});

test('xdpstack run serves the config\'s metrics and says where; stopping it closes them', async () => {
  const file = path.join(dir, 'run.json');
  fs.writeFileSync(file, JSON.stringify({ name: 'mrun', control: false, devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'eth0', addresses: ['10.1.1.1/24'] }] }], metrics: { listen: '127.0.0.1:0' } }));
  const out: string[] = [];
  const errs: string[] = [];
  let stop!: () => void;
  const stopped = new Promise<void>((r) => { stop = r; });
  const running = runStack(file, {}, { out: (l) => out.push(l), err: (l) => errs.push(l) }, stopped);
  let url = '';
  for (let i = 0; i < 100 && !url; i++) {
    url = /metrics (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(out.join('\n'))?.[1] ?? '';
    if (!url) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(url, out.join('\n'));
  assert.match(out[0]!, /^xdpstack: stack 'mrun' running: 1 device\(s\), 1 virtual server\(s\), metrics http/);
  const r = await scrape(url);
  assert.is(r.status, 200);
  assert.is(valueOf(parseExposition(r.text), 'xdpstack_info', { name: 'mrun' }), 1);
  assert.ok(errs.some((l) => / info  metrics\.listen url=http:\/\/127\.0\.0\.1:\d+\/metrics$/.test(l)), errs.join('\n'));
  stop();
  assert.is(await running, 0);
  let code = '';
  try { await fetch(url); } catch (e) { code = String((e as { cause?: { code?: string } }).cause?.code); }
  assert.is(code, 'ECONNREFUSED');
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test.run();
