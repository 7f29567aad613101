/**
 * Trace filters and per-frame times, on a stack over the memory driver under virtual time.
 *
 * A known mix of frames (ARP, ICMP echo, UDP, TCP SYN, ICMPv6 echo, Neighbor Solicitation, IPv6 with
 * a Destination Options header, a QinQ frame, another VLAN's ARP and UDP to a closed port, an IPIP
 * and an IPv6-in-IPv6 packet of a load balancer) goes to
 * the stack while one trace per filter runs. Each filtered capture must hold exactly the frames of
 * the unfiltered one that match the filter's definition applied to tshark's dissection of them (an
 * implementation independent of ours), and the counts designed into the mix. Times in every capture strictly increase, and every request
 * precedes its reply.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { createStack, Stack } from '../stack/stack';
import { TraceFilter, TraceFilterError, TraceFilterSpec, FrameView } from '../stack/trace';
import type { StackConfig } from '../stack/control/config';
import { PcapWriter, readCapture, CaptureRecord } from '../driver/pcap';
import { Burst, parseMac } from '../driver/types';
import { writeEth, writeEthQinQ, ETH_P_IPV6, ETH_P_IPV4 } from '../protocols/ethernet';
import { IPPROTO_TCP, writeIpv4 } from '../protocols/ipv4';
import { fold, sum16 } from '../protocols/checksum';
import { parseIp6, pseudoSum, solicitedNode, multicastMac6 } from '../protocols/ip/addr';
import { ARP_REQUEST } from '../protocols/arp';
import { arpFrame, icmpEchoFrame, udpFrame, BCAST, ZERO, ip } from './lib/frames';
import { packet, optsHdr } from './lib/ipv6-frames';
import { echo6, ns6, udp6 } from './lib/engine6';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-trace-filter-'));
const STACK_MAC = parseMac('02:00:00:00:00:01');
const PEER = parseMac('02:00:00:00:00:02');
const PEER20 = parseMac('02:00:00:00:00:03');
const A6 = parseIp6('fd00::1');
const B6 = parseIp6('fd00::2');

function config(): StackConfig {
  return {
    name: 'tf',
    engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [
      { name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24', 'fd00::1/64'] }] },
      { name: 'b', links: [{ device: 'm0', vlan: 20, addresses: ['10.1.1.1/24'] }] },
    ],
    services: [{ type: 'udp-echo', vs: 'a', port: 7 }, { type: 'tcp-echo', vs: 'a', port: 7 }],
  } as StackConfig;
}

function eth6(vlan: number, dst: Uint8Array, ipPacket: Uint8Array): Uint8Array {
  const f = new Uint8Array(18 + ipPacket.length);
  writeEth(f, 0, dst, 0, PEER, 0, ETH_P_IPV6, vlan);
  f.set(ipPacket, 18);
  return f;
}

/** NDP's hop limit (RFC 4861 7.1.1: 255, or the message is dropped). */
function hop255(p: Uint8Array): Uint8Array {
  p[7] = 255;
  return p;
}

/** A TCP SYN 10.1.1.2:sport → 10.1.1.1:dport on VLAN 10. */
function synFrame(sport: number, dport: number): Uint8Array {
  const b = new Uint8Array(18 + 20 + 20);
  writeEth(b, 0, STACK_MAC, 0, PEER, 0, ETH_P_IPV4, 10);
  const t = 38;
  b[t] = sport >> 8; b[t + 1] = sport & 0xff; b[t + 2] = dport >> 8; b[t + 3] = dport & 0xff;
  b[t + 7] = 1; // seq 1
  b[t + 12] = 5 << 4; b[t + 13] = 0x02; // SYN
  b[t + 14] = 0xff; b[t + 15] = 0xff;
  const c = fold(sum16(b, t, 20, pseudoSum(ip('10.1.1.2'), ip('10.1.1.1'), IPPROTO_TCP, 20)));
  b[t + 16] = c >> 8; b[t + 17] = c & 0xff;
  writeIpv4(b, 18, ip('10.1.1.2'), ip('10.1.1.1'), IPPROTO_TCP, 20, 64, 9, 0, 0);
  return b;
}

/** An IPv4 UDP datagram inside 802.1ad 100 + 802.1Q 10 (the stack takes no QinQ: received, dropped). */
function qinqFrame(): Uint8Array {
  const inner = udpFrame(-1, STACK_MAC, PEER, '10.1.1.2', 5001, '10.1.1.1', 7, new Uint8Array(4));
  const b = new Uint8Array(inner.length + 8);
  writeEthQinQ(b, 0, STACK_MAC, 0, PEER, 0, ETH_P_IPV4, 100, 10);
  b.set(inner.subarray(14), 22);
  return b;
}

/** A load balancer's IPIP packet (RFC 2003) on VLAN 10: 10.1.1.50 → 10.1.1.1 around UDP 192.0.2.7:5003 → 198.51.100.10:7. */
function ipipFrame(data: Uint8Array): Uint8Array {
  const inner = udpFrame(-1, STACK_MAC, PEER, '192.0.2.7', 5003, '198.51.100.10', 7, data).subarray(14);
  const b = new Uint8Array(18 + 20 + inner.length);
  writeEth(b, 0, STACK_MAC, 0, PEER, 0, ETH_P_IPV4, 10);
  writeIpv4(b, 18, ip('10.1.1.50'), ip('10.1.1.1'), 4, inner.length, 64, 11, 0, 0);
  b.set(inner, 38);
  return b;
}

/** IPv6 in IPv6 (RFC 2473) on VLAN 10: fd00::50 → fd00::1 around an ICMPv6 echo 2001:db8::7 → 2001:db8::10. */
function ip6in6Frame(data: Uint8Array): Uint8Array {
  const c = parseIp6('2001:db8::7');
  const vip = parseIp6('2001:db8::10');
  const inner = packet([], 58, echo6(c, vip, 0x99, 1, data), vip, c);
  return eth6(10, STACK_MAC, packet([], 41, inner, A6, parseIp6('fd00::50')));
}

/** The mix, in bursts (frames of one burst arrive together, at one time). */
function mix(): Uint8Array[][] {
  const data = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  return [
    [arpFrame(ARP_REQUEST, 10, BCAST, PEER, '10.1.1.2', ZERO, '10.1.1.1')],
    // Two requests in one burst: same receive time, stamped 1 µs apart.
    [icmpEchoFrame(10, STACK_MAC, PEER, '10.1.1.2', '10.1.1.1', 0x4242, 1, data),
      udpFrame(10, STACK_MAC, PEER, '10.1.1.2', 5000, '10.1.1.1', 7, data)],
    [synFrame(40000, 7)],
    [eth6(10, multicastMac6(solicitedNode(A6)), hop255(packet([], 58, ns6(A6, B6, solicitedNode(A6), PEER), solicitedNode(A6), B6)))],
    [eth6(10, STACK_MAC, packet([], 58, echo6(B6, A6, 0x77, 1, data), A6, B6))],
    [eth6(10, STACK_MAC, packet([optsHdr(60, [])], 17, udp6(B6, 5002, A6, 7, data), A6, B6))],
    [qinqFrame()],
    [arpFrame(ARP_REQUEST, 20, BCAST, PEER20, '10.1.1.3', ZERO, '10.1.1.1')],
    [udpFrame(20, STACK_MAC, PEER20, '10.1.1.3', 5000, '10.1.1.1', 9, data)],
    // Tunnels from no load balancer of this VS: refused, unanswered, but traced.
    [ipipFrame(data)],
    [ip6in6Frame(data)],
  ];
}

/** One frame as tshark dissects it (the reference: an implementation independent of ours). */
interface Dissected {
  protos: string[];
  vlans: number[];
  outer: number[];
  /**
   * The packet's own (not quoted) IPv4/IPv6 sources and destinations — both headers of a tunnel,
   * as tshark's ip.addr matches them —, ARP protocol addresses, ND targets.
   */
  ip: string[];
  arp: string[];
  ipv6: string[];
  nd: string[];
  /** The packet's own transport, inside a tunnel the inner one ('udp', 'tcp', 'icmp', 'icmpv6', or ''), and its two ports. */
  l4: string;
  ports: number[];
}

interface Case { name: string; spec: TraceFilterSpec; vs?: string; ref: (d: Dissected) => boolean; expect: number }

const hostIs = (x: string) => (d: Dissected) => d.ip.includes(x) || d.arp.includes(x) || d.ipv6.includes(x) || d.nd.includes(x);
const portIs = (p: number) => (d: Dissected) => (d.l4 === 'udp' || d.l4 === 'tcp') && d.ports.includes(p);
const vlanIs = (v: number) => (d: Dissected) => d.vlans.includes(v) || d.outer.includes(v);
const l3 = (d: Dissected) => d.protos.find((p) => p === 'ip' || p === 'ipv6' || p === 'arp') ?? '';
const vsA = (d: Dissected) => d.vlans[0] === 10 && d.outer.length === 0;

/**
 * Expected counts, from the mix: frames in + frames the stack sends back. Replies: ARP reply, echo
 * reply, UDP echo, SYN-ACK, Neighbor Advertisement, ICMPv6 echo reply, UDP echo (IPv6), ARP reply
 * (VLAN 20), port unreachable (VLAN 20), protocol unreachable (the IPIP packet: VS a takes no
 * tunnels), Parameter Problem "unrecognized Next Header" (the IPv6-in-IPv6 packet); the QinQ frame
 * is dropped unanswered.
 */
const CASES: Case[] = [
  { name: 'vs a', spec: {}, vs: 'a', ref: vsA, expect: 18 },
  { name: 'vlan 10', spec: { vlan: 10 }, ref: vlanIs(10), expect: 19 },
  { name: 'vlan 100 (outer tag)', spec: { vlan: 100 }, ref: vlanIs(100), expect: 1 },
  { name: 'vlan 20', spec: { vlan: 20 }, ref: vlanIs(20), expect: 4 },
  { name: 'host 10.1.1.2', spec: { host: '10.1.1.2' }, ref: hostIs('10.1.1.2'), expect: 9 },
  { name: 'host 10.1.1.3', spec: { host: '10.1.1.3' }, ref: hostIs('10.1.1.3'), expect: 4 },
  { name: 'host fd00::1 (NS target)', spec: { host: 'fd00::1' }, ref: hostIs('fd00::1'), expect: 8 },
  { name: 'host fd00::2', spec: { host: 'fd00::2' }, ref: hostIs('fd00::2'), expect: 6 },
  { name: 'port 7', spec: { port: 7 }, ref: portIs(7), expect: 8 },
  { name: 'port 9 (not inside ICMP quotes)', spec: { port: 9 }, ref: portIs(9), expect: 1 },
  { name: 'proto tcp', spec: { proto: 'tcp' }, ref: (d) => d.l4 === 'tcp', expect: 2 },
  { name: 'proto udp', spec: { proto: 'udp' }, ref: (d) => d.l4 === 'udp', expect: 7 },
  { name: 'proto icmp', spec: { proto: 'icmp' }, ref: (d) => d.l4 === 'icmp', expect: 4 },
  { name: 'proto icmp6', spec: { proto: 'icmp6' }, ref: (d) => d.l4 === 'icmpv6', expect: 6 },
  { name: 'proto arp', spec: { proto: 'arp' }, ref: (d) => l3(d) === 'arp', expect: 4 },
  { name: 'proto ipv4', spec: { proto: 'ipv4' }, ref: (d) => l3(d) === 'ip', expect: 11 },
  { name: 'proto ipv6', spec: { proto: 'ipv6' }, ref: (d) => l3(d) === 'ipv6', expect: 8 },
  { name: 'vlan 10 and udp and port 7', spec: { vlan: 10, proto: 'udp', port: 7 }, ref: (d) => vlanIs(10)(d) && d.l4 === 'udp' && portIs(7)(d), expect: 6 },
  { name: 'vs a and host 10.1.1.2 and port 7', spec: { host: '10.1.1.2', port: 7 }, vs: 'a', ref: (d) => vsA(d) && hostIs('10.1.1.2')(d) && portIs(7)(d), expect: 4 },
  { name: 'host 192.0.2.7 (a tunnel\'s inner source)', spec: { host: '192.0.2.7' }, ref: hostIs('192.0.2.7'), expect: 1 },
  { name: 'host 10.1.1.50 (a tunnel\'s outer source)', spec: { host: '10.1.1.50' }, ref: hostIs('10.1.1.50'), expect: 2 },
  { name: 'host 2001:db8::10 (inside IPv6 in IPv6)', spec: { host: '2001:db8::10' }, ref: hostIs('2001:db8::10'), expect: 1 },
  { name: 'port 5003 (inside IPIP)', spec: { port: 5003 }, ref: portIs(5003), expect: 1 },
  { name: 'host 2001:db8::7 and icmp6 (inside a tunnel)', spec: { host: '2001:db8::7', proto: 'icmp6' }, ref: (d) => hostIs('2001:db8::7')(d) && d.l4 === 'icmpv6', expect: 1 },
  { name: 'host 10.1.1.3 and arp', spec: { host: '10.1.1.3', proto: 'arp' }, ref: (d) => hostIs('10.1.1.3')(d) && l3(d) === 'arp', expect: 2 },
];

const FIELDS = ['frame.protocols', 'vlan.id', 'ieee8021ad.id', 'ip.src', 'ip.dst', 'arp.src.proto_ipv4', 'arp.dst.proto_ipv4', 'ipv6.src', 'ipv6.dst',
  'icmpv6.nd.ns.target_address', 'icmpv6.nd.na.target_address', 'udp.port', 'tcp.port'];

/** Every frame of `file` as tshark dissects it (one run of tshark). */
function dissect(file: string): Dissected[] {
  let out: string;
  try {
    out = execFileSync('tshark', ['-n', '-r', file, '-T', 'fields', '-E', 'occurrence=a', '-E', 'aggregator=,', ...FIELDS.flatMap((f) => ['-e', f])],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('tshark is not installed (scripts/setup.sh installs it)');
    throw e;
  }
  return out.split('\n').filter((l) => l.trim()).map((line) => {
    const c = line.split('\t').map((x) => (x === '' ? [] : x.split(',')));
    const protos = c[0]![0]!.split(':');
    // The packet's own transport: the protocol after its IP header (and IPv6 extension headers);
    // an ICMP error's quoted header comes after it, its addresses and ports later in each field.
    // A tunnel is an IP header right after another: both are the packet's own.
    const at = protos.findIndex((p) => p === 'ip' || p === 'ipv6');
    let l4 = '';
    let n4 = at >= 0 && protos[at] === 'ip' ? 1 : 0;
    let n6 = at >= 0 && protos[at] === 'ipv6' ? 1 : 0;
    let tunnel = false;
    for (let i = at + 1; at >= 0 && i < protos.length; i++) {
      const p = protos[i]!;
      if (p.startsWith('ipv6.')) continue;
      if (!tunnel && (p === 'ip' || p === 'ipv6')) { tunnel = true; if (p === 'ip') n4++; else n6++; continue; }
      l4 = p;
      break;
    }
    const ports = l4 === 'udp' ? c[11]! : l4 === 'tcp' ? c[12]! : [];
    return {
      protos, vlans: c[1]!.map(Number), outer: c[2]!.map(Number),
      ip: [...c[3]!.slice(0, n4), ...c[4]!.slice(0, n4)], arp: [...c[5]!, ...c[6]!], ipv6: [...c[7]!.slice(0, n6), ...c[8]!.slice(0, n6)],
      nd: [...c[9]!, ...c[10]!], l4: l4 === 'data' ? '' : l4, ports: ports.slice(0, 2).map(Number),
    };
  });
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

let stack: Stack;
let all: CaptureRecord[] = [];
const files = new Map<string, string>();
let dissected: Dissected[] = [];

test.before(() => {
  stack = createStack(config());
  const start = 1_000_000;
  stack.runVirtual(start, start + 10_000); // gratuitous announcements settle before the traces
  const peer = stack.peer('m0');
  const drainPeer = (now: number) => {
    const b = new Burst();
    while (peer.rx(b, now) > 0) { for (let i = 0; i < b.n; i++) peer.pool.free(b.frame[i]!); b.n = 0; }
  };
  drainPeer(start + 10_000);
  const traces = [{ name: 'all', spec: {} as TraceFilterSpec, vs: undefined as string | undefined }, ...CASES].map((c) => {
    const file = path.join(tmp, `${c.name.replace(/[^a-z0-9]+/gi, '_')}.pcap`);
    files.set(c.name, file);
    return stack.trace({ vs: c.vs, writer: new PcapWriter(file), filter: TraceFilter.parse(c.spec) });
  });
  let t = start + 20_000;
  for (const burst of mix()) {
    const b = new Burst();
    for (const f of burst) {
      const fr = peer.pool.alloc();
      const at = peer.pool.dataStart(fr);
      peer.pool.bytes.set(f, at);
      b.push(fr, at, Math.max(60, f.length));
    }
    assert.is(peer.tx(b, t), burst.length);
    stack.runVirtual(t, t + 5_000);
    drainPeer(t + 5_000);
    t += 10_000;
  }
  for (const tr of traces) tr.stop();
  all = readCapture(files.get('all')!);
  dissected = dissect(files.get('all')!);
});

test.after(() => {
  stack?.close();
  if (!process.env.KEEP) fs.rmSync(tmp, { recursive: true, force: true });
});

test('the unfiltered trace has every frame of the mix, each request before its reply', () => {
  assert.is(all.length, 23, `12 frames in, 11 replies (the QinQ frame is not answered); got ${all.length}`);
  const vs = new FrameView();
  const kinds = all.map((r) => {
    vs.parse(r.data, 0, r.data.length);
    return `${vs.etherType.toString(16)}/${vs.l4Proto}`;
  });
  // Echo request (ICMP type 8) before echo reply (type 0), ICMPv6 128 before 129, SYN before SYN-ACK.
  const icmpType = (r: CaptureRecord) => r.data[18 + 20];
  const req = all.findIndex((r) => kinds[all.indexOf(r)] === '800/1' && icmpType(r) === 8);
  const rep = all.findIndex((r) => kinds[all.indexOf(r)] === '800/1' && icmpType(r) === 0);
  assert.ok(req >= 0 && rep > req, `echo request #${req} before reply #${rep}`);
  assert.ok(all[rep]!.tsUs > all[req]!.tsUs, 'the reply is later');
  const syn = all.findIndex((r) => kinds[all.indexOf(r)] === '800/6' && r.data[18 + 20 + 13] === 0x02);
  const synAck = all.findIndex((r) => kinds[all.indexOf(r)] === '800/6' && r.data[18 + 20 + 13] === 0x12);
  assert.ok(syn >= 0 && synAck > syn && all[synAck]!.tsUs > all[syn]!.tsUs, 'SYN before SYN-ACK');
  const e6 = all.findIndex((r) => kinds[all.indexOf(r)] === '86dd/58' && r.data[18 + 40] === 128);
  const r6 = all.findIndex((r) => kinds[all.indexOf(r)] === '86dd/58' && r.data[18 + 40] === 129);
  assert.ok(e6 >= 0 && r6 > e6 && all[r6]!.tsUs > all[e6]!.tsUs, 'ICMPv6 echo request before reply');
});

test('times strictly increase in every capture; one burst of two requests is spread 1 µs apart', () => {
  for (const [name, file] of files) {
    const recs = readCapture(file);
    for (let i = 1; i < recs.length; i++) assert.ok(recs[i]!.tsUs > recs[i - 1]!.tsUs, `${name}: frame ${i + 1} after frame ${i}`);
  }
  const burstStart = 1_000_000 + 30_000; // the second burst's receive time
  const inBurst = all.filter((r) => r.tsUs >= burstStart && r.tsUs < burstStart + 5_000);
  assert.is(inBurst[0]!.tsUs, burstStart, 'first frame of the burst: the burst time');
  assert.is(inBurst[1]!.tsUs, burstStart + 1, 'second frame of the same burst: 1 µs later');
});

for (const c of CASES) {
  test(`filter ${c.name}: exactly the frames that match by tshark's dissection`, () => {
    assert.is(dissected.length, all.length, 'tshark read every frame');
    const ours = readCapture(files.get(c.name)!).map((r) => hex(r.data));
    const want = all.filter((_, i) => c.ref(dissected[i]!)).map((r) => hex(r.data));
    assert.is(want.length, c.expect, `the mix has ${c.expect} frames for ${c.name}`);
    assert.equal(ours, want);
  });
}

test('bad filters are clear errors', () => {
  const bad = (spec: unknown, re: RegExp) => assert.throws(() => TraceFilter.parse(spec as TraceFilterSpec), (e: unknown) => e instanceof TraceFilterError && re.test((e as Error).message));
  bad({ vlan: 4095 }, /vlan must be a VLAN id 0\.\.4094, got 4095/);
  bad({ vlan: 'ten' }, /vlan must be a VLAN id/);
  bad({ port: 70000 }, /port must be a TCP\/UDP port 0\.\.65535/);
  bad({ proto: 'sctp' }, /proto must be one of tcp, udp, icmp, icmp6, arp, ipv4, ipv6, got "sctp"/);
  bad({ host: '10.1.1.300' }, /host must be an IPv4 or IPv6 address .* got '10\.1\.1\.300'/);
  bad({ host: 'fd00::1', proto: 'arp' }, /IPv6 but proto arp is IPv4 only/);
  bad({ host: '10.1.1.1', proto: 'icmp6' }, /IPv4 but proto icmp6 is IPv6 only/);
  bad({ port: 80, proto: 'icmp' }, /ports belong to tcp and udp only/);
  assert.is(TraceFilter.parse({ vlan: 10, host: 'fd00::1', port: 80, proto: 'TCP' }).toString(), 'vlan 10 and host fd00::1 and port 80 and tcp');
  assert.ok(TraceFilter.parse({}).any);
});

test('the filter path allocates nothing per frame', async () => {
  // Parse + test run for every frame of every active trace. Over 1.3 million frames, a 16-byte
  // object per frame would take dozens of young-generation collections (about 45 measured here);
  // none allocated takes none (a few may come from what ran before).
  const f = TraceFilter.parse({ host: 'fd00::99', port: 1234, vlan: 10 });
  const frames = mix().flat();
  const v = new FrameView();
  let matched = 0;
  for (let i = 0; i < 5000; i++) for (const b of frames) { v.parse(b, 0, b.length); if (f.test(v, b)) matched++; }
  const gcs: number[] = [];
  const obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) gcs.push(e.startTime); });
  obs.observe({ entryTypes: ['gc'] });
  await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  const n = Math.ceil(1_300_000 / frames.length);
  for (let i = 0; i < n; i++) for (const b of frames) { v.parse(b, 0, b.length); if (f.test(v, b)) matched++; }
  const t1 = performance.now();
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  const during = gcs.filter((t) => t >= t0 && t <= t1).length;
  assert.is(matched, 0);
  assert.ok(during < 10, `${during} collections during ${n * frames.length} frames`);
});

test.run();
