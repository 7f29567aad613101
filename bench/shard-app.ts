/**
 * Application module of the `shards` benchmark's stack (bench/shard-server.ts), run in every shard:
 * reports the shard's kernel thread id once, and its runtime's step count whenever the main thread
 * asks on the BroadcastChannel `xdpstack-bench-shards` (the parent relates steps to packets: how
 * many frames each step of the loop handled).
 */
import * as fs from 'node:fs';
import { BroadcastChannel } from 'node:worker_threads';

export const CHANNEL = 'xdpstack-bench-shards';

export default (stack: { runtime: { steps: number } }, info: { shard: number; shards: number }): void => {
  // /proc/thread-self → "PID/task/TID" of the calling thread.
  const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
  console.log(JSON.stringify({ shardTid: { shard: info.shard, tid } }));
  const bc = new BroadcastChannel(CHANNEL);
  bc.onmessage = (e: unknown) => {
    if ((e as { data: unknown }).data === 'sample') bc.postMessage({ shard: info.shard, steps: stack.runtime.steps });
  };
  bc.unref();
};
