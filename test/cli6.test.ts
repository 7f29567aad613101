/**
 * Operator side of IPv6: `show` rows format every address of either family (IPv4 numbers and IPv6
 * `Ip6` values) through one path, `show addresses` has the DAD state of each address (RFC 4862
 * 5.4: tentative until DAD passes, duplicate when another node has it), `show neighbors` the
 * neighbor states as `ip neigh` names them, `show routes` prints ::/0 as 'default' like
 * `ip -6 route`. Also: the CLI's files import no circle, and replay finds the device MAC from
 * IPv6 traffic to the config's IPv6 addresses.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  addressRow, addrOrNull, cidrText, hostPort, linkAddressTexts, neighborRow, neighborStateName, routeDstText, routeRow, ruleRow,
} from '../stack/show';
import { formatShow } from '../stack/control/format';
import { hostInNet } from '../stack/cli/cli';
import { createStack } from '../stack/stack';
import { captureMacFor } from '../stack/replay';
import { AddrMap, ANY6, parseIp6 } from '../protocols/ip/addr';
import { parseIpv4 } from '../protocols/ipv4';
import { NSTATE_NAMES } from '../stack/neighbor';

const ROOT = path.resolve(__dirname, '..', '..');
const v6 = parseIp6;
const MAC = new Uint8Array([2, 0, 0, 0, 0, 9]);

test('addresses of both families format through one path; 0 and :: are "none"', () => {
  assert.is(cidrText(v6('FD00:0:0:0::1'), 64), 'fd00::1/64');
  assert.is(cidrText(parseIpv4('10.1.1.1'), 24), '10.1.1.1/24');
  assert.is(cidrText(v6('2001:db8:0:0:1:0:0:1'), 128), '2001:db8::1:0:0:1/128'); // RFC 5952 4.2.3: the first of equal runs
  assert.is(addrOrNull(0), null);
  assert.is(addrOrNull(ANY6), null);
  assert.is(addrOrNull(undefined), null);
  assert.is(addrOrNull(v6('fe80::1')), 'fe80::1');
  assert.is(addrOrNull(parseIpv4('10.1.1.254')), '10.1.1.254');
  assert.is(hostPort(v6('fd00::1'), 80), '[fd00::1]:80');
  assert.is(hostPort(ANY6, 80), '*:80');
  assert.is(hostPort(0, 7), '*:7');
  assert.is(hostPort(parseIpv4('10.1.1.1'), 7), '10.1.1.1:7');
  assert.equal(linkAddressTexts([{ addr: parseIpv4('10.1.1.1'), prefixLen: 24 }, { addr: v6('fe80::ff:fe00:9'), prefixLen: 64 }]), ['10.1.1.1/24', 'fe80::ff:fe00:9/64']);
});

test('show addresses: a state column (preferred, tentative, duplicate) and no broadcast for IPv6', () => {
  const rows = [
    addressRow('a', 'l0', { addr: parseIpv4('10.1.1.1'), prefixLen: 24, broadcast: parseIpv4('10.1.1.255') }),
    addressRow('a', 'l0', { addr: v6('fd00:1::1'), prefixLen: 64, broadcast: 0, state: 'tentative' }),
    addressRow('a', 'l0', { addr: v6('fd00:1::2'), prefixLen: 64, broadcast: 0, state: 'duplicate' }),
    addressRow('a', 'l0', { addr: v6('fe80::1'), prefixLen: 64, broadcast: 0, state: 'preferred' }),
  ];
  assert.equal(rows[0], { vs: 'a', link: 'l0', address: '10.1.1.1/24', broadcast: '10.1.1.255', state: 'preferred' });
  assert.equal(rows[1], { vs: 'a', link: 'l0', address: 'fd00:1::1/64', broadcast: null, state: 'tentative' });
  assert.is(rows[2]!.state, 'duplicate');
  assert.is(rows[3]!.state, 'preferred');
  const table = formatShow('addresses', rows);
  assert.match(table[0]!, /^VS\s+LINK\s+ADDRESS\s+BROADCAST\s+STATE$/);
  assert.match(table[2]!, /^a\s+l0\s+fd00:1::1\/64\s+-\s+tentative$/);
  assert.match(table[3]!, /^a\s+l0\s+fd00:1::2\/64\s+-\s+duplicate$/);
});

test('show routes: ::/0 is "default" as in ip -6 route; IPv6 gateways and sources; 0 and :: mean none', () => {
  assert.is(routeDstText(ANY6, 0), 'default');
  assert.is(routeDstText(0, 0), 'default');
  assert.is(routeDstText(v6('fd00:9::'), 48), 'fd00:9::/48');
  assert.is(routeDstText(v6('::'), 1), '::/1');
  const viaLl = routeRow('a', 254, { dst: ANY6, prefixLen: 0, gateway: v6('fe80::1'), link: 0, src: ANY6, metric: 1024, proto: 'static' }, 'l0');
  assert.equal(viaLl, { vs: 'a', table: 254, dst: 'default', via: 'fe80::1', link: 'l0', src: null, metric: 1024, proto: 'static' });
  const connected = routeRow('a', 254, { dst: v6('fd00:1::'), prefixLen: 64, gateway: 0, link: 0, src: v6('fd00:1::1'), metric: 0, proto: 'connected' }, 'l0');
  assert.equal(connected, { vs: 'a', table: 254, dst: 'fd00:1::/64', via: null, link: 'l0', src: 'fd00:1::1', metric: 0, proto: 'connected' });
  const v4 = routeRow('a', 100, { dst: parseIpv4('10.9.0.0'), prefixLen: 16, gateway: parseIpv4('10.1.1.254'), link: 1, src: 0, metric: 0, proto: 'static' }, null);
  assert.equal(v4, { vs: 'a', table: 100, dst: '10.9.0.0/16', via: '10.1.1.254', link: null, src: null, metric: 0, proto: 'static' });
  const table = formatShow('routes', [viaLl, connected]);
  assert.match(table[1]!, /^a\s+254\s+default\s+fe80::1\s+l0\s+-\s+1024\s+static$/);
});

test('show rules: an IPv6 source prefix', () => {
  assert.equal(ruleRow('a', { priority: 100, src: v6('fd00:2::'), srcLen: 64, table: 100 }), { vs: 'a', priority: 100, from: 'fd00:2::/64', fwmark: null, table: 100 });
  assert.equal(ruleRow('a', { priority: 32766, src: 0, srcLen: 0, table: 254 }).from, 'all');
  assert.equal(ruleRow('a', { priority: 200, src: ANY6, srcLen: 0, table: 254 }).from, '::/0');
  assert.equal(ruleRow('a', { priority: 5, src: parseIpv4('10.1.0.0'), srcLen: 16, mark: 7, table: 9 }), { vs: 'a', priority: 5, from: '10.1.0.0/16', fwmark: 7, table: 9 });
});

test('show neighbors: IPv6 neighbors with the states ip neigh shows; no MAC while INCOMPLETE', () => {
  // ARP and NDP share the cache's states (RFC 4861 7.3.2 names).
  assert.equal([...NSTATE_NAMES].slice(0, 5), ['INCOMPLETE', 'REACHABLE', 'STALE', 'DELAY', 'PROBE']);
  NSTATE_NAMES.forEach((name, i) => assert.is(neighborStateName(i), name));
  assert.is(neighborStateName(99), '99');
  const inc = neighborRow('a', 'l0', { ip: v6('fe80::1'), state: 0, mac: MAC, queue: { length: 2 } });
  assert.equal(inc, { vs: 'a', link: 'l0', address: 'fe80::1', mac: null, state: 'INCOMPLETE', queued: 2 });
  for (let s = 1; s < NSTATE_NAMES.length; s++) {
    const r = neighborRow('a', 'l0', { ip: v6('fd00:1::fe'), state: s, mac: MAC, queue: { length: 0 } });
    assert.is(r.address, 'fd00:1::fe');
    assert.is(r.state, NSTATE_NAMES[s]);
    assert.is(r.mac, (NSTATE_NAMES[s] as string) === 'FAILED' ? null : '02:00:00:00:00:09');
  }
  const v4 = neighborRow('a', 'l0', { ip: parseIpv4('10.1.1.254'), state: 1, mac: MAC, queue: { length: 0 } });
  assert.equal(v4, { vs: 'a', link: 'l0', address: '10.1.1.254', mac: '02:00:00:00:00:09', state: 'REACHABLE', queued: 0 });
});

test('stack.show: IPv4 rows keep their columns, addresses gain their state', () => {
  const stack = createStack({
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }], routes: [{ dst: 'default', via: '10.1.1.254' }], rules: [{ priority: 10, from: '10.1.1.0/24', table: 254 }] }],
  });
  try {
    assert.equal(stack.show('addresses'), [{ vs: 'a', link: 'm0.10', address: '10.1.1.1/24', broadcast: '10.1.1.255', state: 'preferred' }]);
    const routes = stack.show('routes') as Record<string, unknown>[];
    assert.ok(routes.some((r) => r.dst === 'default' && r.via === '10.1.1.254' && r.link === 'm0.10' && r.src === null));
    assert.ok(routes.some((r) => r.dst === '10.1.1.0/24' && r.via === null && r.src === '10.1.1.1' && r.proto === 'connected'));
    assert.equal((stack.show('rules') as { priority: number; from: string }[]).map((r) => [r.priority, r.from]), [[10, '10.1.1.0/24'], [32766, 'all']]);
    assert.equal((stack.show('links') as { addresses: string[] }[])[0]!.addresses, ['10.1.1.1/24']);
  } finally {
    stack.close();
  }
});

test('replay: the device MAC is found from IPv6 frames to the config\'s IPv6 addresses', () => {
  const ours = new AddrMap<true>().set(v6('fd00:1::1'), true).set(parseIpv4('10.1.1.1'), true);
  const frame = (dstMac: number[], dst6: string, vlan?: number): { data: Uint8Array } => {
    const tag = vlan !== undefined ? 4 : 0;
    const b = new Uint8Array(14 + tag + 40);
    b.set(dstMac, 0);
    b.set([2, 0, 0, 0, 0, 0x77], 6);
    if (vlan !== undefined) b.set([0x81, 0x00, vlan >> 8, vlan & 0xff], 12);
    b.set([0x86, 0xdd], 12 + tag);
    b.set([0x60, 0, 0, 0, 0, 8, 17, 64], 14 + tag);
    b.set(v6('fd00:1::99').bytes(), 14 + tag + 8);
    b.set(v6(dst6).bytes(), 14 + tag + 24);
    return { data: b };
  };
  const theirs = [0x02, 0xaa, 0, 0, 0, 1];
  const recs = [frame(theirs, 'fd00:1::1', 10), frame(theirs, 'fd00:1::1'), frame([0x02, 0xbb, 0, 0, 0, 2], 'fd00:1::2'), frame([0x02, 0xbb, 0, 0, 0, 2], 'fd00:1::2')];
  assert.is(captureMacFor(recs, ours), '02:aa:00:00:00:01');
  // Frames to no address of ours give no answer.
  assert.is(captureMacFor(recs.slice(2), ours), null);
});

test('lab --net6: peer addresses in RFC 5952 form (the longest zero run compressed), through the one IPv6 parser', () => {
  assert.is(hostInNet('fd00:0:0:1::/64', 2, 6, 'net6'), 'fd00:0:0:1::2/64');
  assert.is(hostInNet('fd00:1::/64', 3, 6, 'net6'), 'fd00:1::3/64');
  assert.is(hostInNet('2001:db8::ff00/120', 5, 6, 'net6'), '2001:db8::ff05/120');
  assert.is(hostInNet('10.1.1.77/24', 2, 4, 'net'), '10.1.1.2/24');
  assert.throws(() => hostInNet('10.1.1.0/24', 2, 6, 'net6'), /option '--net6' expects an IPv6 network like fd00::\/64, got '10\.1\.1\.0\/24'/);
  assert.throws(() => hostInNet('fd00::/64', 2, 4, 'net'), /expects an IPv4 network/);
  assert.throws(() => hostInNet('fd00::zz/64', 2, 6, 'net6'), /expects an IPv6 network/);
  assert.throws(() => hostInNet('fd00::/127', 2, 6, 'net6'), /prefix length 127 leaves no room for hosts/);
  assert.throws(() => hostInNet('fd00::/126', 3, 6, 'net6'), /has no room for 2 peers/);
});

test('the CLI files import no circle (stack/cli/cli.ts and stack/cli/stack-commands.ts share stack/cli/args.ts)', () => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'import-circles.js'), 'stack'], { encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /no import circles among \d+ files/);
  // Type-only imports included, no circle anywhere under stack/ (the engine's stages depend on
  // host interfaces of their own; the transport keeps the per-VS socket tables).
  const t = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'import-circles.js'), '--types', 'stack'], { encoding: 'utf8', timeout: 30_000 });
  assert.is(t.status, 0, t.stdout + t.stderr);
  assert.match(t.stdout, /no import circles among \d+ files \(type-only imports included\)/);
});

test.run();
