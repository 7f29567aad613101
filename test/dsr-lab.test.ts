/**
 * Direct server return behind an L4 load balancer (issue 13), end to end over AF_XDP with kernel
 * peers: a whole Stack whose VSes own VIPs, the lab's load balancer (test/lib/lb-python.ts: a
 * python3 forwarder that encapsulates what a client sends to a VIP toward a real server) and kernel
 * clients that route the VIPs via the load balancer.
 *
 *   VLAN 10: client 10.1.1.2 / fd00:10::2, load balancer A 10.1.1.100 / fd00:10::100;
 *            VS a 10.1.1.1/24, fd00:10::1/64, VIPs 198.51.100.10, 2001:db8::10 (and 198.51.100.11,
 *            2001:db8::11 for the mixed kinds), decap.from both of A's addresses.
 *   VLAN 20: the same client addresses, load balancer B 10.1.1.200 (IPv4 only toward the VS);
 *            VS b with the same interface addresses and the same two VIPs, decap.from B's IPv4.
 *
 * What is proved: the client's packets reach the VS inside IPIP (RFC 2003), IPv6 in IPv6
 * (RFC 2473) and the mixed kinds, and the replies leave from the VIP straight to the client's MAC,
 * never toward the load balancer; the MSS offered on a VIP leaves room for the encapsulation (the
 * outer header the SYN came in, as no decap.overhead is configured) so nothing is
 * fragmented or refused at the load balancer; a 50 MB echo through it is byte-exact; each VS
 * takes only its own load balancer's traffic; and every hostile encapsulated frame is a counted
 * drop with its reason, delivered to no socket, answered by nothing. Privileged: runs as root
 * (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as http from 'node:http';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab, vlanObjectFor } from '../stack/lab/lab';
import { nsRun, nsSh, sleep, waitFor } from './lib/rig';
import { addressesPreferred, framesAccounted as accounted, privilegedTest } from './lib/lab-stack';
import { ConnResult, Py, TCP_CLIENT } from './lib/peer-python';
import { Capture, CaptureResult, clientOffloadsOff, LbCounters, LoadBalancer, sendFrames, startCapture, startLoadBalancer } from './lib/lb-python';
import { craftEncapsulated, ENCAP_KINDS, EncapKind, ethFrame, ipInfo, ipPacket, OuterSpec, PacketSpec } from './lib/encap-frames';
import { createStack, Stack } from '../stack/stack';
import { serveNode } from '../examples/http/serve';
import { PcapWriter, readCapture } from '../driver/pcap';
import { Drop, dropName } from '../protocols/drop';
import type { UdpSocket } from '../stack/api/dgram';

const PREFIX = labPrefix('da');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);

const CLIENT = { v4: '10.1.1.2', v6: 'fd00:10::2' };
const LB_A = { v4: '10.1.1.100', v6: 'fd00:10::100' };
const LB_B = { v4: '10.1.1.200', v6: 'fd00:10::200' };
/** The interface addresses of both VSes (each on its VLAN). */
const VS_ADDR = { v4: '10.1.1.1', v6: 'fd00:10::1' };
/** The VIPs both VSes serve; the load balancers send them 4in4 and 6in6 (A) or 4in4 and 6in4 (B). */
const VIP = { v4: '198.51.100.10', v6: '2001:db8::10' };
/** VS a only: 4in6 and 6in4 from load balancer A. */
const VIP_MIX = { v4: '198.51.100.11', v6: '2001:db8::11' };
const ALL_VIPS_A = [VIP.v4, VIP.v6, VIP_MIX.v4, VIP_MIX.v6];
/** The kind load balancer A uses for each VIP of VS a (the outer family is the real server's address). */
const KIND_A: Record<string, EncapKind> = { [VIP.v4]: '4in4', [VIP.v6]: '6in6', [VIP_MIX.v4]: '4in6', [VIP_MIX.v6]: '6in4' };

const ECHO_PORT = 7;
const HTTP_PORT = 80;
/** UDP sockets hostile frames aim at: on the VIPs and on the interface addresses. */
const TRAP_PORT = 9999;
const MB = 1 << 20;
const BIG = 50 * MB;
const LINK_MTU = 1500;

let lab: Lab;
let stack: Stack;
let lbA: LoadBalancer;
let lbB: LoadBalancer;
let ns: { clientA: string; lbA: string; clientB: string; lbB: string };
let macs: { clientA: string; lbA: string; clientB: string; lbB: string; stack: string };
/** Python processes and captures still running (a failed test leaves them to the after hook). */
const running = new Set<{ stop(): Promise<unknown> }>();
/** UDP sockets of the stack by name, and the messages each received. */
const udp = new Map<string, { sock: UdpSocket; got: number }>();
/** The local addresses of the TCP connections each VS's echo server accepted. */
const accepted: Record<'a' | 'b', string[]> = { a: [], b: [] };

const framesAccounted = () => accounted(stack);
/** The MSS values the SYN-ACKs carried, per VS (for the report line). */
const mssSeen: Record<'a' | 'b', string> = { a: '?', b: '?' };

/** Frames the device's AF_XDP socket lost (its ring full, or no buffer): never seen by the stack. */
function xdpLosses(): number {
  const d = (stack.show('counters') as { devices: Array<{ xdp?: Record<string, number> }> }).devices[0]!;
  return (d.xdp?.rxDropped ?? 0) + (d.xdp?.rxRingFull ?? 0);
}
/** A server listening without a host listens on '::', as Node's: its IPv4 connections' local address is v4-mapped. */
const mapped = (a: string) => `::ffff:${a}`;

const until = waitFor;

const sh = (nsName: string, script: string) => nsSh(nsName, script, 20_000);

async function capture(nsName: string, opts: Parameters<typeof startCapture>[1]): Promise<Capture> {
  const c = await startCapture(nsName, { maxSeconds: 45, ...opts });
  const h = { stop: () => c.stop() };
  running.add(h);
  return { count: (ms) => c.count(ms), stop: async (ms) => { running.delete(h); return c.stop(ms); } };
}

/** TCP echo client (peer-python.ts): one connection to dst:port sending `size` random bytes, each echoed byte checked. */
async function tcpEcho(nsName: string, dst: string, size: number, ms = 60_000): Promise<ConnResult> {
  const py = new Py(nsName, TCP_CLIENT, [dst, ECHO_PORT, 1, size, 0, 0, 0], ms);
  const h = { stop: async () => py.kill() };
  running.add(h);
  try {
    const [r] = await py.json<ConnResult[]>();
    assert.ok(r, `echo to ${dst}: a result (${(await py.done).err.trim().split('\n').pop()})`);
    assert.not.ok(r!.error, `echo to ${dst}: ${r!.error}`);
    assert.is(r!.recv, size, `echo to ${dst}: every byte came back once`);
    assert.ok(r!.same, `echo to ${dst}: byte-exact (sha256 on both sides)`);
    return r!;
  } finally {
    running.delete(h);
  }
}

/**
 * UDP client (python3): argv[1] JSON {targets: [{dst, port, sizes}]}: per target one socket, one
 * datagram per size, each waiting (1 s at most) for its echo, which must be the same bytes from
 * dst:port; then 200 ms for any extra. Prints a JSON list of {dst, ok, bad, lost, extra}.
 */
const UDP_ROUNDS = `
import socket, sys, json, os
cfg = json.loads(sys.argv[1])
out = []
for t in cfg['targets']:
    fam = socket.AF_INET6 if ':' in t['dst'] else socket.AF_INET
    want = socket.inet_pton(fam, t['dst'])
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(1.0)
    r = {'dst': t['dst'], 'ok': 0, 'bad': 0, 'lost': 0, 'extra': 0}
    for size in t['sizes']:
        msg = os.urandom(size)
        s.sendto(msg, (t['dst'], t['port']))
        try:
            d, a = s.recvfrom(65536)
            r['ok' if d == msg and socket.inet_pton(fam, a[0].split('%')[0]) == want and a[1] == t['port'] else 'bad'] += 1
        except socket.timeout:
            r['lost'] += 1
    s.settimeout(0.2)
    try:
        while True: s.recvfrom(65536); r['extra'] += 1
    except socket.timeout: pass
    s.close()
    out.append(r)
print(json.dumps(out), flush=True)
`;

interface UdpRound { dst: string; ok: number; bad: number; lost: number; extra: number }

function totalForwarded(c: LbCounters): number {
  return ENCAP_KINDS.reduce((n, k) => n + c.forwarded[k], 0);
}

interface VipRow {
  vs: string; vips: string[]; from: string[]; overhead: number; overheadDefault: boolean;
  decapsulated: number; refusedSource: number; refusedVip: number; drops: { total: number; reasons: Record<string, number> };
}

function vipRow(vs: 'a' | 'b'): VipRow {
  const r = (stack.show('vips') as VipRow[]).find((x) => x.vs === vs);
  assert.ok(r, `show vips has VS ${vs}`);
  return r!;
}

/** The drops by reason of VS `vs`'s link (show counters). */
function linkDrops(vs: 'a' | 'b'): Record<string, number> {
  const c = stack.show('counters') as { links: Array<{ vs: string; drops: { reasons: Record<string, number> } }> };
  return c.links.find((l) => l.vs === vs)!.drops.reasons;
}

const reason = (d: Drop) => dropName(d);
const delta = (a: Record<string, number>, b: Record<string, number>, k: string) => (b[k] ?? 0) - (a[k] ?? 0);

/** The MSS option of the first SYN-ACK among captured IP packets (0: none). */
function synAckMss(packets: Uint8Array[]): number {
  for (const p of packets) {
    const h = ipInfo(p);
    if (!h || h.proto !== 6) continue;
    const t = p.subarray(h.headerLen, h.totalLen);
    if ((t[13]! & 0x12) !== 0x12) continue;
    const end = (t[12]! >> 4) * 4;
    for (let o = 20; o < end;) {
      const kind = t[o]!;
      if (kind === 0) break;
      if (kind === 1) { o++; continue; }
      if (kind === 2) return (t[o + 2]! << 8) | t[o + 3]!;
      o += Math.max(2, t[o + 1]!);
    }
    return 0;
  }
  return -1;
}

const macText = (b: Uint8Array, off: number) => Array.from(b.subarray(off, off + 6), (x) => x.toString(16).padStart(2, '0')).join(':');

/** A frame of a trace taken apart: MACs, VLAN and the IP header (null: not IP). */
function frameInfo(f: Uint8Array): { dst: string; src: string; vlan: number; ip: ReturnType<typeof ipInfo> } {
  let et = (f[12]! << 8) | f[13]!;
  let l3 = 14;
  let vlan = -1;
  if (et === 0x8100) { vlan = ((f[14]! << 8) | f[15]!) & 0xfff; et = (f[16]! << 8) | f[17]!; l3 = 18; }
  return { dst: macText(f, 0), src: macText(f, 6), vlan, ip: et === 0x0800 || et === 0x86dd ? ipInfo(f.subarray(l3)) : null };
}

/** A received packet that is Neighbor Discovery or MLD (the stack's own link upkeep, not an answer). */
function isNdOrMld(p: Uint8Array): boolean {
  const h = ipInfo(p);
  return h !== null && h.version === 6 && h.proto === 58 && [130, 131, 132, 133, 134, 135, 136, 137, 143].includes(p[h.headerLen]!);
}

/** Moves a lab peer's egress onto another VLAN (its tc program's tag), or back. */
async function retag(nsName: string, vlan: number): Promise<void> {
  await sh(nsName, `tc filter del dev eth0 egress pref 1\ntc filter add dev eth0 egress pref 1 bpf da obj '${vlanObjectFor(PREFIX, vlan)}' sec classifier/egress`);
}

if (privileged) {
  test.before(async () => {
    lab = labUp({
      prefix: PREFIX,
      peers: [
        { vlan: 10, ipv4: `${CLIENT.v4}/24`, ipv6: `${CLIENT.v6}/64` },
        { vlan: 10, ipv4: `${LB_A.v4}/24`, ipv6: `${LB_A.v6}/64` },
        { vlan: 20, ipv4: `${CLIENT.v4}/24`, ipv6: `${CLIENT.v6}/64` },
        { vlan: 20, ipv4: `${LB_B.v4}/24`, ipv6: `${LB_B.v6}/64` },
      ],
    });
    const p = lab.peers;
    ns = { clientA: p[0]!.ns, lbA: p[1]!.ns, clientB: p[2]!.ns, lbB: p[3]!.ns };
    macs = { clientA: p[0]!.mac, lbA: p[1]!.mac, clientB: p[2]!.mac, lbB: p[3]!.mac, stack: lab.stackMac };
    const link = (name: string, vlan: number) => ({ name, device: lab.stackDevice, vlan, addresses: [`${VS_ADDR.v4}/24`, `${VS_ADDR.v6}/64`] });
    stack = createStack({
      name: `dsr-${PREFIX}`, control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [
        { name: 'a', links: [link('v10', 10)], vips: ALL_VIPS_A, decap: { from: [`${LB_A.v4}/32`, `${LB_A.v6}/128`] } },
        { name: 'b', links: [link('v20', 20)], vips: [VIP.v4, VIP.v6], decap: { from: [`${LB_B.v4}/32`] } },
      ],
    }, { log: () => {} });
    for (const name of ['a', 'b'] as const) {
      const vs = stack.vs(name);
      // TCP echo and http on every address of the VS (VIPs included); the servers name their VS.
      vs.createServer((s) => {
        accepted[name].push(String(s.localAddress));
        s.on('error', () => {});
        s.pipe(s);
      }).listen(ECHO_PORT);
      serveNode(vs.createServer({ noDelay: true }).listen(HTTP_PORT), http.createServer((req, res) => {
        const body = `vs ${name} ${req.method} ${req.url} at ${req.socket.localAddress}\n`;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }));
      // UDP: an echo bound to each VIP (its replies leave from the VIP, as a DSR server's must),
      // and the trap sockets hostile frames aim at, on the VIPs and the interface addresses.
      const vips = name === 'a' ? ALL_VIPS_A : [VIP.v4, VIP.v6];
      for (const [addr, port, echo] of [
        ...vips.map((v) => [v, ECHO_PORT, true] as const),
        ...[VIP.v4, VIP.v6, VS_ADDR.v4, VS_ADDR.v6].map((v) => [v, TRAP_PORT, false] as const),
      ]) {
        const sock = vs.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
        const e = { sock, got: 0 };
        sock.on('message', (m, r) => { e.got++; if (echo) sock.send(m, r.port, r.address); });
        sock.bind(port, addr);
        udp.set(`${name} ${addr}:${port}`, e);
      }
    }
    stack.start();
    await addressesPreferred(stack);
    await clientOffloadsOff(ns.clientA);
    await clientOffloadsOff(ns.clientB);
    // The clients route the VIPs via their load balancer; neighbours known before the first packet.
    for (const [client, lbAddr] of [[ns.clientA, LB_A], [ns.clientB, LB_B]] as const) {
      await sh(client, [
        ...[VIP.v4, VIP_MIX.v4].map((v) => `ip route add ${v}/32 via ${lbAddr.v4}`),
        ...[VIP.v6, VIP_MIX.v6].map((v) => `ip -6 route add ${v}/128 via ${lbAddr.v6}`),
        `ping -c1 -w5 ${lbAddr.v4} >/dev/null`, `ping -6 -c1 -w5 ${lbAddr.v6} >/dev/null`,
      ].join('\n'));
    }
    await sh(ns.lbA, `ping -c1 -w5 ${VS_ADDR.v4} >/dev/null\nping -6 -c1 -w5 ${VS_ADDR.v6} >/dev/null`);
    await sh(ns.lbB, `ping -c1 -w5 ${VS_ADDR.v4} >/dev/null`);
    lbA = await startLoadBalancer(lab.peers[1]!, {
      services: [
        { vip: VIP.v4, reals: [VS_ADDR.v4] }, { vip: VIP.v6, reals: [VS_ADDR.v6] },
        { vip: VIP_MIX.v4, reals: [VS_ADDR.v6] }, { vip: VIP_MIX.v6, reals: [VS_ADDR.v4] },
      ],
      maxSeconds: 150,
    });
    lbB = await startLoadBalancer(lab.peers[3]!, {
      services: [{ vip: VIP.v4, reals: [VS_ADDR.v4] }, { vip: VIP.v6, reals: [VS_ADDR.v4] }],
      maxSeconds: 150,
    });
  });

  test.after(async () => {
    try {
      await Promise.allSettled([...running].map((r) => r.stop()));
      await Promise.allSettled([lbA?.stop(), lbB?.stop()]);
      stack?.close();
    } finally {
      labDown(PREFIX);
    }
  });
}

ptest('show vips: each VS\'s VIPs, load balancers and the overhead its MSS leaves room for', () => {
  const a = vipRow('a');
  const b = vipRow('b');
  assert.equal(a.vips, ALL_VIPS_A);
  assert.equal(a.from, [`${LB_A.v4}/32`, `${LB_A.v6}/128`]);
  assert.is(a.overhead, 40, 'a load balancer is IPv6: an IPv6 header\'s 40 bytes (the default)');
  assert.is(a.overheadDefault, true);
  assert.equal(b.vips, [VIP.v4, VIP.v6]);
  assert.equal(b.from, [`${LB_B.v4}/32`]);
  assert.is(b.overhead, 20, 'every load balancer is IPv4: an IPv4 header\'s 20 bytes (the default)');
  for (const r of [a, b]) {
    assert.is(r.decapsulated, 0);
    assert.is(r.drops.total, 0);
  }
});

ptest('through load balancer A to VS a\'s VIPs (4in4, 6in6, 4in6, 6in4): TCP and UDP echo, ping; every reply leaves from the VIP straight to the client\'s MAC', async () => {
  const lb0 = await lbA.counters();
  const row0 = vipRow('a');
  const loss0 = xdpLosses();
  const udp0 = ALL_VIPS_A.map((v) => udp.get(`a ${v}:${ECHO_PORT}`)!.got);
  const writer = new PcapWriter();
  const trace = stack.trace({ vs: 'a', count: 20_000, writer });
  const atLb = await capture(ns.lbA, { srcs: ALL_VIPS_A, keep: 8 });
  const nAccepted = accepted.a.length;

  // TCP, one family at a time: the first packet from the VIP the client sees is the SYN-ACK.
  const mss: Record<string, number> = {};
  for (const vip of [VIP.v4, VIP.v6]) {
    const cap = await capture(ns.clientA, { srcs: [vip], protos: [6], keep: 2 });
    await tcpEcho(ns.clientA, vip, 256 * 1024);
    const got = await cap.stop();
    assert.ok(got.count > 0, `the client received ${vip}'s segments`);
    mss[vip] = synAckMss(got.packets);
  }
  // UDP over all four kinds; sizes up to what fits a 1500-byte link once encapsulated in IPv6.
  const sizes = [1, 100, 333, 1000, 1400];
  const r = await nsRun(ns.clientA, '/usr/bin/python3', ['-c', UDP_ROUNDS, JSON.stringify({ targets: ALL_VIPS_A.map((dst) => ({ dst, port: ECHO_PORT, sizes })) })], { timeout: 40_000 });
  assert.is(r.code, 0, r.stderr);
  const rounds = JSON.parse(r.stdout.trim()) as UdpRound[];
  assert.equal(rounds.map((x) => x.dst), ALL_VIPS_A);
  for (const x of rounds) assert.equal(x, { dst: x.dst, ok: sizes.length, bad: 0, lost: 0, extra: 0 }, `UDP echo from ${x.dst} (${KIND_A[x.dst]})`);
  for (const [vip, flag] of [[VIP.v4, '-4'], [VIP.v6, '-6']] as const) {
    const p = await nsRun(ns.clientA, 'ping', [flag, '-c', '2', '-i', '0.2', '-W', '2', vip], { timeout: 10_000 });
    assert.is(p.code, 0, `ping ${vip}: ${p.stdout}${p.stderr}`);
    assert.match(p.stdout, /2 packets transmitted, 2 received/);
  }

  // Settled: what the load balancer forwarded, the VS took in, one for one.
  const fwd = async () => totalForwarded(await lbA.counters()) - totalForwarded(lb0);
  await until(async () => vipRow('a').decapsulated - row0.decapsulated + xdpLosses() - loss0 >= await fwd(), 5000);
  await sleep(200);
  const lb1 = await lbA.counters();
  const row1 = vipRow('a');
  trace.stop();
  const lbSaw = await atLb.stop();

  for (const vip of ALL_VIPS_A) assert.ok(lb1.forwarded[KIND_A[vip]!] - lb0.forwarded[KIND_A[vip]!] > 0, `${KIND_A[vip]} forwarded`);
  assert.is(lb1.rx - lb0.rx, totalForwarded(lb1) - totalForwarded(lb0), 'the load balancer forwarded every packet it took (only client → VIP packets reach it)');
  assert.is(row1.decapsulated - row0.decapsulated + xdpLosses() - loss0, totalForwarded(lb1) - totalForwarded(lb0),
    'VS a decapsulated every packet the load balancer forwarded (but any its socket lost, counted)');
  assert.is(row1.drops.total - row0.drops.total, 0, 'no decapsulation drop');
  assert.is(lbSaw.count, 0, 'not one packet from a VIP reached the load balancer');
  assert.equal(accepted.a.slice(nAccepted), [mapped(VIP.v4), VIP.v6], 'the echo server\'s connections are on the VIPs');
  ALL_VIPS_A.forEach((v, i) => assert.is(udp.get(`a ${v}:${ECHO_PORT}`)!.got - udp0[i]!, sizes.length, `UDP socket on ${v}: every datagram`));

  // MSS offered on a VIP: the link MTU less the outer header the SYN came in (VS a configures no
  // overhead: IPIP 20, IPv6 in IPv6 40) less the IP and TCP headers.
  assert.is(mss[VIP.v4], LINK_MTU - 20 - 20 - 20, 'IPv4 VIP over IPIP: MSS 1440');
  assert.is(mss[VIP.v6], LINK_MTU - 40 - 40 - 20, 'IPv6 VIP over IPv6: MSS 1400');
  mssSeen.a = `${mss[VIP.v4]} (4in4) / ${mss[VIP.v6]} (6in6)`;

  // The stack's own view of the wire: what it sent from a VIP went to the client's MAC on VLAN
  // 10; what came to it for a VIP came from the load balancer's MAC, encapsulated.
  const frames = readCapture(writer.toBuffer()).map((c) => frameInfo(c.data));
  const fromVip = frames.filter((f) => f.ip && ALL_VIPS_A.includes(f.ip.src));
  const sentBy = new Map<string, number>();
  for (const f of fromVip) sentBy.set(`${f.src} → ${f.dst} vlan ${f.vlan}`, (sentBy.get(`${f.src} → ${f.dst} vlan ${f.vlan}`) ?? 0) + 1);
  assert.equal([...sentBy.keys()], [`${macs.stack} → ${macs.clientA} vlan 10`], 'every frame from a VIP: from the stack to the client');
  for (const vip of ALL_VIPS_A) assert.ok(fromVip.some((f) => f.ip!.src === vip && f.ip!.dst === (vip.includes(':') ? CLIENT.v6 : CLIENT.v4)), `replies from ${vip} to the client`);
  const encIn = frames.filter((f) => f.ip && (f.ip.proto === 4 || f.ip.proto === 41) && f.dst === macs.stack);
  assert.ok(encIn.length > 0);
  assert.ok(encIn.every((f) => f.src === macs.lbA && (f.ip!.src === LB_A.v4 || f.ip!.src === LB_A.v6)), 'encapsulated frames: from the load balancer only');
  assert.not.ok(frames.some((f) => f.src === macs.clientA && f.ip && ALL_VIPS_A.includes(f.ip.dst)), 'the client never reached the VS directly');
  const neigh = stack.show('neighbors', { vs: 'a' }) as Array<{ address: string; mac: string | null }>;
  for (const a of [CLIENT.v4, CLIENT.v6]) assert.is(neigh.find((n) => n.address === a)?.mac, macs.clientA, `the stack resolved the client ${a} itself`);
  const fwdOff = await nsRun(ns.lbA, 'sysctl', ['-n', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding']);
  assert.equal(fwdOff.stdout.trim().split(/\s+/), ['0', '0'], 'the load balancer\'s kernel does not route: it could not have passed replies on');
  await framesAccounted();
});

ptest('50 MB echoed through load balancer B over IPIP (MSS 1440: nothing fragmented or refused at the load balancer), byte-exact; the same direct to the interface address', async () => {
  // The MSS offered first (a short echo, its SYN-ACK captured at the client): 4in4 and 6in4.
  const mss: Record<string, number> = {};
  for (const vip of [VIP.v4, VIP.v6]) {
    const cap = await capture(ns.clientB, { srcs: [vip], protos: [6], keep: 2 });
    await tcpEcho(ns.clientB, vip, 64 * 1024);
    mss[vip] = synAckMss((await cap.stop()).packets);
  }
  assert.is(mss[VIP.v4], LINK_MTU - 20 - 20 - 20, 'IPv4 over IPIP, overhead 20: MSS 1500 - 20 - 40 = 1440');
  assert.is(mss[VIP.v6], LINK_MTU - 20 - 40 - 20, 'IPv6 in IPv4, overhead 20: MSS 1420');
  mssSeen.b = `${mss[VIP.v4]} (4in4) / ${mss[VIP.v6]} (6in4)`;

  const lb0 = await lbB.counters();
  const row0 = vipRow('b');
  const drops0 = linkDrops('b');
  const loss0 = xdpLosses();
  const atLb = await capture(ns.lbB, { srcs: [VIP.v4, VIP.v6], keep: 4 });
  const nAccepted = accepted.b.length;
  const viaLb = await tcpEcho(ns.clientB, VIP.v4, BIG, 90_000);
  const fwd = async () => totalForwarded(await lbB.counters()) - totalForwarded(lb0);
  await until(async () => vipRow('b').decapsulated - row0.decapsulated + xdpLosses() - loss0 >= await fwd(), 5000);
  const lb1 = await lbB.counters();
  const row1 = vipRow('b');
  const lbSaw = await atLb.stop();
  assert.equal(accepted.b.slice(nAccepted), [mapped(VIP.v4)]);
  assert.is(lbSaw.count, 0, 'not one of the echo\'s 50 MB came back through the load balancer');
  assert.is(lb1.dropped.tooBig - lb0.dropped.tooBig, 0, 'no segment too big for the tunnel');
  assert.is(lb1.icmpSent - lb0.icmpSent, 0, 'no ICMP too-big to the client');
  assert.is(lb1.dropped.oversize - lb0.dropped.oversize, 0);
  assert.is(lb1.forwarded['4in4'] - lb0.forwarded['4in4'], totalForwarded(lb1) - totalForwarded(lb0), 'IPIP only');
  assert.ok(lb1.forwarded['4in4'] - lb0.forwarded['4in4'] >= BIG / 1440, 'the whole upload crossed the load balancer (at most 1440 bytes a segment)');
  assert.is(delta(drops0, linkDrops('b'), reason(Drop.DecapFragmented)), 0, 'no outer fragment at the VS');
  assert.is(row1.drops.total - row0.drops.total, 0, 'no decapsulation drop');
  // Every packet the load balancer forwarded was decapsulated (or lost on the way, counted by
  // the device: the VS never drops one silently).
  const got = row1.decapsulated - row0.decapsulated;
  const sent = totalForwarded(lb1) - totalForwarded(lb0);
  const lost = xdpLosses() - loss0;
  assert.is(got + lost, sent, `decapsulated ${got} of ${sent} forwarded (${lost} lost at the device's socket)`);

  const nDirect = accepted.b.length;
  const direct = await tcpEcho(ns.clientB, VS_ADDR.v4, BIG, 90_000);
  assert.equal(accepted.b.slice(nDirect), [mapped(VS_ADDR.v4)]);
  const rate = (r: ConnResult) => (BIG / MB / (r.ms! / 1000)).toFixed(1);
  console.log(`# dsr: 50 MB echo through the load balancer (up: IPIP via LB, down: direct) in ${viaLb.ms} ms (${rate(viaLb)} MB/s each way); ` +
    `direct to ${VS_ADDR.v4} in ${direct.ms} ms (${rate(direct)} MB/s); LB forwarded ${sent} packets, socket drops ${lb1.kernel.drops - lb0.kernel.drops}; ` +
    `MSS offered in SYN-ACKs: VS b ${mssSeen.b}, VS a ${mssSeen.a}`);
  await framesAccounted();
});

ptest('a frame from load balancer A\'s namespace moved onto VLAN 20, encapsulated toward VS b: refused by source there, nothing delivered; B\'s own is taken', async () => {
  const rowA0 = vipRow('a');
  const rowB0 = vipRow('b');
  const trap = () => [VIP.v4, VIP.v6].map((v) => udp.get(`b ${v}:${TRAP_PORT}`)!.got + udp.get(`a ${v}:${TRAP_PORT}`)!.got);
  const trap0 = trap();
  const inner4: PacketSpec = { src: CLIENT.v4, dst: VIP.v4, dport: TRAP_PORT, payload: Buffer.from('via A') };
  const inner6: PacketSpec = { src: CLIENT.v6, dst: VIP.v6, dport: TRAP_PORT, payload: Buffer.from('via A') };
  const fromA = [
    craftEncapsulated({ outer: { src: LB_A.v4, dst: VS_ADDR.v4 }, inner: inner4 }),
    craftEncapsulated({ outer: { src: LB_A.v6, dst: VS_ADDR.v6 }, inner: inner6 }),
  ].map((p) => ethFrame(p, { dst: macs.stack, src: macs.lbA }));
  await retag(ns.lbA, 20);
  try {
    assert.is(await sendFrames(ns.lbA, fromA), 2);
  } finally {
    await retag(ns.lbA, 10);
  }
  assert.ok(await until(() => vipRow('b').refusedSource - rowB0.refusedSource >= 2, 5000), 'VS b counted both');
  // The same inner packet from load balancer B: taken (the frame was good but for its source).
  const fromB = craftEncapsulated({ outer: { src: LB_B.v4, dst: VS_ADDR.v4 }, inner: { ...inner4, payload: Buffer.from('via B') } });
  assert.is(await sendFrames(ns.lbB, [ethFrame(fromB, { dst: macs.stack, src: macs.lbB })]), 1);
  assert.ok(await until(() => trap()[0]! > trap0[0]!, 5000), 'B\'s frame delivered');
  await sleep(200);
  const rowA1 = vipRow('a');
  const rowB1 = vipRow('b');
  assert.is(rowB1.refusedSource - rowB0.refusedSource, 2, 'VS b: refused by source (IPv4 and IPv6 outer)');
  assert.is(rowB1.drops.reasons[reason(Drop.DecapSourceRefused)]! - (rowB0.drops.reasons[reason(Drop.DecapSourceRefused)] ?? 0), 2);
  assert.is(rowB1.decapsulated - rowB0.decapsulated, 1, 'VS b: load balancer B\'s frame only');
  assert.equal(trap(), [trap0[0]! + 1, trap0[1]!], 'one datagram delivered: B\'s, on VS b\'s VIP socket; none of A\'s');
  assert.is(udp.get(`a ${VIP.v4}:${TRAP_PORT}`)!.got, 0, 'VS a took nothing');
  assert.equal({ d: rowA1.decapsulated, r: rowA1.drops.total }, { d: rowA0.decapsulated, r: rowA0.drops.total }, 'VS a saw none of it');
  await framesAccounted();
});

ptest('http over the VIP: curl from each VLAN\'s client reaches its own VS\'s server (same VIP on both), the other VS and load balancer untouched', async () => {
  for (const [name, client, own, other, otherName] of [['a', ns.clientA, lbA, lbB, 'b'], ['b', ns.clientB, lbB, lbA, 'a']] as const) {
    const mine0 = vipRow(name);
    const theirs0 = vipRow(otherName);
    const ownLb0 = await own.counters();
    const otherLb0 = await other.counters();
    const loss0 = xdpLosses();
    const r4 = await nsRun(client, 'curl', ['-sS', '--max-time', '5', `http://${VIP.v4}:${HTTP_PORT}/four`]);
    assert.is(r4.code, 0, r4.stderr);
    assert.is(r4.stdout, `vs ${name} GET /four at ${mapped(VIP.v4)}\n`);
    const r6 = await nsRun(client, 'curl', ['-sS', '-g', '--max-time', '5', `http://[${VIP.v6}]:${HTTP_PORT}/six`]);
    assert.is(r6.code, 0, r6.stderr);
    assert.is(r6.stdout, `vs ${name} GET /six at ${VIP.v6}\n`);
    await until(async () => vipRow(name).decapsulated - mine0.decapsulated + xdpLosses() - loss0 >= totalForwarded(await own.counters()) - totalForwarded(ownLb0), 3000);
    const mine1 = vipRow(name);
    const theirs1 = vipRow(otherName);
    const ownLb1 = await own.counters();
    const otherLb1 = await other.counters();
    assert.ok(mine1.decapsulated - mine0.decapsulated > 0);
    assert.is(mine1.decapsulated - mine0.decapsulated + xdpLosses() - loss0, totalForwarded(ownLb1) - totalForwarded(ownLb0), `VS ${name} took what its load balancer forwarded`);
    assert.is(theirs1.decapsulated - theirs0.decapsulated, 0, `VS ${otherName}: nothing`);
    assert.is(theirs1.drops.total - theirs0.drops.total, 0, `VS ${otherName}: no drop either`);
    assert.is(otherLb1.rx - otherLb0.rx, 0, `the other load balancer saw nothing`);
  }
  await framesAccounted();
});

ptest('hostile encapsulated frames: each a counted drop with its reason, delivered to no socket, answered by nothing; the VIP answers no ARP/NDP', async () => {
  const row0 = vipRow('a');
  const drops0 = linkDrops('a');
  const traps = () => [VIP.v4, VIP.v6, VS_ADDR.v4, VS_ADDR.v6].map((v) => udp.get(`a ${v}:${TRAP_PORT}`)!.got);
  const traps0 = traps();
  const atClient = await capture(ns.clientA, { keep: 256 });
  const atLb = await capture(ns.lbA, { keep: 256 });

  const to4 = { src: CLIENT.v4, dst: VIP.v4, dport: TRAP_PORT, payload: Buffer.from('hostile') };
  const to6 = { src: CLIENT.v6, dst: VIP.v6, dport: TRAP_PORT, payload: Buffer.from('hostile') };
  const o = (src: { v4: string; v6: string }, v: 4 | 6, extra: Partial<OuterSpec> = {}): OuterSpec =>
    ({ src: v === 4 ? src.v4 : src.v6, dst: v === 4 ? VS_ADDR.v4 : VS_ADDR.v6, ...extra });
  // From the client, which is no load balancer of VS a: every kind, and plain packets to the VIPs
  // (the IPv4 one comes to the stack's MAC and is counted; the IPv6 one never reaches the stack:
  // its XDP program passes IPv6 to addresses the stack does not own to the host, which has IPv6
  // off on the device — either way no socket gets it and nothing answers).
  const fromClient = [
    craftEncapsulated({ outer: o(CLIENT, 4), inner: to4 }),
    craftEncapsulated({ outer: o(CLIENT, 6), inner: to6 }),
    craftEncapsulated({ outer: o(CLIENT, 4), inner: to6 }),
    craftEncapsulated({ outer: o(CLIENT, 6), inner: to4 }),
    // Outer fragments from no load balancer: refused before they take reassembly memory.
    craftEncapsulated({ outer: o(CLIENT, 4, { fragment: { offset: 0, more: true, id: 7 } }), inner: to4 }),
    craftEncapsulated({ outer: o(CLIENT, 6, { fragment: { offset: 0, more: true, id: 8 } }), inner: to6 }),
    ipPacket(to4),
    ipPacket(to6),
  ];
  // From load balancer A itself: what it may not send inside.
  const fromLb = [
    craftEncapsulated({ outer: o(LB_A, 4), inner: { ...to4, dst: VS_ADDR.v4 } }), // inner to the interface address
    craftEncapsulated({ outer: o(LB_A, 6), inner: { ...to6, dst: VS_ADDR.v6 } }),
    craftEncapsulated({ outer: [o(LB_A, 4), { src: CLIENT.v4, dst: VIP.v4 }], inner: to4 }), // nested
    craftEncapsulated({ outer: [o(LB_A, 6), { src: CLIENT.v6, dst: VIP.v6 }], inner: to6 }),
    craftEncapsulated({ outer: o(LB_A, 4), inner: to4, truncateInner: 12 }), // inner header cut short
    craftEncapsulated({ outer: o(LB_A, 6), inner: to6, truncateInner: 30 }),
    craftEncapsulated({ outer: o(LB_A, 4), inner: { ...to4, src: VIP.v4 } }), // inner source: the VIP itself
  ];
  assert.is(await sendFrames(ns.clientA, fromClient.map((p) => ethFrame(p, { dst: macs.stack, src: macs.clientA }))), fromClient.length);
  assert.is(await sendFrames(ns.lbA, fromLb.map((p) => ethFrame(p, { dst: macs.stack, src: macs.lbA }))), fromLb.length);

  const want: Array<[Drop, number]> = [
    [Drop.DecapSourceRefused, 6], [Drop.DecapNotVip, 2], [Drop.DecapNested, 2], [Drop.DecapBadInner, 2],
    [Drop.Ipv4NotOurAddress, 1], [Drop.Ipv4BadSource, 1],
  ];
  const counted = () => want.every(([d, n]) => delta(drops0, linkDrops('a'), reason(d)) >= n);
  assert.ok(await until(counted, 5000), `every frame counted: ${JSON.stringify(linkDrops('a'))}`);
  // ARP and NDP for a VIP: the stack answers neither (the load balancer's side owns the VIP);
  // for its interface addresses it does (the same tools, so their silence means something).
  const arping = (a: string) => nsRun(ns.clientA, 'arping', ['-c', '1', '-w', '1', '-I', 'eth0', a], { timeout: 10_000 });
  const ndisc = (a: string) => nsRun(ns.clientA, 'ndisc6', ['-1', '-r', '1', '-w', '800', a, 'eth0'], { timeout: 10_000 });
  const [arpVip, arpOwn, ndVip, ndOwn] = await Promise.all([arping(VIP.v4), arping(VS_ADDR.v4), ndisc(VIP.v6), ndisc(VS_ADDR.v6)]);
  const stackMac = new RegExp(macs.stack, 'i');
  assert.is(arpOwn.code, 0, arpOwn.stdout + arpOwn.stderr);
  assert.match(arpOwn.stdout, stackMac);
  assert.is(ndOwn.code, 0, ndOwn.stdout + ndOwn.stderr);
  assert.match(ndOwn.stdout, stackMac);
  assert.is.not(arpVip.code, 0, `no ARP reply for ${VIP.v4}: ${arpVip.stdout}`);
  assert.match(arpVip.stdout, /Received 0 response/);
  assert.is.not(ndVip.code, 0, `no Neighbor Advertisement for ${VIP.v6}: ${ndVip.stdout}`);
  assert.not.match(ndVip.stdout, stackMac);
  await sleep(300);
  const [sawClient, sawLb] = [await atClient.stop(), await atLb.stop()];

  const row1 = vipRow('a');
  const drops1 = linkDrops('a');
  for (const [d, n] of want) assert.is(delta(drops0, drops1, reason(d)), n, `${reason(d)}: ${n}`);
  assert.is(row1.refusedSource - row0.refusedSource, 6, 'show vips: refusedSource');
  assert.is(row1.refusedVip - row0.refusedVip, 2, 'show vips: refusedVip');
  assert.is(row1.drops.total - row0.drops.total, 12, 'show vips: every decapsulation drop');
  for (const d of [Drop.DecapSourceRefused, Drop.DecapNotVip, Drop.DecapNested, Drop.DecapBadInner]) {
    assert.is((row1.drops.reasons[reason(d)] ?? 0) - (row0.drops.reasons[reason(d)] ?? 0), want.find((w) => w[0] === d)![1], `show vips: ${reason(d)}`);
  }
  assert.is(row1.decapsulated - row0.decapsulated, 0, 'nothing decapsulated went in');
  assert.equal(traps(), traps0, 'no datagram reached a socket on a VIP or on an interface address');
  const answers = (c: CaptureResult) => c.packets.filter((p) => !isNdOrMld(p)).map((p) => `${ipInfo(p)!.src} → ${ipInfo(p)!.dst} proto ${ipInfo(p)!.proto}`);
  assert.equal(answers(sawClient), [], 'nothing answered the client');
  assert.equal(answers(sawLb), [], 'nothing answered the load balancer');
  assert.is(sawClient.packets.length, sawClient.count, 'every packet the client received was looked at');
  assert.is(sawLb.packets.length, sawLb.count, 'every packet the load balancer received was looked at');
  await framesAccounted();
});

ptest('datagrams the load balancer must fragment (inner DF clear, 1460 bytes: 4in4 and 4in6): the VS reassembles the outer packet, then decapsulates; echoed whole from the VIP', async () => {
  const row0 = vipRow('a');
  const lb0 = await lbA.counters();
  const targets = [VIP.v4, VIP_MIX.v4];
  const sentByLb = await capture(ns.lbA, { out: true, srcs: [LB_A.v4, LB_A.v6], protos: [4], keep: 64 });
  const py = [
    'import socket,sys,json',
    'out=[]',
    'for dst in json.loads(sys.argv[1]):',
    '  s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)',
    '  s.setsockopt(socket.IPPROTO_IP,10,0)  # IP_MTU_DISCOVER: IP_PMTUDISC_DONT, DF clear',
    '  s.settimeout(2)',
    '  ok=0',
    '  for i in range(3):',
    '    m=bytes([(i*7+k)%251 for k in range(1460)])',
    '    s.sendto(m,(dst,7))',
    '    try:',
    '      d,a=s.recvfrom(65535)',
    '      ok+=(d==m and a[0]==dst)',
    '    except socket.timeout: pass',
    '  out.append(ok)',
    'print(json.dumps(out))',
  ].join('\n');
  const r = await nsRun(ns.clientA, '/usr/bin/python3', ['-c', py, JSON.stringify(targets)], { timeout: 30_000 });
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim()), [3, 3], 'every datagram echoed whole, from the VIP it was sent to');
  const lb1 = await lbA.counters();
  const frags = (await sentByLb.stop()).packets.map((p) => ipInfo(p)!).filter((h) => h.mf || h.fragOffset > 0);
  assert.equal([frags.filter((h) => h.version === 4).length, frags.filter((h) => h.version === 6).length], [6, 6],
    'the load balancer sent each tunnel packet in two fragments (IPv4 outer; IPv6 outer with a Fragment header)');
  assert.is(lb1.forwarded['4in4'] - lb0.forwarded['4in4'], 3);
  assert.is(lb1.forwarded['4in6'] - lb0.forwarded['4in6'], 3);
  assert.is(lb1.dropped.tooBig - lb0.dropped.tooBig, 0, 'DF clear: fragmented, not refused');
  await until(() => vipRow('a').decapsulated - row0.decapsulated >= 6, 3000);
  const row1 = vipRow('a');
  assert.is(row1.decapsulated - row0.decapsulated, 6, 'six outer packets, each decapsulated once (after reassembly)');
  assert.is(row1.drops.total - row0.drops.total, 0, 'no decapsulation drop');
  const reasm = stack.show('counters', { vs: 'a' }) as { vs: { drops: { reasons: Record<string, number> } }[] };
  assert.is(reasm.vs[0]!.drops.reasons['decap-fragmented'] ?? 0, 0);
});

ptest('show vips after the run (for the record)', () => {
  const rows = stack.show('vips') as VipRow[];
  console.log(`# show vips: ${JSON.stringify(rows)}`);
  assert.is(rows.length, 2);
  assert.ok(rows.every((r) => r.decapsulated > 0));
});

test.run();
