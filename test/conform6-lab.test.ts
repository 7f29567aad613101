/**
 * IPv6/ICMPv6 conformance against a kernel peer over AF_XDP (scapy in the peer's namespace, the
 * peer kernel's ICMPv6 input counters as the witness): what regress-ipv6-conformance.test.ts checks
 * at the engine, seen from Linux's side.
 *
 * - A lone first fragment: Time Exceeded code 1 when reassembly times out (RFC 8200 4.5;
 *   Icmp6InTimeExcds); a lone later fragment: none. The engine's reassembly timeout is 2 s here.
 * - A packet of an unknown next header that came in fragments: Parameter Problem once reassembled
 *   (RFC 8200 4; Icmp6InParmProblems), as for one that came whole.
 * Frames go to the stack's MAC with sendp (scapy's own neighbor lookup would broadcast them, and
 * the XDP program leaves unicast IPv6 in a broadcast frame to the host).
 * Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, Rig, startRig, waitFor, sleep } from './lib/rig';

const PREFIX = labPrefix('n2');
let lab: Lab;
let rig: Rig;

/** The peer kernel's ICMPv6 input counters (/proc/net/snmp6). */
async function icmp6In(ns: string): Promise<Record<string, number>> {
  const r: Record<string, number> = {};
  for (const l of (await nsRun(ns, 'cat', ['/proc/net/snmp6'])).stdout.split('\n')) {
    const m = /^(Icmp6\w+)\s+(\d+)/.exec(l);
    if (m) r[m[1]!] = Number(m[2]);
  }
  return r;
}

/** Runs a scapy script in the peer's namespace; it prints 'ok' when it sent everything. */
async function scapy(body: string): Promise<void> {
  const p = lab.peers[0]!;
  const py = ['from scapy.all import *', 'conf.verb = 0', `PM, SM, IF = '${p.mac}', '${lab.stackMac}', '${p.ifname}'`, body, "print('ok')"].join('\n');
  const r = await nsRun(lab.peers[0]!.ns, '/usr/bin/python3', ['-c', py], { timeout: 30_000 });
  assert.is(r.code, 0, `scapy: ${r.stderr}`);
  assert.is(r.stdout.trim(), 'ok');
}

/** Ethernet to the stack's MAC (scapy's own IPv6 neighbor lookup would broadcast), then IPv6 from the peer to the stack. */
const IP6 = "Ether(src=PM, dst=SM)/IPv6(src='fd00:99::2', dst='fd00:99::1')";

if (canRunPrivileged()) {
  test.before(async () => {
    lab = labUp({ prefix: PREFIX, peers: [{ vlan: 10, ipv6: 'fd00:99::2/64' }] });
    rig = startRig(lab.stackDevice, 4096, { reassembly: { timeoutUs: 2_000_000 }, ndp: { dadTransmits: 0 } });
    const vs = rig.engine.createVs('conform6');
    rig.engine.addLink(vs, { device: lab.stackDevice, vlan: 10 });
    rig.engine.addAddress(vs, `${lab.stackDevice}.10`, 'fd00:99::1/64');
    // The peer reaches us (its kernel resolves us by NDP) before the cases run.
    const ok = await waitFor(async () => (await nsRun(lab.peers[0]!.ns, 'ping', ['-6', '-c', '1', '-w', '1', 'fd00:99::1'])).code === 0, 10_000);
    assert.ok(ok, 'the peer reaches the stack');
  });
  test.after(() => {
    rig?.close();
    labDown(PREFIX);
  });

  test('a lone first fragment: Time Exceeded code 1 after the reassembly timeout; a lone later one: none', async () => {
    const ns = lab.peers[0]!.ns;
    const before = (await icmp6In(ns)).Icmp6InTimeExcds!;
    await scapy(`sendp(${IP6}/IPv6ExtHdrFragment(id=0x4242, m=1, offset=0, nh=17)/UDP(sport=5555, dport=7)/Raw(b'x' * 64), iface=IF)\n` +
      `sendp(${IP6}/IPv6ExtHdrFragment(id=0x4343, m=1, offset=9, nh=17)/Raw(b'y' * 64), iface=IF)`);
    assert.ok(await waitFor(async () => (await icmp6In(ns)).Icmp6InTimeExcds! > before, 8_000), 'Time Exceeded received');
    await sleep(2500);
    assert.is((await icmp6In(ns)).Icmp6InTimeExcds! - before, 1, 'one, for the datagram whose first fragment came');
  });

  test('a reassembled packet of an unknown next header: Parameter Problem', async () => {
    const ns = lab.peers[0]!.ns;
    const before = (await icmp6In(ns)).Icmp6InParmProblems!;
    await scapy(`sendp(${IP6}/IPv6ExtHdrFragment(id=0x5151, m=1, offset=0, nh=200)/Raw(b'a' * 32), iface=IF)\n` +
      `sendp(${IP6}/IPv6ExtHdrFragment(id=0x5151, m=0, offset=4, nh=200)/Raw(b'b' * 32), iface=IF)`);
    assert.ok(await waitFor(async () => (await icmp6In(ns)).Icmp6InParmProblems! > before, 5_000), 'Parameter Problem received');
  });

  test('every frame accounted for', async () => {
    await sleep(200);
    assert.is(rig.driver.pool.check().held, 0);
  });
}

test.run();
