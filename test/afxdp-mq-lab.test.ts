/**
 * AF_XDP over several queues, one worker thread per queue (shard mode): the main thread attaches
 * the XDP program (attachAfxdpProgram) and owns the maps; each worker loads the addon and opens the
 * socket of its queue with the program's reference. A 2-queue lab (prefix 'qa') steers a kernel
 * peer's frames onto one queue or the other (labSteer: tc BPF on the switch port toward the
 * stack); the worker of that queue receives them and answers (UDP echo by swapping addresses), so
 * each worker is shown to receive and transmit on its own queue, a flow moved to the other queue
 * while it runs stays byte-exact, and a replaced device is followed by the program and the sockets.
 * Also: the addon loaded by four workers at once, and the option checks of both sides.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { canRunPrivileged, labPrefix, sh } from './lib/env';
import { labDown, labQueueFrames, labSteer, labSteering, labUp, Lab, LabConfigError } from '../stack/lab/lab';
import {
  attachAfxdpProgram, attachedPrograms, AfxdpProgram, AfxdpProgramRef, checkProgramOptions, ipv4ToU32, MAX_QUEUES, openAfxdp, RUN_DIR,
} from '../driver/afxdp';
import { parseMac } from '../driver/types';
import { C_COUNT, C_ECHO, C_OTHER, C_RX, C_TCP_SYN, C_TX, EchoWorkerData, LoadWorkerData } from './lib/afxdp-mq-worker';

const WORKER = path.join(__dirname, 'lib', 'afxdp-mq-worker.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// (c) option checks (no device needed)

const fakeRef = (over: Partial<AfxdpProgramRef> = {}): AfxdpProgramRef => ({
  ifname: 'lo', ifindex: 1, xsksMapFd: 3, queues: [0, 1], attachMode: 'native', dispatcher: false, ...over,
});

test('shard mode: a bad queue or program reference is refused with a clear error', () => {
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: -1, program: fakeRef() }), /bad queue -1/);
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: 1.5, program: fakeRef() }), /bad queue 1\.5/);
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: MAX_QUEUES, program: fakeRef({ queues: [MAX_QUEUES] }) }),
    /queue 64 is beyond the 64 queues the XDP program's XSKMAP holds/);
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: 1, program: fakeRef({ queues: [0] }) }),
    /queue 1 is not one of the queues the program was attached for \(0\)/);
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: 0, program: {} as AfxdpProgramRef }), /bad program reference \(no ifname\).*attachAfxdpProgram/);
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: 0, program: fakeRef({ ifname: 'eth9' }) }), /program reference is for eth9, not lo/);
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: 0, program: fakeRef({ xsksMapFd: -1 }) }), /xsksMapFd -1 is not an fd/);
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: 0, program: fakeRef({ shared: new ArrayBuffer(12) as unknown as SharedArrayBuffer }) }),
    /shared is not the program state/);
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: 0, mode: 'skb', program: fakeRef() }), /'mode' belongs to the program \(attachAfxdpProgram/);
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: 0, police: { synRate: 1 }, program: fakeRef() }), /'police' belongs to the program/);
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: 0, frameSize: 1024 as 2048, program: fakeRef() }), /frameSize must be 2048 or 4096/);

  assert.throws(() => checkProgramOptions({ ifname: 'lo', queues: 0 }), /queues must be a count ≥ 1 or a list of queue ids, got 0/);
  assert.throws(() => checkProgramOptions({ ifname: 'lo', queues: 65 }), /queue count reaches queue 64 is beyond the 64 queues/);
  assert.throws(() => checkProgramOptions({ ifname: 'lo', queues: [0, 0] }), /queue 0 is listed twice/);
  assert.throws(() => checkProgramOptions({ ifname: 'lo', queues: [-1] }), /bad queue id -1 in queues/);
  assert.throws(() => checkProgramOptions({ ifname: 'lo', queues: [] }), /non-empty list/);
  assert.throws(() => checkProgramOptions({ ifname: 'lo', mode: 'fast' as 'native' }), /mode must be 'auto', 'native' or 'skb'/);
  assert.throws(() => checkProgramOptions({ ifname: 'a b' }), /bad interface name/);
  assert.throws(() => checkProgramOptions({ ifname: 'lo', police: { synRate: -1 } }), /afxdp: .*synRate/);
  assert.equal(checkProgramOptions({ ifname: 'lo', queues: [3, 1] }).queues, [1, 3]);
  assert.equal(checkProgramOptions({ ifname: 'lo', queues: 2 }).queues, [0, 1]);
  assert.is(checkProgramOptions({ ifname: 'lo' }).queues, null, 'default: every receive queue of the device');
});

test('lab: a bad queue count is refused before anything is built', () => {
  for (const q of [0, 65, 1.5, '2']) {
    assert.throws(() => labUp({ prefix: 'qc', queues: q as number, peers: [{}] }), (e: Error) =>
      e instanceof LabConfigError && /lab: bad queue count .* \(expected an integer 1\.\.64\)/.test(e.message));
  }
});

// ---------------------------------------------------------------------------------------------
// (b) the addon in four workers at once

test('the native addon loads in four workers at once; each sees only its own library messages', async () => {
  const N = 4, ROUNDS = 300;
  const barrier = new SharedArrayBuffer(8);
  const bar = new Int32Array(barrier);
  const workers = Array.from({ length: N }, (_, index) => new Worker(WORKER, { workerData: { mode: 'load', index, rounds: ROUNDS, barrier } satisfies LoadWorkerData }));
  try {
    const results = workers.map((w) => new Promise<{ index: number; ok: number; foreign: number; missing: number; burstMax: number; maxQueues: number; hasXsk: boolean }>((resolve, reject) => {
      w.on('message', (m) => { if (m.type === 'loaded') resolve(m); });
      w.on('error', reject);
      w.on('exit', (code) => reject(new Error(`worker exited (${code}) before reporting`)));
    }));
    // Release them together once all four wait (bounded: 10 s).
    const until = Date.now() + 10_000;
    while (Atomics.load(bar, 1) < N && Date.now() < until) await sleep(5);
    assert.is(Atomics.load(bar, 1), N, 'all workers reached the barrier');
    Atomics.store(bar, 0, 1);
    Atomics.notify(bar, 0);
    const got = await Promise.all(results);
    for (const r of got) {
      assert.is(r.ok, ROUNDS, `worker ${r.index}: every error carried its own library message`);
      assert.is(r.foreign, 0, `worker ${r.index}: no message of another worker`);
      assert.is(r.missing, 0);
      assert.is(r.burstMax, 64);
      assert.is(r.maxQueues, MAX_QUEUES, 'the XSKMAP size the TypeScript side assumes');
      assert.ok(r.hasXsk);
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
});

// ---------------------------------------------------------------------------------------------
// (a) per-queue workers on a 2-queue lab device

const PREFIX = labPrefix('qa');
const privileged = canRunPrivileged();
const PEERS = [{ ipv4: '10.1.1.2/24' }, { ipv4: '10.1.1.3/24' }];
const STACK_IP = '10.1.1.1';
let lab: Lab;
let prog: AfxdpProgram | null = null;
const logs: string[] = [];

interface EchoWorker { w: Worker; queue: number; c: Int32Array; logs: string[]; ready: Promise<{ bindMode: string; attachMode: string; mtu: number }> }
const workers: EchoWorker[] = [];

function startWorker(queue: number, ref: AfxdpProgramRef): EchoWorker {
  const counters = new SharedArrayBuffer(C_COUNT * 4);
  const data: EchoWorkerData = { mode: 'echo', ifname: lab.stackDevice, queue, frameCount: 512, program: ref, counters };
  const w = new Worker(WORKER, { workerData: data });
  const ew: EchoWorker = { w, queue, c: new Int32Array(counters), logs: [], ready: null! };
  ew.ready = new Promise((resolve, reject) => {
    w.on('message', (m) => {
      if (m.type === 'ready') resolve(m);
      else if (m.type === 'error') reject(new Error(`worker ${queue}: ${m.message}`));
      else if (m.type === 'log') ew.logs.push(m.msg);
    });
    w.on('error', reject);
  });
  return ew;
}

function request<T>(ew: EchoWorker, type: string, answer: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`worker ${ew.queue}: no '${answer}' within 5 s`)), 5000);
    const on = (m: { type: string }) => { if (m.type === answer) { clearTimeout(t); ew.w.off('message', on); resolve(m as T); } };
    ew.w.on('message', on);
    ew.w.postMessage({ type });
  });
}

/**
 * Peer `i`'s kernel sends `n` UDP datagrams to the stack's echo port over `flows` sockets, one at a
 * time (`gap` seconds apart), and checks each answer byte for byte.
 */
const CLIENT = `
import socket, sys, json, time
dst, n, tag, flows, tmo, gap = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(flows)]
for s in socks: s.settimeout(tmo)
ok = bad = lost = late = 0
for i in range(n):
    if gap: time.sleep(gap)
    s = socks[i % flows]
    msg = ('%s-%06d-' % (tag, i)).encode() + bytes((i * 7 + k) & 0xff for k in range(32 + (i * 13) % 900))
    s.sendto(msg, (dst, 7))
    try:
        while True:
            data, addr = s.recvfrom(4096)
            if data == msg and addr == (dst, 7):
                ok += 1
                break
            if data.startswith(tag.encode()):
                late += 1
                continue
            bad += 1
            break
    except socket.timeout:
        lost += 1
print(json.dumps({'ok': ok, 'bad': bad, 'lost': lost, 'late': late}))
`;

interface ClientResult { ok: number; bad: number; lost: number; late: number }

function udpClient(peer: number, n: number, tag: string, flows = 1, timeoutS = 1, gapS = 0): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', lab.peers[peer]!.ns, '/usr/bin/python3', '-c', CLIENT, STACK_IP, String(n), tag, String(flows), String(timeoutS), String(gapS)],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const kill = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => {
      clearTimeout(kill);
      try { resolve(JSON.parse(out) as ClientResult); } catch { reject(new Error(`udp client exited ${code}: ${out} ${err}`)); }
    });
  });
}

/** A kernel TCP connect from peer `peer` to the stack (nothing answers: SYN and one retransmission). */
function tcpSyn(peer: number): Promise<void> {
  const py = `import socket\ntry: socket.create_connection(('${STACK_IP}', 80), timeout=1.5)\nexcept Exception: pass`;
  return new Promise((resolve) => {
    const p = spawn('ip', ['netns', 'exec', lab.peers[peer]!.ns, '/usr/bin/python3', '-c', py], { stdio: 'ignore' });
    const kill = setTimeout(() => p.kill('SIGKILL'), 10_000);
    p.on('exit', () => { clearTimeout(kill); resolve(); });
  });
}

const snap = () => workers.map((ew) => Array.from(ew.c));
const delta = (a: number[][], b: number[][], q: number, k: number) => b[q]![k]! - a[q]![k]!;

/** Static ARP entries: the peers reach the stack's address without the stack answering ARP. */
function peerNeighbours(): void {
  for (const p of lab.peers) sh('ip', ['-n', p.ns, 'neigh', 'replace', STACK_IP, 'lladdr', lab.stackMac, 'dev', 'eth0', 'nud', 'permanent']);
}

if (privileged) {
  test.before(() => {
    lab = labUp({ prefix: PREFIX, queues: 2, peers: PEERS });
    peerNeighbours();
  });
  test.after(async () => {
    try {
      await Promise.all(workers.map((ew) => ew.w.terminate()));
      prog?.close();
    } finally {
      labDown(PREFIX);
    }
  });

  test('labSteer: a one-queue lab has nothing to steer; bad peer or queue refused', () => {
    const one = labPrefix('qb');
    labUp({ prefix: one, peers: [{}] });
    try {
      assert.throws(() => labSteer(one, 0, 0), /lab qb\w* has one queue: build it with queues ≥ 2/);
    } finally {
      labDown(one);
    }
    assert.throws(() => labSteer(PREFIX, 2, 0), (e: Error) => e instanceof LabConfigError && /bad peer 2 \(lab \w+ has peers 0\.\.1\)/.test(e.message));
    assert.throws(() => labSteer(PREFIX, 0, 2), /bad queue 2 \(lab \w+ has queues 0\.\.1; null = kernel spreading\)/);
    assert.throws(() => labSteer(PREFIX, 0, 0.5), /bad queue 0\.5/);
    assert.equal(labSteering(PREFIX), { queues: 2, steered: [null, null], steeredFrames: [0, 0] });
  });

  test('2-queue lab: both ends have 2 rx and 2 tx queues; the program is attached for both queues', () => {
    for (const [ns, dev] of [[undefined, lab.stackDevice], [lab.switchNs, 'stk']] as const) {
      const q = (ns ? sh('ls', [`/sys/class/net/${dev}/queues`], { ns }) : fs.readdirSync(`/sys/class/net/${dev}/queues`).join('\n')).split('\n').filter((x) => x).sort();
      assert.equal(q, ['rx-0', 'rx-1', 'tx-0', 'tx-1'], `${dev}`);
    }
    assert.throws(() => attachAfxdpProgram({ ifname: lab.stackDevice, queues: 3, log: () => {} }), /has 2 receive queue\(s\); queue 2 does not exist/);
    prog = attachAfxdpProgram({ ifname: lab.stackDevice, queues: 2, log: (m) => logs.push(m) });
    assert.equal(prog.queues, [0, 1]);
    assert.is(prog.rxQueues, 2);
    assert.is(prog.attachMode, 'native');
    assert.equal(attachedPrograms(lab.stackDevice), ['xdpstack_xdp']);
    assert.ok(fs.existsSync(path.join(RUN_DIR, `${lab.stackDevice}.pid`)), 'pid file written by the main thread');
    prog.ownMac(parseMac(lab.stackMac), 0, true);
    prog.own(ipv4ToU32(STACK_IP), 0, true);
    const ref = prog.ref;
    assert.ok(Number.isInteger(ref.xsksMapFd) && ref.xsksMapFd > 2);
    assert.instance(ref.shared, SharedArrayBuffer);
    // A second attachment of the same device in this process is refused, in either mode.
    assert.throws(() => attachAfxdpProgram({ ifname: lab.stackDevice, log: () => {} }), /attached by attachAfxdpProgram\(\) in this process/);
    assert.throws(() => openAfxdp({ ifname: lab.stackDevice, log: () => {} }), /shard mode.*program: prog\.ref/);
    // Worker-side checks that need the device: a queue the device lacks, an fd that is no XSKMAP.
    assert.throws(() => openAfxdp({ ifname: 'lo', queue: 1, program: fakeRef() }), /lo has 1 receive queue\(s\); queue 1 does not exist/);
    assert.throws(() => openAfxdp({ ifname: lab.stackDevice, queue: 0, frameCount: 256, program: { ...ref, shared: undefined, xsksMapFd: 0 }, log: () => {} }),
      /cannot register the socket in the XSKMAP \(fd 0\) of .*fd 0 is not a BPF map/);
    assert.throws(() => openAfxdp({ ifname: lab.stackDevice, queue: 0, frameCount: 256, program: { ...ref, shared: undefined, ifindex: ref.ifindex + 1000 }, log: () => {} }),
      /the XDP program is not on .*'s current device/);
  });

  test('two workers each load the addon and open the socket of their queue', async () => {
    assert.ok(prog, 'program attached');
    const ref = prog!.ref;
    workers.push(startWorker(0, ref), startWorker(1, ref));
    const r = await Promise.all(workers.map((ew) => ew.ready));
    for (const x of r) {
      assert.is(x.bindMode, 'copy', 'veth: copy mode');
      assert.is(x.attachMode, 'native');
      assert.is(x.mtu, 1500);
    }
  });

  test('a peer steered to queue 0, then to queue 1: the worker of that queue receives and answers, byte-exact', async () => {
    assert.is(workers.length, 2, 'workers running');
    const N = 50;
    const steps: Array<[number, number | null]> = [[0, null], [1, 0], [0, 1]];
    for (const [q, previous] of steps) {
      assert.is(labSteer(PREFIX, 0, q), previous, 'labSteer returns the previous steering');
      const before = snap();
      const framesBefore = labQueueFrames(PREFIX);
      const steeredBefore = labSteering(PREFIX).steeredFrames;
      const res = await udpClient(0, N, `q${q}`);
      const after = snap();
      const framesAfter = labQueueFrames(PREFIX);
      const steeredAfter = labSteering(PREFIX).steeredFrames;
      assert.equal(res, { ok: N, bad: 0, lost: 0, late: 0 }, `steered to queue ${q}: every datagram echoed, byte-exact`);
      assert.is(delta(before, after, q, C_ECHO), N, `worker ${q} answered all`);
      assert.is(delta(before, after, 1 - q, C_ECHO), 0, `worker ${1 - q} saw none of them`);
      assert.is(delta(before, after, 1 - q, C_RX), 0, `nothing else reached queue ${1 - q}`);
      assert.ok(delta(before, after, q, C_TX) >= N, `worker ${q} transmitted the answers`);
      // The device's own per-queue counters and the steering program's agree.
      assert.ok(framesAfter[q]! - framesBefore[q]! >= N, `ethtool: queue ${q} received the frames`);
      assert.is(framesAfter[1 - q]! - framesBefore[1 - q]!, 0, `ethtool: queue ${1 - q} received none`);
      assert.ok(steeredAfter[q]! - steeredBefore[q]! >= N);
    }
    assert.equal(labSteering(PREFIX).steered, [0, null]);
  });

  test('a kernel TCP connection attempt follows the steering too (SYNs on the steered queue)', async () => {
    for (const q of [1, 0]) {
      labSteer(PREFIX, 1, q);
      const before = snap();
      await tcpSyn(1);
      const after = snap();
      assert.ok(delta(before, after, q, C_TCP_SYN) >= 1, `worker ${q} saw the SYN`);
      assert.is(delta(before, after, 1 - q, C_TCP_SYN), 0, `worker ${1 - q} saw none`);
    }
    labSteer(PREFIX, 1, null);
  });

  test('without steering the kernel spreads flows over both queues; every answer still arrives', async () => {
    labSteer(PREFIX, 0, null);
    const before = snap();
    const res = await udpClient(0, 64, 'spread', 32);
    const after = snap();
    assert.equal(res, { ok: 64, bad: 0, lost: 0, late: 0 });
    const e0 = delta(before, after, 0, C_ECHO), e1 = delta(before, after, 1, C_ECHO);
    assert.is(e0 + e1, 64);
    assert.ok(e0 > 0 && e1 > 0, `32 flows over both queues (queue 0: ${e0}, queue 1: ${e1})`);
    console.log(`# kernel spreading, 32 flows: queue 0 answered ${e0}, queue 1 ${e1} of 64`);
  });

  test('a flow moved to the other queue mid-transfer stays byte-exact', async () => {
    labSteer(PREFIX, 0, 0);
    const N = 400, SWITCH_AT = 150;
    const before = snap();
    // Paced (4 ms apart, ~1.6 s in all) so the move lands in the middle of the transfer.
    const client = udpClient(0, N, 'move', 1, 1, 0.004);
    // Move the flow once queue 0 has answered SWITCH_AT of it (bounded wait).
    const until = Date.now() + 30_000;
    while (workers[0]!.c[C_ECHO]! - before[0]![C_ECHO]! < SWITCH_AT && Date.now() < until) await sleep(2);
    labSteer(PREFIX, 0, 1);
    const res = await client;
    const after = snap();
    assert.equal(res, { ok: N, bad: 0, lost: 0, late: 0 }, 'every datagram answered with its own bytes, none lost');
    const e0 = delta(before, after, 0, C_ECHO), e1 = delta(before, after, 1, C_ECHO);
    assert.is(e0 + e1, N);
    assert.ok(e0 >= SWITCH_AT && e0 < N, `queue 0 answered the first part (${e0})`);
    assert.ok(e1 > 0, `queue 1 answered the rest (${e1})`);
    console.log(`# flow moved mid-transfer: queue 0 answered ${e0}, queue 1 ${e1} of ${N}, all byte-exact`);
    assert.is(delta(before, after, 0, C_OTHER) + delta(before, after, 1, C_OTHER), 0, 'no stray frames');
  });

  test('a replaced device: the main thread attaches the program again, the workers register again', async () => {
    const idx0 = prog!.ifindex;
    lab = labUp({ prefix: PREFIX, queues: 2, peers: PEERS, force: true });
    peerNeighbours();
    // Program check and worker checks run once a second: wait (bounded) until both queues serve again.
    const until = Date.now() + 15_000;
    const back = () => prog!.deviceState === 'up' && prog!.ifindex !== idx0 &&
      workers.every((ew) => ew.logs.some((m) => /is back \(ifindex \d+: socket registered again/.test(m)));
    while (!back() && Date.now() < until) await sleep(100);
    assert.ok(back(), `recovered: ${JSON.stringify({ prog: logs, w0: workers[0]!.logs, w1: workers[1]!.logs })}`);
    assert.is(prog!.losses, 1);
    assert.is(prog!.recoveries, 1);
    for (const ew of workers) {
      assert.is(ew.logs.filter((m) => /afxdp: lost device/.test(m)).length, 1, `worker ${ew.queue} logged the loss once`);
    }
    for (const q of [0, 1]) {
      labSteer(PREFIX, 0, q);
      const before = snap();
      const res = await udpClient(0, 20, `back${q}`);
      const after = snap();
      assert.equal(res, { ok: 20, bad: 0, lost: 0, late: 0 }, `queue ${q} serves the new device`);
      assert.is(delta(before, after, q, C_ECHO), 20);
    }
  });

  test('a worker closes its queue: its frames pass to the kernel, the other queue keeps serving; frames all accounted', async () => {
    const w1 = workers[1]!;
    const closed = await request<{ pool: { free: number; kernel: number; tx: number; held: number; total: number }; stats: { drops: Record<string, number> } }>(w1, 'close', 'closed');
    assert.equal(closed.pool, { free: 512, kernel: 0, tx: 0, held: 0, total: 512 }, 'every frame back in the pool');
    labSteer(PREFIX, 0, 1);
    const pc0 = prog!.programCounters();
    const res = await udpClient(0, 5, 'gone', 1, 0.3);
    const pc1 = prog!.programCounters();
    assert.is(res.ok, 0, 'nobody answers on queue 1');
    assert.ok(pc1.passed - pc0.passed >= 5, 'frames of a queue without a socket pass to the kernel');
    assert.is(pc1.redirected, pc0.redirected);
    labSteer(PREFIX, 0, 0);
    const res0 = await udpClient(0, 10, 'still');
    assert.equal(res0, { ok: 10, bad: 0, lost: 0, late: 0 }, 'queue 0 unaffected');
    await w1.w.terminate();
    workers.splice(1, 1);
  });

  test('a worker that ends without closing releases its socket (process.exit: exit hooks; terminate(): the addon finalizers)', async () => {
    for (const how of ['process.exit', 'terminate'] as const) {
      const gone = startWorker(1, prog!.ref);
      await gone.ready;
      if (how === 'terminate') await gone.w.terminate();
      else await new Promise<void>((resolve) => { gone.w.once('exit', () => resolve()); gone.w.postMessage({ type: 'exit-unclosed' }); });
      // The queue opens again at once (a socket still bound would make this fail with EBUSY).
      const again = startWorker(1, prog!.ref);
      await again.ready;
      workers[1] = again;
      labSteer(PREFIX, 0, 1);
      const before = snap();
      const res = await udpClient(0, 10, `again-${how}`);
      const after = snap();
      assert.equal(res, { ok: 10, bad: 0, lost: 0, late: 0 }, `after ${how}`);
      assert.is(delta(before, after, 1, C_ECHO), 10);
      if (how === 'process.exit') { await request(again, 'close', 'closed'); await again.w.terminate(); }
    }
  });

  test('main thread close: program detached, pid file removed', async () => {
    for (const ew of workers) await request(ew, 'close', 'closed');
    prog!.close();
    assert.equal(attachedPrograms(lab.stackDevice), []);
    assert.not.ok(fs.existsSync(path.join(RUN_DIR, `${lab.stackDevice}.pid`)));
    assert.throws(() => prog!.own(ipv4ToU32(STACK_IP), 0, false), /detached \(closed\)/);
    prog = null;
  });
}

test.run();
