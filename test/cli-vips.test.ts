/**
 * The operator's side of direct server return behind an L4 load balancer: `xdpstack vip add|del`,
 * `xdpstack decap set|clear` and `xdpstack show vips` (text, JSON, rates), run as a user runs them
 * (bin/xdpstack.js in its own process) against a memory-driver stack whose peer end sends what a
 * load balancer sends: IPIP (RFC 2003) from its address to the server's, the client's packet to
 * the VIP inside. Usage errors exit 2 with the reason, refusals of the stack exit 1 with its
 * reason; `help vip` and `help decap` are the commands' usage.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { createStack, Stack } from '../stack/stack';
import { ControlServer } from '../stack/control/control';
import type { StackConfig } from '../stack/control/config';
import { ShardedStack } from '../stack/shard/threads';
import { Burst, parseMac } from '../driver/types';
import { monotonicUs } from '../stack/runtime';
import { arpFrame, BCAST, decode, ip, push, ZERO } from './lib/frames';
import { craftEncapsulated, ethFrame } from './lib/encap-frames';

type Row = Record<string, unknown>;

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'xdpstack.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-cli-vips-'));
const sock = path.join(tmp, 'dsr.sock');
const STACK_MAC = parseMac('02:00:00:00:00:01');
const LB_MAC = parseMac('02:00:00:00:00:64');
const VIP = '198.51.100.10';
const CLIENT = '203.0.113.5';

function config(): StackConfig {
  return {
    name: 'dsr',
    engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [
      {
        name: 'web', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }], routes: [{ dst: 'default', via: '10.1.1.254' }],
        vips: [VIP], decap: { from: ['10.1.1.100/32'] },
      },
      { name: 'plain', links: [{ device: 'm0', vlan: 20, addresses: ['10.2.2.1/24'] }] },
    ],
    // On every address of the VS (the VIP included): a VIP a service listens on could not be removed.
    services: [{ type: 'udp-echo', vs: 'web', port: 7 }],
  };
}

/** `xdpstack ARGS --socket SOCK` (null: no socket) in its own process: exit code, standard output and error. */
function cli(args: string[], target: string | null = sock): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args, ...(target !== null ? ['--socket', target] : [])], { timeout: 30_000, encoding: 'utf8' }, (e, out, err) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out: out.replace(/\n$/, ''), err: err.replace(/\n$/, '') });
    });
  });
}

/** `show vips --json` through the CLI. */
async function vips(...extra: string[]): Promise<Row[]> {
  const r = await cli(['show', 'vips', '--json', ...extra]);
  assert.is(r.code, 0, r.err);
  return JSON.parse(r.out) as Row[];
}

/** A `show vips` row with no traffic counted. */
function row(vs: string, v: string[], from: string[], overhead: number, overheadDefault: boolean): Row {
  return { vs, vips: v, from, overhead, overheadDefault, decapsulated: 0, refusedSource: 0, refusedVip: 0, drops: { total: 0, reasons: {} } };
}

let stack: Stack;
let server: ControlServer;

function inject(frames: Uint8Array[]): void {
  const peer = stack.peer('m0');
  const b = new Burst(Math.max(64, frames.length));
  for (const f of frames) push(peer.pool, b, f);
  assert.is(peer.tx(b, monotonicUs()), frames.length, 'the memory wire took every frame');
}

/** Takes what the stack sent to the other end, decoded. */
function drainPeer(): ReturnType<typeof decode>[] {
  const peer = stack.peer('m0');
  const b = new Burst();
  const out: ReturnType<typeof decode>[] = [];
  for (let i = 0; i < 1000 && peer.rx(b, monotonicUs()) > 0; i++) {
    for (let k = 0; k < b.n; k++) { out.push(decode(peer.pool.bytes, b.off[k]!, b.len[k]!)); peer.pool.free(b.frame[k]!); }
    b.n = 0;
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The load balancer 10.1.1.100 (or `src`) sends the stack `n` client datagrams to `dst`:7, encapsulated. */
function fromLb(n: number, opts: { src?: string; dst?: string; fragment?: boolean } = {}): Uint8Array[] {
  const outer = { src: opts.src ?? '10.1.1.100', dst: '10.1.1.1', ...(opts.fragment ? { fragment: { offset: 0, more: true } } : {}) };
  return Array.from({ length: n }, (_, i) => ethFrame(craftEncapsulated({
    outer, inner: { src: CLIENT, dst: opts.dst ?? VIP, sport: 40000 + i, dport: 7, payload: new Uint8Array(16).fill(i) },
  }), { dst: STACK_MAC, src: LB_MAC, vlan: 10 }));
}

/** `show vips --json` of VS web, read in this process. */
const webRow = () => (stack.show('vips', { vs: 'web' }) as Row[])[0]!;

test.before(async () => {
  stack = createStack(config(), { log: () => {} });
  server = await ControlServer.listen(stack, sock);
  stack.start();
  // The gateway 10.1.1.254 announces itself: replies to the client need no ARP.
  inject([arpFrame(1, 10, BCAST, parseMac('02:00:00:00:00:fe'), '10.1.1.254', ZERO, '10.1.1.1')]);
  await until(() => (stack.show('neighbors') as Row[]).length === 1, 'the gateway learned');
  drainPeer();
});

test.after(async () => {
  await server.close();
  stack.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// help and usage

test('help vip / help decap (and each subcommand) print their usage, as --help does; the top-level help lists them', async () => {
  for (const p of [['vip'], ['vip', 'add'], ['vip', 'del'], ['decap'], ['decap', 'set'], ['decap', 'clear']]) {
    const h = await cli(['help', ...p], null);
    const d = await cli([...p, '--help'], null);
    assert.is(h.code, 0, `help ${p.join(' ')}: ${h.err}`);
    assert.is(d.code, 0, `${p.join(' ')} --help: ${d.err}`);
    assert.is(h.out, d.out, `help ${p.join(' ')}`);
    assert.match(h.out, new RegExp(`^Usage: xdpstack ${p.join(' ')}`), `help ${p.join(' ')}`);
  }
  assert.match((await cli(['help', 'vip'], null)).out, /\n {2}add\s+add a VIP\n {2}del\s+remove a VIP$/);
  assert.match((await cli(['help', 'decap'], null)).out, /\n {2}set\s+set the load balancers .*\n {2}clear\s+take encapsulated traffic from no load balancer$/);
  const set = (await cli(['help', 'decap', 'set'], null)).out;
  assert.match(set, /^Usage: xdpstack decap set --vs NAME --from CIDR\[,CIDR\.\.\.\] \[--overhead N\]/);
  assert.match(set, /--overhead N +bytes their encapsulation adds, 0\.\.512/);
  assert.match((await cli(['help', 'vip', 'add'], null)).out, /^Usage: xdpstack vip add ADDR --vs NAME/);
  assert.match((await cli(['help', 'show'], null)).out, /'vips': per virtual server with VIPs or load balancers/);
  const top = await cli(['help'], null);
  assert.match(top.out, /\n {2}vip\s+add or remove a VIP \(direct server return\) in a running stack/);
  assert.match(top.out, /\n {2}decap\s+set or clear the load balancers a virtual server takes encapsulated traffic from/);
  assert.match(top.out, /show\s+show .*VIPs/);
});

test('usage errors: exit code 2, the reason and a "did you mean" for typos; the stack unchanged', async () => {
  const before = await vips();
  const cases: [string[], RegExp][] = [
    [['vip', 'add', '--vs', 'web'], /^xdpstack: expected an address like 198\.51\.100\.10 or 2001:db8::10$/m],
    [['vip', 'add', '192.0.2.1'], /^xdpstack: option --vs NAME is required$/m],
    [['vip', 'add', '192.0.2.1', '192.0.2.2', '--vs', 'web'], /^xdpstack: unexpected argument '192\.0\.2\.2'$/m],
    [['vip', 'dle', '192.0.2.1', '--vs', 'web'], /^xdpstack: unknown command 'dle' \(did you mean 'del'\?\)$/m],
    [['vpi', 'add', '192.0.2.1', '--vs', 'web'], /^xdpstack: unknown command 'vpi' \(did you mean 'vip'\?\)$/m],
    [['vip', 'add', '192.0.2.1', '--vss', 'web'], /^xdpstack: unknown option '--vss' \(did you mean '--vs'\?\)$/m],
    [['vip', 'add', '192.0.2.1', '-vs', 'web'], /^xdpstack: unexpected argument '-vs' \(did you mean '--vs'\?\)$/m],
    [['decap', 'set', '--vs', 'web'], /^xdpstack: option --from CIDR\[,CIDR\.\.\.\] is required \('xdpstack decap clear' takes none\)$/m],
    [['decap', 'set', '--from', '10.1.1.100/32'], /^xdpstack: option --vs NAME is required$/m],
    [['decap', 'set', '--vs', 'web', '--from'], /^xdpstack: option '--from' needs a value$/m],
    [['decap', 'set', '--vs', 'web', '--from', '10.1.1.100/32,'], /^xdpstack: option '--from' expects a comma-separated list, got '10\.1\.1\.100\/32,'$/m],
    [['decap', 'set', '--vs', 'web', '--from', '10.1.1.100/32', '--overhead', '-1'], /^xdpstack: option '--overhead' expects a non-negative integer, got '-1'$/m],
    [['decap', 'set', '--vs', 'web', '--from', '10.1.1.100/32', '--overhead', 'big'], /^xdpstack: option '--overhead' expects a non-negative integer, got 'big'$/m],
    [['decap', 'set', '--vs', 'web', '--frmo', '10.1.1.100/32'], /^xdpstack: unknown option '--frmo' \(did you mean '--from'\?\)$/m],
    [['decap', 'set', '--vs', 'web', '--from', '10.1.1.100/32', '--overheda', '20'], /^xdpstack: unknown option '--overheda' \(did you mean '--overhead'\?\)$/m],
    [['decap', 'set', '10.1.1.100/32', '--vs', 'web'], /^xdpstack: unexpected argument '10\.1\.1\.100\/32'$/m],
    [['decap', 'claer', '--vs', 'web'], /^xdpstack: unknown command 'claer' \(did you mean 'clear'\?\)$/m],
    [['deacp', 'clear', '--vs', 'web'], /^xdpstack: unknown command 'deacp' \(did you mean 'decap'\?\)$/m],
    [['decap', 'clear'], /^xdpstack: option --vs NAME is required$/m],
    [['decap', 'clear', '--vs', 'web', '--from', '10.1.1.100/32'], /^xdpstack: unknown option '--from'$/m],
    [['show', 'vpis'], /^xdpstack: unknown kind 'vpis' \(did you mean 'vips'\?\)/m],
    [['show', 'vips', '--state', 'established'], /^xdpstack: --state narrows 'show connections' only$/m],
  ];
  for (const [args, re] of cases) {
    const r = await cli(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re, args.join(' '));
    assert.is(r.out, '', `${args.join(' ')}: nothing on standard output`);
  }
  // No subcommand: the usage, on standard error.
  const none = await cli(['vip'], null);
  assert.is(none.code, 2);
  assert.match(none.err, /^Usage: xdpstack vip add\|del ADDR --vs NAME/);
  // A usage error shows the command's usage after the reason.
  const r = await cli(['decap', 'set', '--vs', 'web']);
  assert.match(r.err, /\nUsage: xdpstack decap set --vs NAME --from CIDR/);
  assert.equal(await vips(), before, 'nothing changed');
});

test("refused by the stack: exit code 1 and the stack's reason (the validator's); nothing changed", async () => {
  const before = await vips();
  const cases: [string[], RegExp][] = [
    [['vip', 'add', '10.1.1.1', '--vs', 'web'], /^xdpstack: virtual server 'web': VIP: 10\.1\.1\.1 is an address of link 'm0\.10' of virtual server 'web': a VIP is not an interface address/],
    [['vip', 'add', '198.51.100.0/24', '--vs', 'web'], /^xdpstack: virtual server 'web': VIP: "198\.51\.100\.0\/24": a VIP is one address, written without a prefix length$/],
    [['vip', 'add', 'fe80::10', '--vs', 'web'], /^xdpstack: virtual server 'web': VIP: fe80::10 is link-local/],
    [['vip', 'add', VIP, '--vs', 'web'], /^xdpstack: virtual server 'web': VIP: 198\.51\.100\.10 is already a VIP of virtual server 'web'$/],
    [['vip', 'add', '198.51.100.300', '--vs', 'web'], /^xdpstack: virtual server 'web': VIP: /],
    [['vip', 'del', '192.0.2.99', '--vs', 'web'], /^xdpstack: virtual server 'web' has no VIP 192\.0\.2\.99$/],
    [['vip', 'add', '192.0.2.1', '--vs', 'nope'], /^xdpstack: no virtual server 'nope'/],
    [['decap', 'set', '--vs', 'web', '--from', '10.1.1.1/24'], /^xdpstack: virtual server 'web': decap: from\[0\]: 10\.1\.1\.1\/24 has host bits set \(did you mean 10\.1\.1\.0\/24\?\)$/],
    [['decap', 'set', '--vs', 'web', '--from', '10.1.1.100/32,10.1.1.100/32'], /^xdpstack: virtual server 'web': decap: from\[1\]: 10\.1\.1\.100\/32 is listed twice$/],
    [['decap', 'set', '--vs', 'web', '--from', '10.1.1.100/32', '--overhead', '513'], /^xdpstack: virtual server 'web': decap: overhead: must be 0\.\.512, got 513$/],
    [['decap', 'clear', '--vs', 'nope'], /^xdpstack: no virtual server 'nope'/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(args);
    assert.is(r.code, 1, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re, args.join(' '));
    assert.not.match(r.err, /Usage:/, 'not a usage error');
  }
  assert.equal(await vips(), before, 'nothing changed');
});

// ---------------------------------------------------------------------------------------------
// changes and show vips

test('vip add|del and decap set|clear change what show vips says (JSON and text); a VS without either is listed only by name', async () => {
  // As configured: one VIP, one IPv4 load balancer, the overhead of an IPv4 header (20) by default.
  assert.equal(await vips(), [row('web', [VIP], ['10.1.1.100/32'], 20, true)], "the config's VIP and load balancer; 'plain' has neither");
  let t = await cli(['show', 'vips']);
  assert.is(t.code, 0, t.err);
  assert.equal(t.out.split('\n'), [
    'VS   VIPS           FROM           OVERHEAD      DECAPSULATED  REFUSEDSOURCE  REFUSEDVIP  DROPS',
    'web  198.51.100.10  10.1.1.100/32  20 (default)             0              0           0      0',
  ]);
  assert.equal(await vips('--vs', 'plain'), [row('plain', [], [], 20, true)], 'asked by name: listed with neither');
  assert.match((await cli(['show', 'vips', '--vs', 'plain'])).out, /\nplain +- +none +20 \(default\) +0 +0 +0 +0$/, 'no VIP: -, no load balancer: none');

  // An IPv6 VIP and an IPv6 load balancer: the default overhead becomes an IPv6 header's (40).
  for (const c of [['vip', 'add', '2001:db8::10', '--vs', 'web'], ['decap', 'set', '--vs', 'web', '--from', '10.1.1.100/32,fd00:1::100/128']]) {
    const r = await cli(c);
    assert.is(r.code, 0, `${c.join(' ')}: ${r.err}`);
    assert.is(r.out, '', `${c.join(' ')}: quiet on success, as address/route/rule`);
  }
  assert.equal(await vips(), [row('web', [VIP, '2001:db8::10'], ['10.1.1.100/32', 'fd00:1::100/128'], 40, true)]);
  t = await cli(['show', 'vips']);
  assert.match(t.out, /\nweb {2}198\.51\.100\.10,2001:db8::10 {2}10\.1\.1\.100\/32,fd00:1::100\/128 {2}40 \(default\) +0 +0 +0 +0$/);

  // A configured overhead: shown as a number, no longer the default; `set` replaces the list.
  assert.is((await cli(['decap', 'set', '--vs', 'web', '--from', '10.1.1.96/28', '--overhead', '28'])).code, 0);
  assert.equal(await vips(), [row('web', [VIP, '2001:db8::10'], ['10.1.1.96/28'], 28, false)]);
  t = await cli(['show', 'vips']);
  assert.match(t.out, /^VS +VIPS +FROM +OVERHEAD +DECAPSULATED/);
  assert.match(t.out, /\nweb {2}198\.51\.100\.10,2001:db8::10 {2}10\.1\.1\.96\/28 +28 +0 +0 +0 +0$/);
  // Set again without --overhead: the default again.
  assert.is((await cli(['decap', 'set', '--vs', 'web', '--from', '10.1.1.96/28'])).code, 0);
  assert.equal((await vips())[0]!.overhead, 20);
  assert.equal((await vips())[0]!.overheadDefault, true);

  // decap clear: no load balancer (nothing encapsulated is taken), the overhead forgotten, the VIPs kept.
  assert.is((await cli(['decap', 'set', '--vs', 'web', '--from', '10.1.1.96/28', '--overhead', '60'])).code, 0);
  let r = await cli(['decap', 'clear', '--vs', 'web']);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, '');
  assert.equal(await vips(), [row('web', [VIP, '2001:db8::10'], [], 20, true)]);
  t = await cli(['show', 'vips']);
  assert.match(t.out, /\nweb {2}198\.51\.100\.10,2001:db8::10 {2}none {2}20 \(default\) +0 +0 +0 +0$/, 'FROM says none');

  // vip del: the last one gone (and no load balancer): the VS is no longer listed.
  r = await cli(['vip', 'del', '2001:db8::10', '--vs', 'web']);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, '');
  assert.equal((await vips())[0]!.vips, [VIP]);
  assert.is((await cli(['vip', 'del', VIP, '--vs', 'web'])).code, 0);
  assert.equal(await vips(), []);
  assert.is((await cli(['show', 'vips'])).out, '(none)');
  assert.equal(await vips('--vs', 'web'), [row('web', [], [], 20, true)]);

  // As configured again, for the tests that follow.
  for (const c of [['vip', 'add', VIP, '--vs', 'web'], ['decap', 'set', '--vs', 'web', '--from', '10.1.1.100/32']]) {
    r = await cli(c);
    assert.is(r.code, 0, `${c.join(' ')}: ${r.err}`);
  }
  assert.equal(await vips(), [row('web', [VIP], ['10.1.1.100/32'], 20, true)]);
});

test('traffic from the load balancer: decapsulated and answered from the VIP; refusals counted by reason in show vips', async () => {
  assert.is((await cli(['clear', 'counters', '--vs', 'web'])).code, 0);
  // 5 datagrams to the VIP from the load balancer; 3 from an address not in decap.from; 2 whose
  // inner destination is no VIP; 1 outer fragment (RFC 791 MF set) from that address too (refused
  // before it takes reassembly memory).
  inject([...fromLb(5), ...fromLb(3, { src: '10.1.1.50' }), ...fromLb(2, { dst: '198.51.100.99' }), ...fromLb(1, { fragment: true, src: '10.1.1.50' })]);
  await until(() => webRow().decapsulated === 5 && (webRow().drops as { total: number }).total === 6, 'the 11 frames counted');
  const sent = drainPeer().filter((d) => d.udp);
  // The udp-echo service answers each from the VIP straight to the client (not to the load balancer).
  assert.is(sent.length, 5, 'one echo per datagram taken');
  for (const d of sent) {
    assert.equal([d.ipv4!.src, d.ipv4!.dst, d.ipv4!.proto, d.udp!.srcPort], [ip(VIP), ip(CLIENT), 17, 7], 'from the VIP to the client, plain UDP');
  }
  const want = {
    vs: 'web', vips: [VIP], from: ['10.1.1.100/32'], overhead: 20, overheadDefault: true, decapsulated: 5, refusedSource: 4, refusedVip: 2,
    drops: { total: 6, reasons: { 'decap-source-refused': 4, 'decap-not-vip': 2 } },
  };
  assert.equal(await vips(), [want]);
  const t = await cli(['show', 'vips']);
  assert.is(t.code, 0, t.err);
  assert.equal(t.out.split('\n'), [
    'VS   VIPS           FROM           OVERHEAD      DECAPSULATED  REFUSEDSOURCE  REFUSEDVIP  DROPS',
    'web  198.51.100.10  10.1.1.100/32  20 (default)             5              4           2      6',
    '',
    'Drops by reason:',
    '  VS   REASON                COUNT',
    '  web  decap-source-refused      4',
    '  web  decap-not-vip             2',
  ]);
  // The same drops are the VS's in show counters.
  const counters = JSON.parse((await cli(['show', 'counters', '--vs', 'web', '--json'])).out) as { vs: Row[] };
  const reasons = (counters.vs[0]!.drops as { reasons: Record<string, number> }).reasons;
  assert.equal([reasons['decap-source-refused'], reasons['decap-not-vip'], reasons['decap-fragmented']], [4, 2, undefined]);

  // decap clear: from no load balancer any more, so the load balancer's own packets are refused too.
  assert.is((await cli(['decap', 'clear', '--vs', 'web'])).code, 0);
  inject(fromLb(4));
  await until(() => webRow().refusedSource === 8, 'the 4 refused');
  assert.is(webRow().decapsulated, 5, 'none taken');
  assert.equal(drainPeer().filter((d) => d.udp), [], 'nothing answered');
  assert.is((await cli(['decap', 'set', '--vs', 'web', '--from', '10.1.1.100/32'])).code, 0);
  // clear counters zeroes them (the VIPs and load balancers stay).
  assert.is((await cli(['clear', 'counters', '--vs', 'web'])).code, 0);
  assert.equal(await vips(), [row('web', [VIP], ['10.1.1.100/32'], 20, true)]);
});

// ---------------------------------------------------------------------------------------------
// rates

test('show vips --interval --count --json: rate × measured interval = the packets sent between two samples; settings as they are', async () => {
  // Between samples 1 and 2 the load balancer sends 12 datagrams and a stranger 4; between
  // samples 2 and 3, 30 datagrams.
  const batches = [() => [...fromLb(12), ...fromLb(4, { src: '10.1.1.50' })], () => fromLb(30)];
  const child = spawn(process.execPath, [BIN, 'show', 'vips', '--interval', '1', '--count', '3', '--json', '--socket', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let err = '';
  let buf = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      const b = batches[lines.length - 1];
      if (b) inject(b());
      drainPeer();
    }
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(killer);
  assert.is(code, 0, err);
  assert.is(lines.length, 3, 'one JSON object per line and sample');
  const taken = [0, 12, 30];
  const refused = [0, 4, 0];
  lines.forEach((l, i) => {
    const s = JSON.parse(l) as { kind: string; interval: number; rates: Row[] };
    assert.is(s.kind, 'vips');
    assert.ok(s.interval > 0 && s.interval < 30, `line ${i}: measured interval ${s.interval} s`);
    assert.is(s.rates.length, 1);
    const r = s.rates[0]!;
    const near = (x: unknown, want: number, what: string) =>
      assert.ok(Math.abs((x as number) * s.interval - want) < 0.05, `line ${i}: ${what}: ${x}/s × ${s.interval} s, sent ${want}`);
    near(r.decapsulated, taken[i]!, 'decapsulated');
    near(r.refusedSource, refused[i]!, 'refusedSource');
    near(r.refusedVip, 0, 'refusedVip');
    near((r.drops as { total: number }).total, refused[i]!, 'drops');
    // Not counters: as they are.
    assert.equal([r.vs, r.vips, r.from, r.overhead, r.overheadDefault], ['web', [VIP], ['10.1.1.100/32'], 20, true], `line ${i}: settings`);
  });
  drainPeer();
});

test('show vips --interval (text): the per-second table under the measured interval, the overhead as it is', async () => {
  const r = await cli(['show', 'vips', '--interval', '0.2', '--count', '1']);
  assert.is(r.code, 0, r.err);
  const lines = r.out.split('\n');
  assert.match(lines[0]!, /^vips per second over \d+\.\d{3} s, at \d{4}-\d\d-\d\dT/);
  assert.match(lines[1]!, /^VS\s+VIPS\s+FROM\s+OVERHEAD\s+DECAPSULATED\s+REFUSEDSOURCE\s+REFUSEDVIP\s+DROPS$/);
  assert.match(lines[2]!, /^web {2}198\.51\.100\.10 {2}10\.1\.1\.100\/32 {2}20 \(default\) +0 +0 +0 +0$/, 'no traffic: rates 0');
  const bad = await cli(['show', 'routes', '--interval', '1']);
  assert.is(bad.code, 2);
  assert.match(bad.err, /--interval gives rates of counters: it is for counters, vs, limits, vips, not 'routes'/);
});

// ---------------------------------------------------------------------------------------------
// a stack of shards

test('a stack of shards: vip and decap reach every shard; show vips lists each VIP once, per shard with --per-shard', async () => {
  const cfg = config();
  cfg.name = 'dsr-shards';
  const s = await ShardedStack.start(cfg, { shards: 2, log: () => {} });
  const ssock = path.join(tmp, 'shards.sock');
  const srv = await ControlServer.listen(s, ssock);
  try {
    for (const c of [['vip', 'add', '2001:db8::10', '--vs', 'web'], ['decap', 'set', '--vs', 'web', '--from', '10.1.1.100/32,fd00:1::100/128', '--overhead', '48'],
      ['vip', 'add', '192.0.2.7', '--vs', 'plain']]) {
      const r = await cli(c, ssock);
      assert.is(r.code, 0, `${c.join(' ')}: ${r.err}`);
    }
    const r = await cli(['show', 'vips', '--json'], ssock);
    assert.is(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out), [
      row('web', [VIP, '2001:db8::10'], ['10.1.1.100/32', 'fd00:1::100/128'], 48, false),
      row('plain', ['192.0.2.7'], [], 20, true),
    ]);
    const per = JSON.parse((await cli(['show', 'vips', '--json', '--per-shard'], ssock)).out) as { shard: number; data: Row[] }[];
    assert.equal(per.map((p) => p.shard), [0, 1]);
    assert.equal(per[1]!.data, per[0]!.data, 'every shard holds the same');
    const text = await cli(['show', 'vips', '--per-shard'], ssock);
    assert.match(text.out, /^Shard 0:\n {2}VS +VIPS/);
    assert.match(text.out, /\nShard 1:\n {2}VS +VIPS/);
    const bad = await cli(['vip', 'del', '192.0.2.8', '--vs', 'plain'], ssock);
    assert.is(bad.code, 1);
    assert.match(bad.err, /virtual server 'plain' has no VIP 192\.0\.2\.8/);
  } finally {
    await srv.close();
    await s.close();
  }
});

test.run();
