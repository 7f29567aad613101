/**
 * The net-shaped API against Node's own `net` over the kernel. Each scenario runs twice: with
 * Node's `net` on loopback (server 127.0.0.2, client from 127.0.0.1) and with ours (two stacks on
 * the memory link in real time: server VS 10.1.1.1, client VS 10.1.1.2). What it observes (event
 * order, error codes and fields, property values) must be equal once addresses and ports are named
 * by their role (SRV, CLI, OTHER; SP for the server's port). Things that need a dead peer or the
 * kernel's timers (ETIMEDOUT, keepalive) are in net-node-parity-lab.test.ts; what we refuse on
 * purpose (IPC, file descriptors) and our deliberate differences are tested on our side alone.
 */
import { EventEmitter } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { realTimeHosts, until } from './lib/realtime';
import { netModule, Server, Socket } from '../stack/api/net';
import { both, closeServer, echoServer, freePorts, listen, Rec, same, sleep } from './lib/net-parity';

// ------------------------------------------------------------------------------------------------

test('connect(port, host, cb), connect(options, cb), new Socket().connect(): events and properties connecting, open and closed', async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const out: Rec = {};
    for (const form of ['port-host-cb', 'options-cb', 'new-socket']) {
      const ev: string[] = [];
      let connected: Rec = {};
      let s!: Socket;
      const onConnect = () => { ev.push('cb'); connected = r.props(s); };
      if (form === 'port-host-cb') s = env.cli.connect(port, env.srvHost, onConnect);
      else if (form === 'options-cb') s = env.cli.connect({ port, host: env.srvHost, localAddress: env.cliHost }, onConnect);
      else { s = new env.cli.Socket(); r.watch(s, ev); ev.push('before'); out[`${form}-fresh`] = r.props(s); s.connect(port, env.srvHost, onConnect); }
      if (form !== 'new-socket') r.watch(s, ev);
      const atCall = r.props(s);
      let data = '';
      s.on('data', (d: Buffer) => { data += d; });
      assert.ok(await until(() => !s.connecting, 3000), `${env.name} ${form}: connected`);
      s.write('hello');
      assert.ok(await until(() => data === 'hello', 3000), `${env.name} ${form}: echoed`);
      const open = r.props(s);
      s.end();
      assert.ok(await until(() => s.destroyed && ev.some((e) => e.startsWith('close')), 3000), `${env.name} ${form}: closed`);
      await sleep(5);
      out[form] = { ev, atCall, connected, open, closed: r.props(s) };
    }
    await closeServer(srv);
    return out;
  }));
  const o = got['options-cb'] as { ev: string[]; open: Rec; closed: Rec };
  assert.equal(o.ev.slice(0, 4), ['connectionAttempt SRV SP 4', 'cb', 'connect', 'ready'], 'the attempt, then connect (the callback was the first listener)');
  assert.is(o.open.bytesWritten, 5);
  assert.is(o.closed.readyState, 'closed');
});

test('ECONNREFUSED: a RST answers the SYN; a write waiting for the connection gets ERR_SOCKET_CLOSED_BEFORE_CONNECTION', async () => {
  const got = same(await both(async (env, r) => {
    const [closed, local] = await freePorts(env, 2);
    const port = r.port(closed!, 'CLOSED');
    const out: Rec = {};
    for (const form of ['plain', 'local']) {
      const ev: string[] = [];
      let err: unknown = null;
      let writeErr: unknown = 'not called';
      const lp = form === 'local' ? r.port(local!, 'LP') : 0;
      const s = form === 'plain' ? env.cli.connect(port, env.srvHost)
        : env.cli.connect({ port, host: env.srvHost, localAddress: env.cliHost, localPort: lp });
      r.watch(s, ev);
      s.on('error', (e) => { err = e; });
      s.write('early', (e) => { writeErr = e; });
      assert.ok(await until(() => ev.some((x) => x.startsWith('close')), 3000), `${env.name}: closed`);
      await sleep(5);
      out[form] = { ev, err: r.err(err), writeErr: r.err(writeErr), after: r.props(s) };
    }
    return out;
  }));
  const p = got.plain as { err: Rec };
  assert.equal(p.err, { name: 'Error', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED SRV:CLOSED', errno: -111, syscall: 'connect', address: 'SRV', port: 'CLOSED' });
  assert.is((got.local as { err: Rec }).err.message, 'connect ECONNREFUSED SRV:CLOSED - Local (CLI:LP)');
});

test('ECONNRESET: a RST on an established connection (the peer resetAndDestroy()s)', async () => {
  same(await both(async (env, r) => {
    const sev: string[] = [];
    let serr: unknown = null;
    const srv = env.srv.createServer((s: Socket) => {
      r.watch(s, sev);
      s.on('error', (e) => { serr = e; });
      s.once('data', () => s.resetAndDestroy());
    });
    r.port(await listen(srv, 0, env.srvHost), 'SP');
    const ev: string[] = [];
    let err: unknown = null;
    const s = env.cli.connect((srv.address() as { port: number }).port, env.srvHost, () => s.write('x'));
    r.watch(s, ev);
    s.on('error', (e) => { err = e; });
    assert.ok(await until(() => ev.some((x) => x.startsWith('close')) && sev.length > 0, 3000), `${env.name}: reset`);
    await sleep(5);
    await closeServer(srv);
    assert.equal(r.err(err), { name: 'Error', code: 'ECONNRESET', message: 'read ECONNRESET', errno: -104, syscall: 'read' }, env.name);
    return { ev, err: r.err(err), sev, serr: r.err(serr), bytesWritten: s.bytesWritten };
  }));
});

test('EADDRINUSE: listen on a port in use (one address, and ::)', async () => {
  const got = same(await both(async (env, r) => {
    const out: Rec = {};
    for (const host of [env.srvHost, undefined]) {
      const a = env.srv.createServer();
      const port = r.port(await listen(a, 0, ...(host ? [host] : [])), 'SP');
      const b = env.srv.createServer();
      const ev: string[] = [];
      r.watch(b, ev);
      let err: unknown = null;
      b.on('error', (e) => { err = e; });
      if (host) b.listen(port, host); else b.listen(port);
      await until(() => err !== null, 2000);
      out[host ? 'address' : 'any'] = { ev, err: r.err(err), listening: b.listening, address: b.address() };
      await closeServer(a);
    }
    return out;
  }));
  assert.equal(got.address, { ev: ['error EADDRINUSE'], err: { name: 'Error', code: 'EADDRINUSE', message: 'listen EADDRINUSE: address already in use SRV:SP', errno: -98, syscall: 'listen', address: 'SRV', port: 'SP' }, listening: false, address: null });
  assert.is((got.any as { err: Rec }).err.message, 'listen EADDRINUSE: address already in use :::SP');
});

test('EADDRNOTAVAIL: listen on, or connect from, an address the host does not have', async () => {
  const got = same(await both(async (env, r) => {
    const out: Rec = {};
    const a = env.srv.createServer();
    const ev: string[] = [];
    r.watch(a, ev);
    let err: unknown = null;
    a.on('error', (e) => { err = e; });
    a.listen(r.port(8123, 'FIXED'), env.otherHost);
    await until(() => err !== null, 2000);
    out.listen = { ev, err: r.err(err), listening: a.listening };
    const cev: string[] = [];
    let cerr: unknown = null;
    const c = env.cli.connect({ port: 80, host: env.srvHost, localAddress: env.otherHost });
    r.watch(c, cev);
    c.on('error', (e) => { cerr = e; });
    await until(() => cev.some((x) => x.startsWith('close')), 2000);
    out.bind = { ev: cev, err: r.err(cerr) };
    return out;
  }));
  assert.equal((got.listen as { err: Rec }).err, { name: 'Error', code: 'EADDRNOTAVAIL', message: 'listen EADDRNOTAVAIL: address not available OTHER:FIXED', errno: -99, syscall: 'listen', address: 'OTHER', port: 'FIXED' });
  assert.equal((got.bind as { err: Rec }).err, { name: 'Error', code: 'EADDRNOTAVAIL', message: 'bind EADDRNOTAVAIL OTHER', errno: -99, syscall: 'bind', address: 'OTHER' });
});

test('writes after end(), after destroy(), and after the peer ended (EPIPE as writeAfterFIN)', async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const out: Rec = {};
    for (const form of ['after-end', 'after-destroy']) {
      const ev: string[] = [];
      let cbErr: unknown = 'not called';
      const s = env.cli.connect(port, env.srvHost);
      r.watch(s, ev);
      s.on('error', () => {});
      assert.ok(await until(() => !s.connecting, 3000));
      if (form === 'after-end') s.end(); else s.destroy();
      const ret = s.write('late', (e) => { cbErr = e; });
      assert.ok(await until(() => ev.some((x) => x.startsWith('close')), 3000), `${env.name} ${form}`);
      await sleep(5);
      out[form] = { ev, ret, cbErr: r.err(cbErr) };
    }
    await closeServer(srv);
    // The peer ends: a write once this side has ended too (allowHalfOpen off) is EPIPE.
    const fin = env.srv.createServer((s: Socket) => { s.on('error', () => {}); s.resume(); s.end(); });
    const fport = r.port(await listen(fin, 0, env.srvHost), 'SP');
    const ev: string[] = [];
    let cbErr: unknown = 'not called';
    let err: unknown = null;
    let ret: unknown;
    const s = env.cli.connect(fport, env.srvHost);
    r.watch(s, ev);
    s.on('error', (e) => { err = e; });
    // Two ticks after 'end': the auto end() (next tick) has run, the close has not.
    s.on('end', () => process.nextTick(() => process.nextTick(() => { ret = s.write('late', (e) => { cbErr = e; }); })));
    s.resume();
    assert.ok(await until(() => ev.some((x) => x.startsWith('close')), 3000), `${env.name}: closed`);
    await sleep(5);
    out['after-peer-fin'] = { ev, ret, err: r.err(err), cbErr: r.err(cbErr) };
    await closeServer(fin);
    return out;
  }));
  assert.is((got['after-end'] as { cbErr: Rec }).cbErr.code, 'ERR_STREAM_WRITE_AFTER_END');
  assert.is((got['after-destroy'] as { cbErr: Rec }).cbErr.code, 'ERR_STREAM_DESTROYED');
  assert.equal((got['after-peer-fin'] as { err: Rec }).err, { name: 'Error', code: 'EPIPE', message: 'This socket has been ended by the other party' });
});

test('allowHalfOpen: the peer closed completely; a write draws its RST and the error is EPIPE (write)', async () => {
  same(await both(async (env, r) => {
    const srv = env.srv.createServer((s: Socket) => { s.on('error', () => {}); s.destroy(); });
    r.port(await listen(srv, 0, env.srvHost), 'SP');
    const ev: string[] = [];
    let err: unknown = null;
    const s = env.cli.connect({ port: (srv.address() as { port: number }).port, host: env.srvHost, allowHalfOpen: true });
    r.watch(s, ev);
    s.on('error', (e) => { err = e; });
    s.resume();
    assert.ok(await until(() => ev.includes('end'), 3000), `${env.name}: the peer's FIN`);
    s.write('one');
    // Node learns of the RST at its next write; we as it arrives (a difference in timing only).
    await sleep(100);
    if (!s.destroyed) s.write('two');
    assert.ok(await until(() => ev.some((x) => x.startsWith('close')), 3000), `${env.name}: closed`);
    await closeServer(srv);
    assert.equal(r.err(err), { name: 'Error', code: 'EPIPE', message: 'write EPIPE', errno: -32, syscall: 'write' }, env.name);
    return { ev, err: r.err(err) };
  }));
});

test('resetAndDestroy(): open (the peer gets ECONNRESET), while connecting (after the connect), never connected (ERR_SOCKET_CLOSED)', async () => {
  const got = same(await both(async (env, r) => {
    const sev: string[] = [];
    let serr: unknown = null;
    const srv = env.srv.createServer((s: Socket) => { r.watch(s, sev); s.on('error', (e) => { serr = e; }); s.resume(); });
    const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
    const out: Rec = {};
    const ev: string[] = [];
    const s = env.cli.connect(port, env.srvHost);
    r.watch(s, ev);
    assert.ok(await until(() => !s.connecting, 3000));
    const ret = s.resetAndDestroy() === s;
    assert.ok(await until(() => ev.some((x) => x.startsWith('close')) && sev.some((x) => x.startsWith('close')), 3000), `${env.name}: reset`);
    out.open = { ret, ev, sev: [...sev], serr: r.err(serr), after: r.props(s) };
    const ev2: string[] = [];
    const c2 = env.cli.connect(port, env.srvHost);
    r.watch(c2, ev2);
    c2.resetAndDestroy();
    assert.ok(await until(() => ev2.some((x) => x.startsWith('close')), 3000), `${env.name}: reset after connecting`);
    out.connecting = ev2;
    const ev3: string[] = [];
    let err3: unknown = null;
    const c3 = new env.cli.Socket();
    r.watch(c3, ev3);
    c3.on('error', (e) => { err3 = e; });
    c3.resetAndDestroy();
    assert.ok(await until(() => ev3.some((x) => x.startsWith('close')), 1000), `${env.name}: fresh socket`);
    out.fresh = { ev: ev3, err: r.err(err3) };
    await sleep(20);
    await closeServer(srv);
    return out;
  }));
  assert.equal((got.open as { ev: string[] }).ev.slice(-1), ['close false'], 'no error on the side that resets');
  assert.equal((got.open as { serr: Rec }).serr, { name: 'Error', code: 'ECONNRESET', message: 'read ECONNRESET', errno: -104, syscall: 'read' });
  assert.equal((got.fresh as { err: Rec }).err, { name: 'Error', code: 'ERR_SOCKET_CLOSED', message: 'Socket is closed' });
});

test('destroy(err) closes as the kernel closes a descriptor: the peer sees an orderly end, not a reset', async () => {
  same(await both(async (env, r) => {
    const sev: string[] = [];
    const srv = env.srv.createServer((s: Socket) => { r.watch(s, sev); s.on('error', () => {}); s.destroy(new Error('protocol error')); });
    const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
    const ev: string[] = [];
    const s = env.cli.connect(port, env.srvHost);
    r.watch(s, ev);
    s.resume();
    assert.ok(await until(() => ev.some((x) => x.startsWith('close')), 3000), `${env.name}: closed`);
    await closeServer(srv);
    assert.ok(ev.includes('end') && !ev.some((x) => x.startsWith('error')), `${env.name}: an orderly end (${ev})`);
    return { ev, sev };
  }));
});

test('writableLength, bufferSize, bytesWritten and bytesRead with a reader that does not read, then does', async () => {
  const SIZE = 64 << 20;
  const got = same(await both(async (env, r) => {
    let server: Socket | null = null;
    const srv = env.srv.createServer({ pauseOnConnect: true }, (s: Socket) => { server = s; });
    const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
    const s = env.cli.connect(port, env.srvHost);
    assert.ok(await until(() => !s.connecting && server !== null, 3000));
    const ret = s.write(Buffer.alloc(SIZE, 7));
    const queued = { ret, writableLength: s.writableLength, bufferSize: s.bufferSize, bytesWritten: s.bytesWritten };
    let drained = false;
    s.once('drain', () => { drained = true; });
    let n = 0;
    server!.on('data', (d: Buffer) => { n += d.length; });
    server!.resume();
    assert.ok(await until(() => drained && n === SIZE, 20_000), `${env.name}: drained (${n} read)`);
    const after = { writableLength: s.writableLength, bufferSize: s.bufferSize, bytesWritten: s.bytesWritten, serverBytesRead: server!.bytesRead };
    s.destroy();
    (server as unknown as Socket).destroy();
    await closeServer(srv);
    return { queued, after };
  }));
  assert.equal(got.queued, { ret: false, writableLength: SIZE, bufferSize: SIZE, bytesWritten: SIZE });
  assert.equal(got.after, { writableLength: 0, bufferSize: 0, bytesWritten: SIZE, serverBytesRead: SIZE });
});

test('setKeepAlive, setNoDelay, setTimeout, ref, unref: return values, the timeout property and the timeout event', async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const fresh = new env.cli.Socket();
    const before = [fresh.setKeepAlive(true, 1000) === fresh, fresh.setNoDelay() === fresh, fresh.ref() === fresh, fresh.unref() === fresh];
    fresh.destroy();
    const ev: string[] = [];
    const s = env.cli.connect(port, env.srvHost);
    r.watch(s, ev);
    assert.ok(await until(() => !s.connecting, 3000));
    const rets = [s.setKeepAlive(true, 2000) === s, s.setKeepAlive(false) === s, s.setNoDelay(true) === s, s.setNoDelay(false) === s,
      s.ref() === s, s.unref() === s, s.setTimeout(80) === s];
    const t = s.timeout;
    const t0 = Date.now();
    assert.ok(await until(() => ev.includes('timeout'), 2000), `${env.name}: timeout`);
    const idle = Date.now() - t0 >= 75;
    s.setTimeout(0);
    const cleared = s.timeout;
    const thrown: Rec[] = [];
    for (const bad of [-1, NaN, Infinity]) {
      try { s.setTimeout(bad); } catch (e) { thrown.push(r.err(e)!); }
    }
    s.end();
    assert.ok(await until(() => s.destroyed, 3000));
    await closeServer(srv);
    return { before, rets, timeout: t, idle, cleared, thrown, ev: ev.filter((x) => x === 'timeout') };
  }));
  assert.equal(got.rets, [true, true, true, true, true, true, true]);
  assert.is(got.timeout, 80);
  assert.is(got.idle, true);
  assert.equal(got.ev, ['timeout'], 'once per idle period');
});

test('server: address(), listening, listen forms, getConnections, maxConnections with drop, close() twice, asyncDispose', async () => {
  const got = same(await both(async (env, r) => {
    const out: Rec = {};
    let accepted = 0;
    const srv = env.srv.createServer((s: Socket) => { accepted++; s.on('error', () => {}); s.resume(); });
    const ev: string[] = [];
    r.watch(srv, ev);
    out.before = { address: srv.address(), listening: srv.listening, maxConnections: srv.maxConnections };
    const drops: Rec[] = [];
    srv.on('drop', (d: Rec) => drops.push({ ...d, localAddress: r.a(d.localAddress), localPort: r.p(d.localPort), remoteAddress: r.a(d.remoteAddress), remotePort: r.p(d.remotePort) }));
    const port = r.port(await listen(srv, 0, env.srvHost, 511, () => ev.push('cb')), 'SP');
    const a = srv.address() as { address: string; family: string; port: number };
    out.listening = { address: { address: r.a(a.address), family: a.family, port: r.p(a.port) }, listening: srv.listening };
    srv.maxConnections = 1;
    const c1 = env.cli.connect(port, env.srvHost);
    c1.on('error', () => {});
    assert.ok(await until(() => !c1.connecting && accepted === 1, 3000));
    const n1 = await new Promise<number>((res) => srv.getConnections((_e, n) => res(n)));
    const ev2: string[] = [];
    const c2 = env.cli.connect(port, env.srvHost);
    r.watch(c2, ev2);
    c2.on('error', () => {});
    c2.resume();
    assert.ok(await until(() => ev2.some((x) => x.startsWith('close')) && drops.length === 1, 3000), `${env.name}: dropped`);
    out.max = { n1, drops, dropped: ev2 };
    let closeErr: unknown = 'not called';
    srv.close((e) => { closeErr = e ?? null; });
    await sleep(50);
    out.closing = { listening: srv.listening, address: srv.address(), closeCalled: closeErr !== 'not called' };
    c1.end();
    assert.ok(await until(() => closeErr !== 'not called', 3000), `${env.name}: 'close' once the last connection closed`);
    let again: unknown = 'not called';
    srv.close((e) => { again = e; });
    assert.ok(await until(() => again !== 'not called', 1000));
    await sleep(10);
    out.closed = { closeErr, again: r.err(again), ev };
    const d = env.srv.createServer();
    const dev: string[] = [];
    r.watch(d, dev);
    await listen(d, 0, env.srvHost);
    await d[Symbol.asyncDispose]();
    out.disposed = { ev: dev, listening: d.listening };
    return out;
  }));
  assert.equal(got.before, { address: null, listening: false, maxConnections: undefined });
  assert.is(((got.max as { drops: Rec[] }).drops[0] as Rec).remoteAddress, 'CLI');
  assert.equal((got.closed as { ev: string[] }).ev, ['listening', 'cb', 'drop', 'close', 'close']);
  assert.equal(got.disposed, { ev: ['listening', 'close'], listening: false });
});

test('AbortSignal: connect({ signal }) open and connecting, new Socket({ signal }), listen({ signal }) and an aborted one', async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const out: Rec = {};
    for (const form of ['open', 'connecting', 'new-socket']) {
      const ac = new AbortController();
      const ev: string[] = [];
      let err: unknown = null;
      const s = form === 'new-socket' ? new env.cli.Socket({ signal: ac.signal }) : env.cli.connect({ port, host: env.srvHost, signal: ac.signal });
      r.watch(s, ev);
      s.on('error', (e) => { err = e; });
      if (form === 'new-socket') s.connect(port, env.srvHost);
      if (form !== 'connecting') assert.ok(await until(() => !s.connecting, 3000));
      ac.abort(form === 'new-socket' ? 'why' : undefined);
      assert.ok(await until(() => ev.some((x) => x.startsWith('close')), 3000), `${env.name} ${form}`);
      await sleep(10);
      out[form] = { ev, err: r.err(err), destroyed: s.destroyed };
    }
    await closeServer(srv);
    for (const form of ['listen', 'listen-aborted']) {
      const ac = new AbortController();
      if (form === 'listen-aborted') ac.abort();
      const l = env.srv.createServer();
      const ev: string[] = [];
      r.watch(l, ev);
      l.listen({ port: 0, host: env.srvHost, signal: ac.signal });
      if (form === 'listen') { assert.ok(await until(() => ev.includes('listening'), 2000)); ac.abort(); }
      await sleep(30);
      out[form] = { ev, listening: l.listening };
    }
    return out;
  }));
  assert.equal((got.open as { err: Rec }).err, { name: 'AbortError', code: 'ABORT_ERR', message: 'The operation was aborted', cause: 'AbortError: This operation was aborted' });
  assert.is(((got['new-socket'] as { err: Rec }).err).cause, 'why');
  assert.equal(got.listen, { ev: ['listening', 'close'], listening: false });
  assert.equal(got['listen-aborted'], { ev: ['close'], listening: false });
});

test('socket.connect() again after the close: a new connection, counters and addresses start over', async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const s = new env.cli.Socket();
    const ev: string[] = [];
    r.watch(s, ev);
    const rounds: Rec[] = [];
    for (let i = 0; i < 2; i++) {
      let data = '';
      const onData = (d: Buffer) => { data += d; };
      s.on('data', onData);
      s.connect(port, env.srvHost);
      const connecting = r.props(s);
      assert.ok(await until(() => !s.connecting, 3000), `${env.name}: round ${i} connected`);
      s.write(i ? 'second' : 'first!!');
      assert.ok(await until(() => data.length === (i ? 6 : 7), 3000));
      const open = r.props(s);
      s.end();
      assert.ok(await until(() => s.destroyed && ev.filter((x) => x.startsWith('close')).length === i + 1, 3000), `${env.name}: round ${i} closed`);
      s.off('data', onData);
      rounds.push({ connecting, open });
    }
    await closeServer(srv);
    return { rounds, ev };
  }));
  const [, second] = got.rounds as { connecting: Rec; open: Rec }[];
  assert.is(second!.connecting.remoteAddress, undefined, 'no peer while connecting again');
  assert.is(second!.open.bytesWritten, 6, 'counters start over');
});

test('onread: data lands in the given buffer; a callback returning false pauses until resume()', async () => {
  const got = same(await both(async (env, r) => {
    const srv = env.srv.createServer((s: Socket) => { s.on('error', () => {}); s.end('hello world!'); });
    const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
    const chunks: string[] = [];
    const buf = Buffer.alloc(4);
    const ev: string[] = [];
    const s = env.cli.connect({ port, host: env.srvHost, onread: { buffer: buf, callback: (n, b) => { chunks.push(Buffer.from(b.subarray(0, n)).toString()); return chunks.length !== 1; } } });
    r.watch(s, ev);
    assert.ok(await until(() => chunks.length === 1, 3000));
    await sleep(50);
    const whilePaused = chunks.length;
    s.resume();
    assert.ok(await until(() => ev.some((x) => x.startsWith('close')), 3000), `${env.name}: closed`);
    await closeServer(srv);
    return { chunks, whilePaused, ev, bytesRead: s.bytesRead };
  }));
  assert.equal(got.chunks, ['hell', 'o wo', 'rld!']);
  assert.is(got.whilePaused, 1);
});

test('argument errors are thrown at the call as Node throws them', async () => {
  const got = same(await both(async (env, r) => {
    const calls: [string, () => unknown][] = [
      ['connect port 70000', () => env.cli.connect({ port: 70000, host: env.srvHost })],
      ['connect port -1', () => env.cli.connect(-1, env.srvHost)],
      ['connect port abc', () => env.cli.connect({ port: 'abc' as unknown as number })],
      ['connect port 1.5', () => env.cli.connect({ port: 1.5 })],
      ['connect port true', () => env.cli.connect({ port: true as unknown as number })],
      ['connect no port', () => env.cli.connect({} as { port: number })],
      ['connect bad localAddress', () => env.cli.connect({ port: 80, host: env.srvHost, localAddress: 'abc' })],
      ['connect bad localPort', () => env.cli.connect({ port: 80, host: env.srvHost, localPort: 'x' as unknown as number })],
      ['connect bad host', () => env.cli.connect({ port: 80, host: 5 as unknown as string })],
      ['socket objectMode', () => new env.cli.Socket({ objectMode: true } as object)],
      ['server bad options', () => env.srv.createServer('x' as unknown as object)],
      ['listen port 70000', () => env.srv.createServer().listen({ port: 70000 })],
      ['listen {}', () => env.srv.createServer().listen({})],
      ['listen host only', () => env.srv.createServer().listen({ host: env.srvHost })],
      ['setTimeout -1', () => new env.cli.Socket().setTimeout(-1)],
    ];
    const out: Rec = {};
    for (const [name, call] of calls) {
      try { const x = call() as EventEmitter | undefined; x?.on?.('error', () => {}); out[name] = 'no throw'; } catch (e) { out[name] = r.err(e); }
    }
    const srv = env.srv.createServer();
    await listen(srv, 0, env.srvHost);
    try { srv.listen(0); out['listen twice'] = 'no throw'; } catch (e) { out['listen twice'] = r.err(e); }
    await closeServer(srv);
    return out;
  }));
  assert.equal(got['connect port 70000'], { name: 'RangeError', code: 'ERR_SOCKET_BAD_PORT', message: 'Port should be >= 0 and < 65536. Received type number (70000).' });
  assert.is((got['listen twice'] as Rec).code, 'ERR_SERVER_ALREADY_LISTEN');
  assert.is((got['listen {}'] as Rec).code, 'ERR_INVALID_ARG_VALUE');
});

// ------------------------------------------------------------------------------------------------
// Ours alone: what Node does with the kernel and a stack in a VS cannot, refused clearly.

test('IPC paths, file descriptors and handles throw ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', () => {
  const w = realTimeHosts();
  try {
    const net = netModule(w.b.ctx);
    const any = net as unknown as { connect(...a: unknown[]): Socket };
    const srv = net.createServer() as unknown as { listen(...a: unknown[]): Server };
    const calls: [string, () => unknown][] = [
      ["connect('/run/app.sock')", () => any.connect('/run/app.sock')],
      ['connect({ path })', () => any.connect({ path: '/run/app.sock' })],
      ['connect({ port, fd })', () => any.connect({ port: 80, fd: 3 })],
      ["listen('/run/app.sock')", () => srv.listen('/run/app.sock')],
      ['listen({ path })', () => srv.listen({ path: '/run/app.sock' })],
      ['listen({ fd })', () => srv.listen({ fd: 3 })],
      ['listen(handle)', () => srv.listen({ handle: {} })],
      ['new Socket({ fd })', () => new net.Socket({ fd: 3 } as object)],
    ];
    for (const [name, call] of calls) {
      assert.throws(call, (e: Error & { code?: string }) => e.code === 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM' && /not supported by xdpstack/.test(e.message), name);
    }
  } finally {
    w.stop();
  }
});

test('deliberate differences: a second connect() throws (EISCONN/EALREADY); an aborted signal never connects; names need a lookup', async () => {
  const w = realTimeHosts();
  try {
    const net = netModule(w.b.ctx);
    const srv = netModule(w.a.ctx).createServer((s: Socket) => s.resume()).listen(80);
    const s = net.connect(80, '10.1.1.1');
    assert.throws(() => s.connect(80, '10.1.1.1'), (e: Error & { code?: string; syscall?: string }) => e.code === 'EALREADY' && e.syscall === 'connect');
    assert.ok(await until(() => !s.connecting, 3000));
    assert.throws(() => s.connect(80, '10.1.1.1'), (e: Error & { code?: string; errno?: number }) => e.code === 'EISCONN' && e.errno === -106);
    s.destroy();
    // Node connects a socket whose signal was aborted before connect() (and emits 'connect' after
    // 'close'); ours stays destroyed with the AbortError.
    const ac = new AbortController();
    ac.abort();
    const ev: string[] = [];
    const a = net.connect({ port: 80, host: '10.1.1.1', signal: ac.signal });
    for (const n of ['connect', 'error', 'close']) a.on(n, (x: unknown) => ev.push(n === 'error' ? `error ${(x as { code: string }).code}` : n));
    await until(() => false, 200);
    assert.equal(ev, ['error ABORT_ERR', 'close']);
    // A host name: a VS has no resolver; ENOTFOUND says so, a lookup function resolves it.
    let err: (Error & { code?: string; hostname?: string }) | null = null;
    const n = net.connect(80, 'db.internal');
    n.on('error', (e) => { err = e; });
    await until(() => err !== null, 1000);
    assert.is(err!.code, 'ENOTFOUND');
    assert.is(err!.hostname, 'db.internal');
    assert.match(err!.message, /resolves no names/);
    const looked: unknown[] = [];
    const l = net.connect({ port: 80, host: 'db.internal', lookup: (h, o, cb) => { looked.push(h, o.family); setImmediate(() => cb(null, '10.1.1.1', 4)); } });
    l.on('lookup', (e: Error | null, addr: string, fam: number, host: string) => looked.push(e, addr, fam, host));
    assert.ok(await until(() => !l.connecting && !l.destroyed, 3000), 'connected through the lookup');
    assert.equal(looked, ['db.internal', undefined, null, '10.1.1.1', 4, 'db.internal']);
    assert.is(l.remoteAddress, '10.1.1.1');
    l.destroy();
    srv.close();
  } finally {
    w.stop();
  }
});

test('setNoDelay/setKeepAlive before the connection exists apply when it does; keepalive as libuv sets it', async () => {
  // Node (libuv 1.46, seen with strace): setKeepAlive(true, ms >= 1000) sets TCP_KEEPIDLE to whole
  // seconds, TCP_KEEPINTVL 1 and TCP_KEEPCNT 10; under a second only SO_KEEPALIVE (idle time and
  // probes stay as they were); the server options noDelay/keepAlive apply to accepted sockets.
  const w = realTimeHosts();
  try {
    let accepted: Socket | null = null;
    netModule(w.a.ctx).createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 3000, highWaterMark: 1234 }, (s) => { accepted = s; s.resume(); }).listen(80);
    const net = netModule(w.b.ctx);
    const s = new net.Socket();
    s.setNoDelay(true);
    s.setKeepAlive(true, 5500);
    s.connect(80, '10.1.1.1');
    assert.ok(await until(() => !s.connecting && accepted !== null, 3000));
    const o = s.connection!.conn.opts;
    assert.equal([o.noDelay, o.keepAlive, o.keepIdleUs, o.keepIntvlUs, o.keepCnt], [true, true, 5_000_000, 1_000_000, 10]);
    s.setKeepAlive(true, 500);
    assert.equal([o.keepAlive, o.keepIdleUs], [true, 5_000_000], 'under a second: the idle time stays');
    s.setKeepAlive(false);
    assert.is(o.keepAlive, false);
    const a = (accepted as unknown as Socket).connection!.conn.opts;
    assert.equal([a.noDelay, a.keepAlive, a.keepIdleUs, a.keepIntvlUs, a.keepCnt], [true, true, 3_000_000, 1_000_000, 10]);
    assert.equal([(accepted as unknown as Socket).readableHighWaterMark, (accepted as unknown as Socket).writableHighWaterMark], [1234, 1234]);
    // Explicit TCP options of the connection win over what the Node calls imply.
    const t = net.connect({ port: 80, host: '10.1.1.1', keepAlive: true, keepAliveInitialDelay: 2000, tcp: { keepCnt: 3 } });
    assert.ok(await until(() => !t.connecting, 3000));
    assert.equal([t.connection!.conn.opts.keepIdleUs, t.connection!.conn.opts.keepCnt], [2_000_000, 3]);
    s.destroy();
    t.destroy();
  } finally {
    w.stop();
  }
});

test('vs.net of a stack is a net module: new Socket(), connect, createServer in that VS', async () => {
  const { createStack } = await import('../stack/index');
  const stack = createStack({ name: 'parity', devices: [{ name: 'm0', driver: 'memory' }], virtualServers: [{ name: 'a', links: [{ device: 'm0', addresses: ['10.5.0.1/24'] }] }] });
  stack.start();
  try {
    const net = stack.vs('a').net;
    assert.is(stack.vs('a').net, net, 'one module per VS');
    const srv = net.createServer((s) => s.pipe(s));
    await listen(srv, 7, '10.5.0.1');
    const s = new net.Socket();
    let got = '';
    s.on('data', (d: Buffer) => { got += d; });
    s.connect({ port: 7, host: '10.5.0.1' }, () => s.end('ping'));
    assert.ok(await until(() => got === 'ping' && s.destroyed, 3000), `echoed within the VS (${got})`);
    const c = stack.vs('a').connect({ port: 7, host: '10.5.0.1' });
    assert.ok(c instanceof Socket);
    c.destroy();
    await closeServer(srv);
  } finally {
    stack.close();
  }
});

test.run();
