/**
 * Child process of the flood benchmarks (bench/flood.ts): xdpstack on one AF_XDP device with the
 * default frame pool (4096 frames) and default limits, one VS with an address, a TCP echo server
 * and a UDP echo socket on port 7 (the service the floods try to take down).
 *
 *   node --expose-gc dist/bench/flood-server.js IFNAME CIDR SECONDS [INTERVAL_MS] [KEEPALIVE_S] [CONTROL_SOCKET]
 *
 * Prints "ready" when listening, then one JSON line {"stat":...} every INTERVAL_MS (default 250)
 * with what a peer can grow, read from the engine's own tables:
 *   t (s), cpuMs (process CPU time, user + system, cumulative), loopMaxMs (longest event-loop delay
 *   since the previous line), heap (V8 heapUsed, MiB), rss (MiB), pool {free, kernel, tx, held, total},
 *   conns (TCP connections of the VS, all states), states {name: count}, timeWait, synQueue,
 *   cookiesSent, cookiesAccepted, accepted (connections the app got), closed (app sockets closed),
 *   neigh (neighbor entries over the VS's links), neighMax, reasmHeld (bytes), reasmActive
 *   (datagrams in progress), reasmMaxBytes, rx/tx packets of the device, drops (device and VS,
 *   by reason; vsDrops: those counted to the VS), xdp (the XDP socket's kernel statistics).
 * KEEPALIVE_S > 0: accepted sockets get setKeepAlive(true, KEEPALIVE_S * 1000) (a server that
 * wants to notice peers that vanished), with probes every second and 3 probes before giving up.
 * SIGUSR2: a full garbage collection (with --expose-gc), then a stat line with "gc":true.
 * CONTROL_SOCKET: the stack's control socket listens there (for `show` latency under load).
 * Exits after SECONDS or on SIGTERM with {"done":true}.
 */
import { tcpState } from '../stack/transport/tcp';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { ControlServer } from '../stack/control/control';
import { createStack } from '../stack/stack';
import type { DropsView } from '../stack/counters';

async function main(): Promise<void> {
  const [ifname, cidr, secs, intervalS, keepS, controlPath] = process.argv.slice(2);
  if (!ifname || !cidr || !secs) {
    console.error('usage: flood-server IFNAME CIDR SECONDS [INTERVAL_MS] [KEEPALIVE_S]');
    process.exit(2);
  }
  const interval = Number(intervalS ?? 250);
  const keepalive = Number(keepS ?? 0);
  const stack = createStack({
    name: 'flood',
    // FLOOD_POLICE: the device's XDP policers as JSON (e.g. {"synRate":0} = SYN policer off); default: driver/police.ts.
    devices: [{ name: ifname, driver: 'afxdp', busyPoll: true, ...(process.env.FLOOD_POLICE ? { police: JSON.parse(process.env.FLOOD_POLICE) as object } : {}) }],
    virtualServers: [{ name: 'flood', links: [{ device: ifname, addresses: [cidr] }] }],
  }, { busyPoll: true, log: () => {} });
  const vs = stack.vs('flood');
  // Keepalive probes every second, 3 unanswered probes close the connection (defaults: 75 s, 9).
  if (keepalive > 0) Object.assign(stack.engine.tcp.defaults, { keepIntvlUs: 1_000_000, keepCnt: 3 });
  let accepted = 0, closed = 0;
  const srv = vs.createServer({ noDelay: true }, (s) => {
    accepted++;
    s.on('error', () => {});
    s.on('close', () => { closed++; });
    if (keepalive > 0) s.setKeepAlive(true, keepalive * 1000);
    s.on('data', (d: Uint8Array) => { s.write(d); });
    s.on('end', () => { s.end(); });
  });
  srv.listen(7);
  const udp = vs.createSocket('udp4');
  udp.on('message', (m, r) => udp.send(m, r.port, r.address));
  udp.bind(7);
  stack.start();

  const e = stack.engine;
  const v = vs.raw;
  const dev = e.devices[0]!;
  const t0 = performance.now();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const stat = (gc = false) => {
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    const loopMaxMs = Math.round(loop.max / 1e6);
    loop.reset();
    const states: Record<string, number> = {};
    let conns = 0;
    for (const head of tcpState(v).conns.values()) {
      for (let x: typeof head | null = head; x; x = x.next) {
        conns++;
        const n = x.conn.stateName;
        states[n] = (states[n] ?? 0) + 1;
      }
    }
    let synQueue = 0, cookiesSent = 0, cookiesAccepted = 0;
    for (const ls of tcpState(v).listeners.values()) for (const l of ls) { synQueue += l.synQueue; cookiesSent += l.synCookiesSent; cookiesAccepted += l.synCookiesAccepted; }
    let neigh = 0, neighMax = 0;
    for (const l of v.links) { neigh += l.neigh.entries.size; neighMax += (l.neigh as unknown as { params?: { maxEntries?: number } }).params?.maxEntries ?? 0; }
    const reasm = e.reasm as unknown as { held: number; active: number; maxBytes: number };
    const c = stack.show('counters') as { devices: { rxPackets: number; txPackets: number; drops: DropsView; driverDrops?: DropsView; xdp?: unknown }[]; vs: { drops: DropsView }[] };
    const d = c.devices[0]!;
    console.log(JSON.stringify({
      stat: true, gc, t: +((performance.now() - t0) / 1000).toFixed(3),
      cpuMs: Math.round((cpu.user + cpu.system) / 1000), loopMaxMs,
      heap: +(mem.heapUsed / 1048576).toFixed(2), rss: +(mem.rss / 1048576).toFixed(2),
      pool: dev.pool.counts(), conns, states, timeWait: e.tcp.timeWaitCount, synQueue, cookiesSent, cookiesAccepted,
      accepted, closed, timersFired: (e as unknown as { wheel: { fired: number } }).wheel.fired, neigh, neighMax, reasmHeld: reasm.held, reasmActive: reasm.active, reasmMaxBytes: reasm.maxBytes,
      rx: d.rxPackets, tx: d.txPackets, drops: d.drops.reasons, vsDrops: c.vs[0]!.drops.reasons, xdp: d.xdp, driverDrops: d.driverDrops?.reasons ?? {},
    }));
  };
  const iv = setInterval(stat, interval);
  process.on('SIGUSR2', () => { (globalThis as { gc?: () => void }).gc?.(); stat(true); });
  let control: ControlServer | null = null;
  if (controlPath) control = await ControlServer.listen(stack, controlPath);
  console.log('ready');
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    clearInterval(iv);
    stat();
    try { control?.close(); } catch { /* exiting */ }
    try { stack.close(); } catch { /* exiting */ }
    console.log(JSON.stringify({ done: true }));
    process.exit(0);
  };
  setTimeout(finish, Number(secs) * 1000);
  process.prependListener('SIGTERM', finish);
}

main().catch((e) => { console.error(e); process.exit(1); });
