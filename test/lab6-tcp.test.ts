/**
 * TCP over IPv6 with Linux kernel peers over AF_XDP, through `createStack(config)`: 100 MB each way
 * hashed with sha256 (kernel client → xdpstack server, xdpstack client → kernel server), the kernel
 * as server over a global and a scoped link-local address, a closed port refused, and a kernel
 * router whose next hop has IPv6's minimum MTU: its Packet Too Big lowers the path MTU of a live
 * connection and of UDP (RFC 8201, RFC 4443 3.2). Privileged:
 * runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { execFile, execFileSync } from 'node:child_process';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, RunResult, sleep } from './lib/rig';
import {
  addressesPreferred, connectRetry as connectFrom, framesAccounted as accounted, hashOneConnection, privilegedTest,
  pyHashServer, randomChunks, sendAndReceive, SockErr, within, writeAll as writeChunks, writeRandomFile,
} from './lib/lab-stack';
import { createStack, Stack } from '../stack/stack';
import { parseIp6 } from '../protocols/ip/addr';
import type { Socket } from '../stack/api/net';

const PREFIX = labPrefix('y7');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const V6 = 'fd00:71::1';
const PEER6 = 'fd00:71::2';
const MB = 1 << 20;
const FAR6 = 'fd00:72::2'; // behind peer 0 acting as a router, over a 1280-byte link
let lab: Lab;
let stack: Stack;
let tmp: string;

const framesAccounted = () => accounted(stack);
const connectRetry = (opts: { port: number; host: string }) => connectFrom(stack.vs('v'), opts);
// Bounded: a stalled connection fails here instead of holding the suite.
const writeAll = (s: Socket, chunks: Iterable<Buffer>) => writeChunks(s, chunks, 20000);

/** The first link-local address of `eth0` in namespace `ns`. */
async function peerLinkLocal(ns: string): Promise<string> {
  const r = await nsRun(ns, 'ip', ['-j', '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'link']);
  const a = (JSON.parse(r.stdout) as Array<{ addr_info: Array<{ local?: string }> }>)[0]?.addr_info.find((x) => x.local)?.local;
  assert.ok(a, `peer has a link-local address: ${r.stdout}`);
  return a!;
}

/** The far host's namespace (not a lab peer: made and removed here). */
const farNs = () => `${PREFIX}-far`;
function removeFar(): void {
  try { execFileSync('ip', ['netns', 'del', farNs()], { stdio: 'ignore' }); } catch { /* not there */ }
}

/** A python3 UDP socket of the far host on FAR6 `port` that waits (8 s at most) for one datagram `d` from `a`, then runs `then`. */
function farUdpServer(port: number, then: string[]): Promise<RunResult> {
  const py = [
    'import socket',
    's=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)',
    `s.bind(("${FAR6}",${port}))`,
    's.settimeout(8)',
    'd,a=s.recvfrom(65535)',
    ...then,
  ].join('\n');
  return nsRun(farNs(), '/usr/bin/python3', ['-c', py], { timeout: 15000 });
}

if (privileged) {
  test.before(async () => {
    removeFar();
    lab = labUp({ prefix: PREFIX, peers: [{ vlan: 71, ipv6: `${PEER6}/64` }] });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'y7-tcp6-'));
    stack = createStack({
      name: 'lab6-tcp', control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [{ name: 'v', links: [{ name: 'l71', device: lab.stackDevice, vlan: 71, addresses: [`${V6}/64`] }] }],
    }, { log: () => {} });
    stack.start();
    await addressesPreferred(stack);
  });
  test.after(() => {
    try { stack?.close(); } finally {
      removeFar();
      labDown(PREFIX);
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
}

ptest('kernel → app over IPv6: 100 MB from nc -6, hashed by an xdpstack server on ::, byte-exact', async () => {
  const file = path.join(tmp, 'big');
  const want = writeRandomFile(file, 100);
  const got = hashOneConnection(stack.vs('v'), 5001);
  // Bounded: the transfer takes seconds; a stall fails at nc's -w / the timeout, not the suite's.
  const t0 = Date.now();
  const r = await nsRun(lab.peers[0]!.ns, 'sh', ['-c', `nc -6 -N -w 20 ${V6} 5001 < ${file}`], { timeout: 90000 });
  assert.is(r.code, 0, r.stdout + r.stderr);
  const res = await within(got, 20000, 'server end');
  const ms = Date.now() - t0;
  assert.is(res.bytes, 100 * MB);
  assert.is(res.hash, want);
  assert.is(res.peer, `${PEER6} IPv6`);
  assert.is(res.family, 'IPv6');
  console.log(`# kernel → xdpstack over IPv6: 100 MB in ${ms} ms (${((100 * 8) / (ms / 1000)).toFixed(0)} Mbit/s)`);
  fs.rmSync(file);
  await framesAccounted();
});

ptest('app → kernel over IPv6: 100 MB from connect({ host: fd00:71::2 }) to nc -6 -l, sha256sum matches', async () => {
  const p = lab.peers[0]!;
  const sink = nsRun(p.ns, 'sh', ['-c', `nc -6 -l -N ${PEER6} 5002 </dev/null | sha256sum`], { timeout: 90000 });
  // nc -N half-closes at once (its input is /dev/null): as with Node's net, a client that keeps
  // writing after the peer's FIN must allow half-open (else its 'end' ends this side too).
  const s = await connectFrom(stack.vs('v'), { port: 5002, host: PEER6, allowHalfOpen: true });
  assert.is(s.remoteAddress, PEER6);
  assert.is(s.remoteFamily, 'IPv6');
  assert.is(s.localAddress, V6);
  const h = createHash('sha256');
  const t0 = Date.now();
  await writeAll(s, randomChunks(h, 100, MB));
  s.end();
  const r = await sink;
  const ms = Date.now() - t0;
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.split(/\s/)[0], h.digest('hex'));
  assert.is(s.bytesWritten, 100 * MB);
  console.log(`# xdpstack → kernel over IPv6: 100 MB in ${ms} ms (${((100 * 8) / (ms / 1000)).toFixed(0)} Mbit/s)`);
  if (!s.destroyed) await within(once(s, 'close'), 10000, 'close');
  assert.ok(s.destroyed, 'closed');
  await framesAccounted();
});

ptest('kernel server over a scoped link-local address (fe80::…%l71): data both ways', async () => {
  const p = lab.peers[0]!;
  const ll = await peerLinkLocal(p.ns);
  const py = pyHashServer('socket.AF_INET6', `("${ll}",6000,0,socket.if_nametoindex("eth0"))`, '"%s %d %s\\n" % (a[0].split("%")[0],n,h.hexdigest())');
  const server = nsRun(p.ns, '/usr/bin/python3', ['-c', py], { timeout: 30000 });
  const s = await connectRetry({ port: 6000, host: `${ll}%l71` });
  const payload = randomBytes(3 * MB);
  const back = await sendAndReceive(s, [payload], 20000);
  const r = await server;
  assert.is(r.code, 0, r.stderr);
  const ourLl = (stack.show('addresses', { vs: 'v' }) as Array<{ address: string }>).map((x) => x.address).find((a) => a.startsWith('fe80:'));
  assert.is(back.toString(), `${ourLl!.split('/')[0]} ${payload.length} ${createHash('sha256').update(payload).digest('hex')}\n`,
    'the server saw our link-local address as the source and every byte');
  if (!s.destroyed) await within(once(s, 'close'), 10000, 'close');
  await framesAccounted();
});

ptest('kernel server: a closed IPv6 port answers RST → ECONNREFUSED', async () => {
  const s = stack.vs('v').connect(9, PEER6);
  const [err] = (await within(once(s, 'error'), 10000, 'error')) as [SockErr];
  assert.is(err.code, 'ECONNREFUSED');
  assert.ok(s.destroyed);
  await framesAccounted();
});

ptest('a kernel router with a 1280-byte next hop: its Packet Too Big lowers the path MTU of a live TCP connection and of UDP', async () => {
  const p = lab.peers[0]!;
  const far = farNs();
  // peer 0 routes between the VS's VLAN and the far host; the link toward it has MTU 1280.
  const setup = [
    `ip netns add ${far}`,
    `ip -n ${p.ns} link add r1 mtu 1280 type veth peer name f0 netns ${far}`,
    `ip netns exec ${far} sh -ec 'ip link set lo up; ethtool -K f0 tx off >/dev/null; ip link set f0 mtu 1500 up; ip -6 addr add ${FAR6}/64 dev f0 nodad; ip -6 route add default via fd00:72::1'`,
    `ip netns exec ${p.ns} sh -ec 'sysctl -q -w net.ipv6.conf.all.forwarding=1; ethtool -K r1 tx off >/dev/null; ip link set r1 up; ip -6 addr add fd00:72::1/64 dev r1 nodad'`,
  ];
  for (const cmd of setup) {
    const err = await new Promise<string | null>((resolve) => {
      execFile('sh', ['-c', cmd], { timeout: 10000, encoding: 'utf8' }, (e, _o, stderr) => resolve(e ? `${e.message} ${stderr}` : null));
    });
    assert.is(err, null, cmd);
  }
  stack.vs('v').addRoute({ dst: 'fd00:72::/64', via: PEER6 });
  const raw = stack.engine.vs('v');
  assert.is(stack.engine.out.mtuTo(raw, parseIp6(FAR6)), 1500, 'the route first takes the link MTU');

  // TCP: the far host's SYN says MSS 1440 (its own link is 1500), so the first full segments
  // (1500-byte packets) do not pass the router: it answers Packet Too Big (MTU 1280).
  const py = pyHashServer('socket.AF_INET6', `("${FAR6}",6100)`, '"%d %s" % (n,h.hexdigest())');
  const server = nsRun(far, '/usr/bin/python3', ['-c', py], { timeout: 30000 });
  const s = await connectRetry({ port: 6100, host: FAR6 });
  const payload = randomBytes(2 * MB);
  const back = await sendAndReceive(s, [payload], 20000);
  const r = await server;
  assert.is(r.code, 0, r.stderr);
  assert.is(back.toString(), `${payload.length} ${createHash('sha256').update(payload).digest('hex')}`);
  assert.is(stack.engine.out.mtuTo(raw, parseIp6(FAR6)), 1280, 'path MTU learned from the router');
  if (!s.destroyed) await within(once(s, 'close'), 10000, 'close');

  // UDP: a datagram fragmented for 1500 does not pass either; after the router's Packet Too Big
  // the next one is fragmented for 1280 and arrives whole.
  const udpServer = farUdpServer(6200, ['print(len(d))']);
  await sleep(300);
  const u = stack.vs('v').createSocket('udp6');
  u.bind(0);
  stack.engine.vs('v').pmtu.clear(); // forget what TCP learned: UDP finds it again
  const big = Buffer.alloc(4000, 0x55);
  for (let i = 0; i < 10; i++) {
    u.send(big, 6200, FAR6);
    await sleep(200);
    if (stack.engine.out.mtuTo(raw, parseIp6(FAR6)) === 1280) break;
  }
  assert.is(stack.engine.out.mtuTo(raw, parseIp6(FAR6)), 1280, 'path MTU learned from the Packet Too Big about a UDP fragment');
  u.send(big, 6200, FAR6);
  const ur = await udpServer;
  assert.is(ur.stdout.trim(), '4000', ur.stderr);
  u.close();

  // The same far host through a default route via the router's link-local address on the link
  // (a scoped gateway, fe80::…%l71), instead of the global one.
  stack.vs('v').removeRoute({ dst: 'fd00:72::/64', via: PEER6 });
  const ll = await peerLinkLocal(p.ns);
  stack.vs('v').addRoute({ dst: 'default', via: `${ll}%l71` });
  const echoServer = farUdpServer(6300, ['s.sendto(b"far:"+d,a)', 'print(a[0])']);
  await sleep(300);
  const e = stack.vs('v').createSocket('udp6');
  const reply = new Promise<string>((resolve) => e.once('message', (m: Buffer) => resolve(m.toString())));
  e.bind(0);
  e.send('via link-local', 6300, FAR6);
  assert.is(await within(reply, 10000, 'reply through the link-local gateway'), 'far:via link-local');
  assert.is((await echoServer).stdout.trim(), V6, 'the far host saw our global address as the source');
  e.close();
  await framesAccounted();
});

test.run();
