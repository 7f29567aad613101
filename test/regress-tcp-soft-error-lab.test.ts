/**
 * Regression against a Linux router (lab, AF_XDP): the VS connects through the kernel peer (IP
 * forwarding on) to a prefix the peer has an `unreachable` route for. Linux answers each SYN with
 * ICMP Destination Unreachable (host unreachable). That is a soft error (RFC 1122 4.2.3.9): the
 * connect keeps retrying its SYN, and when it gives up the error is the one heard, EHOSTUNREACH,
 * made available to the application as the RFC asks. It used to be ETIMEDOUT. Few SYN retries
 * (the engine's `tcp.synRetries` 2: about 7 s) keep the test short; also with 30 % loss toward
 * the peer, where some SYNs and their errors are lost.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labImpair, labUp, Lab } from '../stack/lab/lab';
import { nsRun, Rig, startRig } from './lib/rig';
import { privilegedTest } from './lib/lab-stack';
import { connect } from '../stack/api/net';
import { monotonicUs } from '../stack/runtime';

const PREFIX = labPrefix('k7');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
let lab: Lab;
let rig: Rig;

if (privileged) {
  test.before(async () => {
    lab = labUp({ prefix: PREFIX, peers: [{ vlan: 10, ipv4: '10.1.1.2/24' }] });
    const ns = lab.peers[0]!.ns;
    await nsRun(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await nsRun(ns, 'ip', ['route', 'replace', 'unreachable', '192.0.2.0/24']);
    rig = startRig(lab.stackDevice, 4096, { tcp: { synRetries: 2 } });
    const vs = rig.engine.createVs('s1');
    rig.engine.addLink(vs, { device: lab.stackDevice, vlan: 10 });
    rig.engine.addAddress(vs, `${lab.stackDevice}.10`, '10.1.1.1/24');
    rig.engine.addRoute(vs, { dst: '192.0.2.0/24', via: '10.1.1.2' });
  });
  test.after(() => {
    rig?.close();
    labDown(PREFIX);
  });
}

/** connect() to 192.0.2.7:80 through the router: the error it ends with, and after how long. */
async function attempt(): Promise<{ code: string | undefined; ms: number }> {
  const vs = rig.engine.vs('s1');
  const t0 = Date.now();
  const s = connect({ engine: rig.engine, vs, now: monotonicUs }, 80, '192.0.2.7');
  const err = await new Promise<Error & { code?: string }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('connect still pending after 30 s')), 30_000);
    s.on('error', (e) => { clearTimeout(t); resolve(e); });
    s.on('connect', () => { clearTimeout(t); reject(new Error('connected to an unreachable prefix')); });
  });
  return { code: err.code, ms: Date.now() - t0 };
}

ptest('connect through a Linux router that answers host unreachable: retries its SYNs, then fails with EHOSTUNREACH', async () => {
  const r = await attempt();
  assert.is(r.code, 'EHOSTUNREACH');
  // The SYN retries ran (1 + 2 + 4 s): the soft error did not abort the attempt.
  assert.ok(r.ms >= 6_000, `ended after ${r.ms} ms`);
});

/** The router's count of ICMP Destination Unreachable messages sent. */
async function unreachSent(): Promise<number> {
  const snmp = (await nsRun(lab.peers[0]!.ns, 'cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Icmp:'));
  return Number(snmp[1]!.split(/\s+/)[snmp[0]!.split(/\s+/).indexOf('OutDestUnreachs')]);
}

ptest('the same through 30 % loss toward the router: EHOSTUNREACH when one of its errors came back, ETIMEDOUT when none did', async () => {
  await new Promise((res) => setTimeout(res, 3000)); // the router's error budget (rate limit) refills
  const before = await unreachSent();
  labImpair(PREFIX, { peer: 0, dir: 'in', loss: 0.3 });
  let r: { code: string | undefined; ms: number };
  try {
    r = await attempt();
  } finally {
    labImpair(PREFIX, { peer: 0, dir: 'in', loss: 0 });
  }
  // The way back is clean: every error the router sent reached the stack.
  const sent = (await unreachSent()) - before;
  assert.is(r.code, sent > 0 ? 'EHOSTUNREACH' : 'ETIMEDOUT', `router sent ${sent} error(s)`);
});

test.run();
