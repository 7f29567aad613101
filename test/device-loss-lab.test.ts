/**
 * A device that disappears under a running stack: the stack notices it (log once, counted, shown
 * in `show links` / `show counters`), keeps running, and serves again when a device of that name
 * comes back (XDP program, socket and owned addresses set up again). `lab up` refuses to replace a
 * lab whose device a running stack uses, unless forced.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab, LabInUseError } from '../stack/lab/lab';
import { nsRun, sleep, udpEcho } from './lib/rig';
import { createStack, Stack } from '../stack/stack';
import { main } from '../stack/cli/cli';
import { formatShow } from '../stack/control/format';

const PREFIX = labPrefix('xc');
const privileged = canRunPrivileged();
const PEERS = [{ ipv4: '10.1.1.2/24' }];
let lab: Lab;
let stack: Stack;
const logs: string[] = [];

/** Waits (bounded) until cond() holds; returns whether it did. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(50);
  }
  return cond();
}

interface DevRow { device: string; state: string; losses: number; driverDrops: { total: number; reasons: Record<string, number> } }
const devRow = () => (stack.show('counters') as { devices: DevRow[] }).devices[0]!;
const linkStates = () => (stack.show('links') as { state: string }[]).map((l) => l.state);

if (privileged) {
  test.before(() => {
    lab = labUp({ prefix: PREFIX, peers: PEERS });
    stack = createStack({
      name: `devloss-${PREFIX}`,
      control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 1024 }],
      virtualServers: [{ name: 'a', links: [{ device: lab.stackDevice, addresses: ['10.1.1.1/24'] }] }],
      services: [{ type: 'udp-echo', vs: 'a', port: 7 }],
    }, { log: (m) => logs.push(m) });
    stack.start();
  });
  test.after(() => {
    try { stack?.close(); } finally { labDown(PREFIX); }
  });

  test('lab up refuses to replace a lab whose device a running stack uses', async () => {
    const p = lab.peers[0]!;
    const r = await nsRun(p.ns, 'ping', ['-c', '2', '-i', '0.2', '-w', '5', '10.1.1.1']);
    assert.is(r.code, 0, r.stdout + r.stderr);
    let err: unknown = null;
    try { labUp({ prefix: PREFIX, peers: PEERS }); } catch (e) { err = e; }
    assert.instance(err, LabInUseError);
    assert.match((err as Error).message, new RegExp(`device ${PREFIX}0 is in use by a running stack \\(pid ${process.pid}`));
    const out: string[] = [];
    const code = await main(['lab', 'up', '--prefix', PREFIX], { out: (l) => out.push(l), err: (l) => out.push(l) });
    assert.is(code, 1, out.join('\n'));
    assert.match(out.join('\n'), /in use by a running stack.*--force/);
    // The lab was left alone: the stack still answers.
    assert.is(await udpEcho(p.ns, '10.1.1.1', 7, 'still here'), 'still here');
  });

  test('the device disappears: logged once, counted, shown; the stack runs on', async () => {
    assert.is(devRow().state, 'up');
    execFileSync('ip', ['link', 'del', 'dev', lab.stackDevice]);
    assert.ok(await until(() => logs.some((l) => l.includes('lost device')), 5000), `logs: ${logs.join(' | ')}`);
    // Lost for a while: still one notice, not one per second.
    await sleep(2500);
    assert.is(logs.filter((l) => l.includes('lost device')).length, 1, logs.join(' | '));
    assert.match(logs.find((l) => l.includes('lost device'))!, new RegExp(`${lab.stackDevice} queue 0: it no longer exists`));
    const row = devRow();
    assert.is(row.state, 'lost');
    assert.is(row.losses, 1);
    assert.equal(linkStates(), ['lost']);
    const text = formatShow('counters', stack.show('counters')).join('\n');
    assert.match(text, new RegExp(`${lab.stackDevice}\\s+afxdp\\s+lost\\s+1`));
    // Sending from the VS meanwhile is dropped and counted, not queued forever.
    const s = stack.vs('a').createSocket('udp4');
    s.bind(0);
    await new Promise<void>((resolve) => s.send(Buffer.from('x'), 9, '10.1.1.2', () => resolve()));
    await until(() => (devRow().driverDrops.reasons.device_lost ?? 0) > 0, 3000);
    assert.ok((devRow().driverDrops.reasons.device_lost ?? 0) > 0, JSON.stringify(devRow().driverDrops));
    s.close();
    stack.engine.devices[0]!.pool.check();
  });

  test('the lab comes back (lab up --force): the stack reattaches and serves again', async () => {
    lab = labUp({ prefix: PREFIX, peers: PEERS, force: true });
    assert.ok(await until(() => devRow().state === 'up', 8000), `state ${devRow().state}; logs: ${logs.join(' | ')}`);
    assert.ok(logs.some((l) => /is back \(ifindex \d+: XDP program, socket and \d+ owned/.test(l)), logs.join(' | '));
    assert.equal(linkStates(), ['up']);
    const p = lab.peers[0]!;
    const r = await nsRun(p.ns, 'ping', ['-c', '3', '-i', '0.2', '-w', '8', '10.1.1.1']);
    assert.is(r.code, 0, r.stdout + r.stderr);
    assert.is(await udpEcho(p.ns, '10.1.1.1', 7, 'welcome back', 3), 'welcome back');
    const row = devRow();
    assert.is(row.losses, 1);
    stack.engine.devices[0]!.pool.check();
  });

  test('the device goes down and up again: lost while down, served again once up', async () => {
    const before = logs.length;
    execFileSync('ip', ['link', 'set', 'dev', lab.stackDevice, 'down']);
    assert.ok(await until(() => devRow().state === 'lost', 5000), 'noticed');
    assert.match(logs.slice(before).join(' | '), new RegExp(`lost device ${lab.stackDevice} queue 0: it is down`));
    assert.is(devRow().losses, 2);
    execFileSync('ip', ['link', 'set', 'dev', lab.stackDevice, 'up']);
    assert.ok(await until(() => devRow().state === 'up', 5000), `back; logs: ${logs.slice(before).join(' | ')}`);
    const r = await nsRun(lab.peers[0]!.ns, 'ping', ['-c', '3', '-i', '0.2', '-w', '8', '10.1.1.1']);
    assert.is(r.code, 0, r.stdout + r.stderr);
    stack.engine.devices[0]!.pool.check();
  });
}

test.run();
