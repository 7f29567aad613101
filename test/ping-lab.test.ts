/**
 * `xdpstack ping --vs NAME ADDR` against kernel peers in the lab (AF_XDP): two peers on VLANs 10
 * and 20 with the same addresses (10.1.1.2/24, fd00:99::2/64), each VS of the stack on its VLAN with
 * the same addresses (10.1.1.1/24, fd00:99::1/64). Each VS's ping reaches its own peer only (the
 * peers' kernel counters of echo requests say who answered), over IPv4 and IPv6; an address no one
 * has gives 100% loss and exit code 1; a peer routing for the VS (forwarding on, unreachable and
 * prohibit routes) answers with ICMP errors that ping prints as iputils does. The CLI runs as its own process (bin/xdpstack.js) against
 * the stack's control socket. Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labImpair, labUp, Lab } from '../stack/lab/lab';
import { nsRun } from './lib/rig';
import { addressesPreferred, privilegedTest } from './lib/lab-stack';
import { createStack, Stack } from '../stack/stack';
import { ControlServer } from '../stack/control/control';

const PREFIX = labPrefix('ta');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'xdpstack.js');
let lab: Lab;
let stack: Stack;
let server: ControlServer;
let dir: string;
let sock: string;

/** The peer's kernel counters of ICMP and ICMPv6 echo requests received. */
async function echoesIn(ns: string): Promise<{ v4: number; v6: number }> {
  const snmp = (await nsRun(ns, 'cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Icmp:'));
  const v4 = Number(snmp[1]!.split(/\s+/)[snmp[0]!.split(/\s+/).indexOf('InEchos')]);
  const s6 = (await nsRun(ns, 'cat', ['/proc/net/snmp6'])).stdout;
  const v6 = Number(/^Icmp6InEchos\s+(\d+)/m.exec(s6)![1]);
  return { v4, v6 };
}

/** `xdpstack ping ARGS` as its own process: exit code and output. */
function cli(args: string[], ms = 30_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [BIN, 'ping', ...args, '--socket', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const t = setTimeout(() => { c.kill('SIGKILL'); reject(new Error(`xdpstack ping ${args.join(' ')}: still running after ${ms} ms`)); }, ms);
    c.on('close', (code) => { clearTimeout(t); resolve({ code, out, err }); });
  });
}

if (privileged) {
  test.before(async () => {
    lab = labUp({ prefix: PREFIX, peers: [10, 20].map((vlan) => ({ vlan, ipv4: '10.1.1.2/24', ipv6: 'fd00:99::2/64' })) });
    stack = createStack({
      name: `ping-${PREFIX}`, control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [10, 20].map((vlan) => ({ name: `t${vlan}`, links: [{ device: lab.stackDevice, vlan, addresses: ['10.1.1.1/24', 'fd00:99::1/64'] }] })),
    }, { log: () => {} });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-ping-lab-'));
    sock = path.join(dir, 'ping.sock');
    server = await ControlServer.listen(stack, sock);
    stack.start();
    await addressesPreferred(stack);
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

ptest('IPv4: each VS pings the kernel peer on its own VLAN (same address on both): replies counted, the other peer untouched', async () => {
  for (const [i, vlan] of [[0, 10], [1, 20]] as const) {
    const before = await Promise.all(lab.peers.map((p) => echoesIn(p.ns)));
    const r = await cli(['--vs', `t${vlan}`, '10.1.1.2', '--count', '3', '--interval', '0.2']);
    assert.is(r.code, 0, r.out + r.err);
    const lines = r.out.trim().split('\n');
    assert.is(lines[0], `PING 10.1.1.2 (10.1.1.2) from 10.1.1.1 vs t${vlan}: 56(84) bytes of data.`);
    for (let s = 1; s <= 3; s++) assert.match(lines[s]!, new RegExp(`^64 bytes from 10\\.1\\.1\\.2: icmp_seq=${s} ttl=64 time=[\\d.]+ ms$`));
    assert.match(r.out, /3 packets transmitted, 3 received, 0% packet loss, time \d+ms\nrtt min\/avg\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms/);
    const after = await Promise.all(lab.peers.map((p) => echoesIn(p.ns)));
    assert.is(after[i]!.v4 - before[i]!.v4, 3, `the VLAN ${vlan} peer answered the 3 requests`);
    assert.is(after[1 - i]!.v4 - before[1 - i]!.v4, 0, 'the other VLAN\'s peer saw none');
  }
});

ptest('IPv6: each VS pings fd00:99::2 on its own VLAN; replies with hop limit 64', async () => {
  for (const [i, vlan] of [[0, 10], [1, 20]] as const) {
    const before = await Promise.all(lab.peers.map((p) => echoesIn(p.ns)));
    const r = await cli(['--vs', `t${vlan}`, 'fd00:99::2', '--count', '3', '--interval', '0.2']);
    assert.is(r.code, 0, r.out + r.err);
    assert.match(r.out, new RegExp(`^PING fd00:99::2\\(fd00:99::2\\) from fd00:99::1 vs t${vlan}: 56 data bytes\\n`));
    assert.is((r.out.match(/^64 bytes from fd00:99::2: icmp_seq=\d ttl=64 time=/gm) ?? []).length, 3);
    assert.match(r.out, /3 packets transmitted, 3 received, 0% packet loss/);
    const after = await Promise.all(lab.peers.map((p) => echoesIn(p.ns)));
    assert.is(after[i]!.v6 - before[i]!.v6, 3, `the VLAN ${vlan} peer answered`);
    assert.is(after[1 - i]!.v6 - before[1 - i]!.v6, 0, 'the other peer saw none');
  }
});

ptest('a large ping is fragmented both ways and reassembled', async () => {
  const r = await cli(['--vs', 't10', '10.1.1.2', '--count', '2', '--interval', '0.2', '--size', '3000']);
  assert.is(r.code, 0, r.out + r.err);
  assert.is((r.out.match(/^3008 bytes from 10\.1\.1\.2: icmp_seq=\d time=/gm) ?? []).length, 2, r.out);
});

ptest('an address that does not answer: 100% loss, exit code 1', async () => {
  const r = await cli(['--vs', 't10', '10.1.1.99', '--count', '2', '--interval', '0.2', '--timeout', '1']);
  assert.is(r.code, 1, r.out + r.err);
  assert.match(r.out, /--- 10\.1\.1\.99 ping statistics ---\n2 packets transmitted, 0 received, 100% packet loss, time \d+ms\n$/);
  const r6 = await cli(['--vs', 't20', 'fd00:99::99', '--count', '1', '--timeout', '1']);
  assert.is(r6.code, 1);
  assert.match(r6.out, /1 packets transmitted, 0 received, 100% packet loss/);
});

ptest('a Linux router\'s ICMP errors about the requests are printed as ping prints them, counted as errors, not waited for', async () => {
  // The VLAN 10 peer routes for the VS: 192.0.2.0/24 is unreachable there, 198.18.0.0/24 prohibited.
  const ns = lab.peers[0]!.ns;
  await nsRun(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  await nsRun(ns, 'ip', ['route', 'replace', 'unreachable', '192.0.2.0/24']);
  await nsRun(ns, 'ip', ['route', 'replace', 'prohibit', '198.18.0.0/24']);
  const vs = stack.vs('t10');
  vs.addRoute({ dst: '192.0.2.0/24', via: '10.1.1.2' });
  vs.addRoute({ dst: '198.18.0.0/24', via: '10.1.1.2' });
  try {
    // (A second apart: Linux rate-limits the errors it sends about unreachable routes.)
    const r = await cli(['--vs', 't10', '192.0.2.7', '-c', '3', '-i', '1.1', '-W', '5']);
    assert.is(r.code, 1, r.out + r.err);
    const lines = r.out.split('\n').filter((l) => l.startsWith('From '));
    assert.equal(lines, [1, 2, 3].map((i) => `From 10.1.1.2 icmp_seq=${i} Destination Host Unreachable`), r.out);
    // Answered by the errors: the ping ends after its last request, not after -W 5.
    assert.match(r.out, /^3 packets transmitted, 0 received, \+3 errors, 100% packet loss, time (\d+)ms$/m);
    assert.ok(Number(/time (\d+)ms/.exec(r.out)![1]) < 4000, r.out);
    await new Promise((res) => setTimeout(res, 2000)); // the router's error budget refills
    const p = await cli(['--vs', 't10', '198.18.0.9', '-c', '1', '-W', '5']);
    assert.match(p.out, /^From 10\.1\.1\.2 icmp_seq=1 Packet filtered$/m, p.out);
  } finally {
    vs.removeRoute({ dst: '192.0.2.0/24', via: '10.1.1.2' });
    vs.removeRoute({ dst: '198.18.0.0/24', via: '10.1.1.2' });
  }
});

ptest('through 30 % loss toward the peer: the replies are exactly the requests that reached it, and the summary says so', async () => {
  const before = await echoesIn(lab.peers[0]!.ns);
  labImpair(PREFIX, { peer: 0, dir: 'in', loss: 0.3, resetCounters: true });
  let r: { code: number | null; out: string; err: string };
  try {
    r = await cli(['--vs', 't10', '10.1.1.2', '--count', '40', '--interval', '0.05', '--timeout', '2']);
  } finally {
    labImpair(PREFIX, { peer: 0, dir: 'in', loss: 0 });
  }
  const reached = (await echoesIn(lab.peers[0]!.ns)).v4 - before.v4;
  const m = /(\d+) packets transmitted, (\d+) received, (\d+(?:\.\d+)?)% packet loss/.exec(r.out);
  assert.ok(m, r.out + r.err);
  const [sent, got, loss] = [Number(m![1]), Number(m![2]), Number(m![3])];
  assert.is(sent, 40);
  // The path back is clean: every request the peer's kernel took was answered and counted once.
  assert.is(got, reached, `received ${got}, requests that reached the peer ${reached}`);
  assert.ok(got > 0 && got < 40, `some lost, some answered (${got}/40)`);
  assert.is(r.code, 0, 'a reply came: exit code 0');
  // ping(8) prints the loss as a whole percentage of the requests unanswered.
  assert.is(Math.round(loss), Math.round((100 * (sent - got)) / sent));
  assert.is((r.out.match(/^64 bytes from 10\.1\.1\.2: icmp_seq=\d+ ttl=64 time=/gm) ?? []).length, got, 'one line per reply');
});

ptest('the peer\'s own ping of the VS still works alongside (the stack answers echo requests)', async () => {
  const r = await nsRun(lab.peers[1]!.ns, 'ping', ['-c', '2', '-i', '0.2', '-w', '5', '10.1.1.1']);
  assert.is(r.code, 0, r.stdout);
});

test.run();
