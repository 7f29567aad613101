/**
 * Packet-rate benchmarks over the lab (prefix `xq`, or BENCH_NET_PREFIX). The system under test runs on the stack's
 * device `xq0`; the C AF_XDP generator (bench/c/gen.c) runs on the other end of that veth pair
 * (`stk` in the switch namespace, taken out of the bridge), so the path is one veth pair: through
 * the lab's bridge the generator alone tops out near 0.45 Mpps and would be the bottleneck.
 *
 *  - reflector: TypeScript reflector over AF_XDP (ts-reflector.js) vs the C reflector
 *    (bench/c/reflector.c), UDP frames.
 *  - icmp-udp: the full stack (Engine + Runtime, busy-poll; a VS with 10.1.1.1/24 and a UDP echo
 *    socket on port 7) answering ICMP echo and UDP, vs the C reflector.
 *  - ip6-echo: the same stack process with fd00:1::1/64 as well (and an IPv6-only 'udp6' echo
 *    socket on port 7) answering ICMP echo, ICMPv6 echo, UDP/IPv4 and UDP/IPv6 in every round:
 *    IPv6 against IPv4 side by side (the IPv6 frames carry the same 18-byte payload: 80 bytes).
 *  - decap: the same stack process, also with VIPs 198.51.100.10 and 2001:db8::10 and load
 *    balancers 10.1.1.100 and fd00:1::100 (decap.from): the UDP echo to the VS's own address
 *    beside the same echo to the VIP, each request in IPIP (RFC 2003) or IPv6-in-IPv6 (RFC 2473)
 *    from the load balancer's address, the reply leaving from the VIP, routed, to the client
 *    (the generator, whose address is the inner source): direct server return.
 *
 * No CPU pinning: on this 2-core VM pinning the reflector to one core cut its rate by 3x (the
 * veth/XDP softirq work then competes with it). Every round runs each contender once, in
 * alternating order; medians over rounds are reported.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { labDown, labUp, Lab, SWITCH_STACK_PORT } from '../stack/lab/lab';
import { BUILD, DIST_BENCH, lastJson, median, Proc, run, sleep, table } from './lib';

export const PREFIX = process.env.BENCH_NET_PREFIX ?? 'xq';
const STACK_IP = '10.1.1.1';
const PEER_IP = '10.1.1.2';
const STACK_IP6 = 'fd00:1::1';
const PEER_IP6 = 'fd00:1::2';
const VIP = '198.51.100.10';
const VIP6 = '2001:db8::10';
const LB_IP = '10.1.1.100';
const LB_IP6 = 'fd00:1::100';

export interface NetOptions { rounds: number; seconds: number; warmup: number }
interface GenResult { tx_pps: number; rx_pps: number; tx: number; rx: number; seconds: number; arp_replies: number }

function need(file: string): string {
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run 'make -C driver' (or scripts/setup.sh)`);
  return file;
}

/** Runs the generator against a system under test started by `start` (returns when it is ready). */
async function measure(lab: Lab, mode: 'udp' | 'icmp' | 'udp6' | 'icmp6' | 'ipip' | 'ip6ip6', dstMac: string, o: NetOptions,
  start: (totalS: number) => Promise<Proc>): Promise<{ gen: GenResult; sut: Proc }> {
  const total = o.warmup + o.seconds + 2;
  const sut = await start(total);
  const v6 = mode.endsWith('6');
  // Encapsulated modes: to the VIP, from the load balancer to the VS's address outside.
  const dst = mode === 'ipip' ? `${VIP},${LB_IP},${STACK_IP}` : mode === 'ip6ip6' ? `${VIP6},${LB_IP6},${STACK_IP6}`
    : v6 ? STACK_IP6 : STACK_IP;
  const gen = run('ip', ['netns', 'exec', lab.switchNs, need(path.join(BUILD, 'gen')), SWITCH_STACK_PORT, mode, dstMac,
    v6 ? PEER_IP6 : PEER_IP, dst,
    String(o.seconds), String(o.warmup)]);
  const code = await gen.done;
  sut.child.kill('SIGTERM');
  await sut.done;
  if (code !== 0) throw new Error(`generator failed (${code}): ${gen.stderr}`);
  await sleep(300); // let the device settle (XDP detach) before the next contender
  return { gen: lastJson<GenResult>(gen), sut };
}

function startC(lab: Lab) {
  return async (total: number) => {
    const p = run(need(path.join(BUILD, 'reflector')), [lab.stackDevice, '0', String(total)]);
    await sleep(700);
    if (p.child.exitCode !== null) throw new Error(`C reflector exited: ${p.stderr}`);
    return p;
  };
}

function startNode(script: string, args: string[]) {
  return async (total: number) => {
    // BENCH_PROFILE=DIR writes a CPU profile of each server process (summarise with dist/bench/tcp-profile.js).
    // stack-server.js starts its profiler itself once its XDP program is attached: the sampling
    // signals of --cpu-prof interrupt the kernel's verifier, and loading the program fails (EAGAIN).
    const prof = process.env.BENCH_PROFILE && script !== 'stack-server.js' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
    const p = run(process.execPath, [...prof, path.join(DIST_BENCH, script), ...args, String(total)]);
    await p.waitFor(/^ready/, 15000);
    await sleep(200);
    return p;
  };
}

function labFor(): Lab {
  const lab = labUp({ prefix: PREFIX, peers: [{ ipv4: `${PEER_IP}/24` }] });
  // The generator takes the bridge's stack port: a direct veth pair to the device under test.
  execFileSync('ip', ['-n', lab.switchNs, 'link', 'set', 'dev', SWITCH_STACK_PORT, 'nomaster'], { stdio: 'ignore' });
  return lab;
}

export async function benchReflector(o: NetOptions): Promise<Record<string, unknown>> {
  const lab = labFor();
  try {
    const c: number[] = [], ts: number[] = [], offered: number[] = [];
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? ['c', 'ts'] : ['ts', 'c'];
      for (const who of order) {
        const m = await measure(lab, 'udp', lab.stackMac, o, who === 'c' ? startC(lab)
          : startNode('ts-reflector.js', [lab.stackDevice]));
        (who === 'c' ? c : ts).push(m.gen.rx_pps / 1e6);
        offered.push(m.gen.tx_pps / 1e6);
        process.stdout.write(`  round ${r + 1} ${who}: ${(m.gen.rx_pps / 1e6).toFixed(3)} Mpps reflected (offered ${(m.gen.tx_pps / 1e6).toFixed(3)})\n`);
      }
    }
    const mc = median(c), mt = median(ts);
    table('reflector: 64-byte frames, MAC swap, AF_XDP copy mode on veth (Mpps reflected, median of rounds)',
      ['reflector', 'Mpps', 'rounds', 'ratio vs C', 'target'],
      [['C (libxdp)', mc, c.map((x) => x.toFixed(3)).join(' '), 1, ''],
        ['TypeScript', mt, ts.map((x) => x.toFixed(3)).join(' '), mt / mc, '>= 0.8']]);
    console.log(`  generator offered load (median): ${median(offered).toFixed(3)} Mpps`);
    return { cMpps: mc, tsMpps: mt, ratio: mt / mc, target: 0.8, rounds: { c, ts }, offeredMpps: median(offered) };
  } finally {
    labDown(PREFIX);
  }
}

export async function benchIcmpUdp(o: NetOptions): Promise<Record<string, unknown>> {
  const lab = labFor();
  try {
    const res: Record<string, number[]> = { c: [], icmp: [], udp: [] };
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? ['c', 'icmp', 'udp'] : ['udp', 'icmp', 'c'];
      for (const who of order) {
        const mode = who === 'icmp' ? 'icmp' : 'udp';
        const m = await measure(lab, mode, lab.stackMac, o, who === 'c' ? startC(lab)
          : startNode('stack-server.js', [lab.stackDevice]));
        res[who]!.push(m.gen.rx_pps / 1e6);
        process.stdout.write(`  round ${r + 1} ${who}: ${(m.gen.rx_pps / 1e6).toFixed(3)} Mpps answered (offered ${(m.gen.tx_pps / 1e6).toFixed(3)})\n`);
      }
    }
    const mc = median(res.c!), mi = median(res.icmp!), mu = median(res.udp!);
    table('icmp-udp: full stack (Engine + Runtime, busy-poll) vs C reflector, 64-byte frames (Mpps answered, median)',
      ['server', 'Mpps', 'rounds', 'ratio vs C', 'target'],
      [['C reflector (UDP frames)', mc, res.c!.map((x) => x.toFixed(3)).join(' '), 1, ''],
        ['xdpstack ICMP echo', mi, res.icmp!.map((x) => x.toFixed(3)).join(' '), mi / mc, '>= 0.7'],
        ['xdpstack UDP echo socket', mu, res.udp!.map((x) => x.toFixed(3)).join(' '), mu / mc, '>= 0.7']]);
    return { cMpps: mc, icmpMpps: mi, udpMpps: mu, icmpRatio: mi / mc, udpRatio: mu / mc, target: 0.7, rounds: res };
  } finally {
    labDown(PREFIX);
  }
}

/**
 * ip6-echo: one stack process serving both families (stack-server.js with fd00:1::1/64), the
 * generator sending ICMP echo, ICMPv6 echo, UDP/IPv4 and UDP/IPv6 in turn, every round in
 * alternating order: the IPv6 rates as ratios of the IPv4 ones measured beside them.
 */
export async function benchIp6Echo(o: NetOptions): Promise<Record<string, unknown>> {
  const lab = labFor();
  type Who = 'icmp' | 'icmp6' | 'udp' | 'udp6';
  const who: Who[] = ['icmp', 'icmp6', 'udp', 'udp6'];
  try {
    const res: Record<Who, number[]> = { icmp: [], icmp6: [], udp: [], udp6: [] };
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? who : [...who].reverse();
      for (const w of order) {
        const m = await measure(lab, w, lab.stackMac, o, startNode('stack-server.js', [lab.stackDevice, `${STACK_IP6}/64`]));
        if (w.endsWith('6') && m.gen.arp_replies > 1) console.log(`  (${w}: the generator answered ${m.gen.arp_replies} neighbor solicitations)`);
        // BENCH_NET_VERBOSE=1: the server's closing line (VS counters and drops, runtime steps, XDP socket statistics).
        if (process.env.BENCH_NET_VERBOSE) for (const l of m.sut.stdout.split('\n')) if (l.startsWith('{')) console.log(`  server: ${l}`);
        res[w].push(m.gen.rx_pps / 1e6);
        process.stdout.write(`  round ${r + 1} ${w}: ${(m.gen.rx_pps / 1e6).toFixed(3)} Mpps answered (offered ${(m.gen.tx_pps / 1e6).toFixed(3)})\n`);
      }
    }
    const med = Object.fromEntries(who.map((w) => [w, median(res[w])])) as Record<Who, number>;
    const rows = (label: string, w: Who, base: Who | null) => [label, med[w], res[w].map((x) => x.toFixed(3)).join(' '),
      base ? med[w] / med[base] : '', base ? '>= 0.9' : ''];
    table('ip6-echo: full stack (Engine + Runtime, busy-poll), IPv6 against IPv4 in the same run (Mpps answered, median)',
      ['server', 'Mpps', 'rounds', 'IPv6/IPv4', 'target'],
      [rows('ICMP echo (IPv4, 60 B)', 'icmp', null), rows('ICMPv6 echo (80 B)', 'icmp6', 'icmp'),
        rows('UDP/IPv4 echo socket (60 B)', 'udp', null), rows('UDP/IPv6 echo socket (80 B)', 'udp6', 'udp')]);
    return { mpps: med, icmp6Ratio: med.icmp6 / med.icmp, udp6Ratio: med.udp6 / med.udp, target: 0.9, rounds: res };
  } finally {
    labDown(PREFIX);
  }
}

/**
 * decap (issue 13, direct server return): one stack process per measurement, always with the same
 * configuration (fd00:1::1/64, VIPs 198.51.100.10 and 2001:db8::10, decap from 10.1.1.100/32 and
 * fd00:1::100/128), answering in turn the plain UDP echo (to 10.1.1.1, 60-byte frames), the same
 * echo to the VIP inside IPIP from the load balancer (80 bytes), and the same pair over IPv6
 * (80 and 120 bytes); rounds alternate the order. The replies to a VIP leave from the VIP, routed
 * to the client (the generator): it counts only UDP from the VIP to its own address.
 */
export async function benchDecap(o: NetOptions): Promise<Record<string, unknown>> {
  const lab = labFor();
  type Who = 'udp' | 'ipip' | 'udp6' | 'ip6ip6';
  const who: Who[] = ['udp', 'ipip', 'udp6', 'ip6ip6'];
  const server = startNode('stack-server.js', [lab.stackDevice, `${STACK_IP6}/64`, `--vips=${VIP},${VIP6}`,
    `--decap-from=${LB_IP}/32,${LB_IP6}/128`]);
  try {
    const res: Record<Who, number[]> = { udp: [], ipip: [], udp6: [], ip6ip6: [] };
    const offered: Record<Who, number[]> = { udp: [], ipip: [], udp6: [], ip6ip6: [] };
    const cpu: Record<Who, number[]> = { udp: [], ipip: [], udp6: [], ip6ip6: [] };
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? who : [...who].reverse();
      for (const w of order) {
        const m = await measure(lab, w, lab.stackMac, o, server);
        const closing = m.sut.stdout.split('\n').filter((l) => l.startsWith('{')).pop();
        if (process.env.BENCH_NET_VERBOSE && closing) console.log(`  server: ${closing}`);
        if (!closing) throw new Error(`${w}: no closing line from the server: ${m.sut.stdout} ${m.sut.stderr}`);
        const st = JSON.parse(closing) as { decapsulated: number; cpuUs: { user: number; system: number };
          vs: { txPackets: number; drops: { total: number; reasons: Record<string, number> } } };
        // A decapsulated run must show the stack decapsulating (and a plain one must not).
        if ((w === 'ipip' || w === 'ip6ip6') !== st.decapsulated > 0) throw new Error(`${w}: the server decapsulated ${st.decapsulated} packets`);
        res[w].push(m.gen.rx_pps / 1e6);
        offered[w].push(m.gen.tx_pps / 1e6);
        // The server's user CPU time per datagram it sent (the whole run: warm-up and window); system
        // time beside it (system calls, and the veth's softirq work whenever it ran in the server's time).
        const tx = st.vs.txPackets || NaN;
        cpu[w].push((st.cpuUs.user * 1000) / tx);
        process.stdout.write(`  round ${r + 1} ${w}: ${(m.gen.rx_pps / 1e6).toFixed(3)} Mpps answered (offered ${(m.gen.tx_pps / 1e6).toFixed(3)}), ` +
          `server CPU user ${cpu[w].at(-1)!.toFixed(0)} + system ${((st.cpuUs.system * 1000) / tx).toFixed(0)} ns/packet` +
          `${st.vs.drops.total ? `, server drops ${JSON.stringify(st.vs.drops.reasons)}` : ''}\n`);
      }
    }
    const med = Object.fromEntries(who.map((w) => [w, median(res[w])])) as Record<Who, number>;
    const rows = (label: string, w: Who, base: Who | null) => [label, med[w], res[w].map((x) => x.toFixed(3)).join(' '),
      base ? med[w] / med[base] : '', base ? '>= 0.9' : ''];
    table('decap: full stack (Engine + Runtime, busy-poll), UDP echo to a VIP through decapsulation vs to the VS address (Mpps answered, median)',
      ['request', 'Mpps', 'rounds', 'decap/plain', 'target'],
      [rows('UDP/IPv4 to 10.1.1.1 (60 B)', 'udp', null), rows('UDP/IPv4 in IPIP to the VIP (80 B)', 'ipip', 'udp'),
        rows('UDP/IPv6 to fd00:1::1 (80 B)', 'udp6', null), rows('UDP/IPv6 in IPv6 to the VIP (120 B)', 'ip6ip6', 'udp6')]);
    // The same ratio round by round (each pair measured back to back: less exposed to the VM's drift).
    const per = (a: Who, b: Who) => res[a].map((x, i) => x / res[b][i]!);
    const r4 = per('ipip', 'udp'), r6 = per('ip6ip6', 'udp6');
    console.log(`  decap/plain round by round: IPv4 ${r4.map((x) => x.toFixed(2)).join(' ')} (median ${median(r4).toFixed(2)}), ` +
      `IPv6 ${r6.map((x) => x.toFixed(2)).join(' ')} (median ${median(r6).toFixed(2)})`);
    const ns = Object.fromEntries(who.map((w) => [w, median(cpu[w])])) as Record<Who, number>;
    console.log(`  server user CPU per packet answered (median, ns): ${who.map((w) => `${w} ${ns[w].toFixed(0)}`).join(', ')}; ` +
      `plain/decap ${(ns.udp / ns.ipip).toFixed(2)} (IPv4), ${(ns.udp6 / ns.ip6ip6).toFixed(2)} (IPv6)`);
    console.log(`  generator offered load (median): ${who.map((w) => `${w} ${median(offered[w]).toFixed(3)}`).join(', ')} Mpps`);
    return { mpps: med, ipipRatio: med.ipip / med.udp, ip6ip6Ratio: med.ip6ip6 / med.udp6, target: 0.9, rounds: res,
      roundRatios: { ipip: r4, ip6ip6: r6 }, cpuNsPerPacket: ns, cpuRounds: cpu,
      offeredMpps: Object.fromEntries(who.map((w) => [w, median(offered[w])])) };
  } finally {
    labDown(PREFIX);
  }
}
