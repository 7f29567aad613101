/**
 * Regression: argument errors of the net- and dgram-shaped APIs are thrown as Node 20's own
 * `net` and `dgram` throw them for the same call: same class, code and message (the received
 * value described as Node's determineSpecificType does), synchronously where Node throws.
 * Each call runs against Node's module and ours; nothing here reaches a network.
 */
import * as nodeNet from 'node:net';
import * as nodeDgram from 'node:dgram';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMemoryLink } from '../driver/memory';
import { Engine } from '../stack/engine';
import { createStack } from '../stack/stack';
import { netModule } from '../stack/api/net';

interface Mods { net: typeof nodeNet; dgram: { createSocket(t: string): nodeDgram.Socket } }

function ours(): { mods: Mods; engine: Engine } {
  const ep = createMemoryLink({ frameCount: 64 }).a;
  const engine = new Engine({});
  engine.addDevice({ name: 'eth0', pool: ep.pool, mac: ep.mac, mtu: ep.mtu });
  const vs = engine.createVs('a');
  engine.addLink(vs, { device: 'eth0' });
  engine.addAddress(vs, 'eth0', '10.1.1.1/24');
  const net = netModule({ engine, vs, now: () => 0 }) as unknown as typeof nodeNet;
  return { mods: { net, dgram: { createSocket: (t) => engine.createUdpSocket(vs, { type: t as 'udp4' }) as unknown as nodeDgram.Socket } }, engine };
}

const NODE: Mods = { net: nodeNet, dgram: nodeDgram };

/** What a call throws synchronously ('' when it does not); what it made is closed. */
function thrown(m: Mods, f: (m: Mods, made: { close(): void }[]) => void): string {
  const made: { close(): void }[] = [];
  try {
    f(m, made);
    return '';
  } catch (e) {
    const x = e as Error & { code?: string };
    return `${x.name} ${x.code} ${x.message}`;
  } finally {
    for (const s of made) {
      // Whatever the call left behind must not turn into an unhandled 'error' later.
      (s as unknown as nodeNet.Server).on?.('error', () => {});
      try { s.close(); } catch { /* already closed */ }
    }
  }
}

function same(name: string, f: (m: Mods, made: { close(): void }[]) => void): void {
  const node = thrown(NODE, f);
  const o = ours();
  const mine = thrown(o.mods, f);
  assert.ok(node !== '', `${name}: Node throws`);
  assert.is(mine, node, name);
}

const connect = (port: unknown) => (m: Mods) => { m.net.connect({ port } as never).destroy(); };

test('the received value in messages as Node words it (quotes, long strings, bigint, -0, functions)', () => {
  same(`port "it's"`, connect("it's"));
  same('port of 40 characters', connect('a'.repeat(40)));
  same('port of 28 characters', connect('b'.repeat(28)));
  same('port of 29 characters with a quote', connect(`'${'c'.repeat(28)}`));
  same('port 1n', connect(1n));
  same('port -0.5', connect(-0.5));
  same('port -1e21', connect(-1e21));
  same('port NaN', connect(NaN));
  same('port Symbol', connect(Symbol('s')));
  same('port anonymous function', connect(() => 1));
  same('port named function', connect(function named() { return 1; }));
  same('port null-prototype object', connect(Object.create(null)));
  same('port array', connect([80]));
});

test('server.listen({ host: 5 }) throws at once, as Node (no asynchronous ENOTFOUND)', () => {
  same('listen host 5', (m, made) => { const s = m.net.createServer(); made.push(s); s.listen({ port: 0, host: 5 as never }); });
});

test("server.listen({ port: true }): the options are invalid, as Node words it", () => {
  same('listen port true', (m, made) => { const s = m.net.createServer(); made.push(s); s.listen({ port: true as never }); });
});

test('socket.setTimeout: a non-number is ERR_INVALID_ARG_TYPE, a bad callback is named "callback"', () => {
  same("setTimeout('x')", (m, made) => { const s = new m.net.Socket(); made.push({ close: () => s.destroy() }); s.setTimeout('x' as never); });
  same('setTimeout(1, 5)', (m, made) => { const s = new m.net.Socket(); made.push({ close: () => s.destroy() }); s.setTimeout(1, 5 as never); });
});

test('dgram bind() with an address that is not a string throws at once, as Node', () => {
  same('bind(0, 5)', (m, made) => { const s = m.dgram.createSocket('udp4'); made.push(s); s.bind(0, 5 as never); });
  same('bind({ address: 5 })', (m, made) => { const s = m.dgram.createSocket('udp4'); made.push(s); s.bind({ port: 0, address: 5 as never }); });
});

test('dgram setTTL(0) on an unbound socket is EINVAL (libuv checks the range first), as Node', () => {
  same('setTTL(0)', (m, made) => { const s = m.dgram.createSocket('udp4'); made.push(s); s.setTTL(0); });
  same('setTTL(256)', (m, made) => { const s = m.dgram.createSocket('udp4'); made.push(s); s.setTTL(256); });
});

test("a VS's createSocket() without a type throws ERR_SOCKET_BAD_TYPE, as Node's (no silent udp4)", () => {
  const link = createMemoryLink({ frameCount: 64 });
  const stack = createStack({ name: 'args', devices: [{ name: 'm0', driver: 'memory' }], virtualServers: [{ name: 'a', links: [{ device: 'm0', addresses: ['10.1.1.1/24'] }] }] },
    { drivers: { m0: link.a }, log: () => {} });
  try {
    const vs = stack.vs('a');
    const m: Mods = { net: nodeNet, dgram: { createSocket: (...a: unknown[]) => (vs.createSocket as unknown as (...x: unknown[]) => nodeDgram.Socket).apply(vs, a) } };
    const node = thrown(NODE, (x, made) => { made.push((x.dgram.createSocket as () => nodeDgram.Socket)()); });
    assert.is(thrown(m, (x, made) => { made.push((x.dgram.createSocket as () => nodeDgram.Socket)()); }), node);
    assert.match(node, /^TypeError ERR_SOCKET_BAD_TYPE/);
  } finally {
    stack.close();
  }
});

test.run();
