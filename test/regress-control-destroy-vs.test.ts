/**
 * Regression: destroying a virtual server must close what lives in it the way Node reports a
 * closed handle: its servers stop listening and emit 'close', its connected sockets are destroyed
 * with an error and emit 'close', its UDP sockets emit 'close'.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';

test('destroyVs closes its servers (listening false, close emitted) and its sockets (error + close)', async () => {
  const w = twoHosts();
  const serverSide: Socket[] = [];
  const srv = createServer(w.a.ctx(), (s: Socket) => { serverSide.push(s); });
  let srvClosed = 0;
  srv.on('close', () => { srvClosed++; });
  srv.listen(80);
  const idle = createServer(w.a.ctx());
  let idleClosed = 0;
  idle.on('close', () => { idleClosed++; });
  idle.listen(81);
  const udp = w.a.engine.createUdpSocket(w.a.vs[0]!);
  let udpClosed = 0;
  udp.on('close', () => { udpClosed++; });
  udp.bind(7);

  let connected = false;
  const c = connect(w.b.ctx(), 80, '10.1.1.1', () => { connected = true; });
  c.on('error', () => { /* the peer's concern */ });
  assert.ok(await w.run(() => connected && serverSide.length === 1, 2_000_000), 'connection established');
  const s = serverSide[0]!;
  let sockErr: NodeJS.ErrnoException | null = null;
  let sockClosed = false;
  s.on('error', (e) => { sockErr = e; });
  s.on('close', () => { sockClosed = true; });

  w.a.engine.destroyVs(w.a.vs[0]!.name);
  await w.run(() => srvClosed > 0 && idleClosed > 0 && sockClosed && udpClosed > 0, 1_000_000);

  assert.is(srv.listening, false, 'server with a connection no longer listening');
  assert.is(idle.listening, false, 'idle server no longer listening');
  assert.is(srvClosed, 1, "server emitted 'close' once");
  assert.is(idleClosed, 1, "idle server emitted 'close' once");
  assert.ok(sockClosed, "accepted socket emitted 'close'");
  assert.ok(s.destroyed, 'accepted socket destroyed');
  assert.ok(sockErr !== null, 'accepted socket got an error');
  assert.match(String((sockErr as unknown as NodeJS.ErrnoException).code), /^E[A-Z]+$/, 'error carries an errno-style code');
  assert.is(udpClosed, 1, "UDP socket emitted 'close'");
  // close() after the VS is gone reports what Node reports for a server that is not running.
  const err = await new Promise<Error | undefined>((resolve) => srv.close(resolve));
  assert.is((err as NodeJS.ErrnoException | undefined)?.code, 'ERR_SERVER_NOT_RUNNING');
});

test.run();
