/**
 * Child process of the `icmp-udp` and `ip6-echo` benchmarks: the full stack over AF_XDP on IFNAME
 * (Engine + Runtime in busy-poll mode), one VS on the untagged link with 10.1.1.1/24 and a 'udp4'
 * echo socket on port 7. ICMP echo is answered by the engine. With CIDR6 the VS also has that IPv6
 * address (no DAD: usable at once) and an IPv6-only 'udp6' echo socket on port 7, so both families
 * are served by one process with the same sockets' code. With --vips / --decap-from (the `decap`
 * benchmark) the VS also has those VIPs and takes encapsulated traffic for them from those load
 * balancers (stack/ip/decap.ts): the same echo sockets answer on the VIPs, from the VIPs.
 *
 *   node dist/bench/stack-server.js IFNAME [CIDR6] [--vips=A,B] [--decap-from=CIDR,CIDR] SECONDS
 * Prints "ready" when serving, then one JSON line with the VS counters at the end (and `cpuUs`, the
 * process's CPU time, user and system, from "ready" to the end: with busy-poll spinning only while
 * traffic flows, user CPU per packet answered is a figure a loaded machine disturbs less than the
 * rate; system time also holds softirq work of the veth charged to whoever ran). BENCH_PROFILE=DIR:
 * a CPU profile from "ready" to the end in DIR (started here, after the XDP program is loaded: the
 * profiler's signals would interrupt the kernel's verifier).
 */
import * as fs from 'node:fs';
import * as inspector from 'node:inspector';
import * as path from 'node:path';
import { openAfxdp } from '../driver/afxdp';
import { Engine } from '../stack/engine';
import { Runtime } from '../stack/runtime';
import { ownership } from '../stack/stack';

function main(): void {
  const all = process.argv.slice(2);
  const flag = (name: string) => all.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3).split(',').filter(Boolean) ?? [];
  const vips = flag('vips'), decapFrom = flag('decap-from');
  const args = all.filter((a) => !a.startsWith('--'));
  const [ifname, cidr6, secs] = args.length === 3 ? args : [args[0], undefined, args[1]];
  if (!ifname || !secs) { console.error('usage: stack-server IFNAME [CIDR6] [--vips=A,B] [--decap-from=CIDR,CIDR] SECONDS'); process.exit(2); }
  const driver = openAfxdp({ ifname, frameCount: 4096, busyPoll: true, log: () => {} });
  let runtime: Runtime | null = null;
  const engine = new Engine({ onOutput: () => runtime?.engineKick(), ndp: { dadTransmits: 0 } });
  engine.addDevice({ name: ifname, pool: driver.pool, mac: driver.mac, mtu: driver.mtu, ...ownership(driver) });
  runtime = new Runtime(engine, [driver], { busyPoll: true });
  const vs = engine.createVs('bench');
  const link = engine.addLink(vs, { device: ifname });
  engine.addAddress(vs, link.name, '10.1.1.1/24');
  const sock = engine.createUdpSocket(vs);
  sock.bind(7);
  sock.on('message', (m: Buffer, r: { port: number; address: string }) => sock.send(m, r.port, r.address));
  if (cidr6) {
    engine.addAddress(vs, link.name, cidr6);
    const s6 = engine.createUdpSocket(vs, { type: 'udp6', ipv6Only: true });
    s6.bind(7);
    s6.on('message', (m: Buffer, r: { port: number; address: string }) => s6.send(m, r.port, r.address));
  }
  for (const v of vips) engine.addVip(vs, v);
  if (decapFrom.length) engine.setDecap(vs, { from: decapFrom });
  runtime.start();
  const profDir = process.env.BENCH_PROFILE;
  const session = profDir ? new inspector.Session() : null;
  if (session) {
    session.connect();
    session.post('Profiler.enable');
    session.post('Profiler.start');
  }
  const cpu0 = process.cpuUsage();
  console.log('ready');
  const finish = () => {
    runtime!.stop();
    const st = driver.stats();
    driver.close();
    const cpu = process.cpuUsage(cpu0);
    // (The session answers on this thread, before post() returns.)
    session?.post('Profiler.stop', (err, r) => {
      if (!err) fs.writeFileSync(path.join(profDir!, `stack-server.${Date.now()}.${process.pid}.cpuprofile`), JSON.stringify(r.profile));
    });
    console.log(JSON.stringify({ vs: vs.counters.toJSON(), cpuUs: { user: cpu.user, system: cpu.system }, decapsulated: link.decapsulated, steps: runtime!.steps, drops: st.drops, xdp: st.xdp }));
    process.exit(0);
  };
  setTimeout(finish, Number(secs) * 1000);
  // Before the driver's own SIGTERM handler closes the socket, so its statistics can still be read.
  process.prependListener('SIGTERM', finish);
}

main();
