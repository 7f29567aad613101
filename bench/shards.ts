/**
 * `shards`: one shard against two, both through ShardedStack (stack/shard/threads.ts) with
 * `shards: 1` and `shards: 2`, so the shard count is the only difference. The stack runs alone in
 * a child process (bench/shard-server.ts), so its CPU time (process.cpuUsage(): every thread) is the
 * stack's; the load comes from other processes.
 *
 * Lab `sd` (BENCH_SHARDS_PREFIX), 2 queues on the stack's veth `sd0` and on the switch's port `stk`:
 *  - UDP echo (the `udp-echo` service, port 7): the AF_XDP generator (bench/c/gen.c) on `stk`
 *    (taken out of the bridge, as in the packet benchmarks of bench/net.ts), one thread sending
 *    on queue 0 only (1 shard) or on queues 0 and 1 in turn (2 shards): a frame sent on `stk`
 *    queue q arrives on `sd0` queue q.
 *  - TCP echo (the `tcp-echo` service): `stk` back in the bridge, kernel peers running the C epoll
 *    client (bench/c/tcp-echo-client.c, CONNS connections of 64 B request/response each), each peer
 *    pinned to a queue with labSteer (a queue without a shard passes its frames to the kernel).
 * Each at two loads:
 *  - max: the generator as fast as it goes / both peers unpaced (both on queue 0 for 1 shard, peer i
 *    on queue i for 2): the same load generators either way; the total rates compare.
 *  - paced, the same load per shard: UDP RATE frames/s on each queue in use, TCP one peer per shard
 *    at RATE requests/s. The shards then do the same work each, so packets per CPU-second compare
 *    the cost of a packet with one shard and with two: what sharding itself adds (the target).
 * In each run the child's CPU time, runtime steps and device counters are sampled (SIGUSR1) at the
 * start and the end of the load's measurement window: packets per CPU-second = frames the stack sent
 * / CPU seconds it used in between. At the end of each TCP run its `show counters` shards rows give
 * the frames handed between shards (forwarded, forwardedIn), per million frames received.
 *
 * Every round runs each contender once (fresh stack process), in alternating order; medians over
 * rounds and ratios of medians are reported. Targets are printed, never asserted.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { labDown, labSteer, labUp, Lab, SWITCH_BRIDGE, SWITCH_STACK_PORT } from '../stack/lab/lab';
import { BUILD, DIST_BENCH, lastJson, median, Proc, run, sleep, table } from './lib';

export const SHARDS_PREFIX = process.env.BENCH_SHARDS_PREFIX ?? 'sd';
const STACK_IP = '10.89.0.1';
const GEN_IP = '10.89.0.9';
const PEER_IPS = ['10.89.0.2', '10.89.0.3'];

export interface ShardsOptions {
  rounds: number;
  /** Measurement window per run (s). */
  seconds: number;
  /** Load before the window (s). */
  warmup: number;
  /** TCP connections per peer. */
  conns: number;
  /** The shards busy-poll (spin while traffic flows) instead of waiting for readiness. */
  busyPoll: boolean;
  /** Paced runs: UDP frames and TCP requests per second offered to each shard. */
  udpRate: number;
  tcpRate: number;
}

type Count = 1 | 2;
const COUNTS: Count[] = [1, 2];

interface Row { [k: string]: unknown }
interface Sample {
  pid: number; cpuUs: number; wallUs: number; threads: { tid: number; ticks: number }[]; steps: number[];
  counters: { devices: Row[]; shards?: Row[] };
}

/** One run of one contender: rates over the window and what the stack spent on them. */
export interface RunResult {
  /** Answers per second seen by the load (UDP datagrams or TCP requests). */
  rate: number;
  /** UDP: frames offered per second; TCP: connection errors the clients counted. */
  offered: number;
  /** CPU seconds the stack's process used per second of the window (cores busy). */
  cores: number;
  /** Frames the stack sent (received) per second of the window. */
  txPps: number;
  rxPps: number;
  /** Frames sent per CPU-second of the stack's process. */
  pktPerCpuS: number;
  /** Answers per CPU-second (rate / cores). */
  opsPerCpuS: number;
  /** Frames received per runtime step (all shards): how much each turn of a shard's loop batched. */
  rxPerStep: number;
  /** Share of the process's CPU ticks in the window: per shard thread, the main thread, the rest. */
  cpuSplit: { shards: number[]; main: number; other: number };
  /** UDP: answers per second per queue (the generator's count); TCP: connections each shard accepted. */
  spread: number[];
  /** End of the run (TCP): frames handed to other shards and taken from them, per million received. */
  forwardedPerM?: number;
  forwardedInPerM?: number;
  ringFull?: number;
}

function tool(name: string): string {
  const f = path.join(BUILD, name);
  if (!fs.existsSync(f)) throw new Error(`${f} is missing: run 'make -C driver' (or scripts/setup.sh)`);
  return f;
}

function sh(args: string[]): void {
  execFileSync('ip', args, { stdio: 'ignore' });
}

let nextPort = 21000;

/** The stack child: resolves once it serves (and knows its shard threads). */
async function startStack(lab: Lab, shards: Count, port: number, totalS: number, busyPoll: boolean): Promise<{ p: Proc; tids: number[] }> {
  // BENCH_SHARDS_PROFILE=DIR: a CPU profile per thread of the stack (summarise with dist/bench/tcp-profile.js).
  const dir = process.env.BENCH_SHARDS_PROFILE;
  const prof = dir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(dir, `${shards}-shard${shards > 1 ? 's' : ''}-${port}`)}`] : [];
  const p = run(process.execPath, [...prof, path.join(DIST_BENCH, 'shard-server.js'), lab.stackDevice, `${STACK_IP}/24`, String(shards), String(port),
    String(totalS), ...(busyPoll ? ['busy'] : [])]);
  await p.waitFor(/^ready/, 30_000);
  await sleep(300); // and the shards' own lines (their console goes through the main thread)
  const tids: number[] = [];
  for (const l of p.stdout.split('\n')) {
    if (!l.startsWith('{"shardTid"')) continue;
    const t = (JSON.parse(l) as { shardTid: { shard: number; tid: number } }).shardTid;
    tids[t.shard] = t.tid;
  }
  return { p, tids };
}

/** Asks the child for a sample (SIGUSR1) and waits for it. */
async function sample(p: Proc): Promise<Sample> {
  const seen = p.stdout.split('\n').filter((l) => l.startsWith('{"sample"')).length;
  p.child.kill('SIGUSR1');
  const until = Date.now() + 5000;
  for (;;) {
    const lines = p.stdout.split('\n').filter((l) => l.startsWith('{"sample"'));
    if (lines.length > seen) return (JSON.parse(lines[seen]!) as { sample: Sample }).sample;
    if (Date.now() > until || p.child.exitCode !== null) throw new Error(`no sample from the stack: ${p.stdout.slice(-500)} ${p.stderr.slice(-500)}`);
    await sleep(5);
  }
}

async function stopStack(p: Proc): Promise<void> {
  if (p.child.exitCode === null) p.child.kill('SIGTERM');
  await p.done;
  if (process.env.BENCH_SHARDS_VERBOSE) for (const l of p.stdout.split('\n')) if (l.startsWith('{"done"')) console.log(`  stack: ${l}`);
  await sleep(300); // XDP detach before the next contender
}

const sumOf = (rows: Row[] | undefined, k: string): number => (rows ?? []).reduce((s, r) => s + Number(r[k] ?? 0), 0);

/** Rates and CPU over [a, b]. */
function between(a: Sample, b: Sample, tids: number[], rate: number, offered: number, spread: number[]): RunResult {
  const wallS = (b.wallUs - a.wallUs) / 1e6;
  const cpuS = (b.cpuUs - a.cpuUs) / 1e6;
  const tx = sumOf(b.counters.devices, 'txPackets') - sumOf(a.counters.devices, 'txPackets');
  const rx = sumOf(b.counters.devices, 'rxPackets') - sumOf(a.counters.devices, 'rxPackets');
  const before = new Map(a.threads.map((t) => [t.tid, t.ticks]));
  const delta = new Map(b.threads.map((t) => [t.tid, t.ticks - (before.get(t.tid) ?? 0)]));
  const total = [...delta.values()].reduce((s, x) => s + x, 0) || 1;
  const pid = a.pid; // the main thread's id is the process id
  const shards = tids.map((t) => (delta.get(t) ?? 0) / total);
  const main = (delta.get(pid) ?? 0) / total;
  const cores = cpuS / wallS;
  const steps = b.steps.reduce((s, x) => s + x, 0) - a.steps.reduce((s, x) => s + x, 0);
  return {
    rate, offered, cores, txPps: tx / wallS, rxPps: rx / wallS, pktPerCpuS: tx / cpuS, opsPerCpuS: rate / cores, rxPerStep: rx / steps,
    cpuSplit: { shards, main, other: Math.max(0, 1 - main - shards.reduce((s, x) => s + x, 0)) }, spread,
  };
}

/** Samples at the start and the end of a load's window that began `startedAt` (ms). */
async function window(p: Proc, o: ShardsOptions, startedAt: number): Promise<[Sample, Sample]> {
  await sleep(Math.max(0, startedAt + (o.warmup + 0.25) * 1000 - Date.now()));
  const a = await sample(p);
  await sleep(Math.max(0, startedAt + (o.warmup + o.seconds - 0.1) * 1000 - Date.now()));
  const b = await sample(p);
  return [a, b];
}

interface GenResult { tx_pps: number; rx_pps: number; seconds: number; rx_queues: number[] }

/** UDP echo; `perShard` > 0: the generator paced at that many frames per second per queue in use. */
async function udpRun(lab: Lab, shards: Count, o: ShardsOptions, perShard: number): Promise<RunResult> {
  const { p, tids } = await startStack(lab, shards, nextPort++, o.warmup + o.seconds + 20, o.busyPoll);
  try {
    const queues = shards === 1 ? '0' : '0,1';
    const t = Date.now();
    const gen = run('ip', ['netns', 'exec', lab.switchNs, tool('gen'), SWITCH_STACK_PORT, 'udp', lab.stackMac, GEN_IP, STACK_IP,
      String(o.seconds), String(o.warmup), String(perShard * shards), '0', '7', '1', queues]);
    const [a, b] = await window(p, o, t);
    const code = await gen.done;
    if (code !== 0) throw new Error(`generator failed (${code}): ${gen.stderr}`);
    const g = lastJson<GenResult>(gen);
    return between(a, b, tids, g.rx_pps, g.tx_pps, g.rx_queues.map((n) => n / g.seconds));
  } finally {
    await stopStack(p);
  }
}

interface ClientResult { rate: number; errors: number }

/**
 * TCP echo. Unpaced (`perShard` 0): both peers, CONNS connections each, pinned to queue 0 (one
 * shard) or peer i to queue i. Paced: one peer per shard (peer i on queue i), each at `perShard`
 * requests per second, so every shard sees the same load whatever the count.
 */
async function tcpRun(lab: Lab, shards: Count, o: ShardsOptions, perShard: number): Promise<RunResult> {
  for (let i = 0; i < 2; i++) labSteer(lab.prefix, i, shards === 1 ? 0 : i);
  const port = nextPort++;
  const { p, tids } = await startStack(lab, shards, port, o.warmup + o.seconds + 20, o.busyPoll);
  try {
    const t = Date.now();
    const peers = perShard > 0 ? lab.peers.slice(0, shards) : lab.peers;
    const clients = peers.map((peer) => run('ip', ['netns', 'exec', peer.ns, 'timeout', '-s', 'KILL', String(o.warmup + o.seconds + 15),
      tool('tcp-echo-client'), 'echo', STACK_IP, String(port), String(o.conns), String(o.seconds), '64', String(o.warmup), String(perShard)]));
    const [a, b] = await window(p, o, t);
    const codes = await Promise.all(clients.map((c) => c.done));
    codes.forEach((c, i) => { if (c !== 0) throw new Error(`tcp-echo-client in peer ${i} failed (${c}): ${clients[i]!.stderr}`); });
    const rs = clients.map((c) => lastJson<ClientResult>(c));
    const end = await sample(p);
    const r = between(a, b, tids, rs.reduce((s, x) => s + x.rate, 0), rs.reduce((s, x) => s + x.errors, 0),
      (end.counters.shards ?? []).map((x) => Number(x.passiveOpens)));
    const rxAll = sumOf(end.counters.devices, 'rxPackets');
    const fwd = (end.counters.shards ?? []).reduce((s, x) => s + (x.forwarded as number[]).reduce((u, v) => u + v, 0), 0);
    r.forwardedPerM = (fwd / rxAll) * 1e6;
    r.forwardedInPerM = (sumOf(end.counters.shards, 'forwardedIn') / rxAll) * 1e6;
    r.ringFull = sumOf(end.counters.shards, 'ringFull');
    return r;
  } finally {
    await stopStack(p);
  }
}

async function rounds(o: ShardsOptions, label: string, fn: (n: Count) => Promise<RunResult>): Promise<Record<Count, RunResult[]>> {
  const res: Record<Count, RunResult[]> = { 1: [], 2: [] };
  for (let r = 0; r < o.rounds; r++) {
    for (const n of r % 2 === 0 ? COUNTS : [...COUNTS].reverse()) {
      const x = await fn(n);
      res[n].push(x);
      const split = x.cpuSplit.shards.map((s) => `${(s * 100).toFixed(0)}%`).join('+');
      const extra = label.startsWith('udp') ? ` (offered ${x.offered.toFixed(0)})` : x.offered ? ` (${x.offered} connection errors)` : '';
      console.log(`  round ${r + 1} ${label}, ${n} shard${n > 1 ? 's' : ''}: ${x.rate.toFixed(0)}/s${extra}, stack ${x.cores.toFixed(2)} cores (shards ${split}, main ${(x.cpuSplit.main * 100).toFixed(0)}%), `
        + `${(x.pktPerCpuS / 1000).toFixed(0)}k pkts/CPU-s, ${x.rxPerStep.toFixed(1)} frames/step, `
        + (label.startsWith('udp') ? `per queue ${x.spread.map((v) => `${(v / 1000).toFixed(0)}k`).join('/')}/s` : `connections per shard ${x.spread.join('/')}`)
        + (x.forwardedPerM !== undefined ? `, forwarded ${x.forwardedPerM.toFixed(1)}/M` : ''));
    }
  }
  return res;
}

const med = (xs: RunResult[], k: keyof RunResult): number => median(xs.map((x) => x[k] as number));

type Results = Record<Count, RunResult[]>;

export async function benchShards(o: ShardsOptions): Promise<Record<string, unknown>> {
  const cpus = os.cpus().length;
  const lab = labUp({ prefix: SHARDS_PREFIX, queues: 2, peers: PEER_IPS.map((ip) => ({ ipv4: `${ip}/24` })) });
  const res: Record<'udp' | 'udpPaced' | 'tcp' | 'tcpPaced', Results> = {} as never;
  try {
    // UDP: the generator on the stack's veth peer, out of the bridge.
    sh(['-n', lab.switchNs, 'link', 'set', 'dev', SWITCH_STACK_PORT, 'nomaster']);
    res.udp = await rounds(o, 'udp max', (n) => udpRun(lab, n, o, 0));
    res.udpPaced = await rounds(o, `udp ${o.udpRate / 1000}k/s per shard`, (n) => udpRun(lab, n, o, o.udpRate));
    sh(['-n', lab.switchNs, 'link', 'set', 'dev', SWITCH_STACK_PORT, 'master', SWITCH_BRIDGE]);
    res.tcp = await rounds(o, 'tcp max', (n) => tcpRun(lab, n, o, 0));
    res.tcpPaced = await rounds(o, `tcp ${o.tcpRate / 1000}k/s per shard`, (n) => tcpRun(lab, n, o, o.tcpRate));
  } finally {
    labDown(SHARDS_PREFIX);
  }
  const row = (what: string, x: Results, k: keyof RunResult, scale: number, target = '') => {
    const m1 = med(x[1], k) * scale, m2 = med(x[2], k) * scale;
    const list = (rs: RunResult[]) => rs.map((r) => ((r[k] as number) * scale).toPrecision(3)).join(' ');
    return [what, m1, m2, m2 / m1, target, list(x[1]), list(x[2])];
  };
  const u = `${o.udpRate / 1000}k`, tr = `${o.tcpRate / 1000}k`;
  table(`shards: 1 shard vs 2 shards (ShardedStack, 2-queue lab, the stack alone in its process${o.busyPoll ? ', busy-poll' : ''}; median of ${o.rounds} rounds)`,
    ['measure', '1 shard', '2 shards', '2 / 1', 'target', 'rounds (1 shard)', 'rounds (2 shards)'], [
      row('UDP echo, max: Mpps answered', res.udp, 'rate', 1e-6),
      row('  stack CPU (cores)', res.udp, 'cores', 1),
      row('  k packets / CPU-second', res.udp, 'pktPerCpuS', 1e-3),
      row('  frames per loop step', res.udp, 'rxPerStep', 1),
      row(`UDP echo, ${u}/s per shard: Mpps answered`, res.udpPaced, 'rate', 1e-6),
      row('  stack CPU (cores)', res.udpPaced, 'cores', 1),
      row('  k packets / CPU-second', res.udpPaced, 'pktPerCpuS', 1e-3, '>= 0.9'),
      row('  frames per loop step', res.udpPaced, 'rxPerStep', 1),
      row(`TCP echo, max (2 peers x ${o.conns} conns): k req/s`, res.tcp, 'rate', 1e-3),
      row('  stack CPU (cores)', res.tcp, 'cores', 1),
      row('  k packets / CPU-second', res.tcp, 'pktPerCpuS', 1e-3),
      row('  frames per loop step', res.tcp, 'rxPerStep', 1),
      row(`TCP echo, ${tr} req/s per shard (${o.conns} conns each): k req/s`, res.tcpPaced, 'rate', 1e-3),
      row('  stack CPU (cores)', res.tcpPaced, 'cores', 1),
      row('  k packets / CPU-second', res.tcpPaced, 'pktPerCpuS', 1e-3, '>= 0.9'),
      row('  frames per loop step', res.tcpPaced, 'rxPerStep', 1),
    ]);
  const ratio = (x: Results, k: keyof RunResult) => med(x[2], k) / med(x[1], k);
  const eff = { udp: ratio(res.udpPaced, 'pktPerCpuS'), tcp: ratio(res.tcpPaced, 'pktPerCpuS'), udpMax: ratio(res.udp, 'pktPerCpuS'), tcpMax: ratio(res.tcp, 'pktPerCpuS') };
  const total = { udp: ratio(res.udp, 'rate'), tcp: ratio(res.tcp, 'rate') };
  const all2 = [...res.tcp[2], ...res.tcpPaced[2]];
  const fwd = median(all2.map((x) => x.forwardedPerM ?? 0)), fwdIn = median(all2.map((x) => x.forwardedInPerM ?? 0));
  const fwdMax = Math.max(...all2.map((x) => x.forwardedPerM ?? 0));
  const ringFull = all2.reduce((s, x) => s + (x.ringFull ?? 0), 0);
  console.log(`  efficiency (packets per CPU-second, 2 shards / 1 shard) at the same load per shard: UDP ${eff.udp.toFixed(2)}, TCP ${eff.tcp.toFixed(2)} `
    + `(target >= 0.9: shards add no shared cost); at the generators' top rate: UDP ${eff.udpMax.toFixed(2)}, TCP ${eff.tcpMax.toFixed(2)}`);
  console.log(`  total rate at the top, 2 shards / 1 shard: UDP ${total.udp.toFixed(2)}x, TCP ${total.tcp.toFixed(2)}x`);
  console.log(`  TCP with 2 shards, each peer pinned to a queue: ${fwd.toFixed(1)} frames handed to the other shard per million received (median; at most ${fwdMax.toFixed(1)}), `
    + `${fwdIn.toFixed(1)} taken in; ring full ${ringFull}`);
  console.log(`  note: this VM has ${cpus} vCPU${cpus > 1 ? 's' : ''}, shared by the stack with the load generators and the kernel's veth work,`
    + ' so 2 shards cannot double the rate here; see bench/README.md for what scales on a larger machine.');
  const sum = (x: Results, k: keyof RunResult) => [med(x[1], k), med(x[2], k)];
  return {
    cpus, busyPoll: o.busyPoll, conns: o.conns, udpRatePerShard: o.udpRate, tcpRatePerShard: o.tcpRate,
    median: Object.fromEntries((['udp', 'udpPaced', 'tcp', 'tcpPaced'] as const).map((k) => [k, {
      rate: sum(res[k], 'rate'), cores: sum(res[k], 'cores'), pktPerCpuS: sum(res[k], 'pktPerCpuS'), rxPerStep: sum(res[k], 'rxPerStep'),
    }])),
    efficiency: eff, efficiencyTarget: 0.9, total, forwardedPerMillion: fwd, forwardedPerMillionMax: fwdMax, forwardedInPerMillion: fwdIn, ringFull,
    rounds: res,
  };
}
