/**
 * Regression: the frame pool's totals (free, in the kernel's rings, on the TX ring, held, queued
 * for the driver) were not visible in `show`. `show pool` and `show counters` now report them, in
 * tables and JSON, and they add up to the pool's size.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../stack/cli/cli';
import { createStack, Stack } from '../stack/stack';
import { ControlServer } from '../stack/control/control';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-pool-'));
const sock = path.join(tmp, 'pool.sock');
let stack: Stack;
let server: ControlServer;

async function cli(args: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const code = await main([...args, '--socket', sock], { out: (l) => out.push(l), err: (l) => out.push(l) });
  return { code, out: out.join('\n') };
}

interface PoolRow { device: string; total: number; free: number; kernel: number; tx: number; held: number; queued: number }

test.before(async () => {
  stack = createStack({
    name: 'pool',
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01', frameCount: 256 }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', addresses: ['10.1.1.1/24'] }] }],
  });
  server = await ControlServer.listen(stack, sock);
});
test.after(async () => {
  await server.close();
  stack.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('show pool --json: totals per device that add up, and frames held by someone show as held', async () => {
  let r = await cli(['show', 'pool', '--json']);
  assert.is(r.code, 0, r.out);
  const before = JSON.parse(r.out) as PoolRow[];
  assert.is(before.length, 1);
  const p = before[0]!;
  assert.is(p.device, 'm0');
  assert.is(p.total, 256);
  assert.is(p.free + p.kernel + p.tx + p.held, p.total, JSON.stringify(p));
  // Three frames taken by an owner (as a zero-copy reader holds received frames).
  const pool = stack.engine.devices[0]!.pool;
  const taken = [pool.alloc(), pool.alloc(), pool.alloc()];
  r = await cli(['show', 'pool', '--json']);
  const after = (JSON.parse(r.out) as PoolRow[])[0]!;
  assert.is(after.held, p.held + 3);
  assert.is(after.free, p.free - 3);
  for (const f of taken) pool.free(f);
});

test('show pool and show counters print the pool as a table', async () => {
  let r = await cli(['show', 'pool']);
  assert.is(r.code, 0, r.out);
  const lines = r.out.split('\n');
  assert.match(lines[0]!, /^DEVICE\s+TOTAL\s+FREE\s+KERNEL\s+TX\s+HELD\s+QUEUED$/);
  assert.match(lines[1]!, /^m0\s+256\s+\d+/);
  r = await cli(['show', 'counters']);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /Frame pool:\n\s+DEVICE\s+TOTAL\s+FREE/);
  r = await cli(['show', 'counters', '--json']);
  const c = JSON.parse(r.out) as { pool: PoolRow[] };
  assert.is(c.pool[0]!.total, 256);
});

test.run();
