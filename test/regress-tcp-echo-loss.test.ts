/**
 * Regression: 5 MB echoes over a lossy path stalled once a receive window closed (the echo server
 * stops reading while its own sends wait). Both ends are xdpstack here (two engines over the memory
 * link, virtual time); the seeds are ones that stalled before the fixes: at 1 % loss the window's
 * right edge moved left and the ACKs at the closed window were ignored (stalled for good); at 5 %
 * loss retransmissions into the closed window also timed the connection out (ETIMEDOUT) or left
 * it backed off for minutes after the window reopened.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, pattern, sha } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';

const SIZE = 5 * 1024 * 1024;

async function echo(loss: number, seed: number): Promise<void> {
  const w = twoHosts({ link: { loss, seed } });
  createServer(w.a.ctx(), (s: Socket) => { s.on('error', () => {}); s.pipe(s); }).listen(7);
  const data = pattern(SIZE, seed);
  const parts: Buffer[] = [];
  let ended = false;
  let err = '';
  const c = connect(w.b.ctx(), 7, '10.1.1.1', () => c.end(data));
  c.on('data', (d: Buffer) => parts.push(d));
  c.on('end', () => { ended = true; });
  c.on('error', (e: Error) => { err = e.message; });
  // After the fixes the slowest of these takes about 40 s of virtual time (5 % loss, RTO-bound).
  const ok = await w.run(() => ended || err !== '', 120_000_000);
  const got = Buffer.concat(parts);
  assert.is(err, '', `loss ${loss} seed ${seed}: error`);
  assert.ok(ok && ended, `loss ${loss} seed ${seed}: stalled with ${got.length} of ${SIZE} bytes echoed after ${w.now() / 1e6} s`);
  assert.is(sha(got), sha(data), `loss ${loss} seed ${seed}: byte-exact`);
}

for (const seed of [1, 2, 3, 4, 5]) test(`5 MB echo at 1 % loss (seed ${seed}): completes byte-exact`, () => echo(0.01, seed));
for (const seed of [1, 3, 7, 8]) test(`5 MB echo at 5 % loss (seed ${seed}): completes byte-exact`, () => echo(0.05, seed));

test.run();
