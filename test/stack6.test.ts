/**
 * IPv6 from a configuration file to the running engine: addresses (with their link-local address
 * and DAD states), routes via a link-local gateway, rules from an IPv6 prefix, services on both
 * families, and the `show` views, as an operator sees them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createStack, Stack } from '../stack/stack';
import type { StackConfig } from '../stack/control/config';
import { parseIp6 as parse6 } from '../protocols/ip/addr';
import { udpPorts } from '../stack/transport/udp';

function config(dadTransmits?: number): StackConfig {
  return {
    name: 't6',
    ...(dadTransmits !== undefined ? { engine: { dadTransmits } } : {}),
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [{
      name: 'a',
      links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24', 'fd00:10::1/64'] }],
      routes: [{ dst: 'default', via: 'fe80::1', link: 'm0.10' }, { dst: '2001:db8::/32', via: 'fd00:10::fe', table: 100 }],
      rules: [{ priority: 100, from: 'fd00:10::/64', table: 100 }],
    }],
    services: [{ type: 'udp-echo', vs: 'a', port: 7 }, { type: 'tcp-echo', vs: 'a', port: 7 }],
  };
}

type Row = Record<string, unknown>;

test('addresses: the IPv6 one and the link-local one made for it are tentative, then preferred after DAD', () => {
  const s: Stack = createStack(config());
  try {
    const rows = () => (s.show('addresses') as Row[]).map((r) => `${r.address} ${r.state}`);
    assert.equal(rows(), ['10.1.1.1/24 preferred', 'fe80::ff:fe00:1/64 tentative', 'fd00:10::1/64 tentative']);
    s.runVirtual(s.engine.now, s.engine.now + 1_500_000); // one DAD probe, 1 s (RFC 4862 defaults)
    assert.equal(rows(), ['10.1.1.1/24 preferred', 'fe80::ff:fe00:1/64 preferred', 'fd00:10::1/64 preferred']);
  } finally {
    s.close();
  }
});

test('engine.dadTransmits 0: IPv6 addresses are usable at once; a bad value is a config error', () => {
  const s = createStack(config(0));
  try {
    assert.ok((s.show('addresses') as Row[]).every((r) => r.state === 'preferred'));
  } finally {
    s.close();
  }
  assert.throws(() => createStack({ ...config(), engine: { dadTransmits: 17 } }), /engine\.dadTransmits.*0\.\.16/);
});

test('routes and rules of both families, as `ip route` / `ip -6 route` show them', () => {
  const s = createStack(config(0));
  try {
    const routes = (s.show('routes') as Row[]).map((r) => `${r.table} ${r.dst} ${r.via ?? '-'} ${r.link} ${r.proto}`);
    assert.ok(routes.includes('254 10.1.1.0/24 - m0.10 connected'), routes.join('\n'));
    assert.ok(routes.includes('254 fd00:10::/64 - m0.10 connected'), routes.join('\n'));
    assert.ok(routes.includes('254 default fe80::1 m0.10 static'), routes.join('\n'));
    assert.ok(routes.includes('100 2001:db8::/32 fd00:10::fe m0.10 static'), routes.join('\n'));
    const rules = (s.show('rules') as Row[]).map((r) => `${r.priority} ${r.from} ${r.table}`);
    assert.ok(rules.includes('100 fd00:10::/64 100'), rules.join('\n'));
    // The IPv6 default route goes via the link-local gateway; the IPv4 one does not exist.
    const vs = s.engine.vs('a');
    const r6 = vs.rules.select(0, 0, vs.tables, parse6('2001:db9::1'));
    assert.is(String(r6?.gateway), 'fe80::1');
    assert.is(vs.rules.select(0, 0, vs.tables, 0x08080808), null, 'no IPv4 default route');
    // From the rule's prefix, 2001:db8::/32 goes by table 100.
    const r100 = vs.rules.select(parse6('fd00:10::1'), 0, vs.tables, parse6('2001:db8::5'));
    assert.is(String(r100?.gateway), 'fd00:10::fe');
  } finally {
    s.close();
  }
});

test('services serve both families: the UDP echo socket is a udp6 socket on ::, the TCP echo server listens on ::', () => {
  const s = createStack(config(0));
  try {
    const vs = s.engine.vs('a');
    const udp = udpPorts(vs).get(7)!;
    assert.is(udp.length, 1);
    assert.equal(udp[0]!.address(), { address: '::', family: 'IPv6', port: 7 });
    const listeners = (s.show('limits') as Row[]).filter((r) => String(r.scope).startsWith('listener'));
    assert.equal(listeners.map((r) => r.scope), ['listener *:7']);
  } finally {
    s.close();
  }
});

test('an address added at run time from the API goes through the same validator', () => {
  const s = createStack(config(0));
  try {
    const h = s.vs('a');
    assert.throws(() => h.addAddress('ff02::1/64', 'm0.10'), /multicast/);
    assert.throws(() => h.addAddress('::ffff:10.0.0.1/96', 'm0.10'), /IPv4-mapped/);
    h.addAddress('fd00:20::1/64', 'm0.10');
    assert.ok((s.show('addresses') as Row[]).some((r) => r.address === 'fd00:20::1/64' && r.state === 'preferred'));
    h.removeAddress('fd00:20::1/64', 'm0.10');
    h.removeAddress('fd00:10::1/64', 'm0.10');
    // The link-local address goes with the last IPv6 address.
    assert.equal((s.show('addresses') as Row[]).map((r) => r.address), ['10.1.1.1/24']);
  } finally {
    s.close();
  }
});

test.run();
