/**
 * `xdpstack trace --out -`: the capture on standard output, as `tcpdump -w -` gives it. The CLI
 * runs as its own process (bin/xdpstack.js) against a running stack's control socket, its output
 * piped into `tshark -r -`: tshark must read exactly the frames asked for, with the filter's fields
 * and strictly increasing times; nothing but the capture may reach stdout. A reader that goes away
 * (`| head -c 100`) and Ctrl-C end the trace cleanly, with the counts on stderr. A stack of shards
 * streams too: both shards' frames, merged by time as they come.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, ChildProcess } from 'node:child_process';
import { createStack, Stack } from '../stack/stack';
import { ControlServer } from '../stack/control/control';
import { ShardedStack } from '../stack/shard/threads';
import type { StackConfig } from '../stack/control/config';
import { Burst } from '../driver/types';
import { monotonicUs } from '../stack/runtime';
import { ARP_REQUEST } from '../protocols/arp';
import { arpFrame, BCAST, ZERO } from './lib/frames';
import { parseMac } from '../driver/types';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'xdpstack.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-trace-stdout-'));
const PEER10 = parseMac('02:00:00:00:00:02');
const PEER20 = parseMac('02:00:00:00:00:03');

function config(): StackConfig {
  return {
    name: 'ts',
    engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [
      { name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }] },
      { name: 'b', links: [{ device: 'm0', vlan: 20, addresses: ['10.1.1.1/24'] }] },
    ],
  } as StackConfig;
}

interface Run { code: number | null; signal: string | null; stdout: Buffer; stderr: string }

/** Collects a child's output and its end; `ms` bounds it (then it is killed and the test fails). */
function finished(child: ChildProcess, ms: number, what: string): Promise<Run> {
  const out: Buffer[] = [];
  let err = '';
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${what}: still running after ${ms} ms; stderr: ${err}`)); }, ms);
    child.on('close', (code, signal) => { clearTimeout(t); resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }); });
  });
}

const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;

/**
 * A shell pipeline `xdpstack trace --out - ARGS | READER` (a real pipe, as a shell makes it:
 * `tshark -r -` refuses the socket pair Node would give): each side's exit status and stderr, and
 * the reader's stdout.
 */
async function pipeline(args: string[], reader: string[], ms = 30_000): Promise<{ trace: Run; reader: Run }> {
  const k = Math.random().toString(36).slice(2);
  const errT = path.join(dir, `t-${k}.err`);
  const errR = path.join(dir, `r-${k}.err`);
  const cmd = `${q(process.execPath)} ${q(BIN)} trace --out - ${args.map(q).join(' ')} 2>${q(errT)} | ${reader.map(q).join(' ')} 2>${q(errR)}; ` +
    'echo "status ${PIPESTATUS[0]} ${PIPESTATUS[1]}" >&2';
  const sh = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  const r = await finished(sh, ms, 'pipeline');
  const m = /status (\d+) (\d+)/.exec(r.stderr);
  if (!m) throw new Error(`pipeline gave no status: ${r.stderr}`);
  const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
  return {
    trace: { code: Number(m[1]), signal: null, stdout: Buffer.alloc(0), stderr: read(errT) },
    reader: { code: Number(m[2]), signal: null, stdout: r.stdout, stderr: read(errR) },
  };
}

/** `xdpstack trace ARGS --out -` piped into `tshark -r - -T fields -e ...`: both results and tshark's rows. */
async function traceIntoTshark(sock: string, args: string[], fields: string[]): Promise<{ trace: Run; tshark: Run; rows: string[][] }> {
  const { trace, reader } = await pipeline([...args, '--socket', sock], ['tshark', '-n', '-r', '-', '-T', 'fields', '-E', 'separator=,', ...fields.flatMap((f) => ['-e', f])]);
  const rows = reader.stdout.toString().trim().split('\n').filter((l) => l).map((l) => l.split(','));
  return { trace, tshark: reader, rows };
}

const strictlyIncreasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);

let stack: Stack;
let server: ControlServer;
let sock: string;
let traffic: NodeJS.Timeout;

test.before(async () => {
  stack = createStack(config());
  sock = path.join(dir, 'ts.sock');
  server = await ControlServer.listen(stack, sock);
  stack.start();
  // The peer asks both VSes for their MAC every 5 ms: requests in, replies out on VLANs 10 and 20.
  const peer = stack.peer('m0');
  const f10 = arpFrame(ARP_REQUEST, 10, BCAST, PEER10, '10.1.1.2', ZERO, '10.1.1.1');
  const f20 = arpFrame(ARP_REQUEST, 20, BCAST, PEER20, '10.1.1.3', ZERO, '10.1.1.1');
  const b = new Burst();
  traffic = setInterval(() => {
    const now = monotonicUs();
    while (peer.rx(b, now) > 0) { for (let i = 0; i < b.n; i++) peer.pool.free(b.frame[i]!); b.n = 0; }
    for (const f of [f10, f20]) {
      const fr = peer.pool.alloc();
      if (fr < 0) continue;
      const at = peer.pool.dataStart(fr);
      peer.pool.bytes.set(f, at);
      b.push(fr, at, f.length);
    }
    peer.tx(b, now);
    b.n = 0;
  }, 5);
});

test.after(async () => {
  clearInterval(traffic);
  await server.close();
  stack.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('trace --out - --count 10 | tshark -r -: ten frames, in time order, nothing else on stdout', async () => {
  const { trace, tshark, rows } = await traceIntoTshark(sock, ['--count', '10'], ['frame.time_epoch', 'vlan.id', 'arp.opcode']);
  assert.is(trace.code, 0, trace.stderr);
  assert.is(tshark.code, 0, tshark.stderr);
  assert.is(rows.length, 10, `tshark read ${rows.length} frames`);
  assert.ok(strictlyIncreasing(rows.map((r) => Number(r[0]))), 'times strictly increase');
  assert.ok(rows.every((r) => r[1] === '10' || r[1] === '20'));
  assert.ok(rows.some((r) => r[2] === '1') && rows.some((r) => r[2] === '2'), 'requests and replies');
  assert.match(trace.stderr, /trace stopped: 10 frame\(s\) captured \(10 matched the filter of 10 seen\)/);
  assert.not.match(trace.stderr, /\n\s+at /, 'no stack trace');
  assert.is(stack.taps[0]!.traces.length, 0, 'the trace is detached');
});

test('filters: --vs a --proto arp --host 10.1.1.2 gives only VS a\'s ARP with 10.1.1.2; --vlan 20 only VLAN 20', async () => {
  const one = await traceIntoTshark(sock, ['--vs', 'a', '--proto', 'arp', '--host', '10.1.1.2', '--count', '6'], ['vlan.id', 'arp.src.proto_ipv4', 'arp.dst.proto_ipv4']);
  assert.is(one.trace.code, 0, one.trace.stderr);
  assert.is(one.rows.length, 6);
  for (const r of one.rows) {
    assert.is(r[0], '10');
    assert.ok(r[1] === '10.1.1.2' || r[2] === '10.1.1.2', r.join(','));
  }
  // Frames of VS b were seen (same device) but not matched: seen counts the VS's links only.
  assert.match(one.trace.stderr, /6 frame\(s\) captured \(6 matched the filter of \d+ seen\)/);
  assert.match(one.trace.stderr, /tracing virtual server 'a' \(host 10\.1\.1\.2 and arp\)/);
  const two = await traceIntoTshark(sock, ['--vlan', '20', '--count', '4'], ['vlan.id']);
  assert.is(two.trace.code, 0, two.trace.stderr);
  assert.equal(two.rows.map((r) => r[0]), ['20', '20', '20', '20']);
  const m = /4 frame\(s\) captured \(4 matched the filter of (\d+) seen\)/.exec(two.trace.stderr);
  assert.ok(m && Number(m[1]) >= 7, `frames of both VLANs seen, half matched: ${two.trace.stderr}`);
});

test('bad filters are usage errors (exit 2), before anything is asked of the stack', async () => {
  for (const [args, re] of [
    [['--vlan', '5000'], /bad filter: vlan must be a VLAN id 0\.\.4094, got 5000/],
    [['--proto', 'sctp'], /bad filter: proto must be one of tcp, udp, icmp, icmp6, arp, ipv4, ipv6/],
    [['--host', 'nohost'], /bad filter: host must be an IPv4 or IPv6 address/],
    [['--port', '99999'], /bad filter: port must be a TCP\/UDP port/],
  ] as [string[], RegExp][]) {
    const c = spawn(process.execPath, [BIN, 'trace', '--out', '-', ...args, '--socket', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
    const r = await finished(c, 10_000, 'xdpstack trace');
    assert.is(r.code, 2, args.join(' '));
    assert.match(r.stderr, re);
    assert.is(r.stdout.length, 0, 'nothing on stdout');
  }
});

test('a reader that goes away (| head -c 100) ends the trace cleanly', async () => {
  const { trace, reader } = await pipeline(['--socket', sock], ['head', '-c', '100'], 15_000);
  assert.is(reader.code, 0);
  assert.is(reader.stdout.length, 100);
  assert.is(reader.stdout.readUInt32LE(0), 0xa1b2c3d4, 'the capture starts with the pcap magic');
  assert.is(trace.code, 0, trace.stderr);
  assert.match(trace.stderr, /trace stopped: the reader closed standard output; \d+ frame\(s\) captured/);
  assert.not.match(trace.stderr, /\n\s+at |EPIPE/, 'no stack trace, no raw error');
  for (let i = 0; i < 100 && stack.taps[0]!.traces.length; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(stack.taps[0]!.traces.length, 0, 'the stack stopped the trace');
});

test('Ctrl-C: the capture so far is whole (tshark reads every frame the counts say) and the counts go to stderr', async () => {
  const out = path.join(dir, 'sigint.pcap');
  const fd = fs.openSync(out, 'w');
  const tr = spawn(process.execPath, [BIN, 'trace', '--out', '-', '--vs', 'b', '--socket', sock], { stdio: ['ignore', fd, 'pipe'] });
  fs.closeSync(fd);
  let err = '';
  tr.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  for (let i = 0; i < 200 && !/tracing/.test(err); i++) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 400));
  tr.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => tr.on('close', (c) => resolve(c)));
  assert.is(code, 0, err);
  const m = /trace stopped: (\d+) frame\(s\) captured/.exec(err);
  assert.ok(m, err);
  const n = Number(m![1]);
  assert.ok(n > 20, `frames captured in 400 ms of ARP every 5 ms: ${n}`);
  const ts = spawn('tshark', ['-n', '-r', out, '-T', 'fields', '-e', 'vlan.id'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const r = await finished(ts, 30_000, 'tshark');
  assert.is(r.code, 0, r.stderr);
  const vlans = r.stdout.toString().trim().split('\n');
  assert.is(vlans.length, n, 'every frame counted is in the capture');
  assert.ok(vlans.every((v) => v === '20'), 'VS b only');
});

test('a stack of shards streams both shards\' frames, merged by time as they come', async () => {
  // Each shard sends a numbered broadcast datagram every 5 ms.
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, `module.exports = (stack, { shard }) => {
    const s = stack.vs('a').createSocket('udp4');
    s.bind(0, () => s.setBroadcast(true)); // as on Linux, a broadcast needs SO_BROADCAST
    let n = 0;
    const t = setInterval(() => s.send(Buffer.from('s' + shard + ':' + (n++)), 9, '10.1.1.255'), 5);
    t.unref();
  };`);
  const s = await ShardedStack.start(config(), { shards: 2, app, log: () => {} });
  const ssock = path.join(dir, 'shards.sock');
  const srv = await ControlServer.listen(s, ssock);
  try {
    const { trace, tshark, rows } = await traceIntoTshark(ssock, ['--proto', 'udp', '--port', '9', '--count', '60'], ['frame.time_epoch', 'data.data']);
    assert.is(trace.code, 0, trace.stderr);
    assert.is(tshark.code, 0, tshark.stderr);
    assert.is(rows.length, 60);
    assert.ok(strictlyIncreasing(rows.map((r) => Number(r[0]))), 'times strictly increase');
    const msgs = rows.map((r) => Buffer.from(r[1]!, 'hex').toString());
    const per = [0, 1].map((sh) => msgs.filter((m) => m.startsWith(`s${sh}:`)).map((m) => Number(m.split(':')[1])));
    assert.ok(per[0]!.length > 10 && per[1]!.length > 10, `both shards' frames: ${per[0]!.length} and ${per[1]!.length}`);
    for (const seqs of per) assert.ok(strictlyIncreasing(seqs), `each shard's frames in the order it sent them: ${seqs.join(' ')}`);
    assert.match(trace.stderr, /trace stopped: 60 frame\(s\) captured/);
  } finally {
    await srv.close();
    await s.close();
  }
});

test.run();
