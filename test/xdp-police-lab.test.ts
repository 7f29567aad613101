/**
 * Early shedding in the XDP program: TCP SYNs and ARP for the stack pass a token bucket in the
 * kernel, and what exceeds the configured rate is dropped there (counted as `xdp-syn-policed` /
 * `xdp-arp-policed` in `show counters`) before it takes a slot of the XDP socket's fill ring.
 * Lab part: spoofed SYNs from a kernel peer's AF_XDP generator (driver/build/gen) above the rate,
 * while an established connection from another peer runs an echo loop. Also the config keys.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, sleep } from './lib/rig';
import { createStack, Stack } from '../stack/stack';
import { formatShow } from '../stack/control/format';
import { ConfigError, validateConfig } from '../stack/control/config';
import { DEFAULT_POLICE, gcraParams, resolvePolice } from '../driver/police';

// ---- config: keys, ranges and messages (no privileges needed)

const base = (police: unknown) => ({
  devices: [{ name: 'eth9', driver: 'afxdp', police }],
  virtualServers: [{ name: 'a', links: [{ device: 'eth9', addresses: ['10.9.0.1/24'] }] }],
});

function configError(cfg: unknown): string {
  try {
    validateConfig(cfg);
  } catch (e) {
    assert.instance(e, ConfigError);
    return (e as Error).message;
  }
  return '(accepted)';
}

test('config: police keys of an afxdp device are accepted and checked', () => {
  validateConfig(base({ synRate: 1000, synBurst: 100, arpRate: 0, arpBurst: 1 }));
  validateConfig(base({}));
  assert.match(configError(base({ synRate: -1 })), /devices\[0\]\.police\.synRate: must be 0\.\.1000000000 \(frames per second, 0 = no policing\), got -1/);
  assert.match(configError(base({ arpBurst: 0 })), /devices\[0\]\.police\.arpBurst: must be 1\.\.10000000 \(frames\), got 0/);
  assert.match(configError(base({ synRate: '5k' })), /police\.synRate: must be an integer .* got "5k"/);
  assert.match(configError(base({ synRate: 1.5 })), /police\.synRate: must be an integer/);
  assert.match(configError(base({ icmpRate: 5 })), /police.*icmpRate/);
  assert.match(configError(base(7)), /devices\[0\]\.police/);
  // Only AF_XDP devices have an XDP program.
  assert.match(configError({
    devices: [{ name: 'm0', driver: 'memory', police: { synRate: 5 } }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', addresses: ['10.9.0.1/24'] }] }],
  }), /police/);
});

test('police: defaults, library-level checks and the bucket parameters', () => {
  assert.equal(resolvePolice(), { ...DEFAULT_POLICE });
  assert.ok(DEFAULT_POLICE.synRate > 0 && DEFAULT_POLICE.arpRate > 0, 'policing is on by default');
  assert.is(resolvePolice({ synRate: 0 }).synRate, 0);
  assert.throws(() => resolvePolice({ synBurst: 0 }), /police\.synBurst must be 1\.\./);
  assert.throws(() => resolvePolice({ bogus: 1 } as never), /unknown police key 'bogus'/);
  // 1,000/s: one frame per ms; a burst of 10 = 9 intervals of tolerance; 0 = off.
  assert.equal(gcraParams(1000, 10), { intervalNs: 1_000_000, burstNs: 9_000_000 });
  assert.equal(gcraParams(0, 10), { intervalNs: 0, burstNs: 0 });
});

// ---- lab: a SYN flood above the rate (root)

const PREFIX = labPrefix('xp');
const privileged = canRunPrivileged();
const GEN = path.join(__dirname, '..', '..', 'driver', 'build', 'gen');
const STACK_IP = '10.77.0.1';
const SYN_RATE = 2000;
const SYN_BURST = 200;
const ARP_RATE = 500;
const ARP_BURST = 50;
let lab: Lab;
let stack: Stack;

interface DevRow { driverDrops: { total: number; reasons: Record<string, number> } }
const driverDrops = () => (stack.show('counters') as { devices: DevRow[] }).devices[0]!.driverDrops.reasons;
/** SYNs the stack saw on the echo listener: SYN-queue entries now plus SYN cookies sent. */
function synsSeen(): number {
  const rows = stack.show('limits') as { scope: string; limit: string; used: number; hits: number }[];
  const r = rows.find((x) => x.limit === 'tcpSynQueue' && x.scope.endsWith(':7'));
  return r ? r.used + r.hits : 0;
}

/** Echo loop over one established connection: prints the replies in each 0.1 s since the start. */
const ECHO_PY = `
import socket, sys, time, json
s = socket.create_connection((sys.argv[1], 7), timeout=3)
s.settimeout(2)
t0 = time.time(); bins = [0] * (int(float(sys.argv[2]) * 10) + 20); n = 0; errors = 0
print('connected', flush=True)
while time.time() - t0 < float(sys.argv[2]) and n < 2000000:
    try:
        s.sendall(b'x' * 64)
        got = b''
        while len(got) < 64:
            d = s.recv(64 - len(got))
            if not d: raise ConnectionError('closed')
            got += d
        n += 1
        bins[min(len(bins) - 1, int((time.time() - t0) * 10))] += 1
    except socket.timeout:
        errors += 1
        if errors > 3: break
print(json.dumps({'bins': bins, 'timeouts': errors}))
`;

if (privileged && fs.existsSync(GEN)) {
  test.before(() => {
    lab = labUp({ prefix: PREFIX, peers: [{ ipv4: '10.77.0.2/16' }, { ipv4: '10.77.0.3/16' }] });
    stack = createStack({
      name: `police-${PREFIX}`,
      control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 2048, police: { synRate: SYN_RATE, synBurst: SYN_BURST, arpRate: ARP_RATE, arpBurst: ARP_BURST } }],
      virtualServers: [{ name: 'a', links: [{ device: lab.stackDevice, addresses: [`${STACK_IP}/16`] }] }],
      services: [{ type: 'tcp-echo', vs: 'a', port: 7 }],
    }, { log: () => {} });
    stack.start();
  });
  test.after(() => {
    try { stack?.close(); } finally { labDown(PREFIX); }
  });

  test('SYNs above the rate are shed in XDP and counted; SYNs within it are answered; an established connection keeps working', async () => {
    const [p0, p1] = [lab.peers[0]!, lab.peers[1]!];
    // Warm up ARP both ways with a first connection (not a flood SYN).
    const warm = await nsRun(p0.ns, '/usr/bin/python3', ['-c', ECHO_PY, STACK_IP, '0.3'], { timeout: 15000 });
    assert.is(warm.code, 0, warm.stderr);
    assert.is(driverDrops()['xdp-syn-policed'] ?? 0, 0, 'nothing policed before the flood');
    const seen0 = synsSeen();

    // The echo loop runs 5 s; the flood of spoofed SYNs (10x the rate, at most 2.5 s) starts 1 s in.
    const echo = nsRun(p0.ns, '/usr/bin/python3', ['-u', '-c', ECHO_PY, STACK_IP, '5'], { timeout: 30000 });
    await sleep(1000);
    const t0 = Date.now();
    const gen = await nsRun(p1.ns, GEN, ['eth0', 'syn', lab.stackMac, '10.77.0.3', STACK_IP, '2', '0', String(SYN_RATE * 10), String(SYN_RATE * 25), '7'], { timeout: 30000 });
    const floodS = (Date.now() - t0) / 1000;
    assert.is(gen.code, 0, gen.stdout + gen.stderr);
    const g = JSON.parse(gen.stdout.trim().split('\n').pop()!) as { tx_total: number; rx_total: number };
    await sleep(300);
    const policed = driverDrops()['xdp-syn-policed'] ?? 0;
    const seen = synsSeen() - seen0;

    // The excess was dropped in XDP and counted ...
    assert.ok(g.tx_total > SYN_RATE * 3, `generator sent ${g.tx_total} SYNs`);
    assert.ok(policed > 0, `xdp-syn-policed ${policed} after ${g.tx_total} SYNs`);
    // ... what passed is within the rate (burst plus rate x the time the flood can have lasted) ...
    assert.ok(seen <= SYN_BURST + SYN_RATE * (floodS + 0.5), `the stack saw ${seen} SYNs in ${floodS} s`);
    assert.ok(policed + seen <= g.tx_total, `policed ${policed} + seen ${seen} <= sent ${g.tx_total}`);
    // ... and the SYNs within it were answered (SYN-ACKs, with cookies once the queue is full).
    assert.ok(seen > 0, 'the stack saw SYNs within the rate');
    assert.ok(g.rx_total > 0, `the generator got ${g.rx_total} answers`);

    // The established connection kept working during the flood and after it.
    const e = await echo;
    assert.is(e.code, 0, e.stdout + e.stderr);
    const r = JSON.parse(e.stdout.trim().split('\n').pop()!) as { bins: number[]; timeouts: number };
    const sum = (from: number, to: number) => r.bins.slice(Math.ceil(from * 10), Math.floor(to * 10)).reduce((a, b) => a + b, 0);
    const during = sum(1.2, 1 + floodS);
    const after = sum(1 + floodS + 0.3, 5);
    assert.ok(during > 0, `echo replies during the flood: ${during}`);
    assert.ok(after > 0, `echo replies after the flood: ${after}`);

    // Operators see the reason in `show counters`.
    assert.match(formatShow('counters', stack.show('counters')).join('\n'), /xdp-syn-policed/);
  });

  test('SYNs inside IPIP and IPv6-in-IPv4 (a load balancer\'s encapsulation) pass the same policer', async () => {
    const p1 = lab.peers[1]!;
    const before = driverDrops()['xdp-syn-policed'] ?? 0;
    // 3000 encapsulated SYNs of each kind, as fast as a raw socket sends them (well above 2000/s);
    // the kernel writes the outer header (protocol 4 or 41), the inner one is ours.
    const py = `
import socket, struct, sys, time, json
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def syn4(i):
    tcp = struct.pack('!HHIIBBHHH', 1024 + i % 60000, 80, i, 0, 5 << 4, 0x02, 65535, 0, 0)
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, i & 0xffff, 0, 64, 6, 0, socket.inet_aton('203.0.113.9'), socket.inet_aton('198.51.100.10'))
    return ip[:10] + struct.pack('!H', csum(ip)) + ip[12:] + tcp
def syn6(i):
    tcp = struct.pack('!HHIIBBHHH', 1024 + i % 60000, 80, i, 0, 5 << 4, 0x02, 65535, 0, 0)
    return struct.pack('!IHBB16s16s', 6 << 28, 20, 6, 64, socket.inet_pton(socket.AF_INET6, '2001:db8::9'), socket.inet_pton(socket.AF_INET6, '2001:db8::10')) + tcp
out = {}
t0 = time.time()
for proto, make in ((4, syn4), (41, syn6)):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    n = 0
    for i in range(3000):
        try:
            s.sendto(make(i), (sys.argv[1], 0)); n += 1
        except BlockingIOError:
            pass
    out[str(proto)] = n
out['seconds'] = time.time() - t0
print(json.dumps(out))
`;
    const r = await nsRun(p1.ns, '/usr/bin/python3', ['-c', py, STACK_IP], { timeout: 30000 });
    assert.is(r.code, 0, r.stderr);
    const sent = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
    await sleep(300);
    const policed = (driverDrops()['xdp-syn-policed'] ?? 0) - before;
    const total = sent['4']! + sent['41']!;
    assert.ok(total >= 5000, `sent ${JSON.stringify(sent)}`);
    // What passed is at most the burst plus the rate over the time it took (and a margin).
    assert.ok(policed >= total - (SYN_BURST + SYN_RATE * (sent.seconds! + 0.5)), `policed ${policed} of ${total} in ${sent.seconds} s`);
    assert.ok(policed <= total, `policed ${policed} <= sent ${total}`);
  });

  test('ARP above the rate is shed in XDP and counted; the stack still answers its peers', async () => {
    const [p0, p1] = [lab.peers[0]!, lab.peers[1]!];
    const before = driverDrops()['xdp-arp-policed'] ?? 0;
    // 1 s of ARP from spoofed senders (requests for the stack's address and replies to its MAC), 10x the rate.
    const gen = await nsRun(p1.ns, GEN, ['eth0', 'arp', lab.stackMac, '10.77.0.3', STACK_IP, '1', '0', String(ARP_RATE * 10), String(ARP_RATE * 15)], { timeout: 30000 });
    assert.is(gen.code, 0, gen.stdout + gen.stderr);
    const g = JSON.parse(gen.stdout.trim().split('\n').pop()!) as { tx_total: number };
    await sleep(300);
    const policed = (driverDrops()['xdp-arp-policed'] ?? 0) - before;
    assert.ok(policed > 0, `xdp-arp-policed ${policed} after ${g.tx_total} ARP frames`);
    assert.ok(policed < g.tx_total, `some of the ${g.tx_total} ARP frames passed (${policed} policed)`);
    // A peer whose ARP entry is gone asks again and gets an answer once the flood is over.
    await nsRun(p0.ns, 'ip', ['neigh', 'flush', 'all']);
    const r = await nsRun(p0.ns, '/usr/bin/python3', ['-c', ECHO_PY, STACK_IP, '0.3'], { timeout: 15000 });
    assert.is(r.code, 0, r.stderr);
    assert.match(formatShow('counters', stack.show('counters')).join('\n'), /xdp-arp-policed/);
  });
}

test.run();
