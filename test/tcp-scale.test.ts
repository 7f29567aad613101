/**
 * TCP at scale through the engine: 10,000 concurrent connections between two hosts over the memory
 * link (10 VSes x 1000 on each side, same addresses in every VS), all established at the same time,
 * a small request/response on each, then an orderly close of all of them. Prints the memory one
 * connection costs (heap + buffers, measured after a full GC) and checks that every table, timer
 * and UMEM frame comes back.
 */
import { tcpState } from '../stack/transport/tcp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { twoHosts } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';

function gcFn(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

function memNow(gc: () => void): { heap: number; ext: number } {
  for (let i = 0; i < 3; i++) gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, ext: m.external }; // external includes the ArrayBuffers
}

const VSES = 10;
const PER_VS = 1000;
const TOTAL = VSES * PER_VS;
const BUF = 4096;

test(`${TOTAL} concurrent connections: established together, echo, close; memory per connection; nothing leaks`, async () => {
  const gc = gcFn();
  const vlans = Array.from({ length: VSES }, (_, i) => 200 + i);
  const tcp = { rcvBuf: BUF, sndBuf: BUF };
  const w = twoHosts({ vlans, tcp, link: { frameCount: 16384, wireFrames: 16384 } });
  const accepted: Socket[] = [];
  let serverEnded = 0;
  for (let i = 0; i < VSES; i++) {
    createServer(w.a.ctx(i), (s: Socket) => {
      accepted.push(s);
      s.on('data', (d) => s.write(`re:${d}`));
      s.on('end', () => { serverEnded++; s.end(); });
    }).listen({ port: 3260, backlog: 4096 });
  }
  await w.run(() => false, 1000);
  const before = memNow(gc);

  // Open in batches (a real client would not fire 10k SYNs in one event-loop turn either).
  const clients: Socket[] = [];
  const answers = new Array<string>(TOTAL).fill('');
  let connected = 0;
  let answered = 0;
  let closed = 0;
  let errors = 0;
  for (let k = 0; k < TOTAL; k += 500) {
    for (let j = k; j < k + 500; j++) {
      const c = connect(w.b.ctx(j % VSES), { port: 3260, host: '10.1.1.1' }, () => { connected++; });
      c.on('data', (d) => { answers[j] += d; if (answers[j] === `re:m${j}`) answered++; });
      c.on('error', () => { errors++; });
      c.on('close', () => { closed++; });
      clients.push(c);
    }
    assert.ok(await w.run(() => connected === k + 500, 30_000_000), `batch at ${k}: ${connected} connected`);
  }
  assert.ok(await w.run(() => accepted.length === TOTAL, 10_000_000), `accepted ${accepted.length}`);
  const ca = w.a.engine.tcp.connCount;
  const cb = w.b.engine.tcp.connCount;
  assert.is(ca, TOTAL, 'server side connections');
  assert.is(cb, TOTAL, 'client side connections');
  let perVs = 0;
  for (const v of w.a.vs) perVs += tcpState(v).conns.size;
  assert.is(perVs, TOTAL, 'server demux tables hold every 4-tuple');

  // All established at once: every one exchanges a small message. Sent 500 per event-loop turn:
  // the engine's TX burst holds outCapacity (1024) frames and a socket write outside a step that
  // finds it full is dropped (and recovered only by RTO).
  for (let k = 0; k < TOTAL; k += 500) {
    for (let j = k; j < k + 500; j++) clients[j]!.write(`m${j}`);
    await w.run(() => answered >= k + 500, 1_000_000);
  }
  assert.ok(await w.run(() => answered === TOTAL, 30_000_000), `answered ${answered}`);
  for (let j = 0; j < TOTAL; j += 997) assert.is(answers[j], `re:m${j}`);

  const after = memNow(gc);
  const endpoints = ca + cb;
  const perEndpoint = Math.round((after.heap - before.heap + after.ext - before.ext) / endpoints);
  const perConn = Math.round((after.heap - before.heap + after.ext - before.ext) / TOTAL);
  const heapPer = Math.round((after.heap - before.heap) / endpoints);
  console.log(`# memory per connection: ${perEndpoint} bytes (one endpoint: engine entry + TCP connection + net.Socket, `
    + `${heapPer} on the JS heap, rest in ${BUF}-byte send/receive buffers; ${perConn} bytes for both ends)`);
  assert.ok(perEndpoint > 2 * BUF, `per endpoint ${perEndpoint} includes its buffers`);
  assert.ok(perEndpoint < 64 * 1024, `per endpoint ${perEndpoint} < 64 KiB`);

  // Orderly close of all: clients end, servers answer with their FIN.
  for (let k = 0; k < TOTAL; k += 500) {
    for (let j = k; j < k + 500; j++) clients[j]!.end();
    await w.run(() => false, 1000);
  }
  assert.ok(await w.run(() => closed === TOTAL && serverEnded === TOTAL, 30_000_000), `closed ${closed}, server ended ${serverEnded}`);
  assert.is(errors, 0);
  // The active closers sit in TIME_WAIT; 2 MSL later every table is empty.
  assert.ok(w.b.engine.tcp.connCount > 0, 'client side in TIME_WAIT');
  assert.ok(await w.run(() => w.a.engine.tcp.connCount === 0 && w.b.engine.tcp.connCount === 0, 120_000_000),
    `left: ${w.a.engine.tcp.connCount} / ${w.b.engine.tcp.connCount}`);
  for (const h of [w.a, w.b]) {
    for (const v of h.vs) {
      assert.is(tcpState(v).conns.size, 0);
      assert.is(tcpState(v).localPorts.size, 0);
    }
  }
  await w.run(() => false, 1_000_000);
  for (const h of [w.a, w.b]) {
    const c = h.engine.devices[0]!.pool.check();
    assert.is(c.held, 0, 'no frame held');
    assert.is(c.tx, 0);
    assert.is(c.free + c.kernel, c.total);
  }
});

test.run();
