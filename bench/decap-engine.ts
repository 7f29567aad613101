/**
 * The engine's cost per UDP echo, plain or through decapsulation, without a driver (the `decap`
 * benchmark's server, minus AF_XDP): one VS with 10.1.1.1/24, fd00:1::1/64, VIPs 198.51.100.10
 * and 2001:db8::10, decap from 10.1.1.100/32 and fd00:1::100/128, a 'udp4' and an IPv6-only 'udp6'
 * echo socket on port 7 (as bench/stack-server.js). Each iteration copies 64 requests into pool
 * frames, runs input, the socket events and the timers, and frees the replies.
 *
 *   node dist/bench/decap-engine.js MODE [BURSTS] [ROUNDS]
 *     MODE    udp (UDP/IPv4 to 10.1.1.1), ipip (the same to the VIP, in IPIP from 10.1.1.100),
 *             udp6, ip6ip6 (the IPv6 pair); one mode per process, so that what the JIT learns
 *             from one does not shape another
 *     BURSTS  bursts of 64 measured per round (default 15000), after 200 bursts of warm-up
 * Prints one JSON line: ns per packet of each round, and the replies (all must come back).
 *
 * Timings move with the machine's load; instruction counts do not. For those, run each mode
 * under callgrind twice with different BURSTS and take the difference per packet (the start-up
 * and the JIT's compilations cancel out; --single-threaded keeps them on the measured thread):
 *   valgrind --tool=callgrind node --single-threaded dist/bench/decap-engine.js ipip 300 1
 *   valgrind --tool=callgrind node --single-threaded dist/bench/decap-engine.js ipip 800 1
 *   → (Ir(800) - Ir(300)) / (500 * 64) instructions per packet
 * A decapsulated reply is routed: the client is resolved first (an ARP reply or Neighbor
 * Advertisement fed in); a plain one is reflected, with no neighbor entry, as in the `decap`
 * benchmark, where the stack never resolves the client in the plain modes.
 */
import { Burst, parseMac } from '../driver/types';
import { ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6, writeEth } from '../protocols/ethernet';
import { fold, sum16 } from '../protocols/checksum';
import { Ip6, parseIp6, pseudoSum6 } from '../protocols/ip/addr';
import { IPPROTO_UDP, parseIpv4, writeIpv4 } from '../protocols/ipv4';
import { Engine } from '../stack/engine';
import { writeIp6Header } from '../stack/ip/output';
import { FramePool } from '../umem/pool';

const DEV = parseMac('02:00:00:00:00:01');
const PEER = parseMac('02:00:00:00:0a:02');
const BURST = 64;
type Mode = 'udp' | 'ipip' | 'udp6' | 'ip6ip6';
const MODES: readonly Mode[] = ['udp', 'ipip', 'udp6', 'ip6ip6'];

/** A UDP datagram to port 7 with the generator's 18-byte payload, in its IP header: from src to dst. */
function udpPacket(src: string, dst: string): Uint8Array {
  const v6 = src.includes(':');
  const o = v6 ? 40 : 20;
  const b = new Uint8Array(o + 8 + 18);
  b[o] = 40000 >> 8; b[o + 1] = 40000 & 0xff; b[o + 3] = 7; b[o + 5] = 26;
  for (let i = 8; i < 26; i++) b[o + i] = 97 + i;
  let c: number;
  if (v6) {
    c = fold(sum16(b, o, 26, pseudoSum6(parseIp6(src), parseIp6(dst), IPPROTO_UDP, 26)));
    writeIp6Header(b, 0, parseIp6(src), parseIp6(dst), IPPROTO_UDP, 26, 64, 0, 0);
  } else {
    const s = parseIpv4(src), d = parseIpv4(dst);
    c = fold(sum16(b, o, 26, (s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff) + IPPROTO_UDP + 26));
    writeIpv4(b, 0, s, d, IPPROTO_UDP, 26, 64, 1, 0, 0);
  }
  if (c === 0) c = 0xffff;
  b[o + 6] = c >> 8; b[o + 7] = c & 0xff;
  return b;
}

/** `pkt` in an outer header from `src` to `dst` (IPIP, RFC 2003, or IPv6 in IPv6, RFC 2473). */
function encapsulate(pkt: Uint8Array, src: string, dst: string): Uint8Array {
  const v6 = src.includes(':');
  const o = v6 ? 40 : 20;
  const b = new Uint8Array(o + pkt.length);
  b.set(pkt, o);
  if (v6) writeIp6Header(b, 0, parseIp6(src), parseIp6(dst), 41, pkt.length, 64, 0, 0);
  else writeIpv4(b, 0, parseIpv4(src), parseIpv4(dst), 4, pkt.length, 64, 1, 0, 0);
  return b;
}

function frame(pkt: Uint8Array, etherType: number): Uint8Array {
  const b = new Uint8Array(14 + pkt.length);
  writeEth(b, 0, DEV, 0, PEER, 0, etherType, -1);
  b.set(pkt, 14);
  return b;
}

/** An ARP reply (RFC 826) from the client 10.1.1.2 to the stack. */
function arpReply(): Uint8Array {
  const b = new Uint8Array(60);
  writeEth(b, 0, DEV, 0, PEER, 0, ETH_P_ARP, -1);
  b.set([0, 1, 8, 0, 6, 4, 0, 2], 14);
  b.set(PEER, 22); b.set([10, 1, 1, 2], 28); b.set(DEV, 32); b.set([10, 1, 1, 1], 38);
  return b;
}

/** A solicited Neighbor Advertisement (RFC 4861 4.4) for the client fd00:1::2, with its link-layer address. */
function neighborAdvert(): Uint8Array {
  const src = parseIp6('fd00:1::2'), dst = parseIp6('fd00:1::1');
  const n = new Uint8Array(40 + 32);
  n[40] = 136; n[44] = 0x60; // solicited, override
  writeWords(n, 48, src);
  n[64] = 2; n[65] = 1; n.set(PEER, 66);
  const c = fold(sum16(n, 40, 32, pseudoSum6(src, dst, 58, 32)));
  n[42] = c >> 8; n[43] = c & 0xff;
  writeIp6Header(n, 0, src, dst, 58, 32, 255, 0, 0);
  return frame(n, ETH_P_IPV6);
}

function writeWords(b: Uint8Array, off: number, a: Ip6): void {
  [a.w0, a.w1, a.w2, a.w3].forEach((w, i) => { b[off + 4 * i] = w >>> 24; b[off + 4 * i + 1] = w >>> 16; b[off + 4 * i + 2] = w >>> 8; b[off + 4 * i + 3] = w; });
}

function main(): void {
  const [mode, burstsArg, roundsArg] = process.argv.slice(2) as [Mode, string?, string?];
  if (!MODES.includes(mode)) { console.error(`usage: decap-engine ${MODES.join('|')} [BURSTS] [ROUNDS]`); process.exit(2); }
  const bursts = Number(burstsArg ?? 15000), rounds = Number(roundsArg ?? 3);
  const pool = new FramePool({ frameSize: 2048, frameCount: 1024 });
  const e = new Engine({ ndp: { dadTransmits: 0 } });
  e.addDevice({ name: 'eth0', pool, mac: DEV, mtu: 1500 });
  const vs = e.createVs('bench');
  const link = e.addLink(vs, { device: 'eth0' });
  e.addAddress(vs, link.name, '10.1.1.1/24');
  e.addAddress(vs, link.name, 'fd00:1::1/64');
  e.addVip(vs, '198.51.100.10');
  e.addVip(vs, '2001:db8::10');
  e.setDecap(vs, { from: ['10.1.1.100/32', 'fd00:1::100/128'] });
  const s4 = e.createUdpSocket(vs);
  s4.bind(7);
  s4.on('message', (m: Buffer, r: { port: number; address: string }) => s4.send(m, r.port, r.address));
  const s6 = e.createUdpSocket(vs, { type: 'udp6', ipv6Only: true });
  s6.bind(7);
  s6.on('message', (m: Buffer, r: { port: number; address: string }) => s6.send(m, r.port, r.address));
  const dev = e.devices[0]!;
  const drain = () => { for (let i = 0; i < dev.out.n; i++) pool.free(dev.out.frame[i]!); dev.out.n = 0; };
  drain();

  const tmpl = {
    udp: frame(udpPacket('10.1.1.2', '10.1.1.1'), ETH_P_IPV4),
    ipip: frame(encapsulate(udpPacket('10.1.1.2', '198.51.100.10'), '10.1.1.100', '10.1.1.1'), ETH_P_IPV4),
    udp6: frame(udpPacket('fd00:1::2', 'fd00:1::1'), ETH_P_IPV6),
    ip6ip6: frame(encapsulate(udpPacket('fd00:1::2', '2001:db8::10'), 'fd00:1::100', 'fd00:1::1'), ETH_P_IPV6),
  }[mode];
  const burst = new Burst(BURST);
  let now = 1000;
  let replies = 0;
  const feed = (t: Uint8Array, count: number) => {
    burst.n = 0;
    for (let j = 0; j < count; j++) {
      const f = pool.alloc();
      const off = pool.dataStart(f);
      pool.bytes.set(t, off);
      burst.push(f, off, t.length, now);
    }
    e.input(0, burst, now);
    e.flushEvents();
    e.advance(now);
    now += 10;
    replies += dev.out.n;
    drain();
  };
  if (mode === 'ipip' || mode === 'ip6ip6') {
    feed(tmpl, 1); // the first reply waits for the client's address
    feed(mode === 'ipip' ? arpReply() : neighborAdvert(), 1);
  }
  for (let i = 0; i < 200; i++) feed(tmpl, BURST);
  const ns: number[] = [];
  let answered = 0;
  for (let r = 0; r < rounds; r++) {
    replies = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < bursts; i++) feed(tmpl, BURST);
    ns.push(Math.round(Number(process.hrtime.bigint() - t0) / (bursts * BURST)));
    answered += replies;
  }
  console.log(JSON.stringify({ mode, nsPerPacket: ns, requests: rounds * bursts * BURST, replies: answered, decapsulated: link.decapsulated,
    drops: vs.counters.toJSON().drops }));
  if (answered !== rounds * bursts * BURST) process.exitCode = 1;
}

main();
