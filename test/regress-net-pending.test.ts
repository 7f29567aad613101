/** Regression: net.Socket#pending is a boolean (true until connected). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';

test('socket.pending is true while connecting, false once connected', async () => {
  const w = twoHosts();
  createServer(w.a.ctx(), (s: Socket) => s.resume()).listen(80);
  await w.run(() => false, 1000);
  const c = connect(w.b.ctx(), 80, '10.1.1.1');
  const before = (c as unknown as { pending: unknown }).pending;
  assert.ok(await w.run(() => !c.connecting, 1_000_000));
  c.write('x'); // a write in progress must not turn `pending` into an object either
  const after = (c as unknown as { pending: unknown }).pending;
  assert.is(before, true, `pending while connecting: ${String(before)}`);
  assert.is(after, false, `pending after connect: ${JSON.stringify(after)}`);
});

test.run();
