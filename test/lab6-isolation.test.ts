/**
 * IPv6 isolation: 16 kernel peers on 16 VLANs, all fd00:99::2/64 (the same prefix and the same
 * addresses), each served by its own VS (fd00:99::1/64, the config's udp-echo and tcp-echo) in one
 * process built by `createStack(config)`. Every peer reaches only its own VS (ping -6, UDP and TCP
 * echo), and the counters show that no frame crossed VSes. Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, sleep } from './lib/rig';
import { addressesPreferred, privilegedTest } from './lib/lab-stack';
import { createStack, Stack } from '../stack/stack';
import { macToString } from '../driver/types';

const PREFIX = labPrefix('y9');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const N = 16;
const VLANS = Array.from({ length: N }, (_, i) => 161 + i);
const V6 = 'fd00:99::1';
const PEER6 = 'fd00:99::2';
let lab: Lab;
let stack: Stack;
const heard = new Map<string, string[]>();

const vsName = (vlan: number) => `t${vlan}`;

/** One UDP datagram over IPv6 from peer `ns`; the reply's source and payload, or null. */
async function udp6(ns: string, port: number, payload: string): Promise<string | null> {
  const py = [
    'import socket,sys',
    's=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)',
    's.settimeout(3)',
    `s.sendto(sys.argv[1].encode(),("${V6}",${port}))`,
    'try:\n  d,a=s.recvfrom(65535)\n  print(a[0], d.decode(),end="")\nexcept socket.timeout:\n  sys.exit(3)',
  ].join('\n');
  const r = await nsRun(ns, '/usr/bin/python3', ['-c', py, payload], { timeout: 10000 });
  return r.code === 0 ? r.stdout : null;
}

if (privileged) {
  test.before(async () => {
    lab = labUp({ prefix: PREFIX, peers: VLANS.map((vlan) => ({ vlan, ipv6: `${PEER6}/64` })) });
    stack = createStack({
      name: 'lab6-isolation', control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: VLANS.map((vlan) => ({ name: vsName(vlan), links: [{ device: lab.stackDevice, vlan, addresses: [`${V6}/64`] }] })),
      services: VLANS.flatMap((vlan) => [{ type: 'udp-echo', vs: vsName(vlan), port: 7 }, { type: 'tcp-echo', vs: vsName(vlan), port: 7 }]),
    }, { log: () => {} });
    // A recording socket per VS: what each tenant heard, answered with its own name.
    for (const vlan of VLANS) {
      const s = stack.vs(vsName(vlan)).createSocket('udp6');
      heard.set(vsName(vlan), []);
      s.on('message', (m: Buffer, r: { address: string; port: number }) => {
        heard.get(vsName(vlan))!.push(m.toString());
        s.send(`${vsName(vlan)}:${m.toString()}`, r.port, r.address);
      });
      s.bind(9);
    }
    stack.start();
    await addressesPreferred(stack);
  });
  test.after(() => {
    try { stack?.close(); } finally { labDown(PREFIX); }
  });
}

ptest(`${N} peers with the same IPv6 address each reach only their own VS: ping -6, UDP and TCP echo`, async () => {
  const pings = await Promise.all(lab.peers.map((p) =>
    nsRun(p.ns, 'ping', ['-6', '-n', '-c', '3', '-i', '0.2', '-w', '8', V6], { timeout: 15000 })));
  pings.forEach((r, i) => assert.is(r.code, 0, `peer ${i}: ${r.stdout}${r.stderr}`));
  const echoes = await Promise.all(lab.peers.map((p) => udp6(p.ns, 7, `tenant-${p.vlan}-secret`)));
  assert.equal(echoes, lab.peers.map((p) => `${V6} tenant-${p.vlan}-secret`));
  const named = await Promise.all(lab.peers.map((p) => udp6(p.ns, 9, `who-${p.vlan}`)));
  assert.equal(named, lab.peers.map((p) => `${V6} ${vsName(p.vlan)}:who-${p.vlan}`), 'each answer comes from the VS of the peer\'s VLAN');
  for (const p of lab.peers) assert.equal(heard.get(vsName(p.vlan)), [`who-${p.vlan}`]);
  const tcp = await Promise.all(lab.peers.map((p) =>
    nsRun(p.ns, 'sh', ['-c', `printf 'tcp-%s' ${p.vlan} | nc -6 -N -w 5 ${V6} 7`], { timeout: 15000 })));
  tcp.forEach((r, i) => assert.is(r.stdout, `tcp-${VLANS[i]}`, `peer ${i}: ${r.stderr}`));
});

ptest('counters prove no frame crossed: each VS knows only its own peer; every frame is attributed once', async () => {
  for (let i = 0; i < 200 && stack.engine.devices[0]!.pool.check().held !== 0; i++) await sleep(10);
  const dev = stack.engine.devices[0]!;
  let vsRx = 0;
  for (const p of lab.peers) {
    const raw = stack.engine.vs(vsName(p.vlan));
    const link = raw.links[0]!;
    // Every neighbor this VS learned (the peer's global and link-local addresses) is its own VLAN's peer.
    const rows = stack.show('neighbors', { vs: raw.name }) as Array<{ address: string; mac: string | null }>;
    assert.ok(rows.some((r) => r.address === PEER6), `${raw.name} learned ${PEER6}: ${JSON.stringify(rows)}`);
    for (const r of rows) if (r.mac !== null) assert.is(r.mac, p.mac, `${raw.name} neighbor ${r.address} is the VLAN ${p.vlan} peer`);
    assert.is(macToString(link.mac), lab.stackMac);
    const c = raw.counters;
    assert.ok(c.rxPackets >= 7 && c.txPackets >= 7, `${raw.name}: rx ${c.rxPackets} tx ${c.txPackets}`);
    assert.is(c.rxPackets, link.counters.rxPackets);
    vsRx += c.rxPackets;
  }
  // The per-VS counts add up to the device's: nothing counted twice, nothing lost on the way.
  const devDrops = dev.counters.toJSON().drops.reasons;
  const unattributed = Object.values(devDrops).reduce((a, b) => a + b, 0);
  assert.is(vsRx + unattributed, dev.counters.rxPackets, `device drops ${JSON.stringify(devDrops)}`);
  assert.is(devDrops['vlan-no-link'] ?? 0, 0);
  assert.is(dev.pool.check().held, 0);
});

test.run();
