/**
 * The XDP ownership keys kept in user space (driver/owned.ts): which map keys an owned address
 * puts in the XDP maps, and that a key leaves them with its last owner (two links owning one
 * address; addresses sharing a solicited-node group, RFC 4291 section 2.7.1). Also the lab's IPv6
 * options, checked before anything is built.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KIND_IP4, KIND_IP6, KIND_MAC, KIND_SNM, OwnedTable, ownKeys } from '../driver/owned';
import { parseIp4, parseIp6 } from '../protocols/ip/addr';
import { ipv6Default, labUp, LabConfigError } from '../stack/lab/lab';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('ownKeys: IPv4 gives its ARP key (network order); IPv6 its address and its solicited-node group', () => {
  const k4 = ownKeys(parseIp4('10.1.7.1'));
  assert.equal(k4.map((k) => [k.kind, hex(k.key)]), [[KIND_IP4, '0a010701']]);
  // The int32 form of an address (bit 31 set) is the same address.
  assert.equal(hex(ownKeys(parseIp4('200.1.1.1') | 0)[0]!.key), 'c8010101');
  const k6 = ownKeys(parseIp6('fd00:7::12:3456'));
  assert.equal(k6.map((k) => [k.kind, hex(k.key)]), [
    [KIND_IP6, 'fd000007000000000000000000123456'],
    // ff02::1:ff12:3456: the last 4 bytes are 0xff and the address's low 24 bits.
    [KIND_SNM, 'ff123456'],
  ]);
  const ll = ownKeys(parseIp6('fe80::200:ff:fe00:1'));
  assert.equal(hex(ll[1]!.key), 'ff000001');
});

test('ownKeys: only unicast addresses can be owned', () => {
  assert.throws(() => ownKeys(parseIp6('ff02::1')), (e: Error) => e instanceof RangeError && /ff02::1 \(not a unicast address\)/.test(e.message));
  assert.throws(() => ownKeys(parseIp6('ff02::1:ff00:1')), RangeError);
  assert.throws(() => ownKeys(parseIp6('::')), /not a unicast address/);
  assert.throws(() => ownKeys(0), /unspecified/);
  assert.throws(() => ownKeys(-0x80000001), /not an IPv4 address/);
  assert.throws(() => ownKeys(1.5), /not an IPv4 address/);
  assert.throws(() => ownKeys(2 ** 32), /not an IPv4 address/);
});

test('OwnedTable: an address owned twice on a VLAN stays in the maps until its last owner goes', () => {
  const t = new OwnedTable();
  const [a] = ownKeys(parseIp6('fd00::1'));
  assert.is(t.acquire(a!.kind, a!.key, 7), true, 'first owner: into the map');
  assert.is(t.acquire(a!.kind, a!.key, 7), false, 'second owner: already there');
  assert.is(t.refs(a!.kind, a!.key, 7), 2);
  assert.is(t.acquire(a!.kind, a!.key, 8), true, 'another VLAN is another key');
  assert.is(t.release(a!.kind, a!.key, 7), false, 'one owner left');
  assert.is(t.release(a!.kind, a!.key, 7), true, 'last owner: out of the map');
  assert.is(t.refs(a!.kind, a!.key, 7), 0);
  assert.is(t.release(a!.kind, a!.key, 7), false, 'releasing what is not owned changes nothing');
  assert.is(t.refs(a!.kind, a!.key, 8), 1);
  assert.is(t.size, 1);
});

test('OwnedTable: addresses with the same low 24 bits share one solicited-node key', () => {
  const t = new OwnedTable();
  const x = ownKeys(parseIp6('fd00::1'));
  const y = ownKeys(parseIp6('fe80::1')); // same group ff02::1:ff00:1
  const changes = (keys: typeof x, add: boolean) => keys.map((k) => (add ? t.acquire(k.kind, k.key, 0) : t.release(k.kind, k.key, 0)));
  assert.equal(changes(x, true), [true, true]);
  assert.equal(changes(y, true), [true, false], 'the group is already in the map');
  assert.is(t.refs(KIND_SNM, x[1]!.key, 0), 2);
  assert.equal([t.count(KIND_IP6), t.count(KIND_SNM)], [2, 1]);
  assert.equal(changes(x, false), [true, false], 'fd00::1 leaves; the group stays for fe80::1');
  assert.equal(changes(y, false), [true, true], 'the last address takes the group with it');
  assert.equal([t.count(KIND_IP6), t.count(KIND_SNM)], [0, 0]);
  assert.is(t.size, 0);
});

test('OwnedTable: MACs are set and cleared (the engine counts the links on a MAC), VLANs checked', () => {
  const t = new OwnedTable();
  const mac = Uint8Array.of(2, 0, 0, 0, 0, 1);
  assert.is(t.acquire(KIND_MAC, mac, 0), true);
  assert.is(t.acquire(KIND_MAC, mac, 0), false);
  assert.is(t.release(KIND_MAC, mac, 0), true, 'one release clears a MAC');
  assert.throws(() => t.acquire(KIND_IP4, Uint8Array.of(10, 0, 0, 1), 4096), /bad VLAN id 4096/);
  assert.throws(() => t.acquire(KIND_IP4, Uint8Array.of(10, 0, 0, 1), -1), /bad VLAN id -1/);
  assert.equal([...t.entries()], []);
});

test('lab: default IPv6 addresses per VLAN, and bad IPv6 options refused before anything is built', () => {
  assert.equal(ipv6Default(0, 0), { peer: 'fd00::2/64', stack: 'fd00::1/64' });
  assert.equal(ipv6Default(42, 1), { peer: 'fd00:42::3/64', stack: 'fd00:42::1/64' });
  assert.equal(ipv6Default(4094, 13), { peer: 'fd00:4094::f/64', stack: 'fd00:4094::1/64' });
  const bad = (opts: Parameters<typeof labUp>[0], re: RegExp) =>
    assert.throws(() => labUp(opts), (e: Error) => e instanceof LabConfigError && re.test(e.message));
  bad({ prefix: 'x6zz', peers: [{ ipv6: true, dad: 'yes' as unknown as boolean }] }, /peer 0: dad must be true or false/);
  bad({ prefix: 'x6zz', peers: [{ ipv4: '10.1.1.2/24', dad: true }] }, /peer 0: dad needs an IPv6 address/);
  bad({ prefix: 'x6zz', peers: [{ ipv6: 'fd00::2/129' }] }, /peer 0: bad IPv6 CIDR/);
  bad({ prefix: 'x6zz', hostIpv6: '10.0.0.1/24', peers: [{ ipv6: true }] }, /hostIpv6: bad IPv6 CIDR/);
});

test.run();
