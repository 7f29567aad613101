/**
 * Network layer over AF_XDP with Linux kernel peers in the lab: ping, arping, UDP echo, ARP cache
 * behaviour, fragmentation and path MTU, 16 overlapping tenants on 16 VLANs, VS churn under traffic.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, Rig, sleep, startRig, udpEcho } from './lib/rig';
import type { VirtualServer } from '../stack/vs';
import { parseIpv4 } from '../protocols/ipv4';
import { NSTATE_NAMES } from '../stack/neighbor';

const PREFIX = labPrefix('xn');
const privileged = canRunPrivileged();
let lab: Lab;
let rig: Rig;

function echoService(vs: VirtualServer, port = 7): void {
  const s = rig.engine.createUdpSocket(vs);
  s.bind(port);
  s.on('message', (m: Buffer, r) => s.send(m, r.port, r.address));
}

function addVs(name: string, vlan: number, cidr = '10.1.1.1/24'): VirtualServer {
  const vs = rig.engine.createVs(name);
  rig.engine.addLink(vs, { device: lab.stackDevice, vlan });
  rig.engine.addAddress(vs, `${lab.stackDevice}.${vlan}`, cidr);
  echoService(vs);
  return vs;
}

if (privileged) {
  test.before(() => {
    lab = labUp({ prefix: PREFIX, peers: [10, 20, 30].map((vlan) => ({ vlan, ipv4: '10.1.1.2/24' })) });
    rig = startRig(lab.stackDevice);
    for (const [i, vlan] of [10, 20, 30].entries()) addVs(`t${i + 1}`, vlan);
  });
  test.after(() => {
    rig?.close();
    labDown(PREFIX);
  });

  test('each peer pings its own VS (ping -c N -w T) and arping gets the VS MAC', async () => {
    const results = await Promise.all(lab.peers.map((p) => nsRun(p.ns, 'ping', ['-c', '5', '-i', '0.2', '-w', '5', '10.1.1.1'])));
    for (const r of results) assert.is(r.code, 0, r.stdout + r.stderr);
    for (const [i, p] of lab.peers.entries()) {
      const r = await nsRun(p.ns, 'arping', ['-c', '2', '-w', '4', '-I', p.ifname, '10.1.1.1']);
      assert.is(r.code, 0, r.stdout + r.stderr);
      const vs = rig.engine.vs(`t${i + 1}`);
      const mac = Array.from(vs.links[0]!.mac, (x) => x.toString(16).padStart(2, '0')).join(':');
      assert.ok(r.stdout.toLowerCase().includes(mac), `arping shows ${mac}: ${r.stdout}`);
    }
    for (let i = 0; i < 3; i++) {
      const c = rig.engine.vs(`t${i + 1}`).counters;
      assert.ok(c.txPackets >= 5, `VS t${i + 1} sent ${c.txPackets}`);
    }
  });

  test('UDP echo per VS: each peer gets back exactly its own payload', async () => {
    const got = await Promise.all(lab.peers.map((p, i) => udpEcho(p.ns, '10.1.1.1', 7, `hello from vlan ${p.vlan} #${i}`)));
    assert.equal(got, lab.peers.map((p, i) => `hello from vlan ${p.vlan} #${i}`));
    // nc, as a user would do it.
    const r = await nsRun(lab.peers[0]!.ns, 'sh', ['-c', 'echo netcat-check | nc -u -w 1 10.1.1.1 7']);
    assert.ok(r.stdout.includes('netcat-check'), r.stdout + r.stderr);
  });

  test('unknown port → ICMP port unreachable seen by the peer', async () => {
    const py = 'import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.connect(("10.1.1.1",9999))\ns.send(b"x")\ns.settimeout(2)\ntry:\n  s.recv(10)\nexcept ConnectionRefusedError:\n  print("refused")';
    const r = await nsRun(lab.peers[1]!.ns, '/usr/bin/python3', ['-c', py]);
    assert.is(r.stdout.trim(), 'refused', r.stderr);
    assert.ok((rig.engine.vs('t2').counters.toJSON().drops.reasons['udp-no-socket'] ?? 0) >= 1);
  });

  test('large pings are reassembled and answered in fragments; DF pings honour the MTU', async () => {
    const p = lab.peers[2]!;
    const big = await nsRun(p.ns, 'ping', ['-c', '3', '-i', '0.2', '-w', '5', '-s', '4000', '10.1.1.1']);
    assert.is(big.code, 0, big.stdout + big.stderr);
    assert.match(big.stdout, /4008 bytes from 10.1.1.1/);
    const df = await nsRun(p.ns, 'ping', ['-c', '2', '-w', '4', '-M', 'do', '-s', '1472', '10.1.1.1']);
    assert.is(df.code, 0, df.stdout + df.stderr);
    const tooBig = await nsRun(p.ns, 'ping', ['-c', '1', '-w', '2', '-M', 'do', '-s', '1473', '10.1.1.1']);
    assert.is.not(tooBig.code, 0);
    // A large UDP datagram from the peer is reassembled and echoed (fragmented back).
    const payload = 'Z'.repeat(3000);
    assert.is(await udpEcho(p.ns, '10.1.1.1', 7, payload), payload);
  });

  test('ARP cache: peer learned after traffic; an absent neighbor fails and its packets are counted', async () => {
    const vs = rig.engine.vs('t1');
    const n = vs.links[0]!.neigh.peek(parseIpv4('10.1.1.2'));
    assert.ok(n, 'peer is in the neighbor cache');
    assert.ok(['REACHABLE', 'STALE', 'DELAY', 'PROBE'].includes(NSTATE_NAMES[n!.state]!));
    const s = rig.engine.createUdpSocket(vs);
    s.bind(0);
    s.send('nobody home', 9, '10.1.1.77');
    await sleep(4500); // 3 probes, 1 s apart, then failure
    assert.is(vs.links[0]!.neigh.peek(parseIpv4('10.1.1.77')), undefined);
    assert.is(vs.counters.toJSON().drops.reasons['neighbor-unreachable'], 1);
    s.close();
  });

  test('VS destroyed and recreated while the others carry traffic', async () => {
    const p1 = lab.peers[0]!;
    const p2 = lab.peers[1]!;
    const ping1 = nsRun(p1.ns, 'ping', ['-c', '30', '-i', '0.05', '-w', '10', '10.1.1.1']);
    await sleep(300);
    const oldId = rig.engine.vs('t2').id;
    rig.engine.destroyVs('t2');
    const gone = await nsRun(p2.ns, 'ping', ['-c', '1', '-w', '1', '10.1.1.1']);
    assert.is.not(gone.code, 0, 'a destroyed VS does not answer');
    const again = addVs('t2', 20);
    assert.is.not(again.id, oldId);
    await nsRun(p2.ns, 'ip', ['neigh', 'flush', 'dev', p2.ifname]);
    const back = await nsRun(p2.ns, 'ping', ['-c', '2', '-w', '4', '10.1.1.1']);
    assert.is(back.code, 0, back.stdout + back.stderr);
    const r1 = await ping1;
    assert.is(r1.code, 0, r1.stdout);
    assert.match(r1.stdout, / 0% packet loss/);
  });

  test('frames are all accounted for while running', () => {
    const c = rig.driver.pool.check();
    assert.is(c.free + c.kernel + c.tx + c.held, c.total);
    assert.is(c.held, 0);
  });
}

test.run();
