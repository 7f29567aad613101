/**
 * Soak: TCP transfers for a long time (SOAK_MINUTES, default 30), checked byte for byte and
 * against stalls, with memory and the frame pool watched.
 *
 *   1. Against Linux peers in the lab (root only), through the lab's impairment (tc BPF on the peers'
 *      switch ports): 0.1 %, 1 %, 5 % loss, and corruption with loss; in both directions (the
 *      stack receives, the stack sends) and echoes (both at once), on an untagged and a VLAN peer at
 *      the same time.
 *   2. Between two stacks over the memory link (virtual time): loss, reordering with jitter,
 *      duplication, corruption and a rate-limited bottleneck queue; both directions at once.
 *
 * The two alternate round by round. Every transfer has a deadline (a miss is a stall and fails the
 * soak with the connection state); after each round no UMEM frame may be held. At the end it prints
 * transfers, bytes, retransmissions, worst times, heap and RSS before/after and the impairment
 * counters, and exits 1 on any failure or on heap growth over SOAK_MAX_HEAP_GROWTH_MB (default 64).
 *
 *   npm run soak                       30 minutes
 *   SOAK_MINUTES=3 npm run soak        3 minutes
 *   SOAK_LAB=0 npm run soak            memory link only (also what runs without root)
 */
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { ImpairRig, peerTcpCounters, TransferError, TransferResult } from '../test/lib/impair';
import { twoHosts, pattern, sha } from '../test/lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import type { Impairments } from '../driver/memory';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const MAX_HEAP_GROWTH_MB = Number(process.env.SOAK_MAX_HEAP_GROWTH_MB ?? 64);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const WITH_LAB = isRoot && process.env.SOAK_LAB !== '0';
const PREFIX = `xo${(process.pid % 1296).toString(36).padStart(2, '0')}`;
const MAX_FAILURES = 5;

if (!Number.isFinite(MINUTES) || MINUTES <= 0) {
  console.error(`soak: SOAK_MINUTES must be a positive number, got '${process.env.SOAK_MINUTES}'`);
  process.exit(2);
}

interface LabMix { name: string; loss: number; corrupt: number; size: number; deadlineMs: number }
const LAB_MIXES: LabMix[] = [
  { name: 'lab 0.1% loss', loss: 0.001, corrupt: 0, size: 4 << 20, deadlineMs: 120_000 },
  { name: 'lab 1% loss', loss: 0.01, corrupt: 0, size: 2 << 20, deadlineMs: 120_000 },
  { name: 'lab 5% loss', loss: 0.05, corrupt: 0, size: 1 << 20, deadlineMs: 180_000 },
  { name: 'lab 1% corrupt + 1% loss', loss: 0.01, corrupt: 0.01, size: 2 << 20, deadlineMs: 120_000 },
  { name: 'lab 0.1% corrupt + 0.1% loss', loss: 0.001, corrupt: 0.001, size: 4 << 20, deadlineMs: 120_000 },
];

interface MemMix { name: string; imp: Impairments; size: number }
const MEM_MIXES: MemMix[] = [
  { name: 'mem 1% loss, 5% reorder, 2% dup, jitter', imp: { loss: 0.01, reorder: 0.05, reorderDelayUs: 2000, duplicate: 0.02, jitterUs: 500, delayUs: 1000 }, size: 2 << 20 },
  { name: 'mem 5% loss', imp: { loss: 0.05, delayUs: 1000 }, size: 1 << 20 },
  { name: 'mem 20 Mbit/s, 32-frame queue, 0.5% loss', imp: { rateBps: 20e6, queueFrames: 32, loss: 0.005, delayUs: 5000 }, size: 1 << 20 },
  { name: 'mem 1% corrupt, 1% loss, 2% reorder', imp: { corrupt: 0.01, loss: 0.01, reorder: 0.02, reorderDelayUs: 3000, delayUs: 1000 }, size: 2 << 20 },
];
/** Virtual-time bound of one memory-link exchange (a stall otherwise). */
const MEM_MAX_US = 300_000_000;

interface Figures { transfers: number; bytes: number; retrans: number; rto: number; worstMs: number; totalMs: number }
const figures = new Map<string, Figures>();
const failures: string[] = [];

function record(mix: string, bytes: number, ms: number, retrans: number, rto: number): void {
  const f = figures.get(mix) ?? { transfers: 0, bytes: 0, retrans: 0, rto: 0, worstMs: 0, totalMs: 0 };
  f.transfers++; f.bytes += bytes; f.retrans += retrans; f.rto += rto; f.totalMs += ms;
  f.worstMs = Math.max(f.worstMs, ms);
  figures.set(mix, f);
}

function fail(msg: string): void {
  failures.push(msg);
  console.log(`! FAILURE ${failures.length}: ${msg}`);
}

const gc = (globalThis as { gc?: () => void }).gc;
function heap(): { heapMB: number; rssMB: number } {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { heapMB: m.heapUsed / 1048576, rssMB: m.rss / 1048576 };
}

// ---------------------------------------------------------------------------------------------
// Lab rounds

async function labRound(rig: ImpairRig, mix: LabMix): Promise<void> {
  rig.setImpair(mix.loss, mix.corrupt);
  // Both peers at once (untagged and VLAN 7), each: to the stack, from the stack, echo.
  await Promise.all(rig.lab.peers.map(async (_, peer) => {
    for (const kind of ['toStack', 'fromStack', 'echo'] as const) {
      if (failures.length >= MAX_FAILURES) return;
      try {
        const r: TransferResult = await rig[kind](peer, mix.size, mix.deadlineMs);
        record(`${mix.name}, ${r.kind}`, r.bytes * (r.kind === 'echo' ? 2 : 1), r.ms, r.retransSegs, r.rtoExpirations);
      } catch (e) {
        if (e instanceof TransferError) fail(`${mix.name}: ${e.message}`);
        else throw e;
      }
    }
  }));
  const c = await rig.poolSettled();
  if (c.held !== 0 || c.free + c.kernel + c.tx + c.held !== c.total) fail(`${mix.name}: frame pool after the round ${JSON.stringify(c)}`);
}

// ---------------------------------------------------------------------------------------------
// Memory-link rounds (two stacks, virtual time)

async function memRound(mix: MemMix, seed: number): Promise<void> {
  const w = twoHosts({ link: { seed, ...mix.imp }, tcp: { cc: seed % 2 ? 'cubic' : 'newreno' } });
  const up = pattern(mix.size, seed * 2 + 1);
  const down = pattern(mix.size, seed * 2 + 2);
  const atServer: Buffer[] = [];
  const atClient: Buffer[] = [];
  let serverDone = false;
  let clientDone = false;
  let server: Socket | null = null;
  // Both directions at once: each side sends its buffer and ends.
  createServer(w.a.ctx(), { allowHalfOpen: true }, (s: Socket) => {
    server = s;
    s.on('data', (d: Buffer) => atServer.push(d));
    s.on('end', () => { serverDone = true; });
    s.on('error', () => {});
    s.end(down);
  }).listen(7000);
  const c = connect(w.b.ctx(), 7000, '10.1.1.1', () => c.end(up));
  c.on('data', (d: Buffer) => atClient.push(d));
  c.on('end', () => { clientDone = true; });
  c.on('error', () => {});
  const t0 = Date.now();
  const ok = await w.run(() => serverDone && clientDone, MEM_MAX_US);
  const ms = Date.now() - t0;
  const what = `${mix.name} (seed ${seed})`;
  const got = (b: Buffer[]) => b.reduce((n, x) => n + x.length, 0);
  if (!ok) { fail(`${what}: STALLED after ${MEM_MAX_US / 1e6} s of virtual time (server got ${got(atServer)}, client got ${got(atClient)} of ${mix.size})`); return; }
  if (sha(Buffer.concat(atServer)) !== sha(up) || sha(Buffer.concat(atClient)) !== sha(down)) { fail(`${what}: NOT byte-exact`); return; }
  const cs = c.connection?.conn.stats;
  const ss = (server as Socket | null)?.connection?.conn.stats;
  record(`${mix.name}, both ways`, 2 * mix.size, ms, (cs?.retransSegs ?? 0) + (ss?.retransSegs ?? 0), (cs?.rtoExpirations ?? 0) + (ss?.rtoExpirations ?? 0));
  if (!(await w.run(() => w.a.engine.tcp.connCount === 0 && w.b.engine.tcp.connCount === 0, 200_000_000))) fail(`${what}: connections not released`);
  await w.run(() => false, 100_000);
  for (const h of [w.a, w.b]) {
    const p = h.engine.devices[0]!.pool.check();
    if (p.held !== 0 || p.tx !== 0) fail(`${what}: frame pool after the exchange ${JSON.stringify(p)}`);
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = Date.now();
  const endAt = started + MINUTES * 60_000;
  console.log(`soak: ${MINUTES} min, ${WITH_LAB ? `lab (prefix ${PREFIX}) and memory link` : 'memory link only (lab needs root; SOAK_LAB=0 turns it off)'}${gc ? '' : ' (no --expose-gc: heap figures are noisy)'}`);
  let lab: Lab | null = null;
  let rig: ImpairRig | null = null;
  const peersBefore: Record<string, number>[] = [];
  try {
    if (WITH_LAB) {
      lab = labUp({ prefix: PREFIX, peers: [{ ipv4: '10.72.0.2/24' }, { vlan: 7, ipv4: '10.72.7.2/24' }] });
      rig = new ImpairRig(lab);
      for (const p of lab.peers) peersBefore.push(await peerTcpCounters(p.ns));
    }
    let heap0: ReturnType<typeof heap> | null = null;
    let heapMax = 0;
    let round = 0;
    while (Date.now() < endAt && failures.length < MAX_FAILURES) {
      const t = Date.now();
      const labMix = LAB_MIXES[round % LAB_MIXES.length]!;
      const memMix = MEM_MIXES[round % MEM_MIXES.length]!;
      if (rig) await labRound(rig, labMix);
      await memRound(memMix, 1000 + round);
      round++;
      const h = heap();
      if (!heap0) heap0 = h; // after one round of each: the warm-up is done
      heapMax = Math.max(heapMax, h.heapMB);
      const transfers = [...figures.values()].reduce((n, f) => n + f.transfers, 0);
      console.log(`round ${round} ${((Date.now() - started) / 60000).toFixed(1)} min: ${rig ? labMix.name + ' + ' : ''}${memMix.name} in ${Date.now() - t} ms; ` +
        `${transfers} transfers; heap ${h.heapMB.toFixed(1)} MB, rss ${h.rssMB.toFixed(0)} MB`);
    }
    const h1 = heap();
    // ---- figures
    const elapsedMin = (Date.now() - started) / 60000;
    console.log(`\nsoak done: ${elapsedMin.toFixed(1)} min, ${round} rounds, ${failures.length} failure(s)`);
    console.log('mix                                                  transfers     MB  retrans    RTO  worst ms  mean ms');
    let tt = 0; let tb = 0; let tr = 0;
    for (const [name, f] of figures) {
      tt += f.transfers; tb += f.bytes; tr += f.retrans;
      console.log(`${name.padEnd(52)} ${String(f.transfers).padStart(9)} ${(f.bytes / 1048576).toFixed(0).padStart(6)} ${String(f.retrans).padStart(8)} ${String(f.rto).padStart(6)} ${String(f.worstMs).padStart(9)} ${(f.totalMs / f.transfers).toFixed(0).padStart(8)}`);
    }
    console.log(`total: ${tt} transfers, ${(tb / 1048576).toFixed(0)} MB byte-exact, ${tr} segments retransmitted by xdpstack`);
    if (heap0) console.log(`heap after round 1 ${heap0.heapMB.toFixed(1)} MB, at the end ${h1.heapMB.toFixed(1)} MB (max ${heapMax.toFixed(1)} MB); rss ${heap0.rssMB.toFixed(0)} → ${h1.rssMB.toFixed(0)} MB`);
    if (rig && lab) {
      const imp = rig.impairment();
      const sum = (k: 'frames' | 'dropped' | 'corrupted', d: 'in' | 'out') => imp.reduce((n, p) => n + p[d][k], 0);
      console.log(`lab impairment (counters of the last mix): toward the peers ${sum('frames', 'in')} frames, ${sum('dropped', 'in')} dropped, ${sum('corrupted', 'in')} corrupted; ` +
        `from the peers ${sum('frames', 'out')} frames, ${sum('dropped', 'out')} dropped, ${sum('corrupted', 'out')} corrupted`);
      const drops = rig.drops();
      console.log(`xdpstack drops over the soak: ${JSON.stringify(drops)}`);
      const pool = await rig.poolSettled();
      console.log(`frame pool at the end: ${JSON.stringify(pool)}`);
      for (const [i, p] of lab.peers.entries()) {
        const a = await peerTcpCounters(p.ns);
        const b = peersBefore[i]!;
        console.log(`peer ${i} (Linux): RetransSegs +${a.RetransSegs! - b.RetransSegs!}, InCsumErrors +${a.InCsumErrors! - b.InCsumErrors!}, InErrs +${a.InErrs! - b.InErrs!}`);
      }
      if (pool.held !== 0) fail(`frame pool at the end ${JSON.stringify(pool)}`);
    }
    if (heap0 && h1.heapMB - heap0.heapMB > MAX_HEAP_GROWTH_MB) fail(`heap grew ${(h1.heapMB - heap0.heapMB).toFixed(1)} MB (limit ${MAX_HEAP_GROWTH_MB} MB)`);
  } finally {
    try { rig?.close(); } finally { if (lab) labDown(PREFIX); }
  }
  if (failures.length) {
    console.log(`\nSOAK FAILED: ${failures.length} failure(s):\n- ${failures.join('\n- ')}`);
    return 1;
  }
  console.log('\nsoak passed');
  return 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(`soak: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
