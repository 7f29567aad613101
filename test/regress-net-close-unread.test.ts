/** Regression: a fully closed connection must not discard data the application has not read yet. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';

test('data + FIN received while the reader is paused are still readable after the connection closes', async () => {
  const w = twoHosts();
  const payload = Buffer.alloc(40_000, 0x61);
  createServer(w.a.ctx(), (s: Socket) => {
    s.on('error', () => {});
    s.resume();
    s.on('end', () => s.end(payload)); // answer after the client's FIN, then close
  }).listen(80);
  const c = connect(w.b.ctx(), 80, '10.1.1.1', () => c.end('request'));
  c.on('error', () => {});
  c.pause();
  // Let the whole exchange happen (server data and FIN reach the client) while the client is paused.
  await w.run(() => false, 2_000_000);
  const state = `tcpState=${c.tcpState} destroyed=${c.destroyed} readableLength=${c.readableLength}`;
  let got = 0;
  let ended = false;
  c.on('data', (d: Buffer) => { got += d.length; });
  c.on('end', () => { ended = true; });
  c.resume();
  await w.run(() => ended, 2_000_000);
  assert.is(got, payload.length, `bytes read after resume (${state})`);
  assert.ok(ended, `'end' emitted (${state})`);
});

test.run();
