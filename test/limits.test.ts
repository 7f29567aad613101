/**
 * Limits on the tables a peer can grow (stack/limits.ts): each is a config key with a default,
 * validated with a clear message; reaching it is a counted drop or a clear error; `show limits`
 * reports use against the limit and how often it was reached.
 *
 * The stack under test (a config with `limits`, over one end of a memory link) is served by a peer
 * engine on the other end, under virtual time.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createMemoryLink, MemoryLink } from '../driver/memory';
import { main } from '../stack/cli/cli';
import { ControlServer, controlRequest } from '../stack/control/control';
import { Burst } from '../driver/types';
import { ConfigError, StackConfig, validateConfig } from '../stack/control/config';
import { Engine } from '../stack/engine';
import { Runtime } from '../stack/runtime';
import { createStack, LimitRow, Stack } from '../stack/stack';
import { connect, createServer, Socket } from '../stack/api/net';
import { DEFAULT_LIMITS, resolveLimits } from '../stack/limits';
import { TcpSegmentOut, TH_SYN } from '../protocols/tcp/types';
import { tcpHeaderLen, writeTcp } from '../protocols/tcp';
import { ETH_P_IPV4, writeEth } from '../protocols/ethernet';
import { IPPROTO_TCP, writeIpv4 } from '../protocols/ipv4';
import { fragmentFrame, ip, udpFrame } from './lib/frames';

const SECRET = new Uint8Array(16).map((_, i) => i * 7 + 1);

interface World {
  stack: Stack;
  link: MemoryLink;
  peer: Engine;
  peerRt: Runtime;
  now(): number;
  run(done: () => boolean, maxUs?: number): Promise<boolean>;
  /** Puts raw frames on the wire from the peer's side. */
  inject(frames: Uint8Array[]): void;
  drops(): Record<string, number>;
  limits(vs?: string): LimitRow[];
}

function world(cfg: Partial<StackConfig> = {}, vsLimits?: Record<string, number>): World {
  const link = createMemoryLink({ frameCount: 4096, wireFrames: 4096 });
  let now = 0;
  let dirty = false;
  const stack = createStack({
    name: 'lim', control: false, ...cfg,
    devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'eth0', addresses: ['10.1.1.1/24'] }], ...(vsLimits ? { limits: vsLimits } : {}) }],
  } as StackConfig, { drivers: { eth0: link.a } });
  const peer = new Engine({ secret: SECRET, onOutput: () => { dirty = true; } });
  peer.addDevice({ name: 'eth0', pool: link.b.pool, mac: link.b.mac, mtu: link.b.mtu });
  const pv = peer.createVs('p');
  peer.addLink(pv, { device: 'eth0' });
  peer.addAddress(pv, 'eth0', '10.1.1.2/24');
  const peerRt = new Runtime(peer, [link.b]);
  const turn = () => new Promise<void>((r) => setImmediate(r));
  const w: World = {
    stack, link, peer, peerRt,
    now: () => now,
    async run(done, maxUs = 60_000_000) {
      const end = now + maxUs;
      for (let i = 0; i < 1_000_000; i++) {
        dirty = false;
        const na = stack.runtime.step(now);
        const nb = peerRt.step(now);
        await turn();
        if (done()) return true;
        if (dirty) continue;
        const next = Math.min(na, nb, stack.runtime.step(now), peerRt.step(now), link.nextDeadline());
        if (dirty) continue;
        if (next === Infinity || next > end) { if (end > now) now = end; return done(); }
        now = next > now ? next : Math.min(Math.floor(now / 1000) * 1000 + 1000, end + 1);
      }
      return done();
    },
    inject(frames) {
      const pool = link.b.pool;
      const burst = new Burst(frames.length);
      for (const f of frames) {
        const x = pool.alloc();
        assert.ok(x >= 0);
        const off = pool.dataStart(x);
        pool.bytes.set(f, off);
        burst.push(x, off, f.length);
      }
      assert.is(link.b.tx(burst, now), frames.length);
    },
    drops: () => (stack.show('counters', { vs: 'a' }) as { vs: { drops: { reasons: Record<string, number> } }[] }).vs[0]!.drops.reasons,
    limits: (vs) => stack.show('limits', vs ? { vs } : {}) as LimitRow[],
  };
  return w;
}

const row = (rows: LimitRow[], limit: string, scope?: string): LimitRow => {
  const r = rows.find((x) => x.limit === limit && (scope === undefined || x.scope === scope));
  assert.ok(r, `show limits has a row for ${limit}${scope ? ` (${scope})` : ''}`);
  return r!;
};

const peerCtx = (w: World) => ({ engine: w.peer, vs: w.peer.vs('p'), now: () => w.now() });

/** A SYN from `src`:sport (through the peer's MAC) to 10.1.1.1:dport, as a raw frame. */
function synFrame(w: World, sport: number, dport: number, src = '10.1.1.2'): Uint8Array {
  const o = new TcpSegmentOut();
  o.srcPort = sport; o.dstPort = dport; o.seq = 1000 + sport; o.flags = TH_SYN; o.window = 65535; o.mss = 1460;
  const hl = tcpHeaderLen(o);
  const b = new Uint8Array(14 + 20 + hl);
  writeEth(b, 0, w.link.a.mac, 0, w.link.b.mac, 0, ETH_P_IPV4, -1);
  writeTcp(b, 34, o, 0, ip(src), ip('10.1.1.1'));
  writeIpv4(b, 14, ip(src), ip('10.1.1.1'), IPPROTO_TCP, hl, 64, sport, 0, 0);
  return b;
}

// ------------------------------------------------------------------------------- configuration

test('config: limits are validated with the field path, range and value; per-VS limits too', () => {
  const base = {
    devices: [{ name: 'm0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', addresses: ['10.1.1.1/24'] }] }],
  };
  const bad = (extra: Record<string, unknown>, vsExtra: Record<string, unknown> = {}) => {
    try {
      validateConfig({ ...base, ...extra, virtualServers: [{ ...base.virtualServers[0], ...vsExtra }] }, 'x.json');
    } catch (e) {
      assert.instance(e, ConfigError);
      return (e as Error).message;
    }
    assert.unreachable('config was accepted');
    return '';
  };
  assert.match(bad({ limits: { tcpConnections: 0 } }), 'limits.tcpConnections: must be 1..16777216, got 0');
  assert.match(bad({ limits: { tcpReorderMemory: 1.5 } }), 'limits.tcpReorderMemory: must be an integer 0..1099511627776, got 1.5');
  assert.match(bad({ limits: { neighbours: 5 } }), "limits.neighbours: unknown key 'neighbours' (allowed: tcpConnections, tcpConnectionsPerVs, tcpSynQueue");
  assert.match(bad({ limits: { reassemblyMemory: '1M' } }), 'limits.reassemblyMemory: must be an integer 1..2147483648, got "1M"');
  assert.match(bad({ limits: 5 }), 'limits: must be an object, got number 5');
  assert.match(bad({}, { limits: { neighbors: 0 } }), 'virtualServers[0].limits.neighbors: must be 1..1048576, got 0');
  // Stack-wide limits are not per VS.
  assert.match(bad({}, { limits: { tcpTimeWait: 10 } }), "virtualServers[0].limits.tcpTimeWait: unknown key 'tcpTimeWait' (allowed: tcpConnections, tcpSynQueue, neighbors)");
  // Good ones pass, and every key has a default.
  validateConfig({ ...base, limits: { tcpConnections: 10, tcpTimeWait: 0, tcpReorderMemory: 0 }, virtualServers: [{ ...base.virtualServers[0], limits: { tcpConnections: 5, tcpSynQueue: 1, neighbors: 8 } }] });
  assert.equal(resolveLimits({ neighbors: 7 }), { ...DEFAULT_LIMITS, neighbors: 7 });
  assert.throws(() => new Engine({ limits: { tcpSynQueue: 0 } }), /limit tcpSynQueue must be 1\.\.65535, got 0/);
  assert.throws(() => new Engine().createVs('v', { tcpConnections: -1 }), /limit tcpConnections must be 1\.\.16777216, got -1/);
});

test('show limits: every limit with its default and zero use on a fresh stack', () => {
  const w = world();
  const rows = w.limits();
  for (const k of ['tcpConnections', 'tcpTimeWait', 'tcpReorderMemory', 'reassemblyDatagrams', 'reassemblyMemory'] as const) {
    const r = row(rows.filter((x) => x.scope === 'stack'), k);
    assert.is(r.max, DEFAULT_LIMITS[k]);
    assert.is(r.used, 0);
    assert.is(r.hits, 0);
  }
  assert.is(row(rows, 'tcpConnections', 'vs').max, DEFAULT_LIMITS.tcpConnectionsPerVs);
  assert.is(row(rows, 'neighbors', 'link eth0').max, DEFAULT_LIMITS.neighbors);
  // --vs: only that VS's rows.
  assert.ok(w.limits('a').every((x) => x.vs === 'a'));
  w.stack.close();
});

// ------------------------------------------------------------------------------- connections

test('connections per VS: SYNs beyond the limit are dropped and counted; show reports 3 of 3', async () => {
  const w = world({}, { tcpConnections: 3 });
  const accepted: Socket[] = [];
  w.stack.vs('a').createServer((s) => { accepted.push(s); s.on('error', () => {}); }).listen(80);
  const clients: Socket[] = [];
  let connected = 0;
  for (let i = 0; i < 5; i++) {
    const c = connect(peerCtx(w), { port: 80, host: '10.1.1.1' }, () => { connected++; });
    c.on('error', () => {});
    c.resume(); // reads the end of stream, so it closes its side when the server closes
    clients.push(c);
  }
  // The peer retransmits its refused SYNs (1 s); within 2.5 s the refusals are counted again.
  await w.run(() => false, 2_500_000);
  assert.is(accepted.length, 3);
  assert.is(connected, 3);
  const drops = w.drops()['tcp-connection-limit'] ?? 0;
  assert.ok(drops >= 2, `tcp-connection-limit drops: ${drops}`);
  const r = row(w.limits('a'), 'tcpConnections', 'vs');
  assert.equal([r.used, r.max], [3, 3]);
  assert.is(r.hits, drops);
  // One closes (its peer closes too; our side's TIME_WAIT does not count): a retransmitted SYN gets in.
  accepted[0]!.destroy();
  await w.run(() => accepted.length === 4, 5_000_000);

  assert.is(accepted.length, 4);
  for (const c of clients) c.destroy();
  w.stack.close();
});

test('connect() beyond the VS limit fails with EMFILE, beyond the stack limit with ENFILE', async () => {
  const w = world({ limits: { tcpConnections: 3 } }, { tcpConnections: 2 });
  createServer(peerCtx(w), (s) => { s.on('error', () => {}); }).listen(9);
  const vs = w.stack.vs('a');
  const errs: NodeJS.ErrnoException[] = [];
  let ok = 0;
  const socks: Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const c = vs.connect({ port: 9, host: '10.1.1.2' }, () => { ok++; });
    c.on('error', (e: NodeJS.ErrnoException) => errs.push(e));
    socks.push(c);
  }
  await w.run(() => ok === 2 && errs.length === 1, 5_000_000);
  assert.is(ok, 2);
  assert.is(errs.length, 1);
  assert.is(errs[0]!.code, 'EMFILE');
  assert.is(errs[0]!.syscall, 'connect');
  assert.match(errs[0]!.message, "virtual server 'a' has 2 TCP connections, its limit (limits.tcpConnections)");
  // A second VS fills the stack-wide limit (3): its second connect gets ENFILE.
  const b = w.stack.createVs('b', [{ device: 'eth0', mac: '02:00:00:00:00:77', addresses: ['10.1.1.3/24'] }]);
  const c1 = b.connect({ port: 9, host: '10.1.1.2' });
  c1.on('error', () => {});
  const c2 = b.connect({ port: 9, host: '10.1.1.2' });
  let e2: NodeJS.ErrnoException | null = null;
  c2.on('error', (e: NodeJS.ErrnoException) => { e2 = e; });
  await w.run(() => e2 !== null, 5_000_000);
  assert.is(e2!.code, 'ENFILE');
  assert.match(e2!.message, 'the stack has 3 TCP connections, its limit (limits.tcpConnections)');
  const st = row(w.limits().filter((x) => x.scope === 'stack'), 'tcpConnections');
  assert.equal([st.used, st.max, st.hits], [3, 3, 1]);
  assert.is(row(w.limits('a'), 'tcpConnections', 'vs').hits, 1);
  for (const s of [...socks, c1, c2]) s.destroy();
  w.stack.close();
});

// ------------------------------------------------------------------------------- SYN queue

test('SYN queue per listener: beyond the VS limit SYNs are answered with cookies; show reports 2 of 2', async () => {
  const w = world({}, { tcpSynQueue: 2 });
  w.stack.vs('a').createServer(() => {}).listen(80);
  await w.run(() => false, 1000);
  // Five half-open connections from a spoofed source (nobody answers the SYN-ACKs).
  w.inject([40001, 40002, 40003, 40004, 40005].map((p) => synFrame(w, p, 80, '10.1.1.99')));
  await w.run(() => false, 100_000);
  const r = row(w.limits('a'), 'tcpSynQueue', 'listener *:80');
  assert.equal([r.used, r.max, r.hits], [2, 2, 3]);
  w.stack.close();
});

// ------------------------------------------------------------------------------- reorder memory

test('reorder memory: segments beyond the stack limit are dropped and counted, use never exceeds it, transfers stay exact', async () => {
  const RING = 256 * 1024; // one connection's reorder buffer (rcvBuf default)
  const w = world({ limits: { tcpReorderMemory: RING } });
  w.link.setImpairments('ba', { reorder: 0.3, reorderDelayUs: 2000 });
  const got = new Map<number, Buffer[]>();
  let ended = 0;
  w.stack.vs('a').createServer((s) => {
    const id = got.size;
    got.set(id, []);
    s.on('data', (d: Buffer) => got.get(id)!.push(d));
    s.on('end', () => { ended++; s.end(); });
  }).listen(80);
  const N = 3;
  const data = Buffer.alloc(300_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 8)) & 0xff;
  for (let i = 0; i < N; i++) {
    const c = connect(peerCtx(w), { port: 80, host: '10.1.1.1' }, () => c.end(data));
    c.on('error', () => {});
    c.resume();
  }
  let maxUsed = 0;
  const tcp = w.stack.engine.tcp;
  await w.run(() => { maxUsed = Math.max(maxUsed, tcp.reorderBytes); return ended === N; }, 120_000_000);
  assert.is(ended, N, 'every transfer completed');
  for (const parts of got.values()) assert.ok(Buffer.concat(parts).equals(data), 'byte-exact');
  assert.ok(maxUsed <= RING, `reorder memory used ${maxUsed} <= ${RING}`);
  const r = row(w.limits(), 'tcpReorderMemory');
  assert.ok(r.hits > 0, 'the limit was reached');
  assert.is(w.drops()['tcp-reorder-memory'], r.hits);
  await w.run(() => tcp.reorderBytes === 0, 5_000_000);
  assert.is(tcp.reorderBytes, 0, 'all reorder buffers given back');
  w.stack.close();
});

// ------------------------------------------------------------------------------- reassembly

test('reassembly: a datagram beyond reassemblyDatagrams is dropped and counted; show reports 2 of 2', async () => {
  const w = world({ limits: { reassemblyDatagrams: 2, reassemblyMemory: 100_000 } });
  await w.run(() => false, 1000);
  const first = (id: number) => fragmentFrame(udpFrame(-1, w.link.a.mac, w.link.b.mac, '10.1.1.2', 5000, '10.1.1.1', 7, new Uint8Array(2000)), -1, 1000, id)[0]!;
  w.inject([first(1), first(2), first(3)]);
  await w.run(() => false, 10_000);
  const rows = w.limits();
  const d = row(rows, 'reassemblyDatagrams');
  assert.equal([d.used, d.max, d.hits], [2, 2, 1]);
  assert.is(row(rows, 'reassemblyMemory').used, 2000);
  assert.is(w.drops()['ipv4-reassembly-overflow'], 1);
  w.stack.close();
});

test('reassembly memory: a fragment beyond reassemblyMemory is dropped and counted', async () => {
  const w = world({ limits: { reassemblyMemory: 1500 } });
  await w.run(() => false, 1000);
  const frags = (id: number) => fragmentFrame(udpFrame(-1, w.link.a.mac, w.link.b.mac, '10.1.1.2', 5000, '10.1.1.1', 7, new Uint8Array(3000)), -1, 1000, id);
  w.inject([frags(1)[0]!, frags(2)[0]!]); // 1000 + 1000 > 1500
  await w.run(() => false, 10_000);
  const m = row(w.limits(), 'reassemblyMemory');
  assert.equal([m.used, m.max, m.hits], [1000, 1500, 1]);
  assert.is(w.drops()['ipv4-reassembly-overflow'], 1);
  w.stack.close();
});

// ------------------------------------------------------------------------------- neighbors

test('neighbors per link: a frame for a new neighbor beyond the limit is dropped as neighbor-table-full', async () => {
  const w = world({}, { neighbors: 2 });
  const u = w.stack.vs('a').createSocket('udp4');
  u.bind(5000);
  // Three on-link hosts that never answer ARP: two entries (INCOMPLETE), the third does not fit.
  for (const h of ['10.1.1.20', '10.1.1.21', '10.1.1.22']) u.send(Buffer.from('x'), 9, h);
  await w.run(() => false, 200_000);
  const r = row(w.limits('a'), 'neighbors', 'link eth0');
  assert.equal([r.used, r.max, r.hits], [2, 2, 1]);
  assert.is(w.drops()['neighbor-table-full'], 1);
  u.close();
  w.stack.close();
});

// ------------------------------------------------------------------------------- TIME_WAIT

test('TIME_WAIT: beyond tcpTimeWait the oldest is forgotten early; show reports use and hits', async () => {
  const w = world({ limits: { tcpTimeWait: 1 } });
  createServer(peerCtx(w), (s) => { s.resume(); s.on('end', () => s.end()); s.on('error', () => {}); }).listen(9);
  let closed = 0;
  for (let i = 0; i < 3; i++) {
    const c = w.stack.vs('a').connect({ port: 9, host: '10.1.1.2' }, () => c.end());
    c.resume();
    c.on('close', () => { closed++; });
  }
  await w.run(() => closed === 3, 5_000_000);
  const r = row(w.limits(), 'tcpTimeWait');
  assert.equal([r.used, r.max, r.hits], [1, 1, 2]);
  w.stack.close();
});

// ------------------------------------------------------------------------------- control socket + CLI

test('xdpstack show limits [--vs NAME] [--json] over the control socket', async () => {
  const w = world({ limits: { tcpConnections: 1000 } }, { neighbors: 16 });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-limits-'));
  const sock = path.join(tmp, 'lim.sock');
  const server = await ControlServer.listen(w.stack, sock);
  try {
    const run = async (args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    let r = await run(['show', 'limits', '--socket', sock]);
    assert.is(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.match(lines[0]!, /^VS\s+SCOPE\s+LIMIT\s+USED\s+MAX\s+HITS$/);
    assert.ok(lines.some((l) => /^-\s+stack\s+tcpConnections\s+0\s+1000\s+0$/.test(l)), r.out);
    assert.ok(lines.some((l) => /^a\s+link eth0\s+neighbors\s+0\s+16\s+0$/.test(l)), r.out);
    r = await run(['show', 'limits', '--vs', 'a', '--json', '--socket', sock]);
    assert.is(r.code, 0, r.err);
    const rows = JSON.parse(r.out) as LimitRow[];
    assert.ok(rows.length >= 2 && rows.every((x) => x.vs === 'a'));
    assert.equal(rows.find((x) => x.limit === 'neighbors'), { vs: 'a', scope: 'link eth0', limit: 'neighbors', used: 0, max: 16, hits: 0 });
    // A VS added at run time takes its own limits, checked as in a config file.
    const add = async (req: { cmd: string } & Record<string, unknown>) => controlRequest(sock, req);
    const ok = await add({ cmd: 'vs.add', name: 'd', limits: { tcpConnections: 7 } });
    assert.is(ok.ok, true, JSON.stringify(ok));
    r = await run(['show', 'limits', '--vs', 'd', '--json', '--socket', sock]);
    assert.is((JSON.parse(r.out) as LimitRow[]).find((x) => x.limit === 'tcpConnections')?.max, 7, r.out);
    for (const [limits, re] of [[{ tcpConnections: 0 }, /tcpConnections/], [{ nope: 1 }, /unknown virtual server limit 'nope'/], ['x', /'limits' must be an object/]] as const) {
      const bad = await add({ cmd: 'vs.add', name: 'e', limits });
      assert.is(bad.ok, false);
      assert.match(String(bad.error), re);
    }
    assert.is(w.stack.engine.vsByName.has('e'), false, 'a refused VS is not created');
  } finally {
    await server.close();
    w.stack.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
