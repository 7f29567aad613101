/**
 * Broadcast with the dgram-shaped API, against Node's own dgram over the kernel, on a lab segment
 * (10.7.0.0/24, untagged): the stack's VS 10.7.0.1 over AF_XDP; peer 0 (10.7.0.2) captures what
 * arrives (AF_PACKET: destination MAC, IP destination, TTL) and receives on a socket bound to
 * 0.0.0.0; peer 1 (10.7.0.3) runs the same scenarios with Node's dgram, as the reference.
 *
 *   - without setBroadcast: EACCES (syscall 'send'), after routing as Linux (ENETUNREACH first
 *     when nothing routes 255.255.255.255);
 *   - with it: directed and limited broadcast leave as Ethernet broadcast frames, with the TTL set
 *     by setTTL; the limited broadcast goes out of the bound address's link, or the default route's;
 *     the sender's own wildcard socket on the port gets its copy (Linux loops broadcasts back);
 *   - receiving: a socket bound to 0.0.0.0:port gets datagrams to the subnet broadcast and to
 *     255.255.255.255; one bound to the unicast address gets only unicast.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, ChildProcess } from 'node:child_process';
import { canRunPrivileged, labPrefix } from './lib/env';
import { privilegedTest } from './lib/lab-stack';
import { nsRun, sleep } from './lib/rig';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { createStack, Stack } from '../stack/stack';
import type { SocketError, UdpSocket } from '../stack/api/dgram';
import { Drop } from '../protocols/drop';

const PREFIX = labPrefix('db');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const OURS = '10.7.0.1';
const CAP = '10.7.0.2';
const REF = '10.7.0.3';
const SUBNET_BCAST = '10.7.0.255';
const LIMITED = '255.255.255.255';
const PORT = 4790;
let lab: Lab;
let stack: Stack;
const procs: ChildProcess[] = [];

/** A process in a namespace whose stdout lines are collected; bounded waits on them. */
class NsProc {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  private buf = '';
  stderr = '';

  constructor(ns: string, cmd: string, args: string[]) {
    this.child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(this.child);
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.buf += d;
      const parts = this.buf.split('\n');
      this.buf = parts.pop()!;
      this.lines.push(...parts.filter((l) => l.length));
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.stderr += d; });
  }

  json<T>(): T[] {
    return this.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as T);
  }

  async waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
    for (let t = 0; t < ms && !pred(); t += 10) await sleep(10);
    if (!pred()) throw new Error(`${what}: not within ${ms} ms (stdout ${JSON.stringify(this.lines)}, stderr ${this.stderr})`);
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}

/**
 * Peer 0's capture: every IPv4/UDP frame to PORT on eth0 (AF_PACKET) as {frame, dmac, src, dst,
 * ttl, msg}, and every datagram a socket bound to 0.0.0.0:PORT receives as {sock, src, msg}.
 */
const CAPTURE_PY = `
import socket, select, struct, json, sys, time
port = int(sys.argv[1]); end = time.time() + float(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(('0.0.0.0', port))
p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
p.bind(('eth0', 0))
print('ready', flush=True)
while time.time() < end:
    r, _, _ = select.select([u, p], [], [], 0.1)
    for s in r:
        if s is p:
            f, meta = p.recvfrom(4096)
            if meta[2] == socket.PACKET_OUTGOING: continue
            ihl = (f[14] & 15) * 4
            if f[23] != 17: continue
            l4 = 14 + ihl
            if struct.unpack('!H', f[l4 + 2:l4 + 4])[0] != port: continue
            print(json.dumps({'frame': 1, 'dmac': f[0:6].hex(':'), 'src': socket.inet_ntoa(f[26:30]), 'dst': socket.inet_ntoa(f[30:34]),
                              'ttl': f[22], 'msg': f[l4 + 8:l4 + struct.unpack('!H', f[l4 + 4:l4 + 6])[0]].decode()}), flush=True)
        else:
            data, addr = u.recvfrom(4096)
            print(json.dumps({'sock': 1, 'src': addr[0], 'msg': data.decode()}), flush=True)
`;

interface Frame { frame: 1; dmac: string; src: string; dst: string; ttl: number; msg: string }
interface Heard { sock: 1; src: string; msg: string }

/** Runs `script` with Node in peer `i`'s namespace (argv: JSON of `arg`); its JSON result line. */
async function nodeIn(i: number, script: string, arg: unknown, timeout = 10000): Promise<unknown> {
  const r = await nsRun(lab.peers[i]!.ns, process.execPath, ['-e', script, JSON.stringify(arg)], { timeout });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{') || l.startsWith('['));
  if (r.code !== 0 || !line) throw new Error(`node in peer ${i}: code ${r.code}: ${r.stdout}${r.stderr}`);
  return JSON.parse(line);
}

/** The Node-visible fields of an error (ours may append its reason in parentheses). */
function fields(e: unknown): Record<string, unknown> | null {
  if (!e) return null;
  const x = e as SocketError;
  return { code: x.code, errno: x.errno, syscall: x.syscall, address: x.address, port: x.port, message: x.message.replace(/ \([^()]*\)$/, '') };
}

const FIELDS_JS = `const fields = (e) => e ? { code: e.code, errno: e.errno, syscall: e.syscall, address: e.address, port: e.port, message: e.message } : null;`;

function send(s: UdpSocket, msg: string, port: number, addr: string): Promise<unknown> {
  return new Promise((res) => s.send(msg, port, addr, (e) => res(fields(e))));
}

function listening(s: UdpSocket): Promise<void> {
  return new Promise((res, rej) => { s.once('listening', res); s.once('error', rej); });
}

function oursSocket(addr: string, port: number, reuseAddr = false): Promise<UdpSocket> {
  const s = stack.vs('a').createSocket({ type: 'udp4', reuseAddr });
  s.on('error', () => {});
  s.bind(port, addr);
  return listening(s).then(() => s);
}

function hasDefaultRoute(): boolean {
  return (stack.show('routes', { vs: 'a' }) as Array<{ dst: string }>).some((r) => r.dst === 'default');
}

if (privileged) {
  test.before(async () => {
    lab = labUp({ prefix: PREFIX, peers: [{ ipv4: `${CAP}/24` }, { ipv4: `${REF}/24` }] });
    // Peers route nothing beyond their subnet: 255.255.255.255 has no route there unless bound.
    for (const p of lab.peers) await nsRun(p.ns, 'ip', ['route', 'flush', 'root', '0.0.0.0/0', 'exact']);
    stack = createStack({
      name: 'dgram-broadcast-lab', control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [{ name: 'a', links: [{ device: lab.stackDevice, addresses: [`${OURS}/24`] }] }],
    }, { log: () => {} });
    stack.start();
  });
  test.after(() => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    try { stack?.close(); } finally { labDown(PREFIX); }
  });
}

ptest('without setBroadcast: EACCES (send, connect) as Node over the kernel; nothing routes 255.255.255.255: ENETUNREACH first', async () => {
  const ref = await nodeIn(1, `${FIELDS_JS}
    const d = require('dgram'); const [port, dir, lim] = JSON.parse(process.argv[1]);
    const s = d.createSocket('udp4'); const c = d.createSocket('udp4');
    s.bind(0, () => s.send('x', port, dir, (e1) => s.send('x', port, lim, (e2) => c.connect(port, dir, (e3) => {
      c.setBroadcast(true);
      c.connect(port, dir, (e4) => {
        console.log(JSON.stringify({ dir: fields(e1), lim: fields(e2), connect: fields(e3), connectAllowed: fields(e4), remote: c.remoteAddress() }));
        s.close(); c.close(); });
    }))));`, [PORT, SUBNET_BCAST, LIMITED]);
  assert.not.ok(hasDefaultRoute());
  const s = await oursSocket('0.0.0.0', 0);
  const c = await oursSocket('0.0.0.0', 0);
  const connect = (): Promise<unknown> => new Promise((res) => c.connect(PORT, SUBNET_BCAST, ((e?: Error) => res(fields(e))) as () => void));
  const ours: Record<string, unknown> = { dir: await send(s, 'x', PORT, SUBNET_BCAST), lim: await send(s, 'x', PORT, LIMITED), connect: await connect() };
  c.setBroadcast(true);
  ours.connectAllowed = await connect();
  ours.remote = c.remoteAddress();
  s.close();
  c.close();
  assert.equal(ours, ref);
  assert.equal(ours.dir, { code: 'EACCES', errno: -13, syscall: 'send', address: SUBNET_BCAST, port: PORT, message: `send EACCES ${SUBNET_BCAST}:${PORT}` });
  assert.equal(ours.connect, { code: 'EACCES', errno: -13, syscall: 'connect', address: SUBNET_BCAST, port: PORT, message: `connect EACCES ${SUBNET_BCAST}:${PORT}` });
  assert.is((ours.lim as { code: string }).code, 'ENETUNREACH');
});

ptest('with setBroadcast: directed and limited broadcast leave as Ethernet broadcast frames with setTTL\'s TTL; the sender\'s wildcard socket gets its copy', async () => {
  const cap = new NsProc(lab.peers[0]!.ns, '/usr/bin/python3', ['-c', CAPTURE_PY, String(PORT), '20']);
  await cap.waitFor(() => cap.lines.includes('ready'), 5000, 'capture ready');
  // The reference: Node in peer 1, no default route there.
  const ref = await nodeIn(1, `${FIELDS_JS}
    const d = require('dgram'); const [port, dir, lim, self] = JSON.parse(process.argv[1]);
    const own = []; const errs = {};
    const w = d.createSocket({ type: 'udp4', reuseAddr: true }); w.on('message', (m, r) => own.push(m + ' from ' + r.address));
    const b = d.createSocket({ type: 'udp4', reuseAddr: true });
    w.bind(port, '0.0.0.0', () => b.bind(port, self, () => {
      w.setBroadcast(true); b.setBroadcast(true); b.setTTL(7);
      w.send('dir', port, dir, (e) => { errs.dir = fields(e);
        b.send('lim-bound', port, lim, (e) => { errs.limBound = fields(e);
          w.send('lim-wild', port, lim, (e) => { errs.limWild = fields(e);
            setTimeout(() => { console.log(JSON.stringify({ errs, own: own.sort() })); w.close(); b.close(); }, 300); }); }); }); }));`,
  [PORT, SUBNET_BCAST, LIMITED, REF]) as { errs: Record<string, unknown>; own: string[] };
  // Ours: the same calls in the VS (no default route yet), then the wildcard socket once one exists.
  const own: string[] = [];
  const w = await oursSocket('0.0.0.0', PORT, true);
  const b = await oursSocket(OURS, PORT, true);
  w.on('message', (m, r) => own.push(`${m} from ${r.address}`));
  w.setBroadcast(true);
  b.setBroadcast(true);
  assert.is(b.setTTL(7), 7);
  const errs = { dir: await send(w, 'dir', PORT, SUBNET_BCAST), limBound: await send(b, 'lim-bound', PORT, LIMITED), limWild: await send(w, 'lim-wild', PORT, LIMITED) };
  assert.equal(errs, ref.errs, 'the same errors: only the wildcard socket\'s limited broadcast has no route (ENETUNREACH)');
  stack.vs('a').addRoute({ dst: 'default', via: CAP });
  const routed = await send(w, 'lim-routed', PORT, LIMITED);
  assert.is(routed, null, 'with a default route the limited broadcast leaves by it, as Linux');
  await cap.waitFor(() => cap.json<Frame>().filter((f) => f.frame).length >= 5, 5000, 'frames captured');
  await sleep(100);
  cap.stop();
  w.close();
  b.close();
  stack.vs('a').removeRoute({ dst: 'default', via: CAP });
  const frames = cap.json<Frame>().filter((f) => f.frame);
  const heard = cap.json<Heard>().filter((f) => f.sock);
  const shape = (src: string) => frames.filter((f) => f.src === src).map((f) => `${f.msg} ${f.dmac} ${f.dst} ttl=${f.ttl}`).sort();
  assert.equal(shape(REF), [
    `dir ff:ff:ff:ff:ff:ff ${SUBNET_BCAST} ttl=64`,
    `lim-bound ff:ff:ff:ff:ff:ff ${LIMITED} ttl=7`,
  ], 'the kernel\'s frames');
  assert.equal(shape(OURS), [...shape(REF), `lim-routed ff:ff:ff:ff:ff:ff ${LIMITED} ttl=64`].sort(), 'ours: the same frames (and the routed one)');
  const heardFrom = (src: string) => heard.filter((h) => h.src === src).map((h) => h.msg).sort();
  assert.equal(heardFrom(REF), ['dir', 'lim-bound'], 'peer 0\'s wildcard socket got the kernel\'s broadcasts');
  assert.equal(heardFrom(OURS), ['dir', 'lim-bound', 'lim-routed'], 'and ours');
  // Linux loops a broadcast back to the host's own sockets on the port: the wildcard one gets each.
  assert.equal(ref.own, ['dir from 10.7.0.3', 'lim-bound from 10.7.0.3']);
  assert.equal(own.sort(), ['dir from 10.7.0.1', 'lim-bound from 10.7.0.1', 'lim-routed from 10.7.0.1']);
});

ptest('receiving: sockets bound to 0.0.0.0:port (reuseAddr) each get the subnet broadcast and 255.255.255.255; one bound to the unicast address gets the unicast', async () => {
  // Receivers in peer 1 (Node over the kernel) and in the VS, on the same port.
  const refProc = new NsProc(lab.peers[1]!.ns, process.execPath, ['-e', `
    const d = require('dgram'); const [port, self] = JSON.parse(process.argv[1]);
    const w = d.createSocket({ type: 'udp4', reuseAddr: true }); const w2 = d.createSocket({ type: 'udp4', reuseAddr: true });
    const u = d.createSocket({ type: 'udp4', reuseAddr: true });
    const log = (who) => (m, r) => console.log(JSON.stringify({ who, msg: String(m), from: r.address, family: r.family, size: r.size }));
    w.on('message', log('wild')); w2.on('message', log('wild2')); u.on('message', log('unicast'));
    w.bind(port, '0.0.0.0', () => w2.bind(port, '0.0.0.0', () => u.bind(port, self, () => console.log('ready'))));
    setTimeout(() => process.exit(0), 15000);`, JSON.stringify([PORT, REF])]);
  const got: { who: string; msg: string; from: string; family: string; size: number }[] = [];
  const w = await oursSocket('0.0.0.0', PORT, true);
  const w2 = await oursSocket('0.0.0.0', PORT, true);
  const u = await oursSocket(OURS, PORT, true);
  const log = (who: string) => (m: Buffer, r: { address: string; family: string; size: number }) => got.push({ who, msg: String(m), from: r.address, family: r.family, size: r.size });
  w.on('message', log('wild'));
  w2.on('message', log('wild2'));
  u.on('message', log('unicast'));
  await refProc.waitFor(() => refProc.lines.includes('ready'), 5000, 'reference receivers ready');
  // Peer 0 sends: the subnet broadcast, the limited broadcast (bound to its address: no route
  // needed), and unicast to each receiver host.
  const py = `
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind((sys.argv[2], 0))
for m, d in (('to-subnet', sys.argv[3]), ('to-all', '255.255.255.255'), ('to-ours', sys.argv[4]), ('to-peer', sys.argv[5])):
    s.sendto(m.encode(), (d, port))
`;
  const r = await nsRun(lab.peers[0]!.ns, '/usr/bin/python3', ['-c', py, String(PORT), CAP, SUBNET_BCAST, OURS, REF]);
  assert.is(r.code, 0, r.stderr);
  type Got = { who: string; msg: string; from: string; family: string; size: number };
  await refProc.waitFor(() => refProc.json<Got>().length >= 5, 5000, 'reference received');
  for (let t = 0; t < 3000 && got.length < 5; t += 10) await sleep(10);
  await sleep(100); // anything more would be a datagram delivered where it should not be
  refProc.stop();
  w.close();
  w2.close();
  u.close();
  const norm = (xs: Got[], self: string) => xs.map((x) => `${x.who} ${x.msg.replace(self === OURS ? 'to-ours' : 'to-peer', 'to-self')} from ${x.from} ${x.family} ${x.size}`).sort();
  const ref = norm(refProc.json<Got>(), REF);
  assert.equal(ref, [
    `unicast to-self from ${CAP} IPv4 7`,
    `wild to-all from ${CAP} IPv4 6`, `wild to-subnet from ${CAP} IPv4 9`,
    `wild2 to-all from ${CAP} IPv4 6`, `wild2 to-subnet from ${CAP} IPv4 9`,
  ], 'the kernel: every wildcard socket gets each broadcast, the bound one the unicast');
  assert.equal(norm(got, OURS), ref, 'ours as the kernel');
  assert.is(stack.engine.vs('a').counters.drops[Drop.UdpSocketQueueFull], 0, 'no socket ran out of room');
});

test.run();
