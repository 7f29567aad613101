/**
 * IPv4/ICMP conformance against a kernel peer over AF_XDP (the peer's own tools and scapy): what
 * the engine-level cases of regress-ipv4-conformance.test.ts check, seen from Linux's side.
 *
 * - `ping -R`: the reply carries the Record Route option with our address (RFC 1122 3.2.2.6).
 * - A lone first fragment: Time Exceeded code 1 when reassembly times out (RFC 1122 3.3.2); the
 *   peer's kernel counts it (InTimeExcds). The engine's reassembly timeout is shortened to 2 s.
 * - A malformed option: Parameter Problem (InParmProbs).
 * - ICMP Timestamp: answered with the originate timestamp and the time in ms since midnight UT,
 *   within a second of the peer's clock (the same machine's).
 * - UDP to a closed port in a frame to the Ethernet broadcast: no port unreachable (RFC 1122
 *   3.2.2), while the same datagram to our MAC gets one (InDestUnreachs).
 * Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, Rig, startRig, waitFor, sleep } from './lib/rig';

const PREFIX = labPrefix('n1');
let lab: Lab;
let rig: Rig;

/** The peer kernel's ICMP input counters (/proc/net/snmp). */
async function icmpIn(ns: string): Promise<Record<string, number>> {
  const lines = (await nsRun(ns, 'cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Icmp:'));
  const names = lines[0]!.split(/\s+/);
  const vals = lines[1]!.split(/\s+/);
  const r: Record<string, number> = {};
  names.forEach((n, i) => { if (i > 0) r[n] = Number(vals[i]); });
  return r;
}

/** Runs a scapy script in the peer's namespace; it prints 'ok' when it sent everything. */
async function scapy(body: string): Promise<void> {
  const py = ['from scapy.all import *', 'conf.verb = 0', body, "print('ok')"].join('\n');
  const r = await nsRun(lab.peers[0]!.ns, '/usr/bin/python3', ['-c', py], { timeout: 30_000 });
  assert.is(r.code, 0, `scapy: ${r.stderr}`);
  assert.is(r.stdout.trim(), 'ok');
}

if (canRunPrivileged()) {
  test.before(() => {
    lab = labUp({ prefix: PREFIX, peers: [{ vlan: 10, ipv4: '10.1.1.2/24' }] });
    rig = startRig(lab.stackDevice, 4096, { reassembly: { timeoutUs: 2_000_000 } });
    const vs = rig.engine.createVs('conform');
    rig.engine.addLink(vs, { device: lab.stackDevice, vlan: 10 });
    rig.engine.addAddress(vs, `${lab.stackDevice}.10`, '10.1.1.1/24');
    const s = rig.engine.createUdpSocket(vs);
    s.bind(7);
    s.on('message', (m: Buffer, r) => s.send(m, r.port, r.address));
  });
  test.after(() => {
    rig?.close();
    labDown(PREFIX);
  });

  test('ping -R: the echo reply carries Record Route with our address', async () => {
    const r = await nsRun(lab.peers[0]!.ns, 'ping', ['-c', '1', '-R', '-w', '5', '10.1.1.1']);
    assert.is(r.code, 0, r.stdout + r.stderr);
    assert.ok(r.stdout.includes('RR:'), `a route recorded: ${r.stdout}`);
    // The RR block: 'RR:' then one address per line, up to the blank line.
    const rr = r.stdout.slice(r.stdout.indexOf('RR:') + 3).split('\n\n')[0]!.split('\n').map((l) => l.trim()).filter((l) => l);
    assert.equal(rr, ['10.1.1.2', '10.1.1.1', '10.1.1.1', '10.1.1.2'], 'the peer out, ours as the request came and as the reply left, the peer in');
  });

  test('a lone first fragment: Time Exceeded code 1 after the reassembly timeout', async () => {
    const ns = lab.peers[0]!.ns;
    const before = (await icmpIn(ns)).InTimeExcds!;
    await scapy("send(IP(src='10.1.1.2', dst='10.1.1.1', id=4242, flags='MF')/UDP(sport=5555, dport=7)/Raw(b'x' * 64))");
    assert.ok(await waitFor(async () => (await icmpIn(ns)).InTimeExcds! > before, 8_000), 'Time Exceeded received');
    await sleep(500);
    assert.is((await icmpIn(ns)).InTimeExcds! - before, 1, 'one');
  });

  test('a malformed IPv4 option: Parameter Problem', async () => {
    const ns = lab.peers[0]!.ns;
    const before = (await icmpIn(ns)).InParmProbs!;
    // Record Route with a pointer of 3 (at least 4: RFC 791 3.1).
    await scapy("send(IP(src='10.1.1.2', dst='10.1.1.1', options=[IPOption(b'\\x07\\x07\\x03\\x00\\x00\\x00\\x00\\x00')])/UDP(sport=5555, dport=7)/Raw(b'bad'))");
    assert.ok(await waitFor(async () => (await icmpIn(ns)).InParmProbs! > before, 5_000), 'Parameter Problem received');
  });

  test('ICMP Timestamp: the reply carries our originate timestamp and the time since midnight UT', async () => {
    const py = [
      'from scapy.all import *', 'import time, json', 'conf.verb = 0',
      't = int(time.time() * 1000) % 86400000',
      "r = sr1(IP(dst='10.1.1.1')/ICMP(type=13, id=0x3434, seq=9, ts_ori=t, ts_rx=0, ts_tx=0), timeout=5)",
      "print(json.dumps(None if r is None else {'type': r[ICMP].type, 'id': r[ICMP].id, 'seq': r[ICMP].seq, 'ori': r[ICMP].ts_ori, 'rx': r[ICMP].ts_rx, 'tx': r[ICMP].ts_tx, 'now': int(time.time() * 1000) % 86400000, 't': t}))",
    ].join('\n');
    const r = await nsRun(lab.peers[0]!.ns, '/usr/bin/python3', ['-c', py], { timeout: 30_000 });
    assert.is(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout.trim()) as { type: number; id: number; seq: number; ori: number; rx: number; tx: number; now: number; t: number } | null;
    assert.ok(got, 'a reply');
    assert.equal([got!.type, got!.id, got!.seq, got!.ori], [14, 0x3434, 9, got!.t]);
    // (Modulo a day: midnight may pass between the two readings.)
    const ahead = (got!.rx - got!.t + 86_400_000 + 1000) % 86_400_000;
    const span = (got!.now - got!.t + 86_400_000) % 86_400_000;
    assert.ok(ahead <= span + 2000, `receive ${got!.rx} within [${got!.t}, ${got!.now}] (±1 s)`);
    assert.is(got!.tx, got!.rx);
  });

  test('UDP to a closed port: no port unreachable about a link-layer broadcast frame, one about a unicast frame', async () => {
    const p = lab.peers[0]!;
    const before = (await icmpIn(p.ns)).InDestUnreachs!;
    await scapy(`sendp(Ether(src='${p.mac}', dst='ff:ff:ff:ff:ff:ff')/IP(src='10.1.1.2', dst='10.1.1.1')/UDP(sport=5555, dport=9)/Raw(b'b'), iface='${p.ifname}')`);
    await sleep(1000);
    assert.is((await icmpIn(p.ns)).InDestUnreachs! - before, 0, 'not about a broadcast frame');
    await scapy(`sendp(Ether(src='${p.mac}', dst='${lab.stackMac}')/IP(src='10.1.1.2', dst='10.1.1.1')/UDP(sport=5555, dport=9)/Raw(b'u'), iface='${p.ifname}')`);
    assert.ok(await waitFor(async () => (await icmpIn(p.ns)).InDestUnreachs! > before, 5_000), 'port unreachable about a unicast frame');
  });

  test('every frame accounted for', async () => {
    await sleep(200);
    assert.is(rig.driver.pool.check().held, 0);
  });
}

test.run();
