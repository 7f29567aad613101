/**
 * The operator's verbs of the CLI and the control socket, against a memory-driver stack (and a
 * stack of shards in worker threads): `show --interval` rates (the counters' increase over the
 * time measured between two samples), `clear counters`, `show config` (the running configuration,
 * VIPs and load balancers included, which the config loader accepts back and builds the same state
 * from), the one shape of drops,
 * `neighbor show|flush`, `help COMMAND`, and "did you mean" for typos.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { COMMANDS, main } from '../stack/cli/cli';
import { closest, editDistance } from '../stack/cli/args';
import { computeRates, parseInterval, watchRates, RateSample } from '../stack/cli/rates';
import { runStack } from '../stack/cli/stack-commands';
import { createStack, Stack, TapDriver } from '../stack/stack';
import { ControlServer, controlRequest, handleRequest } from '../stack/control/control';
import { loadConfig, StackConfig, validateConfig } from '../stack/control/config';
import { ShardedStack } from '../stack/shard/threads';
import { Burst, DriverStats, parseMac } from '../driver/types';
import { createMemoryLink } from '../driver/memory';
import { monotonicUs } from '../stack/runtime';
import { arpFrame, BCAST, push, udpFrame, ZERO } from './lib/frames';
import { shardWorld } from './lib/shard-world';

type Row = Record<string, unknown>;
interface Drops { total: number; reasons: Record<string, number> }

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-cli-ops-'));
const STACK_MAC = parseMac('02:00:00:00:00:01');
const PEER_MAC = parseMac('02:00:00:00:00:0b');

function config(): StackConfig {
  return {
    name: 'ops',
    engine: { dadTransmits: 0 },
    limits: { neighbors: 512 },
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [
      { name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }], routes: [{ dst: '10.9.0.0/16', via: '10.1.1.254' }] },
      { name: 'b', links: [{ device: 'm0', vlan: 20, addresses: ['10.1.1.1/24'] }], limits: { tcpConnections: 50 } },
    ],
    services: [{ type: 'udp-echo', vs: 'a', port: 7 }, { type: 'tcp-echo', vs: 'b', port: 7 }],
  };
}

async function cli(args: string[], onOut?: (line: string) => void): Promise<{ code: number; out: string; err: string; lines: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => { out.push(l); onOut?.(l); }, err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n'), lines: out };
}

/** Sends raw frames from the memory device's other end into the stack. */
function inject(stack: Stack, frames: Uint8Array[]): void {
  const peer = stack.peer('m0');
  const b = new Burst(Math.max(64, frames.length));
  for (const f of frames) push(peer.pool, b, f);
  assert.is(peer.tx(b, monotonicUs()), frames.length, 'the memory wire took every frame');
}

/** Frees what the stack sent to the other end. */
function drainPeer(stack: Stack): number {
  const peer = stack.peer('m0');
  const b = new Burst();
  let n = 0;
  for (let i = 0; i < 1000 && peer.rx(b, monotonicUs()) > 0; i++) { for (let k = 0; k < b.n; k++) peer.pool.free(b.frame[k]!); n += b.n; b.n = 0; }
  return n;
}

/** UDP datagrams from the peer 10.1.1.2 to 10.1.1.1:port on VLAN `vlan`. */
function udpTo(vlan: number, port: number, n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => udpFrame(vlan, STACK_MAC, PEER_MAC, '10.1.1.2', 5000 + i, '10.1.1.1', port, new Uint8Array(32)));
}

/** An ARP request from `spa` (MAC …:`last`) for 10.1.1.1 on VLAN `vlan`: the stack learns the sender. */
function arpFromPeer(vlan: number, spa: string, last: number): Uint8Array {
  return arpFrame(1, vlan, BCAST, Uint8Array.of(2, 0, 0, 0, 0, last), spa, ZERO, '10.1.1.1');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (bounded) until `cond` holds. */
async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

let stack: Stack;
let server: ControlServer;
let sock: string;

test.before(async () => {
  stack = createStack(config());
  sock = path.join(tmp, 'ops.sock');
  server = await ControlServer.listen(stack, sock);
  stack.start();
  // The peers of VS a (10.1.1.2) and b (10.1.1.2 on VLAN 20) are known: replies need no ARP.
  inject(stack, [arpFromPeer(10, '10.1.1.2', 0x0b), arpFromPeer(20, '10.1.1.2', 0x0b)]);
  await until(() => (stack.show('neighbors') as Row[]).length === 2, 'the peers learned');
  drainPeer(stack);
});

test.after(async () => {
  await server.close();
  stack.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// help and "did you mean"

test('edit distance (Damerau-Levenshtein, adjacent transpositions) and the closest candidate', () => {
  assert.is(editDistance('shwo', 'show'), 1, 'a transposition is one edit');
  assert.is(editDistance('vss', 'vs'), 1);
  assert.is(editDistance('kitten', 'sitting'), 3);
  assert.is(editDistance('', 'abc'), 3);
  assert.is(editDistance('abc', 'abc'), 0);
  assert.is(editDistance('ca', 'abc'), 3, 'optimal string alignment: no edit of a transposed pair');
  assert.is(closest('shwo', ['run', 'show', 'vs']), 'show');
  assert.is(closest('rotue', ['route', 'rule']), 'route');
  assert.is(closest('frob', ['run', 'show', 'vs', 'lab']), undefined, 'nothing close: no guess');
  assert.is(closest('ls', ['vs']), undefined, 'short names allow one edit only');
});

test('help COMMAND [SUB] prints what COMMAND [SUB] --help prints, for every command', async () => {
  let checked = 0;
  for (const c of COMMANDS) {
    const paths = c.subcommands ? [[c.name], ...c.subcommands.map((s) => [c.name, s.name])] : [[c.name]];
    for (const p of paths) {
      const h = await cli(['help', ...p]);
      const d = await cli([...p, '--help']);
      assert.is(h.code, 0, `help ${p.join(' ')}: ${h.err}`);
      assert.is(d.code, 0, `${p.join(' ')} --help: ${d.err}`);
      assert.is(h.out, d.out, `help ${p.join(' ')}`);
      assert.match(h.out, /^Usage: xdpstack /, `help ${p.join(' ')} is a usage text`);
      checked++;
    }
  }
  assert.ok(checked >= 25, `every command and subcommand (${checked})`);
  const top = await cli(['help']);
  assert.is(top.code, 0);
  for (const name of ['show', 'clear', 'neighbor', 'link', 'rule']) assert.match(top.out, new RegExp(`\\n  ${name}\\s+\\S`), `${name} listed`);
  const bad = await cli(['help', 'shwo']);
  assert.is(bad.code, 2);
  assert.match(bad.err, /unknown command 'shwo' \(did you mean 'show'\?\)/);
});

test('typos of commands, subcommands, options and kinds get a "did you mean"; clear exit code 2', async () => {
  const cases: [string[], RegExp][] = [
    [['shwo'], /xdpstack: unknown command 'shwo' \(did you mean 'show'\?\)/],
    [['nieghbor', 'show'], /unknown command 'nieghbor' \(did you mean 'neighbor'\?\)/],
    [['neighbor', 'flsuh', '--vs', 'a'], /unknown command 'flsuh' \(did you mean 'flush'\?\)/],
    [['lab', 'stauts'], /unknown command 'stauts' \(did you mean 'status'\?\)/],
    [['clear', 'counter'], /unknown command 'counter' \(did you mean 'counters'\?\)/],
    [['show', 'counters', '--vss', 'a'], /unknown option '--vss' \(did you mean '--vs'\?\)/],
    [['show', 'counters', '--jsno'], /unknown option '--jsno' \(did you mean '--json'\?\)/],
    [['route', 'add', 'default', '--vai', '10.1.1.254', '--vs', 'a'], /unknown option '--vai' \(did you mean '--via'\?\)/],
    [['show', 'countres'], /unknown kind 'countres' \(did you mean 'counters'\?\)/],
    [['show', 'vs', '-vs', 'a'], /unexpected argument '-vs' \(did you mean '--vs'\?\)/],
    [['vs', 'add', 'x', '--limits', 'tcpConnection=5'], /unknown limit 'tcpConnection' \(did you mean 'tcpConnections'\?\)/],
  ];
  for (const [args, re] of cases) {
    const r = await cli([...args, '--socket', sock]);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
  }
  const none = await cli(['zzzzzz']);
  assert.is(none.code, 2);
  assert.match(none.err, /unknown command 'zzzzzz'$/m);
  assert.not.match(none.err, /did you mean/);
});

// ---------------------------------------------------------------------------------------------
// rates

test('--interval: a positive number of seconds 0.1..3600, --count with it; clear usage errors', async () => {
  assert.is(parseInterval('1'), 1);
  assert.is(parseInterval('0.5'), 0.5);
  assert.is(parseInterval('3600'), 3600);
  const cases: [string[], RegExp][] = [
    [['--interval', '0'], /'--interval' expects seconds from 0\.1 to 3600 \(like 1 or 0\.5\), got '0': too short/],
    [['--interval', '0.05'], /got '0\.05': too short/],
    [['--interval', '3601'], /got '3601': too long/],
    [['--interval', 'abc'], /'--interval' expects seconds .* got 'abc'/],
    [['--interval', '1e3'], /got '1e3'/],
    [['--interval=-1'], /got '-1'/],
    [['--interval', '1', '--count', '0'], /--count must be at least 1/],
    [['--count', '3'], /--count goes with --interval/],
    [['--interval'], /'--interval' needs a value/],
  ];
  for (const [extra, re] of cases) {
    const r = await cli(['show', 'counters', ...extra, '--socket', sock]);
    assert.is(r.code, 2, `${extra.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
  }
  const r = await cli(['show', 'routes', '--interval', '1', '--socket', sock]);
  assert.is(r.code, 2);
  assert.match(r.err, /--interval gives rates of counters: it is for counters, vs, limits, vips, not 'routes'/);
});

test('computeRates: increase over the interval; gauges as they are; a reset or a new row counts from zero; per shard', () => {
  const prev = {
    devices: [{ device: 'm0', state: 'up', rxPackets: 100, rxBytes: 6400, losses: 0, drops: { total: 4, reasons: { 'not-for-us': 4 } } }],
    vs: [{ vs: 'a', rxPackets: 50, drops: { total: 1, reasons: { 'udp-no-socket': 1 } } }],
    links: [{ vs: 'a', link: 'm0.10', rxPackets: 50 }],
    pool: [{ device: 'm0', total: 1024, free: 1000, held: 24 }],
    shards: [{ shard: 0, tcpConnections: 3, passiveOpens: 10, forwarded: [0, 5] }],
  };
  const cur = {
    devices: [{ device: 'm0', state: 'up', rxPackets: 300, rxBytes: 19200, losses: 0, drops: { total: 10, reasons: { 'not-for-us': 6, 'vlan-no-link': 4 } } }],
    vs: [{ vs: 'a', rxPackets: 20, drops: { total: 0, reasons: {} } }, { vs: 'c', rxPackets: 8, drops: { total: 2, reasons: { 'udp-no-socket': 2 } } }],
    links: [{ vs: 'a', link: 'm0.10', rxPackets: 20 }],
    pool: [{ device: 'm0', total: 1024, free: 990, held: 34 }],
    shards: [{ shard: 0, tcpConnections: 7, passiveOpens: 14, forwarded: [0, 9] }],
  };
  const r = computeRates('counters', prev, cur, 2) as typeof cur;
  assert.equal(r.devices[0], { device: 'm0', state: 'up', rxPackets: 100, rxBytes: 6400, losses: 0, drops: { total: 3, reasons: { 'not-for-us': 1, 'vlan-no-link': 2 } } });
  assert.equal(r.vs[0], { vs: 'a', rxPackets: 10, drops: { total: 0, reasons: {} } }, 'below the previous sample: cleared, counted from zero');
  assert.equal(r.vs[1], { vs: 'c', rxPackets: 4, drops: { total: 1, reasons: { 'udp-no-socket': 1 } } }, 'a new row counts from zero');
  assert.equal(r.pool[0], cur.pool[0], 'the frame pool is gauges');
  assert.equal(r.shards[0], { shard: 0, tcpConnections: 7, passiveOpens: 2, forwarded: [0, 2] }, 'connections are a gauge; opens and hand-overs are rates');
  const vs = computeRates('vs', [{ name: 'a', id: 1, links: 1, tcpConnections: 5, rxPackets: 10, txPackets: 10, drops: { total: 0, reasons: {} } }],
    [{ name: 'a', id: 1, links: 1, tcpConnections: 9, rxPackets: 40, txPackets: 25, drops: { total: 3, reasons: { x: 3 } } }], 0.5) as Row[];
  assert.equal(vs[0], { name: 'a', id: 1, links: 1, tcpConnections: 9, rxPackets: 60, txPackets: 30, drops: { total: 6, reasons: { x: 6 } } });
  const lim = computeRates('limits', [{ vs: 'a', scope: 'vs', limit: 'tcpConnections', used: 3, max: 10, hits: 2 }],
    [{ vs: 'a', scope: 'vs', limit: 'tcpConnections', used: 10, max: 10, hits: 12 }], 5) as Row[];
  assert.equal(lim[0], { vs: 'a', scope: 'vs', limit: 'tcpConnections', used: 10, max: 10, hits: 2 });
  const per = computeRates('vs', [{ shard: 0, data: [{ name: 'a', rxPackets: 1 }] }, { shard: 1, data: [{ name: 'a', rxPackets: 10 }] }],
    [{ shard: 0, data: [{ name: 'a', rxPackets: 5 }] }, { shard: 1, data: [{ name: 'a', rxPackets: 30 }] }], 1) as { shard: number; data: Row[] }[];
  assert.equal(per.map((p) => p.data[0]!.rxPackets), [4, 20], 'each shard against its own previous sample');
  assert.throws(() => computeRates('routes', [], [], 1), /'routes' has no counters to rate/);
  assert.throws(() => computeRates('vs', [], [], 0), /positive interval/);
});

test('watchRates (injected clock): each rate is over the time measured between the samples, not the interval asked', async () => {
  // The clock reads 0.00, then the request takes 0.02 s; the stack's counter grows by what the
  // "traffic" adds while the loop sleeps; the second wait is stretched by a loaded host.
  let t = 0;
  let rx = 0;
  const sleeps = [1.0, 1.5, 0.8];
  const adds = [100, 300, 40];
  const lines: RateSample[] = [];
  let k = 0;
  const n = await watchRates({
    kind: 'vs', interval: 1, count: 3,
    now: () => t,
    sleep: async () => { t += sleeps[k]!; rx += adds[k]!; k++; },
    sample: async () => { t += 0.02; return [{ name: 'a', id: 1, rxPackets: rx }]; },
    emit: (r) => lines.push(r),
  });
  assert.is(n, 3);
  // Sample times (request middles): 0.01, 1.03, 2.55, 3.37 (the schedule is fixed from the first
  // sample: after the 1.5 s wait the next sample is due at 3.01 and the loop does not sleep more).
  assert.equal(lines.map((l) => l.interval), [1.02, 1.52, 0.82]);
  const rates = lines.map((l) => (l.rates as Row[])[0]!.rxPackets as number);
  assert.ok(Math.abs(rates[0]! - 100 / 1.02) < 1e-9, `${rates[0]}`);
  assert.ok(Math.abs(rates[1]! - 300 / 1.52) < 1e-9, `${rates[1]}`);
  assert.ok(Math.abs(rates[2]! - 40 / 0.82) < 1e-9, `${rates[2]}`);
  assert.ok(lines.every((l) => l.kind === 'vs' && !Number.isNaN(Date.parse(l.time))));
  // Aborting ends the loop without another line.
  const ac = new AbortController();
  let samples = 0;
  const m = await watchRates({ kind: 'vs', interval: 0.1, sample: async () => { if (++samples === 2) ac.abort(); return []; }, emit: () => {}, signal: ac.signal });
  assert.is(m, 0, 'the sample in flight when aborted is dropped');
});

test('show counters --interval --count --json on a running stack: rate × interval = the frames sent between the samples', async () => {
  // Between samples 1 and 2 the peer sends 12 datagrams to the echo service and 5 to a closed
  // port; between samples 2 and 3, 30 to the echo service. Each line's measured interval times its
  // rate gives those counts back, whatever the scheduler did to the timing.
  const batches = [{ echo: 12, closed: 5 }, { echo: 30, closed: 0 }];
  let line = 0;
  const r = await cli(['show', 'counters', '--interval', '0.3', '--count', '3', '--json', '--socket', sock], () => {
    const b = batches[line++];
    if (b) inject(stack, [...udpTo(10, 7, b.echo), ...udpTo(10, 9, b.closed)]);
    drainPeer(stack);
  });
  assert.is(r.code, 0, r.err);
  assert.is(r.lines.length, 3, 'one JSON object per line and sample');
  const samples = r.lines.map((l) => JSON.parse(l) as RateSample & { rates: { devices: Row[]; vs: Row[]; links: Row[] } });
  const sent = [0, 17, 30];
  const echoed = [0, 12, 30];
  const closed = [0, 5, 0];
  samples.forEach((s, i) => {
    assert.is(s.kind, 'counters');
    assert.ok(s.interval > 0 && s.interval < 30, `line ${i}: measured interval ${s.interval} s`);
    const a = s.rates.vs.find((v) => v.vs === 'a')!;
    const b = s.rates.vs.find((v) => v.vs === 'b')!;
    const link = s.rates.links.find((v) => v.vs === 'a' && v.link === 'm0.10')!;
    const dev = s.rates.devices[0]!;
    const got = (x: number) => x * s.interval;
    const near = (x: number, want: number, what: string) => assert.ok(Math.abs(got(x) - want) < 0.05, `line ${i}: ${what}: ${x}/s × ${s.interval} s = ${got(x)}, sent ${want}`);
    near(a.rxPackets as number, sent[i]!, 'VS a rxPackets');
    near(link.rxPackets as number, sent[i]!, 'link rxPackets');
    near(dev.rxPackets as number, sent[i]!, 'device rxPackets');
    near(a.rxBytes as number, sent[i]! * 78, 'VS a rxBytes (78-byte frames: Ethernet with a VLAN tag, IPv4, UDP, 32 bytes)');
    near((a.drops as Drops).total, closed[i]!, 'VS a drops');
    near((a.drops as Drops).reasons['udp-no-socket'] ?? 0, closed[i]!, 'udp-no-socket drops');
    // Each echo is answered, and each closed port answered with an ICMP error (rate-limited).
    assert.ok(got(a.txPackets as number) >= echoed[i]! - 0.05, `line ${i}: echoes sent ${got(a.txPackets as number)}`);
    near(b.rxPackets as number, 0, 'VS b saw nothing');
  });
  console.log(`# rates: intervals ${samples.map((s) => s.interval.toFixed(3)).join(', ')} s (asked 0.3 s)`);
});

test('show vs --interval text: per-second table with the measured interval', async () => {
  let line = 0;
  const r = await cli(['show', 'vs', '--interval', '0.2', '--count', '1', '--socket', sock], (l) => {
    if (line++ === 0 && !l.startsWith('vs per second')) throw new Error(`unexpected first line ${l}`);
  });
  assert.is(r.code, 0, r.err);
  assert.match(r.lines[0]!, /^vs per second over \d+\.\d{3} s, at \d{4}-\d\d-\d\dT/);
  assert.match(r.lines[1]!, /^NAME\s+ID\s+LINKS\s+ADDRESSES\s+ROUTES\s+UDPSOCKETS\s+TCPLISTENERS\s+TCPCONNECTIONS\s+RXPACKETS\s+TXPACKETS\s+DROPS$/);
  assert.match(r.lines[2]!, /^a\s+1\s+1\s+1\s+2\s+1\s+0\s+0\s+0\s+0\s+0$/, 'gauges as they are, rates 0 without traffic');
});

// ---------------------------------------------------------------------------------------------
// drops

test('drops are { total, reasons } in every JSON view: show counters (devices, VSes, links, driver), show vs, per shard', async () => {
  inject(stack, [...udpTo(20, 9, 3), udpFrame(30, STACK_MAC, PEER_MAC, '10.1.1.2', 1, '10.1.1.1', 9, new Uint8Array(8))]);
  await until(() => ((stack.show('counters', { vs: 'b' }) as { vs: { drops: Drops }[] }).vs[0]!.drops.reasons['udp-no-socket'] ?? 0) >= 3, 'drops counted');
  drainPeer(stack);
  const c = (await cli(['show', 'counters', '--json', '--socket', sock]));
  const counters = JSON.parse(c.out) as { devices: Row[]; vs: Row[]; links: Row[] };
  const isDrops = (d: unknown, where: string) => {
    const x = d as Drops;
    assert.type(x.total, 'number', `${where}: total`);
    assert.type(x.reasons, 'object', `${where}: reasons`);
    assert.is(x.total, Object.values(x.reasons).reduce((a, b) => a + b, 0), `${where}: the total is the sum of the reasons`);
    assert.ok(Object.values(x.reasons).every((n) => n > 0), `${where}: only reasons that occurred`);
  };
  for (const d of counters.devices) { isDrops(d.drops, `device ${d.device}`); isDrops(d.driverDrops, `device ${d.device} driver`); }
  for (const v of counters.vs) isDrops(v.drops, `vs ${v.vs}`);
  for (const l of counters.links) isDrops(l.drops, `link ${l.link}`);
  assert.ok((counters.devices[0]!.drops as Drops).reasons['vlan-no-link']! >= 1, 'the VLAN 30 frame');
  const vs = JSON.parse((await cli(['show', 'vs', '--json', '--socket', sock])).out) as Row[];
  for (const v of vs) {
    isDrops(v.drops, `show vs ${v.name}`);
    assert.equal(v.drops, counters.vs.find((x) => x.vs === v.name)!.drops, `show vs ${v.name} and show counters agree`);
  }
  const text = await cli(['show', 'counters', '--socket', sock]);
  assert.match(text.out, /Drops by reason:\n\s+WHERE\s+REASON\s+COUNT/);
  assert.match(text.out, /vs b\s+udp-no-socket\s+\d+/);
  assert.match(text.out, /device m0\s+vlan-no-link\s+\d+/);
});

test('clear counters: every counter, or one VS\'s; gauges stay', async () => {
  const rx = (vs: string) => (stack.show('vs', { vs }) as Row[])[0]!.rxPackets as number;
  const [a0, b0] = [rx('a'), rx('b')];
  inject(stack, [...udpTo(10, 7, 4), ...udpTo(20, 9, 2)]);
  await until(() => rx('a') === a0 + 4 && rx('b') === b0 + 2, 'traffic counted');
  drainPeer(stack);
  const before = stack.show('counters') as { devices: Row[]; vs: Row[]; links: Row[] };
  assert.ok((before.devices[0]!.rxPackets as number) > 0);
  // One VS: its counters and its links' only.
  let r = await cli(['clear', 'counters', '--vs', 'b', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, "counters of virtual server 'b' cleared (1 link(s))");
  let after = stack.show('counters') as typeof before;
  const zero = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, drops: { total: 0, reasons: {} } };
  // A VS's TCP counters are cleared with it (currEstab is a gauge: no connection is open here).
  const tcp = { activeOpens: 0, passiveOpens: 0, attemptFails: 0, estabResets: 0, outRsts: 0, inRsts: 0, retransSegs: 0, timeouts: 0, syncookiesSent: 0, syncookiesRecv: 0, syncookiesFailed: 0, ofoQueue: 0, currEstab: 0 };
  assert.equal(after.vs.find((v) => v.vs === 'b'), { vs: 'b', ...zero, tcp });
  assert.equal(after.links.find((v) => v.vs === 'b'), { vs: 'b', link: 'm0.20', ...zero });
  assert.equal(after.vs.find((v) => v.vs === 'a'), before.vs.find((v) => v.vs === 'a'), "a's untouched");
  assert.equal(after.devices[0]!.rxPackets, before.devices[0]!.rxPackets, 'devices are shared: untouched');
  // Everything.
  const neighbors = (stack.show('neighbors') as Row[]).length;
  const gauges = (stack.show('vs') as Row[]).map((v) => [v.udpSockets, v.tcpListeners, v.links, v.addresses, v.routes]);
  r = await cli(['clear', 'counters', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'counters cleared: 1 device(s), 2 virtual server(s), 2 link(s)');
  after = stack.show('counters') as typeof before;
  for (const v of after.vs) assert.equal(v, { vs: v.vs, ...zero, tcp });
  for (const l of after.links) assert.equal(l, { vs: l.vs, link: l.link, ...zero });
  const d = after.devices[0]!;
  assert.equal([d.rxPackets, d.rxBytes, d.txPackets, d.txBytes, d.drops, d.driverDrops, d.losses], [0, 0, 0, 0, zero.drops, zero.drops, 0]);
  assert.is((stack.show('neighbors') as Row[]).length, neighbors, 'neighbor entries are not counters');
  assert.equal((stack.show('vs') as Row[]).map((v) => [v.udpSockets, v.tcpListeners, v.links, v.addresses, v.routes]), gauges, 'sockets and tables stay');
  // Counting goes on from zero.
  inject(stack, udpTo(10, 7, 3));
  await until(() => ((stack.show('vs', { vs: 'a' }) as Row[])[0]!.rxPackets as number) === 3, 'counted from zero');
  drainPeer(stack);
  r = await cli(['clear', 'counters', '--vs', 'zz', '--socket', sock]);
  assert.is(r.code, 1);
  assert.match(r.err, /no virtual server 'zz'/);
  const raw = await controlRequest(sock, { cmd: 'counters.clear', vs: 'a' });
  assert.equal(raw, { ok: true, data: { devices: 0, vs: 1, links: 1 } });
});

test("clear counters: a driver's drops, losses and XDP statistics count from the clear (a driver that starts over is read as it is)", () => {
  const link = createMemoryLink({ nameA: 'm0', macA: '02:00:00:00:00:01' });
  const fake = { drop: 5, xdp: 7, losses: 1 };
  class Counting extends TapDriver {
    override stats(): DriverStats {
      const s = super.stats();
      return { ...s, drops: { ...s.drops, 'fake-drop': fake.drop }, xdp: { rx_dropped: fake.xdp, rx_ring_full: 0 }, losses: fake.losses };
    }
  }
  const st = createStack(config(), { drivers: { m0: new Counting(link.a, 0) } });
  try {
    const dev = () => (st.show('counters') as { devices: Row[] }).devices[0]!;
    assert.equal(dev().driverDrops, { total: 5, reasons: { 'fake-drop': 5 } });
    assert.equal([dev().xdp, dev().losses], [{ rx_dropped: 7, rx_ring_full: 0 }, 1]);
    handleRequest(st, { cmd: 'counters.clear' });
    assert.equal([dev().driverDrops, dev().xdp, dev().losses], [{ total: 0, reasons: {} }, { rx_dropped: 0, rx_ring_full: 0 }, 0]);
    fake.drop += 3; fake.xdp += 2;
    assert.equal([dev().driverDrops, dev().xdp], [{ total: 3, reasons: { 'fake-drop': 3 } }, { rx_dropped: 2, rx_ring_full: 0 }]);
    // The device was lost and its socket reopened: the driver's counts start over below the base.
    fake.drop = 2; fake.xdp = 1; fake.losses = 2;
    assert.equal([dev().driverDrops, dev().xdp, dev().losses], [{ total: 2, reasons: { 'fake-drop': 2 } }, { rx_dropped: 1, rx_ring_full: 0 }, 1]);
  } finally {
    st.close();
    link.b.close();
  }
});

// ---------------------------------------------------------------------------------------------
// neighbors

test('neighbor show lists what show neighbors lists; neighbor flush removes one entry, a link\'s or all, frames waiting freed and counted', async () => {
  inject(stack, [arpFromPeer(10, '10.1.1.3', 0x0c), arpFromPeer(10, '10.1.1.4', 0x0d)]);
  await until(() => (stack.show('neighbors', { vs: 'a' }) as Row[]).length === 3, 'three neighbors in a');
  drainPeer(stack);
  let r = await cli(['neighbor', 'show', '--vs', 'a', '--json', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  const shown = JSON.parse(r.out) as Row[];
  assert.equal(shown, JSON.parse((await cli(['show', 'neighbors', '--vs', 'a', '--json', '--socket', sock])).out));
  assert.equal(shown.map((n) => n.address).sort(), ['10.1.1.2', '10.1.1.3', '10.1.1.4']);
  r = await cli(['neighbor', 'show', '--socket', sock]);
  assert.match(r.out, /^VS\s+LINK\s+ADDRESS\s+MAC\s+STATE\s+QUEUED/);
  // One address.
  r = await cli(['neighbor', 'flush', '--vs', 'a', '10.1.1.3', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, '1 neighbor entry flushed');
  assert.equal((stack.show('neighbors', { vs: 'a' }) as Row[]).map((n) => n.address).sort(), ['10.1.1.2', '10.1.1.4']);
  r = await cli(['neighbor', 'flush', '--vs', 'a', '10.1.1.3', '--socket', sock]);
  assert.is(r.out, 'nothing to flush');
  // An entry still resolving, with a datagram waiting: flushed, the frame freed and counted.
  const free0 = stack.engine.devices[0]!.pool.counts().free;
  const s = stack.vs('a').createSocket('udp4');
  s.send(Buffer.from('waiting'), 9, '10.1.1.77');
  await until(() => (stack.show('neighbors', { vs: 'a' }) as Row[]).some((n) => n.address === '10.1.1.77' && n.state === 'INCOMPLETE' && n.queued === 1), 'resolving with one frame queued');
  const unreachable0 = (stack.vs('a').raw.counters.dropsView().reasons['neighbor-unreachable'] ?? 0);
  const res = await controlRequest(sock, { cmd: 'neighbor.flush', vs: 'a', link: 'm0.10', address: '10.1.1.77' });
  assert.equal(res, { ok: true, data: { flushed: [{ vs: 'a', link: 'm0.10', address: '10.1.1.77', state: 'INCOMPLETE' }] } });
  assert.is(stack.vs('a').raw.counters.dropsView().reasons['neighbor-unreachable'], unreachable0 + 1, 'the waiting datagram is a counted drop');
  s.close();
  drainPeer(stack);
  await until(() => stack.engine.devices[0]!.pool.counts().free === free0, 'every frame back in the pool');
  // The whole VS; VS b's entry stays.
  r = await cli(['neighbor', 'flush', '--vs', 'a', '--socket', sock]);
  assert.is(r.out, '2 neighbor entries flushed');
  assert.equal(stack.show('neighbors', { vs: 'a' }), []);
  assert.is((stack.show('neighbors', { vs: 'b' }) as Row[]).length, 1, "b's neighbor untouched");
  // Bad requests.
  const bad: [string[], number, RegExp][] = [
    [['neighbor', 'flush'], 2, /option --vs NAME is required/],
    [['neighbor', 'flush', '--vs', 'a', '10.1.1.999'], 1, /neighbor flush: .*10\.1\.1\.999/],
    [['neighbor', 'flush', '--vs', 'a', '--link', 'm0.99'], 1, /virtual server 'a' has no link 'm0\.99' \(links: m0\.10\)/],
    [['neighbor', 'flush', '--vs', 'zz'], 1, /no virtual server 'zz'/],
    [['neighbor', 'flush', '--vs', 'a', '10.1.1.2', '10.1.1.3'], 2, /unexpected argument '10\.1\.1\.3'/],
  ];
  for (const [args, code, re] of bad) {
    const x = await cli([...args, '--socket', sock]);
    assert.is(x.code, code, `${args.join(' ')}: ${x.err}`);
    assert.match(x.err, re);
  }
  // The peers come back for the other tests.
  inject(stack, [arpFromPeer(10, '10.1.1.2', 0x0b)]);
  await until(() => (stack.show('neighbors', { vs: 'a' }) as Row[]).length === 1, 'peer learned again');
  drainPeer(stack);
});

// ---------------------------------------------------------------------------------------------
// show config

/** What `show` says of the configuration of a stack (counters and sockets left out). */
async function configView(show: (kind: string) => unknown | Promise<unknown>): Promise<Row> {
  const vs = ((await show('vs')) as Row[]).map((v) => ({ name: v.name, links: v.links, addresses: v.addresses, routes: v.routes, udpSockets: v.udpSockets, tcpListeners: v.tcpListeners }));
  const limits = ((await show('limits')) as Row[]).map((l) => ({ vs: l.vs, scope: l.scope, limit: l.limit, max: l.max }));
  const vips = ((await show('vips')) as Row[]).map((v) => ({ vs: v.vs, vips: v.vips, from: v.from, overhead: v.overhead, overheadDefault: v.overheadDefault }));
  return { vs, links: await show('links'), addresses: await show('addresses'), routes: await show('routes'), rules: await show('rules'), limits, vips };
}

test('show config: the running configuration after runtime changes; the config loader accepts it back and builds the same state', async () => {
  const changes: string[][] = [
    ['vs', 'add', 'c', '--device', 'm0', '--vlan', '30', '--address', '10.3.0.1/16', '--limits', 'tcpConnections=100,neighbors=64'],
    ['link', 'add', 'm0', '--vs', 'c', '--vlan', '31', '--link', 'up2', '--mac', '02:00:00:00:03:01', '--mtu', '1400', '--address', '10.31.0.1/24,fd00:31::1/64'],
    ['address', 'add', 'fe80::31/64', '--vs', 'c', '--link', 'up2'],
    ['route', 'add', 'default', '--via', '10.3.0.254', '--vs', 'c'],
    ['route', 'add', '::/0', '--via', 'fe80::1%up2', '--vs', 'c'],
    ['route', 'add', '192.168.0.0/24', '--link', 'm0.30', '--table', '100', '--metric', '5', '--vs', 'c'],
    ['route', 'add', '172.16.0.0/12', '--via', '100.64.0.1', '--link', 'up2', '--onlink', '--src', '10.31.0.1', '--vs', 'c'],
    ['rule', 'add', '--priority', '100', '--from', '10.3.0.0/16', '--table', '100', '--vs', 'c'],
    ['rule', 'add', '--priority', '200', '--fwmark', '7', '--table', '100', '--vs', 'c'],
    ['rule', 'add', '--priority', '300', '--from', 'fd00:31::/64', '--table', '100', '--vs', 'c'],
    ['rule', 'del', '--priority', '300', '--vs', 'c'],
    // VIPs of either family and their load balancers; a VIP removed; a load balancer set, then cleared.
    ['vip', 'add', '198.51.100.30', '--vs', 'c'],
    ['vip', 'add', '2001:db8::30', '--vs', 'c'],
    ['vip', 'add', '198.51.100.31', '--vs', 'c'],
    ['vip', 'del', '198.51.100.31', '--vs', 'c'],
    ['decap', 'set', '--vs', 'c', '--from', '10.3.0.100/32,fd00:31::/64', '--overhead', '44'],
    ['decap', 'set', '--vs', 'a', '--from', '10.1.1.100/32'],
    ['decap', 'clear', '--vs', 'a'],
    ['address', 'add', '10.1.1.5/24', '--vs', 'a'],
    ['route', 'del', '10.9.0.0/16', '--vs', 'a'],
    ['vs', 'add', 'd', '--device', 'm0', '--vlan', '40'],
    ['link', 'add', 'm0', '--vs', 'd', '--vlan', '41', '--address', '10.41.0.1/24'],
    ['link', 'del', 'm0.40', '--vs', 'd'],
    ['vip', 'add', '192.0.2.41', '--vs', 'd'],
    ['vs', 'del', 'b'],
  ];
  for (const c of changes) {
    const r = await cli([...c, '--socket', sock]);
    assert.is(r.code, 0, `${c.join(' ')}: ${r.err}`);
  }
  const r = await cli(['show', 'config', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  const running = JSON.parse(r.out) as StackConfig;
  assert.equal(JSON.parse((await cli(['show', 'config', '--json', '--socket', sock])).out), running, '--json is the same JSON');
  // Sections as given.
  const given = config();
  assert.equal([running.name, running.engine, running.limits, running.devices], [given.name, given.engine, given.limits, given.devices]);
  assert.equal(running.services, [{ type: 'udp-echo', vs: 'a', port: 7 }], "b's service went with b");
  // The virtual servers as they are now.
  assert.equal(running.virtualServers.map((v) => v.name), ['a', 'c', 'd']);
  const c = running.virtualServers[1]!;
  assert.equal(c, {
    name: 'c',
    links: [
      { device: 'm0', vlan: 30, addresses: ['10.3.0.1/16'] },
      { name: 'up2', device: 'm0', vlan: 31, mac: '02:00:00:00:03:01', mtu: 1400, addresses: ['10.31.0.1/24', 'fd00:31::1/64', 'fe80::31/64'] },
    ],
    // Tables by id, each as `show routes` lists it (IPv4 longest prefix first, then IPv6).
    routes: [
      { dst: '192.168.0.0/24', link: 'm0.30', table: 100, metric: 5 },
      { dst: '172.16.0.0/12', via: '100.64.0.1', link: 'up2', onlink: true, src: '10.31.0.1' },
      { dst: 'default', via: '10.3.0.254', link: 'm0.30' },
      { dst: '::/0', via: 'fe80::1', link: 'up2' },
    ],
    rules: [{ priority: 100, from: '10.3.0.0/16', table: 100 }, { priority: 200, fwmark: 7, table: 100 }],
    limits: { tcpConnections: 100, neighbors: 64 },
    vips: ['198.51.100.30', '2001:db8::30'],
    decap: { from: ['10.3.0.100/32', 'fd00:31::/64'], overhead: 44 },
  } as never);
  assert.equal(running.virtualServers[0], { name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24', '10.1.1.5/24'] }] } as never, 'decap cleared: nothing to write');
  assert.equal(running.virtualServers[2], { name: 'd', links: [{ device: 'm0', vlan: 41, addresses: ['10.41.0.1/24'] }], vips: ['192.0.2.41'] } as never, 'a VIP and no load balancer');
  assert.equal((await configView((k) => stack.show(k))).vips, [
    { vs: 'c', vips: ['198.51.100.30', '2001:db8::30'], from: ['10.3.0.100/32', 'fd00:31::/64'], overhead: 44, overheadDefault: false },
    { vs: 'd', vips: ['192.0.2.41'], from: [], overhead: 20, overheadDefault: true },
  ], 'show vips of the running stack');
  // Loaded back (as `xdpstack run` loads a file): the same state.
  const file = path.join(tmp, 'running.json');
  fs.writeFileSync(file, r.out);
  const again = createStack(loadConfig(file));
  try {
    assert.equal(await configView((k) => again.show(k)), await configView((k) => stack.show(k)));
    assert.equal(again.runningConfig(), running, 'and it writes the same configuration');
  } finally {
    again.close();
  }
  // `xdpstack run` starts from it.
  const out: string[] = [];
  let stop!: () => void;
  const stopped = new Promise<void>((res) => { stop = res; });
  const run = runStack(file, { socket: path.join(tmp, 'again.sock') }, { out: (l) => { out.push(l); if (/running/.test(l)) stop(); }, err: (l) => out.push(l) }, stopped);
  assert.is(await run, 0, out.join('\n'));
  assert.match(out.join('\n'), /stack 'ops' running: 1 device\(s\), 3 virtual server\(s\)/);
  // Bad use.
  const bad = await cli(['show', 'config', '--vs', 'a', '--socket', sock]);
  assert.is(bad.code, 2);
  assert.match(bad.err, /--vs is not for it/);
  const raw = await controlRequest(sock, { cmd: 'show', kind: 'config', vs: 'a' });
  assert.is(raw.ok, false);
  assert.match(raw.error!, /running configuration is the whole stack's/);
});

// ---------------------------------------------------------------------------------------------
// A stack of shards

test('a stack of shards: neighbor flush and clear counters in every shard; show config from shard 0, loadable', async () => {
  const trigger = path.join(tmp, 'go');
  const app = path.join(tmp, 'app.js');
  // Each shard, once told: a datagram and a connection to 10.1.1.9, which no one answers (the
  // shards' memory devices carry no traffic): an ARP request sent, two frames waiting on it.
  fs.writeFileSync(app, `const fs = require('fs');
module.exports = (stack) => {
  const t = setInterval(() => {
    if (!fs.existsSync(${JSON.stringify(trigger)})) return;
    clearInterval(t);
    stack.vs('a').createSocket('udp4').send(Buffer.from('x'), 9, '10.1.1.9');
    stack.vs('a').connect({ port: 80, host: '10.1.1.9' }).on('error', () => {});
  }, 20);
};`);
  const cfg = config();
  cfg.virtualServers = [cfg.virtualServers[0]!];
  cfg.services = [{ type: 'udp-echo', vs: 'a', port: 7 }];
  const s = await ShardedStack.start(cfg, { shards: 2, app, log: () => {} });
  const ssock = path.join(tmp, 'shards.sock');
  const srv = await ControlServer.listen(s, ssock);
  try {
    type Per<T> = { shard: number; data: T }[];
    const perNeighbors = async () => (await s.show('neighbors', { perShard: true })) as Per<Row[]>;
    fs.writeFileSync(trigger, '');
    await until(async () => (await perNeighbors()).every((p) => p.data.some((n) => n.address === '10.1.1.9' && n.queued === 2)), 'each shard resolving 10.1.1.9');
    const merged = (await s.show('neighbors')) as Row[];
    // (A SYN retransmitted a second later would wait there too.)
    assert.equal(merged.map((n) => [n.address, n.state]), [['10.1.1.9', 'INCOMPLETE']], 'one entry');
    assert.ok((merged[0]!.queued as number) >= 4, `the frames of both shards wait on it (${merged[0]!.queued})`);
    let r = await cli(['neighbor', 'flush', '--vs', 'a', '--socket', ssock]);
    assert.is(r.code, 0, r.err);
    assert.is(r.out, '1 neighbor entry flushed', 'each entry once, however many shards had it');
    assert.ok((await perNeighbors()).every((p) => p.data.length === 0), 'flushed in every shard');
    const perCounters = async () => (await s.show('counters', { perShard: true })) as Per<{ devices: Row[]; vs: Row[]; shards: Row[] }>;
    let pc = await perCounters();
    for (const p of pc) {
      assert.ok((p.data.devices[0]!.txPackets as number) >= 1, `shard ${p.shard}: its ARP request counted`);
      assert.ok((p.data.vs[0]!.drops as Drops).reasons['neighbor-unreachable']! >= 2, `shard ${p.shard}: the waiting frames dropped and counted`);
      assert.is(p.data.shards[0]!.activeOpens, 1, `shard ${p.shard}: its connection counted`);
    }
    r = await cli(['clear', 'counters', '--socket', ssock]);
    assert.is(r.code, 0, r.err);
    pc = await perCounters();
    for (const p of pc) {
      const d = p.data.devices[0]!;
      assert.equal([d.rxPackets, d.txPackets, d.drops], [0, 0, { total: 0, reasons: {} }], `shard ${p.shard}: device cleared`);
      assert.equal(p.data.vs[0]!.drops, { total: 0, reasons: {} }, `shard ${p.shard}: VS cleared`);
      assert.equal([p.data.shards[0]!.activeOpens, p.data.shards[0]!.passiveOpens], [0, 0], `shard ${p.shard}: TCP open counts cleared`);
    }
    // Changes reach every shard; show config is the running configuration of the group.
    for (const c of [['vs', 'add', 'b', '--device', 'm0', '--vlan', '20', '--address', '10.2.2.1/24,fd00:2::1/64'], ['route', 'add', '10.8.0.0/16', '--via', '10.2.2.254', '--vs', 'b'],
      ['rule', 'add', '--priority', '10', '--fwmark', '3', '--table', '7', '--vs', 'b'], ['address', 'del', '10.1.1.1/24', '--vs', 'a']]) {
      r = await cli([...c, '--socket', ssock]);
      assert.is(r.code, 0, `${c.join(' ')}: ${r.err}`);
    }
    r = await cli(['show', 'config', '--socket', ssock]);
    assert.is(r.code, 0, r.err);
    const running = validateConfig(JSON.parse(r.out), 'show config');
    assert.equal(running.virtualServers, [
      { name: 'a', links: [{ device: 'm0', vlan: 10 }], routes: [{ dst: '10.9.0.0/16', via: '10.1.1.254', link: 'm0.10', onlink: true }] },
      { name: 'b', links: [{ device: 'm0', vlan: 20, addresses: ['10.2.2.1/24', 'fd00:2::1/64'] }], routes: [{ dst: '10.8.0.0/16', via: '10.2.2.254', link: 'm0.20' }], rules: [{ priority: 10, fwmark: 3, table: 7 }] },
    ] as never, "a's route stays, its gateway now on no address of the link: written onlink, as it is held");
    const per = (await s.show('config', { perShard: true })) as Per<unknown>;
    assert.equal(per[1]!.data, per[0]!.data, 'every shard holds the same configuration');
    const single = createStack(running);
    try {
      const view = async (show: (k: string) => unknown) => { const v = await configView(show); delete v.vs; delete v.limits; return v; };
      assert.equal(await view((k) => single.show(k)), await view((k) => s.show(k)), 'a single stack from it has the same links, addresses, routes and rules');
    } finally {
      single.close();
    }
  } finally {
    await srv.close();
    await s.close();
  }
});

test('shards in one thread (virtual time, with traffic): flush and clear reach every shard; the answer names each entry once', async () => {
  const w = shardWorld();
  try {
    // Each shard sends datagrams to the peer, which answers ARP: every shard learns 10.1.1.2.
    const got: number[] = [];
    const sink = w.peer.engine.createUdpSocket(w.peer.vs, { type: 'udp4' });
    sink.on('message', () => got.push(1));
    sink.bind(9);
    w.group.stacks.forEach((st) => { const u = st.vs('a').createSocket('udp4'); for (let i = 0; i < 3; i++) u.send(Buffer.from('x'), 9, '10.1.1.2'); });
    assert.ok(await w.run(() => got.length === 6, 5_000_000), `datagrams delivered (${got.length})`);
    const per = w.group.show('neighbors', { perShard: true }) as { shard: number; data: Row[] }[];
    assert.ok(per.every((p) => p.data.some((n) => n.address === '10.1.1.2')), 'each shard knows the peer');
    const flushed = w.group.apply({ cmd: 'neighbor.flush', vs: 'a', address: '10.1.1.2' }) as { flushed: Row[] };
    assert.equal(flushed.flushed.map((r) => r.address), ['10.1.1.2'], 'one entry, though both shards had it');
    assert.ok(w.group.stacks.every((st) => !(st.show('neighbors') as Row[]).some((n) => n.address === '10.1.1.2')), 'gone from every shard');
    const tx = () => w.group.stacks.map((st) => ((st.show('counters') as { devices: Row[] }).devices[0]!.txPackets as number));
    assert.ok(tx().every((n) => n >= 3), `each shard sent (${tx()})`);
    assert.equal(w.group.apply({ cmd: 'counters.clear' }), { devices: 1, vs: 1, links: 1 });
    assert.equal(tx(), [0, 0], 'cleared in every shard');
    assert.equal((w.group.show('counters') as { vs: Row[] }).vs[0]!.drops, { total: 0, reasons: {} });
  } finally {
    w.group.close();
  }
});

test.run();
