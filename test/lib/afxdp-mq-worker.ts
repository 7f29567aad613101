/**
 * Worker thread of the multi-queue AF_XDP tests (test/afxdp-mq-lab.test.ts).
 *
 * mode 'echo': opens the AF_XDP socket of one queue in shard mode (the main thread attached the
 *   program) and answers UDP datagrams to port 7 by swapping the Ethernet, IPv4 and UDP addresses in
 *   place (the IPv4 and UDP checksums stay valid: both sums are over the same words). Counts what it
 *   received in a shared Int32Array (COUNTERS), so the main thread sees per-queue numbers live.
 *   Messages: { type: 'close' } closes the driver and answers with the pool's state and the stats;
 *   { type: 'exit-unclosed' } leaves without closing (the addon must release the socket itself).
 * mode 'load': loads the addon at the same moment as the other workers (a shared barrier) and makes
 *   libbpf print errors naming this worker, many times: each error must carry this worker's
 *   messages only (the library log is per thread).
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { openAfxdp, AfxdpProgramRef, AfxdpQueueDriver } from '../../driver/afxdp';
import { Burst, BURST_MAX } from '../../driver/types';
import { loadNative, NativeError } from '../../driver/native';

/** Indices of a worker's counters. */
export const C_RX = 0, C_ECHO = 1, C_TCP_SYN = 2, C_OTHER = 3, C_TX = 4, C_TX_DROP = 5, C_COUNT = 8;

export interface EchoWorkerData { mode: 'echo'; ifname: string; queue: number; frameCount: number; program: AfxdpProgramRef; counters: SharedArrayBuffer }
export interface LoadWorkerData { mode: 'load'; index: number; rounds: number; barrier: SharedArrayBuffer }


function echo(w: EchoWorkerData): void {
  const port = parentPort!;
  const logs: string[] = [];
  let d: AfxdpQueueDriver;
  try {
    d = openAfxdp({ ifname: w.ifname, queue: w.queue, frameCount: w.frameCount, program: w.program, log: (m) => { logs.push(m); port.postMessage({ type: 'log', msg: m }); } });
  } catch (e) {
    port.postMessage({ type: 'error', message: (e as Error).message });
    return;
  }
  const c = new Int32Array(w.counters);
  const rxb = new Burst(BURST_MAX);
  const txb = new Burst(BURST_MAX);
  const bytes = d.pool.bytes;
  const pool = d.pool;
  const now = () => Date.now() * 1000;
  const drain = () => {
    // Bounded: at most 64 bursts per wake-up; the next readable event continues.
    for (let round = 0; round < 64; round++) {
      rxb.clear();
      const got = d.rx(rxb, now());
      if (got === 0) break;
      Atomics.add(c, C_RX, got);
      txb.clear();
      for (let i = 0; i < got; i++) {
        const f = rxb.frame[i]!, o = rxb.off[i]!, len = rxb.len[i]!;
        const ipv4 = len >= 14 + 20 && bytes[o + 12] === 0x08 && bytes[o + 13] === 0x00 && (bytes[o + 14]! >> 4) === 4;
        const ihl = ipv4 ? (bytes[o + 14]! & 15) * 4 : 0;
        const proto = ipv4 ? bytes[o + 23] : -1;
        if (proto === 17 && len >= 14 + ihl + 8 && ((bytes[o + 14 + ihl + 2]! << 8) | bytes[o + 14 + ihl + 3]!) === 7) {
          swap(bytes, o, o + 6, 6); // MACs
          swap(bytes, o + 26, o + 30, 4); // IPv4 source / destination
          swap(bytes, o + 14 + ihl, o + 14 + ihl + 2, 2); // UDP ports
          txb.push(f, o, len);
          Atomics.add(c, C_ECHO, 1);
        } else {
          if (proto === 6 && len >= 14 + ihl + 14 && (bytes[o + 14 + ihl + 13]! & 0x12) === 0x02) Atomics.add(c, C_TCP_SYN, 1);
          else Atomics.add(c, C_OTHER, 1);
          pool.free(f);
        }
      }
      if (txb.n) {
        const taken = d.tx(txb, now());
        Atomics.add(c, C_TX, taken);
        for (let i = taken; i < txb.n; i++) { pool.free(txb.frame[i]!); Atomics.add(c, C_TX_DROP, 1); }
      }
      d.service(now());
    }
  };
  d.onReadable(drain);
  // Completions of what was sent, and the device check when no frame arrives.
  const tick = setInterval(() => d.service(now()), 5);
  port.on('message', (m: { type: string }) => {
    if (m.type === 'close') {
      clearInterval(tick);
      d.offReadable();
      d.close();
      port.postMessage({ type: 'closed', pool: d.pool.check(), stats: d.stats(), logs });
    } else if (m.type === 'stats') {
      port.postMessage({ type: 'stats', stats: d.stats(), pool: d.pool.check() });
    } else if (m.type === 'exit-unclosed') {
      clearInterval(tick);
      process.exit(0);
    }
  });
  port.postMessage({ type: 'ready', queue: d.queue, bindMode: d.bindMode, attachMode: d.attachMode, mac: [...d.mac], mtu: d.mtu });
}

function swap(b: Uint8Array, x: number, y: number, n: number): void {
  for (let i = 0; i < n; i++) { const t = b[x + i]!; b[x + i] = b[y + i]!; b[y + i] = t; }
}

function load(w: LoadWorkerData): void {
  const port = parentPort!;
  const bar = new Int32Array(w.barrier);
  // Everyone loads the addon at once: the main thread releases the barrier when all are waiting.
  Atomics.add(bar, 1, 1);
  Atomics.wait(bar, 0, 0, 10_000);
  const n = loadNative();
  const mine = new RegExp(`xdpstack-mq-${w.index}-\\d+\\.o`);
  let ok = 0, foreign = 0, missing = 0;
  for (let i = 0; i < w.rounds; i++) {
    try {
      new n.Program('lo', `/nonexistent/xdpstack-mq-${w.index}-${i}.o`, 'native');
      missing++;
    } catch (e) {
      const log = (e as NativeError).log ?? '';
      const named = [...log.matchAll(/xdpstack-mq-(\d+)-(\d+)\.o/g)];
      if (named.some((m) => Number(m[1]) !== w.index)) foreign++;
      else if (named.some((m) => Number(m[2]) === i) && mine.test(log)) ok++;
      else missing++;
    }
    n.lastLog(true);
  }
  port.postMessage({ type: 'loaded', index: w.index, ok, foreign, missing, burstMax: n.burstMax, maxQueues: n.maxQueues, hasXsk: typeof n.Xsk === 'function' });
}

// Imported by the test file for its constants: runs only as a worker.
if (!isMainThread) {
  const wd = workerData as EchoWorkerData | LoadWorkerData;
  if (wd.mode === 'echo') echo(wd);
  else load(wd);
}
