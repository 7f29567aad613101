/**
 * RSS steering of outbound connections: the Toeplitz hash against the Microsoft verification data,
 * the table-driven and per-port evaluation against the spec's bit-by-bit pseudocode (fast-check),
 * the port selector against brute force, the `ethtool -x` / `rx-flow-hash` parsers against real
 * outputs, and readRss on this machine's veth (no RSS: null with a reason, never a throw).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { Toeplitz, toeplitzRef, RSS_INPUT4, RSS_INPUT6, DPORT_OFF4, DPORT_OFF6 } from '../protocols/rss/toeplitz';
import { RssPortSelector, nextPortForQueue, EPHEMERAL_LO, EPHEMERAL_HI, RssFields } from '../protocols/rss/select';
import { parseEthtoolRss, parseFlowHashFields, readRss, usableRss, EthtoolRss, EthtoolRunner } from '../driver/rss';
import { Ip6, parseIp4, parseIp6, IpAddr } from '../protocols/ip/addr';
import { canRunPrivileged, labPrefix } from './lib/env';

// ---- Microsoft "Verifying the RSS Hash Calculation" (windows-driver-docs, network/) ----
const MS_KEY = Uint8Array.from([
  0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
  0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
  0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
]);
// [destination, destination port, source, source port, "IPv4 only", "IPv4 with TCP"]
const MS_V4: [string, number, string, number, number, number][] = [
  ['161.142.100.80', 1766, '66.9.149.187', 2794, 0x323e8fc2, 0x51ccc178],
  ['65.69.140.83', 4739, '199.92.111.2', 14230, 0xd718262a, 0xc626b0ea],
  ['12.22.207.184', 38024, '24.19.198.95', 12898, 0xd2d0a5de, 0x5c2b394a],
  ['209.142.163.6', 2217, '38.27.205.30', 48228, 0x82989176, 0xafc7327f],
  ['202.188.127.2', 1303, '153.39.163.191', 44251, 0x5d1809c5, 0x10e828a2],
];
const MS_V6: [string, number, string, number, number, number][] = [
  ['3ffe:2501:200:3::1', 1766, '3ffe:2501:200:1fff::7', 2794, 0x2cc18cd5, 0x40207d3d],
  ['ff02::1', 4739, '3ffe:501:8::260:97ff:fe40:efab', 14230, 0x0f0c461c, 0xdde51bbf],
  ['fe80::200:f8ff:fe21:67cf', 38024, '3ffe:1900:4545:3:200:f8ff:fe21:67cf', 44251, 0x4b61e985, 0x02d1feef],
];

/** The spec's input: src addr, dst addr, src port, dst port, big-endian. */
function input4(src: number, dst: number, sp: number, dp: number, ports = true): Uint8Array {
  const b = Buffer.alloc(ports ? 12 : 8);
  b.writeUInt32BE(src >>> 0, 0); b.writeUInt32BE(dst >>> 0, 4);
  if (ports) { b.writeUInt16BE(sp, 8); b.writeUInt16BE(dp, 10); }
  return new Uint8Array(b);
}
function input6(src: Ip6, dst: Ip6, sp: number, dp: number, ports = true): Uint8Array {
  const b = Buffer.alloc(ports ? 36 : 32);
  b.set(src.bytes(), 0); b.set(dst.bytes(), 16);
  if (ports) { b.writeUInt16BE(sp, 32); b.writeUInt16BE(dp, 34); }
  return new Uint8Array(b);
}
const hex = (n: number) => '0x' + (n >>> 0).toString(16).padStart(8, '0');

test('Microsoft verification data, IPv4 (with TCP and addresses only): reference and table hash', () => {
  const t = new Toeplitz(MS_KEY);
  for (const [dst, dp, src, sp, ipOnly, withTcp] of MS_V4) {
    const s = parseIp4(src), d = parseIp4(dst);
    assert.is(hex(toeplitzRef(MS_KEY, input4(s, d, sp, dp))), hex(withTcp), `ref ${src}:${sp} -> ${dst}:${dp}`);
    assert.is(hex(toeplitzRef(MS_KEY, input4(s, d, 0, 0, false))), hex(ipOnly), `ref ${src} -> ${dst}`);
    assert.is(hex(t.hash4(s, d, sp, dp)), hex(withTcp));
    assert.is(hex(t.hash4Addrs(s, d)), hex(ipOnly));
    assert.is(hex(t.hashBytes(input4(s, d, sp, dp), 0, RSS_INPUT4)), hex(withTcp));
  }
});

test('Microsoft verification data, IPv6 (with TCP and addresses only): reference and table hash', () => {
  const t = new Toeplitz(MS_KEY);
  assert.ok(t.ipv6);
  for (const [dst, dp, src, sp, ipOnly, withTcp] of MS_V6) {
    const s = parseIp6(src), d = parseIp6(dst);
    assert.is(hex(toeplitzRef(MS_KEY, input6(s, d, sp, dp))), hex(withTcp), `ref [${src}]:${sp} -> [${dst}]:${dp}`);
    assert.is(hex(toeplitzRef(MS_KEY, input6(s, d, 0, 0, false))), hex(ipOnly));
    assert.is(hex(t.hash6(s, d, sp, dp)), hex(withTcp));
    assert.is(hex(t.hash6Addrs(s, d)), hex(ipOnly));
    assert.is(hex(t.hashBytes(input6(s, d, sp, dp), 0, RSS_INPUT6)), hex(withTcp));
  }
});

test('key length: under 16 bytes refused; 16..39 bytes hash IPv4 only; the reference refuses a short key', () => {
  assert.throws(() => new Toeplitz(new Uint8Array(15)), /at least 16 bytes/);
  const t = new Toeplitz(MS_KEY.subarray(0, 16));
  assert.not.ok(t.ipv6);
  const [dst, dp, src, sp, , withTcp] = MS_V4[0]!;
  assert.is(hex(t.hash4(parseIp4(src), parseIp4(dst), sp, dp)), hex(withTcp), 'IPv4 4-tuple uses only key bits 0..126');
  assert.throws(() => t.hash6(parseIp6('::1'), parseIp6('::2'), 1, 2), /too short for IPv6/);
  assert.throws(() => toeplitzRef(MS_KEY.subarray(0, 39), new Uint8Array(36)), /at least 40 bytes/);
});

const arbKey = fc.oneof(fc.uint8Array({ minLength: 40, maxLength: 40 }), fc.uint8Array({ minLength: 52, maxLength: 52 }));
const arbIp6 = fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.nat()).map(([a, b, c, d]) => new Ip6(a, b, c, d));
const arbPort = fc.integer({ min: 0, max: 65535 });

test('table hash equals the bit-by-bit pseudocode for any key and input (fast-check)', () => {
  fc.assert(fc.property(arbKey, fc.uint8Array({ minLength: 1, maxLength: 36 }), (key, input) => {
    return new Toeplitz(key).hashBytes(input, 0, input.length) === toeplitzRef(key, input);
  }), { numRuns: 300 });
});

test('per-port evaluation: hash(port p) = hash(port 0) ^ term(p), for IPv4 and IPv6 (fast-check)', () => {
  fc.assert(fc.property(arbKey, fc.nat(), fc.nat(), arbPort, arbPort, (key, a, b, peerPort, ours) => {
    const t = new Toeplitz(key);
    const straight = toeplitzRef(key, input4(a, b, peerPort, ours));
    return t.hash4(a, b, peerPort, ours) === straight &&
      ((t.hash4(a, b, peerPort, 0) ^ t.u16(DPORT_OFF4, ours)) >>> 0) === straight;
  }), { numRuns: 300 });
  fc.assert(fc.property(arbKey, arbIp6, arbIp6, arbPort, arbPort, (key, a, b, peerPort, ours) => {
    const t = new Toeplitz(key);
    const straight = toeplitzRef(key, input6(a, b, peerPort, ours));
    return t.hash6(a, b, peerPort, ours) === straight &&
      ((t.hash6(a, b, peerPort, 0) ^ t.u16(DPORT_OFF6, ours)) >>> 0) === straight;
  }), { numRuns: 300 });
});

// ---- The selector ----

/** Every candidate of one begin(), in the order next() gives them. */
function candidates(sel: RssPortSelector, q: number, peer: IpAddr, peerPort: number, local: IpAddr): number[] {
  const n = sel.begin(q, peer, peerPort, local);
  const out: number[] = [];
  for (let p = sel.next(); p >= 0; p = sel.next()) {
    out.push(p);
    if (out.length > n) break; // never loops past the count
  }
  return out;
}

/** The ports of the range a straight Toeplitz evaluation sends to queue q. */
function bruteForce(key: Uint8Array, indir: number[], q: number, peer: IpAddr, peerPort: number, local: IpAddr, lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let p = lo; p <= hi; p++) {
    const inp = typeof peer === 'number' ? input4(peer, local as number, peerPort, p) : input6(peer, local as Ip6, peerPort, p);
    if (indir[toeplitzRef(key, inp) & (indir.length - 1)] === q) out.push(p);
  }
  return out;
}

const arbIndir = fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 16 })).chain(([log, queues]) =>
  fc.array(fc.integer({ min: 0, max: queues - 1 }), { minLength: 1 << log, maxLength: 1 << log }));

test('selector yields exactly the ports a straight evaluation maps to the queue, each once (fast-check, IPv4 and IPv6)', () => {
  fc.assert(fc.property(arbKey, arbIndir, fc.nat(), fc.nat(), arbPort, fc.nat(15), fc.boolean(), arbIp6, arbIp6,
    (key, indir, a, b, peerPort, qSeed, v6, a6, b6) => {
      // A narrow range keeps the brute force quick; the bucket logic does not depend on its width.
      const lo = 40000 + (a % 1000), hi = lo + 700;
      const sel = new RssPortSelector(key, indir, { lo, hi });
      const q = qSeed % sel.queues;
      const peer: IpAddr = v6 ? a6 : a, local: IpAddr = v6 ? b6 : b;
      const got = candidates(sel, q, peer, peerPort, local);
      const want = bruteForce(key, indir, q, peer, peerPort, local, lo, hi);
      assert.equal([...got].sort((x, y) => x - y), want);
      assert.is(new Set(got).size, got.length, 'no port twice');
      for (const p of got) assert.is(sel.queueOf(peer, peerPort, local, p), q);
      return true;
    }), { numRuns: 150 });
});

test('selector over the whole ephemeral range: every port belongs to exactly one queue; candidates match brute force', () => {
  const indir = Array.from({ length: 128 }, (_, i) => i % 16);
  const sel = new RssPortSelector(MS_KEY, indir);
  const peer = parseIp4('66.9.149.187'), local = parseIp4('161.142.100.80');
  let total = 0;
  for (let q = 0; q < 16; q++) {
    const got = candidates(sel, q, peer, 443, local);
    total += got.length;
    if (q === 5) assert.equal([...got].sort((x, y) => x - y), bruteForce(MS_KEY, indir, 5, peer, 443, local, EPHEMERAL_LO, EPHEMERAL_HI));
    // A round-robin table over 16 queues gives each about 1/16 of the 28232 ports.
    assert.ok(got.length > 28232 / 16 / 2 && got.length < 28232 / 16 * 2, `queue ${q}: ${got.length} ports`);
  }
  assert.is(total, EPHEMERAL_HI - EPHEMERAL_LO + 1);
  assert.is(sel.begin(16, peer, 443, local), 0, 'a queue not in the table has no port');
  assert.is(sel.next(), -1);
});

test('no port maps to the queue: begin() says 0 and nextPortForQueue returns -1', () => {
  // A queue absent from the table.
  const sel = new RssPortSelector(MS_KEY, [0, 0, 2, 2]);
  assert.is(sel.queues, 3);
  assert.is(sel.begin(1, parseIp4('10.0.0.2'), 80, parseIp4('10.0.0.1')), 0);
  assert.is(nextPortForQueue(sel, 1, parseIp4('10.0.0.2'), 80, parseIp4('10.0.0.1'), () => false), -1);
  // A range too narrow to reach the queue: one port, which maps elsewhere.
  const peer = parseIp4('66.9.149.187'), local = parseIp4('161.142.100.80');
  const wide = new RssPortSelector(MS_KEY, Array.from({ length: 128 }, (_, i) => i % 16));
  const p = 40000, q = wide.queueOf(peer, 443, local, p);
  const one = new RssPortSelector(MS_KEY, Array.from({ length: 128 }, (_, i) => i % 16), { lo: p, hi: p });
  assert.is(nextPortForQueue(one, q, peer, 443, local, () => false), p);
  assert.is(nextPortForQueue(one, (q + 1) % 16, peer, 443, local, () => false), -1);
  // Every candidate in use.
  assert.is(nextPortForQueue(wide, q, peer, 443, local, () => true), -1);
});

test('ports not hashed (sd): every port when the addresses map to the queue, none otherwise; none: no steering', () => {
  const indir = Array.from({ length: 128 }, (_, i) => i % 4);
  const peer = parseIp4('66.9.149.187'), local = parseIp4('161.142.100.80');
  const sel = new RssPortSelector(MS_KEY, indir, { tcp4: 'sd' });
  const q = indir[0x323e8fc2 & 127]!; // the "IPv4 only" hash of that pair
  assert.is(sel.queueOf(peer, 1, local, 2), q);
  assert.is(sel.begin(q, peer, 443, local), EPHEMERAL_HI - EPHEMERAL_LO + 1);
  assert.is(sel.begin((q + 1) % 4, peer, 443, local), 0);
  const none = new RssPortSelector(MS_KEY, indir, { tcp4: 'none' });
  assert.is(none.queueOf(peer, 1, local, 2), -1);
  for (let k = 0; k < 4; k++) assert.is(none.begin(k, peer, 443, local), 0);
  // IPv6 follows its own setting; a 16-byte key cannot hash IPv6 4-tuples at all.
  const short = new RssPortSelector(MS_KEY.subarray(0, 16), indir);
  assert.is(short.tcp6, 'none');
  assert.is(short.begin(0, parseIp6('fd00::2'), 80, parseIp6('fd00::1')), 0);
  assert.ok(short.begin(q, peer, 443, local) > 0);
});

test('successive calls rotate over the candidates; in-use ports are skipped', () => {
  const indir = Array.from({ length: 128 }, (_, i) => i % 8);
  const sel = new RssPortSelector(MS_KEY, indir);
  const peer = parseIp6('fd00::2'), local = parseIp6('fd00::1');
  const used = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const p = nextPortForQueue(sel, 3, peer, 3260, local, (x) => used.has(x));
    assert.ok(p >= EPHEMERAL_LO && p <= EPHEMERAL_HI);
    assert.is(sel.queueOf(peer, 3260, local, p), 3);
    assert.not.ok(used.has(p));
    used.add(p);
  }
  // Without marking them used, the first candidate still moves from one call to the next.
  const firsts = new Set<number>();
  for (let i = 0; i < 50; i++) firsts.add(nextPortForQueue(sel, 3, peer, 3260, local, () => false));
  assert.is(firsts.size, 50);
});

test('bad setup is a clear error', () => {
  assert.throws(() => new RssPortSelector(MS_KEY, []), /power of two/);
  assert.throws(() => new RssPortSelector(MS_KEY, [0, 1, 2]), /power of two/);
  assert.throws(() => new RssPortSelector(MS_KEY, [0, -1]), /entry 1/);
  assert.throws(() => new RssPortSelector(MS_KEY, [0, 1], { lo: 5000, hi: 4000 }), /lo <= hi/);
  assert.throws(() => new RssPortSelector(MS_KEY, [0, 1], { tcp4: 'sdf' as RssFields }), /tcp4 fields/);
  const sel = new RssPortSelector(MS_KEY, [0, 1]);
  assert.throws(() => sel.queueOf(1, 2, parseIp6('::1'), 3), /different families/);
});

test('cost: setup and one port choice (measured)', () => {
  const peers = Array.from({ length: 1024 }, (_, i) => (0x0a000000 + i * 7919) >>> 0);
  const local = parseIp4('10.255.0.1');
  for (const size of [128, 512]) {
    const indir = Array.from({ length: size }, (_, i) => i % 16);
    let t0 = process.hrtime.bigint();
    const sel = new RssPortSelector(MS_KEY, indir);
    const setupUs = Number(process.hrtime.bigint() - t0) / 1e3;
    const N = 100_000;
    let sum = 0;
    t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sum += nextPortForQueue(sel, i & 15, peers[i & 1023]!, 443, local, () => false);
    const perCallNs = Number(process.hrtime.bigint() - t0) / N;
    console.log(`# RSS selector, table ${size}, 16 queues: setup ${setupUs.toFixed(0)} us, nextPortForQueue ${perCallNs.toFixed(0)} ns/call`);
    assert.ok(sum > 0);
    // A scan of the 28232-port range would cost tens of microseconds; the buckets keep it to a few
    // table indices per call.
    assert.ok(perCallNs < 10_000, `${perCallNs} ns per call`);
  }
});

// ---- ethtool parsing: real outputs ----

// enetc (NXP), quoted in a netdev mail by Vladimir Oltean (indented by two spaces there).
const ETHTOOL_ENETC = `  RX flow hash indirection table for eno0 with 2 RX ring(s):
      0:      0     1     0     1     0     1     0     1
      8:      0     1     0     1     0     1     0     1
     16:      0     1     0     1     0     1     0     1
     24:      0     1     0     1     0     1     0     1
     32:      0     1     0     1     0     1     0     1
     40:      0     1     0     1     0     1     0     1
     48:      0     1     0     1     0     1     0     1
     56:      0     1     0     1     0     1     0     1
  RSS hash key:
  0d:1f:cb:76:88:82:dd:ea:70:c9:ef:53:3e:f3:bf:60:5c:79:60:09:32:ff:88:fa:aa:39:63:31:ef:ad:31:e4:ac:57:ec:d2:09:4d:9a:01
  RSS hash function:
      toeplitz: on
      xor: off
      crc32: off
`;
// A NIC with a table but no readable key (packagecloud "Monitoring and Tuning the Linux Networking Stack: Receiving Data").
const ETHTOOL_NOKEY = `RX flow hash indirection table for p1p1 with 8 RX ring(s):
    0:      0     0     0     0     0     0     0     0
    8:      0     0     0     0     0     0     0     0
   16:      1     1     1     1     1     1     1     1
   24:      1     1     1     1     1     1     1     1
   32:      2     2     2     2     2     2     2     2
   40:      2     2     2     2     2     2     2     2
   48:      3     3     3     3     3     3     3     3
   56:      3     3     3     3     3     3     3     3
   64:      4     4     4     4     4     4     4     4
   72:      4     4     4     4     4     4     4     4
   80:      5     5     5     5     5     5     5     5
   88:      5     5     5     5     5     5     5     5
   96:      6     6     6     6     6     6     6     6
  104:      6     6     6     6     6     6     6     6
  112:      7     7     7     7     7     7     7     7
  120:      7     7     7     7     7     7     7     7
RSS hash key:
Operation not supported
RSS hash function:
    toeplitz: on
    xor: off
    crc32: off
`;
// virtio_net without the RSS feature: this machine's eth0 (ethtool 6.1, kernel 6.18).
const ETHTOOL_VIRTIO = `RX flow hash indirection table for eth0 with 1 RX ring(s):
Operation not supported
RSS hash key:
Operation not supported
RSS hash function:
    toeplitz: on
    xor: off
    crc32: off
`;
// Linux Documentation/admin-guide/sysctl/net.rst (netdev_rss_key): an older ethtool, no hash function section.
const ETHTOOL_KERNEL_DOC = `  myhost:~# ethtool -x eth0
  RX flow hash indirection table for eth0 with 8 RX ring(s):
      0:    0     1     2     3     4     5     6     7
  RSS hash key:
  84:50:f4:00:a8:15:d1:a7:e9:7f:1d:60:35:c7:47:25:42:97:74:ca:56:bb:b6:a1:d8:43:e3:c9:0c:fd:17:55:c2:3a:4d:69:ed:f1:42:89
`.replace(/^ {2}myhost.*\n/, '');
// ConnectX-3 set to XOR (NVIDIA MLNX_OFED "RSS Support"; the page flattens the lines, restored as ethtool prints them).
const ETHTOOL_MLX_XOR = `RX flow hash indirection table for ens4 with 8 RX ring(s):
    0:      0     1     2     3     4     5     6     7
RSS hash key:
7c:9c:37:de:18:dc:43:86:d9:27:0f:6f:26:03:74:b8:bf:d0:40:4b:78:72:e2:24:dc:1b:91:bb:01:1b:a7:a6:37:6c:c8:7e:d6:e3:14:17
RSS hash function:
    toeplitz: off
    xor : on
`;
// sfc under Onload (Xilinx-CNS/onload issue 208): all-zero key; the reporter cut the table ("...").
const ETHTOOL_ONLOAD_CUT = `RX flow hash indirection table for enp2s0f0 with 4 RX ring(s):
    0:      0     0     0     0     0     0     0     0
    8:      0     0     0     0     0     0     0     0
   16:      0     0     0     0     0     0     0     0
...
  120:      0     0     0     0     0     0     0     0
RSS hash key:
00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00
RSS hash function:
    toeplitz: on
    xor: off
    crc32: off
`;
// Current ethtool (netlink/rss.c) adds the input transformation section.
const withXfrm = (sym: 'on' | 'off') => ETHTOOL_ENETC.replace(/\n$/, `\n  RSS input transformation:\n      symmetric-xor: ${sym}\n      symmetric-or-xor: off\n`);

// `ethtool -n DEV rx-flow-hash` (Linux Documentation/networking/device_drivers/ethernet/netronome/nfp.rst,
// the mlx5 RSS-context patch by Joe Damato, and this machine's virtio_net).
const FLOW_TCP4_SDFN = `TCP over IPV4 flows use these fields for computing Hash flow key:
IP SA
IP DA
L4 bytes 0 & 1 [TCP/UDP src port]
L4 bytes 2 & 3 [TCP/UDP dst port]
`;
const FLOW_UDP4_SD = `UDP over IPV4 flows use these fields for computing Hash flow key:
IP SA
IP DA
`;
const FLOW_MLX5_CTX_DA = `For RSS context 1:
TCP over IPV4 flows use these fields for computing Hash flow key:
IP DA
`;
const FLOW_VIRTIO_NONE = `TCP over IPV6 flows use these fields for computing Hash flow key:
None
`;

test('ethtool -x: enetc output parses to its table, 40-byte key and toeplitz', () => {
  const x = parseEthtoolRss(ETHTOOL_ENETC) as EthtoolRss;
  assert.type(x, 'object');
  assert.is(x.ifname, 'eno0');
  assert.is(x.rings, 2);
  assert.is(x.context, 0);
  assert.equal(x.indir, Array.from({ length: 64 }, (_, i) => i & 1));
  assert.is(Buffer.from(x.key!).toString('hex'), '0d1fcb768882ddea70c9ef533ef3bf605c79600932ff88faaa396331efad31e4ac57ecd2094d9a01');
  assert.is(x.hfunc, 'toeplitz');
  assert.equal(x.xfrm, []);
  const cfg = usableRss(x, 'sdfn', 'sdfn');
  assert.type(cfg, 'object');
  // The config drives a selector; its choice agrees with a straight evaluation under that key.
  const c = cfg as Exclude<typeof cfg, string>;
  const sel = new RssPortSelector(c.key, c.indir, { tcp4: c.tcp4, tcp6: c.tcp6 });
  const peer = parseIp4('192.0.2.7'), local = parseIp4('198.51.100.1');
  const p = nextPortForQueue(sel, 1, peer, 80, local, () => false);
  assert.ok(p >= EPHEMERAL_LO);
  assert.is(c.indir[toeplitzRef(c.key, input4(peer, local, 80, p)) & 63], 1);
});

test('ethtool -x: unsupported parts give a reason, not a config', () => {
  const nokey = parseEthtoolRss(ETHTOOL_NOKEY) as EthtoolRss;
  assert.is(nokey.indir!.length, 128);
  assert.is(nokey.indir![127], 7);
  assert.is(nokey.key, null);
  assert.match(usableRss(nokey, 'sdfn', 'sdfn') as string, /no RSS hash key/);

  const virtio = parseEthtoolRss(ETHTOOL_VIRTIO) as EthtoolRss;
  assert.equal([virtio.rings, virtio.indir, virtio.key, virtio.hfunc], [1, null, null, 'toeplitz']);
  assert.match(usableRss(virtio, 'sdfn', 'sdfn') as string, /no RSS indirection table/);

  const doc = parseEthtoolRss(ETHTOOL_KERNEL_DOC) as EthtoolRss;
  assert.equal(doc.indir, [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.is(doc.key!.length, 40);
  assert.is(doc.hfunc, null);
  assert.match(usableRss(doc, 'sdfn', 'sdfn') as string, /hash function is not reported/);

  const xor = parseEthtoolRss(ETHTOOL_MLX_XOR) as EthtoolRss;
  assert.is(xor.hfunc, 'xor');
  assert.match(usableRss(xor, 'sdfn', 'sdfn') as string, /hash function is xor, only toeplitz/);

  assert.match(parseEthtoolRss(ETHTOOL_ONLOAD_CUT) as string, /RSS hash key|output cut/);
  const zero = parseEthtoolRss(ETHTOOL_ONLOAD_CUT.replace(/^\.\.\.\n {2}120:.*\n/m, '')) as EthtoolRss;
  assert.is(zero.indir!.length, 24);
  assert.match(usableRss(zero, 'sdfn', 'sdfn') as string, /not a power of two/);
  assert.match(usableRss({ ...zero, indir: zero.indir!.slice(0, 16) }, 'sdfn', 'sdfn') as string, /all zeros/);

  const sym = parseEthtoolRss(withXfrm('on')) as EthtoolRss;
  assert.equal(sym.xfrm, ['symmetric-xor']);
  assert.match(usableRss(sym, 'sdfn', 'sdfn') as string, /input transformation symmetric-xor/);
  assert.type(usableRss(parseEthtoolRss(withXfrm('off')) as EthtoolRss, 'sdfn', 'sdfn'), 'object');

  assert.match(usableRss(parseEthtoolRss(ETHTOOL_ENETC) as EthtoolRss, 'none', 'none') as string, /fields hashed for TCP are not known/);
  assert.match(usableRss({ ...(parseEthtoolRss(ETHTOOL_ENETC) as EthtoolRss), rings: 1 }, 'sdfn', 'sdfn') as string, /names queue 1 of 1/);
  assert.match(parseEthtoolRss('Cannot get RX ring count: Operation not supported\n') as string, /unexpected ethtool -x output/);
  assert.match(parseEthtoolRss(ETHTOOL_ENETC.replace('0d:1f', '0d:zz')) as string, /unreadable hash key/);
});

test('ethtool -n rx-flow-hash: fields', () => {
  assert.is(parseFlowHashFields(FLOW_TCP4_SDFN), 'sdfn');
  assert.is(parseFlowHashFields(FLOW_UDP4_SD), 'sd');
  assert.is(parseFlowHashFields(FLOW_MLX5_CTX_DA), 'none');
  assert.is(parseFlowHashFields(FLOW_VIRTIO_NONE), 'none');
  assert.is(parseFlowHashFields(''), 'none');
});

test('readRss: through a runner, config or null with the reason', () => {
  const runner = (x: string, f4: string | null, f6: string | null): EthtoolRunner => (args) => {
    if (args[0] === '-x') return { stdout: x, error: '' };
    const f = args[3] === 'tcp4' ? f4 : f6;
    return f === null ? { stdout: null, error: 'Cannot get RX network flow hashing options: Operation not supported' } : { stdout: f, error: '' };
  };
  const cfg = readRss('eno0', undefined, runner(ETHTOOL_ENETC, FLOW_TCP4_SDFN, FLOW_TCP4_SDFN.replace('IPV4', 'IPV6')));
  assert.ok(cfg);
  assert.equal([cfg!.hfunc, cfg!.tcp4, cfg!.tcp6, cfg!.indir.length, cfg!.key.length], ['toeplitz', 'sdfn', 'sdfn', 64, 40]);
  const half = readRss('eno0', undefined, runner(ETHTOOL_ENETC, FLOW_UDP4_SD, null));
  assert.equal([half!.tcp4, half!.tcp6], ['sd', 'none']);
  const why = { reason: '' };
  assert.is(readRss('p1p1', why, runner(ETHTOOL_NOKEY, FLOW_TCP4_SDFN, FLOW_TCP4_SDFN)), null);
  assert.match(why.reason, /p1p1: the device reports no RSS hash key/);
  assert.is(readRss('x', why, () => ({ stdout: null, error: 'Cannot get RX ring count: Operation not supported' })), null);
  assert.is(why.reason, 'ethtool -x x: Cannot get RX ring count: Operation not supported');
  assert.throws(() => readRss('bad name'), /invalid interface name/);
  assert.throws(() => readRss('a'.repeat(16)), /invalid interface name/);
});

test('readRss: ethtool missing from PATH is a reason, not a throw', () => {
  const path = process.env.PATH;
  const why = { reason: '' };
  try {
    process.env.PATH = '/nonexistent';
    assert.is(readRss('lo', why), null);
  } finally {
    process.env.PATH = path;
  }
  assert.match(why.reason, /ethtool is not installed/);
});

// ---- This machine: a veth has no RSS ----
if (canRunPrivileged()) {
  const prefix = labPrefix('qd');
  const a = `${prefix}r0`, b = `${prefix}r1`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  const down = () => { try { ip('link', 'del', a); } catch { /* not there */ } };

  test('veth (4 queues) on this machine: readRss gives null with the reason, and a missing device too', () => {
    down();
    try {
      ip('link', 'add', a, 'numrxqueues', '4', 'numtxqueues', '4', 'type', 'veth', 'peer', 'name', b, 'numrxqueues', '4', 'numtxqueues', '4');
      ip('link', 'set', a, 'up');
      ip('link', 'set', b, 'up');
      const why = { reason: '' };
      assert.is(readRss(a, why), null);
      assert.match(why.reason, new RegExp(`^ethtool -x ${a}: .*Operation not supported`));
      const gone = { reason: '' };
      assert.is(readRss(`${prefix}zz`, gone), null);
      assert.match(gone.reason, /No such device|not found|does not exist/i);
    } finally {
      down();
    }
  });
}

test.run();
