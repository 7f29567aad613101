/**
 * The lab's L4 load balancer (test/lib/lb-python.ts) on its own, without a stack: three kernel
 * peers on VLAN 10, a client, the load balancer and a namespace playing the real server (it only
 * captures). The client routes the VIPs via the load balancer; what reaches the real server must
 * be the client's packet byte for byte inside one outer header from the load balancer to the real
 * server, for each kind: IPv4 in IPv4 (RFC 2003: protocol 4, TTL the encapsulator's own, DF and
 * TOS copied from the inner header), IPv6 in IPv6 (RFC 2473: next header 41, hop limit the
 * encapsulator's own), IPv6 in IPv4 (protocol 41, RFC 4213) and IPv4 in IPv6 (next header 4,
 * RFC 2473). Also: frames built by test/lib/encap-frames.ts and sent from a peer reach the wire
 * unchanged; the forwarder's accounting adds up; its rate is measured and reported (not asserted).
 * Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, nsSh, sleep, waitFor } from './lib/rig';
import { privilegedTest } from './lib/lab-stack';
import { fold, sum16 } from '../protocols/checksum';
import { pseudoSum6At } from '../protocols/ipv6';
import { clientOffloadsOff, LbCounters, LoadBalancer, sendFrames, startCapture, startLoadBalancer } from './lib/lb-python';
import { craftEncapsulated, decapsulate, EncapKind, ENCAP_KINDS, ethFrame, ipInfo, IpInfo, ipPacket, IPPROTO_IPIP, IPPROTO_IPV6, toHex } from './lib/encap-frames';

const PREFIX = labPrefix('lb');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);

const CLIENT = { v4: '10.1.1.2', v6: 'fd00:10::2' };
const LB = { v4: '10.1.1.100', v6: 'fd00:10::100' };
const RS = { v4: '10.1.1.3', v6: 'fd00:10::3', v4b: '10.1.1.4' };
/** One VIP per kind, and one VIP with two real servers. */
const VIPS: Record<EncapKind, string> = { '4in4': '198.51.100.10', '6in6': '2001:db8::10', '6in4': '2001:db8::11', '4in6': '198.51.100.11' };
const REAL: Record<EncapKind, string> = { '4in4': RS.v4, '6in6': RS.v6, '6in4': RS.v4, '4in6': RS.v6 };
const VIP_TWO = '198.51.100.12';

let lab: Lab;
let lb: LoadBalancer;
let ns: { client: string; lb: string; rs: string };
/** The load balancer namespace's own TTL and hop limit (what the outer headers must carry). */
let lbTtl: number;
let lbHopLimit: number;

/**
 * Client traffic (python3): argv[1] JSON {sends: [{dst, size, df, tos, sport}], syn: [dst...]}:
 * one UDP datagram per send from a fresh socket (port `sport` when given; DF by IP_MTU_DISCOVER,
 * TOS / traffic class as given), and a TCP connection attempt to port 80 of each `syn` address,
 * closed after 300 ms (one SYN each). Prints the number of datagrams sent.
 */
const CLIENT_SENDS = `
import socket, sys, json, time
cfg = json.loads(sys.argv[1])
n = 0
for i, s in enumerate(cfg['sends']):
    v6 = ':' in s['dst']
    k = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    if s.get('sport'): k.bind(('::' if v6 else '0.0.0.0', s['sport']))
    if v6: k.setsockopt(socket.IPPROTO_IPV6, 67, s.get('tos', 0))
    else:
        k.setsockopt(socket.IPPROTO_IP, 10, 2 if s.get('df', True) else 0)
        k.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, s.get('tos', 0))
    k.sendto(bytes((i * 7 + j) & 255 for j in range(s['size'])), (s['dst'], 9)); n += 1
    k.close()
held = []
for d in cfg.get('syn', []):
    k = socket.socket(socket.AF_INET6 if ':' in d else socket.AF_INET, socket.SOCK_STREAM)
    k.setblocking(False); k.connect_ex((d, 80)); held.append(k)
time.sleep(0.3)
for k in held: k.close()
print(n, flush=True)
`;

/**
 * UDP load (python3): argv dst, rate (datagrams/s; 0 = as fast as it can), seconds, cap. 64-byte
 * datagrams from one socket, in bursts of at most 64, bounded by time and count. Prints
 * "sent seconds".
 */
const UDP_LOAD = `
import socket, sys, time
dst, rate, secs, cap = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET, socket.SOCK_DGRAM)
msg = bytes(64); a = (dst, 9); send = s.sendto
n = 0; t0 = time.monotonic(); end = t0 + secs
while n < cap:
    now = time.monotonic()
    if now >= end: break
    k = 64
    if rate:
        due = int((now - t0) * rate) + 1
        if n >= due:
            time.sleep(min(0.002, (n - due + 1) / rate)); continue
        k = min(64, due - n)
    k = min(k, cap - n)
    for _ in range(k): send(msg, a)
    n += k
print(n, time.monotonic() - t0, flush=True)
`;

function kindOfVip(dst: string): EncapKind | undefined {
  return ENCAP_KINDS.find((k) => VIPS[k] === dst);
}

function totalForwarded(c: LbCounters): number {
  return ENCAP_KINDS.reduce((a, k) => a + c.forwarded[k], 0);
}

function totalDropped(c: LbCounters): number {
  return Object.values(c.dropped).reduce((a, n) => a + n, 0);
}

const until = waitFor;

const sh = (nsName: string, script: string) => nsSh(nsName, script);

if (privileged) {
  test.before(async () => {
    lab = labUp({
      prefix: PREFIX,
      peers: [
        { vlan: 10, ipv4: `${CLIENT.v4}/24`, ipv6: `${CLIENT.v6}/64` },
        { vlan: 10, ipv4: `${LB.v4}/24`, ipv6: `${LB.v6}/64` },
        { vlan: 10, ipv4: `${RS.v4}/24`, ipv6: `${RS.v6}/64` },
      ],
    });
    ns = { client: lab.peers[0]!.ns, lb: lab.peers[1]!.ns, rs: lab.peers[2]!.ns };
    await sh(ns.client, [
      ...Object.values(VIPS).map((v) => (v.includes(':') ? `ip -6 route add ${v}/128 via ${LB.v6}` : `ip route add ${v}/32 via ${LB.v4}`)),
      `ip route add ${VIP_TWO}/32 via ${LB.v4}`,
    ].join('\n'));
    await clientOffloadsOff(ns.client);
    await sh(ns.rs, `ip addr add ${RS.v4b}/24 dev eth0`);
    // Neighbours known before the first forwarded packet (client → LB, LB → real server).
    await sh(ns.client, `ping -c1 -w5 ${LB.v4} >/dev/null\nping -6 -c1 -w5 ${LB.v6} >/dev/null`);
    await sh(ns.lb, `ping -c1 -w5 ${RS.v4} >/dev/null\nping -c1 -w5 ${RS.v4b} >/dev/null\nping -6 -c1 -w5 ${RS.v6} >/dev/null`);
    lbTtl = Number((await nsRun(ns.lb, 'sysctl', ['-n', 'net.ipv4.ip_default_ttl'])).stdout.trim());
    lbHopLimit = Number((await nsRun(ns.lb, 'sysctl', ['-n', 'net.ipv6.conf.eth0.hop_limit'])).stdout.trim());
    lb = await startLoadBalancer(lab.peers[1]!, {
      services: [
        ...ENCAP_KINDS.map((k) => ({ vip: VIPS[k], reals: [REAL[k]] })),
        { vip: VIP_TWO, reals: [RS.v4, RS.v4b] },
      ],
      maxSeconds: 120,
    });
  });
  test.after(async () => {
    try {
      await lb?.stop();
    } finally {
      labDown(PREFIX);
    }
  });
}

ptest('each kind: the real server receives the client\'s packet byte for byte, inside one outer header from the load balancer', async () => {
  const before = await lb.counters();
  const rs = await startCapture(ns.rs, { protos: [IPPROTO_IPIP, IPPROTO_IPV6], srcs: [LB.v4, LB.v6], keep: 256, maxSeconds: 30 });
  const cl = await startCapture(ns.client, { out: true, keep: 256, maxSeconds: 30 });
  // Sizes from an empty datagram (a frame with Ethernet padding) to one that fits the real
  // server's MTU after the outer header; DF on and off; TOS / traffic class 0 and 0x2a.
  const sends: Array<{ dst: string; size: number; df?: boolean; tos?: number }> = [];
  for (const k of ENCAP_KINDS) {
    for (const size of [0, 1, 333, 1400]) sends.push({ dst: VIPS[k], size });
    sends.push({ dst: VIPS[k], size: 64, tos: 0x2a });
    if (!VIPS[k].includes(':')) sends.push({ dst: VIPS[k], size: 64, df: false });
  }
  const r = await nsRun(ns.client, '/usr/bin/python3', ['-c', CLIENT_SENDS, JSON.stringify({ sends, syn: [VIPS['4in4'], VIPS['6in6']] })]);
  assert.is(r.code, 0, r.stderr);
  assert.is(Number(r.stdout.trim()), sends.length);
  const expected = sends.length + 2;
  await until(async () => totalForwarded(await lb.counters()) - totalForwarded(before) >= expected && await rs.count() >= expected);
  const [got, sent] = [await rs.stop(), await cl.stop()];
  const after = await lb.counters();

  const toVips = sent.packets.filter((p) => { const i = ipInfo(p); return i !== null && kindOfVip(i.dst) !== undefined; });
  assert.is(toVips.length, sends.length + 2, 'the client sent every datagram and two SYNs');
  assert.is(got.count, toVips.length, 'one packet at the real server per client packet');
  const byInner = new Map(got.packets.map((p) => [toHex(decapsulate(p)!.inner), p]));
  const perKind: Record<string, number> = {};
  for (const p of toVips) {
    const inner = ipInfo(p)!;
    const kind = kindOfVip(inner.dst)!;
    const outerBytes = byInner.get(toHex(p));
    assert.ok(outerBytes, `${kind}: the client's packet (${inner.proto === 6 ? 'TCP SYN' : `UDP, ${p.length} bytes`}) arrived unchanged inside`);
    const d = decapsulate(outerBytes!)!;
    const o = d.outer;
    assert.is(d.kind, kind);
    assert.is(o.version, kind.endsWith('4') ? 4 : 6);
    assert.is(o.proto, inner.version === 4 ? IPPROTO_IPIP : IPPROTO_IPV6);
    assert.is(o.src, o.version === 4 ? LB.v4 : LB.v6, 'outer source: the load balancer');
    assert.is(o.dst, REAL[kind], 'outer destination: the real server');
    assert.is(o.ttl, o.version === 4 ? lbTtl : lbHopLimit, 'outer TTL / hop limit: the load balancer\'s own');
    assert.is(o.tos, inner.tos, 'TOS / traffic class copied from the inner header');
    assert.is(o.totalLen, o.headerLen + p.length, 'the outer header carries exactly the inner packet');
    assert.is(o.headerLen, o.version === 4 ? 20 : 40, 'no options, no Fragment header');
    assert.ok(o.checksumOk);
    assert.not.ok(o.mf || o.fragOffset, 'not a fragment');
    if (kind === '4in4') assert.is(o.df, inner.df, 'RFC 2003: DF copied from the inner header');
    if (kind === '6in4') assert.is(o.df, false, 'RFC 4213 3.2.1: DF clear');
    perKind[kind] = (perKind[kind] ?? 0) + 1;
  }
  assert.ok(toVips.some((p) => p.length === 28), 'an IPv4 packet shorter than the Ethernet minimum (its frame padded) went through at its own length');
  assert.ok(toVips.some((p) => ipInfo(p)!.version === 4 && !ipInfo(p)!.df), 'a packet with DF clear went through');
  for (const k of ENCAP_KINDS) assert.is(after.forwarded[k] - before.forwarded[k], perKind[k], `${k} forwarded`);
  assert.is(totalDropped(after) - totalDropped(before), 0, 'nothing dropped');
  assert.is(after.kernel.drops - before.kernel.drops, 0, 'no socket drop');
});

ptest('an IPv4 header that does not verify, or claims more than its frame, is a counted drop; its good twin goes through', async () => {
  const before = await lb.counters();
  const rs = await startCapture(ns.rs, { protos: [IPPROTO_IPIP], srcs: [LB.v4], maxSeconds: 30 });
  const eth = { dst: lab.peers[1]!.mac, src: lab.peers[0]!.mac };
  const spec = { src: CLIENT.v4, dst: VIPS['4in4'], payload: new Uint8Array(20).fill(0xab), sport: 40001 };
  const good = ipPacket(spec);
  const bad = ipPacket({ ...spec, badChecksum: true });
  const long = ipPacket(spec);
  long[3] = long[3]! + 100; // total length 100 bytes beyond the frame
  long[10] = 0; long[11] = 0;
  const sum = fold(sum16(long, 0, 20));
  long[10] = sum >>> 8; long[11] = sum & 0xff;
  const offVip = ipPacket({ ...spec, dst: '198.51.100.99' });
  assert.is(await sendFrames(ns.client, [bad, long, offVip, good].map((p) => ethFrame(p, eth))), 4);
  await until(async () => (await lb.counters()).rx - before.rx >= 3 && await rs.count() >= 1);
  const got = await rs.stop();
  const after = await lb.counters();
  assert.is(after.dropped.badChecksum - before.dropped.badChecksum, 1, 'bad checksum: counted');
  assert.is(after.dropped.badHeader - before.dropped.badHeader, 1, 'total length beyond the frame: counted');
  assert.is(after.rx - before.rx, 3, 'a packet to an address that is no VIP never reaches the program');
  assert.is(after.forwarded['4in4'] - before.forwarded['4in4'], 1);
  assert.is(got.count, 1);
  assert.equal(decapsulate(got.packets[0]!)!.inner, good, 'the good packet, unchanged');
});

ptest('two real servers behind one VIP: each flow sticks to one of them, and both get flows', async () => {
  const before = await lb.counters();
  const rs = await startCapture(ns.rs, { protos: [IPPROTO_IPIP], srcs: [LB.v4], keep: 256, maxSeconds: 30 });
  const sends = [];
  for (let rep = 0; rep < 3; rep++) for (let f = 0; f < 16; f++) sends.push({ dst: VIP_TWO, size: 10, sport: 41000 + f });
  const r = await nsRun(ns.client, '/usr/bin/python3', ['-c', CLIENT_SENDS, JSON.stringify({ sends })]);
  assert.is(r.code, 0, r.stderr);
  await until(async () => await rs.count() >= sends.length);
  const got = await rs.stop();
  const after = await lb.counters();
  assert.is(got.count, sends.length);
  assert.is(after.forwarded['4in4'] - before.forwarded['4in4'], sends.length);
  const realOf = new Map<number, Set<string>>();
  for (const p of got.packets) {
    const d = decapsulate(p)!;
    const sport = (d.inner[20]! << 8) | d.inner[21]!;
    if (!realOf.has(sport)) realOf.set(sport, new Set());
    realOf.get(sport)!.add(d.outer.dst);
  }
  assert.is(realOf.size, 16);
  for (const [sport, reals] of realOf) assert.is(reals.size, 1, `flow from port ${sport} went to one real server (${[...reals].join(', ')})`);
  const used = new Set([...realOf.values()].map((s) => [...s][0]));
  assert.equal([...used].sort(), [RS.v4, RS.v4b].sort(), 'both real servers got flows');
});

ptest('a packet that no longer fits the link once encapsulated: DF set or IPv6 over 1280 bytes → ICMP back to the client; DF clear → outer fragments (RFC 2003 5.1, RFC 2473 7)', async () => {
  const before = await lb.counters();
  const rs = await startCapture(ns.rs, { protos: [IPPROTO_IPIP, IPPROTO_IPV6], srcs: [LB.v4, LB.v6], keep: 16, maxSeconds: 30 });
  const icmp = await startCapture(ns.client, { protos: [1, 58], srcs: [LB.v4, LB.v6], keep: 16, maxSeconds: 30 });
  // 1500-byte inner packets on a 1500-byte MTU path: 1472 bytes of UDP over IPv4, 1452 over IPv6.
  // The DF-clear ones first: once the client has the ICMP, its kernel fragments them itself.
  const sends = [
    { dst: VIPS['4in4'], size: 1472, df: false }, { dst: VIPS['4in6'], size: 1472, df: false },
    { dst: VIPS['4in4'], size: 1472 }, { dst: VIPS['6in6'], size: 1452 }, { dst: VIPS['4in6'], size: 1472 },
  ];
  const r = await nsRun(ns.client, '/usr/bin/python3', ['-c', CLIENT_SENDS, JSON.stringify({ sends })]);
  assert.is(r.code, 0, r.stderr);
  await until(async () => { const c = await lb.counters(); return c.rx - before.rx >= sends.length && c.icmpSent - before.icmpSent >= 3 && await rs.count() >= 4; });
  const [got, back] = [await rs.stop(), await icmp.stop()];
  const after = await lb.counters();
  await sh(ns.client, 'ip route flush cache\nip -6 route flush cache'); // forget the path MTUs learned
  assert.is(after.dropped.tooBig - before.dropped.tooBig, 3, 'DF set (4in4, 4in6) and 1500-byte IPv6 (6in6): not sent, counted');
  assert.is(after.icmpSent - before.icmpSent, 3);
  assert.is(after.forwarded['4in4'] - before.forwarded['4in4'], 1, 'DF clear, IPv4 outer: sent');
  assert.is(after.forwarded['4in6'] - before.forwarded['4in6'], 1, 'DF clear, IPv6 outer: sent');

  // The DF-clear packets: each as two outer fragments of one datagram that together carry it.
  assert.is(got.count, 4);
  for (const v of [4, 6]) {
    const frags = got.packets.map((p) => ipInfo(p)!).filter((i) => i.version === v);
    assert.is(frags.length, 2, `IPv${v} outer: two fragments`);
    const [a, b] = frags as [IpInfo, IpInfo];
    assert.ok(a.mf && a.fragOffset === 0 && !b.mf && b.fragOffset > 0 && a.id === b.id, 'first and last fragment of one outer datagram');
    assert.is(a.proto, IPPROTO_IPIP);
    assert.is(b.fragOffset + b.totalLen - b.headerLen, 1500, 'together: the 1500-byte inner packet');
  }

  // The others: ICMP errors from the load balancer to the client, quoting the client's packet
  // (the capture also holds the load balancer's neighbour solicitations).
  const isError = (p: Uint8Array) => { const h = ipInfo(p)!; return p[h.headerLen] === (h.version === 4 ? 3 : 2); };
  const errors = back.packets.filter(isError);
  assert.is(errors.length, 3);
  const v4msgs = errors.filter((p) => ipInfo(p)!.version === 4);
  const v6msgs = errors.filter((p) => ipInfo(p)!.version === 6);
  assert.is(v4msgs.length, 2);
  assert.is(v6msgs.length, 1);
  for (const m of v4msgs) {
    const h = ipInfo(m)!;
    const icmpMsg = m.subarray(h.headerLen, h.totalLen);
    assert.is(h.dst, CLIENT.v4);
    assert.is(icmpMsg[0], 3, 'destination unreachable');
    assert.is(icmpMsg[1], 4, 'fragmentation needed and DF set');
    assert.is(fold(sum16(icmpMsg, 0, icmpMsg.length)), 0, 'ICMP checksum');
    const quoted = ipInfo(icmpMsg.subarray(8))!;
    assert.is(quoted.src, CLIENT.v4);
    assert.is(quoted.totalLen, 1500);
    const mtu = (icmpMsg[6]! << 8) | icmpMsg[7]!;
    assert.is(mtu, quoted.dst === VIPS['4in4'] ? 1480 : 1460, 'next-hop MTU: the link minus the outer header (RFC 1191)');
    assert.ok(icmpMsg.length >= 8 + 20 + 8, 'the IP header and 64 bits of data quoted (RFC 792)');
  }
  const m6 = v6msgs[0]!;
  const h6 = ipInfo(m6)!;
  const body = m6.subarray(40, h6.totalLen);
  assert.is(h6.dst, CLIENT.v6);
  assert.is(body[0], 2, 'Packet Too Big');
  assert.is(body[1], 0);
  assert.is(((body[4]! << 24) | (body[5]! << 16) | (body[6]! << 8) | body[7]!) >>> 0, 1460, 'MTU: the link minus the outer header');
  assert.is(fold(sum16(body, 0, body.length, pseudoSum6At(m6, 8, 24, 58, body.length))), 0, 'ICMPv6 checksum');
  assert.is(m6.length, 1280, 'as much of the packet as fits the minimum MTU (RFC 4443 3.2)');
  assert.is(ipInfo(body.subarray(8))!.dst, VIPS['6in6']);
});

ptest('encapsulated frames built by encap-frames.ts and sent from a peer reach the wire byte for byte', async () => {
  const rs = await startCapture(ns.rs, { protos: [IPPROTO_IPIP, IPPROTO_IPV6], srcs: [CLIENT.v4, CLIENT.v6], keep: 64, maxSeconds: 30 });
  const o4 = { src: CLIENT.v4, dst: RS.v4 };
  const o6 = { src: CLIENT.v6, dst: RS.v6 };
  const in4 = { src: '192.0.2.7', dst: VIPS['4in4'], payload: Uint8Array.of(1, 2, 3) };
  const in6 = { src: '2001:db8:7::7', dst: VIPS['6in6'], payload: Uint8Array.of(4, 5, 6) };
  const packets = [
    craftEncapsulated({ outer: o4, inner: in4 }),
    craftEncapsulated({ outer: o6, inner: in6 }),
    craftEncapsulated({ outer: o4, inner: in6 }),
    craftEncapsulated({ outer: o6, inner: in4 }),
    craftEncapsulated({ outer: [o4, { src: '10.9.9.9', dst: '10.8.8.8' }], inner: in4 }),
    craftEncapsulated({ outer: o4, inner: in4, truncateInner: 12 }),
    craftEncapsulated({ outer: o6, inner: in6, truncateInner: 30 }),
    craftEncapsulated({ outer: o4, inner: { ...in4, badChecksum: true } }),
    craftEncapsulated({ outer: { ...o4, fragment: { offset: 0, more: true, id: 77 } }, inner: in4 }),
    craftEncapsulated({ outer: { ...o6, fragment: { offset: 8, more: false, id: 78 } }, inner: in6 }),
  ];
  const eth = { dst: lab.peers[2]!.mac, src: lab.peers[0]!.mac };
  assert.is(await sendFrames(ns.client, packets.map((p) => ethFrame(p, eth))), packets.length);
  await until(async () => await rs.count() >= packets.length);
  const got = await rs.stop();
  assert.is(got.count, packets.length);
  got.packets.forEach((p, i) => assert.equal(p, packets[i], `frame ${i} arrived unchanged`));
});

ptest('rate: the forwarder\'s throughput, paced and unpaced (reported); every packet it forwarded reached the real server', async () => {
  const lines: string[] = [];
  for (const [kind, rate] of [['4in4', 20000], ['4in4', 0], ['6in6', 20000], ['6in6', 0]] as Array<[EncapKind, number]>) {
    const before = await lb.counters();
    const rs = await startCapture(ns.rs, { protos: [kind === '4in4' ? IPPROTO_IPIP : IPPROTO_IPV6], srcs: [LB.v4, LB.v6], keep: 1, maxSeconds: 30 });
    const r = await nsRun(ns.client, '/usr/bin/python3', ['-c', UDP_LOAD, VIPS[kind], String(rate), '1', '400000']);
    assert.is(r.code, 0, r.stderr);
    const [sent, secs] = r.stdout.trim().split(/\s+/).map(Number) as [number, number];
    // Bounded wait until the load balancer has read every frame its socket queued.
    let after = await lb.counters();
    for (let i = 0; i < 50 && after.rx + (after.kernel.drops - before.kernel.drops) - before.rx < after.kernel.packets - before.kernel.packets; i++) {
      await sleep(50);
      after = await lb.counters();
    }
    after = await lb.counters();
    const fwdNow = after.forwarded[kind] - before.forwarded[kind];
    await until(async () => await rs.count() >= fwdNow, 5000);
    const got = await rs.stop();
    const fwd = after.forwarded[kind] - before.forwarded[kind];
    const drops = after.kernel.drops - before.kernel.drops;
    const rx = after.rx - before.rx;
    assert.is(rx + drops, after.kernel.packets - before.kernel.packets, 'every frame the socket took was read or counted as a socket drop');
    assert.is(totalForwarded(after) - totalForwarded(before), fwd, `only ${kind} forwarded`);
    assert.is(rx, fwd + totalDropped(after) - totalDropped(before), 'every frame read was forwarded or counted as dropped');
    assert.ok(rx + drops <= sent, 'no more frames than the client sent');
    assert.is(got.count + got.kernel.drops, fwd, 'every forwarded packet reached the real server (captured, or dropped by its capture socket)');
    const span = got.count > 1 ? got.last - got.first : 0;
    lines.push(`# lb ${kind} ${rate ? `paced ${rate}/s` : 'unpaced'}: client sent ${sent} in ${secs.toFixed(2)} s (${Math.round(sent / secs)}/s), ` +
      `forwarded ${fwd} (${span > 0 ? Math.round(got.count / span) : 0}/s at the real server), LB socket drops ${drops}, capture drops ${got.kernel.drops}`);
  }
  for (const l of lines) console.log(l);
});

ptest('bounded: a load balancer ends by itself after maxSeconds and still reports its counters', async () => {
  const t0 = Date.now();
  const other = await startLoadBalancer(ns.rs, { services: [{ vip: '203.0.113.1', reals: [LB.v4] }], src4: RS.v4, vlan: 10, maxSeconds: 1 });
  const end = await other.finished();
  assert.is(end.reason, 'time');
  assert.is(end.rx, 0);
  assert.ok(Date.now() - t0 < 10_000);
});

test.run();
