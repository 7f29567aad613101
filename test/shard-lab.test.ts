/**
 * A stack of two shards in worker threads (ShardedStack, stack/shard/threads.ts) over real AF_XDP
 * on a 2-queue lab device, with Linux kernel peers in the lab's namespaces:
 *
 * - flows of six peers (VLAN 10 and VLAN 20) spread by the kernel over both queues: TCP and UDP
 *   echo served by both shards, byte-exact;
 * - every connection owned by exactly one shard: the shards' passive opens equal the peers' active
 *   opens (the peers' own kernel counters), a connection moved to the other queue is handed to its
 *   owner (forwarded = forwardedIn of the other shard, no ring full), no duplicate data seen by the
 *   peers (no D-SACK);
 * - an application module connecting out from each shard to a kernel listener, byte-exact both ways;
 * - a 32 MB echo transfer moved to the other queue mid-way, byte-exact;
 * - a VS added (and removed) while both shards carry transfers: it answers on both queues, the
 *   transfers are undisturbed, its identity is the same in both shards;
 * - `show` of the group equals the sum of the shards' own answers;
 * - one capture of both shards in time order, at most `count` frames (tshark reads it);
 * - a shard that crashes in `xdpstack run --shards 2` ends the process with status 1, a message naming
 *   the shard, and no XDP program left on the device.
 *
 * Root only (namespaces, AF_XDP): registered only when it can run.
 */
import * as assert from 'uvu/assert';
import { test } from 'uvu';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { canRunPrivileged, labPrefix, sh } from './lib/env';
import { privilegedTest, within } from './lib/lab-stack';
import { ConnResult, ECHO_SERVER, nsTcpCounters, Py, TCP_CLIENT, TCP_REFUSED, UDP_CLIENT, UdpResult } from './lib/peer-python';
import { labDown, labImpair, labImpairment, labQueueFrames, labSteer, labSteering, labUp, Lab } from '../stack/lab/lab';
import { ShardedStack } from '../stack/shard/threads';
import type { StackConfig } from '../stack/control/config';
import { RUN_DIR } from '../driver/afxdp';

const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const PREFIX = labPrefix('sa');
const CRASH_PREFIX = labPrefix('sb');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Peers 0..3 on VLAN 10 (VS a), 4 on VLAN 20 (VS b), 5 on VLAN 30 (the VS added at run time). */
const PEERS = [
  { vlan: 10, ipv4: '10.1.1.2/24' }, { vlan: 10, ipv4: '10.1.1.3/24' }, { vlan: 10, ipv4: '10.1.1.4/24' }, { vlan: 10, ipv4: '10.1.1.5/24' },
  { vlan: 20, ipv4: '10.2.2.2/24' }, { vlan: 30, ipv4: '10.3.3.2/24' },
];
/** The stack's address each peer talks to. */
const STACK_IP = ['10.1.1.1', '10.1.1.1', '10.1.1.1', '10.1.1.1', '10.2.2.1', '10.3.3.1'];
/** The kernel listener the application connects to (peer 4, VS b). */
const KPORT = 9000;
const APP_BYTES = 400_000;

let lab: Lab;
let stack: ShardedStack | null = null;
let tmp = '';
let kernelServer: Py | null = null;
const logs: string[] = [];

// ---------------------------------------------------------------------------------------------
// Kernel peers (python3 in their namespaces: test/lib/peer-python.ts)

function tcpClient(peer: number, conns: number, size: number, opts: { pause?: boolean; progress?: number; rate?: number } = {}): Py {
  return new Py(lab.peers[peer]!.ns, TCP_CLIENT, [STACK_IP[peer]!, 7, conns, size, opts.pause ? 1 : 0, opts.progress ?? 0, opts.rate ?? 0], 90_000);
}

function udpClient(peer: number, flows: number, n: number): Py {
  return new Py(lab.peers[peer]!.ns, UDP_CLIENT, [STACK_IP[peer]!, 7, flows, n], 60_000);
}

function assertEchoed(res: ConnResult[], conns: number, size: number, what: string): void {
  assert.is(res.length, conns, `${what}: every connection reported`);
  for (const r of res) {
    assert.not.ok(r.error, `${what}: connection from port ${r.port}: ${r.error}`);
    assert.is(r.recv, size, `${what}: all ${size} bytes came back once (port ${r.port})`);
    assert.ok(r.same, `${what}: byte-exact echo (port ${r.port})`);
  }
}

function peersTcpSum(peers: number[], key: string): number {
  return peers.reduce((n, p) => n + (nsTcpCounters(lab.peers[p]!.ns)[key] ?? NaN), 0);
}

// ---------------------------------------------------------------------------------------------
// The stack's counters

interface ShardRow {
  shard: number; tcpConnections: number; passiveOpens: number; activeOpens: number; forwarded: number[]; forwardedIn: number; neighborShared: number;
  ringFull: number; heldBack: number;
}
type Row = Record<string, unknown>;
interface Counters { devices: Row[]; vs: Row[]; links: Row[]; pool: Row[]; shards: ShardRow[] }
/** `drops`: the shard's drops of the shard kinds (shard-ring-full...), on its device and links. */
interface Snap { rx: number; tx: number; drops: Record<string, number>; sh: ShardRow }

async function perShard(): Promise<Snap[]> {
  const per = (await stack!.show('counters', { perShard: true })) as { shard: number; data: Counters }[];
  return per.map((p) => {
    const d = p.data.devices[0]!;
    const drops: Record<string, number> = {};
    for (const r of [d, ...p.data.links]) {
      for (const [k, n] of Object.entries((r.drops as { reasons: Record<string, number> }).reasons)) if (k.startsWith('shard-')) drops[k] = (drops[k] ?? 0) + n;
    }
    return { rx: d.rxPackets as number, tx: d.txPackets as number, drops, sh: p.data.shards[0]! };
  });
}

/**
 * Waits (bounded) until the traffic has settled: two equal readings, 100 ms apart, of the shards'
 * counters and of the frames the device received per queue.
 */
async function snapshot(): Promise<{ s: Snap[]; q: number[] }> {
  const read = async () => ({ s: await perShard(), q: labQueueFrames(PREFIX) });
  let a = await read();
  for (let i = 0; i < 30; i++) {
    await sleep(100);
    const b = await read();
    if (JSON.stringify(a) === JSON.stringify(b)) return b;
    a = b;
  }
  return a;
}

async function settled(): Promise<Snap[]> {
  return (await snapshot()).s;
}

const d = (a: Snap[], b: Snap[], s: number, f: (x: Snap) => number) => f(b[s]!) - f(a[s]!);

/**
 * Each frame the device received on queue i is received (counted) once, by shard i, whichever
 * shard then processes it: the shards' sum is what the device received.
 */
function assertQueuesCounted(a: { s: Snap[]; q: number[] }, b: { s: Snap[]; q: number[] }, what: string): number[] {
  const queue = [0, 1].map((q) => b.q[q]! - a.q[q]!);
  const rx = [0, 1].map((s) => d(a.s, b.s, s, (x) => x.rx));
  assert.equal(rx, queue, `${what}: shard i counted the frames of queue i once (rxPackets ${rx}, device queues ${queue})`);
  return queue;
}

/** The ring invariant: what shard `s` took in is what the others handed to it (flows) plus the neighbor answers they copied. */
function assertRingsBalance(a: Snap[], b: Snap[], what: string): void {
  for (let s = 0; s < 2; s++) {
    const o = 1 - s;
    const inTook = d(a, b, s, (x) => x.sh.forwardedIn);
    const handed = d(a, b, o, (x) => x.sh.forwarded[s]!) + d(a, b, o, (x) => x.sh.neighborShared);
    assert.is(inTook, handed, `${what}: shard ${s} took in (${inTook}) what shard ${o} handed to it (${handed})`);
    assert.is(d(a, b, s, (x) => x.sh.ringFull), 0, `${what}: shard ${s}: no ring full`);
  }
}

// ---------------------------------------------------------------------------------------------
// Lab, stack and the application module

function config(): StackConfig {
  const dev = lab.stackDevice;
  return {
    name: `shard-lab-${PREFIX}`,
    control: false,
    devices: [{ name: dev, driver: 'afxdp', frameCount: 4096 }],
    virtualServers: [
      { name: 'a', links: [{ device: dev, vlan: 10, addresses: ['10.1.1.1/24'] }] },
      { name: 'b', links: [{ device: dev, vlan: 20, addresses: ['10.2.2.1/24'] }] },
    ],
    services: ['a', 'b'].flatMap((vs) => [{ type: 'tcp-echo', vs, port: 7 }, { type: 'udp-echo', vs, port: 7 }]),
  } as StackConfig;
}

/**
 * In each shard: connects from VS b to the kernel listener of peer 4, sends APP_BYTES random bytes,
 * checks the echo, writes its result to `conn-SHARD.json` and, on success, binds UDP port
 * 7100 + shard (seen in `show vs`). Retries (bounded) while the listener refuses.
 */
function appSource(dir: string): string {
  return `'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
module.exports = (stack, { shard, shards }) => {
  const vs = stack.vs('b');
  const data = crypto.randomBytes(${APP_BYTES});
  const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
  const report = (r) => {
    const f = path.join(${JSON.stringify(dir)}, 'conn-' + shard + '.json');
    fs.writeFileSync(f + '.tmp', JSON.stringify({ shard, shards, ...r }));
    fs.renameSync(f + '.tmp', f);
  };
  let tries = 0;
  const attempt = () => {
    const s = vs.connect({ host: '10.2.2.2', port: ${KPORT} });
    const parts = [];
    let localPort = 0;
    s.on('connect', () => { localPort = s.localPort; s.end(data); });
    s.on('data', (b) => parts.push(b));
    s.on('end', () => {
      const got = Buffer.concat(parts);
      const same = got.equals(data);
      if (same) vs.createSocket('udp4').bind(7100 + shard);
      report({ ok: same, localPort, sent: data.length, received: got.length, sentSha: sha(data), tries });
    });
    s.on('error', (e) => {
      if (e.code === 'ECONNREFUSED' && ++tries < 50) { setTimeout(attempt, 100); return; }
      report({ ok: false, error: e.code + ' ' + e.message, tries });
    });
  };
  attempt();
};
`;
}

interface AppResult { shard: number; shards: number; ok: boolean; localPort: number; sent: number; received: number; sentSha: string; tries: number; error?: string }

if (privileged) {
  test.before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shard-lab-'));
    lab = labUp({ prefix: PREFIX, queues: 2, peers: PEERS });
    try {
      // The application's kernel listener is up before the shards start (2 connections: one per shard).
      kernelServer = new Py(lab.peers[4]!.ns, ECHO_SERVER, ['10.2.2.2', KPORT, 2, 30], 60_000);
      await kernelServer.line(/^listening$/, 10_000);
      const app = path.join(tmp, 'app.js');
      fs.writeFileSync(app, appSource(tmp));
      stack = await ShardedStack.start(config(), { shards: 2, app, log: (m) => logs.push(m), onFatal: (m) => logs.push(`FATAL ${m}`) });
    } catch (e) {
      kernelServer?.kill();
      labDown(PREFIX);
      throw e;
    }
  });

  test.after(async () => {
    try {
      kernelServer?.kill();
      await stack?.close();
    } finally {
      try { labDown(PREFIX); } finally {
        try { labDown(CRASH_PREFIX); } finally {
          if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
        }
      }
    }
  });
}

ptest('an application connects out from each shard to a kernel listener: byte-exact both ways, one active open per shard', async () => {
  const files = [0, 1].map((s) => path.join(tmp, `conn-${s}.json`));
  const until = Date.now() + 20_000;
  while (!files.every((f) => fs.existsSync(f)) && Date.now() < until) await sleep(50);
  const res = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as AppResult);
  const server = await within(kernelServer!.json<{ port: number; n?: number; sha?: string; error?: string }[]>(), 35_000, 'kernel listener');
  for (const r of res) {
    assert.is(r.shards, 2);
    assert.ok(r.ok, `shard ${r.shard}: echo identical (${JSON.stringify(r)})`);
    assert.is(r.received, APP_BYTES);
    const k = server.find((x) => x.port === r.localPort);
    assert.ok(k, `the kernel saw shard ${r.shard}'s connection from port ${r.localPort}: ${JSON.stringify(server)}`);
    assert.is(k!.n, APP_BYTES, 'the kernel received every byte once');
    assert.is(k!.sha, r.sentSha, 'the kernel received what the shard sent');
  }
  assert.is.not(res[0]!.localPort, res[1]!.localPort, 'two distinct connections');
  const s = await settled();
  for (let i = 0; i < 2; i++) {
    assert.ok(s[i]!.sh.activeOpens >= 1, `shard ${i} opened a connection`);
    assert.is(s[i]!.sh.activeOpens, 1 + res[i]!.tries, `shard ${i}: one active open per attempt`);
  }
  const per = (await stack!.show('vs', { perShard: true })) as { shard: number; data: Row[] }[];
  for (const p of per) assert.is(p.data.find((r) => r.name === 'b')!.udpSockets, 2, `shard ${p.shard}: the udp-echo service and the socket the application bound after its check`);
  console.log(`# outbound: local ports ${res.map((r) => r.localPort)}, forwarded so far ${s.map((x) => x.sh.forwarded[1 - x.sh.shard])}` +
    `, ${logs.filter((m) => /RSS/.test(m)).length ? 'RSS not usable on veth: stray replies handed to the opening shard' : 'RSS steering'}`);
});

ptest('flows of five kernel peers on two VLANs spread over both queues; both shards serve TCP and UDP echo, byte-exact', async () => {
  const a = await snapshot();
  const s0 = a.s;
  const tcpPeers = [0, 1, 2, 3, 4];
  const opens0 = peersTcpSum(tcpPeers, 'Tcp.ActiveOpens');
  const CONNS = 4, SIZE = 256 << 10;
  const clients = tcpPeers.map((p) => tcpClient(p, CONNS, SIZE));
  const results = await within(Promise.all(clients.map((c) => c.json<ConnResult[]>())), 60_000, 'TCP echo clients');
  results.forEach((r, k) => assertEchoed(r, CONNS, SIZE, `peer ${tcpPeers[k]}`));
  const s1 = await settled();
  const opened = peersTcpSum(tcpPeers, 'Tcp.ActiveOpens') - opens0;
  assert.is(opened, tcpPeers.length * CONNS, 'the peers opened one connection each');
  const passive = [0, 1].map((s) => d(s0, s1, s, (x) => x.sh.passiveOpens));
  assert.is(passive[0]! + passive[1]!, opened, `one passive open per connection in the whole group (shards: ${passive})`);
  assert.ok(passive[0]! > 0 && passive[1]! > 0, `both shards served TCP connections (${passive})`);

  const udp = [0, 1, 2, 3, 4].map((p) => udpClient(p, 8, 10));
  const ur = await within(Promise.all(udp.map((c) => c.json<UdpResult>())), 60_000, 'UDP echo clients');
  for (const [k, r] of ur.entries()) assert.equal(r, { ok: 80, bad: 0, lost: 0, extra: 0 }, `peer ${k}: each datagram echoed once, byte-exact`);
  const b = await snapshot();
  const s2 = b.s;
  const udpTx = [0, 1].map((s) => d(s1, s2, s, (x) => x.tx));
  assert.ok(udpTx[0]! > 0 && udpTx[1]! > 0, `both shards answered UDP flows (frames sent: ${udpTx})`);
  const queue = assertQueuesCounted(a, b, 'spread flows');
  assert.ok(queue[0]! > 0 && queue[1]! > 0, `the device received frames on both queues, each shard its own (${queue})`);
  assertRingsBalance(s0, s2, 'spread flows');
  console.log(`# spread: queue frames = shard rxPackets ${queue}, passive opens ${passive}, UDP answers sent ${udpTx}, ` +
    `forwarded ${[0, 1].map((s) => d(s0, s2, s, (x) => x.sh.forwarded[1 - s]!))}`);
});

ptest('each connection is owned by one shard: opens counted once, frames of a moved connection handed to its owner, no duplicate data', async () => {
  labSteer(PREFIX, 0, 0);
  labSteer(PREFIX, 1, 1);
  try {
    const a = await snapshot();
    const s0 = a.s;
    const dsack0 = peersTcpSum([0, 1], 'TcpExt.TCPDSACKOldSent') + peersTcpSum([0, 1], 'TcpExt.TCPDSACKOfoSent');
    const opens0 = peersTcpSum([0, 1], 'Tcp.ActiveOpens');
    const SIZE = 1 << 20;
    const c0 = tcpClient(0, 3, SIZE, { pause: true });
    const c1 = tcpClient(1, 2, SIZE, { pause: true });
    await Promise.all([c0.line(/^half$/, 30_000), c1.line(/^half$/, 30_000)]);
    const mid = await settled();
    // Peer 0's connections opened on queue 0, peer 1's on queue 1: each shard owns those it accepted.
    assert.equal([0, 1].map((s) => d(s0, mid, s, (x) => x.sh.passiveOpens)), [3, 2], 'passive opens: 3 in shard 0, 2 in shard 1');
    assert.equal([0, 1].map((s) => d(s0, mid, s, (x) => x.sh.tcpConnections)), [3, 2], 'connections held: 3 by shard 0, 2 by shard 1');
    // Swap the queues: every frame of these connections now reaches the shard that does not own it.
    labSteer(PREFIX, 0, 1);
    labSteer(PREFIX, 1, 0);
    c0.write('go\n');
    c1.write('go\n');
    const [r0, r1] = await within(Promise.all([c0.json<ConnResult[]>(), c1.json<ConnResult[]>()]), 60_000, 'paused clients');
    assertEchoed(r0, 3, SIZE, 'peer 0');
    assertEchoed(r1, 2, SIZE, 'peer 1');
    const b = await snapshot();
    const s1 = b.s;
    assertQueuesCounted(a, b, 'moved connections');
    assert.is(peersTcpSum([0, 1], 'Tcp.ActiveOpens') - opens0, 5, 'the peers opened 5 connections');
    assert.equal([0, 1].map((s) => d(s0, s1, s, (x) => x.sh.passiveOpens)), [3, 2], 'no shard opened a connection another owns');
    const fw = [0, 1].map((s) => d(mid, s1, s, (x) => x.sh.forwarded[1 - s]!));
    assert.ok(fw[1]! > 0, `shard 1 handed peer 0's frames to shard 0 (${fw[1]})`);
    assert.ok(fw[0]! > 0, `shard 0 handed peer 1's frames to shard 1 (${fw[0]})`);
    assertRingsBalance(s0, s1, 'moved connections');
    // A segment processed by both shards would have been answered twice: the peers would have
    // received data they already had (RFC 2883 D-SACK) or a second SYN-ACK.
    const dsack = peersTcpSum([0, 1], 'TcpExt.TCPDSACKOldSent') + peersTcpSum([0, 1], 'TcpExt.TCPDSACKOfoSent') - dsack0;
    assert.is(dsack, 0, 'no duplicate data reached the peers');
    console.log(`# ownership: passive opens [3, 2]; after the swap forwarded shard0→1 ${fw[0]}, shard1→0 ${fw[1]}; ` +
      `steps holding frames back for a full ring ${[0, 1].map((s) => d(mid, s1, s, (x) => x.sh.heldBack))}`);
  } finally {
    labSteer(PREFIX, 0, null);
    labSteer(PREFIX, 1, null);
  }
});

ptest('a 32 MB echo transfer moved to the other queue mid-way stays byte-exact; the new shard hands its frames over', async () => {
  const SIZE = 32 << 20;
  labSteer(PREFIX, 2, 1);
  try {
    const a = await snapshot();
    const s0 = a.s;
    const t0 = Date.now();
    const c = tcpClient(2, 1, SIZE, { progress: 2 << 20 });
    await c.line(/^p (1[0-9]|[2-9][0-9])\d{6}$/, 60_000); // ≥ 10 MB echoed
    const moveAt = Date.now() - t0;
    const sMid = await perShard();
    labSteer(PREFIX, 2, 0);
    const [r] = await within(c.json<ConnResult[]>(), 80_000, 'large transfer');
    const ms = Date.now() - t0;
    assertEchoed([r!], 1, SIZE, '32 MB transfer');
    const b = await snapshot();
    const s1 = b.s;
    const queue = assertQueuesCounted(a, b, 'moved transfer');
    assert.is(d(s0, s1, 0, (x) => x.sh.passiveOpens) + d(s0, s1, 1, (x) => x.sh.passiveOpens), 1);
    assert.is(d(s0, s1, 1, (x) => x.sh.passiveOpens), 1, 'opened by shard 1 (queue 1)');
    const fw = d(sMid, s1, 0, (x) => x.sh.forwarded[1]!);
    assert.ok(fw > 0, `shard 0 handed the moved flow's frames to shard 1 (${fw})`);
    const ringFull = [0, 1].map((s) => d(s0, s1, s, (x) => x.sh.ringFull));
    const dropped = [0, 1].map((s) => (s1[s]!.drops['shard-ring-full'] ?? 0) - (s0[s]!.drops['shard-ring-full'] ?? 0));
    console.log(`# moved transfer: 32 MiB each way in ${ms} ms (${(2 * SIZE / 1e6 / (ms / 1000)).toFixed(1)} MB/s both ways), moved at ${moveAt} ms; ` +
      `queue frames ${queue}; forwarded shard0→1 ${fw}; ring full ${ringFull} (drops ${dropped}); ` +
      `steps holding frames back ${[0, 1].map((s) => d(s0, s1, s, (x) => x.sh.heldBack))}`);
    assertRingsBalance(s0, s1, 'moved transfer');
  } finally {
    labSteer(PREFIX, 2, null);
  }
});

ptest('through 1 % loss each way, an 8 MB echo transfer moved to the other queue mid-way stays byte-exact', async () => {
  const SIZE = 8 << 20;
  labSteer(PREFIX, 3, 0);
  labImpair(PREFIX, { peer: 3, loss: 0.01, resetCounters: true });
  try {
    const a = await snapshot();
    const t0 = Date.now();
    const c = tcpClient(3, 1, SIZE, { progress: 1 << 20 });
    await c.line(/^p [2-9]\d{6}$/, 60_000); // ≥ 2 MB echoed
    labSteer(PREFIX, 3, 1);
    const [r] = await within(c.json<ConnResult[]>(), 80_000, 'transfer through loss');
    assertEchoed([r!], 1, SIZE, '8 MB through loss');
    const b = await snapshot();
    const fw = d(a.s, b.s, 1, (x) => x.sh.forwarded[0]!);
    assert.ok(fw > 0, `shard 1 handed the moved flow's frames to shard 0 (${fw})`);
    const imp = labImpairment(PREFIX).find((x) => x.peer === 3)!;
    assert.ok(imp.in.dropped + imp.out.dropped > 10, `frames were lost on the path (${imp.in.dropped} toward the peer, ${imp.out.dropped} from it)`);
    assertRingsBalance(a.s, b.s, 'transfer through loss');
    console.log(`# through 1 % loss: 8 MiB each way in ${Date.now() - t0} ms; lost ${imp.in.dropped}/${imp.out.dropped}; forwarded ${fw}`);
  } finally {
    labImpair(PREFIX, { peer: 3, loss: 0 });
    labSteer(PREFIX, 3, null);
  }
});

ptest('a VS added while both shards carry transfers answers on both queues, the same id in both; removed, it answers no more', async () => {
  // Paced (1.5 MB/s, ~11 s) so that the transfers span every change below, even on a busy machine.
  const SIZE = 16 << 20, RATE = 1_500_000;
  labSteer(PREFIX, 3, 0);
  labSteer(PREFIX, 1, 1);
  try {
    const ping = (count: number) => new Py(lab.peers[5]!.ns, `import subprocess, sys\nsys.exit(subprocess.call(['ping', '-c', '${count}', '-i', '0.2', '-W', '1', '-q', '10.3.3.1'], stdout=subprocess.DEVNULL))`, [], 20_000).done;
    assert.is.not((await ping(1)).code, 0, 'no VS on VLAN 30 yet: no answer');
    const s0 = await settled();
    const t0 = Date.now();
    const c3 = tcpClient(3, 1, SIZE, { progress: 1 << 20, rate: RATE });
    const c1 = tcpClient(1, 1, SIZE, { progress: 1 << 20, rate: RATE });
    await Promise.all([c3.line(/^p \d+$/, 30_000), c1.line(/^p \d+$/, 30_000)]);
    const dev = lab.stackDevice;
    await stack!.request({ cmd: 'vs.add', name: 'c', links: [{ device: dev, vlan: 30, addresses: [] }] });
    await stack!.request({ cmd: 'address.add', vs: 'c', link: `${dev}.30`, cidr: '10.3.3.1/24' });
    for (const q of [0, 1]) {
      labSteer(PREFIX, 5, q);
      const st0 = labSteering(PREFIX).steeredFrames[q]!;
      assert.is((await ping(3)).code, 0, `the new VS answers ping on queue ${q}`);
      const refused = new Py(lab.peers[5]!.ns, TCP_REFUSED, ['10.3.3.1', 80], 10_000);
      await refused.done;
      assert.equal(refused.lines, ['refused'], `the new VS resets a SYN to a closed port on queue ${q}`);
      assert.ok(labSteering(PREFIX).steeredFrames[q]! - st0 >= 4, `peer 5's frames went to queue ${q}`);
    }
    const ids = ((await stack!.show('vs', { perShard: true })) as { data: Row[] }[]).map((p) => p.data.find((r) => r.name === 'c')?.id);
    const merged = ((await stack!.show('vs')) as Row[]).find((r) => r.name === 'c')!;
    assert.ok(typeof ids[0] === 'number' && ids[0] > 2, `a new identity (${ids})`);
    assert.equal(ids, [ids[0], ids[0]], 'the same identity in both shards');
    assert.is(merged.id, ids[0]);
    await stack!.request({ cmd: 'vs.del', name: 'c' });
    assert.is.not((await ping(2)).code, 0, 'the removed VS answers no more');
    const running = [c3, c1].map((c) => !c.lines.some((l) => l.startsWith('[')));
    assert.equal(running, [true, true], 'the transfers were still running after the VS was removed');
    const [r3, r1] = await within(Promise.all([c3.json<ConnResult[]>(), c1.json<ConnResult[]>()]), 60_000, 'transfers');
    const ms = Date.now() - t0;
    assertEchoed(r3!, 1, SIZE, 'transfer on queue 0');
    assertEchoed(r1!, 1, SIZE, 'transfer on queue 1');
    const s1 = await settled();
    assert.equal([0, 1].map((s) => d(s0, s1, s, (x) => x.sh.passiveOpens)), [1, 1], 'one transfer in each shard');
    assertRingsBalance(s0, s1, 'VS changes');
    assert.not.ok(((await stack!.show('vs', { perShard: true })) as { data: Row[] }[]).some((p) => p.data.some((r) => r.name === 'c')), 'gone from both shards');
    console.log(`# VS add/del under load: two ${SIZE >> 20} MiB echo transfers (queues 0 and 1) took ${ms} ms, byte-exact; VS c id ${ids[0]} in both shards`);
  } finally {
    for (const p of [1, 3, 5]) labSteer(PREFIX, p, null);
  }
});

ptest('show of the group is the sum of the shards: vs and counters', async () => {
  const SUMMED_VS = ['udpSockets', 'tcpListeners', 'tcpConnections', 'rxPackets', 'txPackets', 'drops'];
  const SUMMED_DEV = ['rxPackets', 'rxBytes', 'txPackets', 'txBytes'];
  let ok = false;
  for (let attempt = 0; attempt < 5 && !ok; attempt++) {
    const a = JSON.stringify(await stack!.show('counters', { perShard: true })) + JSON.stringify(await stack!.show('vs', { perShard: true }));
    const mergedC = (await stack!.show('counters')) as Counters;
    const mergedV = (await stack!.show('vs')) as Row[];
    const perC = (await stack!.show('counters', { perShard: true })) as { shard: number; data: Counters }[];
    const perV = (await stack!.show('vs', { perShard: true })) as { shard: number; data: Row[] }[];
    if (JSON.stringify(perC) + JSON.stringify(perV) !== a) continue; // traffic in between: look again
    ok = true;
    assert.equal(mergedV.map((r) => r.name), ['a', 'b']);
    for (const row of mergedV) {
      const parts = perV.map((p) => p.data.find((r) => r.name === row.name)!);
      // Drops are { total, reasons }: the totals add up.
      const num = (r: Row, k: string) => (k === 'drops' ? (r.drops as { total: number }).total : r[k] as number);
      for (const k of SUMMED_VS) assert.is(num(row, k), parts.reduce((n, r) => n + num(r, k), 0), `vs ${row.name}: ${k} is the sum`);
      for (const k of ['id', 'links', 'addresses', 'routes']) assert.equal(parts.map((r) => r[k]), [row[k], row[k]], `vs ${row.name}: ${k} the same in each shard`);
    }
    assert.is(mergedV.find((r) => r.name === 'b')!.udpSockets, 4, 'VS b: two UDP sockets in each shard');
    assert.is(mergedV.find((r) => r.name === 'a')!.tcpListeners, 2, 'VS a: one listener in each shard');
    const dev = mergedC.devices[0]!;
    for (const k of SUMMED_DEV) assert.is(dev[k], perC.reduce((n, p) => n + (p.data.devices[0]![k] as number), 0), `device ${k} is the sum`);
    for (const row of mergedC.vs) {
      for (const k of ['rxPackets', 'txPackets']) {
        assert.is(row[k], perC.reduce((n, p) => n + (p.data.vs.find((r) => r.vs === row.vs)![k] as number), 0), `counters vs ${row.vs}: ${k}`);
      }
    }
    assert.equal(mergedC.shards, perC.map((p) => p.data.shards[0]), 'the shards section lists each shard');
    assert.is(mergedC.pool.length, 2, 'a frame pool per shard');
    assert.ok((dev.rxPackets as number) > 0 && (dev.txPackets as number) > 0);
    console.log(`# show: device rx ${perC.map((p) => p.data.devices[0]!.rxPackets)} = ${dev.rxPackets}, tx ${perC.map((p) => p.data.devices[0]!.txPackets)} = ${dev.txPackets}; ` +
      `forwardedIn ${mergedC.shards.map((s) => s.forwardedIn)}; ringFull ${mergedC.shards.map((s) => s.ringFull)}`);
  }
  assert.ok(ok, 'two equal per-shard answers around the merged one');
});

ptest('a trace of both shards: one capture, frames of both queues in time order, at most count', async () => {
  const out = path.join(tmp, 'both.pcap');
  const COUNT = 300;
  labSteer(PREFIX, 0, 0);
  labSteer(PREFIX, 1, 1);
  try {
    const tr = await stack!.startTrace({ out, count: COUNT });
    const done = new Promise<number>((resolve) => tr.onDone(resolve));
    // Batches from the two peers one after the other: 20 datagrams and their echoes each.
    let batches = 0;
    for (let i = 0; i < 12 && !fs.existsSync(out); i++) {
      const r = await udpClient(i % 2, 1, 20).json<UdpResult>();
      assert.is(r.ok, 20);
      batches++;
    }
    const frames = await within(done, 10_000, 'trace');
    assert.is(frames, COUNT, `the capture stopped at ${COUNT} frames`);
    const text = sh('tshark', ['-r', out, '-T', 'fields', '-E', 'separator=,', '-e', 'frame.time_epoch', '-e', 'ip.src', '-e', 'ip.dst']);
    const rows = text.trim().split('\n').map((l) => l.split(','));
    assert.is(rows.length, COUNT, 'tshark reads every frame');
    const times = rows.map((r) => Number(r[0]));
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! >= times[i - 1]!, `frame ${i + 1} not before frame ${i}`);
    // Peer 0's frames reached queue 0 only and peer 1's queue 1 only: both shards' captures are in.
    const who = rows.map((r) => (r.includes('10.1.1.2') ? 0 : r.includes('10.1.1.3') ? 1 : -1)).filter((x) => x >= 0);
    assert.ok(who.includes(0) && who.includes(1), 'frames of both queues');
    // The batches ran one after the other, so in time order each peer's frames come in one run per batch.
    let runs = 1;
    for (let i = 1; i < who.length; i++) if (who[i] !== who[i - 1]) runs++;
    const full = Math.floor(who.length / 40);
    assert.ok(runs >= full && runs <= full + 1, `runs of one peer's frames follow the batches (${runs} runs in ${who.length} frames)`);
    console.log(`# trace: ${frames} frames from ${batches} batches (${who.filter((x) => x === 0).length} of peer 0 / queue 0, ${who.filter((x) => x === 1).length} of peer 1 / queue 1), ${runs} runs`);
  } finally {
    labSteer(PREFIX, 0, null);
    labSteer(PREFIX, 1, null);
  }
});

ptest('no frame lost between the shards, nothing fatal', async () => {
  const s = await settled();
  for (const x of s) {
    assert.is(x.sh.ringFull, 0, `shard ${x.sh.shard}: ring never full`);
    assert.equal(x.drops, {}, `shard ${x.sh.shard}: no drop of a shard kind (ring full, flow taken, not forwardable)`);
  }
  assert.not.ok(logs.some((m) => m.startsWith('FATAL')), logs.join('\n'));
  // Frames of every shard's pool are accounted (free, in the kernel's rings, in TX, held).
  const pools = ((await stack!.show('pool')) as Row[]);
  assert.is(pools.length, 2);
  for (const p of pools) assert.is((p.free as number) + (p.kernel as number) + (p.tx as number) + (p.held as number), p.total, JSON.stringify(p));
});

ptest('a shard that crashes ends `xdpstack run --shards 2` with status 1, a message naming it, and the device left clean', async () => {
  const crashLab = labUp({ prefix: CRASH_PREFIX, queues: 2, peers: [{ ipv4: '10.9.9.2/24' }] });
  const dev = crashLab.stackDevice;
  const cfgFile = path.join(tmp, 'crash.json');
  const sock = path.join(tmp, 'crash.sock');
  fs.writeFileSync(cfgFile, JSON.stringify({
    name: `crash-${CRASH_PREFIX}`,
    devices: [{ name: dev, driver: 'afxdp', frameCount: 1024 }],
    virtualServers: [{ name: 'a', links: [{ device: dev, addresses: ['10.9.9.1/24'] }] }],
    services: [{ type: 'udp-echo', vs: 'a', port: 7 }],
  }));
  const app = path.join(tmp, 'crash-app.js');
  fs.writeFileSync(app, `module.exports = (stack, { shard }) => {
  if (shard === 1) setTimeout(() => { throw new Error('deliberate failure in shard one'); }, 700);
};\n`);
  const bin = path.join(__dirname, '..', '..', 'bin', 'xdpstack.js');
  const child = spawn(process.execPath, [bin, 'run', cfgFile, '--shards', '2', '--app', app, '--socket', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: Date.now() })));
  try {
    const until = Date.now() + 15_000;
    while (!/running/.test(out) && child.exitCode === null && Date.now() < until) await sleep(20);
    const upAt = Date.now();
    assert.match(out, /stack 'crash-\w+' running: 2 shard\(s\)/, `started: ${out} ${err}`);
    assert.match(sh('ip', ['-d', 'link', 'show', 'dev', dev]), /prog\/xdp/, 'the XDP program is attached while it runs');
    const ex = await within(exited, 5000, 'exit after the crash');
    assert.is(ex.code, 1, 'exit status 1');
    assert.ok(ex.at - upAt < 5000, `ended ${ex.at - upAt} ms after it was up`);
    assert.match(err, /shard 1 of stack 'crash-\w+' died/);
    assert.match(err, /deliberate failure in shard one/);
    assert.not.match(sh('ip', ['-d', 'link', 'show', 'dev', dev]), /xdp/, 'no XDP program left on the device');
    assert.not.ok(fs.existsSync(path.join(RUN_DIR, `${dev}.pid`)), 'no pid file left');
    // The control socket is gone with it (closed before the exit).
    const conn = await new Promise<string>((resolve) => {
      const c = net.connect(sock);
      c.on('connect', () => { c.destroy(); resolve('connected'); });
      c.on('error', (e: Error & { code?: string }) => resolve(e.code ?? 'error'));
    });
    assert.is(conn, 'ENOENT', `control socket removed (${conn})`);
    console.log(`# crash: exit ${ex.code} ${ex.at - upAt} ms after start; control socket ${conn}`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    labDown(CRASH_PREFIX);
  }
});

test.run();
