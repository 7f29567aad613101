import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig, validateConfig, StackConfig } from '../stack/control/config';
import { createStack } from '../stack/stack';
import { Burst } from '../driver/types';
import { writeEth, ETH_P_ARP, ETH_P_IPV4 } from '../protocols/ethernet';
import { writeArp, ARP_REQUEST } from '../protocols/arp';
import { writeIpv4, IPPROTO_UDP, parseIpv4 } from '../protocols/ipv4';
import { fold, pseudoSum4, sum16 } from '../protocols/checksum';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-config-'));

function good(): StackConfig {
  return {
    name: 'demo',
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [
      { name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }], routes: [{ dst: 'default', via: '10.1.1.254' }] },
      { name: 'b', links: [{ device: 'm0', vlan: 20, addresses: ['10.1.1.1/24'] }], rules: [{ priority: 100, from: '10.1.1.0/24', table: 100 }] },
    ],
    services: [{ type: 'udp-echo', vs: 'a', port: 7 }],
  };
}

/** Applies `mutate` to a fresh valid config and expects a ConfigError naming `field` and matching `why`. */
function bad(mutate: (c: any) => void, field: string, why: RegExp): void {
  const c = good() as any;
  mutate(c);
  try {
    validateConfig(c, 'test.json');
  } catch (e) {
    assert.instance(e, ConfigError);
    const m = (e as Error).message;
    assert.ok(m.startsWith('test.json: '), m);
    assert.ok(m.includes(`${field}: `), `expected field ${field} in: ${m}`);
    assert.match(m, why);
    return;
  }
  assert.unreachable(`config accepted, expected an error on ${field}`);
}

test('a valid config passes and keeps its values', () => {
  const c = validateConfig(good(), 'x');
  assert.is(c.virtualServers.length, 2);
  assert.is(c.devices[0]!.driver, 'memory');
});

test('invalid configs name the file, the field path and the reason', () => {
  bad((c) => { c.devices = 3; }, 'devices', /must be an array/);
  bad((c) => { delete c.devices; }, 'devices', /is required/);
  bad((c) => { c.devices = []; }, 'devices', /at least one device/);
  bad((c) => { c.extra = 1; }, 'extra', /unknown key 'extra'/);
  bad((c) => { c.devices[0].driver = 'dpdk'; }, 'devices[0].driver', /one of "afxdp", "pcap", "memory"/);
  bad((c) => { c.devices[0].queue = 1; }, 'devices[0].queue', /unknown key 'queue'/);
  bad((c) => { c.devices[0].name = 'this-name-is-too-long'; }, 'devices[0].name', /not valid/);
  bad((c) => { c.devices[0].mac = '01:00:5e:00:00:01'; }, 'devices[0].mac', /multicast/);
  bad((c) => { c.devices[0].mac = 'zz'; }, 'devices[0].mac', /not valid/);
  bad((c) => { c.devices[0].mtu = 9000; }, 'devices[0].mtu', /68\.\.1770/);
  bad((c) => { c.devices[0].frameSize = 1000; }, 'devices[0].frameSize', /2048, 4096/);
  bad((c) => { c.devices.push({ name: 'm0', driver: 'memory' }); }, 'devices[1].name', /duplicate device name 'm0'/);
  bad((c) => { c.devices = [{ name: 'x', driver: 'afxdp', queue: -1 }]; c.virtualServers = []; delete c.services; }, 'devices[0].queue', /0\.\.1023/);
  bad((c) => { c.devices = [{ name: 'x', driver: 'afxdp', ringSize: 100 }]; c.virtualServers = []; delete c.services; }, 'devices[0].ringSize', /power of two/);
  bad((c) => { c.devices = [{ name: 'x', driver: 'afxdp' }, { name: 'y', driver: 'afxdp', ifname: 'x' }]; c.virtualServers = []; delete c.services; },
    'devices[1]', /queue 0 is already used by devices\[0\]/);
  bad((c) => { c.devices = [{ name: 'x', driver: 'afxdp', mode: 'generic' }]; c.virtualServers = []; delete c.services; }, 'devices[0].mode', /"auto", "native", "skb"/);
  bad((c) => { c.engine = { stepTimers: 0 }; }, 'engine.stepTimers', /must be 1\.\.1048576, got 0/);
  bad((c) => { c.engine = { stepEvents: 1.5 }; }, 'engine.stepEvents', /must be an integer/);
  bad((c) => { c.virtualServers[1].name = 'a'; }, 'virtualServers[1].name', /duplicate virtual server name 'a'/);
  bad((c) => { c.virtualServers[0].name = 'bad name'; }, 'virtualServers[0].name', /not valid/);
  bad((c) => { c.virtualServers[1].links[0].vlan = 5000; }, 'virtualServers[1].links[0].vlan', /1\.\.4094, got 5000/);
  bad((c) => { c.virtualServers[1].links[0].vlan = '20'; }, 'virtualServers[1].links[0].vlan', /must be an integer/);
  bad((c) => { c.virtualServers[0].links[0].device = 'eth9'; }, 'virtualServers[0].links[0].device', /no device 'eth9'/);
  bad((c) => { c.virtualServers[0].links[0].mtu = 1600; }, 'virtualServers[0].links[0].mtu', /68\.\.1500/);
  bad((c) => { c.virtualServers[0].links[0].colour = 'red'; }, 'virtualServers[0].links[0].colour', /unknown key/);
  bad((c) => { c.virtualServers[0].links[0].addresses = ['10.1.1.300/24']; }, 'virtualServers[0].links[0].addresses[0]', /300 > 255/);
  bad((c) => { c.virtualServers[0].links[0].addresses = ['10.1.1.1']; }, 'virtualServers[0].links[0].addresses[0]', /not an IPv4 CIDR/);
  bad((c) => { c.virtualServers[0].links[0].addresses = ['224.0.0.1/4']; }, 'virtualServers[0].links[0].addresses[0]', /not a usable unicast/);
  bad((c) => { c.virtualServers[0].links[0].addresses = 'x'; }, 'virtualServers[0].links[0].addresses', /must be an array/);
  bad((c) => { c.virtualServers[1].links[0].vlan = 10; }, 'virtualServers[1].links[0]', /same MAC is already used by virtualServers\[0\]\.links\[0\]/);
  bad((c) => { c.virtualServers[1].links[0].vlan = 10; c.virtualServers[1].links[0].mac = '02:00:00:00:00:99'; },
    'virtualServers[1].links[0].addresses[0]', /10\.1\.1\.1 is already used on device m0 VLAN 10 by virtualServers\[0\]\.links\[0\]\.addresses\[0\]/);
  bad((c) => { c.virtualServers[0].links.push({ device: 'm0', vlan: 10, mac: '02:00:00:00:00:05' }); }, 'virtualServers[0].links[1]', /duplicate link name 'm0\.10'/);
  bad((c) => { c.virtualServers[0].routes[0].via = '10.2.0.1'; }, 'virtualServers[0].routes[0].via', /not on a connected network/);
  bad((c) => { c.virtualServers[0].routes[0].link = 'nope'; }, 'virtualServers[0].routes[0].link', /has no link 'nope'/);
  bad((c) => { c.virtualServers[0].routes[0].dst = '10.0.0.1/8'; }, 'virtualServers[0].routes[0].dst', /host bits set .*10\.0\.0\.0\/8/);
  bad((c) => { c.virtualServers[0].routes[0].table = 0; }, 'virtualServers[0].routes[0].table', /1\.\.4294967295/);
  bad((c) => { c.virtualServers[0].routes[0].src = '10.9.9.9'; }, 'virtualServers[0].routes[0].src', /not an address of virtual server 'a'/);
  bad((c) => { delete c.virtualServers[0].routes[0].dst; }, 'virtualServers[0].routes[0].dst', /is required/);
  bad((c) => { c.virtualServers[0].links.push({ name: 'l2', device: 'm0', vlan: 11 }); delete c.virtualServers[0].routes[0].via; },
    'virtualServers[0].routes[0]', /give 'via' or 'link'/);
  bad((c) => { c.virtualServers[1].rules.push({ priority: 100, table: 5 }); }, 'virtualServers[1].rules[1].priority', /duplicate rule priority 100/);
  bad((c) => { c.virtualServers[1].rules[0].priority = 40000; }, 'virtualServers[1].rules[0].priority', /0\.\.32767/);
  bad((c) => { delete c.virtualServers[1].rules[0].table; }, 'virtualServers[1].rules[0].table', /is required/);
  bad((c) => { c.virtualServers[1].rules[0].from = 'everything'; }, 'virtualServers[1].rules[0].from', /not an IPv4 address/);
  bad((c) => { c.services[0].type = 'sctp-echo'; }, 'services[0].type', /unknown service type "sctp-echo" \(known: [a-z, -]*udp-echo/);
  bad((c) => { c.services[0].vs = 'z'; }, 'services[0].vs', /no virtual server 'z'/);
  bad((c) => { c.services[0].port = 0; }, 'services[0].port', /1\.\.65535, got 0/);
  bad((c) => { c.services[0].address = '10.1.1.2'; }, 'services[0].address', /not an address of virtual server 'a'/);
  bad((c) => { c.services.push({ type: 'udp-echo', vs: 'a', port: 7 }); }, 'services[1].port', /already used by services\[0\]/);
  // Bound to addresses as sockets are (Linux's rule): a wildcard overlaps every address of its family,
  // :: both families; one address only itself.
  bad((c) => { c.services.push({ type: 'udp-echo', vs: 'a', port: 7, address: '10.1.1.1' }); }, 'services[1].port', /already used by services\[0\] \(:: and 10\.1\.1\.1 overlap\)/);
  bad((c) => { c.services = [{ type: 'udp-echo', vs: 'a', port: 7, address: '10.1.1.1' }, { type: 'udp-echo', vs: 'a', port: 7, address: '0.0.0.0' }]; },
    'services[1].port', /already used by services\[0\] \(10\.1\.1\.1 and 0\.0\.0\.0 overlap\)/);
  bad((c) => { c.services = [{ type: 'udp-echo', vs: 'a', port: 7, address: '10.1.1.1' }, { type: 'udp-echo', vs: 'a', port: 7, address: '10.1.1.1' }]; },
    'services[1].port', /already used by services\[0\]/);
  bad((c) => { c.control = 'yes'; }, 'control', /must be an object/);
  bad((c) => { c.engine = { icmpRate: -1 }; }, 'engine.icmpRate', /0\.\.1000000/);
});

test('all problems are reported at once', () => {
  const c = good() as any;
  c.devices[0].mtu = 5;
  c.virtualServers[0].links[0].vlan = 0;
  c.services[0].port = 70000;
  try {
    validateConfig(c, 'many.json');
    assert.unreachable('accepted');
  } catch (e) {
    const ce = e as ConfigError;
    assert.is(ce.problems.length, 3);
    assert.match(ce.message, /many\.json: 3 problems/);
    assert.match(ce.message, /virtualServers\[0\]\.links\[0\]\.vlan/);
  }
});

test('loadConfig reports unreadable files and JSON syntax errors with line numbers', () => {
  assert.throws(() => loadConfig(path.join(tmp, 'missing.json')), /missing\.json: \(file\): cannot read: ENOENT/);
  const f = path.join(tmp, 'broken.json');
  fs.writeFileSync(f, '{\n  "devices": [\n    { "name": "x", }\n  ]\n}\n');
  assert.throws(() => loadConfig(f), /broken\.json: \(file\): not valid JSON at line 3/);
});

test('loadConfig resolves pcap paths against the file and names the stack after it', () => {
  const f = path.join(tmp, 'my-stack.json');
  fs.writeFileSync(f, JSON.stringify({ devices: [{ name: 'p', driver: 'pcap', input: 'in.pcap' }], virtualServers: [] }));
  const c = loadConfig(f);
  assert.is(c.devices[0]!.input, path.join(tmp, 'in.pcap'));
  assert.is(c.name, 'my-stack');
});

// A UDP datagram from the peer (10.1.1.2, MAC ..:02) to 10.1.1.1:7 on VLAN `vlan`.
function udpFrame(b: Uint8Array, at: number, vlan: number, payload: string): number {
  const peer = Uint8Array.of(2, 0, 0, 0, 0, 2);
  const us = Uint8Array.of(2, 0, 0, 0, 0, 1);
  const hl = writeEth(b, at, us, 0, peer, 0, ETH_P_IPV4, vlan);
  const data = Buffer.from(payload);
  const u = at + hl + 20;
  const len = 8 + data.length;
  const src = parseIpv4('10.1.1.2');
  const dst = parseIpv4('10.1.1.1');
  b[u] = 0x30; b[u + 1] = 0x39; b[u + 2] = 0; b[u + 3] = 7; b[u + 4] = len >> 8; b[u + 5] = len & 255; b[u + 6] = 0; b[u + 7] = 0;
  b.set(data, u + 8);
  const c = fold(sum16(b, u, len, pseudoSum4(src, dst, IPPROTO_UDP, len)));
  b[u + 6] = c >> 8; b[u + 7] = c & 255;
  writeIpv4(b, at + hl, src, dst, IPPROTO_UDP, len, 64, 1, 0, 0);
  return hl + 20 + len;
}

test('createStack builds VSes from config and the udp-echo service answers over a memory device', () => {
  const stack = createStack(good());
  const peer = stack.peer('m0');
  // ARP from the peer first, so the echo can be sent without resolution.
  const b = new Burst();
  const pool = peer.pool;
  let f = pool.alloc();
  let at = pool.dataStart(f);
  const hl = writeEth(pool.bytes, at, Uint8Array.of(255, 255, 255, 255, 255, 255), 0, Uint8Array.of(2, 0, 0, 0, 0, 2), 0, ETH_P_ARP, 10);
  writeArp(pool.bytes, at + hl, ARP_REQUEST, Uint8Array.of(2, 0, 0, 0, 0, 2), 0, parseIpv4('10.1.1.2'), new Uint8Array(6), 0, parseIpv4('10.1.1.1'));
  b.push(f, at, Math.max(60, hl + 28));
  f = pool.alloc();
  at = pool.dataStart(f);
  b.push(f, at, udpFrame(pool.bytes, at, 10, 'hello'));
  // The same datagram on VLAN 20 reaches VS 'b', which has no echo service.
  f = pool.alloc();
  at = pool.dataStart(f);
  b.push(f, at, udpFrame(pool.bytes, at, 20, 'other'));
  assert.is(peer.tx(b, 0), 3);
  stack.runVirtual(0, 1_000_000);
  const got = new Burst();
  const frames: Buffer[] = [];
  for (let n = peer.rx(got, 1_000_000); n > 0; n = peer.rx(got, 1_000_000)) {
    for (let i = 0; i < got.n; i++) frames.push(Buffer.from(pool.bytes.subarray(got.off[i]!, got.off[i]! + got.len[i]!)));
    for (let i = 0; i < got.n; i++) pool.free(got.frame[i]!);
    got.n = 0;
  }
  const echo = frames.find((x) => x.includes(Buffer.from('hello')));
  assert.ok(echo, `no echo among ${frames.length} frames`);
  assert.is(echo!.readUInt16BE(14) & 0xfff, 10, 'echo on VLAN 10');
  const counters = stack.show('counters', { vs: 'b' }) as any;
  assert.equal(counters.vs[0].drops, { total: 1, reasons: { 'udp-no-socket': 1 } });
  const routes = stack.show('routes', { vs: 'a' }) as any[];
  assert.ok(routes.some((r) => r.dst === 'default' && r.via === '10.1.1.254'));
  stack.close();
  assert.is(stack.engine.devices[0]!.pool.check().held, 0);
});

test('createStack rejects an invalid config object with a ConfigError', () => {
  const c = good() as any;
  c.virtualServers[0].links[0].vlan = 9999;
  assert.throws(() => createStack(c), (e: unknown) => e instanceof ConfigError && /virtualServers\[0\]\.links\[0\]\.vlan/.test((e as Error).message));
});

test.run();
