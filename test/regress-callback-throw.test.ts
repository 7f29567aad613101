/**
 * Regression (issue 8): an exception thrown by application code in a socket callback must not leak
 * frames nor corrupt the stack's state. As in Node, where such an exception escapes an I/O callback,
 * it becomes an uncaught exception (process 'uncaughtException', else the process exits): the
 * engine finishes the delivery of the burst's events first, then rethrows it from process.nextTick.
 * Two hosts over the memory link, virtual time.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, pattern, sha } from './lib/world';
import { held } from './lib/inject';
import { connect, createServer, Socket } from '../stack/api/net';
import type { ZeroCopyChunk } from '../stack/transport/tcp';

/** Collects uncaught exceptions while `fn` runs (Node's 'uncaughtException'). */
async function catching(fn: (errors: unknown[]) => Promise<void>): Promise<unknown[]> {
  const errors: unknown[] = [];
  const h = (err: unknown) => { errors.push(err); };
  process.on('uncaughtException', h);
  try {
    await fn(errors);
    await new Promise((r) => setImmediate(r)); // the rethrow is asynchronous (process.nextTick)
  } finally {
    process.off('uncaughtException', h);
  }
  return errors;
}

test("a 'data' listener that throws: uncaught exception, frames freed, every byte delivered, other sockets served", async () => {
  const w = twoHosts();
  const boom = new Error('data listener fault');
  const rx: number[] = [0, 0];
  const ended = [false, false];
  let k = 0;
  createServer(w.a.ctx(), (s: Socket) => {
    const me = k++;
    let thrown = false;
    s.on('data', (d: Buffer) => {
      rx[me]! += d.length;
      if (me === 0 && !thrown) { thrown = true; throw boom; }
    });
    s.on('end', () => { ended[me] = true; s.end(); });
  }).listen(80);
  const data = pattern(300_000, 5);
  const errors = await catching(async () => {
    for (let i = 0; i < 2; i++) {
      const c = connect(w.b.ctx(), 80, '10.1.1.1', () => c.end(data));
      c.resume();
      await w.run(() => k > i, 1_000_000);
    }
    assert.ok(await w.run(() => ended[0]! && ended[1]!, 30_000_000), `ended ${ended}`);
  });
  assert.equal(errors, [boom], 'rethrown once, as an uncaught exception');
  assert.equal(rx, [data.length, data.length], 'the throwing socket got all its bytes too');
  await w.run(() => false, 100_000_000);
  assert.equal(held(w), [0, 0], 'no frame held');
  assert.is(w.a.engine.internalErrors, 0, 'an application error is not an internal one');
});

test('a zero-copy reader that throws without releasing its chunk: the frame is freed and the transfer completes', async () => {
  const w = twoHosts();
  const parts: Buffer[] = [];
  let ended = false;
  let throws = 0;
  createServer(w.a.ctx(), (s: Socket) => {
    s.setZeroCopyReader((chunk: ZeroCopyChunk) => {
      if (throws < 3) { throws++; throw new Error('reader fault'); } // chunk neither copied nor released
      parts.push(chunk.copy());
      chunk.release();
    });
    s.on('end', () => { ended = true; s.end(); });
  }).listen(80);
  const data = pattern(500_000, 9);
  const errors = await catching(async () => {
    const c = connect(w.b.ctx(), 80, '10.1.1.1', () => c.end(data));
    c.resume();
    assert.ok(await w.run(() => ended, 30_000_000), 'transfer completed (the receive window reopened)');
  });
  assert.is(errors.length, 3);
  const got = Buffer.concat(parts);
  assert.ok(got.length < data.length && got.length >= data.length - 3 * 1448, `bytes kept ${got.length}`);
  assert.is(sha(got.subarray(got.length - 1000)), sha(data.subarray(data.length - 1000)), 'later data intact');
  await w.run(() => false, 100_000_000);
  assert.equal(held(w), [0, 0], 'no frame held');
});

test("a 'connection' listener that throws: what came with the handshake is delivered, later connections accepted", async () => {
  const w = twoHosts();
  const got: string[] = [];
  createServer(w.a.ctx(), (s: Socket) => {
    s.on('data', (d) => got.push(String(d)));
    throw new Error('connection listener fault');
  }).listen(80);
  const errors = await catching(async () => {
    for (const msg of ['first', 'second']) {
      const c = connect(w.b.ctx(), 80, '10.1.1.1');
      c.write(msg); // queued before the connection exists: leaves right after the handshake
      assert.ok(await w.run(() => got.includes(msg), 2_000_000), `got ${got}`);
      c.destroy();
    }
  });
  assert.is(errors.length, 2);
  assert.equal(got, ['first', 'second']);
});

test("a 'connect' callback that throws: the writes queued before it still go out", async () => {
  const w = twoHosts();
  let got = '';
  createServer(w.a.ctx(), (s: Socket) => { s.on('data', (d) => { got += d; }); }).listen(80);
  const errors = await catching(async () => {
    const c = connect(w.b.ctx(), 80, '10.1.1.1', () => { throw new Error('connect callback fault'); });
    c.write('queued early');
    assert.ok(await w.run(() => got === 'queued early', 2_000_000), `got '${got}'`);
    c.destroy();
  });
  assert.is(errors.length, 1);
});

test("a UDP 'message' listener that throws: the other datagrams of the burst are still delivered", async () => {
  const w = twoHosts();
  const a = w.a.engine.createUdpSocket(w.a.vs[0]!);
  a.bind(5000);
  const got: string[] = [];
  a.on('message', (m: Buffer) => {
    got.push(String(m));
    if (got.length === 2) throw new Error('message listener fault');
  });
  const b = w.b.engine.createUdpSocket(w.b.vs[0]!);
  b.bind(6000);
  b.send(Buffer.from('warm'), 5000, '10.1.1.1'); // resolves the MAC first
  assert.ok(await w.run(() => got.length === 1, 1_000_000));
  const errors = await catching(async () => {
    for (let i = 0; i < 5; i++) b.send(Buffer.from(`m${i}`), 5000, '10.1.1.1');
    assert.ok(await w.run(() => got.length === 6, 1_000_000), `got ${got}`);
  });
  assert.equal(got, ['warm', 'm0', 'm1', 'm2', 'm3', 'm4']);
  assert.is(errors.length, 1);
  a.close();
  b.close();
});

test.run();
