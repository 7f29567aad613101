/**
 * Regression: an IPv6 address on a link whose MTU is below 1280 was taken (`xdpstack vs add c
 * --device m1 --mtu 500 --address fd00:7::1/64`, the same in a file and the API), although IPv6
 * needs links of 1280 bytes or more (RFC 8200 section 5): the link could carry none of the packets
 * IPv6 peers may send without fragmenting. Now refused with one message in a config file, on the
 * control socket (CLI) and in the library; IPv4 addresses there are still taken (minimum 68).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateConfig } from '../stack/control/config';
import { cliAt, ControlledStack, startControlled, stopControlled } from './lib/control';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-mtu6-'));
const sock = path.join(tmp, 'm.sock');
let cs: ControlledStack;
const WHY = /fd00:7::1\/64: IPv6 needs a link MTU of at least 1280 \(RFC 8200 section 5\), link 'm0\.7' has 500/;

test.before(async () => {
  cs = await startControlled({ name: 'mtu6', engine: { dadTransmits: 0 }, devices: [{ name: 'm0', driver: 'memory' }], virtualServers: [] }, sock);
});
test.after(async () => { await stopControlled(cs, tmp); });

test('config file: IPv6 on a link of MTU 500 is refused, IPv4 taken', () => {
  const cfg = (addresses: string[]) => ({ devices: [{ name: 'm0', driver: 'memory' }], virtualServers: [{ name: 'c', links: [{ device: 'm0', vlan: 7, mtu: 500, addresses }] }] });
  assert.throws(() => validateConfig(cfg(['10.7.7.1/24', 'fd00:7::1/64']), 'f.json'), (e: Error) => WHY.test(e.message) && /virtualServers\[0\]\.links\[0\]\.addresses\[1\]/.test(e.message));
  assert.not.throws(() => validateConfig(cfg(['10.7.7.1/24']), 'f.json'));
  // A device of a small MTU: its links have it too.
  assert.throws(() => validateConfig({ devices: [{ name: 'm0', driver: 'memory', mtu: 1000 }], virtualServers: [{ name: 'c', links: [{ device: 'm0', addresses: ['fd00::1/64'] }] }] }, 'g.json'),
    /IPv6 needs a link MTU of at least 1280 \(RFC 8200 section 5\), link 'm0' has 1000/);
});

test('CLI (control socket) and library: the same refusal; nothing is left behind', async () => {
  const r = await cliAt(sock, ['vs', 'add', 'c', '--device', 'm0', '--vlan', '7', '--mtu', '500', '--address', 'fd00:7::1/64']);
  assert.is(r.code, 1, r.err);
  assert.match(r.err, WHY);
  assert.is(r.err.split('\n').length, 1, 'one line');
  assert.throws(() => cs.stack.vs('c'), /no virtual server 'c'/, 'the refused VS was not created');
  // A link that came with IPv4 only: an IPv6 address added later is refused the same way.
  const ok = await cliAt(sock, ['vs', 'add', 'c', '--device', 'm0', '--vlan', '7', '--mtu', '500', '--address', '10.7.7.1/24']);
  assert.is(ok.code, 0, ok.err);
  const add = await cliAt(sock, ['address', 'add', 'fd00:7::1/64', '--vs', 'c']);
  assert.is(add.code, 1);
  assert.match(add.err, WHY);
  assert.throws(() => cs.stack.vs('c').addAddress('fd00:7::1/64'), WHY);
  assert.equal((cs.stack.show('addresses', { vs: 'c' }) as { address: string }[]).map((a) => a.address), ['10.7.7.1/24']);
});

test.run();
