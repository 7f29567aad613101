/**
 * `npm run flood` / `node dist/bench/flood.js [scenario...]`: floods from kernel peers over AF_XDP
 * against a running stack, with its service measured before, during and after each flood in the
 * same run. Root only (lab namespaces, prefix `xf`, removed at the end). Rates on a shared 2-vCPU
 * machine are noisy: compare the during/before ratios of one run, not absolute rates across runs.
 *
 * Lab: the stack's device `xf0` (VS `flood`, 10.88.0.1/16, TCP echo and UDP echo on port 7,
 * bench/flood-server.ts), and behind the lab bridge three kernel peers:
 *   p0 10.88.0.2  the real client: a TCP echo loop (one established connection, 64 B
 *                 request/response, bench/c/tcp-echo-client.c), new-connection probes, ping;
 *   p1 10.88.0.3  the flooder: bench/c/gen.c in AF_XDP copy mode on its eth0 (modes syn, arp,
 *                 arp-off, frag: every frame built afresh with random spoofed fields);
 *   p2 10.88.0.4  the mass client of the connection scenarios (tcp-echo-client hold).
 *
 * Scenarios (all by default, or those named):
 *   syn         SYNs from random spoofed sources on 10.88.0.0/16 at the generator's top rate
 *   arp         ARP requests/replies from 8192 spoofed on-subnet senders, each with its own MAC
 *   arp-off     the same from off-subnet senders (100.64.0.0/10)
 *   frag        incomplete IPv4 fragment trains with random IDs
 *   conn-kill   10,000 connections from p2, then the client process killed (kernel FINs)
 *   conn-rst    10,000 connections from p2, then all reset at once (SO_LINGER 0)
 *   conn-vanish 10,000 connections from p2, then p2's link down and the client killed (nothing
 *               more arrives)
 *   (in the conn-* scenarios the server uses keepalive: 5 s idle, 1 s interval, 3 probes)
 *   syn-recv    2,000 spoofed SYNs in one second that never complete (SYN-RECEIVED), then idle
 *
 * For each: what was sent, what the stack counted (drops by reason), memory and tables before /
 * during (peak) / after, the service (echo rate, new connections, ping) before and during, and the
 * time until the tables are back to their size before the flood (bounded by FLOOD_RECOVER_S).
 *
 * The packet floods are switched on and off FLOOD_ROUNDS times (see packetFlood); the echo ratio is
 * flood windows over quiet windows of the same run.
 *
 * Environment: FLOOD_SECONDS (length of one flood window, default 5), FLOOD_ROUNDS (default 3),
 * FLOOD_RATE (generator frames/s, default 0 = as fast as it can), FLOOD_SYN_RATES (the syn scenario runs once per rate; default 0,100000,25000), FLOOD_CONNS (default 10000), FLOOD_RECOVER_S (default 150), FLOOD_POLICE (the device's XDP policers as JSON, e.g. {"synRate":100000}; default: driver/police.ts).
 * Results: printed, and bench/results/flood.json.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { labDown, labUp, Lab, SWITCH_STACK_PORT } from '../stack/lab/lab';
import { controlRequest } from '../stack/control/control';
import { BUILD, DIST_BENCH, lastJson, median, Proc, ROOT, run, sleep, table } from './lib';

export const FLOOD_PREFIX = 'xf';
const STACK_IP = '10.88.0.1';
const CIDR = `${STACK_IP}/16`;
const PEER_IPS = ['10.88.0.2', '10.88.0.3', '10.88.0.4'];
const PORT = 7;
const CONTROL = `/run/xdpstack/flood-${FLOOD_PREFIX}.sock`;

const SCENARIOS = ['syn', 'arp', 'arp-off', 'frag', 'conn-kill', 'conn-rst', 'conn-vanish', 'syn-recv'] as const;
type Scenario = (typeof SCENARIOS)[number];

const FLOOD_S = Number(process.env.FLOOD_SECONDS ?? 5);
const RATE = Number(process.env.FLOOD_RATE ?? 0);
const CONNS = Number(process.env.FLOOD_CONNS ?? 10000);
const RECOVER_S = Number(process.env.FLOOD_RECOVER_S ?? 150);
/** SYN flood rates (frames/s; 0 = as fast as the generator can). */
const SYN_RATES = (process.env.FLOOD_SYN_RATES ?? '0,100000,25000').split(',').map(Number);
/** Quiet windows between floods (s), rounds of flood + quiet, probe length in every window (s). */
const OFF_S = 4;
const ROUNDS = Number(process.env.FLOOD_ROUNDS ?? 3);
const PROBE_S = 2;

function tool(name: string): string {
  const f = path.join(BUILD, name);
  if (!fs.existsSync(f)) throw new Error(`${f} is missing: run 'make -C driver' (or scripts/setup.sh)`);
  return f;
}

/** One stat line of the server, with the time (s since the scenario began) it arrived. */
interface Stat {
  T: number; gc: boolean; cpuMs: number; loopMaxMs: number; heap: number; rss: number;
  pool: { free: number; kernel: number; tx: number; held: number; total: number };
  conns: number; states: Record<string, number>; timeWait: number; synQueue: number; cookiesSent: number; cookiesAccepted: number;
  accepted: number; closed: number; neigh: number; neighMax: number; reasmHeld: number; reasmActive: number; reasmMaxBytes: number;
  rx: number; tx: number; drops: Record<string, number>; vsDrops: Record<string, number>; xdp?: Record<string, number>;
  /** The driver's drops, with the XDP program's policers (xdp-syn-policed, xdp-arp-policed). */
  driverDrops?: Record<string, number>;
}
interface Sample { T: number; ops: number; errors: number }
interface Ping { sent: number; received: number; lossPct: number; avgMs: number; maxMs: number }
interface Probe { seconds: number; connects: number; connectErrors: number; ping: Ping | null }

class Clock {
  private readonly t0 = performance.now();
  get s(): number { return (performance.now() - this.t0) / 1000; }
}

/** Collects JSON lines of a process's stdout as they arrive, stamped with the clock. */
function lines<T>(p: Proc, clock: Clock, filter: (o: Record<string, unknown>) => boolean, out: (T & { T: number })[]): void {
  let buf = '';
  p.child.stdout!.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!l.startsWith('{')) continue;
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        if (filter(o)) out.push({ ...(o as T), T: clock.s });
      } catch { /* partial or foreign line */ }
    }
  });
}

class FloodLab {
  readonly lab: Lab;
  constructor() {
    this.lab = labUp({ prefix: FLOOD_PREFIX, peers: PEER_IPS.map((ip) => ({ ipv4: `${ip}/16` })) });
    for (const p of this.lab.peers) {
      execFileSync('ip', ['netns', 'exec', p.ns, 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1',
        'net.ipv4.ip_local_port_range=1024 65535'], { stdio: 'ignore' });
    }
  }
  ns(i: number): string { return this.lab.peers[i]!.ns; }
  /** A command in peer i's namespace, killed after timeoutS. */
  peer(i: number, cmd: string, args: string[], timeoutS: number, env: Record<string, string> = {}): Proc {
    const e = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    return run('ip', ['netns', 'exec', this.ns(i), 'env', ...e, 'timeout', '-s', 'KILL', String(timeoutS), cmd, ...args]);
  }
  /** The generator on p1's eth0. */
  gen(mode: string, seconds: number, rate = RATE, count = 0, sources = 0): Proc {
    const args = ['eth0', mode, this.lab.stackMac, PEER_IPS[1]!, STACK_IP, String(seconds), '0', String(rate), String(count), String(PORT)];
    if (sources) args.push(String(sources));
    return this.peer(1, tool('gen'), args, seconds + 30);
  }
  close(): void { labDown(FLOOD_PREFIX); }
}

/** A server process with its stat stream. */
class Server {
  readonly stats: Stat[] = [];
  readonly p: Proc;
  constructor(fl: FloodLab, readonly clock: Clock, totalS: number, keepaliveS = 0) {
    try { fs.unlinkSync(CONTROL); } catch { /* none */ }
    this.p = run(process.execPath, ['--expose-gc', path.join(DIST_BENCH, 'flood-server.js'), fl.lab.stackDevice, CIDR,
      String(totalS), '250', String(keepaliveS), CONTROL]);
    lines<Stat>(this.p, clock, (o) => o.stat === true, this.stats);
  }
  async ready(): Promise<void> { await this.p.waitFor(/^ready/, 20000); await sleep(500); }
  get last(): Stat { const s = this.stats[this.stats.length - 1]; if (!s) throw new Error(`no stats from the server: ${this.p.stderr}`); return s; }
  /** A stat line after a full GC. */
  async gcStat(): Promise<Stat> {
    const n = this.stats.length;
    this.p.child.kill('SIGUSR2');
    for (let i = 0; i < 100; i++) {
      const s = this.stats.slice(n).find((x) => x.gc);
      if (s) return s;
      await sleep(50);
    }
    throw new Error(`no GC stat from the server: ${this.p.stderr}`);
  }
  async stop(): Promise<void> {
    if (this.p.child.exitCode === null) this.p.child.kill('SIGTERM');
    await this.p.done;
    await sleep(300);
  }
  /** Peak of a field over stats in [a, b]. */
  peak(a: number, b: number, f: (s: Stat) => number): number {
    let m = -Infinity;
    for (const s of this.stats) if (s.T >= a && s.T <= b) m = Math.max(m, f(s));
    return m === -Infinity ? NaN : m;
  }
  /** Waits until `idle(stat)` holds (then returns the seconds waited) or capS passes (returns null). */
  async until(idle: (s: Stat) => boolean, capS: number): Promise<number | null> {
    const t0 = this.clock.s;
    while (this.clock.s - t0 < capS) {
      if (this.p.child.exitCode !== null) throw new Error(`server exited: ${this.p.stderr}`);
      const s = this.stats[this.stats.length - 1];
      if (s && s.T > t0 && idle(s)) return s.T - t0;
      await sleep(250);
    }
    return null;
  }
}

/** Echo rate (req/s) over [a, b] from the cumulative samples. */
function rate(samples: Sample[], a: number, b: number): number {
  const inside = samples.filter((s) => s.T >= a && s.T <= b);
  if (inside.length < 2) return NaN;
  const x = inside[0]!, y = inside[inside.length - 1]!;
  return (y.ops - x.ops) / (y.T - x.T);
}

/** Longest gap (s) between echo progress samples in [a, b]: a stall shows as a long gap with no ops. */
function longestStall(samples: Sample[], a: number, b: number): number {
  const inside = samples.filter((s) => s.T >= a && s.T <= b);
  let worst = 0, since = inside[0]?.T ?? a, ops = inside[0]?.ops ?? 0;
  for (const s of inside) {
    if (s.ops > ops) { worst = Math.max(worst, s.T - since); since = s.T; ops = s.ops; }
  }
  if (inside.length) worst = Math.max(worst, inside[inside.length - 1]!.T - since);
  return worst;
}

function parsePing(out: string): Ping | null {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) return null;
  const r = /= [\d.]+\/([\d.]+)\/([\d.]+)\//.exec(out);
  const sent = Number(m[1]), received = Number(m[2]);
  return { sent, received, lossPct: sent ? 100 * (sent - received) / sent : 0, avgMs: r ? Number(r[1]) : NaN, maxMs: r ? Number(r[2]) : NaN };
}

async function ping(fl: FloodLab, count: number, intervalS: number): Promise<Ping | null> {
  const p = fl.peer(0, 'ping', ['-q', '-n', '-c', String(count), '-i', String(intervalS), '-W', '1', STACK_IP], count * intervalS + 10);
  const code = await p.done;
  const r = parsePing(p.stdout);
  if (!r) console.log(`  (ping exited ${code} without a summary: ${(p.stdout + p.stderr).trim().slice(-300)})`);
  return r;
}

/** New connections (connect, 1 B each way, close; one at a time) for 1 s, and 50 pings over 1 s, side by side. */
async function probe(fl: FloodLab, seconds = 1): Promise<Probe> {
  const c = fl.peer(0, tool('tcp-echo-client'), ['connect', STACK_IP, String(PORT), '1', String(seconds), '0'], seconds + 15);
  const [pg] = await Promise.all([ping(fl, 50 * seconds, 0.02), c.done]);
  let connects = 0, connectErrors = 0;
  try { const r = lastJson<{ ops: number; errors: number }>(c); connects = r.ops; connectErrors = r.errors; } catch { connectErrors = -1; }
  return { seconds, connects, connectErrors, ping: pg };
}

/** The echo loop: one connection, 64 B request/response, cumulative counts every 0.25 s. */
function echoLoop(fl: FloodLab, clock: Clock, seconds: number): { p: Proc; samples: Sample[] } {
  const samples: Sample[] = [];
  const p = fl.peer(0, tool('tcp-echo-client'), ['echo', STACK_IP, String(PORT), '1', String(seconds), '64', '0'], seconds + 20,
    { TCP_CLIENT_INTERVAL: '0.25' });
  lines<Sample>(p, clock, (o) => typeof o.t === 'number', samples);
  return { p, samples };
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const r: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) { const d = (b[k] ?? 0) - (a[k] ?? 0); if (d) r[k] = d; }
  return r;
}

function memRow(s: Stat): Record<string, number> {
  return { heapMiB: s.heap, rssMiB: s.rss, poolFree: s.pool.free, poolHeld: s.pool.held, poolTx: s.pool.tx, poolKernel: s.pool.kernel,
    conns: s.conns, synQueue: s.synQueue, timeWait: s.timeWait, neigh: s.neigh, reasmHeld: s.reasmHeld, reasmActive: s.reasmActive };
}

/** Tables back at (or below) their size before the flood, and no frame held beyond it. */
function idleLike(base: Stat): (s: Stat) => boolean {
  return (s) => s.conns <= base.conns && s.synQueue <= base.synQueue && s.neigh <= base.neigh && s.reasmHeld <= base.reasmHeld
    && s.pool.held <= base.pool.held + 64;
}

const xdpDrops = (s: Stat) => {
  const x = s.xdp ?? {};
  return { rxDropped: x.rxDropped ?? 0, rxRingFull: x.rxRingFull ?? 0, rxFillRingEmptyDescs: x.rxFillRingEmptyDescs ?? 0 };
};

/** Kernel counters on the path to the stack: the stack's veth (ethtool -S) and the bridge port facing it. */
function kernelPath(fl: FloodLab): Record<string, number> {
  const r: Record<string, number> = {};
  try {
    const out = execFileSync('ethtool', ['-S', fl.lab.stackDevice], { encoding: 'utf8' });
    for (const m of out.matchAll(/^\s*([\w]+):\s*(\d+)$/gm)) if (/drop|full|err/.test(m[1]!)) r[`${fl.lab.stackDevice}.${m[1]}`] = Number(m[2]);
  } catch { /* no ethtool statistics */ }
  for (const [ns, dev] of [[undefined, fl.lab.stackDevice], [fl.lab.switchNs, SWITCH_STACK_PORT]] as const) {
    try {
      const j = JSON.parse(execFileSync('ip', [...(ns ? ['-n', ns] : []), '-j', '-s', 'link', 'show', 'dev', dev], { encoding: 'utf8' })) as
        { stats64: { rx: { dropped: number }; tx: { dropped: number } } }[];
      r[`${dev}.rx_dropped`] = j[0]!.stats64.rx.dropped;
      r[`${dev}.tx_dropped`] = j[0]!.stats64.tx.dropped;
    } catch { /* no statistics */ }
  }
  return r;
}

type Result = Record<string, unknown>;

/**
 * Scenarios syn, arp, arp-off, frag. The echo loop runs throughout; the flood is switched on and
 * off ROUNDS times (OFF_S off, FLOOD_S on, ..., OFF_S off at the end), each window with the same
 * probe (new connections and ping for PROBE_S), and the ratio is the median echo rate of the
 * flood windows over the median of the quiet ones: on this shared machine the load of others
 * drifts, and alternating windows see the same drift.
 */
async function packetFlood(fl: FloodLab, name: string, mode: string, what: string, genRate = RATE): Promise<Result> {
  const clock = new Clock();
  const total = OFF_S + ROUNDS * (FLOOD_S + OFF_S) + 3;
  const srv = new Server(fl, clock, total + RECOVER_S + 60);
  await srv.ready();
  const base0 = await srv.gcStat();
  const echo = echoLoop(fl, clock, total + 10);
  await sleep(1000);
  const before = await srv.gcStat();
  const k0 = kernelPath(fl);
  const windows: { kind: 'quiet' | 'flood'; a: number; b: number; probe: Probe }[] = [];
  const sent: { tx_total: number; elapsed: number; arp_rx: number; rx_total: number }[] = [];
  const quiet = async () => {
    const a = clock.s;
    const pr = await probe(fl, PROBE_S);
    await sleep(Math.max(0, (a + OFF_S - clock.s) * 1000));
    windows.push({ kind: 'quiet', a: a + 0.3, b: clock.s, probe: pr });
  };
  let tFirst = 0, tLast = 0;
  for (let r = 0; r < ROUNDS; r++) {
    await quiet();
    const a = clock.s;
    if (!tFirst) tFirst = a;
    const gen = fl.gen(mode, FLOOD_S, genRate);
    await sleep(700); // the generator attaches its XDP program and starts
    const pr = await probe(fl, PROBE_S);
    const code = await gen.done;
    if (code !== 0) throw new Error(`generator failed (${code}): ${gen.stderr}`);
    sent.push(lastJson(gen));
    tLast = clock.s;
    windows.push({ kind: 'flood', a: a + 0.7, b: tLast, probe: pr });
  }
  await quiet();
  const k1 = kernelPath(fl);
  const end = srv.last;
  echo.p.child.kill('SIGTERM');
  await echo.p.done;
  const recovery = await srv.until(idleLike(before), RECOVER_S);
  const after = await srv.gcStat();
  await srv.stop();

  const rates = (k: string) => windows.filter((w) => w.kind === k).map((w) => rate(echo.samples, w.a, w.b));
  const probes = (k: string) => windows.filter((w) => w.kind === k).map((w) => w.probe);
  const rQuiet = rates('quiet'), rFlood = rates('flood');
  const frames = sent.reduce((n, g) => n + g.tx_total, 0), secs = sent.reduce((n, g) => n + g.elapsed, 0);
  const xdpDropped = (end.xdp?.rxDropped ?? 0) - (before.xdp?.rxDropped ?? 0);
  const policedOf = (st: Stat) => (st.driverDrops?.['xdp-syn-policed'] ?? 0) + (st.driverDrops?.['xdp-arp-policed'] ?? 0);
  const policed = policedOf(end) - policedOf(before);
  const peak = (f: (s: Stat) => number) => srv.peak(tFirst, tLast + 0.5, f);
  const sumProbe = (ps: Probe[]) => ({
    seconds: ps.reduce((n, p) => n + p.seconds, 0), connects: ps.reduce((n, p) => n + p.connects, 0),
    connectErrors: ps.reduce((n, p) => n + p.connectErrors, 0),
    pingSent: ps.reduce((n, p) => n + (p.ping?.sent ?? 0), 0), pingReceived: ps.reduce((n, p) => n + (p.ping?.received ?? 0), 0),
    pingMaxMs: Math.max(...ps.map((p) => p.ping?.maxMs ?? NaN)),
  });
  const res: Result = {
    what, rateAsked: genRate || 'max', rounds: ROUNDS,
    sent: { frames, fps: Math.round(frames / secs), seconds: secs, arpSeenByFlooder: sent.reduce((n, g) => n + g.arp_rx, 0),
      ipv4BackToFlooder: sent.reduce((n, g) => n + g.rx_total, 0) },
    // Every flood frame either reached the stack, was shed by the XDP program's policers, or was
    // dropped by the kernel for want of a free fill-ring slot (the XDP socket's counter); the
    // excess is the service traffic of the same time.
    accounting: { sent: frames, stackRx: end.rx - before.rx, policed, xdpDropped, excessOverSent: end.rx - before.rx + policed + xdpDropped - frames },
    stackTx: end.tx - before.tx,
    drops: diff(before.drops, end.drops), vsDrops: diff(before.vsDrops, end.vsDrops),
    xdp: diff(xdpDrops(before), xdpDrops(end)), kernelPath: diff(k0, k1),
    cookiesSent: end.cookiesSent - before.cookiesSent, cookiesAccepted: end.cookiesAccepted - before.cookiesAccepted,
    echo: { quiet: median(rQuiet), flood: median(rFlood), ratio: median(rFlood) / median(rQuiet), quietWindows: rQuiet, floodWindows: rFlood,
      longestStallInFlood: Math.max(...windows.filter((w) => w.kind === 'flood').map((w) => longestStall(echo.samples, w.a, w.b))) },
    probes: { quiet: sumProbe(probes('quiet')), flood: sumProbe(probes('flood')) },
    memory: {
      idle: memRow(base0), before: memRow(before),
      peak: { heapMiB: peak((s) => s.heap), rssMiB: peak((s) => s.rss), poolHeld: peak((s) => s.pool.held), poolFreeMin: -peak((s) => -s.pool.free),
        conns: peak((s) => s.conns), synQueue: peak((s) => s.synQueue), neigh: peak((s) => s.neigh), neighMax: before.neighMax,
        reasmHeld: peak((s) => s.reasmHeld), reasmActive: peak((s) => s.reasmActive), reasmMaxBytes: before.reasmMaxBytes },
      end: memRow(end), after: memRow(after),
    },
    server: serverLoad(srv, tFirst, tLast),
    recoverySeconds: recovery,
    series: series(echo.samples, srv.stats, tFirst),
  };
  report(name, res);
  return res;
}

/** The server's CPU use (% of one core) and longest event-loop delay over [a, b]. */
function serverLoad(srv: Server, a: number, b: number): { cpuPct: number; loopMaxMs: number } {
  const inside = srv.stats.filter((s) => s.T >= a && s.T <= b + 0.3);
  const x = inside[0], y = inside[inside.length - 1];
  return { cpuPct: x && y && y.T > x.T ? Math.round((y.cpuMs - x.cpuMs) / (10 * (y.T - x.T))) : NaN, loopMaxMs: Math.max(...inside.map((s) => s.loopMaxMs)) };
}

/** Time series relative to t0 (s): echo req/s per 0.25 s sample, and the server's stat lines (time as stamped by the server). */
function series(samples: Sample[], stats: Stat[], t0: number): Record<string, unknown> {
  const echo: [number, number][] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!, b = samples[i]!;
    echo.push([+(b.T - t0).toFixed(2), Math.round((b.ops - a.ops) / (b.T - a.T))]);
  }
  const st = stats.map((s) => [+(s.T - t0).toFixed(2), s.cpuMs, s.loopMaxMs, s.rx, s.pool.held, s.pool.free, s.conns, s.synQueue, s.neigh, s.reasmHeld, s.heap]);
  return { echo, stats: { columns: ['T', 'cpuMs', 'loopMaxMs', 'rx', 'held', 'free', 'conns', 'synQueue', 'neigh', 'reasmHeld', 'heapMiB'], rows: st } };
}

/** Scenarios conn-kill, conn-rst, conn-vanish: CONNS connections from p2, then dropped at once. */
async function connFlood(fl: FloodLab, name: Scenario, how: 'kill' | 'rst' | 'vanish'): Promise<Result> {
  const clock = new Clock();
  // The server uses keepalive (5 s idle, 1 s interval, 3 probes), as a server facing networks it does
  // not control should: connections whose peer vanished, or whose RST was lost, are closed by it.
  const srv = new Server(fl, clock, RECOVER_S + 300, 5);
  await srv.ready();
  const base0 = await srv.gcStat();
  const echoS = 600;
  const echo = echoLoop(fl, clock, echoS);
  const tEcho = clock.s;
  await sleep(1000);
  const probeBefore = await probe(fl);
  const before = srv.last;
  // The mass client: ip netns exec runs it in place (same pid), so a signal reaches it directly.
  const tOpen = clock.s;
  const hold = run('ip', ['netns', 'exec', fl.ns(2), tool('tcp-echo-client'), 'hold', STACK_IP, String(PORT), String(CONNS), '120']);
  let held: { held: number; errors: number; seconds: number };
  let probeLoaded: Probe, loaded: Stat, tDrop: number, during: { ping: Ping | null; control: { ms: number[]; failures: number } };
  try {
    held = JSON.parse(await hold.waitFor(/^\{"mode":"hold"/, 130000)) as typeof held;
    await sleep(1000);
    loaded = srv.last;
    probeLoaded = await probe(fl);
    // Drop them all at once; meanwhile ping every 10 ms and ask the control socket every 250 ms.
    const pingP = ping(fl, 500, 0.01);
    const ctl = controlProbe(5);
    tDrop = clock.s;
    if (how === 'rst') hold.child.kill('SIGUSR1');
    else {
      if (how === 'vanish') execFileSync('ip', ['-n', fl.ns(2), 'link', 'set', 'dev', 'eth0', 'down']);
      hold.child.kill('SIGKILL');
    }
    during = { ping: await pingP, control: await ctl };
  } finally {
    if (hold.child.exitCode === null) hold.child.kill('SIGKILL');
    await hold.done;
  }
  const tTeardown = clock.s;
  const recovery = await srv.until((s) => s.conns <= before.conns && s.pool.held <= before.pool.held + 64, RECOVER_S);
  const tRecovered = clock.s;
  await sleep(3000); // a quiet window after recovery, for the echo baseline
  const tQuiet = clock.s;
  echo.p.child.kill('SIGTERM');
  await echo.p.done;
  await sleep(300);
  const after = await srv.gcStat();
  await srv.stop();
  if (how === 'vanish') execFileSync('ip', ['-n', fl.ns(2), 'link', 'set', 'dev', 'eth0', 'up']);

  const peak = (f: (s: Stat) => number) => srv.peak(tOpen, tRecovered, f);
  const res: Result = {
    what: `${CONNS} connections from p2 (${held.held} established, 1 B echoed on each, ${held.errors} errors, ${held.seconds.toFixed(1)} s), then ` +
      (how === 'kill' ? 'the client killed (kernel FINs)' : how === 'rst' ? 'all reset (SO_LINGER 0)' : "p2's link down and the client killed") +
      '; server keepalive 5 s idle + 3 probes 1 s apart',
    opened: loaded.accepted - before.accepted, connsLoaded: loaded.conns, statesLoaded: loaded.states,
    closedByApp: after.closed - before.closed, connsAfter: after.conns,
    countersAddUp: { accepted: after.accepted, closed: after.closed, live: after.conns, ok: after.accepted === after.closed + after.conns },
    drops: diff(before.drops, after.drops), vsDrops: diff(before.vsDrops, after.vsDrops), xdp: diff(xdpDrops(before), xdpDrops(after)),
    echo: ((q: number[], t: number) => ({ before: q[0], loaded: q[1], afterRecovery: q[2], quiet: median(q), teardown: t, ratio: t / median(q),
      longestStallTeardown: longestStall(echo.samples, tDrop, tRecovered) }))(
      [rate(echo.samples, tEcho + 0.5, tOpen), rate(echo.samples, tOpen + held.seconds + 0.5, tDrop), rate(echo.samples, tRecovered + 0.3, tQuiet)],
      rate(echo.samples, tDrop, tTeardown)),
    probes: { before: probeBefore, loaded: probeLoaded },
    teardown: during,
    memory: { idle: memRow(base0), before: memRow(before), loaded: memRow(loaded),
      peak: { heapMiB: peak((s) => s.heap), rssMiB: peak((s) => s.rss), poolHeld: peak((s) => s.pool.held), poolFreeMin: -peak((s) => -s.pool.free), conns: peak((s) => s.conns), neigh: peak((s) => s.neigh) },
      after: memRow(after) },
    // Seconds from the drop until the connection table is back to its size before the 10,000 opened.
    tablesIdleAfterDropS: ((x) => (x ? +(x.T - tDrop).toFixed(2) : null))(srv.stats.find((x) => x.T >= tDrop && x.conns <= before.conns)),
    server: serverLoad(srv, tDrop, tRecovered),
    recoverySeconds: recovery,
    series: series(echo.samples, srv.stats, tDrop),
  };
  report(name, res);
  return res;
}

/** `show counters` over the control socket every 250 ms for `seconds`: latencies. */
async function controlProbe(seconds: number): Promise<{ ms: number[]; failures: number }> {
  const ms: number[] = [];
  let failures = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    try {
      const r = await controlRequest(CONTROL, { cmd: 'show', kind: 'counters' }, { timeoutMs: 5000 });
      if (r.ok) ms.push(Math.round(performance.now() - t)); else failures++;
    } catch { failures++; }
    await sleep(250);
  }
  return { ms, failures };
}

/** syn-recv: 2,000 spoofed SYNs in 1 s that never complete; how long until the SYN queue is empty. */
async function synRecv(fl: FloodLab): Promise<Result> {
  const clock = new Clock();
  const srv = new Server(fl, clock, RECOVER_S + 120);
  await srv.ready();
  const base0 = await srv.gcStat();
  const echo = echoLoop(fl, clock, 600);
  const tEcho = clock.s;
  await sleep(2000);
  const before = srv.last;
  const tFlood = clock.s;
  const gen = fl.gen('syn', 5, 2000, 2000);
  if (await gen.done !== 0) throw new Error(`generator failed: ${gen.stderr}`);
  const g = lastJson<{ tx_total: number; elapsed: number; arp_rx: number }>(gen);
  await sleep(1000);
  const probeDuring = await probe(fl, 3);
  const tSent = clock.s;
  const recovery = await srv.until(idleLike(before), RECOVER_S);
  const tRecovered = clock.s;
  echo.p.child.kill('SIGTERM');
  await echo.p.done;
  const after = await srv.gcStat();
  await srv.stop();
  const peak = (f: (s: Stat) => number) => srv.peak(tFlood, tRecovered, f);
  const res: Result = {
    what: `2,000 SYNs from spoofed sources on 10.88.0.0/16 at 2,000/s, never completed`,
    sent: { frames: g.tx_total, seconds: g.elapsed, arpSeenByFlooder: g.arp_rx },
    synQueuePeak: peak((s) => s.synQueue), cookiesSent: srv.last.cookiesSent - before.cookiesSent,
    neighPeak: peak((s) => s.neigh),
    drops: diff(before.drops, after.drops), vsDrops: diff(before.vsDrops, after.vsDrops),
    echo: { before: rate(echo.samples, tEcho + 0.5, tFlood), during: rate(echo.samples, tFlood, tSent),
      ratio: rate(echo.samples, tFlood, tSent) / rate(echo.samples, tEcho + 0.5, tFlood) },
    probes: { afterSyns: probeDuring },
    memory: { idle: memRow(base0), before: memRow(before), peak: { heapMiB: peak((s) => s.heap), rssMiB: peak((s) => s.rss), poolHeld: peak((s) => s.pool.held) }, after: memRow(after) },
    server: serverLoad(srv, tFlood, tRecovered),
    recoverySeconds: recovery,
    series: series(echo.samples, srv.stats, tFlood),
  };
  report('syn-recv', res);
  return res;
}

function report(name: string, r: Result): void {
  console.log(`\n-- ${name}: ${r.what as string}`);
  for (const [k, v] of Object.entries(r)) if (k !== 'what' && k !== 'series') console.log(`  ${k}: ${JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isInteger(x) ? +x.toFixed(3) : x))}`);
}

function summary(results: Record<string, Result>): void {
  const rows: (string | number)[][] = [];
  for (const [name, r] of Object.entries(results)) {
    if ((r as { error?: string }).error) { rows.push([name, 'FAILED', '', '', '', '', '']); continue; }
    const e = r.echo as { quiet?: number; before: number; flood?: number; during?: number; teardown?: number; ratio: number };
    const m = r.memory as { before: Record<string, number>; peak: Record<string, number>; after: Record<string, number> };
    rows.push([name, `${Math.round(e.quiet ?? e.before)} → ${Math.round(e.flood ?? e.during ?? e.teardown ?? NaN)}`, e.ratio,
      `${m.before.heapMiB} / ${m.peak.heapMiB} / ${m.after.heapMiB}`, `${m.before.rssMiB} / ${m.peak.rssMiB} / ${m.after.rssMiB}`,
      `${m.before.poolHeld} / ${m.peak.poolHeld} / ${m.after.poolHeld}`,
      r.recoverySeconds === null ? `> ${RECOVER_S}` : (r.recoverySeconds as number).toFixed(1)]);
  }
  table('floods: echo req/s quiet → flood (one connection; medians of windows), heap/RSS MiB and held frames before / peak / after (after a GC), seconds to idle tables',
    ['scenario', 'echo req/s', 'ratio', 'heap MiB', 'RSS MiB', 'held frames', 'recovery s'], rows);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const bad = args.filter((a) => !(SCENARIOS as readonly string[]).includes(a));
  if (bad.length) { console.error(`unknown scenario(s): ${bad.join(', ')}; choose from ${SCENARIOS.join(', ')}`); process.exit(2); }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) { console.error('npm run flood needs root (AF_XDP, network namespaces)'); process.exit(2); }
  const chosen = (args.length ? args : [...SCENARIOS]) as Scenario[];
  const fl = new FloodLab();
  const results: Record<string, Result> = {};
  const t0 = Date.now();
  try {
    for (const name of chosen) {
      const t = Date.now();
      try {
        switch (name) {
          case 'syn':
            for (const r of SYN_RATES) {
              results[r ? `syn@${r / 1000}k` : 'syn@max'] = await packetFlood(fl, r ? `syn@${r / 1000}k` : 'syn@max', 'syn',
                'TCP SYNs to port 7 from random spoofed sources on 10.88.0.0/16 (random ports and ISNs, MSS/SACK/TS/WS options)', r);
            }
            break;
          case 'arp': results[name] = await packetFlood(fl, name, 'arp', 'ARP requests (broadcast) and replies (unicast) from 8,192 spoofed on-subnet senders, each with its own MAC'); break;
          case 'arp-off': results[name] = await packetFlood(fl, name, 'arp-off', 'the same from 8,192 off-subnet senders (100.64.0.0/10)'); break;
          case 'frag': results[name] = await packetFlood(fl, name, 'frag', 'first and middle IPv4 fragments (512 B, MF set, never the last) with random IDs, UDP to port 7'); break;
          case 'conn-kill': results[name] = await connFlood(fl, name, 'kill'); break;
          case 'conn-rst': results[name] = await connFlood(fl, name, 'rst'); break;
          case 'conn-vanish': results[name] = await connFlood(fl, name, 'vanish'); break;
          case 'syn-recv': results[name] = await synRecv(fl); break;
        }
      } catch (e) {
        console.log(`  ${name} FAILED: ${(e as Error).stack ?? e}`);
        results[name] = { error: String((e as Error).message ?? e) };
      }
      console.log(`  (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    }
  } finally {
    fl.close();
  }
  summary(results);
  const dir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'flood.json'), JSON.stringify({ date: new Date().toISOString(), floodSeconds: FLOOD_S, rate: RATE, conns: CONNS,
    totalSeconds: (Date.now() - t0) / 1000, results }, null, 2) + '\n');
  console.log(`\nresults written to bench/results/flood.json (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}

main().catch((e) => { console.error(e); process.exit(1); });
