/**
 * TCP benchmarks over the lab (prefix `xw`): a kernel client in the peer namespace talks over the
 * same veth/bridge path to one of
 *  - xdpstack: a VS on the stack's device `xw0` over AF_XDP, busy-poll runtime (tcp-server.js xdp),
 *  - Node: the same application code over Node's `net`/`http` and kernel TCP (tcp-server.js node),
 *  - C: an epoll echo server over kernel TCP (bench/c/tcp-echo-server.c).
 * For the kernel servers `xw0` gets the IPv4 address 10.87.0.1/24 (no XDP program is attached
 * then); for xdpstack the address is removed, so the kernel neither answers ARP nor TCP for it.
 *
 *  - tcp-echo: 64-byte request/response on 32 connections (bench/c/tcp-echo-client.c), req/s.
 *  - tcp-connect: connections per second (connect, send 1 byte, read 1 byte, close) with
 *    PARALLEL slots in one epoll client.
 *  - tcp-bulk: one connection, 200 MiB from a kernel sender (bench/c/tcp-bulk-send.c) to an app
 *    that counts bytes; MB/s from connect to the server's close.
 *  - http: Node `http` hello server, `wrk -t1 -c32 -d5s` from the peer.
 *  - tcp6-echo: tcp-echo over IPv6 (peer fd00:87::2, stack fd00:87::1) for xdpstack and Node net, beside
 *    both over IPv4 in the same rounds. For Node over IPv6 the kernel gets fd00:87::1/64 on `xw0`
 *    (IPv6 on, no DAD); for xdpstack IPv6 is off on `xw0` again (the kernel holds no address).
 *
 * Every round runs each contender once (fresh server process, fresh port), in alternating order;
 * medians over rounds and ratios of medians are reported. Targets are printed, never asserted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { BUILD, DIST_BENCH, lastJson, median, Proc, run, sleep, table } from './lib';

export const TCP_PREFIX = 'xw';
const STACK_IP = '10.87.0.1';
const PEER_IP = '10.87.0.2';
const STACK_IP6 = 'fd00:87::1';
const PEER_IP6 = 'fd00:87::2';

export interface TcpBenchOptions {
  rounds: number;
  /** Measurement window of tcp-echo / tcp-connect (s). */
  seconds: number;
  /** Warm-up before counting (s). */
  warmup: number;
  /** wrk duration for http (s). */
  httpSeconds: number;
  /** tcp-echo connections. */
  conns: number;
  /** tcp-connect parallel slots. */
  parallel: number;
}

type Server = 'xdp' | 'node' | 'c' | 'xdp6' | 'node6';
type App = 'echo' | 'sink' | 'http';

function tool(name: string): string {
  const f = path.join(BUILD, name);
  if (!fs.existsSync(f)) throw new Error(`${f} is missing: run 'make -C driver' (or scripts/setup.sh)`);
  return f;
}

let nextPort = 20000;

/** BENCH_TCP_PROFILE=DIR: the xdpstack server runs with `node --cpu-prof` into DIR/<app>/. */
function profArgs(app: App): string[] {
  const dir = process.env.BENCH_TCP_PROFILE;
  const kind = process.env.BENCH_TCP_PROFILE_KIND === 'heap' ? 'heap' : 'cpu';
  return dir ? [`--${kind}-prof`, `--${kind}-prof-dir`, path.resolve(dir, app)] : [];
}

class TcpLab {
  readonly lab: Lab;
  private kernelAddr = false;
  private kernelAddr6 = false;

  constructor() {
    this.lab = labUp({ prefix: TCP_PREFIX, peers: [{ ipv4: `${PEER_IP}/24`, ipv6: `${PEER_IP6}/64` }] });
    // Connection churn from one client: reuse TIME_WAIT ports, use the whole port range.
    execFileSync('ip', ['netns', 'exec', this.ns, 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1',
      'net.ipv4.ip_local_port_range=1024 65535'], { stdio: 'ignore' });
  }

  get ns(): string { return this.lab.peers[0]!.ns; }

  private setKernelAddr(on: boolean): void {
    if (on === this.kernelAddr) return;
    execFileSync('ip', ['addr', on ? 'add' : 'del', `${STACK_IP}/24`, 'dev', this.lab.stackDevice], { stdio: 'ignore' });
    this.kernelAddr = on;
  }

  /** The kernel's IPv6 on the stack's device: fd00:87::1/64 at once (no DAD, no router discovery), or IPv6 off. */
  private setKernelAddr6(on: boolean): void {
    if (on === this.kernelAddr6) return;
    const conf = (k: string, v: string) => fs.writeFileSync(`/proc/sys/net/ipv6/conf/${this.lab.stackDevice}/${k}`, v);
    if (on) {
      for (const k of ['accept_ra', 'router_solicitations', 'accept_dad']) conf(k, '0');
      conf('disable_ipv6', '0');
      execFileSync('ip', ['-6', 'addr', 'add', `${STACK_IP6}/64`, 'dev', this.lab.stackDevice, 'nodad'], { stdio: 'ignore' });
    } else {
      conf('disable_ipv6', '1'); // drops its addresses too
    }
    this.kernelAddr6 = on;
  }

  /** Starts a server of kind `who` running `app`; resolves once it listens. */
  async start(who: Server, app: App, port: number, totalS: number): Promise<Proc> {
    this.setKernelAddr(who === 'node' || who === 'c');
    this.setKernelAddr6(who === 'node6');
    const v6 = who === 'xdp6' || who === 'node6';
    const ip = v6 ? STACK_IP6 : STACK_IP;
    let p: Proc;
    if (who === 'c') {
      if (app !== 'echo') throw new Error('the C server only echoes');
      p = run(tool('tcp-echo-server'), [STACK_IP, String(port), String(totalS)]);
    } else {
      const script = path.join(DIST_BENCH, 'tcp-server.js');
      p = who === 'xdp' || who === 'xdp6'
        ? run(process.execPath, [...profArgs(app), script, 'xdp', this.lab.stackDevice, v6 ? `${ip}/64` : `${ip}/24`, app, String(port), String(totalS)])
        : run(process.execPath, [script, 'node', '-', ip, app, String(port), String(totalS)]);
    }
    await p.waitFor(/^ready/, 20000);
    await sleep(who === 'xdp' || who === 'xdp6' ? 300 : 100);
    return p;
  }

  async stop(p: Proc): Promise<void> {
    if (p.child.exitCode === null) p.child.kill('SIGTERM');
    await p.done;
    // BENCH_TCP_VERBOSE=1: the server's closing line (VS counters, device and XDP statistics).
    if (process.env.BENCH_TCP_VERBOSE) for (const l of p.stdout.split('\n')) if (l.startsWith('{"done"')) console.log(`  server: ${l}`);
    await sleep(300); // XDP detach / sockets settle before the next contender
  }

  /** Runs a command in the peer namespace (killed after `timeoutS`). */
  peer(cmd: string, args: string[], timeoutS: number): Proc {
    return run('ip', ['netns', 'exec', this.ns, 'timeout', '-s', 'KILL', String(timeoutS), cmd, ...args]);
  }

  close(): void {
    try { this.setKernelAddr(false); this.setKernelAddr6(false); } catch { /* the lab goes anyway */ }
    labDown(TCP_PREFIX);
  }
}

/** Runs `fn` for every contender in every round (alternating order); returns the per-round values. */
async function rounds(o: TcpBenchOptions, who: Server[], label: string, unit: string,
  fn: (tl: TcpLab, who: Server) => Promise<number>): Promise<Record<Server, number[]>> {
  const tl = new TcpLab();
  const res = { xdp: [], node: [], c: [], xdp6: [], node6: [] } as Record<Server, number[]>;
  const only = process.env.BENCH_TCP_ONLY?.split(',');
  if (only) who = who.filter((w) => only.includes(w));
  try {
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? who : [...who].reverse();
      for (const w of order) {
        const v = await fn(tl, w);
        res[w].push(v);
        console.log(`  round ${r + 1} ${NAMES[w]}: ${v.toFixed(1)} ${unit} ${label}`);
      }
    }
  } finally {
    tl.close();
  }
  return res;
}

const NAMES: Record<Server, string> = {
  xdp: 'xdpstack', node: 'Node net', c: 'C epoll', xdp6: 'xdpstack IPv6', node6: 'Node net IPv6',
};
interface ClientResult { ops: number; seconds: number; rate: number; errors: number }

async function clientRun(tl: TcpLab, who: Server, mode: 'echo' | 'connect', o: TcpBenchOptions): Promise<number> {
  const port = nextPort++;
  const total = o.warmup + o.seconds + 10;
  const srv = await tl.start(who, 'echo', port, total);
  try {
    const ip = who === 'xdp6' || who === 'node6' ? STACK_IP6 : STACK_IP;
    const args = mode === 'echo'
      ? ['echo', ip, String(port), String(o.conns), String(o.seconds), '64', String(o.warmup)]
      : ['connect', ip, String(port), String(o.parallel), String(o.seconds), String(o.warmup)];
    const c = tl.peer(tool('tcp-echo-client'), args, o.warmup + o.seconds + 10);
    const code = await c.done;
    if (code !== 0) throw new Error(`tcp-echo-client ${mode} against ${NAMES[who]} failed (${code}): ${c.stderr}`);
    const r = lastJson<ClientResult>(c);
    if (r.errors) console.log(`  (${NAMES[who]}: ${r.errors} connection errors)`);
    return r.rate;
  } finally {
    await tl.stop(srv);
  }
}

function report(title: string, unit: string, res: Record<Server, number[]>, who: Server[],
  targets: Partial<Record<Server, string>>): Record<string, unknown> {
  who = who.filter((w) => res[w].length > 0); // BENCH_TCP_ONLY may leave some out
  const med = Object.fromEntries(who.map((w) => [w, median(res[w])])) as Record<Server, number>;
  const head = ['server', unit, 'rounds', ...who.filter((w) => w !== 'xdp').map((w) => `xdpstack/${NAMES[w]}`)];
  const rows = who.map((w) => [NAMES[w], med[w], res[w].map((x) => x.toFixed(0)).join(' '),
    ...who.filter((b) => b !== 'xdp').map((b) => (w === 'xdp' ? med.xdp / med[b] : ''))]);
  table(title, head, rows);
  const ratios: Record<string, number> = {};
  for (const b of who) if (b !== 'xdp') {
    ratios[b] = med.xdp / med[b];
    console.log(`  xdpstack / ${NAMES[b]}: ${ratios[b]!.toFixed(2)}x (target ${targets[b] ?? '-'})`);
  }
  return { unit, median: med, ratios, targets, rounds: res };
}

export async function benchTcpEcho(o: TcpBenchOptions): Promise<Record<string, unknown>> {
  const who: Server[] = ['xdp', 'node', 'c'];
  const res = await rounds(o, who, 'req/s', 'echo', (tl, w) => clientRun(tl, w, 'echo', o));
  return report(`tcp-echo: 64 B request/response, ${o.conns} connections, C epoll client (req/s, median of ${o.rounds})`,
    'req/s', res, who, { node: '>= 2', c: '>= 1' });
}

/** tcp6-echo: tcp-echo over IPv6 beside IPv4, xdpstack and Node net, in the same rounds. */
export async function benchTcp6Echo(o: TcpBenchOptions): Promise<Record<string, unknown>> {
  const who: Server[] = ['xdp', 'xdp6', 'node6', 'node'];
  const res = await rounds(o, who, 'req/s', 'echo', (tl, w) => clientRun(tl, w, 'echo', o));
  const med = Object.fromEntries(who.map((w) => [w, median(res[w])])) as Record<Server, number>;
  const ratio = (a: Server, b: Server) => (res[a].length && res[b].length ? med[a] / med[b] : NaN);
  const lab = (w: Server) => (w === 'xdp' ? 'xdpstack IPv4' : w === 'node' ? 'Node net IPv4' : NAMES[w]);
  const shown = who.filter((w) => res[w].length > 0);
  table(`tcp6-echo: 64 B request/response over IPv6 and IPv4, ${o.conns} connections, C epoll client (req/s, median of ${o.rounds})`,
    ['server', 'req/s', 'rounds', 'xdpstack IPv6 / this', 'target'],
    shown.map((w) => [lab(w), med[w], res[w].map((x) => x.toFixed(0)).join(' '), w === 'xdp6' ? '' : ratio('xdp6', w),
      w === 'xdp' ? '>= 0.9' : '']));
  const ratios = { xdp6VsXdp: ratio('xdp6', 'xdp'), xdp6VsNode6: ratio('xdp6', 'node6'), xdpVsNode: ratio('xdp', 'node'), node6VsNode: ratio('node6', 'node') };
  console.log(`  xdpstack IPv6 / xdpstack IPv4: ${ratios.xdp6VsXdp.toFixed(2)}x (target >= 0.9)`);
  console.log(`  xdpstack IPv6 / Node net IPv6: ${ratios.xdp6VsNode6.toFixed(2)}x; xdpstack IPv4 / Node net IPv4: ${ratios.xdpVsNode.toFixed(2)}x`);
  return { unit: 'req/s', median: med, ratios, targets: { xdp6VsXdp: 0.9 }, rounds: res };
}

export async function benchTcpConnect(o: TcpBenchOptions): Promise<Record<string, unknown>> {
  const who: Server[] = ['xdp', 'node', 'c'];
  const res = await rounds(o, who, 'conn/s', 'connect', (tl, w) => clientRun(tl, w, 'connect', o));
  return report(`tcp-connect: connect + 1 B each way + close, ${o.parallel} in parallel (connections/s, median of ${o.rounds})`,
    'conn/s', res, who, { node: '>= 1', c: '>= 1' });
}

export async function benchTcpBulk(o: TcpBenchOptions): Promise<Record<string, unknown>> {
  const who: Server[] = ['xdp', 'node'];
  const res = await rounds(o, who, 'MB/s', 'bulk', async (tl, w) => {
    const port = nextPort++;
    const srv = await tl.start(w, 'sink', port, o.warmup + o.seconds + 90);
    try {
      const c = tl.peer(tool('tcp-bulk-send'), [STACK_IP, String(port), String(o.seconds), String(o.warmup)], o.warmup + o.seconds + 60);
      const code = await c.done;
      if (code !== 0) throw new Error(`tcp-bulk-send to ${NAMES[w]} failed (${code}): ${c.stderr}`);
      const r = lastJson<{ bytes: number; seconds: number; mbps: number }>(c);
      const got = await srv.waitFor(/^\{"bytes"/, 5000);
      const s = JSON.parse(got) as { bytes: number };
      if (s.bytes !== r.bytes) throw new Error(`${NAMES[w]} counted ${s.bytes} bytes, the sender sent ${r.bytes}`);
      return r.mbps;
    } finally {
      await tl.stop(srv);
    }
  });
  return report(`tcp-bulk: one connection, a kernel sender writing for ${o.warmup} + ${o.seconds} s to a byte-counting app (MB/s after the warm-up, median of ${o.rounds})`,
    'MB/s', res, who, { node: '>= 1' });
}

export async function benchHttp(o: TcpBenchOptions): Promise<Record<string, unknown>> {
  const who: Server[] = ['xdp', 'node'];
  const res = await rounds(o, who, 'req/s', 'http', async (tl, w) => {
    const port = nextPort++;
    const srv = await tl.start(w, 'http', port, o.httpSeconds + 30);
    try {
      const c = tl.peer('wrk', ['-t1', '-c32', `-d${o.httpSeconds}s`, `http://${STACK_IP}:${port}/`], o.httpSeconds + 20);
      const code = await c.done;
      const m = /Requests\/sec:\s+([\d.]+)/.exec(c.stdout);
      if (code !== 0 || !m) throw new Error(`wrk against ${NAMES[w]} failed (${code}): ${c.stdout} ${c.stderr}`);
      const errs = /Socket errors: .*|Non-2xx.*/.exec(c.stdout);
      if (errs) console.log(`  (${NAMES[w]}: ${errs[0]})`);
      return Number(m[1]);
    } finally {
      await tl.stop(srv);
    }
  });
  return report(`http: Node http hello server, wrk -t1 -c32 -d${o.httpSeconds}s (req/s, median of ${o.rounds})`,
    'req/s', res, who, { node: '>= 1.2' });
}
