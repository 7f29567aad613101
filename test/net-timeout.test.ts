/**
 * socket.setTimeout (as net.Socket): 'timeout' after the idle period, activity postpones it, once
 * per idle period, setTimeout(0) disables it, a shorter timeout takes effect at once, the callback
 * form, and bad values. Real time for the idle timer; the connection runs over the memory link.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function pair(): Promise<{ w: World; c: Socket; s: Socket }> {
  const w = twoHosts();
  let s: Socket | null = null;
  createServer(w.a.ctx(), (x: Socket) => { s = x; x.resume(); }).listen(80);
  const c = connect(w.b.ctx(), 80, '10.1.1.1');
  assert.ok(await w.run(() => s !== null && !c.connecting, 1_000_000));
  return { w, c, s: s! };
}

test('an idle socket emits timeout after the period, once, and stays open', async () => {
  const { c } = await pair();
  const at: number[] = [];
  const t0 = performance.now();
  c.on('timeout', () => at.push(performance.now() - t0));
  c.setTimeout(60);
  assert.is(c.timeout, 60);
  await sleep(250);
  assert.is(at.length, 1, `one timeout per idle period, got ${at.length}`);
  assert.ok(at[0]! >= 59, `not before the period (${at[0]} ms)`);
  assert.not.ok(c.destroyed, 'timeout does not close the socket');
});

test('activity postpones the timeout; it comes after the activity stops', async () => {
  const { w, c } = await pair();
  let fired = -1;
  c.setTimeout(150);
  const t0 = performance.now();
  c.on('timeout', () => { fired = performance.now() - t0; });
  for (let i = 0; i < 8; i++) {
    await sleep(20);
    c.write('ping');
    await w.run(() => false, 1000);
  }
  const stopped = performance.now() - t0;
  assert.is(fired, -1, 'no timeout while writing every 20 ms');
  await sleep(400);
  assert.ok(fired >= stopped + 140, `timeout ${fired} ms after the last write at ${stopped} ms`);
});

test('setTimeout(0) disables; a shorter timeout takes effect at once; the callback form', async () => {
  const { c } = await pair();
  let n = 0;
  c.on('timeout', () => n++);
  c.setTimeout(40);
  c.setTimeout(0);
  assert.is(c.timeout, 0, 'the last value set, as net.Socket#timeout');
  await sleep(120);
  assert.is(n, 0, 'disabled');
  c.setTimeout(5000);
  let viaCb = 0;
  const t0 = performance.now();
  let at = 0;
  c.setTimeout(30, () => { viaCb++; at = performance.now() - t0; });
  await sleep(150);
  assert.is(viaCb, 1, 'callback called once');
  assert.ok(at < 1000, `the shorter timeout replaced the longer one (${at} ms)`);
  assert.throws(() => c.setTimeout(-1), (e: Error & { code?: string }) => e instanceof RangeError && e.code === 'ERR_OUT_OF_RANGE');
  assert.throws(() => c.setTimeout(NaN), RangeError);
});

test('a destroyed socket never times out', async () => {
  const { c } = await pair();
  let n = 0;
  c.on('timeout', () => n++);
  c.setTimeout(30);
  c.destroy();
  await sleep(100);
  assert.is(n, 0);
});

test.run();
