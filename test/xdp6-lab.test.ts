/**
 * The XDP program's IPv6 rules against kernel peers in the lab (prefix 'x6'): the stack gets the
 * IPv6 frames it owns (packets to its unicast addresses through its MAC, NS/NA about them to their
 * solicited-node group or to all-nodes, over untagged, 802.1Q and 802.1ad), and the host keeps
 * every other IPv6 frame: its own addresses (also one sharing a solicited-node group with the
 * stack's), its link-local NDP, other VLANs, other multicast. Also the lab's IPv6 set-up (default
 * addresses, no router discovery, DAD on request). Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { canRunPrivileged, labPrefix } from './lib/env';
import { Collector, collect } from './lib/collect';
import { nsRun, RunResult } from './lib/rig';
import { privilegedTest } from './lib/lab-stack';
import { labDown, labUp, Lab, peerIpv6State, waitPeerIpv6 } from '../stack/lab/lab';
import { openAfxdp, AfxdpDriver } from '../driver/afxdp';
import { parseMac } from '../driver/types';
import { addrToString, ip6At, linkLocalFromMac, parseIp6 } from '../protocols/ip/addr';

const PREFIX = labPrefix('x6');
const privileged = canRunPrivileged();
/** Registers a test only where it can run (as root): elsewhere the file reports fewer tests. */
const ptest = privilegedTest(privileged);
const HOST6 = 'fd00:6::5:0:1'; // the host's own address: same solicited-node group as the stack's fd00:6::1
let lab: Lab;

/** The IPv6 view of a received frame (after up to two VLAN tags), or null when it is not IPv6. */
interface V6 { vlan: number; tags: number; dst: string; src: string; nh: number; type: number; target: string; data: Buffer }
function v6(f: Buffer): V6 | null {
  let o = 12;
  let vlan = 0;
  let tags = 0;
  for (let k = 0; k < 2 && o + 4 <= f.length; k++) {
    const t = f.readUInt16BE(o);
    if (t !== 0x8100 && t !== 0x88a8) break;
    vlan = f.readUInt16BE(o + 2) & 0x0fff;
    tags++;
    o += 4;
  }
  if (o + 2 + 40 > f.length || f.readUInt16BE(o) !== 0x86dd) return null;
  const ip = o + 2;
  const nh = f[ip + 6]!;
  const l4 = ip + 40;
  const type = nh === 58 && f.length > l4 ? f[l4]! : -1;
  const target = (type === 135 || type === 136) && f.length >= l4 + 24 ? addrToString(ip6At(f, l4 + 8)) : '';
  return { vlan, tags, dst: addrToString(ip6At(f, ip + 24)), src: addrToString(ip6At(f, ip + 8)), nh, type, target, data: f.subarray(l4) };
}
const canon = (a: string) => addrToString(parseIp6(a));
/** An NS (135) / NA (136) about `target`. */
const isNd = (type: number, target: string, vlan?: number) => (f: Buffer) => {
  const x = v6(f);
  return !!x && x.type === type && x.target === canon(target) && (vlan === undefined || x.vlan === vlan);
};
/** An ICMPv6 echo request to `dst`. */
const isEcho = (dst: string, vlan?: number) => (f: Buffer) => {
  const x = v6(f);
  return !!x && x.type === 128 && x.dst === canon(dst) && (vlan === undefined || x.vlan === vlan);
};

/** Whether the stack's device has IFF_ALLMULTI. */
const allmulti = () => (parseInt(fs.readFileSync(`/sys/class/net/${lab.stackDevice}/flags`, 'utf8'), 16) & 0x200) !== 0;

function open(): AfxdpDriver {
  return openAfxdp({ ifname: lab.stackDevice, frameCount: 1024, log: () => {} });
}

/** Runs a command in the root namespace without blocking the event loop. Never throws. */
function hostRun(cmd: string, args: string[], timeout = 20000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The link-local address of `dev` (in namespace `ns`, or the root one). */
async function linkLocal(dev: string, ns?: string): Promise<string> {
  const args = ['-j', '-6', 'addr', 'show', 'dev', dev, 'scope', 'link'];
  const r = ns ? await nsRun(ns, 'ip', args) : await hostRun('ip', args);
  const a = (JSON.parse(r.stdout) as Array<{ addr_info: Array<{ local?: string }> }>)[0]?.addr_info.find((x) => x.local)?.local;
  assert.ok(a, `${dev} has a link-local address`);
  return a!;
}

/** A static neighbour entry on peer i: its kernel sends to `addr` through the stack's MAC without asking. */
async function staticNeighbor(i: number, addr: string): Promise<void> {
  const r = await nsRun(lab.peers[i]!.ns, 'ip', ['-6', 'neigh', 'replace', addr, 'lladdr', lab.stackMac, 'dev', 'eth0', 'nud', 'permanent']);
  assert.is(r.code, 0, r.stderr);
}

const ping6 = (i: number, dst: string, n: number, waitS = 1) =>
  nsRun(lab.peers[i]!.ns, 'ping', ['-6', '-n', '-c', String(n), '-i', '0.2', '-W', String(waitS), dst], { timeout: (n + waitS + 5) * 1000 });

if (privileged) test.before(() => {
  lab = labUp({
    prefix: PREFIX, hostIpv6: `${HOST6}/64`,
    peers: [
      { ipv6: 'fd00:6::2/64' }, // 0: untagged (a prefix the machine's own network does not use)
      { vlan: 7, ipv6: true }, // 1: fd00:7::2
      { vlan: 8, ipv6: 'fd00:7::2/64' }, // 2: the same address as peer 1, on VLAN 8
      { vlan: 7, ipv6: 'fd00:7::2/64', dad: true }, // 3: DAD on, against peer 1's address
    ],
  });
});

if (privileged) test.after(() => {
  labDown(PREFIX);
});

ptest('lab: default IPv6 addresses per VLAN, no router discovery, DAD when asked for', async () => {
  assert.equal(lab.peers.map((p) => [p.ipv6, p.stackIpv6]), [
    ['fd00:6::2/64', 'fd00:6::1/64'], ['fd00:7::2/64', 'fd00:7::1/64'], ['fd00:7::2/64', 'fd00:7::1/64'], ['fd00:7::2/64', 'fd00:7::1/64'],
  ]);
  assert.is(lab.hostIpv6, `${HOST6}/64`);
  for (const i of [0, 1]) {
    const r = await nsRun(lab.peers[i]!.ns, 'sysctl', ['-n', 'net.ipv6.conf.eth0.accept_ra', 'net.ipv6.conf.eth0.router_solicitations', 'net.ipv6.conf.eth0.accept_dad']);
    assert.equal(r.stdout.trim().split('\n'), ['0', '0', '0'], `peer ${i}: no RA, no RS, no DAD`);
    assert.is(await peerIpv6State(lab, i), 'ready', `peer ${i}'s address is usable at once (nodad)`);
  }
  // Peer 3 ran DAD for the address peer 1 holds on the same VLAN: peer 1 defended it.
  assert.is(await waitPeerIpv6(lab, 3, 8000), 'dadfailed');
  assert.is(lab.peers[3]!.dad, true);
  // The host side: its own address, a random link-local (not the EUI-64 one of the stack's MAC),
  // neither accepting nor sending router discovery messages.
  const conf = (k: string) => fs.readFileSync(`/proc/sys/net/ipv6/conf/${lab.stackDevice}/${k}`, 'utf8').trim();
  assert.equal(['accept_ra', 'router_solicitations', 'forwarding'].map(conf), ['0', '0', '0']);
  const hostLl = await linkLocal(lab.stackDevice);
  assert.is.not(canon(hostLl), addrToString(linkLocalFromMac(parseMac(lab.stackMac))));
  // A Router Solicitation from a peer gets no advertisement from the host side (RFC 4861 6.2.6: only routers answer).
  const rd = await nsRun(lab.peers[0]!.ns, 'rdisc6', ['-1', '-r', '1', '-w', '1500', 'eth0'], { timeout: 10000 });
  assert.is.not(rd.code, 0, `rdisc6 got an answer: ${rd.stdout}`);
});

ptest('IPv6 to an owned address on a VLAN is redirected; other addresses, VLANs and a released address are passed', async () => {
  const d = open();
  try {
    const mac = parseMac(lab.stackMac);
    d.ownMac(mac, 7, true);
    d.ownMac(mac, 8, true);
    assert.is(allmulti(), false);
    d.own(parseIp6('fd00:7::1'), 7, true);
    assert.is(allmulti(), true, 'the device receives all multicast (the solicited-node groups) while the stack owns IPv6 addresses');

    // (1) The peer's NS for the owned address, to its solicited-node group, tagged 7.
    let p = ping6(1, 'fd00:7::1', 1);
    let got = await collect(d, isNd(135, 'fd00:7::1'), 1, 5000);
    await p;
    assert.ok(got.length >= 1, 'NS for fd00:7::1 redirected');
    let x = v6(got[0]!)!;
    assert.is(x.vlan, 7);
    assert.is(x.dst, 'ff02::1:ff00:1');
    assert.equal([...got[0]!.subarray(0, 6)], [0x33, 0x33, 0xff, 0, 0, 1]);

    // (2) Unicast echo requests to it through the stack's MAC.
    await staticNeighbor(1, 'fd00:7::1');
    await staticNeighbor(1, 'fd00:7::99');
    p = ping6(1, 'fd00:7::1', 3);
    got = await collect(d, isEcho('fd00:7::1'), 3, 6000);
    await p;
    assert.is(got.length, 3, 'three echo requests redirected');
    x = v6(got[0]!)!;
    assert.is(x.vlan, 7);
    assert.is(x.src, 'fd00:7::2');
    assert.equal(got[0]!.subarray(0, 6), Buffer.from(mac));

    // (3) The stack's MAC, an address it does not own: the host's.
    let before = d.programCounters().passed;
    p = ping6(1, 'fd00:7::99', 2);
    got = await collect(d, isEcho('fd00:7::99'), 1, 2500);
    await p;
    assert.is(got.length, 0, 'not owned: passed');
    assert.ok(d.programCounters().passed >= before + 2, 'counted as passed');

    // (4) The same address on VLAN 8 (the stack owns its MAC there, not the address).
    await staticNeighbor(2, 'fd00:7::1');
    p = ping6(2, 'fd00:7::1', 2);
    got = await collect(d, isEcho('fd00:7::1'), 1, 2500);
    await p;
    assert.is(got.length, 0, 'other VLAN: passed');

    // (5) Owned twice (two links), released once: still redirected; released again: passed.
    d.own(parseIp6('fd00:7::1'), 7, true);
    d.own(parseIp6('fd00:7::1'), 7, false);
    p = ping6(1, 'fd00:7::1', 1);
    got = await collect(d, isEcho('fd00:7::1', 7), 1, 4000);
    await p;
    assert.is(got.length, 1, 'one owner left: still redirected');
    d.own(parseIp6('fd00:7::1'), 7, false);
    before = d.programCounters().passed;
    p = ping6(1, 'fd00:7::1', 2);
    got = await collect(d, isEcho('fd00:7::1'), 1, 2500);
    await p;
    assert.is(got.length, 0, 'no owner left: passed');
    assert.ok(d.programCounters().passed >= before + 2);
    assert.is(allmulti(), false, 'no IPv6 address owned: allmulticast off again');
    d.service(Date.now() * 1000);
    assert.equal(d.pool.check(), { free: 512, kernel: 512, tx: 0, held: 0, total: 1024 });
  } finally {
    d.close();
  }
});

ptest("the host's own IPv6 traffic on the stack's device and MAC passes while the stack is attached", async () => {
  const d = open();
  const c = new Collector(d, (f) => v6(f) !== null);
  try {
    d.ownMac(parseMac(lab.stackMac), 0, true);
    d.own(parseIp6('fd00:6::1'), 0, true); // its group ff02::1:ff00:1 is also the host's (fd00:6::5:0:1)
    const dev = lab.stackDevice;
    const peer = lab.peers[0]!;
    const hostLl = await linkLocal(dev);
    const peerLl = await linkLocal('eth0', peer.ns);
    await nsRun(peer.ns, 'ip', ['-6', 'neigh', 'flush', 'dev', 'eth0']);

    // Peer → host's global address: NS to the shared group (target the host's), then echo.
    let r = await ping6(0, HOST6, 2, 2);
    assert.is(r.code, 0, `peer → host ${HOST6}: ${r.stdout}${r.stderr}`);
    // Host → peer, global and link-local, and peer → host link-local.
    r = await hostRun('ping', ['-6', '-n', '-c', '2', '-i', '0.2', '-W', '2', '-I', dev, 'fd00:6::2']);
    assert.is(r.code, 0, `host → peer fd00:6::2: ${r.stdout}${r.stderr}`);
    r = await hostRun('ping', ['-6', '-n', '-c', '2', '-i', '0.2', '-W', '2', `${peerLl}%${dev}`]);
    assert.is(r.code, 0, `host → peer ${peerLl}: ${r.stdout}${r.stderr}`);
    r = await ping6(0, `${hostLl}%eth0`, 2, 2);
    assert.is(r.code, 0, `peer → host ${hostLl}: ${r.stdout}${r.stderr}`);
    // ndisc6 (RFC 4861 NS/NA) from the peer for the host's address is answered by the host.
    r = await nsRun(peer.ns, 'ndisc6', ['-1', '-r', '2', '-w', '1000', HOST6, 'eth0'], { timeout: 10000 });
    assert.is(r.code, 0, `ndisc6 ${HOST6}: ${r.stdout}${r.stderr}`);

    // Meanwhile the stack's own address in the same group is the stack's: NS for it redirected.
    const p = ping6(0, 'fd00:6::1', 1);
    await c.wait(1, 5000);
    await p;
    const frames = c.stop().map((f) => v6(f)!);
    assert.ok(frames.some((x) => x.type === 135 && x.target === 'fd00:6::1'), 'NS for the stack address redirected');
    const host = new Set([canon(HOST6), canon(hostLl), 'fd00:6::2', canon(peerLl)]);
    const leaked = frames.filter((x) => x.target !== 'fd00:6::1' && (host.has(x.dst) || host.has(x.target)));
    assert.equal(leaked.map((x) => `${x.src} > ${x.dst} type ${x.type} ${x.target}`), [], "none of the host's frames reached the stack");
  } finally {
    c.stop();
    d.close();
  }
  assert.is(allmulti(), false, 'allmulticast off after the last queue closed');
});

ptest('crafted frames: all-nodes NA for an owned target, 802.1ad tags; other NDP, multicast, MACs and VLANs passed', async () => {
  const d = open();
  const c = new Collector(d, (f) => v6(f) !== null);
  try {
    const mac = parseMac(lab.stackMac);
    d.ownMac(mac, 0, true);
    d.ownMac(mac, 7, true);
    d.own(parseIp6('fd00:6::1'), 0, true);
    d.own(parseIp6('fd00:7::1'), 7, true);
    const pm = lab.peers[0]!.mac;
    const sm = lab.stackMac;
    const py = [
      'from scapy.all import *',
      "from scapy.layers.l2 import Dot1AD",
      `E = lambda dst='${sm}': Ether(src='${pm}', dst=dst)`,
      "def echo(tag, dst='fd00:6::1'): return IPv6(src='fd00:6::2', dst=dst)/ICMPv6EchoRequest(data=b'x6-' + tag.encode())",
      'na = lambda t: IPv6(src=\'fd00:6::2\', dst=\'ff02::1\', hlim=255)/ICMPv6ND_NA(tgt=t, R=0, S=0, O=1)',
      'fs = [',
      // redirected: an unsolicited NA about the stack's address (RFC 4861 7.2.6), to all-nodes
      "  E('33:33:00:00:00:01')/na('fd00:6::1'),",
      // redirected: 802.1ad outer tag only (id 7), and 802.1ad 100 + 802.1Q 7
      "  E()/Dot1AD(vlan=7)/echo('ad7', 'fd00:7::1'),",
      "  E()/Dot1AD(vlan=100)/Dot1Q(vlan=7)/echo('qinq7', 'fd00:7::1'),",
      // passed: NA about another address; NS in the shared group for the host's address
      "  E('33:33:00:00:00:01')/na('fd00:6::77'),",
      `  E('33:33:ff:00:00:01')/IPv6(src='fd00:6::2', dst='ff02::1:ff00:1', hlim=255)/ICMPv6ND_NS(tgt='${HOST6}'),`,
      // passed: a non-NDP packet to all-nodes, a Router Advertisement, an MLD query
      "  E('33:33:00:00:00:01')/IPv6(src='fd00:6::2', dst='ff02::1')/ICMPv6EchoRequest(data=b'x6-allnodes'),",
      "  E('33:33:00:00:00:01')/IPv6(src='fe80::2', dst='ff02::1', hlim=255)/ICMPv6ND_RA(),",
      "  E('33:33:00:00:00:01')/IPv6(src='fe80::2', dst='ff02::1', hlim=1)/ICMPv6MLQuery(),",
      // passed: the owned address through another MAC, on another VLAN, over an 802.1ad id not owned
      "  E('02:00:00:00:00:99')/echo('othermac'),",
      "  E()/Dot1Q(vlan=8)/echo('vlan8', 'fd00:7::1'),",
      "  E()/Dot1AD(vlan=9)/echo('ad9', 'fd00:7::1'),",
      // passed: a truncated IPv6 header
      `  Ether(src='${pm}', dst='${sm}', type=0x86dd)/Raw(b'\\x60' + bytes(19)),`,
      ']',
      "sendp(fs, iface='eth0', verbose=False)",
      "print('sent', len(fs))",
    ].join('\n');
    const before = d.programCounters();
    const r = await nsRun(lab.peers[0]!.ns, '/usr/bin/python3', ['-c', py], { timeout: 60000 });
    assert.is(r.code, 0, `scapy: ${r.stderr}`);
    assert.is(r.stdout.trim(), 'sent 12');
    await c.wait(3, 3000);
    await new Promise((res) => setTimeout(res, 500)); // anything redirected by mistake arrives too
    // The peer's kernel may probe its stale entry for fd00:6::1 (NUD, RFC 4861 7.3.3: a unicast NS
    // about an owned address, rightly redirected) while scapy sends: not one of the crafted frames.
    const frames = c.stop().map((f) => v6(f)!).filter((x) => (x.src === 'fd00:6::2' || x.src === 'fe80::2') && !(x.type === 135 && x.target === 'fd00:6::1'));
    const names = frames.map((x) => (x.type === 128 ? x.data.subarray(8).toString() : `${x.type === 136 ? 'NA' : x.type === 135 ? 'NS' : x.type} ${x.target}`));
    assert.equal(names.sort(), ['NA fd00:6::1', 'x6-ad7', 'x6-qinq7'].sort());
    const ad7 = frames.find((x) => x.data.subarray(8).toString() === 'x6-ad7')!;
    assert.equal([ad7.vlan, ad7.tags], [7, 1]);
    const qinq = frames.find((x) => x.data.subarray(8).toString() === 'x6-qinq7')!;
    assert.equal([qinq.vlan, qinq.tags], [7, 2], 'the inner 802.1Q id is the key');
    const after = d.programCounters();
    assert.ok(after.redirected - before.redirected >= 3);
    assert.ok(after.passed - before.passed >= 9, `passed ${after.passed - before.passed}`);
  } finally {
    c.stop();
    d.close();
  }
});

test.run();
