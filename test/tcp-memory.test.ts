/**
 * TCP through the engine and the `net`-shaped API, two hosts over the in-memory link under virtual
 * time: handshake, data both ways, half-close, errors, backpressure, many VSes on one port, lossy
 * links, and Node's own `http` running unchanged on top.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as http from 'node:http';
import { twoHosts, pattern, sha, exchange } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';

test('connect, echo both ways, half-close and orderly close', async () => {
  const w = twoHosts();
  const srv = createServer(w.a.ctx(), (s: Socket) => {
    s.on('data', (d) => s.write(Buffer.concat([Buffer.from('echo:'), d])));
    s.on('end', () => s.end('bye'));
  });
  srv.listen(3260);
  let got = '';
  let connected = false;
  let closed = false;
  let local: { address?: string; port?: number } = {};
  const c = connect(w.b.ctx(), { port: 3260, host: '10.1.1.1' }, () => { connected = true; local = { address: c.localAddress, port: c.localPort }; void c.remoteAddress; c.write('hello'); });
  c.on('data', (d) => { got += d.toString(); if (got === 'echo:hello') c.end(); });
  c.on('close', () => { closed = true; });
  assert.ok(await w.run(() => closed, 10_000_000), `closed (got ${JSON.stringify(got)})`);
  assert.ok(connected);
  assert.is(got, 'echo:hellobye');
  // Read while open, the peer's address is kept after the close (as Node caches it).
  assert.is(c.remoteAddress, '10.1.1.1');
  assert.is(c.remotePort, 3260);
  assert.is(local.address, '10.1.1.2');
  assert.ok(local.port! >= 32768);
  assert.is(c.localAddress, undefined, 'closed: no local end any more (as net.Socket)');
  assert.is(c.bytesWritten, 5);
  assert.is(c.bytesRead, 13);
  srv.close();
  assert.is(w.a.engine.devices[0]!.pool.check().held + w.b.engine.devices[0]!.pool.check().held, 0);
});

test('ECONNREFUSED without a listener; EADDRINUSE on a second listen', async () => {
  const w = twoHosts();
  let err: (Error & { code?: string }) | null = null;
  const c = connect(w.b.ctx(), 9, '10.1.1.1');
  c.on('error', (e) => { err = e; });
  assert.ok(await w.run(() => err !== null, 5_000_000));
  assert.is(err!.code, 'ECONNREFUSED');
  const s1 = createServer(w.a.ctx()).listen(80);
  const s2 = createServer(w.a.ctx());
  let e2: (Error & { code?: string }) | null = null;
  s2.on('error', (e) => { e2 = e; });
  s2.listen(80);
  await w.run(() => e2 !== null, 1000);
  assert.is(e2!.code, 'EADDRINUSE');
  s1.close();
});

test('the same port in 20 VSes: each listener hears only its own VS', async () => {
  const vlans = Array.from({ length: 20 }, (_, i) => 100 + i);
  const w = twoHosts({ vlans });
  const seen: string[] = [];
  vlans.forEach((v, i) => {
    createServer(w.a.ctx(i), (s: Socket) => s.on('data', (d) => { seen.push(`${v}:${d}`); s.end(`vs${v}`); })).listen(3260);
  });
  const answers: string[] = [];
  vlans.forEach((v, i) => {
    const c = connect(w.b.ctx(i), { port: 3260, host: '10.1.1.1' }, () => c.end(`from ${v}`));
    let a = '';
    c.on('data', (d) => { a += d; });
    c.on('end', () => answers.push(`${v}->${a}`));
  });
  assert.ok(await w.run(() => answers.length === vlans.length, 20_000_000));
  assert.equal(answers.sort(), vlans.map((v) => `${v}->vs${v}`).sort());
  assert.equal(seen.sort(), vlans.map((v) => `${v}:from ${v}`).sort());
});

test('backpressure: write() returns false and drain comes; a slow reader is not overrun', async () => {
  const w = twoHosts();
  const size = 4 * 1024 * 1024;
  const data = pattern(size, 7);
  let server: Socket | null = null;
  const chunks: Buffer[] = [];
  createServer(w.a.ctx(), (s: Socket) => { server = s; s.pause(); s.on('data', (d) => chunks.push(d)); }).listen(5000);
  const c = connect(w.b.ctx(), 5000, '10.1.1.1');
  let drained = 0;
  let sawFalse = false;
  let off = 0;
  const pump = () => {
    while (off < size) {
      const ok = c.write(data.subarray(off, off + 65536));
      off += 65536;
      if (!ok) { sawFalse = true; return; }
    }
    c.end();
  };
  c.on('drain', () => { drained++; pump(); });
  c.on('connect', pump);
  await w.run(() => sawFalse && server !== null, 5_000_000);
  await w.run(() => false, 2_000_000); // reader paused: the window closes, nothing more arrives
  assert.is(chunks.length, 0);
  server!.resume();
  let ended = false;
  server!.on('end', () => { ended = true; });
  assert.ok(await w.run(() => ended, 60_000_000));
  assert.ok(drained >= 1);
  assert.is(sha(Buffer.concat(chunks)), sha(data));
});

for (const cc of ['newreno', 'cubic'] as const) {
  test(`2 MB each way over a link with 3% loss, reordering and duplication (${cc}) is byte-exact`, async () => {
    const w = twoHosts({ link: { seed: 42, loss: 0.03, reorder: 0.02, reorderDelayUs: 3000, duplicate: 0.01, delayUs: 500 }, tcp: { cc } });
    const up = pattern(2 * 1024 * 1024, 1);
    const down = pattern(2 * 1024 * 1024, 2);
    const r = await exchange(w, 7000, up, down, 600_000_000);
    assert.ok(r.ok, 'transfer completed');
    assert.is(sha(r.atServer), sha(up));
    assert.is(sha(r.atClient), sha(down));
  });
}

test("Node's http server and client run unchanged over xdpstack sockets", async () => {
  const w = twoHosts();
  const hs = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => { res.setHeader('content-type', 'text/plain'); res.end(`hello ${req.method} ${req.url} ${body}`); });
  });
  createServer(w.a.ctx(), (s: Socket) => hs.emit('connection', s)).listen(80);
  let status = 0;
  let text = '';
  let done = false;
  const req = http.request({
    method: 'POST', path: '/x?y=1', headers: { 'content-type': 'text/plain' },
    createConnection: () => connect(w.b.ctx(), 80, '10.1.1.1') as unknown as import('node:net').Socket,
  }, (res) => {
    status = res.statusCode ?? 0;
    res.on('data', (d) => { text += d; });
    res.on('end', () => { done = true; });
  });
  req.end('payload');
  assert.ok(await w.run(() => done, 10_000_000), 'response received');
  assert.is(status, 200);
  assert.is(text, 'hello POST /x?y=1 payload');
});

test('zero-copy receive: views into held frames, released explicitly; frames add up', async () => {
  const w = twoHosts();
  const data = pattern(1024 * 1024, 9);
  const pool = w.a.engine.devices[0]!.pool;
  const got: Buffer[] = [];
  let maxHeld = 0;
  let chunks = 0;
  let inPlace = 0;
  let ended = false;
  const held: import('../stack/transport/tcp').ZeroCopyChunk[] = [];
  createServer(w.a.ctx(), (s: Socket) => {
    s.setZeroCopyReader((chunk) => {
      chunks++;
      if (chunk.bytes.buffer === pool.buffer) inPlace++; // a view into the frame pool, not a copy
      held.push(chunk);
      maxHeld = Math.max(maxHeld, pool.heldBy(2));
      if (held.length >= 8) for (const c of held.splice(0)) { got.push(Buffer.from(c.bytes)); c.release(); }
    });
    s.on('end', () => { for (const c of held.splice(0)) { got.push(Buffer.from(c.bytes)); c.release(); } ended = true; });
  }).listen(9000);
  const c = connect(w.b.ctx(), 9000, '10.1.1.1', () => c.end(data));
  assert.ok(await w.run(() => ended, 60_000_000));
  assert.ok(chunks > 100);
  assert.ok(inPlace / chunks > 0.9, `${inPlace} of ${chunks} chunks were delivered in place`);
  assert.ok(maxHeld >= 7, `frames were held by the reader (max ${maxHeld})`);
  assert.is(sha(Buffer.concat(got)), sha(data));
  assert.is(pool.heldBy(2), 0);
  await w.run(() => false, 1_000_000); // let the last ACKs leave the output queue
  assert.is(pool.check().held, 0);
});

test('a reader that fell behind then read everything closes with FIN, not RST (echo via pipe after EOF)', async () => {
  const w = twoHosts();
  const data = pattern(100_000, 5); // more than the stream buffers, less than the TCP window
  let server: Socket | null = null;
  createServer(w.a.ctx(), (s: Socket) => { server = s; s.pause(); }).listen(7007);
  const got: Buffer[] = [];
  let ended = false;
  let err: Error | null = null;
  const c = connect(w.b.ctx(), 7007, '10.1.1.1', () => c.end(data));
  c.on('data', (d) => got.push(d));
  c.on('end', () => { ended = true; });
  c.on('error', (e) => { err = e; });
  // The server reads nothing until the client's FIN is in: its window fills, data waits in the stream.
  await w.run(() => server !== null && server.tcpState === 'CLOSE_WAIT', 30_000_000);
  assert.is(server!.tcpState, 'CLOSE_WAIT');
  server!.pipe(server!);
  assert.ok(await w.run(() => ended || err !== null, 30_000_000));
  assert.is(err, null);
  assert.is(sha(Buffer.concat(got)), sha(data));
});

test.run();
