/**
 * IPv6 in the one validator (stack/control/validate.ts): addresses, routes and rules accept IPv6 where they
 * accept IPv4, with the rules of RFC 4291 (unicast only: not ::, ::1, multicast or IPv4-mapped),
 * RFC 4007 (a link-local gateway needs its link; `fe80::1%LINK`) and one family per route. Every
 * form is checked directly, in a config file read by the loader, and (for the refused ones) through
 * the control socket and the CLI, which must give the validator's verdict.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  Checker, checkAddress, checkRoute, checkRule, interfaceAddressProblem, isUsableUnicast, LinkFacts, parseCidrText,
  parseRoute, parseRuleFrom, routeFamilyOf, splitScopedVia, ValidationState,
} from '../stack/control/validate';
import { ConfigError, loadConfig, StackConfig, validateConfig } from '../stack/control/config';
import type { Stack } from '../stack/stack';
import { controlRequest } from '../stack/control/control';
import { cliAt, ControlledStack, startControlled, stopControlled } from './lib/control';
import { Ip6, parseAddr, parseIp6 } from '../protocols/ip/addr';
import { parseIpv4 } from '../protocols/ipv4';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-validate6-'));
const sock = path.join(tmp, 'v6.sock');

// ------------------------------------------------------------------ a fixed state to check against

/** VS 'a': link l0 (m0 VLAN 10) with 10.1.1.1/24 and fd00:1::1/64; link l1 (m0 VLAN 20) with fd00:2::1/64. */
function facts(): LinkFacts[] {
  return [
    { vs: 'a', name: 'l0', device: 'm0', vlan: 10, mac: '02:00:00:00:00:01', addrs: [{ addr: parseIpv4('10.1.1.1'), prefixLen: 24 }, { addr: parseIp6('fd00:1::1'), prefixLen: 64 }] },
    { vs: 'a', name: 'l1', device: 'm0', vlan: 20, mac: '02:00:00:00:00:01', addrs: [{ addr: parseIp6('fd00:2::1'), prefixLen: 64 }] },
  ];
}

function state(links = facts()): ValidationState {
  return {
    device: (n) => (n === 'm0' ? { mtu: 1500, mac: '02:00:00:00:00:01' } : undefined),
    deviceNames: () => ['m0'],
    macUser: () => undefined,
    addressUser: (d, v, a) => links.find((l) => l.device === d && l.vlan === v && l.addrs.some((x) => String(x.addr) === String(a))) ? 'virtual server \'a\'' : undefined,
    links: () => links,
    hasRulePriority: () => false,
  };
}

/** The problems `check` reports, as "path: message" lines ([] when accepted). */
function problems(check: (c: Checker) => void): string[] {
  const c = new Checker();
  check(c);
  return c.problems.map((p) => `${p.path}: ${p.message}`);
}

const route = (r: Record<string, unknown>) => problems((c) => checkRoute(c, r, 'r', state(), 'a'));
const rule = (r: Record<string, unknown>) => problems((c) => checkRule(c, { priority: 10, table: 100, ...r }, 'u', state(), 'a', new Set()));
/** Checks an address for a new link on m0 VLAN 30 (nothing there yet). */
const address = (a: unknown, vlan = 30) => problems((c) => checkAddress(c, a, 'x', state(), { vs: 'a', name: 'l3', device: 'm0', vlan, mac: '02:00:00:00:00:01', addrs: [] }));

function refused(got: string[], field: string, why: string): void {
  assert.ok(got.length > 0, `expected a refusal (${why}), got none`);
  assert.ok(got.some((p) => p.startsWith(`${field}: `) && p.includes(why)), `expected "${field}: ...${why}..." in:\n  ${got.join('\n  ')}`);
}

// ------------------------------------------------------------------ addresses

test('addresses: IPv6 unicast CIDRs are accepted, including a link-local address on a link', () => {
  for (const a of ['fd00::1/64', '2001:db8::1/128', '2001:db8:0:1::5/1', 'fe80::1/64', 'fe80::1234:56ff:fe78:9abc/64', '2001:db8::10.1.1.1/96', '10.1.1.1/24']) {
    assert.equal(address(a), [], a);
  }
});

test('addresses: ::, ::1, multicast and IPv4-mapped are refused; prefix 1..128; IPv4 messages unchanged', () => {
  const unicast = 'is not a usable unicast address (not ::, ::1, multicast ff00::/8 or IPv4-mapped ::ffff:0:0/96)';
  refused(address('::/64'), 'x', `::/64 ${unicast}`);
  refused(address('::1/128'), 'x', `::1/128 ${unicast}`);
  refused(address('ff02::1/64'), 'x', `ff02::1/64 ${unicast}`);
  refused(address('ff05::1:3/64'), 'x', unicast);
  refused(address('::ffff:10.1.1.1/96'), 'x', unicast);
  refused(address('fd00::1/0'), 'x', 'fd00::1/0: prefix length must be 1..128');
  refused(address('fd00::1/129'), 'x', 'not an IPv6 CIDR: "fd00::1/129" (prefix length must be 0..128)');
  refused(address('fd00::1'), 'x', 'not an IPv6 CIDR: "fd00::1" (expected address/prefix-length, e.g. fd00::1/64)');
  refused(address('fd00::g/64'), 'x', 'not an IPv6 address: "fd00::g"');
  refused(address('fd00::1::2/64'), 'x', 'more than one "::"');
  refused(address('fe80::1%l0/64'), 'x', 'a zone such as %l0 belongs to a gateway only');
  refused(address(64), 'x', 'must be a string like "10.0.0.1/24" or "fd00::1/64"');
  // Today's IPv4 texts stay as they were.
  refused(address('10.1.1.1'), 'x', 'not an IPv4 CIDR');
  refused(address('127.0.0.1/8'), 'x', '127.0.0.1/8 is not a usable unicast address (not 0/8, 127/8, multicast or 240/4)');
  refused(address('10.1.1.1/0'), 'x', 'prefix length must be 1..32');
});

test('addresses: an address already on the (device, VLAN) is refused whatever its spelling (compared as values)', () => {
  refused(address('FD00:1:0::1/48', 10), 'x', 'fd00:1::1 is already used on device m0 VLAN 10 by virtual server \'a\'');
  // The same address on another VLAN is another segment: accepted (many VSes may share a prefix).
  assert.equal(address('fd00:1::1/64', 30), []);
  // A link-local address is unique per link only.
  assert.equal(address('fe80::1/64', 10), []);
  const self = problems((c) => checkAddress(c, 'fd00:5::1/64', 'x', state(), { vs: 'a', name: 'l3', device: 'm0', vlan: 30, mac: '02:00:00:00:00:01', addrs: [{ addr: parseIp6('fd00:5::1'), prefixLen: 64 }] }));
  refused(self, 'x', "fd00:5::1 is already used on device m0 VLAN 30 by link 'l3' itself");
});

test('isUsableUnicast / interfaceAddressProblem: one rule for both families', () => {
  for (const s of ['10.0.0.1', '192.0.2.1', 'fd00::1', '2001:db8::1', 'fe80::1', '::2']) assert.ok(isUsableUnicast(parseAddr(s)), s);
  for (const s of ['0.0.0.0', '0.1.2.3', '127.0.0.1', '224.0.0.1', '240.0.0.1', '255.255.255.255', '::', '::1', 'ff02::1', 'ff02::1:ff00:1', '::ffff:1.2.3.4']) {
    assert.not.ok(isUsableUnicast(parseAddr(s)), s);
  }
  assert.is(interfaceAddressProblem(parseIp6('fd00::1'), 64, 'fd00::1/64'), null);
  assert.is(interfaceAddressProblem(parseIp6('fd00::1'), 128, 'fd00::1/128'), null);
  assert.match(String(interfaceAddressProblem(parseIp6('fd00::1'), 0, 'fd00::1/0')), /prefix length must be 1\.\.128/);
});

test('parseCidrText: both families, IPv4 through the IPv4 parser (its messages), IPv6 values', () => {
  const r = parseCidrText('fd00:1::/48');
  assert.instance(r.addr, Ip6);
  assert.is(String(r.addr), 'fd00:1::');
  assert.is(r.prefixLen, 48);
  assert.equal(parseCidrText('10.1.0.0/16'), { addr: parseIpv4('10.1.0.0'), prefixLen: 16 });
  assert.throws(() => parseCidrText('10.1.0.0/33'), /not an IPv4 CIDR: "10\.1\.0\.0\/33" \(prefix length must be 0\.\.32\)/);
  assert.throws(() => parseCidrText(':::/64'), /not an IPv6/);
});

// ------------------------------------------------------------------ routes

test('routes: IPv6 destinations, gateways and sources are accepted', () => {
  const ok = [
    { dst: 'fd00:9::/48', via: 'fd00:1::fe' },
    { dst: '::/0', via: 'fd00:2::fe' },
    { dst: 'default', via: 'fd00:1::fe' },
    { dst: 'default', via: 'fe80::1', link: 'l0' },
    { dst: 'default', via: 'fe80::1%l1' },
    { dst: 'default', via: 'fe80::1%l1', link: 'l1' },
    { dst: '2001:db8::/32', via: 'fe80::1%l0', metric: 10, table: 100 },
    { dst: 'fd00:9::/48', link: 'l1' },
    { dst: 'fd00:9::/48', via: 'fd00:1::fe', src: 'fd00:1::1' },
    { dst: 'default', link: 'l0', src: 'fd00:1::1' },
    { dst: '2001:db8:77::/48', via: '2001:db8:77::1', link: 'l1', onlink: true },
    { dst: 'fd00:9::5/128', via: 'fd00:2::fe' },
    // IPv4 as before.
    { dst: 'default', via: '10.1.1.254' },
    { dst: '10.9.0.0/16', via: '10.1.1.254', src: '10.1.1.1' },
  ];
  for (const r of ok) assert.equal(route(r), [], JSON.stringify(r));
});

test('routes: a link-local gateway needs its link (Linux needs dev), given as link or as a zone', () => {
  refused(route({ dst: 'default', via: 'fe80::1' }), 'r.via', "link-local gateway fe80::1 needs its link: give 'link', or write it as fe80::1%LINK");
  refused(route({ dst: '::/0', via: 'fe80::1%l9' }), 'r.via', "virtual server 'a' has no link 'l9' (links: l0, l1)");
  refused(route({ dst: '::/0', via: 'fe80::1%l0', link: 'l1' }), 'r.via', "fe80::1%l0 names link 'l0' but 'link' is 'l1'");
  refused(route({ dst: '::/0', via: 'fd00:1::fe%l0' }), 'r.via', 'a zone (%LINK) is only for a link-local gateway (fe80::/10)');
  refused(route({ dst: 'default', via: '10.1.1.254%l0' }), 'r.via', 'a zone (%LINK) is only for a link-local gateway');
  refused(route({ dst: 'default', via: 'fe80::1%' }), 'r.via', 'a zone (%LINK) is only for a link-local gateway');
});

test('routes: one family per route; default takes the gateway\'s family', () => {
  refused(route({ dst: '10.9.0.0/16', via: 'fd00:1::fe' }), 'r.via', 'gateway fd00:1::fe is IPv6 but the destination 10.9.0.0/16 is IPv4');
  refused(route({ dst: 'fd00:9::/48', via: '10.1.1.254' }), 'r.via', 'gateway 10.1.1.254 is IPv4 but the destination fd00:9::/48 is IPv6');
  refused(route({ dst: '0.0.0.0/0', via: 'fe80::1%l0' }), 'r.via', 'is IPv6 but the destination 0.0.0.0/0 is IPv4');
  refused(route({ dst: 'fd00:9::/48', via: 'fd00:1::fe', src: '10.1.1.1' }), 'r.src', '10.1.1.1 is IPv4 but the route is IPv6');
  refused(route({ dst: 'default', via: '10.1.1.254', src: 'fd00:1::1' }), 'r.src', 'fd00:1::1 is IPv6 but the route is IPv4 (write the destination as ::/0 for the other family)');
  assert.is(routeFamilyOf('default'), 4);
  assert.is(routeFamilyOf('default', parseIp6('fe80::1')), 6);
  assert.is(routeFamilyOf('default', undefined, parseIp6('fd00::1')), 6);
  assert.is(routeFamilyOf(parseIp6('::'), parseIpv4('10.0.0.1')), 6);
  assert.is(routeFamilyOf(parseIpv4('10.0.0.0'), parseIp6('fe80::1')), 4);
});

test('routes: bad IPv6 destinations, gateways and sources are refused with the field and the reason', () => {
  refused(route({ dst: 'fd00:9::1/48', via: 'fd00:1::fe' }), 'r.dst', 'fd00:9::1/48 has host bits set (did you mean fd00:9::/48?)');
  refused(route({ dst: 'fd00:9::/129', link: 'l0' }), 'r.dst', 'prefix length must be 0..128');
  refused(route({ dst: 'fd00:9:/48', link: 'l0' }), 'r.dst', 'not an IPv6 address');
  refused(route({ dst: 'default', via: 'ff02::2', link: 'l0' }), 'r.via', 'gateway ff02::2 is not a unicast address');
  refused(route({ dst: 'default', via: '::', link: 'l0' }), 'r.via', 'gateway :: is not a unicast address');
  refused(route({ dst: 'default', via: '::ffff:10.1.1.254' }), 'r.via', 'is not a unicast address');
  refused(route({ dst: 'default', via: 'fd00:7::1' }), 'r.via', "gateway fd00:7::1 is not on a connected network of virtual server 'a'");
  refused(route({ dst: 'default', via: 'fd00:1::fe', link: 'l1' }), 'r.via', "gateway fd00:1::fe is not on a connected network of link 'l1'");
  refused(route({ dst: '::/0', via: 'fd00:1::fe', src: 'fd00:1::99' }), 'r.src', "fd00:1::99 is not an address of virtual server 'a'");
  refused(route({ dst: '::/0', via: 'fd00:1::zz' }), 'r.via', 'not an IPv6 address: "fd00:1::zz"');
  refused(route({ dst: 'fd00:9::/48' }), 'r', "give 'via' or 'link': virtual server 'a' has 2 links");
});

test('splitScopedVia: fe80::1%LINK is via fe80::1 on LINK; conflicting or unscoped specs are left to the validator', () => {
  assert.equal(splitScopedVia({ dst: 'default', via: 'fe80::1%l0' }), { dst: 'default', via: 'fe80::1', link: 'l0' });
  assert.equal(splitScopedVia({ dst: 'default', via: 'fe80::1%l0', link: 'l0' }), { dst: 'default', via: 'fe80::1', link: 'l0' });
  const conflict = { dst: 'default', via: 'fe80::1%l0', link: 'l1' };
  assert.is(splitScopedVia(conflict), conflict);
  const plain = { dst: 'default', via: 'fd00::1' };
  assert.is(splitScopedVia(plain), plain);
  const empty = { dst: 'default', via: 'fe80::1%' };
  assert.is(splitScopedVia(empty), empty);
});

test('parseRoute / parseRuleFrom: the values the engine applies, read as the validator reads them', () => {
  const d = parseRoute({ dst: 'default', via: 'fe80::1%l0' });
  assert.equal([String(d.dst), d.prefixLen, String(d.gateway), d.src, d.link, d.family], ['::', 0, 'fe80::1', 0, 'l0', 6]);
  const d4 = parseRoute({ dst: 'default', via: '10.1.1.254' });
  assert.equal([d4.dst, d4.prefixLen, d4.gateway, d4.family], [0, 0, parseIpv4('10.1.1.254'), 4]);
  assert.equal(parseRoute({ dst: 'default', link: 'l0' }).family, 4);
  assert.equal(String(parseRoute({ dst: 'default', link: 'l0', src: 'fd00:1::1' }).dst), '::');
  const n = parseRoute({ dst: 'fd00:9::/48', via: 'fd00:1::fe', src: 'fd00:1::1' });
  assert.equal([String(n.dst), n.prefixLen, String(n.gateway), String(n.src), n.link, n.family], ['fd00:9::', 48, 'fd00:1::fe', 'fd00:1::1', undefined, 6]);
  assert.throws(() => parseRoute({ dst: 'fd00:9::/129' }), /prefix length must be 0\.\.128/);
  assert.equal(parseRuleFrom(undefined), { src: 0, srcLen: 0 });
  assert.equal(parseRuleFrom('all'), { src: 0, srcLen: 0 });
  assert.equal(parseRuleFrom('10.1.1.5'), { src: parseIpv4('10.1.1.5'), srcLen: 32 });
  const r6 = parseRuleFrom('fd00:2::5/64');
  assert.equal([String(r6.src), r6.srcLen], ['fd00:2::', 64]);
  const h6 = parseRuleFrom('fd00:2::5');
  assert.equal([String(h6.src), h6.srcLen], ['fd00:2::5', 128]);
  // ::/0 stays IPv6 (a value, not the number 0 of 'all').
  assert.instance(parseRuleFrom('::/0').src, Ip6);
});

// ------------------------------------------------------------------ rules

test('rules: from accepts IPv6 prefixes and addresses', () => {
  for (const from of ['fd00:1::/64', 'fd00:1::5', '::/0', 'all', '10.1.0.0/16', '10.1.1.5']) assert.equal(rule({ from }), [], from);
  refused(rule({ from: 'fd00:1::/200' }), 'u.from', 'prefix length must be 0..128');
  refused(rule({ from: 'fd00:1::zz' }), 'u.from', 'not an IPv6 address');
  refused(rule({ from: 'fd00:1::/64%l0' }), 'u.from', 'a zone such as %l0 belongs to a gateway only');
  refused(rule({ from: '10.1.0.0/40' }), 'u.from', 'not an IPv4 CIDR');
});

// ------------------------------------------------------------------ config files

function v6Config(): StackConfig {
  return {
    name: 'v6',
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [
      {
        name: 'a',
        links: [
          { name: 'l0', device: 'm0', vlan: 10, addresses: ['10.1.1.1/24', 'fd00:1::1/64', 'fe80::1/64'] },
          { name: 'l1', device: 'm0', vlan: 20, addresses: ['fd00:2::1/64'] },
        ],
        routes: [
          { dst: 'default', via: 'fe80::ff%l0' },
          { dst: '2001:db8::/32', via: 'fe80::fe', link: 'l1', table: 100 },
          { dst: 'fd00:9::/48', via: 'fd00:2::fe', src: 'fd00:2::1' },
          { dst: 'default', via: '10.1.1.254' },
        ],
        rules: [{ priority: 100, from: 'fd00:2::/64', table: 100 }, { priority: 101, from: 'fd00:1::1', table: 100 }],
      },
      // The same IPv6 prefix on another VLAN: another segment, another VS.
      { name: 'b', links: [{ device: 'm0', vlan: 30, addresses: ['fd00:1::1/64'] }], routes: [{ dst: '::/0', via: 'fd00:1::fe' }] },
    ],
    services: [{ type: 'udp-echo', vs: 'a', port: 7, address: 'fd00:1::1' }, { type: 'tcp-echo', vs: 'b', port: 7, address: '::' }],
  };
}

test('config files: IPv6 addresses, routes (link-local gateway, scoped or with link) and rules load', () => {
  const file = path.join(tmp, 'v6.json');
  fs.writeFileSync(file, JSON.stringify(v6Config(), null, 2));
  const cfg = loadConfig(file);
  assert.equal(cfg.virtualServers[0]!.links[0]!.addresses, ['10.1.1.1/24', 'fd00:1::1/64', 'fe80::1/64']);
  assert.is(cfg.virtualServers[0]!.routes![0]!.via, 'fe80::ff%l0');
});

test('config files: every IPv6 problem is reported at once, with its field path', () => {
  const c = v6Config() as any;
  c.virtualServers[0].links[0].addresses.push('ff02::1/64', 'FD00:1::1/128');
  c.virtualServers[0].routes.push({ dst: 'default', via: 'fe80::2' }, { dst: '10.2.0.0/16', via: 'fd00:1::fe' }, { dst: 'fd00:9::1/48', via: 'fd00:1::fe' });
  c.virtualServers[0].rules.push({ priority: 102, from: 'fd00::/129', table: 100 });
  c.virtualServers[1].links.push({ name: 'second', device: 'm0', vlan: 30, mac: '02:00:00:00:00:09', addresses: ['fd00:1::1/64'] });
  c.services.push({ type: 'udp-echo', vs: 'b', port: 9, address: 'fd00:3::1' });
  let msg = '';
  try {
    validateConfig(c, 'v6.json');
  } catch (e) {
    assert.instance(e, ConfigError);
    msg = (e as Error).message;
  }
  const want: [string, string][] = [
    ['virtualServers[0].links[0].addresses[3]', 'ff02::1/64 is not a usable unicast address'],
    ['virtualServers[0].links[0].addresses[4]', "fd00:1::1 is already used on device m0 VLAN 10 by link 'l0' itself"],
    ['virtualServers[0].routes[4].via', 'link-local gateway fe80::2 needs its link'],
    ['virtualServers[0].routes[5].via', 'gateway fd00:1::fe is IPv6 but the destination 10.2.0.0/16 is IPv4'],
    ['virtualServers[0].routes[6].dst', 'fd00:9::1/48 has host bits set'],
    ['virtualServers[0].rules[2].from', 'not an IPv6 CIDR: "fd00::/129" (prefix length must be 0..128)'],
    ['virtualServers[1].links[1].addresses[0]', 'fd00:1::1 is already used on device m0 VLAN 30 by virtualServers[1].links[0].addresses[0]'],
    ['services[2].address', "fd00:3::1 is not an address of virtual server 'b'"],
  ];
  for (const [field, why] of want) assert.ok(msg.includes(`${field}: ${why}`), `expected "${field}: ${why}" in:\n${msg}`);
  assert.match(msg, /^v6\.json: 8 problems:/);
});

// ------------------------------------------------------------------ the running stack: the same verdicts

let stack: Stack;
let ctl: ControlledStack;

const cli = (args: string[]) => cliAt(sock, args);

test.before(async () => {
  ctl = await startControlled({
    name: 'v6', devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [{ name: 'a', links: [{ name: 'l0', device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }, { name: 'l1', device: 'm0', vlan: 20 }] }],
  }, sock);
  stack = ctl.stack;
});
test.after(async () => {
  await stopControlled(ctl, tmp);
});

/** The reason part of a validator message ("...: address: REASON"), or null for another error / none. */
function validatorReason(msg: string | undefined): string | null {
  if (!msg) return null;
  const m = /^virtual server '[^']+': [^:]+(?:: [^:]*?)?: (.*)$/.exec(msg);
  return m && msg.startsWith("virtual server 'a': ") ? m[1]! : null;
}

test('control socket and config file give the same verdict on every address (one rule)', async () => {
  const forms = ['fd00:1::1/64', 'fe80::1/64', '2001:db8::1/128', '::/64', '::1/128', 'ff02::1/64', '::ffff:10.1.1.9/96', 'fd00::1/0', 'fd00::1/129',
    '10.1.1.7/24', '0.1.2.3/8', '127.0.0.2/8', '224.0.0.5/24', '255.255.255.255/32', '10.1.1.8/0'];
  for (const cidr of forms) {
    // The running stack's VS 'a', with `cidr` on its second link.
    const cfg: StackConfig = {
      devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
      virtualServers: [{ name: 'a', links: [{ name: 'l0', device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }, { name: 'l1', device: 'm0', vlan: 20, addresses: [cidr] }] }],
    };
    let cfgMsg: string | null = null;
    try { validateConfig(cfg, 'c.json'); } catch (e) { cfgMsg = (e as Error).message; }
    const r = await controlRequest(sock, { cmd: 'address.add', vs: 'a', link: 'l1', cidr }, { timeoutMs: 5000 });
    const reason = validatorReason(r.error);
    if (cfgMsg === null) {
      // Accepted by the validator: the control socket does not refuse it with a validator message.
      assert.is(reason, null, `${cidr}: config accepts it, control socket refused: ${r.error}`);
      if (r.ok) await controlRequest(sock, { cmd: 'address.del', vs: 'a', link: 'l1', cidr }, { timeoutMs: 5000 });
    } else {
      assert.not.ok(r.ok, `${cidr}: config refuses it (${cfgMsg}), control socket accepted`);
      assert.ok(reason !== null && cfgMsg.includes(reason), `${cidr}: config says\n  ${cfgMsg}\ncontrol socket says\n  ${r.error}`);
    }
  }
});

test('control socket: IPv6 routes go through the validator (link-local gateway, family, zone)', async () => {
  const add = (spec: Record<string, unknown>) => controlRequest(sock, { cmd: 'route.add', vs: 'a', ...spec }, { timeoutMs: 5000 });
  let r = await add({ dst: 'default', via: 'fe80::1' });
  assert.is(r.ok, false);
  assert.match(String(r.error), /^virtual server 'a': route default: via: link-local gateway fe80::1 needs its link/);
  r = await add({ dst: '10.2.0.0/16', via: 'fe80::1%l0' });
  assert.match(String(r.error), /via: gateway fe80::1 is IPv6 but the destination 10\.2\.0\.0\/16 is IPv4/);
  r = await add({ dst: 'default', via: 'fe80::1%l7' });
  assert.match(String(r.error), /virtual server 'a' has no link 'l7'/);
  r = await add({ dst: 'fd00:9::1/48', link: 'l1' });
  assert.match(String(r.error), /dst: fd00:9::1\/48 has host bits set \(did you mean fd00:9::\/48\?\)/);
  // A scoped gateway passes the validator as via + link (whatever the engine then says).
  r = await add({ dst: 'default', via: 'fe80::1%l1' });
  assert.is(validatorReason(r.error), null, String(r.error));
  r = await controlRequest(sock, { cmd: 'rule.add', vs: 'a', priority: 50, from: 'fd00::/129', table: 100 }, { timeoutMs: 5000 });
  assert.match(String(r.error), /^virtual server 'a': rule 50: from: .*prefix length must be 0\.\.128/);
});

test('CLI: IPv6 forms are refused with one clear line (exit 1), never a stack trace', async () => {
  const cases: [string[], RegExp][] = [
    [['address', 'add', 'ff02::1/64', '--vs', 'a', '--link', 'l1'], /ff02::1\/64 is not a usable unicast address/],
    [['address', 'add', 'fd00::1', '--vs', 'a', '--link', 'l1'], /not an IPv6 CIDR/],
    [['route', 'add', 'default', '--via', 'fe80::1', '--vs', 'a'], /link-local gateway fe80::1 needs its link/],
    [['route', 'add', '::/0', '--via', '10.1.1.254', '--vs', 'a'], /gateway 10\.1\.1\.254 is IPv4 but the destination ::\/0 is IPv6/],
    [['vs', 'add', 'x', '--device', 'm0', '--vlan', '40', '--address', '10.4.0.1/24,::1/128'], /links\[0\]\.addresses\[1\]: ::1\/128 is not a usable unicast address/],
    [['link', 'add', 'm0', '--vlan', '41', '--vs', 'a', '--address', 'fd00::1/0'], /fd00::1\/0: prefix length must be 1\.\.128/],
    [['rule', 'add', '--priority', '60', '--from', 'fd00:1::zz', '--table', '100', '--vs', 'a'], /not an IPv6 address: "fd00:1::zz"/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(args);
    assert.is(r.code, 1, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re, args.join(' '));
    assert.is(r.err.split('\n').length, 1, r.err);
    assert.not.match(r.err, /\n\s+at /);
  }
  assert.not.ok(stack.engine.vsByName.has('x'), 'a refused VS is not created');
  assert.is(stack.vs('a').raw.links.length, 2, 'a refused link is not added');
});

test('CLI: rule add/del (both through the control socket; IPv4 rules run today)', async () => {
  let r = await cli(['rule', 'add', '--priority', '70', '--from', '10.1.1.0/24', '--table', '100', '--vs', 'a']);
  assert.is(r.code, 0, r.err);
  assert.ok((stack.show('rules', { vs: 'a' }) as { priority: number; from: string }[]).some((x) => x.priority === 70 && x.from === '10.1.1.0/24'));
  r = await cli(['rule', 'add', '--priority', '70', '--table', '100', '--vs', 'a']);
  assert.is(r.code, 1);
  assert.match(r.err, /duplicate rule priority 70/);
  r = await cli(['rule', 'add', '--priority', '71', '--vs', 'a']);
  assert.is(r.code, 2);
  assert.match(r.err, /option --table N is required/);
  r = await cli(['rule', 'del', '--priority', '70', '--vs', 'a']);
  assert.is(r.code, 0, r.err);
  assert.not.ok((stack.show('rules', { vs: 'a' }) as { priority: number }[]).some((x) => x.priority === 70));
  r = await cli(['rule', 'del', '--priority', '70', '--vs', 'a']);
  assert.is(r.code, 1);
  assert.match(r.err, /virtual server 'a' has no rule of priority 70/);
});

test.run();
