/**
 * One validator (stack/control/validate.ts) for config files, the control socket, the library API and the
 * engine's entry points. Regressions: `vs add X --device D --vlan 10` beside a VS that already has
 * VLAN 10 with the same MAC was accepted at run time (the config refuses it) and X's frames were
 * then counted to the other VS; the control socket accepted 127/8 and /0 addresses; a VS added
 * without a link could never get one.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Stack } from '../stack/stack';
import { controlRequest } from '../stack/control/control';
import { cliAt, ControlledStack, startControlled, stopControlled } from './lib/control';
import { ConfigError, StackConfig, validateConfig } from '../stack/control/config';
import { ValidationError } from '../stack/control/validate';
import { Burst } from '../driver/types';
import { writeEth, ETH_P_ARP } from '../protocols/ethernet';
import { writeArp, ARP_REQUEST } from '../protocols/arp';
import { parseIpv4 } from '../protocols/ipv4';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-validate-'));
const sock = path.join(tmp, 'val.sock');
const DEV_MAC = '02:00:00:00:00:01';

function base(): StackConfig {
  return {
    name: 'val',
    devices: [{ name: 'm0', driver: 'memory', mac: DEV_MAC }],
    virtualServers: [
      { name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }] },
    ],
  };
}

let stack: Stack;
let ctl: ControlledStack;

const cli = (args: string[]) => cliAt(sock, args);

/** The config's verdict on `base()` changed by `edit`: null when valid, else the messages. */
function configVerdict(edit: (c: StackConfig) => void): string | null {
  const c = base();
  edit(c);
  try {
    validateConfig(c, 'test.json');
    return null;
  } catch (e) {
    assert.instance(e, ConfigError);
    return (e as Error).message;
  }
}

function libraryVerdict(f: () => void): string | null {
  try { f(); return null; } catch (e) { return (e as Error).message; }
}

function snapshot(): string {
  return JSON.stringify(['vs', 'links', 'addresses', 'routes', 'rules'].map((k) => stack.show(k)));
}

test.before(async () => {
  ctl = await startControlled(base(), sock);
  stack = ctl.stack;
});
test.after(async () => {
  await stopControlled(ctl, tmp);
});

test('a second VS on the same device, VLAN and MAC: refused by the config, the control socket, the CLI and the library', async () => {
  const cfg = configVerdict((c) => c.virtualServers.push({ name: 'x', links: [{ device: 'm0', vlan: 10 }] }));
  assert.match(String(cfg), /device m0 VLAN 10 with the same MAC is already used by virtualServers\[0\]\.links\[0\]/);
  const before = snapshot();
  const r = await cli(['vs', 'add', 'x', '--device', 'm0', '--vlan', '10']);
  assert.is(r.code, 1, r.out);
  assert.match(r.err, /device m0 VLAN 10 with the same MAC is already used by link 'm0\.10' of virtual server 'a'/);
  const raw = await controlRequest(sock, { cmd: 'vs.add', name: 'x', links: [{ device: 'm0', vlan: 10 }] });
  assert.is(raw.ok, false);
  assert.match(String(raw.error), /same MAC is already used/);
  const lib = libraryVerdict(() => stack.createVs('x', [{ device: 'm0', vlan: 10 }]));
  assert.match(String(lib), /same MAC is already used/);
  const eng = libraryVerdict(() => stack.engine.addLink(stack.engine.createVs('y'), { device: 'm0', vlan: 10 }));
  stack.engine.destroyVs('y');
  assert.match(String(eng), /same MAC is already used/);
  assert.is(snapshot(), before, 'nothing was created');
  // With its own MAC the same VLAN is fine, everywhere.
  assert.is(configVerdict((c) => c.virtualServers.push({ name: 'x', links: [{ device: 'm0', vlan: 10, mac: '02:00:00:00:00:99' }] })), null);
  const ok = await cli(['vs', 'add', 'x', '--device', 'm0', '--vlan', '10', '--mac', '02:00:00:00:00:99']);
  assert.is(ok.code, 0, ok.err);
  assert.is((await cli(['vs', 'del', 'x'])).code, 0);
});

test("a refused VS takes none of the other VS's traffic", async () => {
  await cli(['vs', 'add', 'x', '--device', 'm0', '--vlan', '10']);
  // An ARP request for a's address on VLAN 10, from the wire.
  const peer = stack.peer('m0');
  const b = new Burst();
  const f = peer.pool.alloc();
  const at = peer.pool.dataStart(f);
  const mac = Uint8Array.of(2, 0, 0, 0, 0, 2);
  const h = writeEth(peer.pool.bytes, at, Uint8Array.of(255, 255, 255, 255, 255, 255), 0, mac, 0, ETH_P_ARP, 10);
  writeArp(peer.pool.bytes, at + h, ARP_REQUEST, mac, 0, parseIpv4('10.1.1.2'), new Uint8Array(6), 0, parseIpv4('10.1.1.1'));
  b.push(f, at, 60);
  peer.tx(b, stack.engine.now);
  stack.runVirtual(stack.engine.now, stack.engine.now + 1000);
  const a = stack.engine.vs('a').counters;
  assert.is(a.rxPackets, 1, "the ARP request is a's");
  assert.not.ok(stack.engine.vsByName.has('x'));
});

test('unusable addresses are refused the same way everywhere (127/8, /0, 0/8, multicast, 240/4)', async () => {
  for (const bad of ['127.0.0.5/8', '10.1.1.9/0', '0.1.2.3/8', '224.0.0.5/24', '240.0.0.1/8']) {
    const cfg = configVerdict((c) => c.virtualServers[0]!.links[0]!.addresses!.push(bad));
    assert.ok(cfg, `config refuses ${bad}`);
    const r = await cli(['address', 'add', bad, '--vs', 'a']);
    assert.is(r.code, 1, `control socket refuses ${bad}: ${r.out}`);
    const lib = libraryVerdict(() => stack.vs('a').addAddress(bad));
    assert.ok(lib, `library refuses ${bad}`);
    // The same reason, worded by the same rule.
    const reason = (m: string) => /not a usable unicast address|prefix length must be 1\.\.32/.exec(m)?.[0];
    assert.ok(reason(cfg!), cfg!);
    assert.is(reason(r.err), reason(cfg!), r.err);
    assert.is(reason(lib!), reason(cfg!), lib!);
  }
  assert.is((stack.show('addresses', { vs: 'a' }) as unknown[]).length, 1);
});

test('routes and rules: the config rules hold at run time (host bits, source not ours, duplicate priority)', async () => {
  assert.match(String(configVerdict((c) => { c.virtualServers[0]!.routes = [{ dst: '10.9.0.1/16', via: '10.1.1.254' }]; })), /host bits set/);
  let r = await cli(['route', 'add', '10.9.0.1/16', '--via', '10.1.1.254', '--vs', 'a']);
  assert.is(r.code, 1);
  assert.match(r.err, /host bits set/);
  assert.match(String(configVerdict((c) => { c.virtualServers[0]!.routes = [{ dst: '10.9.0.0/16', via: '10.1.1.254', src: '10.1.1.77' }]; })), /10\.1\.1\.77 is not an address of virtual server 'a'/);
  r = await cli(['route', 'add', '10.9.0.0/16', '--via', '10.1.1.254', '--src', '10.1.1.77', '--vs', 'a']);
  assert.is(r.code, 1);
  assert.match(r.err, /10\.1\.1\.77 is not an address of virtual server 'a'/);
  assert.match(String(configVerdict((c) => { c.virtualServers[0]!.routes = [{ dst: '10.9.0.0/16', via: '10.2.2.254' }]; })), /not on a connected network/);
  r = await cli(['route', 'add', '10.9.0.0/16', '--via', '10.2.2.254', '--vs', 'a']);
  assert.match(r.err, /not on a connected network/);
  stack.vs('a').addRule({ priority: 100, from: '10.1.1.0/24', table: 100 });
  const lib = libraryVerdict(() => stack.vs('a').addRule({ priority: 100, table: 200 }));
  assert.match(String(lib), /duplicate rule priority 100/);
  assert.match(String(configVerdict((c) => { c.virtualServers[0]!.rules = [{ priority: 100, table: 100 }, { priority: 100, table: 200 }]; })), /duplicate rule priority 100/);
  // A valid route goes in.
  r = await cli(['route', 'add', '10.9.0.0/16', '--via', '10.1.1.254', '--vs', 'a']);
  assert.is(r.code, 0, r.err);
});

test("'onlink': a gateway outside the link's prefixes is accepted only when named on a link, the same everywhere", async () => {
  const link = 'm0.10';
  assert.match(String(configVerdict((c) => { c.virtualServers[0]!.routes = [{ dst: 'default', via: '192.0.2.1', onlink: true }]; })), /'onlink' needs 'via' and 'link'/);
  assert.match(String(configVerdict((c) => { c.virtualServers[0]!.routes = [{ dst: 'default', via: '192.0.2.1', link, onlink: 'yes' as unknown as boolean }]; })), /onlink: must be true or false/);
  assert.is(configVerdict((c) => { c.virtualServers[0]!.routes = [{ dst: 'default', via: '192.0.2.1', link, onlink: true }]; }), null);
  let r = await cli(['route', 'add', '10.8.0.0/16', '--via', '192.0.2.1', '--link', link, '--vs', 'a']);
  assert.match(r.err, /not on a connected network/);
  r = await cli(['route', 'add', '10.8.0.0/16', '--via', '192.0.2.1', '--link', link, '--onlink', '--vs', 'a']);
  assert.is(r.code, 0, r.err);
  const lib = libraryVerdict(() => stack.vs('a').addRoute({ dst: '10.7.0.0/16', via: '192.0.2.1', onlink: true }));
  assert.match(String(lib), /'onlink' needs 'via' and 'link'/);
});

test('names and link fields: the same rules for a file and a run-time change', async () => {
  assert.match(String(configVerdict((c) => { c.virtualServers[0]!.name = 'bad name'; })), /"bad name" is not valid/);
  let r = await cli(['vs', 'add', 'bad name']);
  assert.is(r.code, 1);
  assert.match(r.err, /"bad name" is not valid/);
  const raw = await controlRequest(sock, { cmd: 'vs.add', name: 'z', links: [{ device: 'm0', vlan: '30', colour: 'red' }] });
  assert.is(raw.ok, false);
  assert.match(String(raw.error), /vlan: must be an integer|unknown key 'colour'/);
  assert.match(String(configVerdict((c) => c.virtualServers.push({ name: 'z', links: [{ device: 'm0', vlan: 5000 }] }))), /vlan: must be 1\.\.4094/);
  r = await cli(['vs', 'add', 'z', '--device', 'm0', '--vlan', '5000']);
  assert.match(r.err, /vlan: must be 1\.\.4094/);
  r = await cli(['vs', 'add', 'z', '--device', 'm0', '--vlan', '30', '--mac', '01:00:5e:00:00:01']);
  assert.match(r.err, /multicast address/);
  assert.not.ok(stack.engine.vsByName.has('z'));
  assert.instance((() => { try { stack.createVs('z', [{ device: 'nope' }]); } catch (e) { return e; } return null; })(), ValidationError);
});

test('a VS added without a link gets one later (link add), then addresses and traffic', async () => {
  let r = await cli(['vs', 'add', 'late']);
  assert.is(r.code, 0, r.err);
  r = await cli(['link', 'add', 'm0', '--vs', 'late', '--vlan', '40']);
  assert.is(r.code, 0, r.err);
  r = await cli(['address', 'add', '10.4.4.1/24', '--vs', 'late']);
  assert.is(r.code, 0, r.err);
  const links = stack.show('links', { vs: 'late' }) as { link: string; vlan: number; addresses: string[] }[];
  assert.equal(links.map((l) => [l.link, l.vlan, l.addresses]), [['m0.40', 40, ['10.4.4.1/24']]]);
  // The same rules as for any link.
  r = await cli(['link', 'add', 'm0', '--vs', 'late', '--vlan', '10']);
  assert.is(r.code, 1);
  assert.match(r.err, /same MAC is already used by link 'm0\.10' of virtual server 'a'/);
  r = await cli(['link', 'del', 'm0.40', '--vs', 'late']);
  assert.is(r.code, 0, r.err);
  assert.is((stack.show('links', { vs: 'late' }) as unknown[]).length, 0);
  // The library does the same.
  stack.vs('late').addLink({ device: 'm0', vlan: 41, addresses: ['10.4.5.1/24'] });
  assert.is((stack.show('addresses', { vs: 'late' }) as unknown[]).length, 1);
  // A config file may declare a VS with no link, like `vs add` without --device.
  assert.is(configVerdict((c) => c.virtualServers.push({ name: 'empty', links: [] })), null);
});

test('a link refused for one of its addresses leaves nothing behind', () => {
  const before = snapshot();
  const err = libraryVerdict(() => stack.vs('late').addLink({ device: 'm0', vlan: 42, addresses: ['10.4.6.1/24', '127.0.0.1/8'] }));
  assert.match(String(err), /addresses\[1\]: 127\.0\.0\.1\/8 is not a usable unicast address/);
  assert.is(snapshot(), before);
});

test.run();
