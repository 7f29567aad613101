import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import { main } from '../stack/cli/cli';
import { runStack } from '../stack/cli/stack-commands';
import { createStack, Stack } from '../stack/stack';
import { ControlServer, controlRequest } from '../stack/control/control';
import { formatTable } from '../stack/control/format';
import { StackConfig } from '../stack/control/config';
import { Burst } from '../driver/types';
import { readCapture } from '../driver/pcap';
import { monotonicUs } from '../stack/runtime';
import { writeEth, ETH_P_ARP } from '../protocols/ethernet';
import { writeArp, ARP_REQUEST } from '../protocols/arp';
import { parseIpv4 } from '../protocols/ipv4';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-control-'));

function config(): StackConfig {
  return {
    name: 'ctl',
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [
      { name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }], routes: [{ dst: '10.9.0.0/16', via: '10.1.1.254' }] },
      { name: 'b', links: [{ device: 'm0', vlan: 20, addresses: ['10.1.1.1/24'] }] },
    ],
    services: [{ type: 'udp-echo', vs: 'a', port: 7 }],
  };
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

let stack: Stack;
let server: ControlServer;
let sock: string;

test.before(async () => {
  stack = createStack(config());
  sock = path.join(tmp, 'ctl.sock');
  server = await ControlServer.listen(stack, sock);
  stack.start();
});

test.after(async () => {
  await server.close();
  stack.close();
});

test('--per-shard on a stack without shards is a clear error, not ignored', async () => {
  const r = await cli(['show', 'vs', '--per-shard', '--socket', sock]);
  assert.is(r.code, 1);
  assert.match(r.err, /'perShard' lists the shards of a stack of shards; stack 'ctl' runs without shards/);
  assert.is(r.out, '');
});

test('show prints aligned tables and JSON', async () => {
  let r = await cli(['show', 'vs', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  const lines = r.out.split('\n');
  assert.match(lines[0]!, /^NAME\s+ID\s+LINKS\s+ADDRESSES\s+ROUTES/);
  assert.is(lines.length, 3);
  assert.match(lines[1]!, /^a\s+1\s+1\s+1\s+2\s+1/);
  r = await cli(['show', 'routes', '--vs', 'a', '--json', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  const routes = JSON.parse(r.out) as { dst: string; via: string | null; proto: string }[];
  assert.ok(routes.some((x) => x.dst === '10.9.0.0/16' && x.via === '10.1.1.254' && x.proto === 'static'));
  assert.ok(routes.some((x) => x.dst === '10.1.1.0/24' && x.via === null && x.proto === 'connected'));
  r = await cli(['show', 'links', '--socket', sock]);
  assert.match(r.out, /a\s+m0\.10\s+m0\s+10\s+02:00:00:00:00:01\s+1500\s+10\.1\.1\.1\/24/);
  r = await cli(['show', 'counters', '--vs', 'b', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /Virtual servers:\n\s+VS\s+RXPACKETS/);
  assert.not.match(r.out, /Devices:/);
  for (const k of ['addresses', 'neighbors', 'rules']) assert.is((await cli(['show', k, '--socket', sock])).code, 0, k);
});

test('runtime changes: vs add/del, address add/del, route add/del', async () => {
  let r = await cli(['vs', 'add', 'c', '--device', 'm0', '--vlan', '30', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  r = await cli(['address', 'add', '10.3.0.1/16', '--vs', 'c', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  r = await cli(['route', 'add', 'default', '--via', '10.3.0.254', '--vs', 'c', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  r = await cli(['route', 'add', '192.168.0.0/24', '--link', 'm0.30', '--table', '100', '--vs', 'c', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  let routes = stack.show('routes', { vs: 'c' }) as { dst: string; table: number }[];
  assert.ok(routes.some((x) => x.dst === 'default'));
  assert.ok(routes.some((x) => x.dst === '192.168.0.0/24' && x.table === 100));
  r = await cli(['route', 'del', 'default', '--vs', 'c', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  routes = stack.show('routes', { vs: 'c' }) as { dst: string; table: number }[];
  assert.not.ok(routes.some((x) => x.dst === 'default'));
  r = await cli(['address', 'del', '10.3.0.1/16', '--vs', 'c', '--link', 'm0.30', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  assert.is((stack.show('addresses', { vs: 'c' }) as unknown[]).length, 0);
  r = await cli(['vs', 'del', 'c', '--socket', sock]);
  assert.is(r.code, 0, r.err);
  assert.not.ok(stack.engine.vsByName.has('c'));
});

test('errors come back as clear messages with exit code 1; bad usage exits 2', async () => {
  let r = await cli(['vs', 'del', 'nope', '--socket', sock]);
  assert.is(r.code, 1);
  assert.match(r.err, /xdpstack: no virtual server 'nope'/);
  r = await cli(['vs', 'add', 'a', '--socket', sock]);
  assert.is(r.code, 1);
  assert.match(r.err, /virtual server 'a' already exists/);
  r = await cli(['address', 'add', '10.1.1.1/24', '--vs', 'b', '--socket', sock]);
  assert.is(r.code, 1);
  assert.match(r.err, /10\.1\.1\.1 is already used on device m0 VLAN 20 by virtual server 'b'/);
  r = await cli(['address', 'add', '10.1.1.300/24', '--vs', 'b', '--socket', sock]);
  assert.is(r.code, 1);
  assert.match(r.err, /not an IPv4 address/);
  r = await cli(['route', 'del', '10.77.0.0/16', '--vs', 'a', '--socket', sock]);
  assert.is(r.code, 1);
  assert.match(r.err, /has no route 10\.77\.0\.0\/16/);
  r = await cli(['show', 'links', '--vs', 'zz', '--socket', sock]);
  assert.is(r.code, 1);
  assert.match(r.err, /no virtual server 'zz'/);
  r = await cli(['show', 'bananas', '--socket', sock]);
  assert.is(r.code, 2);
  assert.match(r.err, /unknown kind 'bananas'/);
  r = await cli(['address', 'add', '10.1.1.9/24', '--socket', sock]);
  assert.is(r.code, 2);
  assert.match(r.err, /--vs NAME is required/);
  r = await cli(['show', 'vs', '--socket', path.join(tmp, 'absent.sock')]);
  assert.is(r.code, 1);
  assert.match(r.err, /no stack is listening on .*absent\.sock/);
  // Raw protocol: malformed lines get an error answer, the connection stays usable.
  const answers = await new Promise<string[]>((resolve) => {
    const c = net.connect(sock);
    let buf = '';
    c.on('data', (d) => { buf += d; if (buf.split('\n').length > 3) { c.end(); resolve(buf.trim().split('\n')); } });
    c.write('not json\n{"cmd":"nope"}\n{"cmd":"ping"}\n');
  });
  assert.match(JSON.parse(answers[0]!).error, /bad request/);
  assert.match(JSON.parse(answers[1]!).error, /unknown request 'nope'/);
  assert.is(JSON.parse(answers[2]!).data.name, 'ctl');
});

function arpFrom(stack: Stack, vlan: number, peerLast: number): void {
  const peer = stack.peer('m0');
  const b = new Burst();
  const f = peer.pool.alloc();
  const at = peer.pool.dataStart(f);
  const mac = Uint8Array.of(2, 0, 0, 0, 0, peerLast);
  const h = writeEth(peer.pool.bytes, at, Uint8Array.of(255, 255, 255, 255, 255, 255), 0, mac, 0, ETH_P_ARP, vlan);
  writeArp(peer.pool.bytes, at + h, ARP_REQUEST, mac, 0, parseIpv4('10.1.1.2'), new Uint8Array(6), 0, parseIpv4('10.1.1.1'));
  b.push(f, at, 60);
  peer.tx(b, monotonicUs());
}

function drainPeer(stack: Stack): void {
  const peer = stack.peer('m0');
  const b = new Burst();
  while (peer.rx(b, monotonicUs()) > 0) { for (let i = 0; i < b.n; i++) peer.pool.free(b.frame[i]!); b.n = 0; }
}

test('trace mirrors only the frames of the chosen VS into a pcap and stops after --count', async () => {
  const out = path.join(tmp, 'trace.pcap');
  const p = cli(['trace', '--vs', 'a', '--count', '4', '--out', out, '--socket', sock]);
  // Wait until the trace is active, then send ARP requests on both VLANs.
  for (let i = 0; i < 100 && !fs.existsSync(out); i++) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < 3; i++) {
    arpFrom(stack, 20, 0x20);
    arpFrom(stack, 10, 0x10);
    await new Promise((r) => setTimeout(r, 20));
    drainPeer(stack);
  }
  const r = await p;
  assert.is(r.code, 0, r.err);
  // The stop message (stderr) gives the counts: 4 captured, of the frames of VS a it saw.
  assert.match(r.err, /trace stopped: 4 frame\(s\) captured \(4 matched the filter of 4 seen\)/);
  assert.is(r.out, '', 'nothing on standard output');
  const recs = readCapture(out);
  assert.is(recs.length, 4);
  for (const x of recs) assert.is(((x.data[14]! & 0xf) << 8) | x.data[15]!, 10, 'only VLAN 10 (VS a)');
  // Requests in and replies out.
  assert.ok(recs.some((x) => x.data[25] === 1) && recs.some((x) => x.data[25] === 2));
  assert.ok(Math.abs(recs[0]!.tsUs / 1000 - Date.now()) < 60_000, `wall-clock timestamps: ${recs[0]!.tsUs}`);
  assert.is(stack.taps[0]!.traces.length, 0, 'trace detached');
});

test('a trace ends when its client disconnects', async () => {
  const out = path.join(tmp, 'trace2.pcap');
  const ac = new AbortController();
  const p = controlRequest(sock, { cmd: 'trace', out }, { onEvent: () => ac.abort(), signal: ac.signal });
  const r = await p;
  assert.is(r.event, 'aborted');
  for (let i = 0; i < 100 && stack.taps[0]!.traces.length; i++) await new Promise((res) => setTimeout(res, 10));
  assert.is(stack.taps[0]!.traces.length, 0);
  assert.ok(fs.existsSync(out));
  const bad = await controlRequest(sock, { cmd: 'trace', out: 'relative.pcap' });
  assert.is(bad.ok, false);
  assert.match(bad.error!, /absolute path/);
});

test('xdpstack run: control socket while running, removed after stop; a second instance is refused', async () => {
  const file = path.join(tmp, 'runme.json');
  const cfg = config();
  delete cfg.name;
  cfg.control = { socket: path.join(tmp, 'runme.sock') };
  fs.writeFileSync(file, JSON.stringify(cfg));
  let stop!: () => void;
  const stopped = new Promise<void>((r) => { stop = r; });
  const out: string[] = [];
  const ctx = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
  const running = runStack(file, {}, ctx, stopped);
  for (let i = 0; i < 100 && !fs.existsSync(cfg.control.socket!); i++) await new Promise((r) => setTimeout(r, 10));
  const r = await cli(['show', 'vs', '--json', '--socket', cfg.control.socket!]);
  assert.is(r.code, 0, r.err);
  assert.equal((JSON.parse(r.out) as { name: string }[]).map((v) => v.name), ['a', 'b']);
  await assert.not.throws(async () => undefined);
  let refused = '';
  try { await runStack(file, {}, ctx, Promise.resolve()); } catch (e) { refused = (e as Error).message; }
  assert.match(refused, /is in use: another stack named 'runme' is running/);
  stop();
  assert.is(await running, 0);
  assert.not.ok(fs.existsSync(cfg.control.socket!));
  assert.match(out.join('\n'), /stack 'runme' running: 1 device\(s\), 2 virtual server\(s\), control socket/);
});

test('formatTable aligns columns and right-aligns numbers', () => {
  const t = formatTable([{ name: 'a', n: 5, list: ['x', 'y'] }, { name: 'long', n: 1234, list: [] }]);
  assert.equal(t, ['NAME     N  LIST', 'a        5  x,y', 'long  1234  -']);
});

test.run();
