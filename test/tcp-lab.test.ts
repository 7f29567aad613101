/**
 * TCP over AF_XDP with Linux kernel peers in the lab, through the library API (createStack,
 * VsHandle.createServer/connect, the tcp-echo service): `nc` echo integrity, 100 MB each way
 * byte-exact, the kernel as server (data both ways, ECONNREFUSED), three VLAN tenants with the same
 * address each reaching their own listener, and every UMEM frame accounted for after each test.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, sleep } from './lib/rig';
import {
  connectRetry as connectFrom, framesAccounted as accounted, hashOneConnection, pyHashServer, randomChunks,
  sendAndReceive, SockErr, writeAll, writeRandomFile,
} from './lib/lab-stack';
import { createStack, Stack } from '../stack/stack';
import { validateConfig, ConfigError } from '../stack/control/config';
import { createMemoryLink } from '../driver/memory';

const PREFIX = labPrefix('xk');
const VLANS = [10, 20, 30];
const privileged = canRunPrivileged();
let lab: Lab;
let stack: Stack;
let tmp: string;

const framesAccounted = () => accounted(stack);
const connectRetry = (vs: string, port: number, host: string) => connectFrom(stack.vs(vs), { port, host });

// ---- Without privileges: the same API under virtual time, two stacks joined by the memory link.

test('VsHandle.connect/createServer and the tcp-echo service under virtual time (memory link)', async () => {
  const link = createMemoryLink({ frameCount: 2048 });
  const cfg = (addr: string, services: boolean) => ({
    control: false as const,
    devices: [{ name: 'm0', driver: 'memory' as const }],
    virtualServers: [{ name: 'v', links: [{ device: 'm0', vlan: 5, addresses: [addr] }] }],
    services: services ? [{ type: 'tcp-echo', vs: 'v', port: 7 }, { type: 'udp-echo', vs: 'v', port: 7 }] : [],
  });
  const a = createStack(cfg('10.9.0.1/24', true), { drivers: { m0: link.a } });
  const b = createStack(cfg('10.9.0.2/24', false), { drivers: { m0: link.b } });
  let now = 0;
  const run = async (done: () => boolean) => {
    for (let i = 0; i < 200_000 && !done(); i++) {
      const next = Math.min(a.runtime.step(now), b.runtime.step(now), link.nextDeadline());
      await new Promise((r) => setImmediate(r));
      if (next !== Infinity && next > now) now = Math.min(next, now + 1000);
      else now += 1;
    }
    return done();
  };
  const payload = randomBytes(200_000);
  const parts: Buffer[] = [];
  let closed = false;
  let remotePort: number | undefined;
  const s = b.vs('v').connect({ port: 7, host: '10.9.0.1' }, () => { remotePort = s.remotePort; s.end(payload); });
  s.on('data', (d: Buffer) => parts.push(d));
  s.on('close', () => { closed = true; });
  assert.ok(await run(() => closed), 'echo connection closed');
  assert.ok(Buffer.concat(parts).equals(payload), 'echoed byte for byte');
  assert.is(remotePort, 7);
  // The stack's clock is the engine's virtual time when not started.
  assert.is(b.nowUs(), b.engine.now);
  assert.ok(b.engine.now > 0 && b.engine.now <= now);
  // A server of the handle, reached from the other stack.
  let greeting = '';
  b.vs('v').createServer((c) => c.end('hi from b')).listen(80);
  const c2 = a.vs('v').connect(80, '10.9.0.2');
  c2.on('data', (d: Buffer) => { greeting += d.toString(); });
  assert.ok(await run(() => greeting === 'hi from b'));
  a.close();
  b.close();
  for (const st of [a, b]) assert.is(st.engine.devices[0]!.pool.check().held, 0);
});

test('config: tcp-echo is a known service; TCP and UDP may share a port, two TCP services may not', () => {
  const base = {
    devices: [{ name: 'm0', driver: 'memory' }],
    virtualServers: [{ name: 'v', links: [{ device: 'm0', addresses: ['10.9.0.1/24'] }] }],
  };
  validateConfig({ ...base, services: [{ type: 'tcp-echo', vs: 'v', port: 7 }, { type: 'udp-echo', vs: 'v', port: 7 }] });
  try {
    validateConfig({ ...base, services: [{ type: 'tcp-echo', vs: 'v', port: 7 }, { type: 'tcp-echo', vs: 'v', port: 7 }] });
    assert.unreachable('duplicate TCP port accepted');
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.match((e as Error).message, /services\[1\]\.port: port 7 of virtual server 'v' is already used by services\[0\]/);
  }
});

if (privileged) {
  test.before(() => {
    lab = labUp({ prefix: PREFIX, peers: VLANS.map((vlan) => ({ vlan, ipv4: '10.1.1.2/24' })) });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xk-tcp-'));
    stack = createStack({
      name: 'tcp-lab',
      control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: VLANS.map((vlan, i) => ({
        name: `t${i + 1}`, links: [{ device: lab.stackDevice, vlan, addresses: ['10.1.1.1/24'] }],
      })),
      services: VLANS.map((_, i) => ({ type: 'tcp-echo', vs: `t${i + 1}`, port: 7 })),
    }, { log: () => {} });
    stack.start();
  });
  test.after(() => {
    try { stack?.close(); } finally {
      labDown(PREFIX);
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('kernel client: nc -N to the tcp-echo service, output identical (cmp)', async () => {
    const input = path.join(tmp, 'echo-in');
    fs.writeFileSync(input, randomBytes(1 << 20));
    const p = lab.peers[0]!;
    for (const [i, size] of [[0, 1], [1, 1 << 20]] as const) {
      const src = size === 1 ? path.join(tmp, 'echo-small') : input;
      if (size === 1) fs.writeFileSync(src, 'x');
      const out = path.join(tmp, `echo-out-${i}`);
      const r = await nsRun(p.ns, 'sh', ['-c', `nc -N -w 10 10.1.1.1 7 < ${src} > ${out} && cmp ${src} ${out}`], { timeout: 30000 });
      assert.is(r.code, 0, `echo ${size} B: ${r.stdout}${r.stderr}`);
    }
    await framesAccounted();
  });

  test('kernel → app: 100 MB from nc, hashed by an xdpstack server, byte-exact', async () => {
    const file = path.join(tmp, 'big');
    const want = writeRandomFile(file, 100);
    const got = hashOneConnection(stack.vs('t1'), 5001);
    const t0 = Date.now();
    const r = await nsRun(lab.peers[0]!.ns, 'sh', ['-c', `nc -N -w 20 10.1.1.1 5001 < ${file}`], { timeout: 60000 });
    assert.is(r.code, 0, r.stdout + r.stderr);
    const res = await got;
    const ms = Date.now() - t0;
    assert.is(res.bytes, 100 << 20);
    assert.is(res.hash, want);
    console.log(`# kernel → xdpstack: 100 MB in ${ms} ms (${((100 * 8) / (ms / 1000)).toFixed(0)} Mbit/s)`);
    fs.rmSync(file);
    await framesAccounted();
  });

  test('app → kernel: 100 MB from an xdpstack client to nc -l, sha256sum matches', async () => {
    const p = lab.peers[1]!;
    const sink = nsRun(p.ns, 'sh', ['-c', 'nc -l -N 10.1.1.2 5002 </dev/null | sha256sum'], { timeout: 60000 });
    // nc -N half-closes at once (its input is /dev/null): as with Node's net, a client that keeps
    // writing after the peer's FIN must allow half-open (else its 'end' ends this side too).
    const s = await connectFrom(stack.vs('t2'), { port: 5002, host: '10.1.1.2', allowHalfOpen: true });
    const h = createHash('sha256');
    const t0 = Date.now();
    await writeAll(s, randomChunks(h, 100, 1 << 20));
    s.end();
    const r = await sink;
    const ms = Date.now() - t0;
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout.split(/\s/)[0], h.digest('hex'));
    assert.is(s.bytesWritten, 100 << 20);
    console.log(`# xdpstack → kernel: 100 MB in ${ms} ms (${((100 * 8) / (ms / 1000)).toFixed(0)} Mbit/s)`);
    if (!s.destroyed) await once(s, 'close');
    await framesAccounted();
  });

  test('kernel server: xdpstack connect() to a python3 server, data both ways', async () => {
    const p = lab.peers[2]!;
    const py = pyHashServer('', '("10.1.1.2",6000)', '"%d %s\\n" % (n,h.hexdigest())', ['c.sendall(bytes(range(256))*8192)']);
    const server = nsRun(p.ns, '/usr/bin/python3', ['-c', py], { timeout: 30000 });
    const s = await connectRetry('t3', 6000, '10.1.1.2');
    assert.is(s.remoteAddress, '10.1.1.2');
    assert.is(s.remotePort, 6000);
    assert.is(s.localAddress, '10.1.1.1');
    const payload = randomBytes(3 << 20);
    const all = await sendAndReceive(s, [payload.subarray(0, 1000), payload.subarray(1000)]);
    const r = await server;
    assert.is(r.code, 0, r.stderr);
    const nl = all.indexOf(10);
    assert.is(all.subarray(0, nl).toString(), `${payload.length} ${createHash('sha256').update(payload).digest('hex')}`);
    assert.ok(all.subarray(nl + 1).equals(Buffer.from(new Uint8Array(256 * 8192).map((_, i) => i & 255))), 'server data intact');
    if (!s.destroyed) await once(s, 'close');
    await framesAccounted();
  });

  test('kernel server: a closed port answers RST → ECONNREFUSED', async () => {
    const s = stack.vs('t1').connect(9, '10.1.1.2');
    const [err] = (await once(s, 'error')) as [SockErr];
    assert.is(err.code, 'ECONNREFUSED');
    assert.ok(s.destroyed);
    await framesAccounted();
  });

  test('3 VLAN peers with the same address each reach their own VS listener on 3260', async () => {
    const servers = VLANS.map((_, i) => stack.vs(`t${i + 1}`).createServer((s) => {
      s.on('error', () => {});
      s.once('data', (d: Buffer) => s.end(`t${i + 1}:${d.toString().trim()}:${s.remoteAddress}\n`));
    }).listen(3260));
    await Promise.all(servers.map((s) => (s.listening ? Promise.resolve() : once(s, 'listening'))));
    for (let round = 0; round < 3; round++) {
      const rs = await Promise.all(lab.peers.map((p) =>
        nsRun(p.ns, 'sh', ['-c', `echo vlan${p.vlan} | nc -N -w 5 10.1.1.1 3260`], { timeout: 10000 })));
      rs.forEach((r, i) => {
        assert.is(r.code, 0, r.stderr);
        assert.is(r.stdout, `t${i + 1}:vlan${VLANS[i]}:::ffff:10.1.1.2\n`); // on :: (no host): IPv4-mapped, as Node
      });
    }
    await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
    await framesAccounted();
  });

  test('examples/echo: the example program echoes TCP (nc -N, cmp) and UDP in each VS', async () => {
    // The in-test stack owns the device: close it, then run the example as a user would.
    stack.close();
    const cfg = path.join(tmp, 'echo.json');
    fs.writeFileSync(cfg, JSON.stringify({
      name: 'xk-echo', control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp' }],
      virtualServers: VLANS.map((vlan, i) => ({ name: `e${i + 1}`, links: [{ device: lab.stackDevice, vlan, addresses: ['10.1.1.1/24'] }] })),
    }));
    const child = spawn(process.execPath, [path.join(__dirname, '..', 'examples', 'echo', 'index.js'), cfg, '--port', '7007'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    try {
      for (let i = 0; i < 100 && !out.includes('echo on port 7007'); i++) await sleep(100);
      assert.ok(out.includes('echo on port 7007'), out);
      const src = path.join(tmp, 'echo-ex-in');
      fs.writeFileSync(src, randomBytes(300_000));
      const rs = await Promise.all(lab.peers.map((p, i) => nsRun(p.ns, 'sh', ['-c',
        `nc -N -w 10 10.1.1.1 7007 < ${src} > ${src}.${i} && cmp ${src} ${src}.${i} && echo udp${i} | nc -u -w 1 10.1.1.1 7007`],
      { timeout: 20000 })));
      rs.forEach((r, i) => { assert.is(r.code, 0, r.stderr + out); assert.is(r.stdout, `udp${i}\n`); });
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
    }
    assert.is(child.exitCode, 0, out);
    assert.match(out, /stopped after 3 TCP connection/);
  });
}

test.run();
