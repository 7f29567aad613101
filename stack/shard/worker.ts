/**
 * A shard's worker thread: its drivers (queue `shard` of every device), a Stack over them joined to
 * the group's steering memory, the services of the config and the application module, all on this
 * thread. The main thread (stack/shard/threads.ts) sends requests as messages; every request is
 * plain JSON (the control socket's), applied here in the order it came.
 *
 * Shard 0 also reports the addresses and MACs its engine owns to the main thread, which keeps the
 * device's XDP maps (one program per device, shared by all its queues).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as path from 'node:path';
import type { Driver } from '../../driver/types';
import type { IpAddr } from '../../protocols/ip/addr';
import { handleRequest, traceWriter } from '../control/control';
import { Stack, Trace } from '../stack';
import { TraceFilter } from '../trace';
import type { PingSession } from '../ping';
import { epochOffsetUs, monotonicUs } from '../runtime';
import { Steering } from './steer';
import { openShardDriver } from './drivers';
import { installRss, RssInfo } from './rss';
import type { FromShard, ShardData, ToShard } from './messages';
import { driverLog, forwardingLogger } from '../control/log';

function post(m: FromShard): void {
  parentPort!.postMessage(m);
}

/** The application module's entry: `module.exports = (stack, { shard, shards }) => ...` (or its default export). */
export type ShardApp = (stack: Stack, info: { shard: number; shards: number }) => void | Promise<void>;

async function main(): Promise<void> {
  const d = workerData as ShardData;
  // Events go to the main thread's logger (which adds this shard's number).
  const logger = forwardingLogger(d.logLevel ?? 'info', (level, msg, fields) => post({ t: 'log', level, msg, ...(fields ? { fields } : {}) }));
  const log = driverLog(logger);
  for (const m of d.preload ?? []) require(m);
  const drivers: Record<string, Driver> = {};
  try {
    for (const dev of d.config.devices) {
      const drv = openShardDriver(dev, d.shard, d.devices[dev.name], log);
      // Shard 0 applies every change first: what its engine owns is what the XDP maps must hold.
      if (d.shard === 0 && d.devices[dev.name]?.ownsInMain) {
        Object.assign(drv, {
          ownMac: (mac: Uint8Array, vlan: number, add: boolean) => post({ t: 'own', dev: dev.name, mac: Uint8Array.from(mac), vlan, add }),
          own: (addr: IpAddr, vlan: number, add: boolean) => post({ t: 'own', dev: dev.name, addr, vlan, add }),
        });
      }
      drivers[dev.name] = drv;
    }
  } catch (e) {
    for (const x of Object.values(drivers)) try { x.close(); } catch { /* failing anyway */ }
    throw e;
  }
  const stack = new Stack(d.config, { drivers, secret: d.secret, steer: new Steering(d.mesh, d.shard), busyPoll: d.busyPoll, logger });
  const rss: Record<string, RssInfo | undefined> = {};
  for (const [name, info] of Object.entries(d.devices)) rss[name] = info.rss;
  installRss(stack.engine, d.shard, rss);
  stack.start();
  // Traces by the control plane's number: several may run at once (one per 'trace' client).
  const traces = new Map<number, Trace>();
  // Pings by the control plane's number (they run in shard 0: see ShardedStack.startPing).
  const pings = new Map<number, PingSession>();
  parentPort!.on('message', (m: ToShard) => {
    try {
      switch (m.t) {
        case 'req':
          post({ t: 'res', id: m.id, ok: true, data: handleRequest(stack, m.req) });
          break;
        case 'trace': {
          if (m.vs !== undefined) stack.engine.vs(m.vs); // a clear error before any file is made
          const filter = TraceFilter.parse(m.filter);
          if (!m.stream) {
            const { writer } = traceWriter({ out: m.out });
            traces.set(m.trace, stack.trace({ vs: m.vs, count: m.count, writer, filter }));
            post({ t: 'res', id: m.id, ok: true, data: null });
            break;
          }
          // Streamed: the records (no global header) go to the main thread in batches, each with a
          // watermark: the time after which every later record of this shard is stamped, so the
          // main thread can merge the shards' records by time as they come.
          const id = m.trace;
          const parts: Uint8Array[] = [];
          const { writer } = traceWriter({ sink: (c) => parts.push(c), header: false });
          const t = stack.trace({ vs: m.vs, count: m.count, writer, filter });
          const offset = epochOffsetUs();
          const ship = (final: boolean): void => {
            const watermark = final ? Infinity : monotonicUs() + offset;
            if (!final) { writer.flush(); t.floor(watermark); }
            let n = 0;
            for (const p of parts) n += p.length;
            const data = new Uint8Array(n);
            n = 0;
            for (const p of parts.splice(0)) { data.set(p, n); n += p.length; }
            post({ t: 'traceData', trace: id, data, watermark });
          };
          const timer = setInterval(() => ship(false), 50);
          t.onDone(() => { clearInterval(timer); ship(true); });
          traces.set(id, t);
          post({ t: 'res', id: m.id, ok: true, data: null });
          break;
        }
        case 'traceFrames':
          post({ t: 'res', id: m.id, ok: true, data: traces.get(m.trace)?.frames ?? 0 });
          break;
        case 'traceStop': {
          const t = traces.get(m.trace);
          traces.delete(m.trace);
          t?.stop();
          post({ t: 'res', id: m.id, ok: true, data: t ? t.counts() : null });
          break;
        }
        case 'ping': {
          const id = m.ping;
          const p = stack.vs(m.vs).ping(m.target, m.opts, {
            onReply: (data) => post({ t: 'pingEvent', ping: id, kind: 'reply', data }),
            onError: (seq, error) => post({ t: 'pingEvent', ping: id, kind: 'error', data: { seq, error } }),
            onUnreachable: (data) => post({ t: 'pingEvent', ping: id, kind: 'unreachable', data }),
            onDone: (data) => { pings.delete(id); post({ t: 'pingEvent', ping: id, kind: 'done', data }); },
          });
          pings.set(id, p);
          post({ t: 'res', id: m.id, ok: true, data: p.start });
          break;
        }
        case 'pingStop':
          pings.get(m.ping)?.stop();
          post({ t: 'res', id: m.id, ok: true, data: null });
          break;
        case 'close':
          for (const p of [...pings.values()]) p.stop();
          for (const t of traces.values()) t.stop();
          traces.clear();
          stack.close();
          post({ t: 'res', id: m.id, ok: true, data: null });
          parentPort!.close();
          break;
      }
    } catch (e) {
      post({ t: 'res', id: m.id, ok: false, error: (e as Error).message });
    }
  });
  if (d.app) {
    const mod = require(path.resolve(d.app)) as ShardApp | { default?: ShardApp };
    const fn = typeof mod === 'function' ? mod : mod.default;
    if (typeof fn !== 'function') throw new Error(`application ${d.app} exports no function (module.exports = (stack, { shard, shards }) => { ... })`);
    await fn(stack, { shard: d.shard, shards: d.shards });
  }
  post({ t: 'ready' });
}

main().catch((e: unknown) => {
  post({ t: 'fatal', msg: e instanceof Error ? (e.stack ?? e.message) : String(e) });
});
