/** Regression: closing a listener must also end its half-open (SYN_RECEIVED) connections. */
import { tcpState } from '../stack/transport/tcp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import { TcpState } from '../protocols/tcp/types';

test('server.close() while a handshake is half done: no orphan connection, no held frames', async () => {
  const w = twoHosts({ link: { delayUs: 5000 } });
  let accepted = 0;
  const srv = createServer(w.a.ctx(), (s: Socket) => { accepted++; s.resume(); }).listen(80);
  await w.run(() => false, 1000);
  const c = connect(w.b.ctx(), 80, '10.1.1.1');
  c.on('error', () => {});
  const conns = tcpState(w.a.vs[0]!).conns;
  const synRcvd = () => [...conns.values()].some((e) => e.conn.state === TcpState.SynReceived);
  assert.ok(await w.run(synRcvd, 100_000), 'server saw the SYN');
  srv.close();
  // The client completes its side of the handshake and sends data the server never accepts.
  await w.run(() => c.tcpState === 'ESTABLISHED' || c.destroyed, 100_000);
  if (!c.destroyed) c.write(Buffer.alloc(20_000, 1));
  await w.run(() => false, 60_000_000);
  const left = [...conns.values()].map((e) => `${e.conn.state}`);
  const held = w.link.a.pool.counts().held;
  assert.is(accepted, 0);
  assert.is(conns.size, 0, `connections left on the closed listener's VS: states ${left}; frames held ${held}`);
  assert.is(held, 0, 'frames held by a connection nobody will accept');
});

test.run();
