/**
 * `npm run bench` / `node dist/bench/run.js [name...]`: runs all benchmarks or the named ones
 * (reflector, icmp-udp, ip6-echo, decap, vs-scale, vs-memory, tcp-echo, tcp6-echo, tcp-bulk, http, tcp-connect, iscsi, shards), prints a table for each and writes a JSON summary
 * to bench/results/latest.json. Targets are printed, never asserted.
 *
 * Environment: BENCH_NET_ROUNDS (reflector, icmp-udp, ip6-echo, decap; default 5), BENCH_ROUNDS (others; default 3),
 * BENCH_SECONDS (measurement window per packet-rate run, default 3), BENCH_NET_PREFIX (the lab of reflector, icmp-udp,
 * ip6-echo and decap; default xq), BENCH_TCP_ROUNDS (TCP benchmarks;
 * default 5), BENCH_HTTP_SECONDS (wrk duration, default 5), BENCH_ISCSI_ROUNDS (default 3),
 * BENCH_ISCSI_SECONDS (per iSCSI workload, default 10), BENCH_ISCSI_SIZE (LUN bytes, default 64 MiB),
 * BENCH_ISCSI_BUSY_POLL=1 (busy-poll xdpstack's loop), BENCH_SHARDS_ROUNDS (shards; default 3),
 * BENCH_SHARDS_CONNS (TCP connections per peer in shards; default 64), BENCH_SHARDS_BUSY_POLL=1 (the
 * shards busy-poll), BENCH_SHARDS_UDP_RATE / BENCH_SHARDS_TCP_RATE (paced runs: per shard; default
 * 100000 frames/s, 20000 requests/s), BENCH_SHARDS_PREFIX (its lab; default sd).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchDecap, benchIcmpUdp, benchIp6Echo, benchReflector, PREFIX } from './net';
import { benchVsScale } from './vs-scale';
import { benchVsMemory } from './vs-memory';
import { ROOT } from './lib';
import { labDown } from '../stack/lab/lab';
import { benchIscsi, ISCSI_PREFIX } from './iscsi';
import { benchShards, SHARDS_PREFIX } from './shards';
import { benchHttp, benchTcp6Echo, benchTcpBulk, benchTcpConnect, benchTcpEcho, TCP_PREFIX } from './tcp-bench';

const NAMES = ['reflector', 'icmp-udp', 'ip6-echo', 'decap', 'vs-scale', 'vs-memory', 'tcp-echo', 'tcp6-echo', 'tcp-bulk', 'http', 'tcp-connect', 'iscsi', 'shards'] as const;
const TCP_NAMES: readonly string[] = ['tcp-echo', 'tcp6-echo', 'tcp-bulk', 'http', 'tcp-connect'];
type Name = (typeof NAMES)[number];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const bad = args.filter((a) => !(NAMES as readonly string[]).includes(a));
  if (bad.length) {
    console.error(`unknown benchmark(s): ${bad.join(', ')}; choose from ${NAMES.join(', ')}`);
    process.exit(2);
  }
  const chosen: Name[] = args.length ? (args as Name[]) : [...NAMES];
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const seconds = Number(process.env.BENCH_SECONDS ?? 3);
  const net = { rounds: Number(process.env.BENCH_NET_ROUNDS ?? 5), seconds, warmup: 1 };
  const tcp = {
    rounds: Number(process.env.BENCH_TCP_ROUNDS ?? 5), seconds, warmup: 1,
    httpSeconds: Number(process.env.BENCH_HTTP_SECONDS ?? 5), conns: 32, parallel: 16,
  };
  const results: Record<string, unknown> = {};
  const privileged = typeof process.getuid === 'function' && process.getuid() === 0;
  const t0 = Date.now();
  for (const name of chosen) {
    console.log(`\n== ${name}`);
    const t = Date.now();
    try {
      switch (name) {
        case 'reflector':
        case 'icmp-udp':
        case 'ip6-echo':
        case 'decap':
          if (!privileged) { console.log('  needs root (AF_XDP, network namespaces): skipped'); results[name] = { skipped: 'not root' }; continue; }
          results[name] = await { reflector: benchReflector, 'icmp-udp': benchIcmpUdp, 'ip6-echo': benchIp6Echo, decap: benchDecap }[name](net);
          break;
        case 'vs-scale':
          results[name] = benchVsScale({ rounds, maxTime: 1 });
          break;
        case 'vs-memory':
          results[name] = await benchVsMemory({ rounds, n: 4096, churn: 20000 });
          break;
        case 'tcp-echo':
        case 'tcp6-echo':
        case 'tcp-bulk':
        case 'http':
        case 'tcp-connect': {
          if (!privileged) { console.log('  needs root (AF_XDP, network namespaces): skipped'); results[name] = { skipped: 'not root' }; continue; }
          const f = { 'tcp-echo': benchTcpEcho, 'tcp6-echo': benchTcp6Echo, 'tcp-bulk': benchTcpBulk, http: benchHttp, 'tcp-connect': benchTcpConnect }[name];
          results[name] = await f(tcp);
          break;
        }
        case 'iscsi':
          if (!privileged) { console.log('  needs root (AF_XDP, network namespaces, tgtd): skipped'); results[name] = { skipped: 'not root' }; continue; }
          results[name] = await benchIscsi({
            rounds: Number(process.env.BENCH_ISCSI_ROUNDS ?? 3), seconds: Number(process.env.BENCH_ISCSI_SECONDS ?? 10),
            size: Number(process.env.BENCH_ISCSI_SIZE ?? 64 << 20), busyPoll: process.env.BENCH_ISCSI_BUSY_POLL === '1',
          });
          break;
        case 'shards':
          if (!privileged) { console.log('  needs root (AF_XDP, network namespaces): skipped'); results[name] = { skipped: 'not root' }; continue; }
          results[name] = await benchShards({
            rounds: Number(process.env.BENCH_SHARDS_ROUNDS ?? 3), seconds, warmup: 1,
            conns: Number(process.env.BENCH_SHARDS_CONNS ?? 64), busyPoll: process.env.BENCH_SHARDS_BUSY_POLL === '1',
            udpRate: Number(process.env.BENCH_SHARDS_UDP_RATE ?? 100_000), tcpRate: Number(process.env.BENCH_SHARDS_TCP_RATE ?? 20_000),
          });
          break;
      }
    } catch (e) {
      console.log(`  FAILED: ${(e as Error).stack ?? e}`);
      results[name] = { error: String((e as Error).message ?? e) };
      if (name === 'reflector' || name === 'icmp-udp' || name === 'ip6-echo' || name === 'decap') { try { labDown(PREFIX); } catch { /* already gone */ } }
      if (TCP_NAMES.includes(name)) { try { labDown(TCP_PREFIX); } catch { /* already gone */ } }
      if (name === 'iscsi') { try { labDown(ISCSI_PREFIX); } catch { /* already gone */ } }
      if (name === 'shards') { try { labDown(SHARDS_PREFIX); } catch { /* already gone */ } }
    }
    console.log(`  (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  }
  const summary = {
    date: new Date().toISOString(), node: process.version, kernel: os.release(), cpus: os.cpus().length,
    rounds, seconds, totalSeconds: (Date.now() - t0) / 1000, results,
  };
  const dir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'latest.json'), JSON.stringify(summary, null, 2) + '\n');
  console.log(`\nsummary written to bench/results/latest.json (${summary.totalSeconds.toFixed(0)} s)`);
  const failed = Object.keys(results).filter((n) => (results[n] as { error?: unknown } | undefined)?.error !== undefined);
  if (failed.length) {
    console.log(`failed: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
