/**
 * Regression (found against the lab's bridge as an MLD snooping switch with a querier): the XDP
 * program leaves MLD queries to the host (which shares the device), so the engine never hears them
 * and never reports again after joining; a snooping switch then forgets the stack's solicited-node
 * groups (RFC 3810 9.4, Multicast Address Listening Interval, 260 s by default) and stops
 * delivering Neighbor Solicitations to it, while a peer on the same group keeps getting them. The
 * engine now repeats its reports (`ndp.mldReportUs`, shortened here). Privileged: runs as root.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, sleep } from './lib/rig';
import { privilegedTest } from './lib/lab-stack';
import { openAfxdp, AfxdpDriver } from '../driver/afxdp';
import { Engine, EngineOptions } from '../stack/engine';
import { Runtime } from '../stack/runtime';
import { ownership } from '../stack/stack';

const PREFIX = labPrefix('y4');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
let lab: Lab;
let driver: AfxdpDriver;
let engine: Engine;
let runtime: Runtime;

const mdb = async () => (await nsRun(lab.switchNs, 'bridge', ['mdb', 'show'])).stdout;
async function waitMdb(re: RegExp, ms: number): Promise<string> {
  const until = Date.now() + ms;
  let m = await mdb();
  while (!re.test(m) && Date.now() < until) { await sleep(100); m = await mdb(); }
  return m;
}

if (privileged) {
  test.before(async () => {
    lab = labUp({ prefix: PREFIX, peers: [{ ipv6: 'fd00:4::2/64' }] });
    driver = openAfxdp({ ifname: lab.stackDevice, frameCount: 2048, log: () => {} });
    const opts = { ndp: { mldReportUs: 1_000_000 }, onOutput: () => runtime?.engineKick() } as unknown as EngineOptions;
    engine = new Engine(opts);
    engine.addDevice({ name: lab.stackDevice, pool: driver.pool, mac: driver.mac, mtu: driver.mtu, ...ownership(driver) });
    runtime = new Runtime(engine, [driver]);
    runtime.start();
    const vs = engine.createVs('v');
    engine.addLink(vs, { device: lab.stackDevice });
    // The lab's bridge as a snooping switch with an MLDv2 querier (queries every second, sent once
    // br0's link-local address is usable).
    const r = await nsRun(lab.switchNs, 'sh', ['-ec', 'sysctl -q -w net.ipv6.conf.br0.disable_ipv6=0; ' +
      'ip link set br0 type bridge mcast_snooping 1 mcast_mld_version 2 mcast_query_interval 100 mcast_query_response_interval 50 mcast_startup_query_interval 25; ' +
      'for i in $(seq 30); do ip -6 addr show dev br0 scope link | grep -q tentative || break; sleep 0.1; done; ' +
      'ip link set br0 type bridge mcast_querier 1']);
    assert.is(r.code, 0, r.stderr);
  });
  test.after(() => {
    try { runtime?.stop(); driver?.close(); } finally { labDown(PREFIX); }
  });
}

ptest("a snooping switch that forgot the stack's group learns it again from the stack's next report; NS reach the stack", async () => {
  const p = lab.peers[0]!;
  // The peer listens to the same solicited-node group (ff02::1:ff00:77): with the stack's port
  // forgotten, the switch would send NS for the stack's address to the peer alone.
  let r = await nsRun(p.ns, 'ip', ['-6', 'addr', 'add', 'fd00:99::77/64', 'dev', 'eth0', 'nodad']);
  assert.is(r.code, 0, r.stderr);
  engine.addAddress(engine.vs('v'), lab.stackDevice, 'fd00:4::77/64');
  let m = await waitMdb(/port stk grp ff02::1:ff00:77/, 5000);
  assert.match(m, /port stk grp ff02::1:ff00:77/, `registered by the report at join:\n${m}`);
  for (let round = 0; round < 2; round++) {
    r = await nsRun(lab.switchNs, 'bridge', ['mdb', 'del', 'dev', 'br0', 'port', 'stk', 'grp', 'ff02::1:ff00:77']);
    assert.is(r.code, 0, r.stderr);
    m = await waitMdb(/port stk grp ff02::1:ff00:77/, 5000);
    assert.match(m, /port stk grp ff02::1:ff00:77/, `round ${round}: registered again:\n${m}`);
  }
  await nsRun(p.ns, 'ip', ['-6', 'neigh', 'flush', 'dev', 'eth0']);
  const ping = await nsRun(p.ns, 'ping', ['-6', '-n', '-c', '2', '-i', '0.2', '-w', '5', 'fd00:4::77'], { timeout: 10000 });
  assert.is(ping.code, 0, ping.stdout + ping.stderr);
  // The link's groups are reported, never more often than asked: about one report a second here.
  const before = engine.vs('v').counters.txPackets;
  await sleep(2500);
  const sent = engine.vs('v').counters.txPackets - before;
  assert.ok(sent >= 1 && sent <= 6, `reports in 2.5 s: ${sent}`);
  assert.is(driver.pool.check().held, 0);
});

test.run();
