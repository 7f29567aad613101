/**
 * Regression (bad input to the library API): each call below threw a TypeError from deep inside
 * (`Cannot read properties of undefined (reading 'split')`, `... of null (reading 'dst')`), was
 * taken although it reached nothing, or broke close(). Now each is a clear Error naming the
 * argument or field (a ValidationError where the validator's rules apply):
 *  - VsHandle: removeAddress(undefined), addRoute()/removeRoute(null), addRule(null),
 *    removeRule('x'), removeVip(5), removeLink(undefined), addAddress(cidr, 5);
 *  - a handle of a destroyed VS made sockets and servers that could never carry anything
 *    (createSocket, connect, createServer returned objects); now "virtual server 'a' was destroyed";
 *  - createVs(name, [], 5 | null | { constructor: 1 }): accepted the number, TypeErrors otherwise;
 *  - stack.trace() / trace(null) / trace({}) (no writer): TypeErrors, and the last was taken, so
 *    close() then threw a TypeError and left the devices open; close() now always closes them;
 *  - createVs/destroyVs/trace after close(): a new VS in a closed stack was made; now refused;
 *  - flushNeighbors('a', null): TypeError;
 *  - createStack(config, null): TypeError; `{ contol: true }` was silently no control socket;
 *    a function in the config: DOMException "could not be cloned" (now a ConfigError with its path);
 *  - ShardedStack.start(config) / start(config, null): TypeError (reading 'shards'); `ringSize: 5`
 *    was taken; `flowSize: 'x'` said "powers of two, got undefined and undefined"; now each option
 *    is named before any shard starts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createStack as createPublic, ShardedStack } from '../stack/index';
import { createStack, Stack } from '../stack/stack';
import { ConfigError } from '../stack/control/config';
import { ValidationError } from '../stack/control/validate';
import type { PcapWriter } from '../driver/pcap';

function config(name = 'api') {
  return {
    name, engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory' as const }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', addresses: ['10.1.1.1/24'] }] }],
  };
}

/** What `f` throws: its class name and message ('' when it does not throw). */
function thrown(f: () => unknown): { name: string; message: string } {
  try {
    f();
  } catch (e) {
    const x = e as Error;
    return { name: x.constructor.name, message: x.message };
  }
  return { name: '', message: '' };
}

function refused(f: () => unknown, re: RegExp, cls = 'ValidationError'): void {
  const t = thrown(f);
  assert.is(t.name, cls, `${f.toString()}: ${t.name} ${t.message}`);
  assert.match(t.message, re, f.toString());
  assert.not.match(t.message, /Cannot read|is not iterable|is not a function|reading '/, t.message);
}

let stack: Stack;
test.before.each(() => { stack = createStack(config(), { log: () => {} }); });
test.after.each(() => { stack.close(); });

test('VsHandle: wrong types are ValidationErrors naming the field', () => {
  const vs = stack.vs('a') as unknown as Record<string, (...a: unknown[]) => unknown>;
  const call = (m: string, ...a: unknown[]) => () => vs[m]!.call(vs, ...a);
  refused(call('removeAddress'), /^virtual server 'a': address: must be a string like "10\.0\.0\.1\/24" or "fd00::1\/64", got undefined$/);
  refused(call('removeAddress', '10.1.1.300/24'), /^virtual server 'a': address: not an IPv4 address: "10\.1\.1\.300" \(300 > 255\)$/);
  refused(call('addAddress', '10.1.1.9/24', 5), /^virtual server 'a': address: link: must be a link's name \(a string\), got number 5$/);
  refused(call('addRoute'), /^virtual server 'a': route: must be an object like \{ dst: '10\.2\.0\.0\/16', via: '10\.1\.1\.254' \}, got undefined$/);
  refused(call('addRoute', null), /^virtual server 'a': route: must be an object .*, got null$/);
  refused(call('addRoute', '10.0.0.0/8'), /^virtual server 'a': route: must be an object .*, got "10\.0\.0\.0\/8"$/);
  refused(call('removeRoute'), /^virtual server 'a': route: must be an object/);
  refused(call('removeRoute', null), /^virtual server 'a': route: must be an object .*, got null$/);
  refused(call('removeRoute', { dst: 5 }), /^virtual server 'a': route: dst: must be a string, got number 5$/);
  refused(call('removeRoute', { dst: 'garbage' }), /^virtual server 'a': route garbage: dst: not an IPv4 CIDR/);
  refused(call('removeRoute', { dst: '10.2.0.0/16', via: 'x.y' }), /^virtual server 'a': route 10\.2\.0\.0\/16: via: not an IPv4 address/);
  refused(call('removeRoute', { dst: '10.2.0.0/16', table: 'main' }), /^virtual server 'a': route 10\.2\.0\.0\/16: table: must be an integer, got "main"$/);
  refused(call('addRule'), /^virtual server 'a': rule: must be an object like \{ priority: 100, .*\}, got undefined$/);
  refused(call('addRule', null), /^virtual server 'a': rule: must be an object .*, got null$/);
  refused(call('removeRule'), /^virtual server 'a': rule: priority: must be an integer 0\.\.32767, got undefined$/);
  refused(call('removeRule', 'x'), /^virtual server 'a': rule: priority: must be an integer 0\.\.32767, got "x"$/);
  refused(call('removeRule', 1.5), /rule: priority: must be an integer 0\.\.32767, got number 1\.5$/);
  refused(call('removeVip', 5), /^virtual server 'a': VIP: must be a string address like "198\.51\.100\.10" or "2001:db8::10", got number 5$/);
  refused(call('removeLink'), /^virtual server 'a': link: the name must be a string, got undefined$/);
  // Well-typed requests for what is not there stay plain Errors that say so.
  refused(call('removeRule', 99), /^virtual server 'a' has no rule of priority 99$/, 'Error');
  refused(call('removeRoute', { dst: '10.77.0.0/16' }), /^virtual server 'a' has no route 10\.77\.0\.0\/16$/, 'Error');
  // The VS is as it was.
  assert.equal(stack.show('addresses', { vs: 'a' }), stack.show('addresses', { vs: 'a' }));
  assert.is((stack.show('routes', { vs: 'a' }) as unknown[]).length, 1);
});

test('createVs limits: an object of known keys, refused otherwise (nothing created)', () => {
  refused(() => stack.createVs('x', [], 5 as never), /^virtual server: limits: a virtual server's limits must be an object like \{ tcpConnections: 1000 \}, got number 5$/);
  refused(() => stack.createVs('x', [], null as never), /limits: .* got null$/);
  refused(() => stack.createVs('x', [], { constructor: 1 } as never), /^virtual server: limits: unknown virtual server limit 'constructor' \(known: tcpConnections, tcpSynQueue, neighbors\)$/);
  refused(() => stack.createVs('x', [], JSON.parse('{"__proto__": {"a": 1}}') as never), /unknown virtual server limit '__proto__'/);
  assert.throws(() => stack.vs('x'), /no virtual server 'x'/);
});

test("a destroyed VS's handle: sockets, servers and changes are refused", () => {
  const h = stack.vs('a');
  stack.destroyVs('a');
  for (const f of [() => h.createSocket('udp4'), () => h.connect({ port: 80, host: '10.1.1.2' }), () => h.createServer(), () => h.addAddress('10.1.1.5/24'),
    () => h.addRoute({ dst: '10.2.0.0/16', via: '10.1.1.254' }), () => h.ping('10.1.1.2')]) {
    refused(f, /^virtual server 'a' was destroyed$/, 'Error');
  }
  // A new VS of the same name is another one: the old handle stays refused, the new one works.
  stack.createVs('a', [{ device: 'm0', addresses: ['10.1.1.1/24'] }]);
  refused(() => h.createSocket('udp4'), /^virtual server 'a' was destroyed$/, 'Error');
  const s = stack.vs('a').createSocket('udp4');
  s.close();
});

test('trace: its options are checked; a trace whose writer fails does not keep close() from closing', () => {
  refused(() => stack.trace(undefined as never), /^trace: must be an object, got undefined$/);
  refused(() => stack.trace(null as never), /^trace: must be an object, got null$/);
  refused(() => stack.trace({} as never), /^trace: writer: must be a PcapWriter \(new PcapWriter\(path\)\), got undefined$/);
  const writer = { write() {}, close() { throw new Error('disk gone'); }, flush() {}, isClosed: false } as unknown as PcapWriter;
  refused(() => stack.trace({ writer, count: -1 }), /^trace: count: must be 0\.\.\d+, got -1$/);
  stack.trace({ writer });
  assert.not.throws(() => stack.close());
  assert.ok(stack.isClosed);
});

test('a closed stack: no new VS, no VS destroyed, no trace', () => {
  stack.close();
  refused(() => stack.createVs('z'), /^stack is closed$/, 'Error');
  refused(() => stack.destroyVs('a'), /^stack is closed$/, 'Error');
  refused(() => stack.trace({ writer: {} as PcapWriter }), /^stack is closed$/, 'Error');
});

test('flushNeighbors: options of the wrong type are named', () => {
  refused(() => stack.flushNeighbors('a', null as never), /^neighbor flush: the options must be an object like .*, got null$/);
  refused(() => stack.flushNeighbors('a', { address: 5 } as never), /^neighbor flush: address: must be a string, got number 5$/);
  assert.equal(stack.flushNeighbors('a'), []);
});

test('createStack: options and config values that are no JSON are named', () => {
  refused(() => createPublic(config('o1'), null as never), /^createStack: the options must be an object, got null$/);
  refused(() => createPublic(config('o2'), { contol: true } as never), /^createStack: unknown option 'contol' \(did you mean 'control'\?\)/);
  refused(() => createPublic(config('o3'), { busyPoll: 'yes' } as never), /^createStack: 'busyPoll' must be true or false, got "yes"$/);
  refused(() => createPublic(config('o4'), { logLevel: 'loud' } as never), /^createStack: 'logLevel' must be one of error, warn, info, debug, got "loud"$/);
  refused(() => createStack(config('o5'), 5 as never), /^createStack: the options must be an object, got number 5$/);
  const withFn = { ...config('o6'), virtualServers: [{ name: 'a', links: [{ device: 'm0', addresses: ['10.1.1.1/24'], mtu: () => 1500 }] }] };
  refused(() => createStack(withFn as never), /^config: virtualServers\[0\]\.links\[0\]\.mtu: must be JSON data \(objects, arrays, strings, numbers, true\/false, null\), got a function$/, 'ConfigError');
  assert.instance((() => { try { createStack(withFn as never); } catch (e) { return e; } return null; })(), ConfigError);
  assert.instance((() => { try { createStack(config('o7'), null as never); } catch (e) { return e; } return null; })(), ValidationError);
});

test('ShardedStack.start: options are checked before any shard starts', async () => {
  const rejected = async (p: () => Promise<unknown>, re: RegExp) => {
    let err: Error | null = null;
    try { await p(); } catch (e) { err = e as Error; }
    assert.ok(err, 'refused');
    assert.is(err!.constructor.name, 'ValidationError', err!.message);
    assert.match(err!.message, re);
  };
  await rejected(() => ShardedStack.start(config('s1'), undefined as never), /^ShardedStack\.start: the options must be an object like \{ shards: 2 \}, got undefined$/);
  await rejected(() => ShardedStack.start(config('s2'), null as never), /got null$/);
  await rejected(() => ShardedStack.start(config('s3'), {} as never), /^ShardedStack\.start: 'shards' must be a number of shards or 'auto', got undefined$/);
  await rejected(() => ShardedStack.start(config('s4'), { shards: 1, ringSize: 5 } as never), /^ShardedStack\.start: 'ringSize' must be an object \{ slots: a power of two, frameBytes: the largest frame \}, got number 5$/);
  await rejected(() => ShardedStack.start(config('s5'), { shards: 1, flowSize: 'x' } as never), /'flowSize' must be an object of powers of two \{ flowSlots, portSlots \}, got "x"$/);
  await rejected(() => ShardedStack.start(config('s6'), { shards: 1, startTimeoutMs: -1 }), /'startTimeoutMs' must be a positive number of milliseconds, got number -1$/);
  await rejected(() => ShardedStack.start(config('s7'), { shards: 1, preload: 'x' } as never), /'preload' must be an array of module paths, got "x"$/);
});

test.run();
