/**
 * Isolation: 16 kernel peers on 16 VLANs, all 10.1.1.0/24 with the same addresses, each served by
 * its own VS in one process. Every peer gets its own answers and no frame crosses VSes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, Rig, startRig, udpEcho } from './lib/rig';
import { parseIpv4 } from '../protocols/ipv4';

const PREFIX = labPrefix('xi');
const N = 16;
const VLANS = Array.from({ length: N }, (_, i) => 101 + i);
let lab: Lab;
let rig: Rig;
const heard = new Map<string, string[]>();

if (canRunPrivileged()) {
  test.before(() => {
    lab = labUp({ prefix: PREFIX, peers: VLANS.map((vlan) => ({ vlan, ipv4: '10.1.1.2/24' })) });
    rig = startRig(lab.stackDevice);
    for (const vlan of VLANS) {
      const vs = rig.engine.createVs(`tenant${vlan}`);
      rig.engine.addLink(vs, { device: lab.stackDevice, vlan });
      rig.engine.addAddress(vs, `${lab.stackDevice}.${vlan}`, '10.1.1.1/24');
      const s = rig.engine.createUdpSocket(vs);
      s.bind(7);
      heard.set(vs.name, []);
      s.on('message', (m: Buffer, r) => { heard.get(vs.name)!.push(m.toString()); s.send(m, r.port, r.address); });
    }
  });
  test.after(() => {
    rig?.close();
    labDown(PREFIX);
  });

  test(`${N} peers with the same address each reach only their own VS`, async () => {
    const pings = await Promise.all(lab.peers.map((p) => nsRun(p.ns, 'ping', ['-c', '3', '-i', '0.2', '-w', '6', '10.1.1.1'])));
    pings.forEach((r, i) => assert.is(r.code, 0, `peer ${i}: ${r.stdout}${r.stderr}`));
    const echoes = await Promise.all(lab.peers.map((p) => udpEcho(p.ns, '10.1.1.1', 7, `tenant-${p.vlan}-secret`, 3)));
    assert.equal(echoes, lab.peers.map((p) => `tenant-${p.vlan}-secret`));
    for (const p of lab.peers) assert.equal(heard.get(`tenant${p.vlan}`), [`tenant-${p.vlan}-secret`]);
  });

  test('counters prove no frame crossed: each VS knows only its own peer; every frame is attributed once', () => {
    const dev = rig.engine.devices[0]!;
    let vsRx = 0;
    for (const p of lab.peers) {
      const vs = rig.engine.vs(`tenant${p.vlan}`);
      const link = vs.links[0]!;
      const n = link.neigh.peek(parseIpv4('10.1.1.2'));
      assert.ok(n, `${vs.name} learned its peer`);
      const mac = Array.from(n!.mac, (x) => x.toString(16).padStart(2, '0')).join(':');
      assert.is(mac, p.mac.toLowerCase(), `${vs.name} neighbor is the VLAN ${p.vlan} peer`);
      assert.is(link.neigh.size, 1);
      assert.ok(vs.counters.rxPackets >= 5 && vs.counters.txPackets >= 5);
      assert.is(vs.counters.rxPackets, link.counters.rxPackets);
      vsRx += vs.counters.rxPackets;
    }
    const devDrops = dev.counters.toJSON().drops.reasons;
    const unattributed = Object.values(devDrops).reduce((a, b) => a + b, 0);
    assert.is(vsRx + unattributed, dev.counters.rxPackets);
    assert.is(devDrops['vlan-no-link'] ?? 0, 0);
    assert.is(rig.driver.pool.check().held, 0);
  });
}

test.run();
