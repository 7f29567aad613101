/**
 * IPv6 over AF_XDP with Linux kernel peers in the lab, through `createStack(config)` and the config
 * services (`udp-echo`, `tcp-echo` serve both families): `ping -6` (also large echoes the peer
 * fragments), `ndisc6` against the stack's address, UDP and TCP echo over IPv6, IPv4 and IPv6 on
 * the same link at once, a kernel peer already holding an address the stack adds (the stack's DAD
 * finds it duplicate, the peer keeps it), and the host's own IPv6 traffic on the stack's device
 * while the whole stack is attached. Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab, peerIpv6State, waitPeerIpv6 } from '../stack/lab/lab';
import { nsRun, RunResult, sleep } from './lib/rig';
import { framesAccounted as accounted, privilegedTest } from './lib/lab-stack';
import { createStack, Stack } from '../stack/stack';
import { main as cliMain } from '../stack/cli/cli';
import { macToString } from '../driver/types';
import { addrToString, linkLocalFromMac, parseIp6 } from '../protocols/ip/addr';

const PREFIX = labPrefix('y6');
const privileged = canRunPrivileged();
/** Registers a test only where it can run (as root): elsewhere the file reports fewer tests. */
const ptest = privilegedTest(privileged);
const VLAN = 61;
const V4 = '10.6.1.1';
const V6 = 'fd00:61::1';
const HOST6 = 'fd00:60::5'; // the host's own address on the stack's device (untagged)
const UNTAGGED6 = 'fd00:60::1'; // the stack's untagged VS
const TAKEN6 = 'fd00:61::99'; // held by peer 1 before the stack adds it
let lab: Lab;
let stack: Stack;
let tmp: string;
const logs: string[] = [];


/** Runs a command in the root namespace without blocking the event loop. Never throws. */
function hostRun(cmd: string, args: string[], timeout = 20000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Waits (bounded) until every IPv6 address of the stack has left DAD; returns the rows still tentative. */
async function dadDone(timeoutMs = 5000): Promise<string[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const rows = stack.show('addresses') as Array<{ vs: string; address: string; state: string }>;
    const left = rows.filter((r) => r.state === 'tentative').map((r) => `${r.vs} ${r.address}`);
    if (!left.length || Date.now() >= until) return left;
    await sleep(50);
  }
}

function addressState(vs: string, cidr: string): string | undefined {
  const rows = stack.show('addresses', { vs }) as Array<{ address: string; state: string }>;
  return rows.find((r) => r.address === cidr)?.state;
}

const framesAccounted = () => accounted(stack);

/** One UDP datagram from peer `ns` (python3, AF_INET or AF_INET6); the reply payload and its source, or null. */
async function udpEchoFrom(ns: string, dst: string, port: number, payload: string, timeoutS = 2): Promise<{ data: string; from: string } | null> {
  const fam = dst.includes(':') ? 'AF_INET6' : 'AF_INET';
  const py = [
    'import socket,sys',
    `s=socket.socket(socket.${fam},socket.SOCK_DGRAM)`,
    `s.settimeout(${timeoutS})`,
    `s.sendto(sys.argv[1].encode(),(${JSON.stringify(dst)},${port}))`,
    'try:\n  d,a=s.recvfrom(65535)\n  print(a[0]);print(d.decode(),end="")\nexcept socket.timeout:\n  sys.exit(3)',
  ].join('\n');
  const r = await nsRun(ns, '/usr/bin/python3', ['-c', py, payload], { timeout: (timeoutS + 5) * 1000 });
  if (r.code !== 0) return null;
  const nl = r.stdout.indexOf('\n');
  return { from: r.stdout.slice(0, nl), data: r.stdout.slice(nl + 1) };
}

const ping6 = (ns: string, dst: string, n: number, extra: string[] = []) =>
  nsRun(ns, 'ping', ['-6', '-n', '-c', String(n), '-i', '0.2', '-w', String(n + 4), ...extra, dst], { timeout: (n + 8) * 1000 });

if (privileged) {
  test.before(async () => {
    lab = labUp({
      prefix: PREFIX, hostIpv6: `${HOST6}/64`,
      peers: [
        { vlan: VLAN, ipv4: '10.6.1.2/24', ipv6: 'fd00:61::2/64' }, // 0: dual-stack client of the VS
        { vlan: VLAN, ipv6: `${TAKEN6}/64`, dad: true }, // 1: holds the address the stack adds later (DAD on)
        { ipv6: 'fd00:60::2/64' }, // 2: untagged, talks to the host and to the untagged VS
      ],
    });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'y6-lab-'));
    stack = createStack({
      name: 'lab6-net', control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [
        { name: 'v61', links: [{ device: lab.stackDevice, vlan: VLAN, addresses: [`${V4}/24`, `${V6}/64`] }] },
        { name: 'v60', links: [{ device: lab.stackDevice, addresses: [`${UNTAGGED6}/64`] }] },
      ],
      services: [
        { type: 'udp-echo', vs: 'v61', port: 7 }, { type: 'tcp-echo', vs: 'v61', port: 7 },
        { type: 'udp-echo', vs: 'v60', port: 7 },
      ],
    }, { log: () => {} });
    stack.engine.log = (m) => { logs.push(m); };
    stack.start();
    // Peer 1 ran DAD for its address: nobody else holds it.
    assert.is(await waitPeerIpv6(lab, 1, 8000), 'ready');
    assert.equal(await dadDone(), [], 'the stack\'s addresses passed DAD');
  });
  test.after(() => {
    try { stack?.close(); } finally {
      labDown(PREFIX);
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
}

ptest('addresses: configured ones and the link-local one are preferred after DAD; nothing logged', () => {
  const mac = stack.engine.vs('v61').links[0]!.mac;
  const ll = `${addrToString(linkLocalFromMac(mac))}/64`;
  const rows = (stack.show('addresses', { vs: 'v61' }) as Array<{ address: string; state: string }>).map((r) => [r.address, r.state]);
  assert.equal(rows.sort(), [[`${V4}/24`, 'preferred'], [`${V6}/64`, 'preferred'], [ll, 'preferred']].sort());
  assert.equal(logs, []);
});

ptest('ping -6: each peer reaches its VS address (global and link-local)', async () => {
  const p0 = lab.peers[0]!;
  let r = await ping6(p0.ns, V6, 5);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /5 packets transmitted, 5 received/);
  assert.match(r.stdout, new RegExp(`bytes from ${V6}: icmp_seq=1 ttl=64`), 'hop limit 64 (RFC 4861 CurHopLimit default)');
  const ll = addrToString(linkLocalFromMac(stack.engine.vs('v61').links[0]!.mac));
  r = await ping6(p0.ns, `${ll}%eth0`, 3);
  assert.is(r.code, 0, r.stdout + r.stderr);
  r = await ping6(lab.peers[2]!.ns, UNTAGGED6, 3);
  assert.is(r.code, 0, r.stdout + r.stderr);
  // The peer resolved the stack's address by NDP: the VS's MAC, REACHABLE or STALE.
  const n = await nsRun(p0.ns, 'ip', ['-6', 'neigh', 'show', V6, 'dev', 'eth0']);
  assert.match(n.stdout, new RegExp(`lladdr ${macToString(stack.engine.vs('v61').links[0]!.mac)}`), n.stdout);
  // And the VS learned the peer from its NS.
  const rows = stack.show('neighbors', { vs: 'v61' }) as Array<{ address: string; mac: string | null; state: string }>;
  const mine = rows.find((x) => x.address === 'fd00:61::2');
  assert.ok(mine, JSON.stringify(rows));
  assert.is(mine!.mac, p0.mac);
  await framesAccounted();
});

ptest('ping -6 -s 1453 / 4000 / 9000: echoes the peer fragments are reassembled and answered in fragments', async () => {
  const p0 = lab.peers[0]!;
  for (const size of [1452, 1453, 4000, 9000]) {
    const r = await ping6(p0.ns, V6, 2, ['-s', String(size)]);
    assert.is(r.code, 0, `size ${size}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, new RegExp(`${size + 8} bytes from ${V6}`), `size ${size}`);
    assert.match(r.stdout, /2 packets transmitted, 2 received/, `size ${size}`);
  }
  // A large UDP datagram too (fragmented by the peer, echoed back fragmented by the stack).
  const payload = 'F'.repeat(6000);
  const got = await udpEchoFrom(p0.ns, V6, 7, payload);
  assert.ok(got, 'large UDP echo answered');
  assert.is(got!.data, payload);
  await framesAccounted();
});

ptest('ndisc6: the stack answers Neighbor Solicitations for its address with its MAC, not for another one', async () => {
  const p0 = lab.peers[0]!;
  const mac = macToString(stack.engine.vs('v61').links[0]!.mac);
  const r = await nsRun(p0.ns, 'ndisc6', ['-1', '-r', '3', '-w', '1000', V6, 'eth0'], { timeout: 10000 });
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout.toLowerCase(), new RegExp(`target link-layer address: ${mac}`), r.stdout);
  // From the peer's link-local address (above, the kernel's choice) and from its global one.
  const g = await nsRun(p0.ns, 'ndisc6', ['-1', '-s', 'fd00:61::2', '-r', '3', '-w', '1000', V6, 'eth0'], { timeout: 10000 });
  assert.is(g.code, 0, g.stdout + g.stderr);
  assert.match(g.stdout.toLowerCase(), new RegExp(`target link-layer address: ${mac}`), g.stdout);
  // No answer for an address the stack does not have.
  const none = await nsRun(p0.ns, 'ndisc6', ['-1', '-r', '2', '-w', '500', 'fd00:61::77', 'eth0'], { timeout: 10000 });
  assert.is.not(none.code, 0, none.stdout);
  await framesAccounted();
});

ptest('UDP echo over IPv6 (udp-echo): python3 and nc -6 -u, each reply from the VS address', async () => {
  const p0 = lab.peers[0]!;
  const got = await udpEchoFrom(p0.ns, V6, 7, 'hello over udp6');
  assert.equal(got, { from: V6, data: 'hello over udp6' });
  const r = await nsRun(p0.ns, 'sh', ['-c', `echo nc6-check | nc -6 -u -w 1 ${V6} 7`]);
  assert.is(r.stdout, 'nc6-check\n', r.stderr);
  // The untagged VS, from the untagged peer.
  assert.equal(await udpEchoFrom(lab.peers[2]!.ns, UNTAGGED6, 7, 'untagged'), { from: UNTAGGED6, data: 'untagged' });
  // A port with no socket: ICMPv6 port unreachable, seen by the peer as ECONNREFUSED.
  const py = `import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.connect(("${V6}",9999))\ns.send(b"x")\ns.settimeout(2)\ntry:\n  s.recv(10)\nexcept ConnectionRefusedError:\n  print("refused")`;
  const ref = await nsRun(p0.ns, '/usr/bin/python3', ['-c', py]);
  assert.is(ref.stdout.trim(), 'refused', ref.stderr);
  await framesAccounted();
});

ptest('TCP echo over IPv6 (tcp-echo): nc -6 -N, 1 B and 2 MB, output identical (cmp)', async () => {
  const p0 = lab.peers[0]!;
  const big = path.join(tmp, 'in-big');
  fs.writeFileSync(big, randomBytes(2 << 20));
  const small = path.join(tmp, 'in-small');
  fs.writeFileSync(small, 'x');
  for (const src of [small, big]) {
    const out = `${src}.out`;
    const r = await nsRun(p0.ns, 'sh', ['-c', `nc -6 -N -w 10 ${V6} 7 < ${src} > ${out} && cmp ${src} ${out}`], { timeout: 30000 });
    assert.is(r.code, 0, `${path.basename(src)}: ${r.stdout}${r.stderr}`);
  }
  await framesAccounted();
});

ptest('IPv4 and IPv6 on the same link at once: ping, UDP and TCP echo of both families concurrently', async () => {
  const p0 = lab.peers[0]!;
  const src = path.join(tmp, 'dual');
  fs.writeFileSync(src, randomBytes(512 << 10));
  const before = stack.engine.vs('v61').counters.rxPackets;
  const [pv4, pv6, u4, u6, t4, t6] = await Promise.all([
    nsRun(p0.ns, 'ping', ['-4', '-n', '-c', '10', '-i', '0.1', '-w', '8', V4], { timeout: 15000 }),
    ping6(p0.ns, V6, 10),
    udpEchoFrom(p0.ns, V4, 7, 'dual v4'),
    udpEchoFrom(p0.ns, V6, 7, 'dual v6'),
    nsRun(p0.ns, 'sh', ['-c', `nc -4 -N -w 10 ${V4} 7 < ${src} > ${src}.4 && cmp ${src} ${src}.4`], { timeout: 30000 }),
    nsRun(p0.ns, 'sh', ['-c', `nc -6 -N -w 10 ${V6} 7 < ${src} > ${src}.6 && cmp ${src} ${src}.6`], { timeout: 30000 }),
  ]);
  assert.is(pv4.code, 0, pv4.stdout + pv4.stderr);
  assert.is(pv6.code, 0, pv6.stdout + pv6.stderr);
  assert.equal(u4, { from: V4, data: 'dual v4' });
  assert.equal(u6, { from: V6, data: 'dual v6' });
  assert.is(t4.code, 0, t4.stdout + t4.stderr);
  assert.is(t6.code, 0, t6.stdout + t6.stderr);
  assert.ok(stack.engine.vs('v61').counters.rxPackets - before > 20);
  // Both resolutions live side by side in the link's neighbor cache: ARP's and NDP's.
  const rows = stack.show('neighbors', { vs: 'v61' }) as Array<{ address: string; mac: string | null }>;
  for (const a of ['10.6.1.2', 'fd00:61::2']) assert.is(rows.find((x) => x.address === a)?.mac, p0.mac, `${a}: ${JSON.stringify(rows)}`);
  await framesAccounted();
});

ptest('DAD: an address a kernel peer already holds is found duplicate, logged once, never used; the peer keeps it', async () => {
  const p0 = lab.peers[0]!;
  const p1 = lab.peers[1]!;
  assert.is(await peerIpv6State(lab, 1), 'ready');
  const vs = stack.vs('v61');
  const txBefore = stack.engine.vs('v61').counters.txPackets;
  vs.addAddress(`${TAKEN6}/64`);
  assert.is(addressState('v61', `${TAKEN6}/64`), 'tentative');
  // The peer defends its address with an NA to all nodes (RFC 4862 5.4.3/5.4.4); bounded wait.
  for (let i = 0; i < 60 && addressState('v61', `${TAKEN6}/64`) === 'tentative'; i++) await sleep(50);
  assert.is(addressState('v61', `${TAKEN6}/64`), 'duplicate');
  assert.is(logs.length, 1, logs.join('\n'));
  assert.match(logs[0]!, new RegExp(`virtual server 'v61' .*address ${TAKEN6} is a duplicate`));
  assert.ok(stack.engine.vs('v61').counters.txPackets > txBefore, 'the stack sent its DAD probe');
  // It stays duplicate (no later timer makes it preferred) and the peer keeps its address.
  await sleep(1100); // beyond the DAD timer (1 s)
  assert.is(addressState('v61', `${TAKEN6}/64`), 'duplicate');
  assert.is(await peerIpv6State(lab, 1), 'ready');
  // Another peer reaches the address: the kernel peer answers, never the stack.
  await nsRun(p0.ns, 'ip', ['-6', 'neigh', 'flush', 'dev', 'eth0']);
  const r = await ping6(p0.ns, TAKEN6, 3);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const n = await nsRun(p0.ns, 'ip', ['-6', 'neigh', 'show', TAKEN6, 'dev', 'eth0']);
  assert.match(n.stdout, new RegExp(`lladdr ${p1.mac}`), `resolved to the kernel peer: ${n.stdout}`);
  // Every answer to an NS for it (-m: all of them, for 1 s) comes from the kernel peer.
  const ndisc = await nsRun(p0.ns, 'ndisc6', ['-m', '-n', '-r', '1', '-w', '1000', TAKEN6, 'eth0'], { timeout: 10000 });
  assert.is(ndisc.code, 0, ndisc.stdout);
  const answers = ndisc.stdout.toLowerCase().match(/target link-layer address: [0-9a-f:]+/g) ?? [];
  assert.equal(answers, [`target link-layer address: ${p1.mac}`], `only the peer answers NS: ${ndisc.stdout}`);
  // The kernel peer itself keeps working: with the stack's other address, over its own.
  const back = await ping6(p1.ns, V6, 3);
  assert.is(back.code, 0, back.stdout + back.stderr);
  assert.equal(await udpEchoFrom(p1.ns, V6, 7, 'still here'), { from: V6, data: 'still here' });
  // Removing the duplicate address is clean; adding it again finds it duplicate again (reported again).
  vs.removeAddress(`${TAKEN6}/64`);
  assert.is(addressState('v61', `${TAKEN6}/64`), undefined);
  vs.addAddress(`${TAKEN6}/64`);
  for (let i = 0; i < 60 && addressState('v61', `${TAKEN6}/64`) === 'tentative'; i++) await sleep(50);
  assert.is(addressState('v61', `${TAKEN6}/64`), 'duplicate');
  assert.is(logs.length, 2, logs.join('\n'));
  vs.removeAddress(`${TAKEN6}/64`);
  assert.is(await peerIpv6State(lab, 1), 'ready');
  await framesAccounted();
});

ptest("DAD the other way: a kernel peer's DAD for the stack's address is answered, the peer finds it duplicate", async () => {
  const p1 = lab.peers[1]!; // accept_dad=1 (dad: true)
  const add = await nsRun(p1.ns, 'ip', ['-6', 'addr', 'add', `${V6}/64`, 'dev', 'eth0']);
  assert.is(add.code, 0, add.stderr);
  try {
    // The stack defends its address with an NA to all nodes (RFC 4861 7.2.4, RFC 4862 5.4.3).
    let st = '';
    for (let i = 0; i < 60; i++) {
      const r = await nsRun(p1.ns, 'ip', ['-j', '-6', 'addr', 'show', 'dev', 'eth0', 'to', `${V6}/128`]);
      const a = (JSON.parse(r.stdout) as Array<{ addr_info: Array<{ tentative?: boolean; dadfailed?: boolean }> }>)[0]?.addr_info[0];
      st = a?.dadfailed ? 'dadfailed' : a?.tentative ? 'tentative' : 'ready';
      if (st !== 'tentative') break;
      await sleep(100);
    }
    assert.is(st, 'dadfailed', "the peer's DAD saw the stack's defence");
    assert.is(addressState('v61', `${V6}/64`), 'preferred', 'the stack keeps its address');
    const r = await ping6(lab.peers[0]!.ns, V6, 2);
    assert.is(r.code, 0, r.stdout + r.stderr);
  } finally {
    await nsRun(p1.ns, 'ip', ['-6', 'addr', 'del', `${V6}/64`, 'dev', 'eth0']);
  }
  await framesAccounted();
});

ptest("NUD from the kernel's side: its unicast probe (NS to the stack's MAC) is answered, the entry is REACHABLE again", async () => {
  const p0 = lab.peers[0]!;
  const mac = macToString(stack.engine.vs('v61').links[0]!.mac);
  // Probe one second after a packet to a STALE entry (RFC 4861 7.3.3 DELAY_FIRST_PROBE_TIME, shortened).
  await nsRun(p0.ns, 'sysctl', ['-q', '-w', 'net.ipv6.neigh.eth0.delay_first_probe_time=1']);
  const set = await nsRun(p0.ns, 'ip', ['-6', 'neigh', 'replace', V6, 'lladdr', mac, 'dev', 'eth0', 'nud', 'stale']);
  assert.is(set.code, 0, set.stderr);
  // An echo does not confirm reachability (only upper layers or a solicited NA do): DELAY, then PROBE.
  const r = await ping6(p0.ns, V6, 1);
  assert.is(r.code, 0, r.stdout + r.stderr);
  let state = '';
  for (let i = 0; i < 50; i++) {
    state = (await nsRun(p0.ns, 'ip', ['-6', 'neigh', 'show', V6, 'dev', 'eth0'])).stdout.trim();
    if (/REACHABLE/.test(state)) break;
    await sleep(100);
  }
  assert.match(state, new RegExp(`lladdr ${mac} .*REACHABLE`), state);
  await framesAccounted();
});

ptest("the host's own IPv6 traffic on the stack's device passes while the stack serves its VSes", async () => {
  const dev = lab.stackDevice;
  const p2 = lab.peers[2]!;
  const strays = () => {
    const d = stack.engine.devices[0]!.counters.toJSON().drops.reasons;
    const v = stack.engine.vs('v60').counters.toJSON().drops.reasons;
    return (d['ipv6-not-our-address'] ?? 0) + (v['ipv6-not-our-address'] ?? 0) + (v['tcp-no-socket'] ?? 0) + (d['not-for-us'] ?? 0);
  };
  const straysBefore = strays();
  // Both at once: the peer pings the stack's untagged VS and the host; the host pings the peer.
  const [toStack, toHost, fromHost] = await Promise.all([
    ping6(p2.ns, UNTAGGED6, 5),
    ping6(p2.ns, HOST6, 5),
    hostRun('ping', ['-6', '-n', '-c', '5', '-i', '0.2', '-w', '9', '-I', dev, 'fd00:60::2']),
  ]);
  assert.is(toStack.code, 0, `peer → stack: ${toStack.stdout}${toStack.stderr}`);
  assert.is(toHost.code, 0, `peer → host: ${toHost.stdout}${toHost.stderr}`);
  assert.is(fromHost.code, 0, `host → peer: ${fromHost.stdout}${fromHost.stderr}`);
  // The peer resolved each address to its owner: the stack's MAC and the host's are the same
  // device MAC here, but only the stack answers for its address and only the host for its own.
  const nd = await nsRun(p2.ns, 'ndisc6', ['-1', '-r', '3', '-w', '1000', HOST6, 'eth0'], { timeout: 10000 });
  assert.is(nd.code, 0, nd.stdout + nd.stderr);
  // TCP to the host over the stack's device (the host's kernel, not the stack: no listener there in the stack).
  const srv = hostRun('sh', ['-c', `nc -6 -l -N ${HOST6} 7600 </dev/null`], 15000);
  let r: RunResult = { code: 1, stdout: '', stderr: '' };
  for (let i = 0; i < 30; i++) {
    r = await nsRun(p2.ns, 'sh', ['-c', `echo host-tcp | nc -6 -N -w 3 ${HOST6} 7600`], { timeout: 8000 });
    if (r.code === 0) break;
    await sleep(100);
  }
  assert.is(r.code, 0, r.stderr);
  const got = await srv;
  assert.is(got.stdout, 'host-tcp\n', got.stderr);
  // None of the host's frames reached the stack (it would have dropped them as not its own).
  assert.is(strays(), straysBefore, 'no host frame was redirected to the stack');
  await framesAccounted();
});

ptest('MLD snooping switch: it learns the stack\'s solicited-node groups from its MLDv2 reports and delivers NS to it', async () => {
  const sw = lab.switchNs;
  const p2 = lab.peers[2]!;
  const mdb = async () => (await nsRun(sw, 'bridge', ['mdb', 'show'])).stdout;
  const waitMdb = async (re: RegExp, ms: number) => {
    const until = Date.now() + ms;
    let m = await mdb();
    while (!re.test(m) && Date.now() < until) { await sleep(100); m = await mdb(); }
    return m;
  };
  // The lab's bridge as a snooping switch with an MLD querier (1 s query interval).
  // (MLDv2 queries, sent once br0's link-local address is usable: the querier needs a source.)
  let r = await nsRun(sw, 'sh', ['-ec', 'sysctl -q -w net.ipv6.conf.br0.disable_ipv6=0; ' +
    'ip link set br0 type bridge mcast_snooping 1 mcast_mld_version 2 mcast_query_interval 100 mcast_query_response_interval 50 mcast_startup_query_interval 25; ' +
    'for i in $(seq 30); do ip -6 addr show dev br0 scope link | grep -q tentative || break; sleep 0.1; done; ' +
    'ip link set br0 type bridge mcast_querier 1']);
  assert.is(r.code, 0, r.stderr);
  try {
    // A peer listens to the group the new address will use (ff02::1:ff00:77): from then on the
    // switch sends NS for it only to the ports that reported it.
    r = await nsRun(p2.ns, 'ip', ['-6', 'addr', 'add', 'fd00:99::77/64', 'dev', 'eth0', 'nodad']);
    assert.is(r.code, 0, r.stderr);
    stack.vs('v60').addAddress('fd00:60::77/64');
    let m = await waitMdb(/port stk grp ff02::1:ff00:77/, 5000);
    assert.match(m, /port stk grp ff02::1:ff00:77/, `the stack's report registered its port:\n${m}`);
    for (let i = 0; i < 60 && addressState('v60', 'fd00:60::77/64') === 'tentative'; i++) await sleep(50);
    const ping = await ping6(p2.ns, 'fd00:60::77', 2);
    assert.is(ping.code, 0, ping.stdout + ping.stderr);
    // (Keeping the membership alive later: lab6-mld-lab.test.ts.)
  } finally {
    await nsRun(sw, 'ip', ['link', 'set', 'br0', 'type', 'bridge', 'mcast_snooping', '0', 'mcast_querier', '0']);
    await nsRun(p2.ns, 'ip', ['-6', 'addr', 'del', 'fd00:99::77/64', 'dev', 'eth0']);
    try { stack.vs('v60').removeAddress('fd00:60::77/64'); } catch { /* not added */ }
  }
  await framesAccounted();
});

ptest('CLI: lab up --vlans 10,20 --net6 fd00:1::/64 numbers the peers per VLAN; their kernels hold the addresses', async () => {
  const prefix = labPrefix('y5');
  const out: string[] = [];
  const err: string[] = [];
  const ctx = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
  try {
    assert.is(await cliMain(['lab', 'up', '--prefix', prefix, '--vlans', '10,20', '--peers', '3', '--net6', 'fd00:1::/64', '--json'], ctx), 0, err.join('\n'));
    const l = JSON.parse(out.join('\n')) as Lab;
    assert.equal(l.peers.map((p) => [p.vlan, p.ipv4, p.ipv6, p.stackIpv6]), [
      [10, '10.1.1.2/24', 'fd00:1::2/64', 'fd00:1::1/64'], [20, '10.1.1.2/24', 'fd00:1::2/64', 'fd00:1::1/64'], [10, '10.1.1.3/24', 'fd00:1::3/64', 'fd00:1::1/64'],
    ]);
    for (const [i, p] of l.peers.entries()) {
      assert.is(await peerIpv6State(l, i), 'ready', `peer ${i} holds ${p.ipv6}`);
    }
    // Bad IPv6 network: a clear usage error, no lab change.
    err.length = 0;
    assert.is(await cliMain(['lab', 'up', '--prefix', prefix, '--net6', 'fd00:1::/200'], ctx), 2);
    assert.match(err.join('\n'), /--net6/);
  } finally {
    labDown(prefix);
  }
});

test.run();
