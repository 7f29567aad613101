/**
 * Tracing a stack on AF_XDP in the lab. `xdpstack trace --out - --proto icmp | tshark -r -` while
 * a kernel peer pings the stack: tshark reads the echo requests and replies in order, each request
 * before its reply. Meanwhile `tcpdump -i DEVICE` on the stack's own device sees none of them, nor
 * the stack's own ping of the peer: the
 * XDP program redirects the frames for the stack to its AF_XDP socket before the kernel's packet
 * taps run, and what the stack sends (copy mode on veth) leaves without passing them either; tcpdump
 * sees only what the program passes to the kernel (an ARP request for an address the stack does not
 * have). README, 'Tracing', says what this test shows. Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, ChildProcess } from 'node:child_process';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, sleep } from './lib/rig';
import { privilegedTest } from './lib/lab-stack';
import { createStack, Stack } from '../stack/stack';
import { ControlServer } from '../stack/control/control';

const PREFIX = labPrefix('tb');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'xdpstack.js');
let lab: Lab;
let stack: Stack;
let server: ControlServer;
let dir: string;
let sock: string;

const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;

/** Waits for a child to end (bounded); its stdout and stderr. */
function ended(c: ChildProcess, ms: number, what: string): Promise<{ code: number | null; out: string; err: string }> {
  let out = '';
  let err = '';
  c.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  c.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { c.kill('SIGKILL'); reject(new Error(`${what}: still running after ${ms} ms: ${err}`)); }, ms);
    c.on('close', (code) => { clearTimeout(t); resolve({ code, out, err }); });
  });
}

if (privileged) {
  test.before(async () => {
    lab = labUp({ prefix: PREFIX, peers: [{ vlan: 10, ipv4: '10.1.1.2/24' }] });
    stack = createStack({
      name: `trace-${PREFIX}`, control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [{ name: 'a', links: [{ device: lab.stackDevice, vlan: 10, addresses: ['10.1.1.1/24'] }] }],
    }, { log: () => {} });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-trace-lab-'));
    sock = path.join(dir, 'trace.sock');
    server = await ControlServer.listen(stack, sock);
    stack.start();
  });
  test.after(async () => {
    try {
      await server?.close();
      stack?.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    } finally {
      labDown(PREFIX);
    }
  });
}

ptest('xdpstack trace --out - | tshark -r - sees the peer\'s pings and the stack\'s replies; tcpdump on the device sees none of them', async () => {
  // tcpdump on the stack's device, all directions, for the whole exchange.
  const td = spawn('tcpdump', ['-i', lab.stackDevice, '-nn', '-e', '-l', '-p', '-Q', 'inout'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const tdDone = ended(td, 60_000, 'tcpdump');
  let tdErr = '';
  td.stderr!.on('data', (d: Buffer) => { tdErr += d.toString(); });
  for (let i = 0; i < 250 && !/listening on/.test(tdErr); i++) await sleep(20);
  assert.match(tdErr, /listening on/, 'tcpdump started');
  // The stack's trace, streamed into tshark through a shell pipe.
  const errT = path.join(dir, 'trace.err');
  const cmd = `${q(process.execPath)} ${q(BIN)} trace --out - --proto icmp --host 10.1.1.2 --count 6 --socket ${q(sock)} 2>${q(errT)} | ` +
    'tshark -n -r - -T fields -E separator=, -e frame.time_epoch -e vlan.id -e ip.src -e ip.dst -e icmp.type -e icmp.seq; echo "status ${PIPESTATUS[0]} ${PIPESTATUS[1]}" >&2';
  const sh = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  const shDone = ended(sh, 60_000, 'trace | tshark');
  for (let i = 0; i < 250 && !(fs.existsSync(errT) && /tracing/.test(fs.readFileSync(errT, 'utf8'))); i++) await sleep(20);
  const ping = await nsRun(lab.peers[0]!.ns, 'ping', ['-c', '3', '-i', '0.2', '-w', '8', '10.1.1.1'], { timeout: 15_000 });
  assert.is(ping.code, 0, ping.stdout);
  // An ARP request for an address the stack does not have: the XDP program passes it to the kernel.
  await nsRun(lab.peers[0]!.ns, 'ping', ['-c', '1', '-w', '2', '10.1.1.50'], { timeout: 10_000 });
  const r = await shDone;
  assert.match(r.err, /status 0 0/, `trace and tshark both exit 0: ${r.err}\n${fs.readFileSync(errT, 'utf8')}`);
  const rows = r.out.trim().split('\n').map((l) => l.split(','));
  assert.is(rows.length, 6, r.out);
  assert.equal(rows.map((x) => [x[1], x[4]]), [['10', '8'], ['10', '0'], ['10', '8'], ['10', '0'], ['10', '8'], ['10', '0']], 'request, reply, three times, on VLAN 10');
  assert.equal(rows.map((x) => `${x[2]}>${x[3]}`), ['10.1.1.2>10.1.1.1', '10.1.1.1>10.1.1.2', '10.1.1.2>10.1.1.1', '10.1.1.1>10.1.1.2', '10.1.1.2>10.1.1.1', '10.1.1.1>10.1.1.2']);
  const times = rows.map((x) => Number(x[0]));
  for (let i = 1; i < times.length; i++) assert.ok(times[i]! > times[i - 1]!, `frame ${i + 1} after frame ${i}`);
  assert.ok(Math.abs(times[0]! * 1000 - Date.now()) < 60_000, 'times are wall-clock times');
  assert.match(fs.readFileSync(errT, 'utf8'), /trace stopped: 6 frame\(s\) captured \(6 matched the filter of \d+ seen\)/);
  // The stack pings the peer too: its own requests leave through AF_XDP.
  const own = await stack.vs('a').ping('10.1.1.2', { count: 3, interval: 0.2 }).done;
  assert.is(own.received, 3);
  await sleep(200);
  td.kill('SIGINT');
  const t = await tdDone;
  const lines = t.out.trim().split('\n').filter((l) => l);
  assert.is(lines.filter((l) => /ICMP/.test(l)).length, 0, `tcpdump saw no ICMP of the stack: ${t.out}`);
  assert.is(lines.filter((l) => /who-has 10\.1\.1\.1 /.test(l) || /10\.1\.1\.1 is-at/.test(l)).length, 0, 'nor its ARP exchange');
  assert.ok(lines.some((l) => /who-has 10\.1\.1\.50 /.test(l)), `but it sees what the program passes to the kernel: ${t.out}`);
  console.log(`# tcpdump -i ${lab.stackDevice}: ${lines.length} frame(s), all ARP for 10.1.1.50; the trace: 3 requests, 3 replies; the stack's own ping: 3 replies, unseen`);
});

test.run();
