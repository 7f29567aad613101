/**
 * More of the net-shaped API against Node's own `net` over the kernel, with the harness of
 * net-node-parity.test.ts (test/lib/net-parity.ts): each scenario runs with Node's `net` on
 * loopback and with ours on two stacks over the memory link, and what the program observes must be
 * equal once addresses and ports are named by their role. Each test here is the regression test of
 * a difference that was found and fixed; its title says what Node does.
 */
import { EventEmitter } from 'node:events';
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { realTimeHosts, until } from './lib/realtime';
import { canRunPrivileged, labPrefix, sh } from './lib/env';
import { netModule, Socket } from '../stack/api/net';
import { both, closeServer, echoServer, freePorts, listen, Rec, same, sleep } from './lib/net-parity';

const closed = (ev: string[]) => ev.some((x) => x.startsWith('close'));

/** Records the events of `s` in order, each with what a program sees of its argument ('data' listened to unless `data` is false). */
function watchAll(s: EventEmitter, ev: string[], tag = '', data = true): void {
  for (const n of ['connect', 'ready', ...(data ? ['data'] : []), 'end', 'finish', 'close', 'error', 'timeout', 'drain']) {
    s.on(n, (...a: unknown[]) => {
      const x = a[0];
      if (n === 'error') ev.push(`${tag}error ${(x as { code?: string }).code}`);
      else if (n === 'close') ev.push(`${tag}close ${String(x)}`);
      else if (n === 'data') ev.push(`${tag}data ${typeof x === 'string' ? JSON.stringify(x) : `buffer ${(x as Buffer).length}`}`);
      else ev.push(tag + n);
    });
  }
}

// ------------------------------------------------------------------------------------------------

test("a socket nobody reads still gets 'end' when the peer ends, ends its side and closes (Node: push(null) + read(0))", async () => {
  const got = same(await both(async (env, r) => {
    const sev: string[] = [];
    const srv = env.srv.createServer((s: Socket) => { watchAll(s, sev, 'S:', false); s.on('error', () => {}); s.end(); });
    const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
    const ev: string[] = [];
    // No 'data' listener, no resume(): the stream is not flowing.
    const c = env.cli.connect(port, env.srvHost);
    watchAll(c, ev, '', false);
    const done = await until(() => closed(ev) && sev.includes('S:close false'), 3000);
    const snap = { ev: [...ev], sev: [...sev], done, readyState: c.readyState, flowing: c.readableFlowing };
    c.destroy();
    await closeServer(srv);
    return snap;
  }));
  assert.equal(got.ev, ['connect', 'ready', 'end', 'finish', 'close false']);
  assert.equal(got.sev, ['S:finish', 'S:end', 'S:close false']);
  assert.is(got.done, true, 'both sides closed');
});

test('stream.Duplex options of new Socket() and connect() (highWaterMarks, encoding, defaultEncoding) apply, as Node passes them on', async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const out: Rec = {};
    const forms: Record<string, Rec> = {
      hwm: { highWaterMark: 100 },
      split: { readableHighWaterMark: 10, writableHighWaterMark: 20 },
      encoding: { encoding: 'utf8' },
      defaultEncoding: { defaultEncoding: 'hex' },
    };
    for (const [name, opts] of Object.entries(forms)) {
      const fresh = new env.cli.Socket(opts);
      const props = { r: fresh.readableHighWaterMark, w: fresh.writableHighWaterMark, enc: fresh.readableEncoding };
      fresh.destroy();
      // The same options given to connect(), and what the echo brings back.
      const s = env.cli.connect({ port, host: env.srvHost, ...opts });
      const data: unknown[] = [];
      s.on('data', (d: Buffer | string) => data.push(typeof d === 'string' ? `string ${d}` : `buffer ${d.toString('latin1')}`));
      assert.ok(await until(() => !s.connecting, 3000), `${env.name} ${name}: connected`);
      s.write(name === 'defaultEncoding' ? '6869' : 'h\u00e9');
      assert.ok(await until(() => data.join('').length >= 9, 3000), `${env.name} ${name}: echoed`);
      out[name] = { props, connected: { r: s.readableHighWaterMark, w: s.writableHighWaterMark, enc: s.readableEncoding }, data: data.join('|'), bytesWritten: s.bytesWritten };
      s.destroy();
    }
    await closeServer(srv);
    return out;
  }));
  assert.equal((got.split as { props: Rec }).props, { r: 10, w: 20, enc: null });
  assert.equal((got.encoding as { data: string }).data, 'string h\u00e9');
  assert.equal((got.defaultEncoding as { data: string; bytesWritten: number }).bytesWritten, 2);
});

test("writes made while connecting: each callback in order, the first inside 'connect' (before 'ready'), then end()'s", async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const ev: string[] = [];
    const s = env.cli.connect(port, env.srvHost);
    watchAll(s, ev, '', false);
    s.write('a', () => ev.push('cb1'));
    s.write(Buffer.from('b'), () => ev.push('cb2'));
    s.write('63', 'hex', () => ev.push('cb3'));
    s.on('connect', () => ev.push('connect listener added after the writes'));
    s.end('d', () => ev.push('end cb'));
    ev.push('sync');
    s.resume();
    assert.ok(await until(() => closed(ev), 3000), `${env.name}: closed`);
    await sleep(10);
    await closeServer(srv);
    return { ev, bytesWritten: s.bytesWritten, bytesRead: s.bytesRead };
  }));
  assert.equal(got.ev.slice(0, 5), ['sync', 'connect', 'cb1', 'connect listener added after the writes', 'ready']);
  assert.is(got.bytesWritten, 4);
});

test('end() on a socket that never connects: no finish (it waits for a connection, as Node\'s _final); destroy() then fails its callback', async () => {
  const got = same(await both(async (env) => {
    const out: Rec = {};
    for (const form of ['end', 'end(data)', 'write']) {
      const s = new env.cli.Socket();
      const ev: string[] = [];
      watchAll(s, ev, '', false);
      s.on('prefinish', () => ev.push('prefinish'));
      const cb = (e?: Error | null) => ev.push(`cb ${(e as { code?: string } | null | undefined)?.code}`);
      if (form === 'end') s.end(cb);
      else if (form === 'end(data)') s.end('x', cb);
      else ev.push(`write returned ${s.write('x', cb)}`);
      await sleep(50);
      ev.push(`waited: ${s.readyState} finished ${s.writableFinished} ended ${s.writableEnded} destroyed ${s.destroyed}`);
      s.destroy();
      await sleep(10);
      out[form] = ev;
    }
    return out;
  }));
  assert.equal(got.end, ['waited: readOnly finished false ended true destroyed false', 'cb ERR_STREAM_DESTROYED', 'close undefined']);
});

test('connect through a lookup function: called with Node\'s options (hints ADDRCONFIG, all: true for autoSelectFamily), a lookup event per address, Node\'s errors', async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const out: Rec = {};
    type Answer = (opts: { all?: boolean }, cb: (...a: unknown[]) => void) => void;
    const forms: [string, Rec, Answer][] = [
      ['list', {}, (_o, cb) => cb(null, [{ address: env.srvHost, family: 4 }])],
      ['two addresses', {}, (_o, cb) => cb(null, [{ address: env.srvHost, family: 4 }, { address: env.otherHost, family: 4 }])],
      ['same address twice', {}, (_o, cb) => cb(null, [{ address: env.srvHost, family: 4 }, { address: env.srvHost, family: 4 }])],
      ['family 4', { family: 4 }, (_o, cb) => cb(null, env.srvHost, 4)],
      ["family 'IPv4'", { family: 'IPv4' }, (_o, cb) => cb(null, env.srvHost, 4)],
      ['hints', { hints: 1024 }, (_o, cb) => cb(null, [{ address: env.srvHost, family: 4 }])],
      ['autoSelectFamily false', { autoSelectFamily: false }, (_o, cb) => cb(null, env.srvHost, 4)],
      ['localAddress', { localAddress: env.cliHost }, (_o, cb) => cb(null, env.srvHost, 4)],
      ['error', {}, (_o, cb) => cb(Object.assign(new Error('getaddrinfo ENOTFOUND db.internal'), { code: 'ENOTFOUND' }))],
      ['bad family', { autoSelectFamily: false }, (_o, cb) => cb(null, env.srvHost, 5)],
      ['bad address in a list', {}, (_o, cb) => cb(null, [{ address: 'nope', family: 4 }])],
    ];
    for (const [name, extra, answer] of forms) {
      const calls: unknown[] = [];
      const ev: string[] = [];
      const lookup = (h: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) => {
        calls.push([h, { ...opts }]);
        setImmediate(() => answer(opts, cb));
      };
      const s = env.cli.connect({ port, host: 'db.internal', lookup: lookup as never, ...extra });
      let err: unknown = null;
      s.on('error', (e) => { err = e; });
      s.on('lookup', (e: Error | null, a: string, f: number, h: string) => ev.push(`lookup ${(e as { code?: string } | null)?.code} ${String(r.a(a))} ${f} ${h}`));
      watchAll(s, ev, '', false);
      assert.ok(await until(() => !s.connecting, 3000), `${env.name} ${name}`);
      const attempted = s.autoSelectFamilyAttemptedAddresses?.map((x) => r.text(x));
      const remote = r.a(s.remoteAddress);
      s.destroy();
      assert.ok(await until(() => closed(ev), 3000), `${env.name} ${name}: closed`);
      out[name] = { calls, ev, err: r.err(err), attempted, remote };
    }
    // 'localhost' goes to the lookup function too.
    const calls: unknown[] = [];
    const l = env.cli.connect({ port, host: 'localhost', lookup: ((h: string, o: object, cb: (...a: unknown[]) => void) => { calls.push([h, o]); cb(null, [{ address: env.srvHost, family: 4 }]); }) as never });
    assert.ok(await until(() => !l.connecting, 3000), `${env.name} localhost`);
    out.localhost = { calls, remote: r.a(l.remoteAddress) };
    l.destroy();
    await closeServer(srv);
    return out;
  }));
  assert.equal((got.list as { calls: unknown[] }).calls, [['db.internal', { family: undefined, hints: 32, all: true }]]);
  assert.equal((got['two addresses'] as { attempted: string[] }).attempted, ['SRV:SP']);
  assert.equal((got['bad family'] as { err: Rec }).err, { name: 'RangeError', code: 'ERR_INVALID_ADDRESS_FAMILY', message: 'Invalid address family: 5 db.internal:SP', port: 'SP' });
});

test("a VS's net module has every export of Node's net: Stream (Socket), BlockList, SocketAddress, the autoSelectFamily defaults", async () => {
  const got = same(await both(async (env) => {
    const net = env.cli;
    const bl = new net.BlockList();
    bl.addSubnet('10.0.0.0', 8);
    bl.addAddress('2001:db8::1', 'ipv6');
    const sa = new net.SocketAddress({ address: '10.1.1.1', port: 80 });
    const s = new net.Stream();
    const out = {
      streamIsSocket: s instanceof net.Socket,
      blocked: [bl.check('10.2.3.4'), bl.check('11.0.0.1'), bl.check('2001:db8::1', 'ipv6')],
      socketAddress: [sa.address, sa.port, sa.family],
      autoSelectFamily: net.getDefaultAutoSelectFamily(),
      attemptTimeout: net.getDefaultAutoSelectFamilyAttemptTimeout(),
    };
    s.destroy();
    return out;
  }));
  assert.equal(got.blocked, [true, false, true]);
  assert.is(got.streamIsSocket, true);
});

test('a local port: one a listener holds is bind EADDRINUSE; one shared by connections to other peers is fine; a four-tuple in use is connect EADDRNOTAVAIL', async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const other = env.srv.createServer((x: Socket) => { x.on('error', () => {}); x.resume(); });
    const port2 = r.port(await listen(other, 0, env.srvHost), 'SP2');
    const out: Rec = {};
    // A listener of the client's side (a fixed port: both sides' listen(0) could pick one number).
    const l = env.cli.createServer();
    let lp = 0;
    for (let i = 0; i < 10 && !lp; i++) lp = await listen(l, 40000 + ((process.pid + i * 7) % 20000), env.cliHost).catch(() => 0);
    assert.ok(lp > 0, `${env.name}: a port for the client's listener`);
    r.port(lp, 'LP');
    for (const form of ['localAddress', 'localPort only']) {
      const ev: string[] = [];
      let err: unknown = null;
      const s = env.cli.connect({ port, host: env.srvHost, localPort: lp, ...(form === 'localAddress' ? { localAddress: env.cliHost } : {}) });
      watchAll(s, ev, '', false);
      s.on('error', (e) => { err = e; });
      assert.ok(await until(() => closed(ev) || !s.connecting, 3000), `${env.name} ${form}`);
      out[form] = { ev: [...ev], err: r.err(err) };
      s.destroy();
    }
    await closeServer(l);
    // One local port for two connections to two peers, then a third to the first peer again.
    const [free] = await freePorts(env, 1);
    const fp = r.port(free!, 'FP');
    const socks: Socket[] = [];
    const evs: string[][] = [];
    const errs: unknown[] = [];
    for (const p of [port, port2, port]) {
      const ev: string[] = [];
      const s = env.cli.connect({ port: p, host: env.srvHost, localAddress: env.cliHost, localPort: fp });
      watchAll(s, ev, '', false);
      s.on('error', (e) => errs.push(r.err(e)));
      assert.ok(await until(() => closed(ev) || !s.connecting, 3000), `${env.name} from FP to ${p}`);
      socks.push(s);
      evs.push(ev);
    }
    await sleep(10);
    out.shared = { evs: evs.map((e) => [...e]), errs, localPorts: socks.map((s) => r.p(s.localPort)) };
    for (const s of socks) s.destroy();
    await sleep(10);
    await closeServer(other);
    await closeServer(srv);
    return out;
  }));
  assert.equal((got.localAddress as { err: Rec }).err, { name: 'Error', code: 'EADDRINUSE', message: 'bind EADDRINUSE CLI:LP', errno: -98, syscall: 'bind', address: 'CLI', port: 'LP' });
  assert.is(((got['localPort only'] as { err: Rec }).err).message, 'bind EADDRINUSE 0.0.0.0:LP');
  assert.equal(((got.shared as { errs: Rec[] }).errs), [{ name: 'Error', code: 'EADDRNOTAVAIL', message: 'connect EADDRNOTAVAIL SRV:SP - Local (CLI:FP)', errno: -99, syscall: 'connect', address: 'SRV', port: 'SP' }]);
});

test("a server's options are its properties (allowHalfOpen, pauseOnConnect, noDelay, keepAlive, keepAliveInitialDelay in seconds, highWaterMark), read at each accept", async () => {
  const got = same(await both(async (env, r) => {
    const pick = (x: Rec) => Object.fromEntries(['allowHalfOpen', 'pauseOnConnect', 'noDelay', 'keepAlive', 'keepAliveInitialDelay', 'highWaterMark'].map((k) => [k, x[k]]));
    const out: Rec = {
      defaults: pick(env.srv.createServer() as unknown as Rec),
      given: pick(env.srv.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 2500, highWaterMark: 100 }) as unknown as Rec),
    };
    const accepted: Rec[] = [];
    const srv = env.srv.createServer((s: Socket) => {
      s.on('error', () => {});
      accepted.push({ allowHalfOpen: s.allowHalfOpen, paused: s.isPaused(), r: s.readableHighWaterMark, w: s.writableHighWaterMark });
      s.destroy();
    });
    const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
    for (let i = 0; i < 2; i++) {
      if (i === 1) {
        // Changed on the listening server: the next connection is accepted so.
        srv.allowHalfOpen = true;
        srv.pauseOnConnect = true;
        srv.highWaterMark = 1000;
      }
      const c = env.cli.connect(port, env.srvHost);
      c.on('error', () => {});
      c.resume();
      assert.ok(await until(() => accepted.length === i + 1 && c.destroyed, 3000), `${env.name}: connection ${i}`);
    }
    out.accepted = accepted;
    await closeServer(srv);
    return out;
  }));
  assert.equal(got.given, { allowHalfOpen: true, pauseOnConnect: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 2, highWaterMark: 100 });
  assert.equal((got.accepted as Rec[])[1], { allowHalfOpen: true, paused: true, r: 1000, w: 1000 });
});

test("the timeout option is net.connect()'s: it sets the idle timeout there; socket.connect() ignores it", async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const out: Rec = {};
    for (const form of ['net.connect', 'socket.connect']) {
      const ev: string[] = [];
      const s = form === 'net.connect' ? env.cli.connect({ port, host: env.srvHost, timeout: 40 }) : new env.cli.Socket().connect({ port, host: env.srvHost, timeout: 40 });
      watchAll(s, ev, '', false);
      const timeout = s.timeout;
      await sleep(200);
      out[form] = { timeout, ev: ev.filter((x) => x === 'timeout') };
      s.destroy();
    }
    await closeServer(srv);
    return out;
  }));
  assert.equal(got, { 'net.connect': { timeout: 40, ev: ['timeout'] }, 'socket.connect': { timeout: undefined, ev: [] } });
});

test('a write in progress when the socket is destroyed (the peer resets, or destroy(err) here) completes without an error; the writes queued behind it get the error', async () => {
  const got = same(await both(async (env, r) => {
    const out: Rec = {};
    for (const form of ['peer resetAndDestroy()', 'peer destroy() with unread data', 'destroy(err) here']) {
      let server: Socket | null = null;
      const srv = env.srv.createServer({ pauseOnConnect: true }, (s: Socket) => { server = s; s.on('error', () => {}); });
      const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
      const ev: string[] = [];
      const cbs: unknown[] = [];
      const c = env.cli.connect(port, env.srvHost);
      watchAll(c, ev, '', false);
      assert.ok(await until(() => !c.connecting && server !== null, 3000), `${env.name} ${form}: connected`);
      // More than the peer's window and both send buffers: the first write is still in progress.
      c.write(Buffer.alloc(8 << 20), (e) => cbs.push((e as { code?: string } | null | undefined)?.code ?? null));
      c.write('tail', (e) => cbs.push((e as { code?: string } | null | undefined)?.code ?? null));
      await sleep(100);
      if (form === 'peer resetAndDestroy()') server!.resetAndDestroy();
      else if (form === 'peer destroy() with unread data') server!.destroy();
      else c.destroy(Object.assign(new Error('gave up'), { code: 'EGAVEUP' }));
      assert.ok(await until(() => closed(ev), 3000), `${env.name} ${form}: closed`);
      await sleep(20);
      out[form] = { ev, cbs };
      (server as Socket | null)?.destroy();
      await closeServer(srv);
    }
    return out;
  }));
  assert.equal(got['peer resetAndDestroy()'], { ev: ['connect', 'ready', 'error ECONNRESET', 'close true'], cbs: [null, 'ECONNRESET'] });
  assert.equal((got['destroy(err) here'] as { cbs: unknown[] }).cbs, [null, 'EGAVEUP']);
});

test('half-close with allowHalfOpen false and true: event order on both sides, readyState on the way, end(data, cb)', async () => {
  const got = same(await both(async (env, r) => {
    const out: Rec = {};
    for (const aho of [false, true]) {
      const sev: string[] = [];
      let ss: Socket | null = null;
      const srv = env.srv.createServer({ allowHalfOpen: aho }, (s: Socket) => {
        ss = s;
        watchAll(s, sev, 'S:');
        s.on('end', () => { sev.push(`S:readyState ${s.readyState}`); setTimeout(() => s.end('bye', () => sev.push('S:end cb')), 30); });
      });
      const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
      const ev: string[] = [];
      const c = env.cli.connect({ port, host: env.srvHost, allowHalfOpen: aho });
      watchAll(c, ev, 'C:');
      c.setEncoding('utf8');
      assert.ok(await until(() => !c.connecting, 3000), `${env.name}: connected`);
      c.end('hi', () => ev.push('C:end cb'));
      ev.push(`C:readyState ${c.readyState}`);
      assert.ok(await until(() => closed(ev.map((x) => x.slice(2))) && sev.some((x) => x.startsWith('S:close')), 3000), `${env.name} allowHalfOpen ${aho}: closed`);
      await sleep(20);
      out[String(aho)] = { ev, sev, readyState: c.readyState, server: (ss as Socket | null)?.readyState };
      await closeServer(srv);
    }
    return out;
  }));
  assert.ok(((got.true as { sev: string[] }).sev).includes('S:readyState writeOnly'), 'allowHalfOpen: the server can still write after the end');
});

test('multi-byte strings: bytesWritten and bytesRead count bytes, setEncoding decodes across chunks, readableFlowing through the lifecycle', async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const s = env.cli.connect(port, env.srvHost);
    const o: Rec = { flowingAtFirst: s.readableFlowing, encodingAtFirst: s.readableEncoding };
    assert.ok(await until(() => !s.connecting, 3000), `${env.name}: connected`);
    s.setEncoding('utf8');
    let text = '';
    s.on('data', (d: string) => { text += d; });
    o.flowingReading = s.readableFlowing;
    const str = '\u00e9\u20ac\ud83d\ude00x'.repeat(1000);
    o.ret = s.write(str);
    o.bytesWrittenAtOnce = s.bytesWritten;
    assert.ok(await until(() => text.length === str.length, 3000), `${env.name}: echoed`);
    o.same = text === str;
    o.bytesRead = s.bytesRead;
    s.pause();
    o.flowingPaused = s.readableFlowing;
    s.resume();
    s.end();
    assert.ok(await until(() => s.destroyed, 3000), `${env.name}: closed`);
    o.after = { readyState: s.readyState, bytesRead: s.bytesRead, bytesWritten: s.bytesWritten, address: s.address(), pending: s.pending };
    await closeServer(srv);
    return o;
  }));
  assert.is(got.bytesWrittenAtOnce, 10000);
  assert.is(got.bytesRead, 10000);
});

test('writes made while connecting, then destroy(): now, a tick later, in a \'connect\' listener added before or after them, or end() there', async () => {
  const got = same(await both(async (env, r) => {
    const { srv, port } = await echoServer(env, r);
    const out: Rec = {};
    for (const form of ['destroy now', 'destroy a tick later', "destroy in 'connect' before the writes", "destroy in 'connect' after the writes", "end in 'connect'"]) {
      const ev: string[] = [];
      const s = env.cli.connect(port, env.srvHost);
      watchAll(s, ev, '', false);
      if (form === "destroy in 'connect' before the writes") s.on('connect', () => s.destroy());
      ev.push(`write ${s.write('abc', (e) => ev.push(`cb1 ${(e as { code?: string } | null | undefined)?.code ?? null}`))}`);
      ev.push(`write ${s.write('def', (e) => ev.push(`cb2 ${(e as { code?: string } | null | undefined)?.code ?? null}`))}`);
      if (form === 'destroy now') s.destroy();
      else if (form === 'destroy a tick later') process.nextTick(() => s.destroy());
      else if (form === "destroy in 'connect' after the writes") s.on('connect', () => s.destroy());
      else if (form === "end in 'connect'") s.on('connect', () => s.end());
      s.resume();
      assert.ok(await until(() => closed(ev), 3000), `${env.name} ${form}: closed`);
      await sleep(20);
      out[form] = { ev, bytesWritten: s.bytesWritten };
    }
    await closeServer(srv);
    return out;
  }));
  assert.equal(got["destroy in 'connect' before the writes"], { ev: ['write true', 'write true', 'connect', 'cb1 ERR_SOCKET_CLOSED', 'cb2 ERR_SOCKET_CLOSED', 'ready', 'close false'], bytesWritten: 0 });
  assert.is((got['destroy a tick later'] as { bytesWritten: number }).bytesWritten, 3);
});

test('a local address of the other family than the destination: bind EINVAL (the local address and port), no attempt', async () => {
  const got = same(await both(async (env, r) => {
    const out: Rec = {};
    const v6dst = env.name === 'node' ? '::1' : 'fd00::1';
    const forms: [string, Rec][] = [
      ['IPv6 local, IPv4 destination', { port: 9, host: env.srvHost, localAddress: '2001:db8::2' }],
      ['the same with a local port', { port: 9, host: env.srvHost, localAddress: '2001:db8::2', localPort: 4555 }],
      ['IPv4 local, IPv6 destination', { port: 9, host: v6dst, localAddress: env.cliHost }],
    ];
    for (const [name, o] of forms) {
      const ev: string[] = [];
      let err: unknown = null;
      const s = env.cli.connect(o as never);
      s.on('connectionAttempt', () => ev.push('connectionAttempt'));
      watchAll(s, ev, '', false);
      s.on('error', (e) => { err = e; });
      assert.ok(await until(() => closed(ev), 3000), `${env.name} ${name}`);
      out[name] = { ev, err: r.err(err) };
    }
    return out;
  }));
  assert.equal(got['the same with a local port'], { ev: ['error EINVAL', 'close true'], err: { name: 'Error', code: 'EINVAL', message: 'bind EINVAL 2001:db8::2:4555', errno: -22, syscall: 'bind', address: '2001:db8::2', port: 'EPHEMERAL' } });
});

test('ours alone: destinations a VS cannot reach (loopback, unspecified, link-local without its link) fail with Node\'s message form, the reason after it', async () => {
  // Node reaches the host itself at 127.0.0.1, ::1 and 0.0.0.0 (README: a VS has no loopback); the
  // stack refuses them, worded as Node words a connect error.
  const w = realTimeHosts();
  try {
    const net = netModule(w.b.ctx);
    const got: Rec = {};
    for (const host of ['127.0.0.1', '::1', '0.0.0.0', 'fe80::1']) {
      const ev: string[] = [];
      let err: (Error & Rec) | null = null;
      const s = net.connect(80, host);
      s.on('error', (e) => { err = e as Error & Rec; });
      watchAll(s, ev, '', false);
      assert.ok(await until(() => closed(ev), 2000), host);
      const e = err as unknown as Error & Rec;
      got[host] = { ev, code: e.code, errno: e.errno, syscall: e.syscall, address: e.address, port: e.port, message: e.message, reason: typeof e.reason };
    }
    assert.equal(got['127.0.0.1'], { ev: ['error EADDRNOTAVAIL', 'close true'], code: 'EADDRNOTAVAIL', errno: -99, syscall: 'connect', address: '127.0.0.1', port: 80,
      message: 'connect EADDRNOTAVAIL 127.0.0.1:80 (loopback addresses are not reachable inside a virtual server (it has no loopback interface))', reason: 'string' });
    assert.is((got['0.0.0.0'] as Rec).message, 'connect EADDRNOTAVAIL 0.0.0.0:80 (not a destination address)');
    assert.is((got['fe80::1'] as Rec).message, 'connect EINVAL fe80::1:80 (a link-local address needs its link (%link))');
  } finally {
    w.stop();
  }
});

// ------------------------------------------------------------------------------------------------
// No route: Node's side needs a host without one, so it runs in a network namespace of its own
// (loopback only); ours in a VS without a default route.

/** What a program sees of a connect that fails for want of a route (one JSON line per form). */
const UNREACH_FORMS = `[
  { port: 80, host: '192.0.2.1' },
  { port: 80, host: '192.0.2.1', localAddress: CLI },
  { port: 80, host: '192.0.2.1', localAddress: CLI, localPort: 4444 },
]`;
const UNREACH_RUN = `
async function run(net, CLI) {
  const out = [];
  for (const o of ${UNREACH_FORMS}) {
    const ev = [];
    const s = net.connect(o);
    s.on('connectionAttempt', (a, p, f) => ev.push('connectionAttempt ' + a + ' ' + p + ' ' + f));
    s.on('connectionAttemptFailed', () => ev.push('connectionAttemptFailed'));
    s.on('connect', () => ev.push('connect'));
    s.on('error', (e) => ev.push({ name: e.name, code: e.code, errno: e.errno, syscall: e.syscall, address: e.address, port: e.port,
      localAddress: e.localAddress, localPort: e.localPort,
      message: e.message.split(CLI + ':').join('CLI:').replace(/:(\\d+)\\)$/, (m, p) => p === '4444' ? ':LP)' : p === '0' ? ':0)' : ':EPHEMERAL)') }));
    await new Promise((res) => { s.on('close', (h) => { ev.push('close ' + h); res(); }); setTimeout(res, 3000); });
    out.push(ev);
  }
  return out;
}`;

if (canRunPrivileged()) {
  test('connect without a route: ENETUNREACH after connectionAttempt, the message naming the local end as getsockname has it', async () => {
    const ns = `${labPrefix('p1')}-nr`;
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    let node: unknown;
    try {
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', `${UNREACH_RUN}\nrun(require('net'), '127.0.0.1').then((o) => console.log(JSON.stringify(o)));`],
        { encoding: 'utf8', timeout: 20_000 });
      assert.is(r.status, 0, r.stderr);
      node = JSON.parse(r.stdout.trim());
    } finally {
      spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    }
    const w = realTimeHosts();
    let ours: unknown;
    try {
      const run = new Function('net', 'CLI', `${UNREACH_RUN}\nreturn run(net, CLI);`) as (net: unknown, cli: string) => Promise<unknown>;
      ours = await run(netModule(w.b.ctx), '10.1.1.2');
    } finally {
      w.stop();
    }
    assert.equal(JSON.parse(JSON.stringify(ours)), node);
    assert.equal((node as unknown[][])[0], ['connectionAttempt 192.0.2.1 80 4', { name: 'Error', code: 'ENETUNREACH', errno: -101, syscall: 'connect',
      address: '192.0.2.1', port: 80, message: 'connect ENETUNREACH 192.0.2.1:80 - Local (0.0.0.0:0)' }, 'close true']);
  });
}

test.run();
