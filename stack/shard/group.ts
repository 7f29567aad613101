/**
 * A group of shards in one thread: every shard is a Stack with its own drivers (one queue of each
 * device), engine and sockets, joined by the same steering memory as worker threads use. Virtual
 * time runs them in lockstep, deterministically (tests, simulations); the threaded group
 * (stack/shard/threads.ts) runs the same shards each in its own worker.
 */
import { randomBytes } from 'node:crypto';
import type { Driver } from '../../driver/types';
import { cloneConfig, loadConfig, StackConfig, validateConfig } from '../control/config';
import { ALL_SHARD_REQUESTS, CHANGE_REQUESTS, handleRequest, Request } from '../control/control';
import { ShowOptions, Stack } from '../stack';
import type { FlowTableSize } from './flows';
import { mergeAnswers, mergeShow } from './merge';
import type { RingSize } from './ring';
import { allocateMesh, MeshMemory, Steering } from './steer';
import { installRss, RssInfo } from './rss';

export interface LocalShardGroupOptions {
  shards: number;
  /** The drivers of shard `i` by device name (queue i of each device). */
  drivers: (shard: number) => Record<string, Driver>;
  /** Start time (µs). */
  now?: number;
  secret?: Uint8Array;
  log?: (msg: string) => void;
  flowSize?: FlowTableSize;
  ringSize?: RingSize;
  /** Devices' RSS (by name): outbound connections take ports whose replies come to their shard's queue. */
  rss?: Record<string, RssInfo>;
  /** The application, run in every shard once its stack is up (as a worker runs the app module). */
  app?: (stack: Stack, shard: number) => void;
}

export class LocalShardGroup {
  readonly stacks: Stack[] = [];
  readonly mesh: MeshMemory;
  /** The next VS identity to issue (the control plane's; shards never choose one). */
  private nextVsId: number;

  constructor(config: StackConfig | string, opts: LocalShardGroupOptions) {
    const cfg = typeof config === 'string' ? loadConfig(config) : validateConfig(cloneConfig(config), 'config');
    const secret = opts.secret ?? randomBytes(16);
    this.mesh = allocateMesh(opts.shards, secret, { flowSize: opts.flowSize, ringSize: opts.ringSize, shared: false });
    try {
      for (let i = 0; i < opts.shards; i++) {
        this.stacks.push(new Stack(structuredClone(cfg), { drivers: opts.drivers(i), now: opts.now, secret, log: opts.log, steer: new Steering(this.mesh, i) }));
      }
    } catch (e) {
      for (const s of this.stacks) s.close();
      throw e;
    }
    this.nextVsId = cfg.virtualServers.length + 1;
    if (opts.rss) this.stacks.forEach((s, i) => installRss(s.engine, i, opts.rss!));
    if (opts.app) this.stacks.forEach((s, i) => opts.app!(s, i));
  }

  get shards(): number { return this.stacks.length; }

  /**
   * One step of every shard at `now`, again while frames wait in the rings (a shard hands a frame
   * to one that already stepped). Returns the earliest next deadline.
   */
  step(now: number): number {
    let next = Infinity;
    for (let round = 0; round < 8; round++) {
      for (const s of this.stacks) next = Math.min(next, s.runtime.step(now));
      if (!this.stacks.some((s) => s.engine.steer!.pending > 0)) break;
    }
    return next;
  }

  /**
   * A change request (control socket shape: vs.add, address.add...) applied to every shard in
   * order; shard 0 validates it first, so a refused change touches no shard.
   */
  apply(req: Request): unknown {
    // Requests every shard runs alike (counters.clear, neighbor.flush): answers merged.
    if (ALL_SHARD_REQUESTS.has(req.cmd)) return mergeAnswers(req.cmd, this.stacks.map((s) => handleRequest(s, req)));
    if (!CHANGE_REQUESTS.has(req.cmd)) throw new Error(`'${req.cmd}' is not a change request`);
    const r = req.cmd === 'vs.add' ? { ...req, id: this.nextVsId } : req;
    const first = handleRequest(this.stacks[0]!, r);
    if (req.cmd === 'vs.add') this.nextVsId++;
    for (let i = 1; i < this.stacks.length; i++) handleRequest(this.stacks[i]!, r);
    return first;
  }

  /** `show KIND` over all shards (merged), or each shard's own answer with `perShard`. */
  show(kind: string, opts: ShowOptions & { perShard?: boolean } = {}): unknown {
    const { perShard: _, ...narrow } = opts;
    const parts = this.stacks.map((s) => s.show(kind, narrow));
    return opts.perShard ? parts.map((data, shard) => ({ shard, data })) : mergeShow(kind, parts);
  }

  close(): void {
    for (const s of this.stacks) s.close();
  }
}
