/**
 * More of the net-shaped API against Node's own `net` over the kernel, with the harness of
 * net-node-parity.test.ts (test/lib/net-parity.ts): each scenario runs with Node's `net` on
 * loopback and with ours on two stacks over the memory link, and what the program observes must be
 * equal once addresses and ports are named by their role. Each test here is the regression test of
 * a difference that was found and fixed; its title says what Node does.
 */
import { EventEmitter } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { until } from './lib/realtime';
import type { Socket } from '../stack/api/net';
import { both, closeServer, echoServer, listen, Rec, Roles, same, sleep } from './lib/net-parity';

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

test.run();
