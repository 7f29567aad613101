/**
 * Child process of the `shards` benchmark: a ShardedStack (stack/shard/threads.ts) over one AF_XDP
 * device with SHARDS worker threads (queue i = shard i), one VS with CIDR and the `udp-echo` (port 7)
 * and `tcp-echo` (PORT) services. Runs alone in its process, so the process's CPU time is the
 * stack's: the main thread (control plane) and every shard.
 *
 *   node dist/bench/shard-server.js IFNAME CIDR SHARDS PORT SECONDS [busy]
 *
 * Prints {"shardTid":{"shard":N,"tid":N}} per shard (bench/shard-app.ts), then "ready" once every
 * shard serves. On SIGUSR1 prints one sample line
 *   {"sample":{"pid":N,"cpuUs":N,"wallUs":N,"threads":[{"tid":N,"ticks":N},...],"steps":[N,...],"counters":{...}}}
 * (cpuUs: user + system time of the whole process, process.cpuUsage(); wallUs: a monotonic clock;
 * threads: user + system clock ticks per thread from /proc/self/task; steps: each shard's runtime
 * steps so far; counters: `show counters`
 * of the group: devices summed, one `shards` row per shard), so the parent can take CPU time and
 * packets over the same interval. Exits after SECONDS or on SIGTERM with a final {"done":...} line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import { ShardedStack } from '../stack/shard/threads';
import { CHANNEL } from './shard-app';
import type { StackConfig } from '../stack/control/config';

/** User + system clock ticks of each thread of this process. */
function threadTicks(): { tid: number; ticks: number }[] {
  const out: { tid: number; ticks: number }[] = [];
  for (const t of fs.readdirSync('/proc/self/task')) {
    try {
      const s = fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      out.push({ tid: Number(t), ticks: Number(f[11]) + Number(f[12]) });
    } catch { /* the thread ended */ }
  }
  return out;
}

async function main(): Promise<void> {
  const [ifname, cidr, shardsS, portS, secs, busy] = process.argv.slice(2);
  const shards = Number(shardsS), port = Number(portS);
  if (!ifname || !cidr || !Number.isInteger(shards) || shards < 1 || !Number.isInteger(port) || !secs) {
    console.error('usage: shard-server IFNAME CIDR SHARDS PORT SECONDS [busy]');
    process.exit(2);
  }
  const busyPoll = busy === 'busy';
  const config = {
    name: 'bench',
    devices: [{ name: ifname, driver: 'afxdp', frameCount: 8192, busyPoll }],
    virtualServers: [{ name: 'bench', links: [{ device: ifname, addresses: [cidr] }] }],
    services: [{ type: 'udp-echo', vs: 'bench', port: 7 }, { type: 'tcp-echo', vs: 'bench', port }],
  } as StackConfig;
  const stack = await ShardedStack.start(config, {
    shards, busyPoll, log: () => {}, app: path.join(__dirname, 'shard-app.js'),
    onFatal: (m) => { console.error(m); process.exit(1); },
  });
  console.log('ready');
  // The shards' runtime steps (bench/shard-app.ts answers on the channel).
  const bc = new BroadcastChannel(CHANNEL);
  bc.unref();
  let steps: number[] = [];
  bc.onmessage = (e: unknown) => {
    const d = (e as { data: { shard: number; steps: number } }).data;
    steps[d.shard] = d.steps;
  };
  const sample = async (): Promise<Record<string, unknown>> => {
    const u = process.cpuUsage();
    const wallUs = Math.round(performance.now() * 1000);
    const threads = threadTicks();
    steps = [];
    bc.postMessage('sample');
    const counters = await stack.show('counters');
    const until = Date.now() + 1000;
    while (steps.filter((x) => x !== undefined).length < shards && Date.now() < until) await new Promise((r) => setTimeout(r, 2));
    return { pid: process.pid, cpuUs: u.user + u.system, wallUs, threads, steps, counters };
  };
  process.on('SIGUSR1', () => {
    void sample().then((s) => console.log(JSON.stringify({ sample: s })), (e: Error) => console.log(JSON.stringify({ sampleError: e.message })));
  });
  let finishing = false;
  const finish = async (): Promise<void> => {
    if (finishing) return;
    finishing = true;
    const s = await sample().catch(() => null);
    await stack.close();
    console.log(JSON.stringify({ done: s }));
    process.exit(0);
  };
  setTimeout(() => void finish(), Number(secs) * 1000);
  process.on('SIGTERM', () => void finish());
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : String(e));
  process.exit(1);
});
