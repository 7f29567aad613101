/**
 * vs-scale: per-packet engine cost with 1, 64, 512 and 4096 virtual servers (each on its own
 * VLAN, all with 10.1.1.1/24; 2048 VLANs per device). Traffic: ICMP echo requests from
 * 10.1.1.2, spread round-robin over all VSes, 64 per burst; each iteration copies the request
 * into pool frames, runs engine.input + advance, and frees the replies. The same for IPv6: VSes
 * that also hold fd00:1::1/64, ICMPv6 echo requests from fd00:1::2 (same 18-byte payload).
 * Measured with the `benchmark` package; rounds alternate the order of all cases of both
 * families; medians reported.
 */
import Benchmark from 'benchmark';
import { Engine } from '../stack/engine';
import { FramePool } from '../umem/pool';
import { parseMac } from '../driver/types';
import { writeEth, ETH_P_IPV4, ETH_P_IPV6 } from '../protocols/ethernet';
import { writeIpv4, parseIpv4, IPPROTO_ICMP } from '../protocols/ipv4';
import { fold, sum16 } from '../protocols/checksum';
import { parseIp6, pseudoSum6 } from '../protocols/ip/addr';
import { IPPROTO_ICMPV6 } from '../protocols/ipv6';
import { writeIp6Header } from '../stack/ip/output';
import { addVs, Burst, DEV_MAC, devOf, drainAll, makeEngine, VLANS_PER_DEV } from './vsbuild';
import { median, table } from './lib';

const PEER_MAC = parseMac('02:00:00:00:0a:02');
const BURST = 64;

/**
 * An ICMP echo request (id 1, seq 1, 18-byte payload) from the peer to the VSes' address, VLAN tag
 * set per frame by the caller: over IPv4 10.1.1.2 → 10.1.1.1 (64 bytes with the tag), or with `v6`
 * ICMPv6 fd00:1::2 → fd00:1::1 (the same payload: 84 bytes).
 */
function echoTemplate(v6: boolean): Uint8Array {
  const src6 = parseIp6('fd00:1::2'), dst6 = parseIp6('fd00:1::1');
  const o = 18 + (v6 ? 40 : 20);
  const b = new Uint8Array(o + 8 + 18);
  writeEth(b, 0, DEV_MAC, 0, PEER_MAC, 0, v6 ? ETH_P_IPV6 : ETH_P_IPV4, 1);
  b[o] = v6 ? 128 : 8; b[o + 5] = 1; b[o + 7] = 1;
  for (let i = 8; i < 26; i++) b[o + i] = i;
  const c = fold(sum16(b, o, 26, v6 ? pseudoSum6(src6, dst6, IPPROTO_ICMPV6, 26) : 0));
  b[o + 2] = c >> 8; b[o + 3] = c & 0xff;
  if (v6) writeIp6Header(b, 18, src6, dst6, IPPROTO_ICMPV6, 26, 64, 0, 0);
  else writeIpv4(b, 18, parseIpv4('10.1.1.2'), parseIpv4('10.1.1.1'), IPPROTO_ICMP, 26, 64, 1, 0, 0);
  return b;
}

interface Case { n: number; v6: boolean; e: Engine; pools: FramePool[]; run: () => void; replies: () => number }

/** `span`: traffic goes round-robin to the first `span` VSes (default all n); `v6`: ICMPv6 echo to fd00:1::1. */
export function makeCase(n: number, span = n, v6 = false): Case {
  const devices = Math.ceil(n / VLANS_PER_DEV);
  const { e, pools } = makeEngine(devices, 512);
  for (let i = 0; i < n; i++) addVs(e, i, v6);
  const tmpl = echoTemplate(v6);
  const len = tmpl.length;
  const burst = new Burst(BURST);
  let next = 0; // next VS index
  let now = 1000;
  let replies = 0;
  const run = () => {
    const dev = devOf(next);
    const pool = pools[dev]!;
    const bytes = pool.bytes;
    burst.n = 0;
    for (let j = 0; j < BURST; j++) {
      const vlan = (next % VLANS_PER_DEV) + 1;
      const f = pool.alloc();
      const off = pool.dataStart(f);
      bytes.set(tmpl, off);
      bytes[off + 14] = vlan >> 8;
      bytes[off + 15] = vlan & 0xff;
      burst.push(f, off, len, now);
      next = next + 1 === span ? 0 : next + 1;
      if (devOf(next) !== dev) break; // a burst stays on one device
    }
    e.input(dev, burst, now);
    e.advance(now);
    now += 10;
    for (const d of e.devices) replies += d.out.n;
    drainAll(e);
  };
  return { n, v6, e, pools, run, replies: () => replies };
}

export function measure(c: Case, maxTime: number): number {
  const b = new Benchmark(`vs=${c.n}${c.v6 ? ' ipv6' : ''}`, c.run, { maxTime, minSamples: 20 });
  b.run();
  // One call = one burst of BURST packets (a burst never spans devices; 2048 % 64 == 0).
  return 1e9 / (b.hz * BURST);
}

export function benchVsScale(o: { rounds: number; maxTime: number }): Record<string, unknown> {
  const sizes = [1, 64, 512, 4096];
  const cases = [...sizes.map((s) => makeCase(s)), ...sizes.map((s) => makeCase(s, s, true))];
  const key = (c: Case) => `${c.v6 ? 'v6' : 'v4'}:${c.n}`;
  // Sanity: every request is answered (one echo reply each).
  for (const c of cases) {
    for (let k = 0; k < 10; k++) c.run();
    if (c.replies() !== 10 * BURST) throw new Error(`vs-scale: ${c.n} VSes answered ${c.replies()} of ${10 * BURST} echo requests${c.v6 ? ' (IPv6)' : ''}`);
  }
  const ns: Record<string, number[]> = {};
  for (const c of cases) ns[key(c)] = [];
  for (let r = 0; r < o.rounds; r++) {
    const order = r % 2 === 0 ? cases : [...cases].reverse();
    for (const c of order) ns[key(c)]!.push(measure(c, o.maxTime));
  }
  for (const c of cases) {
    const p = c.pools.map((x) => x.check());
    if (p.some((x) => x.free !== x.total)) throw new Error(`vs-scale: frames leaked with ${c.n} VSes`);
  }
  const med = (k: string) => median(ns[k]!);
  const base4 = med('v4:1'), base6 = med('v6:1');
  table('vs-scale: engine cost per ICMP / ICMPv6 echo (input + reply), 64-packet bursts, no driver (ns/packet, median)',
    ['VSes', 'IPv4 ns/packet', 'rounds', 'ratio vs 1', 'IPv6 ns/packet', 'rounds', 'ratio vs 1', 'IPv6/IPv4', 'target'],
    sizes.map((s) => [String(s), med(`v4:${s}`), ns[`v4:${s}`]!.map((x) => x.toFixed(0)).join(' '), med(`v4:${s}`) / base4,
      med(`v6:${s}`), ns[`v6:${s}`]!.map((x) => x.toFixed(0)).join(' '), med(`v6:${s}`) / base6, med(`v6:${s}`) / med(`v4:${s}`),
      s === 4096 ? '<= 1.05 (vs 1)' : '']));
  return {
    nsPerPacket: Object.fromEntries(sizes.map((s) => [s, med(`v4:${s}`)])),
    nsPerPacket6: Object.fromEntries(sizes.map((s) => [s, med(`v6:${s}`)])),
    rounds: ns,
    ratio4096: med('v4:4096') / base4,
    ratio4096v6: med('v6:4096') / base6,
    target: 1.05,
  };
}
